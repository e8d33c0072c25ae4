"""Putting the NativeLoglet's pure cores on a node: recovery from storage, and the read effect.

This is the only NativeLoglet module that knows about the runtime. ``add_logserver`` recovers
the LogServer's state from its storage (seal bits, tails and trim points exactly as the last
synced transaction left them), builds the pure core, and teaches the role's runner how to
carry out :class:`~delos_ref.loglet.native.logserver.ReadEntries` -- a storage scan followed
by a reply. ``add_sequencer`` recovers the set of loglets the node sequenced in an earlier
incarnation, so that it refuses them (see ``sequencer.py``).

Both are meant to be called from a node's build function, which the simulator calls again
on every restart with the same (crash-surviving) storage::

    def build(node, storage_for):
        add_logserver(node, storage_for("logserver"))
        add_sequencer(node, storage_for("sequencer"))
"""

from __future__ import annotations

from delos_ref.loglet.native import storage as layout
from delos_ref.loglet.native.logserver import LogServerCore, LogServerLimits, ReadEntries
from delos_ref.loglet.native.sequencer import TICK_TIMER, SequencerCore, SequencerLimits
from delos_ref.runtime import Node, RoleRunner
from delos_ref.storage import Storage

LOGSERVER_ROLE = "logserver"
SEQUENCER_ROLE = "sequencer"


def add_logserver(
    node: Node,
    storage: Storage,
    *,
    limits: LogServerLimits = LogServerLimits(),
    bugs: frozenset[str] = frozenset(),
) -> RoleRunner:
    """Host the LogServer role for every loglet naming ``node``; state recovered from ``storage``."""
    core = LogServerCore(node.node_id, layout.recover_logserver(storage), limits=limits, bugs=bugs)

    async def read_entries(effect: ReadEntries) -> None:
        entries = layout.read_entries(storage, effect.loglet_id, effect.lo, effect.hi, effect.limit, effect.max_bytes)
        await node.endpoint.reply(effect.to, effect.rid, effect.reply(entries))

    return node.add_role(LOGSERVER_ROLE, core, storage, extra_effects={ReadEntries: read_entries})


def add_sequencer(
    node: Node,
    storage: Storage,
    *,
    limits: SequencerLimits = SequencerLimits(),
    bugs: frozenset[str] = frozenset(),
) -> RoleRunner:
    """Host the sequencer role for every loglet naming ``node`` as its sequencer."""
    rtt = node.endpoint.rtt
    if rtt is None:
        core = SequencerCore(node.node_id, layout.recover_sequencer(storage), limits=limits, bugs=bugs)
        return node.add_role(SEQUENCER_ROLE, core, storage)
    # Across a slow network: more Stores in flight per LogServer (rule 2 of sequencer.py; sized
    # by the path's least recent round trip, not srtt, which a busy node inflates), and
    # a slow LogServer retried no sooner than a round trip could bring its answer (the tick is
    # 50 ms; across a slower network, a tick per round trip), see delos_ref/rtt.py.
    core = SequencerCore(node.node_id, layout.recover_sequencer(storage), limits=limits, bugs=bugs, round_trip=rtt.min_rtt)
    return node.add_role(SEQUENCER_ROLE, core, storage, timer_floors={TICK_TIMER: rtt.max_rto})
