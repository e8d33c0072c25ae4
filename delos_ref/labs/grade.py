"""Grading one lab: table tests, a seeded sweep with all faults, linearizability, trace checks.

Run as ``python -m delos_ref.labs.grade NAME --seeds N`` with ``DELOS_LAB=WORK`` set (``delos-ref
lab check`` does this), so that the lab's module is the student's (:mod:`.overlay`). It
prints one JSON object on stdout::

    {"lab", "work", "workload", "module_file",
     "parts": [{"part", "passed", "total", "first_failure", "replay", "seed"?, "note"?}]}

The parts, in order:

1. **tables**: the lab's table tests (:mod:`.tables`), small and pure: the rule, case by case;
2. **sweep**: ``N`` seeded simulations of the lab's workload with every fault it supports; a
   seed passes when it raises nothing and its checks (other than linearizability) hold;
3. **linearizability**: the same runs' histories, through the workload's checker;
4. **trace**: the same runs' traces, replayed against the Python transcription of each TLA+
   spec that covers the rule (:mod:`delos_ref.tracecheck`); a lab no spec covers has none;
5. **tlc** (only with ``--tlc``): TLC itself replays seed 0's trace against each
   ``specs/Trace<Spec>.tla`` (slow: a JVM per spec; needs ``TLA2TOOLS_JAR``).

A seed's three verdicts come from one run; a run that raised fails all three (it left no
complete history or trace). The first failing seed of a part comes with the command that
replays it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Iterator

from delos_ref.labs.catalog import BY_NAME, LINEARIZABILITY_PREFIXES, Lab
from delos_ref.labs.overlay import ENV


#: Wall-clock bounds: a table case, one simulated run. A student's loop that never ends fails
#: the case (or the seed) instead of holding the whole check up.
CASE_BOUND_S = 20
RUN_BOUND_S = 180


class Overtime(Exception):
    """Raised by the SIGALRM handler when a case or a run exceeds its bound."""


@contextlib.contextmanager
def _bounded(seconds: int) -> Iterator[None]:
    """Raise :class:`Overtime` in this (the main) thread after ``seconds`` of wall time."""

    def expire(signum: int, frame: Any) -> None:
        raise Overtime(f"still running after {seconds} s (a loop that never ends?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _overtime(e: BaseException) -> Overtime | None:
    """The Overtime behind ``e`` (trio may wrap an exception raised inside its loop)."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, Overtime):
            return seen
        if isinstance(seen, BaseExceptionGroup) and seen.exceptions:
            seen = seen.exceptions[0]
            continue
        seen = seen.__cause__ or seen.__context__
    return None


def _where(e: BaseException) -> str:
    """``file:line`` of the innermost frame of ``e`` in the student's WORK (else the last)."""
    frames = traceback.extract_tb(e.__traceback__)
    work = os.environ.get(ENV, "")
    mine = [f for f in frames if work and f.filename.startswith(str(Path(work).resolve()))]
    f = (mine or frames)[-1] if frames else None
    return f" (at {f.filename}:{f.lineno})" if f else ""


def _describe(e: BaseException) -> str:
    late = _overtime(e)
    if late is not None:
        return str(late)
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]  # a task's exception, wrapped by its nursery: say what it was
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}{_where(e)}" if text else f"{type(e).__name__}{_where(e)}"


def grade_tables(lab: Lab) -> dict[str, Any]:
    from delos_ref.labs.tables import TABLES

    cases = TABLES[lab.name]
    assert cases, f"lab {lab.name}: no table tests (a part that cannot fail is no grade)"
    passed, first = 0, None
    for case in cases:
        try:
            with _bounded(CASE_BOUND_S):
                case()
            passed += 1
        except Exception as e:  # a student's exception of any kind is a failed case
            if first is None:
                rule = " ".join((case.__doc__ or "").split())
                first = f"{case.__name__}: {_describe(e)}\n  the rule: {rule}"
    return {"part": "tables", "passed": passed, "total": len(cases), "first_failure": first, "replay": None}


def _replay(lab: Lab, seed: int, what: str) -> str:
    work = os.environ.get(ENV, "WORK")
    if what == "trace":
        return f"DELOS_LAB={work} delos-ref trace check --workload {lab.workload} --seeds 1 --seed {seed}"
    return f"DELOS_LAB={work} delos-ref sim --workload {lab.workload} --seeds 1 --seed {seed}"


def grade_runs(lab: Lab, seeds: int, *, tlc: bool = False) -> list[dict[str, Any]]:
    """The sweep, linearizability and trace parts, from one run per seed; with ``tlc``, a
    fifth part: TLC replays the first seed's trace against each spec (specs/Trace*.tla)."""
    from delos_ref.sim.harness import RunConfig, get_workload, parse_faults, run_seed
    from delos_ref.tracecheck.base import TraceViolation
    from delos_ref.tracecheck.run import check_events

    workload = get_workload(lab.workload)
    faults = parse_faults(workload, None)
    parts = {p: {"part": p, "passed": 0, "total": seeds, "first_failure": None, "replay": None} for p in ("sweep", "linearizability", "trace")}

    def fail(part: str, seed: int, why: str) -> None:
        p = parts[part]
        if p["first_failure"] is None:
            p["first_failure"], p["replay"], p["seed"] = f"seed {seed}: {why}", _replay(lab, seed, part), seed

    first_trace: list[dict[str, Any]] | None = None
    for seed in range(seeds):
        try:
            with _bounded(RUN_BOUND_S):
                result = run_seed(workload, RunConfig(seed, faults, None, keep_trace=bool(lab.specs)))
        except Exception as e:  # the student's code raised out of the simulation
            late = _overtime(e)
            why = f"is {late}" if late else f"raised {_describe(e)}"
            for part in parts:
                fail(part, seed, f"the run {why}")
            continue
        lin = [v for v in result.violations if v.startswith(LINEARIZABILITY_PREFIXES)]
        other = [v for v in result.violations if v not in lin]
        for part, found in (("sweep", other), ("linearizability", lin)):
            if found:
                fail(part, seed, found[0])
            else:
                parts[part]["passed"] += 1
        if seed == 0:
            first_trace = result.trace or []
        rejected = None
        for spec in lab.specs:
            try:
                check_events(spec, result.trace or [])
            except TraceViolation as v:
                rejected = f"{spec} rejects the trace: {' '.join(str(v).split())}"
                break
        if rejected:
            fail("trace", seed, rejected)
        else:
            parts["trace"]["passed"] += 1
    if not lab.specs:
        parts["trace"].update(total=0, passed=0, first_failure=None, note="no TLA+ spec covers this rule")
    return list(parts.values()) + ([grade_tlc(lab, first_trace)] if tlc else [])


def grade_tlc(lab: Lab, trace: list[dict[str, Any]] | None) -> dict[str, Any]:
    """TLC on seed 0's trace, one check per spec (needs TLA2TOOLS_JAR, see specs/README.md)."""
    from delos_ref.tracecheck.tla import validate_with_tlc

    part: dict[str, Any] = {"part": "tlc", "passed": 0, "total": len(lab.specs), "first_failure": None, "replay": None}
    if not lab.specs:
        part["note"] = "no TLA+ spec covers this rule"
        return part
    for spec in lab.specs:
        if trace is None:
            verdict_ok, why = False, "seed 0 raised: no trace to validate"
        else:
            verdict = validate_with_tlc(spec, trace)
            verdict_ok, why = verdict.accepted, " ".join(verdict.report.split())
        if verdict_ok:
            part["passed"] += 1
        elif part["first_failure"] is None:
            part["first_failure"], part["replay"] = f"seed 0, Trace{spec}.tla: {why}", _replay(lab, 0, "trace")
    return part


def grade(name: str, seeds: int, *, tlc: bool = False) -> dict[str, Any]:
    lab = BY_NAME[name]
    module = __import__(lab.module, fromlist=["_"])
    file = str(Path(module.__file__ or "").resolve())
    work = os.environ.get(ENV)
    assert work and file.startswith(str(Path(work).resolve())), f"the overlay did not load {lab.module} from {work}: {file}"
    return {"lab": name, "work": work, "workload": lab.workload, "module_file": file, "parts": [grade_tables(lab)] + grade_runs(lab, seeds, tlc=tlc)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", choices=sorted(BY_NAME))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--tlc", action="store_true")
    args = parser.parse_args()
    sys.stdout.write(json.dumps(grade(args.lab, args.seeds, tlc=args.tlc)) + "\n")


if __name__ == "__main__":
    main()
