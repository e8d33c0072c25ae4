"""The Delos database: a replicated key-value table over the VirtualLog (docs/design.md §8).

Delos (OSDI 2020, §4; SOSP 2021) runs its databases as replicated state machines over the
shared log: a write is appended to the log, every replica plays the log in order into a local
LMDB table, and a read syncs with the log's tail before reading locally. Modules, bottom up:

* ``table.py``    -- the state machine (pure): commands, their encoding, deduplication of
  retried commands, group apply in one transaction with the applied position, snapshots' rows;
* ``messages.py`` -- the wire messages between clients and replicas;
* ``batching.py`` -- :class:`~delos_ref.db.batching.WriteBatcher`: writes that arrive while
  a replica's appends are in flight share one log entry;
* ``replica.py``  -- :class:`Replica`: the player, writes, linearizable and stale reads,
  trim and snapshot transfer, on a node's RPC endpoint;
* ``client.py``   -- :class:`KvClient` and :func:`connect`: retries with exactly-once
  semantics, honest failures;
* ``hosting.py``  -- how a cluster node hosts its replica.
"""

from delos_ref.db.client import BadRequest, ClientOptions, KvClient, KvError, ReadFailed, WriteFailed, WriteOutcomeUnknown, connect
from delos_ref.db.replica import BUG_STALE_READ, Replica, ReplicaOptions
from delos_ref.db.table import BUG_NO_DEDUP, TABLES, BadCommand, Command, TableState, decode_command, decode_entry, encode_batch, encode_command

DB_BUGS = {
    BUG_STALE_READ: "a read asked for as linearizable is served from the local table without a sync",
    BUG_NO_DEDUP: "every copy of a retried write is applied (no deduplication by client id and seq)",
}

__all__ = [
    "BUG_NO_DEDUP",
    "BUG_STALE_READ",
    "DB_BUGS",
    "TABLES",
    "BadCommand",
    "BadRequest",
    "ClientOptions",
    "Command",
    "KvClient",
    "KvError",
    "ReadFailed",
    "Replica",
    "ReplicaOptions",
    "TableState",
    "WriteFailed",
    "WriteOutcomeUnknown",
    "connect",
    "decode_command",
    "decode_entry",
    "encode_batch",
    "encode_command",
]
