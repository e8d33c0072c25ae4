"""STYLE.md habit 2: protocol cores are pure. They never import trio, time, random, socket,
lmdb, cbor2 or rich: time and randomness come from the runtime and a seed, storage through
effects. One scan for every pure module of the project; a new core is added to PURE."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"trio", "time", "random", "socket", "lmdb", "cbor2", "rich"}
# The checker is a library over recorded histories: no I/O of any kind either.
STRICTER = {"delos_ref/checker": FORBIDDEN | {"os", "io"}}
PURE = [
    "delos_ref/effects.py",
    "delos_ref/ping.py",
    *[f"paxos/{p.name}" for p in sorted((ROOT / "paxos").glob("*.py")) if p.name != "register.py"],  # register.py: the async driver
    "delos_ref/loglet/api.py",
    "delos_ref/loglet/cold_format.py",
    "delos_ref/loglet/native/messages.py",
    "delos_ref/loglet/native/storage.py",
    "delos_ref/loglet/native/logserver.py",
    "delos_ref/loglet/native/sequencer.py",
    "delos_ref/virtuallog/chain.py",
    "delos_ref/db/table.py",
    *[f"delos_ref/checker/{p.name}" for p in sorted((ROOT / "delos_ref/checker").glob("*.py"))],
]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_clock_or_randomness(module):
    forbidden = next((f for prefix, f in STRICTER.items() if module.startswith(prefix)), FORBIDDEN)
    bad = imported_roots(ROOT / module) & forbidden
    assert not bad, f"{module} imports {sorted(bad)}"


def test_the_scan_sees_an_impure_import():
    """The check has teeth: the runtime, which drives cores with trio, is flagged."""
    assert "trio" in imported_roots(ROOT / "delos_ref/runtime.py")
