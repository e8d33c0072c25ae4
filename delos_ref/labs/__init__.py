"""Graded labs: write one protocol rule of delos-ref yourself, and have it graded.

Each lab (:mod:`delos_ref.labs.catalog`) removes one rule from the real code -- the acceptor's
phase 1b/2b, P2c, ``write_if``, the LogServer's seal, the sequencer's commit, ``check_tail``
with repair, ``reconfig_extend``, roll-forward, the database's sync -- and gives it back to
the student as a TODO:

* ``start`` writes the module holding the rule to ``WORK/<its path>``, with the rule's marked
  regions (:mod:`.regions`) replaced by the rule's statement and a ``raise``;
* the student writes the rule there; the *import overlay* (:mod:`.overlay`, ``DELOS_LAB=WORK``)
  makes that file run in place of the real module, in the simulator and in a local cluster
  (``delos-ref up --lab WORK``);
* ``check`` grades it in a child process under the overlay (:mod:`.grade`): table tests, a
  seeded sweep with every fault, linearizability, trace validation against the TLA+ spec;
* ``solution`` prints the project's own code for the rule.

The functions here are the library behind ``delos-ref lab`` (``cli/lab.py``); they raise
:class:`LabUsageError` for what the command line got wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from delos_ref.labs.catalog import BY_NAME, LABS, Lab
from delos_ref.labs.overlay import ENV
from delos_ref.labs.regions import skeleton, solution

__all__ = ["LABS", "LabUsageError", "lab", "start", "solution_of", "check"]

ROOT = Path(__file__).resolve().parent.parent.parent  # the project: paxos/, delos_ref/, ...


class LabUsageError(ValueError):
    """Bad usage (exit 2): an unknown lab, a missing WORK, a WORK file that does not compile."""


class LabStateError(RuntimeError):
    """The operation failed (exit 1): e.g. ``start`` over a file already started."""


def lab(name: str) -> Lab:
    if name not in BY_NAME:
        raise LabUsageError(f"unknown lab {name!r}; choose from: {', '.join(BY_NAME)}")
    return BY_NAME[name]


def _real_text(lb: Lab) -> str:
    return (ROOT / lb.path).read_text()


def start(name: str, work: Path, *, force: bool = False) -> Path:
    """Write ``lb``'s skeleton to ``work``; the path written. A file already in WORK (another
    lab of the same module) keeps its other regions: only this lab's are replaced."""
    lb = lab(name)
    target = work / lb.path
    base = _real_text(lb)
    if target.exists():
        current = target.read_text()
        if f"# TODO (lab {name}):" in current and not force:
            raise LabStateError(f"{target} already holds lab {name} (your work?); --force starts it afresh")
        if not force:
            base = current  # keep another lab's work in the same module
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(skeleton(base, name, list(lb.todos)))
    return target


def solution_of(name: str) -> list[str]:
    """The project's code for ``name``'s rule: one text per marked region."""
    lb = lab(name)
    return solution(_real_text(lb), name)


def _compile(path: Path) -> None:
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as e:
        raise LabUsageError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None


def check(name: str, work: Path, *, seeds: int | None = None, tlc: bool = False, timeout_s: float = 900) -> dict[str, Any]:
    """Grade ``work``'s version of lab ``name`` in a child process under the overlay; the
    grade (:mod:`delos_ref.labs.grade`). ``seeds``: the sweep's size (default: the lab's)."""
    lb = lab(name)
    seeds = lb.seeds if seeds is None else seeds
    if not work.is_dir():
        raise LabUsageError(f"no WORK directory {work}: run `delos-ref lab start {name} --dir {work}` first")
    file = work / lb.path
    if not file.is_file():
        raise LabUsageError(f"no {file}: run `delos-ref lab start {name} --dir {work}` first")
    _compile(file)
    if tlc:
        from delos_ref.tracecheck.tla import TLCUnavailable, tlc_command

        try:
            tlc_command()
        except TLCUnavailable as e:
            raise LabUsageError(f"--tlc: {e}") from None
    env = dict(os.environ, **{ENV: str(work.resolve())})
    cmd = [sys.executable, "-m", "delos_ref.labs.grade", name, "--seeds", str(seeds)] + (["--tlc"] if tlc else [])
    try:
        proc = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise LabStateError(f"the grading did not finish within {timeout_s:g} s (a loop that never ends in {file}?)") from None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabStateError(f"the grader stopped before a verdict: {last}")
    return json.loads(lines[-1])


def passed(grade: dict[str, Any]) -> bool:
    """A full pass: every case of every part."""
    return all(p["passed"] == p["total"] for p in grade["parts"])
