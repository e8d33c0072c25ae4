"""The TLA+ specs under ``specs/`` are well-formed (issue 8).

Static checks that keep the specs runnable by TLC (``tests/test_tlc.py`` runs TLC itself):

* every ``.tla`` parses with SANY, TLA+'s own front end (when java and TLA2TOOLS_JAR are
  present, as on CI), and with the ``tla`` package (a Python TLA+ parser), and is named
  after its file;
* a module EXTENDS only standard modules or other modules under ``specs/``;
* every ``.cfg`` names only constants and operators its module (or a module it EXTENDS
  among ``specs/``) declares or defines;
* ``vars`` lists exactly the declared variables, and every alternative of ``Next`` assigns
  every variable (primed or UNCHANGED), the check TLC makes when it computes successors.
"""

from __future__ import annotations

import re
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from delos_ref import tlc

tla = pytest.importorskip("tla")

SPECS = Path(__file__).resolve().parent.parent / "specs"
STANDARD = {"Naturals", "Integers", "Sequences", "FiniteSets", "TLC", "Json"}
TLA_FILES = sorted(SPECS.glob("*.tla"))
CFG_FILES = sorted(SPECS.glob("*.cfg"))

# cfg keywords: those followed by operator names, and CONSTANT(S) (name = value / name <- op).
OPERATOR_SECTIONS = {
    "INIT", "NEXT", "SPECIFICATION", "INVARIANT", "INVARIANTS", "PROPERTY", "PROPERTIES",
    "SYMMETRY", "VIEW", "CONSTRAINT", "CONSTRAINTS", "ACTION_CONSTRAINT", "ACTION_CONSTRAINTS",
    "ALIAS", "POSTCONDITION",
}
CONSTANT_SECTIONS = {"CONSTANT", "CONSTANTS"}
OTHER_SECTIONS = {"CHECK_DEADLOCK"}


def _parse(path: Path) -> Any:
    return tla.parse(path.read_text(encoding="utf-8"))


class ModuleInfo:
    """What a module (with the spec modules it extends) declares and defines."""

    def __init__(self, path: Path) -> None:
        tree = _parse(path)
        self.name: str = tree.name
        self.extends: list[str] = [e.operator for e in (tree.extendees or [])]
        self.constants: set[str] = set()
        self.variables: list[str] = []
        self.definitions: dict[str, Any] = {}
        for unit in tree.units or []:
            kind = type(unit).__name__
            if kind == "Constants":
                self.constants |= {_decl_name(n) for n in unit.names}
            elif kind == "Variables":
                self.variables += [_decl_name(n) for n in unit.names]
            elif kind == "OperatorDefinition":
                self.definitions[unit.name] = unit.definiens
        for parent in self.extends:
            if parent in STANDARD:
                continue
            info = ModuleInfo(SPECS / f"{parent}.tla")
            self.constants |= info.constants
            self.variables = info.variables + [v for v in self.variables if v not in info.variables]
            self.definitions = {**info.definitions, **self.definitions}


def _decl_name(node: Any) -> str:
    if type(node).__name__ == "OperatorApplication":
        return node.operator
    return getattr(node, "name", str(node))


def read_cfg(path: Path) -> dict[str, list[str]]:
    """Names per section of a TLC config; for CONSTANTS, the declared (left-hand) names and
    the operators substituted with ``<-``."""
    text = re.sub(r"\(\*.*?\*\)", " ", path.read_text(encoding="utf-8"), flags=re.S)
    text = "\n".join(line.split("\\*", 1)[0] for line in text.splitlines())
    sections: dict[str, list[str]] = {}
    section = None
    tokens = re.findall(r'<-|=|"[^"]*"|[A-Za-z_][A-Za-z0-9_!]*|\{[^}]*\}|\S', text)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in OPERATOR_SECTIONS | CONSTANT_SECTIONS | OTHER_SECTIONS:
            section = tok
            sections.setdefault(section, [])
            i += 1
            continue
        if section in CONSTANT_SECTIONS:
            # name = value   |   name <- operator
            assert i + 2 < len(tokens) + 1 and tokens[i + 1] in ("=", "<-"), f"{path.name}: bad constant at {tok!r}"
            sections[section].append(tok)
            if tokens[i + 1] == "<-":
                sections.setdefault("<-", []).append(tokens[i + 2])
            i += 3
            continue
        if section in OPERATOR_SECTIONS:
            sections[section].append(tok)
        i += 1
    return sections


# ------------------------------------------------------------------ action analysis


def _children(node: Any) -> list[Any]:
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return [getattr(node, f) for f in node._fields if f not in ("symbol", "start", "end")]
    if isinstance(node, (list, tuple)):
        return list(node)
    return []


def _conj(alternatives: list[list[frozenset]]) -> list[frozenset]:
    out = {frozenset()}
    for alts in alternatives:
        out = {a | b for a, b in product(out, alts)}
    return sorted(out, key=sorted)


class Assigned:
    """The sets of variables each alternative of an action assigns (primed or UNCHANGED)."""

    def __init__(self, info: ModuleInfo) -> None:
        self.info = info
        self.variables = set(info.variables)

    def names_in(self, node: Any, depth: int = 0) -> set[str]:
        """Variables an expression mentions, expanding defined operators (for UNCHANGED)."""
        if depth > 50:
            return set()
        found: set[str] = set()
        if type(node).__name__ == "OperatorApplication":
            if node.operator in self.variables:
                found.add(node.operator)
            elif node.operator in self.info.definitions:
                found |= self.names_in(self.info.definitions[node.operator], depth + 1)
        for child in _children(node):
            found |= self.names_in(child, depth)
        return found

    def alts(self, node: Any, depth: int = 0) -> list[frozenset]:
        assert depth < 60, "operator expansion too deep (recursive action?)"
        kind = type(node).__name__
        if kind == "OperatorApplication":
            op = node.operator
            args = node.arguments or []
            if op == "'":
                return [frozenset(self.names_in(args[0]) & self.variables)]
            if op == "UNCHANGED":
                return [frozenset(self.names_in(args[0]))]
            if op == "\\/":
                return sorted({a for arg in args for a in self.alts(arg, depth)}, key=sorted)
            parts = [self.alts(arg, depth) for arg in args]
            if op in self.info.definitions and op not in self.variables:
                parts.append(self.alts(self.info.definitions[op], depth + 1))
            return _conj(parts)
        if kind == "VerticalList":
            items = [self.alts(item, depth) for item in node.arguments]
            if node.operator == "\\/":
                return sorted({a for alts in items for a in alts}, key=sorted)
            return _conj(items)
        if kind == "If":
            branches = sorted(set(self.alts(node.then, depth)) | set(self.alts(node.else_, depth)), key=sorted)
            return _conj([self.alts(node.predicate, depth), branches])
        return _conj([self.alts(child, depth) for child in _children(node)])


# ------------------------------------------------------------------------- tests


def test_specs_exist() -> None:
    names = {p.stem for p in TLA_FILES}
    for spec in ("MetaStorePaxos", "NativeLoglet", "VirtualLog"):
        assert {spec, f"MC{spec}"} <= names
        assert (SPECS / f"MC{spec}.cfg").exists()


@pytest.mark.parametrize("path", TLA_FILES, ids=lambda p: p.name)
def test_tla_parses(path: Path) -> None:
    tree = _parse(path)
    assert tree.name == path.stem, f"module {tree.name} in {path.name}"


def _sany_tools() -> tlc.Tools | None:
    try:
        tools = tlc.find_tools()
    except tlc.ToolsMissing:
        return None
    return tools if tools.has_sany else None


SANY_TOOLS = _sany_tools()


@pytest.mark.skipif(SANY_TOOLS is None, reason="SANY needs java and TLA2TOOLS_JAR (tla2tools.jar): see specs/README.md")
@pytest.mark.parametrize("path", TLA_FILES, ids=lambda p: p.name)
def test_sany_parses(path: Path) -> None:
    """SANY is stricter than the Python parser (e.g. it refused an action named Append,
    which clashes with Sequences!Append): TLC cannot run a module SANY rejects."""
    assert SANY_TOOLS is not None
    result = tlc.sany(SANY_TOOLS, path)
    assert result.ok, f"{path.name}: {result.message}"


@pytest.mark.skipif(SANY_TOOLS is None, reason="SANY needs java and TLA2TOOLS_JAR (tla2tools.jar): see specs/README.md")
def test_sany_rejects_a_multiply_defined_symbol(tmp_path: Path) -> None:
    """The check can fail: the clash that once broke VirtualLog.tla is reported."""
    assert SANY_TOOLS is not None
    bad = tmp_path / "Clash.tla"
    bad.write_text("---- MODULE Clash ----\nEXTENDS Sequences\nVARIABLE x\nAppend == x' = x\n====\n", encoding="utf-8")
    result = tlc.sany(SANY_TOOLS, bad)
    assert not result.ok and "Append" in result.message


@pytest.mark.parametrize("path", TLA_FILES, ids=lambda p: p.name)
def test_extends_only_standard_or_specs(path: Path) -> None:
    local = {p.stem for p in TLA_FILES}
    for parent in ModuleInfo(path).extends:
        assert parent in STANDARD | local, f"{path.name} EXTENDS {parent}"


def test_cfg_reader() -> None:
    sample = SPECS / "MCMetaStorePaxos.cfg"
    sections = read_cfg(sample)
    assert sections["INIT"] == ["Init"] and sections["NEXT"] == ["Next"]
    assert "Acceptors" in sections["CONSTANTS"] and "OneValuePerInstance" in sections["INVARIANTS"]


@pytest.mark.parametrize("path", CFG_FILES, ids=lambda p: p.name)
def test_cfg_names_defined(path: Path) -> None:
    module = path.with_suffix(".tla")
    assert module.exists(), f"{path.name} has no {module.name}"
    info = ModuleInfo(module)
    sections = read_cfg(path)
    assert ("INIT" in sections and "NEXT" in sections) or "SPECIFICATION" in sections
    for section, names in sections.items():
        if section in CONSTANT_SECTIONS:
            for name in names:
                assert name in info.constants, f"{path.name}: {name} is not a CONSTANT of {info.name}"
        elif section == "<-" or section in OPERATOR_SECTIONS:
            for name in names:
                assert name in info.definitions, f"{path.name}: {section} {name} is not defined in {info.name}"
    declared = set(sections.get("CONSTANTS", []) + sections.get("CONSTANT", []))
    assert declared == info.constants, f"{path.name}: unbound constants {info.constants - declared}"


@pytest.mark.parametrize("path", [p for p in TLA_FILES if not p.stem.startswith("MC")], ids=lambda p: p.name)
def test_vars_and_actions_assign_every_variable(path: Path) -> None:
    info = ModuleInfo(path)
    if not info.variables:
        pytest.skip("no variables")
    assigned = Assigned(info)
    assert assigned.names_in(info.definitions["vars"]) == set(info.variables)
    everything = frozenset(info.variables)
    for alt in assigned.alts(info.definitions["Next"]):
        assert alt == everything, f"{info.name}: an alternative of Next leaves {sorted(everything - alt)} unassigned"


def test_action_check_catches_a_missing_variable() -> None:
    """The action analysis itself: it flags an action that forgets a variable."""
    info = ModuleInfo(SPECS / "VirtualLog.tla")
    text = "---- MODULE Bad ----\nVARIABLES x, y\nA == x' = 1\nB == IF x = 1 THEN x' = 2 /\\ y' = 1 ELSE UNCHANGED x\nNext == A \\/ B\n====\n"
    tree = tla.parse(text)
    info.variables = ["x", "y"]
    info.definitions = {u.name: u.definiens for u in tree.units if type(u).__name__ == "OperatorDefinition"}
    alts = Assigned(info).alts(info.definitions["Next"])
    assert frozenset({"x"}) in alts and frozenset({"x", "y"}) in alts
