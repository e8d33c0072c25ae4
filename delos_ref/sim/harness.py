"""Workloads, seeds and sweeps: the frame behind ``delos-ref sim``.

A :class:`Workload` is a named scenario (clients, servers, faults, checks) that runs one seed
inside a fresh simulation and returns a :class:`RunResult` listing the violations its checks
found. The harness runs many seeds, one ``trio.run`` each under a mock clock, and summarizes:
``{"workload", "runs", "violations": [{"seed", "what", "replay"}], "events_per_s"}``, where
``replay`` is the one-line command that reproduces that run exactly.

Workload modules live beside this one as ``workload_<name>.py`` and call :func:`register` at
import; :func:`load_workloads` imports them all.
"""

from __future__ import annotations

import importlib
import pkgutil
import shlex
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import trio
import trio.testing

from delos_ref.sim.schedule import BadSchedule, Schedule, decode
from delos_ref.sim.simulation import ALL_FAULTS


@dataclass(frozen=True, slots=True)
class RunConfig:
    seed: int
    faults: frozenset[str]
    bug: str | None = None
    keep_trace: bool = False
    schedule: Schedule | None = None  # None: the seed decides faults and operations (schedule.py)


@dataclass(slots=True)
class RunResult:
    seed: int
    violations: list[str]
    events: int
    digest: str
    virtual_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    trace: list[dict[str, Any]] | None = None
    schedule: Schedule | None = None  # what the run did, explicitly: its nemesis actions and operations


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    description: str
    faults: tuple[str, ...]
    bugs: dict[str, str]
    run: Callable[[RunConfig], Awaitable[RunResult]]


_WORKLOADS: dict[str, Workload] = {}


class UnknownWorkload(KeyError):
    pass


class BadSimArgument(ValueError):
    pass


def register(workload: Workload) -> Workload:
    assert set(workload.faults) <= set(ALL_FAULTS), f"workload {workload.name}: unknown fault kinds"
    _WORKLOADS[workload.name] = workload
    return workload


def load_workloads() -> dict[str, Workload]:
    import delos_ref.sim as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("workload_"):
            importlib.import_module(f"delos_ref.sim.{info.name}")
    return dict(sorted(_WORKLOADS.items()))


def get_workload(name: str) -> Workload:
    workloads = load_workloads()
    if name not in workloads:
        raise UnknownWorkload(f"unknown workload {name!r}; choose from: {', '.join(workloads)}")
    return workloads[name]


def parse_faults(workload: Workload, text: str | None) -> frozenset[str]:
    """``None`` -> every fault the workload supports; ``"none"`` -> no faults; else a comma list."""
    if text is None:
        return frozenset(workload.faults)
    if text.strip() == "none":
        return frozenset()
    wanted = {f.strip() for f in text.split(",") if f.strip()}
    unknown = wanted - set(workload.faults)
    if unknown:
        raise BadSimArgument(f"workload {workload.name} does not support faults {sorted(unknown)}; it supports {list(workload.faults)}")
    return frozenset(wanted)


def check_bug(workload: Workload, bug: str | None) -> None:
    if bug is not None and bug not in workload.bugs:
        raise BadSimArgument(f"workload {workload.name} has no bug {bug!r}; see --list-bugs ({', '.join(workload.bugs) or 'none'})")


def run_seed(workload: Workload, cfg: RunConfig) -> RunResult:
    """One seeded run in a fresh trio run under a mock clock (virtual time).

    A schedule that names nodes this workload does not have raises :class:`BadSchedule`."""
    try:
        return trio.run(workload.run, cfg, clock=trio.testing.MockClock(autojump_threshold=0))
    except BaseExceptionGroup as group:
        bad = group.subgroup(BadSchedule)
        if bad is None:
            raise
        while isinstance(bad, BaseExceptionGroup):
            bad = bad.exceptions[0]
        raise bad from None


def parse_schedule(workload: Workload, text: str) -> Schedule:
    """``--schedule TEXT`` for ``workload``: decoded, its fault kinds checked."""
    schedule = decode(text)
    unknown = schedule.faults - set(workload.faults)
    if unknown:
        raise BadSchedule(f"schedule: workload {workload.name} does not support faults {sorted(unknown)}; it supports {list(workload.faults)}")
    return schedule


def scheduled_config(seed: int, schedule: Schedule, bug: str | None, keep_trace: bool = False) -> RunConfig:
    """The run of ``seed`` under ``schedule``: its fault kinds are the schedule's."""
    return RunConfig(seed, schedule.faults, bug, keep_trace=keep_trace, schedule=schedule)


def _first_line(e: BaseException) -> str:
    """One line naming an exception (an exception group: its first leaf)."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]


def replay_command(workload: Workload, seed: int, faults: frozenset[str], bug: str | None, schedule: Schedule | None = None) -> str:
    """The command line that reruns one run exactly (with ``schedule``: that schedule's run)."""
    if schedule is not None:
        cmd = f"delos-ref sim --workload {workload.name} --seeds 1 --seed {seed} --schedule {shlex.quote(schedule.encode())}"
    else:
        fault_arg = ",".join(sorted(faults)) if faults else "none"
        cmd = f"delos-ref sim --workload {workload.name} --seeds 1 --seed {seed} --faults {fault_arg}"
    return cmd + (f" --bug {bug}" if bug else "") + " --json"


def sweep(
    workload: Workload,
    *,
    seeds: int,
    first_seed: int = 0,
    faults: frozenset[str],
    bug: str | None = None,
    stop_at_first: bool = False,
    progress: Callable[[int, int], None] | None = None,
    schedule: Schedule | None = None,
) -> dict[str, Any]:
    """Run ``seeds`` consecutive seeds from ``first_seed``; summarize as the CLI prints it.

    With ``schedule`` every run follows it (its fault kinds replace ``faults``)."""
    assert seeds >= 1, "sweep: at least one seed"
    if schedule is not None:
        faults = schedule.faults
    violations = []
    events = 0
    runs = 0
    started = time.perf_counter()
    for i, seed in enumerate(range(first_seed, first_seed + seeds)):
        try:
            cfg = RunConfig(seed, faults, bug) if schedule is None else scheduled_config(seed, schedule, bug)
            result = run_seed(workload, cfg)
        except BadSchedule:
            raise  # bad input, not a finding
        except Exception as e:  # a run that crashes is a finding too; the sweep goes on
            result = RunResult(seed, [f"the run raised {_first_line(e)}"], 0, "")
        runs += 1
        events += result.events
        for what in result.violations:
            violations.append({"seed": seed, "what": what, "replay": replay_command(workload, seed, faults, bug, schedule)})
        if progress is not None:
            progress(i + 1, seeds)
        if violations and stop_at_first:
            break
    elapsed = max(time.perf_counter() - started, 1e-9)
    return {
        "workload": workload.name,
        "runs": runs,
        "faults": sorted(faults),
        "bug": bug,
        "violations": violations,
        "events_per_s": round(events / elapsed, 1),
        "wall_s": round(elapsed, 3),
    }
