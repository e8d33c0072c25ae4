"""Run TLC, the TLA+ model checker, on the specs under ``specs/`` (issue 16).

Three things, each a plain function that returns data (printing is for the callers:
``specs/tools/run_tlc.py`` behind ``make tlc`` / ``make tlc-mutants``, and the tests):

* :func:`find_tools` finds TLC: the jars named by ``TLA2TOOLS_JAR`` (and
  ``TLA_COMMUNITY_JAR``, the CommunityModules, for ``Json``), else a ``tlc`` command on
  ``PATH``. Without either it raises :class:`ToolsMissing`, whose message says where to get
  them.
* :func:`sany` parses a module with SANY, TLA+'s own front end (TLC runs it first too).
* :func:`run_model` runs TLC on one model (``MCFoo.tla`` + ``MCFoo.cfg``) in a copy of the
  specs in a temporary directory -- TLC writes its ``states/`` and ``*_TTrace_*`` files next
  to the spec, so the copy keeps ``specs/`` clean -- and reads TLC's report into a
  :class:`TlcResult`: the verdict, states, depth, time and, for a violation, the invariant
  and the length of the counterexample.

Routine models are every ``specs/MC*.cfg`` except ``MC*Deep.cfg`` (:func:`routine_models`):
each completes in about a minute on two cores. The Deep ones are larger and run by hand.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SPECS = Path(__file__).resolve().parent.parent / "specs"

HOW_TO_GET_TLC = (
    "TLC not found: set TLA2TOOLS_JAR to tla2tools.jar (https://github.com/tlaplus/tlaplus/releases) "
    "and TLA_COMMUNITY_JAR to CommunityModules-deps.jar (https://github.com/tlaplus/CommunityModules/releases), "
    "or put a `tlc` command on PATH; TLC needs java 11 or newer"
)


class ToolsMissing(Exception):
    """No java, or no TLC jar / ``tlc`` command: the message says how to get them."""


@dataclass(frozen=True)
class Tools:
    """How to start TLC (and SANY, when the jar is known)."""

    tlc: tuple[str, ...]  # the command line up to TLC's own options
    sany: tuple[str, ...] | None  # None: only a `tlc` command, no jar for SANY

    @property
    def has_sany(self) -> bool:
        return self.sany is not None


def find_tools(env: dict[str, str] | None = None) -> Tools:
    """TLC from ``TLA2TOOLS_JAR`` (+ ``TLA_COMMUNITY_JAR``), else ``tlc`` on PATH."""
    env = dict(os.environ) if env is None else env
    jar = env.get("TLA2TOOLS_JAR", "")
    if jar:
        java = shutil.which("java", path=env.get("PATH"))
        if java is None:
            raise ToolsMissing(f"TLA2TOOLS_JAR is set but java is not on PATH; {HOW_TO_GET_TLC}")
        if not Path(jar).is_file():
            raise ToolsMissing(f"TLA2TOOLS_JAR={jar} is not a file; {HOW_TO_GET_TLC}")
        community = env.get("TLA_COMMUNITY_JAR", "")
        if community and not Path(community).is_file():
            raise ToolsMissing(f"TLA_COMMUNITY_JAR={community} is not a file; {HOW_TO_GET_TLC}")
        classpath = os.pathsep.join(p for p in (jar, community) if p)
        return Tools(tlc=(java, "-XX:+UseParallelGC", "-cp", classpath, "tlc2.TLC"), sany=(java, "-cp", classpath, "tla2sany.SANY"))
    tlc = shutil.which("tlc", path=env.get("PATH"))
    if tlc is None:
        raise ToolsMissing(HOW_TO_GET_TLC)
    return Tools(tlc=(tlc,), sany=None)


# ------------------------------------------------------------------------------- SANY


@dataclass(frozen=True)
class SanyResult:
    ok: bool
    message: str  # SANY's complaint (empty when the module parses)


def sany(tools: Tools, path: Path) -> SanyResult:
    """Parse and check ``path`` (and the modules it EXTENDS from its directory) with SANY."""
    assert tools.sany is not None, "SANY needs TLA2TOOLS_JAR"
    proc = subprocess.run([*tools.sany, path.name], cwd=path.parent, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    failed = proc.returncode != 0 or "*** Errors" in out or "*** Parse Error" in out or "Fatal errors" in out
    return SanyResult(ok=not failed, message=_sany_errors(out) if failed else "")


def _sany_errors(out: str) -> str:
    """SANY's error lines, without the progress chatter."""
    keep = [line for line in out.splitlines() if line.strip() and not line.startswith(("Parsing file", "Semantic processing", "Linting of", "****** SANY"))]
    return "\n".join(keep[:40])


# -------------------------------------------------------------------------------- TLC

OK = "ok"  # "Model checking completed. No error has been found."
VIOLATED = "violated"  # an invariant is violated
PROPERTY = "property"  # a temporal property is violated
DEADLOCK = "deadlock"
TIMEOUT = "timeout"  # killed after the time limit
ERROR = "error"  # TLC could not check the model (parse error, bad cfg, crash)


@dataclass
class TlcResult:
    model: str
    verdict: str
    seconds: float
    generated: int | None = None  # states generated
    distinct: int | None = None  # distinct states found
    depth: int | None = None  # of the complete state graph (OK only)
    invariant: str | None = None  # VIOLATED: its name
    trace_length: int | None = None  # states in the counterexample
    message: str = ""  # ERROR / TIMEOUT: what went wrong, from TLC's output

    @property
    def ok(self) -> bool:
        return self.verdict == OK


_COMPLETED = "Model checking completed. No error has been found."
_STATES = re.compile(r"^([\d,]+) states generated(?: \([^)]*\))?, ([\d,]+) distinct states found, ([\d,]+) states left on queue\.", re.M)
_PROGRESS = re.compile(r"^Progress\(\d+\) at .*?: ([\d,]+) states generated \([^)]*\), ([\d,]+) distinct states found", re.M)
_DEPTH = re.compile(r"^The depth of the complete state graph search is (\d+)\.", re.M)
_INVARIANT = re.compile(r"^Error: Invariant (\w+) is violated", re.M)
_STATE = re.compile(r"^State (\d+): ", re.M)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def parse_output(model: str, out: str, seconds: float, timed_out: bool = False) -> TlcResult:
    """Read TLC's report (its stdout) into a :class:`TlcResult`."""
    result = TlcResult(model=model, verdict=ERROR, seconds=seconds)
    counts = _STATES.findall(out) or [(g, d, "") for g, d in _PROGRESS.findall(out)]
    if counts:
        result.generated, result.distinct = _int(counts[-1][0]), _int(counts[-1][1])
    steps = [int(n) for n in _STATE.findall(out)]
    if timed_out:
        result.verdict, result.message = TIMEOUT, f"did not finish in {seconds:.0f} s"
    elif m := _INVARIANT.search(out):
        result.verdict, result.invariant, result.trace_length = VIOLATED, m.group(1), max(steps, default=None)
    elif "Error: Deadlock reached." in out:
        result.verdict, result.trace_length = DEADLOCK, max(steps, default=None)
    elif "Error: Temporal properties were violated." in out:
        result.verdict, result.trace_length = PROPERTY, max(steps, default=None)
    elif _COMPLETED in out:
        result.verdict = OK
        if m := _DEPTH.search(out):
            result.depth = int(m.group(1))
    else:
        errors = [line for line in out.splitlines() if "Error" in line or "error" in line or "***" in line]
        result.message = "\n".join(errors[:20]) or out.strip()[-2000:]
    return result


def routine_models(specs: Path = SPECS) -> list[str]:
    """The models the default suite and ``make tlc`` run: MC*.cfg but not MC*Deep.cfg."""
    return sorted(p.stem for p in specs.glob("MC*.cfg") if not p.stem.endswith("Deep"))


def run_model(
    tools: Tools,
    model: str,
    *,
    specs: Path = SPECS,
    workers: int | str = 2,
    timeout_s: float = 600.0,
) -> TlcResult:
    """Run TLC on ``specs/<model>.tla`` with ``<model>.cfg``, in a temporary copy of ``specs``
    (deleted afterwards, TLC's ``-metadir`` with it). Each cfg says CHECK_DEADLOCK itself:
    the bounded models stop when their bounds run out, which is no protocol deadlock."""
    with tempfile.TemporaryDirectory(prefix="delos-tlc-") as tmp:
        work = Path(tmp) / "specs"
        shutil.copytree(specs, work, ignore=shutil.ignore_patterns("*.py", "__pycache__", "tools", "states"))
        cmd = [*tools.tlc, "-workers", str(workers), "-metadir", str(Path(tmp) / "meta"), "-config", f"{model}.cfg", f"{model}.tla"]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = proc.communicate(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            timed_out = True
        result = parse_output(model, out, time.monotonic() - start, timed_out)
        if result.ok and proc.returncode != 0:  # the report said "no error", the exit status did not
            result.verdict, result.message = ERROR, f"TLC exited with status {proc.returncode}"
        return result


# ---------------------------------------------------------------------------- mutants


@dataclass(frozen=True)
class Mutant:
    """A deliberate bug in one spec: each ``(old, new)`` of ``edits`` applied to a copy of ``spec``.

    ``rule`` is the protocol rule the mutant breaks; ``model`` the routine model TLC checks
    it on; ``expect`` the invariants that may report it (TLC prints the first it finds).
    Each ``old`` must occur exactly once in the spec: a replacement that no longer matches
    fails loudly, so a mutant never silently rots into the unchanged spec.
    """

    name: str
    spec: str
    model: str
    rule: str
    edits: tuple[tuple[str, str], ...]
    expect: tuple[str, ...]


class MutantRotten(Exception):
    """A replaced text of the mutant is not exactly once in its spec."""


def apply_mutant(m: Mutant, specs: Path) -> None:
    """Apply ``m`` to the copy of the specs in ``specs`` (never to the repository's)."""
    path = specs / m.spec
    text = path.read_text(encoding="utf-8")
    for old, new in m.edits:
        found = text.count(old)
        if found != 1:
            raise MutantRotten(f"mutant {m.name}: {m.spec} holds its replaced text {found} times, once expected: {old!r}")
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


@dataclass
class MutantOutcome:
    mutant: Mutant
    result: TlcResult

    @property
    def caught(self) -> bool:
        """TLC found a violation of one of the invariants the mutant is meant to break."""
        return self.result.verdict == VIOLATED and self.result.invariant in self.mutant.expect

    @property
    def verdict(self) -> str:
        r = self.result
        if self.caught:
            return "caught"
        if r.verdict == VIOLATED:
            return f"SURVIVED? {r.invariant} violated, expected {'/'.join(self.mutant.expect)}"
        return f"SURVIVED ({r.verdict}{': ' + r.message if r.message else ''})"


def load_mutants(specs: Path = SPECS) -> list[Mutant]:
    """The table in ``specs/mutants.py`` (its ``MUTANTS`` list)."""
    import runpy

    table = runpy.run_path(str(specs / "mutants.py"))["MUTANTS"]
    names = [m.name for m in table]
    assert len(names) == len(set(names)), "mutant names are unique"
    return table


def run_mutant(tools: Tools, m: Mutant, *, specs: Path = SPECS, workers: int | str = 2, timeout_s: float = 600.0) -> MutantOutcome:
    """Apply ``m`` to a temporary copy of the specs and run TLC on its model there."""
    with tempfile.TemporaryDirectory(prefix="delos-mutant-") as tmp:
        work = Path(tmp) / "specs"
        shutil.copytree(specs, work, ignore=shutil.ignore_patterns("*.py", "__pycache__", "tools", "states"))
        apply_mutant(m, work)
        return MutantOutcome(m, run_model(tools, m.model, specs=work, workers=workers, timeout_s=timeout_s))
