"""The docs test: every link of docs/paper-map.md resolves, every snippet of the docs runs.

**Links.** docs/paper-map.md names code in four machine-checkable forms, each in a code span:

* ``path/to/module.py::Name.attr`` -- a class, function, method or module-level name, found
  with ``ast`` in that file (no import), the same for a test: ``tests/test_x.py::test_y``;
* ``specs/Spec.tla#Name`` -- an operator (action, invariant, property) defined in that spec;
* ``bug:name`` -- a bug switch that some workload of ``delos-ref sim --list-bugs`` knows;
* ``dir/file`` -- a repository path (starting with a top-level folder of the repo) that exists.

Relative Markdown links (``[text](file.md)``) in docs/ and the README must name files that
exist. ``test_a_broken_link_of_each_form_is_reported`` feeds the checker a map with one broken
link of each form, so the check is shown to fail.

**Snippets.** Every fenced block of docs/**/*.md and README.md whose info string is ``sh``,
``bash`` or ``python`` runs, with ``.venv/bin`` first on ``PATH``. The blocks of one page run in
order in one temporary directory (a later block may read a file an earlier one wrote), which
holds links to the repository's ``.venv``, ``docs``, ``specs``, ``tests`` and ``pyproject.toml``. A shell block runs
under ``bash -e -o pipefail``. A directive in an HTML comment on the line just above the
fence changes that (these comments are invisible in rendered Markdown):

* ``<!-- docs-test: cluster -->``: a fresh 3-node cluster is started first with ``delos-ref up
  --detach`` in ``./.delos-ref`` (the default ``--dir``) on free ports, and stopped after
  (the test is marked ``cluster``);
  options of ``up`` may follow (``cluster --loglet bootstrap``); a ``cluster --netns`` block
  (namespaces: root only) is skipped, saying so, when the test does not run as root;
* ``<!-- docs-test: no-run: REASON -->``: the block does not run; the reason is required;
* ``<!-- docs-test: excerpt PATH -->`` above a ``python`` block: the block does not run; it is
  an excerpt of the file PATH (which a test runs), and must appear in it verbatim;
* ``<!-- docs-test: expect -->`` above a ``text`` block: each of its lines (but ``...``) is
  found, in order, in the output of the previous block that ran in the same file: quoted
  traces and histories stay real.

A shell command that is meant to fail says so in its trailing comment, ``# exit N: why``; the
test checks that it exits with N. Blocks tagged ``console`` or ``text`` are illustrations and
never run.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAPER_MAP = ROOT / "docs" / "paper-map.md"
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
TOP_DIRS = ("delos_ref", "paxos", "transports", "cli", "tests", "specs", "docs")

# --------------------------------------------------------------------------- links

CODE_SPAN = re.compile(r"`([^`\n]+)`")
PY_LINK = re.compile(r"^([\w./-]+\.py)::([\w.]+)$")
TLA_LINK = re.compile(r"^(specs/[\w./-]+\.tla)#(\w+)$")
BUG_LINK = re.compile(r"^bug:(\w+)$")
PATH_LINK = re.compile(r"^((?:%s)/[\w./-]*)$" % "|".join(TOP_DIRS))
MD_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


@functools.lru_cache(maxsize=None)
def _python_names(path: Path) -> frozenset[str]:
    """Every dotted name defined in a Python file: classes, functions, methods, assignments."""
    names: set[str] = set()

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(prefix + node.name)
                visit(node.body, prefix + node.name + ".")
            elif isinstance(node, ast.Assign):
                names.update(prefix + t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(prefix + node.target.id)

    visit(ast.parse(path.read_text()).body, "")
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def _tla_names(path: Path) -> frozenset[str]:
    """The operators a TLA+ module defines at the start of a line (``Name ==``, ``Name(x) ==``)."""
    found = re.findall(r"(?m)^\s*(\w+)\s*(?:\([^)]*\))?\s*==", path.read_text())
    return frozenset(found)


@functools.lru_cache(maxsize=None)
def known_bugs() -> frozenset[str]:
    """The bug switches of every simulator workload (what ``delos-ref sim --list-bugs`` prints)."""
    from delos_ref.sim.harness import load_workloads

    return frozenset(b for w in load_workloads().values() for b in w.bugs)


def check_link(text: str) -> str | None:
    """Why the link ``text`` does not resolve, or None when it does (or is not a link)."""
    if m := PY_LINK.match(text):
        path = ROOT / m[1]
        if not path.is_file():
            return f"{m[1]}: no such file"
        return None if m[2] in _python_names(path) else f"{m[1]} defines no {m[2]}"
    if m := TLA_LINK.match(text):
        path = ROOT / m[1]
        if not path.is_file():
            return f"{m[1]}: no such spec"
        return None if m[2] in _tla_names(path) else f"{m[1]} defines no operator {m[2]}"
    if m := BUG_LINK.match(text):
        return None if m[1] in known_bugs() else f"no workload has the bug switch {m[1]}"
    if m := PATH_LINK.match(text):
        return None if (ROOT / m[1]).exists() else f"{m[1]}: no such path"
    return None


def broken_links(markdown: str) -> list[str]:
    """Every code-span link of ``markdown`` that does not resolve, with the reason."""
    return [f"`{span}`: {why}" for span in CODE_SPAN.findall(markdown) if (why := check_link(span))]


def links_in(markdown: str) -> list[str]:
    return [s for s in CODE_SPAN.findall(markdown) if PY_LINK.match(s) or TLA_LINK.match(s) or BUG_LINK.match(s)]


def test_every_paper_map_link_resolves():
    text = PAPER_MAP.read_text()
    assert len(links_in(text)) > 100, "the paper map names code, tests, specs and bugs"
    bad = broken_links(text)
    assert not bad, "broken links in docs/paper-map.md:\n" + "\n".join(bad)


def test_a_broken_link_of_each_form_is_reported():
    broken = [
        "`delos_ref/virtuallog/client.py::VirtualLog.no_such_method`",
        "`delos_ref/no_such_module.py::VirtualLog`",
        "`tests/test_virtuallog.py::test_that_does_not_exist`",
        "`specs/VirtualLog.tla#NoSuchInvariant`",
        "`specs/NoSuchSpec.tla#TypeOK`",
        "`bug:no_such_bug`",
        "`delos_ref/no_such_dir/`",
    ]
    good = [
        "`delos_ref/virtuallog/client.py::VirtualLog.append`",
        "`tests/test_virtuallog.py::test_bootstrap_installs_version_one_once`",
        "`specs/VirtualLog.tla#NoDuplicates`",
        "`bug:reappend_unknown`",
        "`delos_ref/loglet/`",
    ]
    report = broken_links(" ".join(broken + good))
    assert len(report) == len(broken), report
    assert all(b in r for b, r in zip(broken, report)), report


@pytest.mark.parametrize("doc", DOC_FILES, ids=[str(p.relative_to(ROOT)) for p in DOC_FILES])
def test_relative_markdown_links_name_files_that_exist(doc):
    missing = []
    for target in MD_LINK.findall(doc.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor of the same page
        path = target.split("#", 1)[0]
        if not (doc.parent / path).exists():
            missing.append(target)
    assert missing == [], f"{doc.relative_to(ROOT)} links to missing files"


CONCEPTS = (
    "Shared log", "Loglet", "Segment", "Chain", "Seal", "Sealed bit", "Tail", "Known tail",
    "Sequencer", "LogServer", "MetaStore", "Versioned register", "Reconfiguration",
    "Roll-forward", "Hot swap", "Zombie entry", "Stripe", "Cold segment",
)


def test_concepts_defines_each_term_once():
    """docs/concepts.md: every term of issue 21's list has exactly one definition (a
    paragraph that opens with the term in bold)."""
    text = (ROOT / "docs" / "concepts.md").read_text()
    for term in CONCEPTS:
        assert len(re.findall(rf"(?m)^\*\*{re.escape(term)}\.\*\*", text)) == 1, term


# ------------------------------------------------------------------------ snippets

FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
EXPECTED_EXIT = re.compile(r"#\s*exit (\d+):")
RUN_LANGS = {"sh": "sh", "bash": "sh", "python": "python"}


@dataclasses.dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str  # the info string
    code: str
    directive: str  # "" or the text of the docs-test comment

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGS and not self.directive.startswith(("no-run", "excerpt"))


def parse_blocks(doc: Path) -> list[Block]:
    lines = doc.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m[1], m[2], i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        above = lines[start - 1] if start > 0 else ""
        d = DIRECTIVE.match(above)
        blocks.append(Block(doc, start + 1, lang, "\n".join(body) + "\n", d[1] if d else ""))
        i += 1
    return blocks


ALL_BLOCKS = [b for doc in DOC_FILES for b in parse_blocks(doc)]
RUN_BLOCKS = [b for b in ALL_BLOCKS if b.runs]


def test_every_no_run_block_gives_its_reason_and_every_directive_is_known():
    for b in ALL_BLOCKS:
        if b.directive.startswith("no-run"):
            assert re.match(r"no-run:\s*\S", b.directive), f"{b.id}: no-run needs a reason"
        else:
            assert b.directive in ("", "expect") or b.directive.startswith("excerpt ") or re.match(r"cluster( --[\w-]+( [\w.]+)?)*$", b.directive), f"{b.id}: unknown directive {b.directive!r}"
        if b.directive == "expect":
            assert b.lang == "text", f"{b.id}: expect goes above a text block"


def shell_script(code: str) -> str:
    """``code`` with each ``cmd  # exit N: why`` line turned into a check that cmd exits N."""
    out = []
    for line in code.splitlines():
        m = EXPECTED_EXIT.search(line)
        if m and not line.lstrip().startswith("#"):
            cmd = line[: m.start()].rstrip()
            want = int(m[1])
            line = (
                f"if {cmd}; then __rc=0; else __rc=$?; fi; "
                f"[ $__rc -eq {want} ] || {{ echo 'docs-test: expected exit {want}, got '$__rc': {cmd}' >&2; exit 1; }}"
            )
        out.append(line)
    return "\n".join(out) + "\n"


def workdir(tmp_path: Path) -> Path:
    for name in (".venv", "docs", "specs", "tests", "pyproject.toml"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def run_block(block: Block, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}", PYTHONPATH=str(ROOT))
    env.pop("COLUMNS", None)
    if RUN_LANGS[block.lang] == "python":
        cmd = [sys.executable, "-c", block.code]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", shell_script(block.code)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def previous_output(block: Block) -> str:
    """The output of the block that runs before ``block`` in its file (for ``expect``)."""
    before = [b for b in ALL_BLOCKS if b.doc == block.doc and b.line < block.line and b.runs]
    assert before, f"{block.id}: expect needs a block that runs above it"
    return before[-1].id


_OUTPUTS: dict[str, str] = {}
_DIRS: dict[Path, Path] = {}
_RAN: set[str] = set()


def doc_dir(doc: Path, factory: pytest.TempPathFactory) -> Path:
    """One working directory per page: its blocks run in order in it, as a reader would run
    them in one shell (a later block may use a file an earlier one wrote)."""
    if doc not in _DIRS:
        _DIRS[doc] = workdir(factory.mktemp(doc.stem))
    return _DIRS[doc]


def run_in_order(block: Block, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``block`` in ``cwd``, after any earlier block of its page that has not run there."""
    for earlier in RUN_BLOCKS:
        if earlier.doc == block.doc and earlier.line < block.line and earlier.id not in _RAN and not earlier.directive.startswith("cluster"):
            run_one(earlier, cwd)
    return run_one(block, cwd)


def run_one(block: Block, cwd: Path) -> subprocess.CompletedProcess:
    _RAN.add(block.id)
    if not block.directive.startswith("cluster"):
        proc = run_block(block, cwd)
    else:
        from cluster_fixture import cli, down_here, free_base_port

        shutil.rmtree(cwd / ".delos-ref", ignore_errors=True)
        base = str(free_base_port(3, "tcp"))
        extra = block.directive.split()[1:]  # "cluster --loglet bootstrap": options of up
        cli("up", "--detach", "--dir", str(cwd / ".delos-ref"), "--base-port", base, *extra, check=True, timeout=120)
        try:
            proc = run_block(block, cwd)
        finally:
            down_here(cwd / ".delos-ref")
    _OUTPUTS[block.id] = proc.stdout + proc.stderr
    return proc


def _param(block: Block):
    marks = [pytest.mark.cluster] if block.directive.startswith("cluster") else []
    return pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", [_param(b) for b in RUN_BLOCKS])
def test_snippet_runs(block, tmp_path_factory):
    if "--netns" in block.directive.split() and os.geteuid() != 0:
        pytest.skip("an `up --netns` cluster needs root (CI runs as root)")
    proc = run_in_order(block, doc_dir(block.doc, tmp_path_factory))
    assert proc.returncode == 0, f"{block.id} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


EXPECT_BLOCKS = [b for b in ALL_BLOCKS if b.directive == "expect"]


@pytest.mark.parametrize("block", EXPECT_BLOCKS, ids=[b.id for b in EXPECT_BLOCKS])
def test_quoted_output_is_real(block, tmp_path_factory):
    source = previous_output(block)
    if source not in _OUTPUTS:  # run alone (-k): run the block it quotes
        run_in_order(next(b for b in RUN_BLOCKS if b.id == source), doc_dir(block.doc, tmp_path_factory))
    output = _OUTPUTS[source]
    lines = output.splitlines()
    at = 0
    for want in block.code.splitlines():
        want = want.strip()
        if not want or want == "...":
            continue
        while at < len(lines) and want not in lines[at]:
            at += 1
        assert at < len(lines), f"{block.id}: {want!r} is not in the output of {source} (in order)"
        at += 1


EXCERPT_BLOCKS = [b for b in ALL_BLOCKS if b.directive.startswith("excerpt ")]


@pytest.mark.parametrize("block", EXCERPT_BLOCKS, ids=[b.id for b in EXCERPT_BLOCKS])
def test_excerpts_are_verbatim_from_their_file(block):
    source = ROOT / block.directive.split(None, 1)[1]
    assert source.is_file(), f"{block.id}: no file {source}"
    assert block.code.strip("\n") in source.read_text(), f"{block.id} is not verbatim in {source.relative_to(ROOT)}"


def test_shell_script_checks_expected_exit_codes(tmp_path):
    ok = Block(ROOT / "README.md", 1, "sh", "false  # exit 1: it fails\necho done\n", "")
    assert run_block(ok, tmp_path).returncode == 0
    wrong = Block(ROOT / "README.md", 1, "sh", "true  # exit 1: it should have failed\n", "")
    proc = run_block(wrong, tmp_path)
    assert proc.returncode == 1 and "expected exit 1, got 0" in proc.stderr
    failing = Block(ROOT / "README.md", 1, "sh", "false\necho unreachable\n", "")
    assert run_block(failing, tmp_path).returncode != 0


# ------------------------------------------------------------------ walkthroughs' charts

FIGURES_SCRIPT = ROOT / "docs" / "walkthroughs" / "figures.py"


def _figure_names() -> list[str]:
    """The walkthroughs' charts that figures.py draws (read from its FIGURES, without running it)."""
    tree = ast.parse(FIGURES_SCRIPT.read_text())
    names = [call.args[0].value for call in ast.walk(tree) if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Figure" and call.args]
    assert names, "no Figure(...) in docs/walkthroughs/figures.py"
    return names


@pytest.mark.parametrize("name", _figure_names())
def test_each_walkthrough_shows_its_chart(name):
    page = ROOT / "docs" / "walkthroughs" / f"{name}.md"
    assert page.is_file(), f"figures.py draws a chart for {name}, but there is no {page.relative_to(ROOT)}"
    assert f"](../figures/walkthrough-{name}.svg)" in page.read_text(), f"{page.relative_to(ROOT)} does not show walkthrough-{name}.svg"
    assert (ROOT / "docs" / "figures" / f"walkthrough-{name}.svg").is_file()


def test_the_walkthroughs_charts_are_what_their_runs_draw_now():
    """figures.py --check redraws every chart from its run and compares it with the file."""
    proc = subprocess.run([sys.executable, str(FIGURES_SCRIPT), str(ROOT / "docs" / "figures"), "--check"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------ minimized counterexamples' charts

MINIMIZED_SCRIPT = ROOT / "docs" / "minimized_charts.py"


def test_every_minimized_counterexample_has_its_chart_and_each_still_fails():
    """Each replay command of docs/minimize.md (one per bug switch of every workload) has its
    chart in docs/figures/minimized/, and minimized_charts.py --check reruns each schedule
    (asserting it still fails) and finds the same chart it drew."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("minimized_charts", MINIMIZED_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    listed = mod.replays((ROOT / "docs" / "minimize.md").read_text())
    from delos_ref.sim import harness

    switches = {(w.name, b) for w in harness.load_workloads().values() for b in w.bugs}
    assert {(w, b) for w, b, _, _ in listed} == switches, "docs/minimize.md must list a minimized replay for every bug switch"
    for workload, bug, _, _ in listed:
        assert (ROOT / "docs" / "figures" / "minimized" / f"{workload}-{bug}.svg").is_file()
    proc = subprocess.run([sys.executable, str(MINIMIZED_SCRIPT), str(ROOT / "docs" / "figures" / "minimized"), "--check"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------ the course's answers

COURSE = ROOT / "docs" / "course.md"


def _course_exercises() -> list[tuple[str, str, list[str]]]:
    """(bug-N, the sim command, the violations its answer quotes) for each "find the bug"."""
    text = COURSE.read_text()
    found = []
    for m in re.finditer(r"^delos-ref (sim [^>\n]*?) > (bug-\d+)\.txt", text, re.M):
        answer = text[m.end():].split("<summary>Answer</summary>", 1)[1].split("</details>", 1)[0]
        sentence = _first_sentence(answer[answer.index("The violation"):])
        found.append((m.group(2), m.group(1), [" ".join(q.split()) for q in re.findall(r"`([^`]+)`", sentence)]))
    return found


def _first_sentence(text: str) -> str:
    """Up to the first full stop outside a code span."""
    inside = False
    for i, ch in enumerate(text):
        inside ^= ch == "`"
        if ch == "." and not inside and text[i + 1 : i + 2].isspace():
            return text[:i]
    return text


@pytest.mark.parametrize("name, command, quotes", _course_exercises(), ids=[e[0] for e in _course_exercises()])
def test_the_course_answers_quote_what_the_simulator_reports(name, command, quotes, tmp_path):
    """Each answer of course.md's "find the bug" quotes violations; the run must report them,
    word for word (they drifted once, unnoticed, when schedules changed)."""
    assert quotes, f"{name}: its answer quotes no violation"
    proc = subprocess.run([sys.executable, "-m", "cli.main", *shlex.split(command)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1, (name, proc.returncode, proc.stderr[-500:])
    said = " ".join(proc.stdout.split())
    for quote in quotes:
        assert quote in said, f"{name}: the answer quotes {quote!r}, which `delos-ref {command}` does not report"
