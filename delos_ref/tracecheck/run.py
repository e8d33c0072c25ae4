"""Running the checkers: on a list of events, on trace files, on seeded simulations."""

from __future__ import annotations

import time
from typing import Any, Callable

from delos_ref.tracecheck.base import Checker, TraceViolation
from delos_ref.tracecheck.loglet import NativeLogletChecker
from delos_ref.tracecheck.metastore import MetaStoreChecker
from delos_ref.tracecheck.striped import StripedLogletChecker
from delos_ref.tracecheck.ndjson import load_traces
from delos_ref.tracecheck.virtuallog import VirtualLogChecker

#: spec name -> checker class
CHECKERS: dict[str, type[Checker]] = {
    "MetaStorePaxos": MetaStoreChecker,
    "NativeLoglet": NativeLogletChecker,
    "VirtualLog": VirtualLogChecker,
    "StripedLoglet": StripedLogletChecker,
}

#: simulator workload -> the specs its traces are checked against
SPEC_OF_WORKLOAD: dict[str, tuple[str, ...]] = {
    "metastore": ("MetaStorePaxos",),
    "loglet": ("NativeLoglet",),
    "log": ("MetaStorePaxos", "NativeLoglet", "VirtualLog"),
    "striped": ("NativeLoglet", "StripedLoglet"),
}


def spec_name(text: str) -> str:
    """``MetaStorePaxos``, ``specs/TraceMetaStorePaxos.tla``, ``metastorepaxos`` -> the spec."""
    base = text.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".tla").removeprefix("Trace").removeprefix("MC")
    for name in CHECKERS:
        if name.lower() == base.lower():
            return name
    raise KeyError(f"unknown spec {text!r}; choose from: {', '.join(CHECKERS)}")


def check_events(spec: str, events: list[dict[str, Any]]) -> dict[str, int]:
    """Replay ``events`` against ``spec``; the number of steps per action. Raises TraceViolation."""
    checker = CHECKERS[spec]()
    for index, event in enumerate(checker.preprocess(events)):
        checker.step(index, event)
    checker.finish()
    return dict(sorted(checker.steps.items()))


def check_trace(spec: str, paths: list[str]) -> dict[str, int]:
    return check_events(spec_name(spec), load_traces(paths))


def check_workload(
    workload_name: str,
    *,
    seeds: int,
    first_seed: int = 0,
    faults: str | None = None,
    bug: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``seeds`` seeded simulations keeping their traces; check each against its specs.

    Returns ``{"workload", "bug", "runs", "rejected": [{"seed", "spec", "why"}], "crashed":
    [{"seed", "error"}], "accepted", "sim_violations", "steps", "wall_s"}``: a trace is
    *rejected* when a spec's checker raises; a run *crashed* when the simulation itself raised
    (there is then no complete trace to check).
    """
    from delos_ref.sim.harness import RunConfig, check_bug, get_workload, parse_faults, run_seed

    workload = get_workload(workload_name)
    specs = SPEC_OF_WORKLOAD.get(workload.name)
    if specs is None:
        raise KeyError(f"workload {workload.name!r} has no spec to check; choose from: {', '.join(SPEC_OF_WORKLOAD)}")
    check_bug(workload, bug)
    fault_set = parse_faults(workload, faults)
    started = time.perf_counter()
    rejected: list[dict[str, Any]] = []
    steps: dict[str, int] = {}
    sim_violations = 0
    crashed: list[dict[str, Any]] = []
    for n, seed in enumerate(range(first_seed, first_seed + seeds)):
        try:
            result = run_seed(workload, RunConfig(seed, fault_set, bug, keep_trace=True))
        except Exception as e:  # the run itself failed: no complete trace to check
            crashed.append({"seed": seed, "error": repr(e)[:500]})
            continue
        sim_violations += bool(result.violations)
        assert result.trace is not None
        for spec in specs:
            try:
                for action, count in check_events(spec, result.trace).items():
                    steps[f"{spec}.{action}"] = steps.get(f"{spec}.{action}", 0) + count
            except TraceViolation as v:
                rejected.append({"seed": seed, "spec": spec, "why": str(v)})
                break
        if progress is not None:
            progress(n + 1, seeds)
    return {
        "workload": workload.name,
        "bug": bug,
        "faults": sorted(fault_set),
        "runs": seeds,
        "accepted": seeds - len(rejected) - len(crashed),
        "rejected": rejected,
        "crashed": crashed,
        "sim_violations": sim_violations,
        "steps": dict(sorted(steps.items())),
        "wall_s": round(time.perf_counter() - started, 3),
    }
