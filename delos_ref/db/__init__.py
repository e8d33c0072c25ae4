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

from __future__ import annotations

import importlib
from typing import Any

# The names below load their module on first use (PEP 562): ``delos-ref kv --help`` and every
# command that only needs the table's limits do not pay for the client and the replica
# (trio, the VirtualLog, the RPC layer), a quarter of a second per command.
_HOME = {
    "BadRequest": "client", "ClientOptions": "client", "KvClient": "client", "KvError": "client",
    "ReadFailed": "client", "WriteFailed": "client", "WriteOutcomeUnknown": "client", "connect": "client",
    "BUG_STALE_READ": "replica", "Replica": "replica", "ReplicaOptions": "replica",
    "BUG_NO_DEDUP": "table", "TABLES": "table", "BadCommand": "table", "Command": "table",
    "TableState": "table", "decode_command": "table", "decode_entry": "table",
    "encode_batch": "table", "encode_command": "table",
}


def __getattr__(name: str) -> Any:
    if name == "DB_BUGS":
        value: Any = {
            __getattr__("BUG_STALE_READ"): "a read asked for as linearizable is served from the local table without a sync",
            __getattr__("BUG_NO_DEDUP"): "every copy of a retried write is applied (no deduplication by client id and seq)",
        }
    elif name in _HOME:
        value = getattr(importlib.import_module(f"delos_ref.db.{_HOME[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = ["DB_BUGS", *sorted(_HOME)]
