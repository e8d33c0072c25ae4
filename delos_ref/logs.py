"""A node's log (``DIR/<node>/node.log``) and its exit record (``DIR/<node>/exit.json``).

The log is for the operator who asks "what happened to n2?": one line per meaningful event,
written with Python's :mod:`logging`. :func:`setup_node_logging` configures it once, in the
node process's entry point (``delos-ref node``); every other module only calls
``logging.getLogger(__name__)``. A line looks like::

    2026-12-06T22:40:01.123Z n2 INFO  delos_ref.process: started: pid 4242 at 127.0.0.1:7102 (tcp)

What is logged, and where (the protocol cores stay pure -- they emit trace events, and the
runtime turns the meaningful ones into lines, see :data:`LOGGED_EVENTS`):

* start, recovery (what each role found on disk), the roles served, how the previous run
  ended, stop and fatal errors with their cause: :mod:`delos_ref.process`;
* suspicion, reconfiguration started / won / lost: :mod:`delos_ref.virtuallog.supervisor`;
* seals, trims, refused stores: the cores' trace events, logged by :mod:`delos_ref.runtime`;
* frames the transport refused (bad MAC, malformed, oversize, misaddressed): at most one line
  per peer per ``window_s`` with a count (:class:`RejectedFrames`), so a flood of garbage
  cannot fill the disk.

**The exit record.** ``status`` must tell a node that was killed from one that stopped for a
reason (a full disk). The node writes ``exit.json`` when it starts (``running``), when it
stops (``stopped``) and when it dies of an error (``exited: <cause>``). The file is written in
place at a fixed size (:data:`EXIT_RECORD_BYTES`), so rewriting it needs no new disk block --
it still works when the disk is full. The same goes for the last log lines: the node keeps a
*ballast* file (:data:`BALLAST_BYTES` of reserved space) that it deletes first when the disk
fills up, so the line that says why it exits can be written.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

#: The ``--log-level`` choices.
LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LEVEL = "info"
LOG_FILE = "node.log"
EXIT_FILE = "exit.json"
BALLAST_FILE = "ballast"
#: Fixed size of ``exit.json`` (padded with spaces), rewritten in place.
EXIT_RECORD_BYTES = 1024
#: Space a node holds in reserve for its last words on a full disk.
BALLAST_BYTES = 64 * 1024

#: Trace events of the protocol cores that are worth a log line: event -> level. The runtime
#: logs these (``RoleRunner``); the rest stay in the trace (``up --trace``).
LOGGED_EVENTS: dict[str, int] = {
    "Seal": logging.INFO,  # a LogServer sealed a loglet
    "SequencerSealed": logging.INFO,  # a sequencer learnt its loglet is sealed
    "Trim": logging.INFO,  # a LogServer trimmed a loglet's prefix
    "StoreRefused": logging.DEBUG,  # a store below a seal (normal during reconfiguration)
}


def log_event(logger: logging.Logger, role: str, event: str, fields: dict[str, Any]) -> None:
    """One line for a core's trace event if it is one of :data:`LOGGED_EVENTS`."""
    level = LOGGED_EVENTS.get(event)
    if level is not None and logger.isEnabledFor(level):
        logger.log(level, "%s: %s %s", role, event, " ".join(f"{k}={v}" for k, v in fields.items()))


def check_level(level: str) -> int:
    """The :mod:`logging` level for a ``--log-level`` name; ValueError for another name."""
    if level.lower() not in LEVELS:
        raise ValueError(f"--log-level must be one of {', '.join(LEVELS)} (got {level!r})")
    return getattr(logging, level.upper())


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime  # timestamps in UTC: the nodes' logs line up with each other

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created)) + f".{int(record.msecs):03d}Z"


def setup_node_logging(node_dir: Path, node_id: str, level: str = DEFAULT_LEVEL) -> logging.Handler:
    """Send every logger of this process to ``node_dir/node.log`` (appending), each line with
    a UTC timestamp and ``node_id``; call once, in the node process's entry point."""
    handler = logging.FileHandler(node_dir / LOG_FILE, mode="a", encoding="utf-8")
    handler.setFormatter(_UtcFormatter(f"%(asctime)s {node_id} %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(check_level(level))
    logging.raiseExceptions = False  # a log line that cannot be written (full disk) is dropped, not a traceback
    return handler


# ---------------------------------------------------------------------- rejected frames


@dataclass
class _Peer:
    logged_at: float
    kinds: Counter = field(default_factory=Counter)  # rejections not reported yet


class RejectedFrames:
    """Rate-limited log lines for frames a transport refused (``Transport.on_rejected``).

    The first rejection from a peer (a node id, or a host) is logged at once; later ones are
    counted and reported in one line per peer at most every ``window_s`` (by the next rejection or by
    :meth:`flush`, which the node calls periodically). Pure apart from the logger: ``clock``
    gives the time. At most ``max_peers`` peers are tracked (garbage may come from many
    source ports); the oldest is reported and forgotten first.
    """

    def __init__(self, logger: logging.Logger, clock: Callable[[], float], *, window_s: float = 10.0, max_peers: int = 256) -> None:
        assert window_s > 0 and max_peers > 0, "RejectedFrames: positive window and bound"
        self._log, self._clock, self.window_s, self.max_peers = logger, clock, window_s, max_peers
        self._peers: dict[str, _Peer] = {}
        self.lines = 0

    def __call__(self, peer: str, kind: str, detail: str) -> None:
        # Garbage over TCP comes on a new connection (a new source port) each time: a peer
        # given as host:port is counted by its host.
        host, sep, port = peer.rpartition(":")
        key = host if sep and port.isdigit() else peer
        now = self._clock()
        entry = self._peers.get(key)
        if entry is None:
            self._make_room()
            self._peers[key] = _Peer(now)
            self._line(f"rejected a frame from {peer}: {kind} ({detail})")
            return
        entry.kinds[kind] += 1
        if now - entry.logged_at >= self.window_s:
            self._report(peer, entry, now)

    def flush(self) -> None:
        """Report every peer whose counted rejections are at least ``window_s`` old; forget
        peers that sent nothing bad for a whole window."""
        now = self._clock()
        for peer, entry in list(self._peers.items()):
            if now - entry.logged_at < self.window_s:
                continue
            if entry.kinds:
                self._report(peer, entry, now)
            else:
                del self._peers[peer]

    def _report(self, peer: str, entry: _Peer, now: float) -> None:
        total = sum(entry.kinds.values())
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(entry.kinds.items()))
        self._line(f"rejected {total} more frame(s) from {peer} in the last {now - entry.logged_at:.0f}s ({kinds})")
        entry.kinds.clear()
        entry.logged_at = now

    def _make_room(self) -> None:
        while len(self._peers) >= self.max_peers:
            peer = next(iter(self._peers))  # the oldest entry
            entry = self._peers.pop(peer)
            if entry.kinds:
                self._report(peer, entry, self._clock())

    def _line(self, text: str) -> None:
        self.lines += 1
        self._log.warning(text)


# -------------------------------------------------------------------------- exit record


def read_exit_record(node_dir: Path) -> dict[str, Any] | None:
    """The node's last exit record (``{"pid", "state", "cause", "time"}``), or None."""
    try:
        record = json.loads((node_dir / EXIT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "state" in record else None


def write_exit_record(node_dir: Path, pid: int, state: str, cause: str = "") -> bool:
    """Rewrite ``exit.json`` in place at its fixed size (no new disk block once it exists).
    False if it could not be written."""
    record = json.dumps({"pid": pid, "state": state, "cause": cause[:600], "time": round(time.time(), 3)})
    data = record.encode()[: EXIT_RECORD_BYTES - 1].ljust(EXIT_RECORD_BYTES - 1) + b"\n"
    try:
        fd = os.open(node_dir / EXIT_FILE, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        return False
    return True


def reserve_ballast(node_dir: Path) -> bool:
    """Hold :data:`BALLAST_BYTES` of disk in ``node_dir/ballast`` (real blocks, not a sparse
    file). False if the disk has no room for it already."""
    path = node_dir / BALLAST_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, BALLAST_BYTES)
        finally:
            os.close(fd)
    except OSError:
        return False
    return True


def release_ballast(node_dir: Path) -> bool:
    """Free the reserved space (the disk is full: the last words need it)."""
    try:
        os.unlink(node_dir / BALLAST_FILE)
    except OSError:
        return False
    return True
