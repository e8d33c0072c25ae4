"""The NativeLoglet a ``delos-ref up`` cluster hosts until the VirtualLog manages loglets.

Every node of a cluster hosts a LogServer and a sequencer role (``delos_ref/process.py``);
issue 4 fixes the one loglet they serve by default: sequencer on the first node, a LogServer
on every node, a fixed id. Clients and CLI commands build it with :func:`default_config`::

    async with open_client(cfg) as client:
        loglet = NativeLoglet(client, default_config(cfg))

The sequencer serves a loglet in one incarnation only (``sequencer.py``): once the first
node restarts, this loglet refuses appends (``unavailable``) and a new instance is needed --
the VirtualLog's job, not this helper's.
"""

from __future__ import annotations

from typing import Any, Iterable

from delos_ref.loglet.native.messages import NativeLogletConfig

#: The id of the default loglet of a cluster.
DEFAULT_LOGLET_ID = "L0"


def default_config(cluster_or_ids: Any, loglet_id: str = DEFAULT_LOGLET_ID) -> NativeLogletConfig:
    """The default NativeLoglet of a cluster: sequencer = first node, LogServers = all nodes.

    ``cluster_or_ids`` is a :class:`delos_ref.cluster.ClusterConfig` (anything with ``.nodes``
    whose items have ``.id``) or an iterable of node ids in cluster order.
    """
    nodes: Iterable[Any] = getattr(cluster_or_ids, "nodes", cluster_or_ids)
    ids = tuple(n if isinstance(n, str) else n.id for n in nodes)
    if not ids:
        raise ValueError("default_config: a cluster has at least one node")
    return NativeLogletConfig(loglet_id, sequencer=ids[0], logservers=ids)
