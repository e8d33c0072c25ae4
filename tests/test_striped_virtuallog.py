"""The striped kind in the VirtualLog (issue 18; docs/design.md §6, §7): its chain encoding, hot
swaps native -> striped -> native under a live appender, ``diagnose`` naming a successor with
the dead sequencer replaced in its stripe, and supervisors replacing a striped segment whose
stripe's sequencer crashed -- all on the simulator.
"""

from __future__ import annotations

from typing import Any

import trio

from delos_ref.loglet import Membership
from delos_ref.loglet.native import NativeLogletConfig, add_logserver, add_sequencer
from delos_ref.loglet.native.roles import LOGSERVER_ROLE, SEQUENCER_ROLE
from delos_ref.loglet.striped import StripedLoglet, StripedLogletConfig
from delos_ref.ping import PingCore
from delos_ref.runtime import Node
from delos_ref.sim import Simulation
from delos_ref.virtuallog import Segment, VirtualLog
from delos_ref.virtuallog.chain import decode_chain, encode_chain
from delos_ref.virtuallog.registry import STRIPED, striped_config
from delos_ref.virtuallog.supervisor import Supervisor, SupervisorOptions
from paxos.acceptor import Acceptor
from test_virtuallog import SERVERS, Cluster, cluster, native, read_all, swap_under_appender


def rotating(registry: Any, loglet_id: str, stripes: int = 2) -> StripedLogletConfig:
    """Stripe j sequenced on SERVERS[j], every stripe on all three LogServers."""
    return striped_config(registry, loglet_id, [NativeLogletConfig(f"{loglet_id}.{j}", SERVERS[j], SERVERS) for j in range(stripes)])


async def test_a_striped_segment_round_trips_through_the_chain(autojump_clock):
    async with cluster() as c:
        v = c.client("c1")
        cfg = rotating(v.registry, "S1")
        await v.bootstrap(cfg)
        chain = decode_chain(encode_chain(v.chain))
        assert chain.active.kind == STRIPED and v.registry.config(chain.active) == cfg
        clone = v.registry.config(Segment(0, None, *v.registry.clone(chain.active, "S2")))
        assert [s.sequencer for s in map(v.registry.config, (Segment(0, None, s.kind, s.params) for s in clone.stripes))] == ["s1", "s2"]
        assert clone.loglet_id == "S2"


async def test_hot_swap_native_striped_native_under_a_live_appender(autojump_clock):
    async with cluster() as c:
        app, op = c.client("app"), c.client("op")
        await op.bootstrap(native("N1", "s1"))
        acked = await swap_under_appender(app, op, [rotating(op.registry, "S1"), rotating(op.registry, "S2", 3), native("N2", "s2")])
        positions = [p for p, _ in acked]
        assert positions == sorted(set(positions)), "one appender: positions only grow"
        assert [s.kind for s in op.chain.segments] == ["native", "striped", "striped", "native"]
        assert all(s.start < s.stop for s in op.chain.segments[:-1]), "each loglet took appends"
        log = dict(await read_all(c.client("reader")))
        assert all(log[p] == e for p, e in acked), "every acknowledged entry reads back in place"
        # Any other position is a filler (b"") or the first copy of an append the VirtualLog
        # retried because its attempt may have landed when the seal came (retry_unknown).
        entries = {e for _, e in acked}
        assert all(log[p] in entries or log[p] == b"" for p in log if p not in positions)


async def test_diagnose_replaces_the_dead_sequencer_in_its_stripe(autojump_clock):
    async with cluster() as c:
        v = c.client("c1")
        await v.bootstrap(rotating(v.registry, "S1"))
        await v.append(b"x")
        loglet = v.registry.loglet(v.chain.active)
        assert isinstance(loglet, StripedLoglet)
        healthy = Membership(frozenset(SERVERS), SERVERS)
        assert await loglet.diagnose(healthy, "S2") is None
        c.sim.crash("s2")  # stripe 1's sequencer
        verdict = await loglet.diagnose(Membership(frozenset({"s1", "s3"}), SERVERS), "S2")
        assert verdict is not None and "stripe 1" in verdict.reason
        succ = verdict.successor
        assert isinstance(succ, StripedLogletConfig) and succ.loglet_id == "S2"
        inner = [v.registry.config(Segment(0, None, s.kind, s.params)) for s in succ.stripes]
        assert [(i.loglet_id, i.sequencer) for i in inner] == [("S2.0", "s1"), ("S2.1", "s3")]


SUPERVISOR = SupervisorOptions(interval_s=0.2, suspect_s=1.0, stable_s=2.0, check_s=0.25, jitter_s=0.2, quiet_s=1.0)


def supervised_server(c: Cluster):
    def build(node: Node, storage_for: Any) -> None:
        paxos = storage_for("paxos")
        node.add_role("ping", PingCore(node.node_id, 0, lambda want_stats: (tuple(sorted(node.roles)), {})))
        node.add_role("acceptor", Acceptor.recover(paxos), paxos)
        add_logserver(node, storage_for(LOGSERVER_ROLE))
        add_sequencer(node, storage_for(SEQUENCER_ROLE))
        vlog = c.vlog_on(node, f"{node.node_id}@{node.seed}")
        supervisor = Supervisor(node, vlog, SERVERS, SERVERS, options=SUPERVISOR)
        node.add_service("supervisor", supervisor.run, supervisor.statistics)

    return build


class SupervisedCluster(Cluster):
    def vlog_on(self, node: Node, name: str) -> VirtualLog:
        from delos_ref.sim.workload_loglet import SIM_OPTIONS
        from delos_ref.virtuallog import VirtualLogOptions, default_registry
        from paxos.register import MetaStoreClient

        from test_virtuallog import FAST

        metastore = MetaStoreClient(node.endpoint, SERVERS, node.rng("metastore"), name, timeouts=FAST)
        return VirtualLog(metastore, default_registry(node=node, native_options=SIM_OPTIONS), name, options=VirtualLogOptions(roll_forward_s=0.5, poll_s=0.02))


async def test_supervisors_replace_a_striped_segment_whose_stripe_sequencer_died(autojump_clock):
    async with Simulation(11).run() as sim:
        c = SupervisedCluster(sim)
        for name in SERVERS:
            sim.add_node(name, supervised_server(c))
        v = c.client("app")
        await v.bootstrap(rotating(v.registry, "S1"))
        before = [await v.append(b"b%d" % i) for i in range(10)]
        await trio.sleep(3.0)  # the detectors' views settle
        sim.crash("s2")  # stripe 1's sequencer
        crashed_at = trio.current_time()
        after = []
        with trio.move_on_after(15):
            while len(after) < 10:
                try:
                    after.append((await v.append(b"a%d" % len(after)), b"a%d" % len(after)))
                except Exception:  # noqa: BLE001 - appends fail until the supervisors move on
                    await trio.sleep(0.1)
        assert len(after) == 10, f"appends did not resume within 15 virtual seconds of the crash at {crashed_at}"
        chain = await v.refresh()
        assert chain.active.kind == STRIPED and len(chain.segments) >= 2
        succ = v.registry.config(chain.active)
        sequencers = [v.registry.config(Segment(0, None, s.kind, s.params)).sequencer for s in succ.stripes]
        assert "s2" not in sequencers, f"the dead sequencer was replaced in its stripe: {sequencers}"
        log = dict(await read_all(c.client("reader")))
        assert [log[p] for p in before] == [b"b%d" % i for i in range(10)]
        assert all(log[p] == e for p, e in after), "every acknowledged entry reads back in place"
