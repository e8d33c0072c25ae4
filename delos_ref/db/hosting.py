"""How a node hosts its database replica (on a real node and in the simulator).

A :class:`~delos_ref.db.replica.Replica` is async code (it awaits the VirtualLog), not a pure
core, so it is not added with ``Node.add_role``; it joins the node's roles as a service with
the same two methods a role runner has -- ``run(task_status=...)`` and ``statistics()`` -- so
``Node.run`` starts it with the others, ``delos-ref status`` lists it, and a crash (the node's
cancel scope) stops it with everything else.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from delos_ref.db.replica import Replica, ReplicaOptions
from delos_ref.storage import Storage
from delos_ref.virtuallog import VirtualLog, VirtualLogOptions
from delos_ref.virtuallog.registry import LogletRegistry

REPLICA_ROLE = "replica"

#: The replica's VirtualLog retries appends whose outcome is unknown, after looking for them
#: (exactly-once appends: each append call stores its entry at most once). Copies made by a
#: client's retries through other replicas are deduplicated by the table. An append pending
#: for 0.25 s looks whether the chain moved on (a replica whose cached chain names a dead
#: sequencer finds the new one sooner; the KV write gap on a failover is one failover).
REPLICA_VLOG_OPTIONS = VirtualLogOptions(retry_unknown=True, watch_after_s=0.25)


def add_replica(node: Any, metastore: Any, registry: LogletRegistry, storage: Storage, peers: list[str] | tuple[str, ...], *,
                vlog_options: VirtualLogOptions = REPLICA_VLOG_OPTIONS, options: ReplicaOptions = ReplicaOptions(),
                bugs: frozenset[str] = frozenset()) -> Replica:
    """Build ``node``'s replica (its own VirtualLog client) and add it to the node's roles;
    the node must not be running yet."""
    assert REPLICA_ROLE not in node.roles, f"node {node.node_id} hosts a replica already"
    # Unique per incarnation: the VirtualLog names the loglets its roll-forwards create by it.
    incarnation = node.rng("replica", "incarnation").getrandbits(32)
    name = f"{node.node_id}.replica.{incarnation:08x}"
    vlog = VirtualLog(metastore, registry, name, options=vlog_options)
    # Idle polls try once: a poll that fails is simply retried later (with backoff).
    poll_vlog = VirtualLog(metastore, registry, name + ".poll", options=dataclasses.replace(vlog_options, attempts=1))
    replica = Replica(node, vlog, storage, peers, poll_vlog=poll_vlog, options=options, bugs=bugs)
    node.roles[REPLICA_ROLE] = replica
    return replica
