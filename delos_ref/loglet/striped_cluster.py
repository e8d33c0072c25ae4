"""StripedLoglets of NativeLoglets on a cluster's nodes: the seed's two layouts (docs/design.md §6).

* **Rotating sequencer** (default): N NativeLoglets over the *same* LogServers, stripe j
  sequenced on the j-th sequencer node (wrapping), so N sequencers share the ordering work.
* **Sharded** (``sharded=True``): the LogServers are split into N disjoint, equal sets, one per
  stripe (the remainder is left out), each stripe sequenced as above; storage divides too.

``sequencers`` names the stripes' sequencers explicitly (one per stripe), ``logservers`` the
LogServers to use (default: every LogServer node of the cluster). Bad layouts raise
``ValueError`` with a one-line reason (the CLI prints it).
"""

from __future__ import annotations

from typing import Sequence

from delos_ref.loglet.native.messages import NativeLogletConfig
from delos_ref.loglet.striped import MAX_STRIPES, Stripe, StripedLogletConfig, stripe_id
from transports.codec import encode_value

#: The registry's name for the NativeLoglet kind (``delos_ref.virtuallog.registry.NATIVE``).
NATIVE_KIND = "native"


def striped_natives(
    loglet_id: str,
    stripes: int,
    *,
    sequencer_nodes: Sequence[str],
    logserver_nodes: Sequence[str],
    sharded: bool = False,
    sequencers: Sequence[str] | None = None,
    logservers: Sequence[str] | None = None,
) -> list[NativeLogletConfig]:
    """The stripes' NativeLoglet configs, ids ``<loglet_id>.<j>``; see the module docstring."""
    if not 1 <= stripes <= MAX_STRIPES:
        raise ValueError(f"--stripes must be 1..{MAX_STRIPES}, got {stripes}")
    servers = list(logservers or logserver_nodes)
    if len(set(servers)) != len(servers) or not servers:
        raise ValueError(f"LogServers must be distinct and at least one: {','.join(servers)}")
    if sequencers:
        if len(sequencers) != stripes:
            raise ValueError(f"--sequencers names {len(sequencers)} nodes for {stripes} stripes: give one per stripe")
        chosen = list(sequencers)
    else:
        if not sequencer_nodes:
            raise ValueError("the cluster has no sequencer node")
        chosen = [sequencer_nodes[j % len(sequencer_nodes)] for j in range(stripes)]
    if sharded:
        width = len(servers) // stripes
        if width < 1:
            raise ValueError(f"--sharded: {len(servers)} LogServers cannot make {stripes} disjoint sets")
        sets = [tuple(servers[j * width:(j + 1) * width]) for j in range(stripes)]
    else:
        sets = [tuple(servers)] * stripes
    return [NativeLogletConfig(stripe_id(loglet_id, j), chosen[j], sets[j]) for j in range(stripes)]


def striped_native_config(loglet_id: str, natives: Sequence[NativeLogletConfig]) -> StripedLogletConfig:
    """The StripedLoglet ``loglet_id`` over these NativeLoglets, in stripe order."""
    return StripedLogletConfig(loglet_id, tuple(Stripe(NATIVE_KIND, encode_value(n)) for n in natives))
