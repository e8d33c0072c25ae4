"""How a LogServer (and a sequencer) lay their state out in storage (docs/design.md §5).

A LogServer's disk holds, per loglet instance, the entries and four numbers. Entries live in
one table keyed by ``loglet id + big-endian position``, so one loglet's entries are one
ordered key range and a range read is one cursor scan. The numbers live in a metadata table,
one record per loglet:

* ``local_tail`` -- the server holds every position in ``[trim_point, local_tail)``;
* ``trim_point`` -- positions below it were discarded by ``prefix_trim``;
* ``purged``     -- entries below it are deleted from disk (purging trails trimming, in
  bounded chunks);
* ``sealed``     -- the seal bit: once set, never cleared.

The record is written in the *same* transaction as the entries it describes, so after a
crash the seal bit, the tail and the entries on disk always agree: recovery is just reading
the metadata table back (:func:`recover_logserver`).

A sequencer keeps nothing durable but one marker per loglet it ever served, so that after a
restart it knows *not* to serve that loglet again (a restarted sequencer would reassign
positions from 0; the paper's answer to a dead sequencer is reconfiguration, §4.2.1).

This module is pure: the storage it reads is the abstract :class:`~delos_ref.storage.Storage`
and it builds :class:`~delos_ref.effects.Write` s; it imports no database driver.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from delos_ref.effects import Write
from delos_ref.storage import Storage

ENTRIES = "logserver.entries"
META = "logserver.meta"
SEQUENCER = "sequencer.served"
LOGSERVER_TABLES = (ENTRIES, META)
SEQUENCER_TABLES = (SEQUENCER,)

_POS = struct.Struct(">Q")
_LEN = struct.Struct(">H")
_META = struct.Struct(">QQQB")


@dataclass(slots=True)
class LogletState:
    """A LogServer's durable state for one loglet (see the module docstring)."""

    local_tail: int = 0
    trim_point: int = 0
    purged: int = 0
    sealed: bool = False

    def check(self) -> None:
        assert self.purged <= self.trim_point <= self.local_tail, "LogServer: purged <= trim_point <= local_tail"


def loglet_prefix(loglet_id: str) -> bytes:
    raw = loglet_id.encode()
    return _LEN.pack(len(raw)) + raw


def entry_key(loglet_id: str, pos: int) -> bytes:
    """Big-endian position after a length-prefixed id: key order is (loglet, position) order."""
    assert 0 <= pos < 1 << 64, "positions fit in 64 bits"
    return loglet_prefix(loglet_id) + _POS.pack(pos)


def key_position(key: bytes) -> int:
    return _POS.unpack_from(key, len(key) - _POS.size)[0]


def write_entry(loglet_id: str, pos: int, entry: bytes) -> Write:
    return Write(ENTRIES, entry_key(loglet_id, pos), entry)


def delete_entry(loglet_id: str, pos: int) -> Write:
    return Write(ENTRIES, entry_key(loglet_id, pos), None)


def write_meta(loglet_id: str, st: LogletState) -> Write:
    st.check()
    return Write(META, loglet_id.encode(), _META.pack(st.local_tail, st.trim_point, st.purged, int(st.sealed)))


def decode_meta(value: bytes) -> LogletState:
    local_tail, trim_point, purged, sealed = _META.unpack(value)
    st = LogletState(local_tail, trim_point, purged, bool(sealed))
    st.check()
    return st


def recover_logserver(storage: Storage) -> dict[str, LogletState]:
    """Every loglet's state as the last synced transaction left it."""
    return {key.decode(): decode_meta(value) for key, value in storage.scan(META)}


def read_entries(storage: Storage, loglet_id: str, lo: int, hi: int, limit: int, max_bytes: int) -> list[bytes]:
    """The entries at ``lo, lo+1, ...`` below ``hi``: at most ``limit``, about ``max_bytes``.

    Stops at the first missing position, so the result is always contiguous from ``lo``.
    """
    if hi <= lo or limit <= 0:
        return []
    pairs = storage.scan(ENTRIES, entry_key(loglet_id, lo), entry_key(loglet_id, hi), limit)
    out: list[bytes] = []
    size = 0
    for key, value in pairs:
        if key_position(key) != lo + len(out) or (out and size + len(value) > max_bytes):
            break
        out.append(bytes(value))
        size += len(value)
    return out


def mark_served(loglet_id: str) -> Write:
    return Write(SEQUENCER, loglet_id.encode(), b"1")


def recover_sequencer(storage: Storage) -> frozenset[str]:
    """The loglets this sequencer served in an earlier incarnation: it must not serve them again."""
    return frozenset(key.decode() for key, _ in storage.scan(SEQUENCER))
