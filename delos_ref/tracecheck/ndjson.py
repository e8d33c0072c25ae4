"""Reading traces: one NDJSON file per node (``up --trace``), or one file for a simulation.

Events are ``{"t", "node", "role", "event", ...fields}`` (see :mod:`delos_ref.trace`). A
simulation's trace is already in the order things happened (one event loop writes it). The
files of real nodes (``DIR/<node>/trace.ndjson``) and of CLI clients
(``DIR/clients/<client>.trace.ndjson``) are merged by time, then by file and line order:
within one node the file order is the order of its steps, and a message is logged by its
receiver after its sender logged sending it (a node writes a step's events before the step's
messages leave it), as long as the nodes' clocks agree better than a message's latency (one
machine, ``delos-ref up``).

**Crash cuts.** A node killed with SIGKILL loses no event another node could have seen (its
events reach the file before its messages leave), but it may lose the events of its very
last step: the step's writes are durable, its trace line not yet written (and its messages
not yet sent). Such a node's file shows the cut when the node is restarted: a new ``node
Start`` event without a ``node Stop`` before it (and, rarely, a line cut in the middle by
the crash, left out with a note). The restarted node's state may then hold a step the trace
does not show, so a checker that stops at an event involving that node after its restart
cannot tell a lost line from a protocol violation: :class:`LoadedTrace` reports such a stop
as *truncated*. Every other rejection -- before the restart, or involving only nodes without
a cut -- stays a violation.
"""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Iterable


class BadTrace(ValueError):
    """A trace file that is not NDJSON trace events."""


def load_trace(path: str | Path, cuts: list[str] | None = None) -> list[dict[str, Any]]:
    """The events of one NDJSON file, in file order.

    A line that is not JSON is an error (:class:`BadTrace`), except where a crash cut it: the
    file's last line without its newline, or a line directly followed by a ``node Start``
    (the restarted process's first event). Those are left out, and described in ``cuts``.
    """
    events = []
    with open(path) as fp:
        lines = fp.read().split("\n")
    complete = lines[:-1]  # the text after the last newline is a line still being written
    partial = lines[-1]
    pending: tuple[int, str] | None = None  # a bad line, excused if a node Start follows it
    for n, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as e:
            if pending is not None:
                raise BadTrace(f"{path}:{pending[0]}: not JSON ({pending[1]})") from None
            pending = (n, e.msg)
            continue
        if not isinstance(event, dict) or "event" not in event or "role" not in event:
            raise BadTrace(f"{path}:{n}: a trace event is an object with 'role' and 'event'")
        if pending is not None:
            if (event.get("role"), event.get("event")) != ("node", "Start"):
                raise BadTrace(f"{path}:{pending[0]}: not JSON ({pending[1]})") from None
            if cuts is not None:
                cuts.append(f"{path}:{pending[0]}: a line cut by a crash (left out; the node restarted after it)")
            pending = None
        events.append(event)
    if pending is not None:  # the last complete line is bad: cut, then the file ended
        partial = complete[pending[0] - 1]
    if partial.strip() and cuts is not None:
        cuts.append(f"{path}: the last line is cut in the middle (a crash while writing it, or the node is writing it now): left out")
    elif partial.strip():
        raise BadTrace(f"{path}: the last line is cut in the middle (a crash while writing it?)")
    return events


def merge_traces(traces: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Several nodes' traces as one: by time, ties broken by file then line (stable sort)."""
    tagged = [(float(e.get("t", 0.0)), f, i, e) for f, trace in enumerate(traces) for i, e in enumerate(trace)]
    tagged.sort(key=lambda x: x[:3])
    return [e for *_, e in tagged]


def trace_files(paths: Iterable[str | Path]) -> list[Path]:
    """The trace files named: a file as is; a cluster directory's node files
    (``*/trace.ndjson``) and client files (``clients/*.trace.ndjson``)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*/trace.ndjson")) + sorted(p.glob("trace.ndjson")) + sorted(p.glob("clients/*.trace.ndjson"))
            if not found:
                raise BadTrace(f"{p}: no */trace.ndjson in this directory (start the cluster with up --trace)")
            files += found
        else:
            files.append(p)
    return files


@dataclass
class LoadedTrace:
    """Merged events and the crash cuts the files show (see the module docstring)."""

    events: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)  # lines left out, restarts after a crash
    cuts: dict[str, float] = field(default_factory=dict)  # node -> time of its first restart after a crash

    def truncation(self, event: dict[str, Any] | None) -> str | None:
        """Why a checker's stop at ``event`` may be a lost trace line rather than a violation
        (it involves a node after that node's crash cut), or None: then it is a violation."""
        if event is None or not self.cuts:
            return None
        t = float(event.get("t", 0.0))
        for node, cut in sorted(self.cuts.items()):
            if t >= cut and _involves(event, node):
                return (
                    f"node {node} crashed and restarted at t={cut:.6f}; the event the check stopped at (t={t:.6f}) "
                    f"involves {node}'s state after the restart, which may hold the killed process's last step "
                    "(durable, but not yet logged). The trace is truncated there; it shows no violation up to "
                    "that point (run the scenario in the simulator, which loses no event, to tell)"
                )
        return None


def _involves(event: dict[str, Any], node: str) -> bool:
    """Whether ``event`` is ``node``'s or names it (a field, a list member, a map key)."""
    for key, value in event.items():
        if key == "t":
            continue
        if value == node or (isinstance(value, list) and node in value) or (isinstance(value, dict) and node in value):
            return True
    return False


def _cut_of(events: list[dict[str, Any]]) -> tuple[str | None, float | None]:
    """A node file's first crash cut: ``(node, t)`` of a ``node Start`` that follows another
    Start with no ``node Stop`` between them (the process was killed, then restarted).

    Only the restarted process can act on a step its killed predecessor made durable without
    logging it (that step's messages never left), so the cut is at the restart. A file that
    merely ends (in the middle of a line or not) has no cut: nothing after it can depend on
    the lost step."""
    started = stopped = False
    for e in events:
        if (e.get("role"), e.get("event")) == ("node", "Start"):
            if started and not stopped:
                return e.get("node"), float(e.get("t", 0.0))
            started, stopped = True, False
        elif (e.get("role"), e.get("event")) == ("node", "Stop"):
            stopped = True
    return None, None


def load_traces_report(paths: Iterable[str | Path]) -> LoadedTrace:
    """Load and merge trace files (:func:`trace_files`), noting every crash cut."""
    files = trace_files(paths)
    traces, notes, cuts = [], [], {}
    for f in files:
        cut_lines: list[str] = []
        trace = load_trace(f, cut_lines)
        notes += cut_lines
        node, at = _cut_of(trace)
        if node is not None and at is not None:
            cuts[node] = min(at, cuts.get(node, at))
            notes.append(f"{f}: node {node} restarted at t={at:.6f} after a crash (the killed process's last step may be unlogged)")
        traces.append(trace)
    events = traces[0] if len(traces) == 1 else merge_traces(traces)
    return LoadedTrace(events, notes, cuts)


def load_traces(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """One file as is; several merged (:func:`merge_traces`). A directory: its node and client
    trace files (:func:`trace_files`)."""
    return load_traces_report(paths).events
