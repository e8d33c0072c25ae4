"""Reading traces: one NDJSON file per node (``up --trace``), or one file for a simulation.

Events are ``{"t", "node", "role", "event", ...fields}`` (see :mod:`delos_ref.trace`). A
simulation's trace is already in the order things happened (one event loop writes it). The
files of real nodes are merged by time, then by file and line order: within one node the
file order is the order of its steps, and a message is logged by its receiver after its
sender logged sending it, as long as the nodes' clocks agree better than a message's latency
(one machine, ``delos-ref up``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable


class BadTrace(ValueError):
    """A trace file that is not NDJSON trace events."""


def load_trace(path: str | Path) -> list[dict[str, Any]]:
    """The events of one NDJSON file, in file order."""
    events = []
    with open(path) as fp:
        for n, line in enumerate(fp, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadTrace(f"{path}:{n}: not JSON ({e.msg})") from None
            if not isinstance(event, dict) or "event" not in event or "role" not in event:
                raise BadTrace(f"{path}:{n}: a trace event is an object with 'role' and 'event'")
            events.append(event)
    return events


def merge_traces(traces: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Several nodes' traces as one: by time, ties broken by file then line (stable sort)."""
    tagged = [(float(e.get("t", 0.0)), f, i, e) for f, trace in enumerate(traces) for i, e in enumerate(trace)]
    tagged.sort(key=lambda x: x[:3])
    return [e for *_, e in tagged]


def load_traces(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """One file as is; several merged (:func:`merge_traces`). A directory: its ``*/trace.ndjson``."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*/trace.ndjson")) + sorted(p.glob("trace.ndjson"))
            if not found:
                raise BadTrace(f"{p}: no */trace.ndjson in this directory (start the cluster with up --trace)")
            files += found
        else:
            files.append(p)
    traces = [load_trace(f) for f in files]
    return traces[0] if len(traces) == 1 else merge_traces(traces)
