"""The NativeLoglet end to end (docs/design.md §5): on the simulator, then over real TCP and LMDB.

Simulated scenarios pin the behaviours the conformance suite cannot reach from the API alone:
LogServer crash and restart with state intact, progress on a majority, repair by check_tail,
finishing someone else's partial seal, reads from the co-located LogServer, a restarted
sequencer refusing its old loglet, and backpressure. The last test runs three LogServer
nodes on LMDB over loopback TCP in one process, restarts one, and checks its recovery.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import trio

from delos_ref.loglet import LogletUnavailable, SealedError, Tail
from delos_ref.loglet.native import (
    LOGSERVER_TABLES,
    SEQUENCER_TABLES,
    NativeLoglet,
    NativeLogletConfig,
    SequencerLimits,
    add_logserver,
    add_sequencer,
)
from delos_ref.loglet.native import storage as layout
from delos_ref.loglet.native.messages import Seal
from delos_ref.loglet.native.roles import LOGSERVER_ROLE
from delos_ref.runtime import Node
from delos_ref.sim import Simulation
from delos_ref.sim.workload_loglet import SIM_OPTIONS, SimNativeHarness, durable_tail, start_native
from delos_ref.storage import LmdbStorage
from transports.base import PeerAddress
from transports.codec import FrameCodec


@contextlib.asynccontextmanager
async def simulated(seed: int = 3, **kw):
    async with Simulation(seed).run() as sim:
        yield sim, SimNativeHarness(sim, start_native(sim, **kw))


async def append_n(loglet, n: int, tag: bytes = b"e") -> list[int]:
    return [await loglet.append(tag + b"%d" % i) for i in range(n)]


# ------------------------------------------------------------------------ LogServer faults


async def test_native_keeps_acknowledging_with_a_minority_of_logservers_down(autojump_clock):
    async with simulated() as (sim, h):
        c = h.client("c1")
        assert await append_n(c, 5) == list(range(5))
        sim.crash("s2")
        assert await append_n(c, 5, b"f") == list(range(5, 10))
        assert await c.check_tail() == Tail(10, False)


async def test_native_logserver_restart_keeps_entries_and_seal_bit(autojump_clock):
    async with simulated() as (sim, h):
        c = h.client("c1")
        await append_n(c, 8)
        await c.seal()
        sim.crash("s3")
        sim.restart("s3")
        await trio.sleep(0.1)
        st = layout.recover_logserver(sim.nodes["s3"].storages[LOGSERVER_ROLE])[h.config.loglet_id]
        assert st.sealed and st.local_tail == 8
        sim.crash("s1")  # s3 must now stand in for s1 in every majority
        assert await h.client("c2").check_tail() == Tail(8, True)
        with pytest.raises(SealedError):
            await c.append(b"late")


async def test_native_restarted_logserver_catches_up_from_the_sequencer(autojump_clock):
    async with simulated() as (sim, h):
        c = h.client("c1")
        sim.crash("s2")
        await append_n(c, 6)
        sim.restart("s2")
        await trio.sleep(0.5)  # a few retry ticks
        assert durable_tail(sim, "s2", h.config.loglet_id) == 6


async def test_native_check_tail_repairs_positions_onto_a_majority(autojump_clock):
    async with simulated() as (sim, h):
        sim.cut("q1", "s2")  # s2 never hears from the sequencer
        c = h.client("c1")
        await append_n(c, 5)
        assert durable_tail(sim, "s2", "L1") == 0
        await c.seal()
        sim.crash("s3")  # the majority left is s1 (tail 5) and s2 (tail 0)
        assert await c.check_tail() == Tail(5, True)
        assert durable_tail(sim, "s2", "L1") == 5, "check_tail repaired s2 before returning"
        sim.crash("s1")
        sim.restart("s3")
        got = await h.client("c2").read_next(0, 5)
        assert [e for _, e in got] == [b"e%d" % i for i in range(5)]


async def test_native_check_tail_finishes_a_partial_seal(autojump_clock):
    async with simulated() as (sim, h):
        c = h.client("c1")
        await append_n(c, 3)
        await c.node.endpoint.call("s1", Seal("L1", 0), timeout_s=1)  # someone sealed one server only
        sim.crash("s2")  # so that every probe majority includes the sealed s1
        assert await c.check_tail() == Tail(3, True)
        sealed = [s for s in h.config.logservers if layout.recover_logserver(sim.nodes[s].storages[LOGSERVER_ROLE])["L1"].sealed]
        assert len(sealed) >= h.config.majority
        with pytest.raises(SealedError):
            await c.append(b"late")


async def test_native_seal_without_a_majority_is_unavailable(autojump_clock):
    async with simulated() as (sim, h):
        sim.crash("s1")
        sim.crash("s2")
        with pytest.raises(LogletUnavailable):
            await h.client("c1").seal()


# ------------------------------------------------------------------------------- reads


async def test_native_reads_from_the_colocated_logserver_first(autojump_clock):
    async with simulated() as (sim, h):
        await append_n(h.client("c1"), 4)
        here = NativeLoglet(sim.node("s2"), h.config, options=SIM_OPTIONS)
        here.learn_tail(4)
        assert [e for _, e in await here.read_next(0, 4)] == [b"e%d" % i for i in range(4)]
        reads = {s: sim.node(s).roles[LOGSERVER_ROLE].statistics()["reads"] for s in h.config.logservers}
        assert reads == {"s1": 0, "s2": 1, "s3": 0}


async def test_native_read_falls_back_to_another_logserver(autojump_clock):
    async with simulated() as (sim, h):
        await append_n(h.client("c1"), 4)
        reader = h.client("c2")
        await reader.check_tail()
        sim.crash("s1")
        assert len(await reader.read_next(0, 4)) == 4


def _tail_queries(sim, since: int = 0) -> list[str]:
    """The LogServers that TailQuery requests reached, in order, from trace event ``since`` on."""
    return [e["dst"] for e in sim.trace.events[since:] if e.get("event") == "deliver" and e.get("msg") == "TailQuery" and e.get("kind") == 1]


async def test_check_tail_probes_a_majority_first_and_hedges_past_a_silent_logserver(autojump_clock):
    """``probe_majority_first`` (on nodes): check_tail asks the co-located LogServer and one
    other, taking turns, not all three. A silent LogServer among the first two costs one
    hedge (``read_hedge_s``), after which it is asked last: the next check_tail does not wait."""
    options = dataclasses.replace(SIM_OPTIONS, probe_majority_first=True)
    async with simulated() as (sim, h):
        await append_n(h.client("c1"), 4)
        here = NativeLoglet(sim.node("s2"), h.config, options=options)
        asked: list[list[str]] = []
        for _ in range(4):
            start = len(sim.trace.events)
            assert await here.check_tail() == Tail(4, False)
            asked.append(_tail_queries(sim, start))
        assert all(len(a) == 2 and "s2" in a for a in asked), asked  # a majority, its own first
        assert {s for a in asked for s in a} == {"s1", "s2", "s3"}  # the others take turns
        assert here.stats["hedges"] == 0

        sim.crash("s1")
        t0 = trio.current_time()
        for _ in range(2):  # one of these two asks s1 first, waits read_hedge_s, asks s3
            assert await here.check_tail() == Tail(4, False)
        assert here.stats["hedges"] == 1 and options.read_hedge_s <= trio.current_time() - t0 < 2 * options.read_hedge_s
        start, t0 = len(sim.trace.events), trio.current_time()
        for _ in range(3):  # s1's turn comes, but it is asked last now
            assert await here.check_tail() == Tail(4, False)
        assert sorted(_tail_queries(sim, start)) == ["s2", "s2", "s2", "s3", "s3", "s3"] and trio.current_time() - t0 < options.read_hedge_s


async def test_check_tail_asks_every_logserver_by_default(autojump_clock):
    async with simulated() as (sim, h):
        await append_n(h.client("c1"), 4)
        start = len(sim.trace.events)
        assert await NativeLoglet(sim.node("s2"), h.config, options=SIM_OPTIONS).check_tail() == Tail(4, False)
        assert sorted(_tail_queries(sim, start)) == ["s1", "s2", "s3"]


# --------------------------------------------------------------------------- sequencer


async def test_native_restarted_sequencer_refuses_its_old_loglet_but_seal_and_check_tail_work(autojump_clock):
    async with simulated() as (sim, h):
        c = h.client("c1")
        await append_n(c, 3)
        sim.crash("q1")
        sim.restart("q1")
        await trio.sleep(0.01)
        with pytest.raises(LogletUnavailable) as err:
            await c.append(b"x")
        # Conservative by design: a copy of a request sent before the restart could have been
        # sequenced by the old incarnation (the `log` sweep found that case, seed 10 with crash
        # faults), so the client cannot call this refusal definite. Here it did not land:
        assert err.value.may_have_landed
        await c.seal()
        assert await c.check_tail() == Tail(3, True)


async def test_native_many_appends_in_flight_from_one_client_with_backpressure(autojump_clock):
    limits = SequencerLimits(max_window=8, max_retained=64, max_dedupe=64)
    async with simulated(sequencer_limits=limits) as (sim, h):
        c = h.client("c1")
        got: list[int] = []

        async def one(i: int) -> None:
            got.append(await c.append(b"p%d" % i))

        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(one, i)
        assert sorted(got) == list(range(100))
        assert c.stats["busy"] > 0, "the small window pushed back"


async def test_native_append_many_gets_contiguous_positions(autojump_clock):
    async with simulated() as (sim, h):
        c = h.client("c1")
        await c.append(b"first")
        assert await c.append_many([b"a", b"b", b"c"]) == [1, 2, 3]


# ----------------------------------------------------------------------- TCP and LMDB


class TcpLmdbNode:
    """One in-process node on loopback TCP whose roles keep their state in LMDB.

    Its whole life (transport, storage, roles) runs in one task, so that stopping it closes
    everything in the order it was opened, as a process exit would.
    """

    def __init__(self, node_id: str, root, cfg: NativeLogletConfig, codec: FrameCodec) -> None:
        self.node_id, self.root, self.cfg, self.codec = node_id, root, cfg, codec
        self.node: Node | None = None

    async def start(self, nursery: trio.Nursery, peers: dict[str, PeerAddress]) -> PeerAddress:
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()
        return await nursery.start(self._life, peers)

    async def _life(self, peers: dict[str, PeerAddress], *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        from transports.tcp import open_tcp_transport

        storages = [LmdbStorage(self.root / self.node_id / "logserver", LOGSERVER_TABLES)]
        if self.node_id == self.cfg.sequencer:
            storages.append(LmdbStorage(self.root / self.node_id / "sequencer", SEQUENCER_TABLES))
        self.storages = storages
        try:
            with self.scope:
                async with open_tcp_transport(self.node_id, bind=PeerAddress("127.0.0.1", 0), peers=peers, codec=self.codec, max_backoff_s=0.05) as transport:
                    self.node = Node(self.node_id, transport)
                    add_logserver(self.node, storages[0])
                    if len(storages) > 1:
                        add_sequencer(self.node, storages[1])
                    async with trio.open_nursery() as inner:
                        await inner.start(self.node.run)
                        task_status.started(transport.address)
        finally:
            for storage in storages:
                storage.close()
            self.stopped.set()

    async def stop(self) -> None:
        self.scope.cancel()
        await self.stopped.wait()


async def test_native_over_tcp_with_lmdb_logservers_survives_a_logserver_restart(tmp_path):
    from transports.tcp import open_tcp_transport

    cfg = NativeLogletConfig("tcp-1", "n1", ("n1", "n2", "n3"))
    codec = FrameCodec(secret=b"test-secret")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nodes = {n: TcpLmdbNode(n, tmp_path, cfg, codec) for n in cfg.logservers}
            addresses = {n: await node.start(nursery, {}) for n, node in nodes.items()}
            for node in nodes.values():
                for peer, address in addresses.items():
                    node.node.transport.add_peer(peer, address)
            async with open_tcp_transport("client", bind=None, peers=addresses, codec=codec) as ct:
                async with trio.open_nursery() as client_tasks:
                    client_node = Node("client", ct)
                    await client_tasks.start(client_node.run)
                    await _tcp_scenario(NativeLoglet(client_node, cfg), nodes, addresses, ct, nursery)
                    client_tasks.cancel_scope.cancel()
            nursery.cancel_scope.cancel()


async def _tcp_scenario(loglet: NativeLoglet, nodes: dict, addresses: dict, ct, nursery: trio.Nursery) -> None:
    positions = await loglet.append_many([b"m%d" % i for i in range(10)])
    assert positions == list(range(10))
    await nodes["n3"].stop()
    assert [await loglet.append(b"x%d" % i) for i in range(5)] == list(range(10, 15)), "a majority keeps acknowledging"
    address = await nodes["n3"].start(nursery, addresses)
    for n in ("n1", "n2"):
        nodes[n].node.transport.add_peer("n3", address)
    ct.add_peer("n3", address)
    recovered = layout.recover_logserver(nodes["n3"].storages[0])["tcp-1"]
    assert recovered.local_tail >= 10 and not recovered.sealed, "n3 recovered what it had synced"
    await loglet.seal()
    await nodes["n2"].stop()  # n3 must now be part of every majority
    assert await loglet.check_tail() == Tail(15, True)
    assert layout.recover_logserver(nodes["n3"].storages[0])["tcp-1"].local_tail == 15, "caught up or repaired"
    got = await loglet.read_next(0, 15)
    assert [e for _, e in got] == [b"m%d" % i for i in range(10)] + [b"x%d" % i for i in range(5)]
    with pytest.raises(SealedError):
        await loglet.append(b"late")
