"""Structured trace events: one NDJSON line per protocol step.

Every role emits events through a :class:`TraceSink`: ``{"t", "node", "role", "event", ...fields}``.
The simulator records every delivered message and every fault the same way. The same events
feed the checkers, message-sequence charts and TLA+ trace validation (``specs/``), so event
names and field names follow the specs' action and variable names.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, TextIO


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": __import__("base64").b64encode(value).decode()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        d = {"type": getattr(value, "TAG", type(value).__name__)}
        d.update({k: _jsonable(getattr(value, k)) for k in value.__dataclass_fields__})
        return d
    return value


class TraceSink:
    """Collects events; subclasses decide where they go. ``enabled=False`` makes emit free."""

    enabled = True

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def emit(self, node: str, role: str, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"t": round(self._clock(), 9), "node": node, "role": role, "event": event}
        record.update({k: _jsonable(v) for k, v in fields.items()})
        self.write(record)

    def write(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class NullSink(TraceSink):
    enabled = False

    def __init__(self) -> None:
        super().__init__(lambda: 0.0)

    def write(self, record: dict[str, Any]) -> None:
        pass


class MemorySink(TraceSink):
    """Keeps events in a list, and a running digest of their canonical encoding."""

    def __init__(self, clock: Callable[[], float], keep: bool = True) -> None:
        super().__init__(clock)
        self.keep = keep
        self.events: list[dict[str, Any]] = []
        self.count = 0
        self._hash = hashlib.sha256()

    def write(self, record: dict[str, Any]) -> None:
        self.count += 1
        self._hash.update(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
        self._hash.update(b"\n")
        if self.keep:
            self.events.append(record)

    def digest(self) -> str:
        return self._hash.hexdigest()

    def dump(self, fp: TextIO) -> None:
        for record in self.events:
            fp.write(json.dumps(record, sort_keys=True) + "\n")


class FileSink(TraceSink):
    """Appends NDJSON lines to a file (a node's ``DIR/<node>/trace.ndjson``)."""

    def __init__(self, clock: Callable[[], float], path: str) -> None:
        super().__init__(clock)
        self._fp = open(path, "a", buffering=1 << 16)

    def write(self, record: dict[str, Any]) -> None:
        self._fp.write(json.dumps(record, sort_keys=True) + "\n")

    def close(self) -> None:
        self._fp.close()


def read_ndjson(path: str) -> list[dict[str, Any]]:
    with open(path) as fp:
        return [json.loads(line) for line in fp if line.strip()]
