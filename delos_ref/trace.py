"""Structured trace events: one NDJSON line per protocol step.

Every role emits events through a :class:`TraceSink`: ``{"t", "node", "role", "event", ...fields}``.
The simulator records every delivered message and every fault the same way. The same events
feed the checkers, message-sequence charts and TLA+ trace validation (``specs/``), so event
names and field names follow the specs' action and variable names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Any, Callable, Iterator, TextIO


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
    """Collects events; subclasses decide where they go. ``enabled=False`` makes emit free.

    **Log before send.** An event is written out (:meth:`flush`) as soon as it is emitted,
    unless the emitter *holds* the sink (:meth:`hold`): the runtime holds it while it emits
    one step's events, then flushes them once, before the step's messages leave (the same
    rule as persist-before-send, ``delos_ref/runtime.py``). So a node killed with SIGKILL
    never loses an event that another node could have seen the consequences of.
    """

    enabled = True

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._held = 0

    def emit(self, node: str, role: str, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"t": round(self._clock(), 9), "node": node, "role": role, "event": event}
        record.update({k: _jsonable(v) for k, v in fields.items()})
        self.write(record)
        if not self._held:
            self.flush()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Emit several events, then write them out at once (on leaving the block)."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held:
                self.flush()

    def write(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Hand the events written so far to their destination (default: they are there)."""

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
    """Appends NDJSON lines to a file (a node's ``DIR/<node>/trace.ndjson``, a CLI client's
    ``DIR/clients/<client>.trace.ndjson``).

    Lines wait in memory only until :meth:`flush` (see :class:`TraceSink`), which hands them
    to the kernel with one ``write``: a killed process loses nothing flushed (a machine
    crash may: no fsync; the trace is a debugging aid, not the protocol's durable state).
    If the file ends in the middle of a line (a crash cut the last write), a newline keeps
    the cut line apart from this process's first event.
    """

    def __init__(self, clock: Callable[[], float], path: str) -> None:
        super().__init__(clock)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._pending: list[str] = []
        size = os.fstat(self._fd).st_size
        if size:
            with open(path, "rb") as fp:
                fp.seek(size - 1)
                if fp.read(1) != b"\n":
                    self._pending.append("\n")

    def write(self, record: dict[str, Any]) -> None:
        self._pending.append(json.dumps(record, sort_keys=True) + "\n")

    def flush(self) -> None:
        if not self._pending or self._fd < 0:
            return
        data = "".join(self._pending).encode()
        self._pending.clear()
        while data:
            data = data[os.write(self._fd, data):]

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1


def read_ndjson(path: str) -> list[dict[str, Any]]:
    with open(path) as fp:
        return [json.loads(line) for line in fp if line.strip()]
