"""Where a chart's events come from, with the checkers' verdicts on them.

* :func:`simulated` re-runs one seed of a simulator workload (deterministic: the same seed
  gives the same events) and adds the workload's client operations to the trace, as events
  ``{"role": "client", "event": "invoke"|"ok"|"fail"|"info", "node": <client>, "f", "value"}``
  placed by their virtual time among the protocol events. A client node that runs several
  operations at once names a process per loop, ``node@k`` (the ``loglet`` and ``striped``
  workloads' append loops): its events are on the node's lane and say ``"process": "a1@0"``;
* :func:`from_traces` reads NDJSON trace files or cluster directories (``up --trace``).

Either way the events are then replayed against the Python transcriptions of the specs
(:mod:`delos_ref.tracecheck`): the event where one rejects the trace is the violation a chart
marks. A simulated run's own checks (lost entries, chain invariants, ...) look at the whole
run; their findings come without an event, except a linearizability failure, which points at
the completion of the operation the checker could not place.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from delos_ref import tracecheck
from delos_ref.checker.linearizability import HISTORY_TAP, Op
from delos_ref.viz.model import Violation


@dataclass
class Run:
    """A run to draw: its events, what the checkers found, and how to get it again."""

    title: str
    events: list[dict[str, Any]]
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    replay: str | None = None

    @property
    def first_violation(self) -> int | None:
        """The event a failing run opens at: the first marked one, else the last event."""
        marked = [v.index for v in self.violations if v.index is not None]
        if marked:
            return min(marked)
        return len(self.events) - 1 if self.violations else None


def simulated(workload: str, seed: int, *, faults: str | None = None, bug: str | None = None, schedule: str | None = None) -> Run:
    """Re-run ``seed`` of ``workload`` and collect its trace, client history and verdicts.
    ``schedule``: run it under that schedule (``sim --schedule``, e.g. a minimized run's),
    whose fault kinds replace ``faults``.

    Raises the harness's ``UnknownWorkload`` / ``BadSimArgument`` / ``BadSchedule`` for bad
    names or schedules."""
    from delos_ref.sim import harness

    wl = harness.get_workload(workload)
    fault_set = harness.parse_faults(wl, faults)
    harness.check_bug(wl, bug)
    plan = harness.parse_schedule(wl, schedule) if schedule is not None else None
    ops: list[tuple[float, int, Op]] = []

    def tap(history: Any, op: Op) -> None:
        import trio

        ops.append((trio.current_time(), id(history), op))

    token = HISTORY_TAP.set(tap)
    try:
        config = harness.scheduled_config(seed, plan, bug, keep_trace=True) if plan is not None else harness.RunConfig(seed, fault_set, bug, keep_trace=True)
        result = harness.run_seed(wl, config)
    finally:
        HISTORY_TAP.reset(token)
    trace = result.trace or []
    events, records = merge_history(trace, ops)
    violations = spec_violations(events)
    violations += [Violation(_stuck_at(what, events, records), what, f"{workload} workload") for what in result.violations]
    title = f"{workload} seed {seed}" + (f" bug {bug}" if bug else "") + (" (minimized schedule)" if plan is not None else "") + f" ({len(events)} events)"
    return Run(title, events, violations, replay=harness.replay_command(wl, seed, fault_set, bug))


def merge_history(trace: list[dict[str, Any]], ops: list[tuple[float, int, Op]]) -> tuple[list[dict[str, Any]], dict[int, list[int]]]:
    """The trace with each client operation inserted after the events of its instant; and,
    per history (by id), where its events landed (history index -> event number)."""
    times = [float(e.get("t", 0.0)) for e in trace]
    slots: dict[int, list[dict[str, Any]]] = {}
    records: list[tuple[int, dict[str, Any]]] = []
    for t, history, op in ops:
        process = str(op.process)
        record = {"t": round(t, 9), "node": process.split("@")[0], "role": "client", "event": op.type, "f": op.f, "value": _plain(op.value)}
        if "@" in process:
            record["process"] = process
        slots.setdefault(bisect.bisect_right(times, round(t, 9)), []).append(record)
        records.append((history, record))
    out: list[dict[str, Any]] = []
    for i, e in enumerate(trace):
        out += slots.pop(i, [])
        out.append(e)
    for k in sorted(slots):
        out += slots[k]
    where = {id(e): i for i, e in enumerate(out)}
    placed: dict[int, list[int]] = {}
    for history, record in records:
        placed.setdefault(history, []).append(where[id(record)])
    return out, placed


def _stuck_at(what: str, events: list[dict[str, Any]], placed: dict[int, list[int]]) -> int | None:
    """The event a linearizability failure points at: the completion of the operation the
    checker got stuck on ("Stuck: ... [events C..R]", indices into the workload's history),
    when the run recorded one history (so its indices are unambiguous)."""
    m = _STUCK.search(what)
    if m is None or len(placed) != 1:
        return None
    indices = next(iter(placed.values()))
    ret = int(m.group(2))
    return indices[ret] if ret < len(indices) else None


_STUCK = re.compile(r"Stuck:.*?\[events (\d+)\.\.(\d+)\]", re.S)


def _plain(value: Any) -> Any:
    """A history value as JSON-able text or number."""
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def spec_violations(events: list[dict[str, Any]], truncation: Any = None) -> list[Violation]:
    """Where the spec transcriptions reject the trace (one per spec at most).

    ``truncation``: a function saying why a stop may be a lost trace line (a real cluster's
    crash cut); such a stop is no violation and is left out."""
    out = []
    where = {id(e): i for i, e in enumerate(events)}
    for spec in tracecheck.CHECKERS:
        try:
            tracecheck.check_events(spec, events)
        except tracecheck.TraceViolation as v:
            if truncation is not None and truncation(v.event):
                continue
            index = where.get(id(v.event)) if v.event is not None else None
            out.append(Violation(index, f"{v.action}: {v.why}", f"{spec} spec"))
    return out


def from_traces(paths: Iterable[str | Path]) -> tuple[Run, list[str]]:
    """Trace files or cluster directories, merged by time; and the loader's notes (crash cuts).

    Raises ``BadTrace`` / ``OSError`` for unreadable input."""
    from delos_ref.tracecheck.ndjson import load_traces_report

    paths = list(paths)
    loaded = load_traces_report(paths)
    events = loaded.events
    violations = spec_violations(events, loaded.truncation)
    title = ", ".join(str(p) for p in paths) + f" ({len(events)} events)"
    return Run(title, events, violations, notes=list(loaded.notes)), list(loaded.notes)
