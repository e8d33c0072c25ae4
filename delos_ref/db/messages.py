"""Wire messages between database clients and replicas (and between replicas).

A client sends a write (:class:`KvWrite`) or a read (:class:`KvRead`) to any replica. Refusals
travel as RPC errors with one of the codes below, so a client always knows whether a failed
write may have taken effect.
"""

from __future__ import annotations

from typing import Any

from transports.codec import message

#: Read modes. ``linearizable``: the replica first syncs with the log's tail. ``stale``: the
#: replica reads its local table as it is (fast, may miss recent writes).
LINEARIZABLE, STALE = "linearizable", "stale"
READ_MODES = (LINEARIZABLE, STALE)

# Error codes a replica answers with (RemoteError.code).
BAD_REQUEST = "bad_request"  # malformed: nothing was appended
APPEND_FAILED = "append_failed"  # this attempt's append certainly did not land
OUTCOME_UNKNOWN = "outcome_unknown"  # this attempt's append may have landed
UNAVAILABLE = "unavailable"  # a read (or trim, snapshot) could not be served now
SNAPSHOT_GONE = "snapshot_gone"  # the snapshot being fetched was replaced: start over


@message("kv.write")
class KvWrite:
    """Append the command ``op(arg)`` as ``(client, seq)`` and answer once applied here."""

    client: str
    seq: int
    floor: int
    op: str
    arg: tuple[Any, ...]


@message("kv.written")
class KvWritten:
    result: Any
    pos: int  # where the command (or the copy that took effect) is in the log


@message("kv.read")
class KvRead:
    """``get`` (arg: ``(key,)``) or ``scan`` (arg: ``(prefix, start, end, limit)``)."""

    op: str
    arg: tuple[Any, ...]
    mode: str = LINEARIZABLE


@message("kv.read_result")
class KvReadResult:
    result: Any
    applied: int  # the replica's applied position the read saw


@message("kv.status")
class KvStatus:
    want_digest: bool = False


@message("kv.status_reply")
class KvStatusReply:
    replica: str
    applied: int  # durably applied: every position below is in the replica's LMDB
    digest: str  # "" unless asked for
    snapshots_restored: int


@message("kv.trim")
class KvTrim:
    """Ask a replica to prefix_trim the log below every replica's durable applied position."""


@message("kv.trimmed")
class KvTrimmed:
    trim_point: int


@message("kv.snapshot")
class KvSnapshotRequest:
    """Chunk ``chunk`` of the replica's snapshot ``snapshot`` (0: take a new snapshot)."""

    snapshot: int
    chunk: int


@message("kv.snapshot_chunk")
class KvSnapshotChunk:
    snapshot: int  # the snapshot's id (its applied position + 1)
    rows: tuple[tuple[str, bytes, bytes], ...]
    more: bool
