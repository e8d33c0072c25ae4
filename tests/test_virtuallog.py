"""The VirtualLog client (delos_ref/virtuallog/client.py) on the simulator: docs/design.md §2-§4, §7.

A simulated cluster of three server nodes, each hosting a Paxos acceptor (the MetaStore), a
LogServer and a sequencer role; client nodes each run a :class:`VirtualLog` over memory
loglets (one shared in-process store) and NativeLoglets. Each test pins one rule of the paper:
reconfiguration keeps positions gapless, racing reconfigurers converge with one winner, a
sealed error sends an append to the new segment, roll-forward finishes a dead reconfigurer's
work, hot swaps between kinds and sequencers are invisible to appenders, and reads span
segments.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

import pytest
import trio

from delos_ref.loglet import TrimmedError
from delos_ref.loglet.native import NativeLogletConfig, add_logserver, add_sequencer
from delos_ref.loglet.native.roles import LOGSERVER_ROLE, SEQUENCER_ROLE
from delos_ref.runtime import Node
from delos_ref.sim import Simulation
from delos_ref.sim.workload_loglet import SIM_OPTIONS
from delos_ref.virtuallog import (
    AppendFailed,
    AppendOutcomeUnknown,
    MemoryLogletConfig,
    MemoryLogletStore,
    NotBootstrapped,
    VirtualLog,
    VirtualLogOptions,
    default_registry,
)
from paxos.acceptor import Acceptor
from paxos.register import ClientTimeouts, MetaStoreClient

SERVERS = ("s1", "s2", "s3")
FAST = ClientTimeouts(deadline_s=2.0, call_timeout_s=0.2)
OPTIONS = VirtualLogOptions(roll_forward_s=0.5, poll_s=0.02)


def build_server(node: Node, storage_for: Any) -> None:
    paxos = storage_for("paxos")
    node.add_role("acceptor", Acceptor.recover(paxos), paxos)
    add_logserver(node, storage_for(LOGSERVER_ROLE))
    add_sequencer(node, storage_for(SEQUENCER_ROLE))


def native(loglet_id: str, sequencer: str = "s1") -> NativeLogletConfig:
    return NativeLogletConfig(loglet_id, sequencer, SERVERS)


class Cluster:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.memory = MemoryLogletStore()

    def client(self, name: str, options: VirtualLogOptions = OPTIONS) -> VirtualLog:
        node = self.sim.client(name)
        metastore = MetaStoreClient(node.endpoint, SERVERS, node.rng("metastore"), name, timeouts=FAST)
        registry = default_registry(memory=self.memory, node=node, native_options=SIM_OPTIONS)
        return VirtualLog(metastore, registry, name, options=options)


@contextlib.asynccontextmanager
async def cluster(seed: int = 0) -> AsyncIterator[Cluster]:
    async with Simulation(seed).run() as sim:
        for name in SERVERS:
            sim.add_node(name, build_server)
        yield Cluster(sim)


async def appended(vlog: VirtualLog, n: int, tag: str) -> list[int]:
    return [await vlog.append(f"{tag}{i}".encode()) for i in range(n)]


async def read_all(vlog: VirtualLog, lo: int = 0) -> list[tuple[int, bytes]]:
    tail = await vlog.check_tail()
    out: list[tuple[int, bytes]] = []
    while lo + len(out) < tail:
        got = await vlog.read_next(lo + len(out), tail)
        assert got, "read_next below the tail returns something"
        out.extend(got)
    return out


# ------------------------------------------------------------------------ bootstrap


async def test_bootstrap_installs_version_one_once(autojump_clock):
    async with cluster() as c:
        a, b = c.client("c1"), c.client("c2")
        with pytest.raises(NotBootstrapped):
            await a.append(b"x")
        assert await a.bootstrap(MemoryLogletConfig("m0")) is True
        assert await b.bootstrap(MemoryLogletConfig("other")) is False
        assert a.version == b.version == 1 and a.chain == b.chain


# -------------------------------------------------------------------- reconfig_extend


async def test_appends_across_reconfig_extend_keep_positions_gapless(autojump_clock):
    """§3.2: the sealed tail becomes the old segment's stop and the new segment's start."""
    async with cluster() as c:
        v = c.client("c1")
        await v.bootstrap(MemoryLogletConfig("m0"))
        first = await appended(v, 5, "a")
        assert await v.reconfig_extend(MemoryLogletConfig("m1")) is True
        second = await appended(v, 5, "b")
        assert first + second == list(range(10))
        assert [(s.start, s.stop) for s in v.chain.segments] == [(0, 5), (5, None)]
        assert await v.check_tail() == 10


async def test_racing_reconfig_extend_has_one_winner_and_both_converge(autojump_clock):
    """§3.2 step 3: the conditional write lets at most one racer install its chain."""
    async with cluster() as c:
        a, b = c.client("c1"), c.client("c2")
        await a.bootstrap(MemoryLogletConfig("m0"))
        await appended(a, 3, "a")
        results: dict[str, bool] = {}

        async def extend(v: VirtualLog, cfg: MemoryLogletConfig) -> None:
            results[v.client_id] = await v.reconfig_extend(cfg)

        async with trio.open_nursery() as n:
            n.start_soon(extend, a, MemoryLogletConfig("ma"))
            n.start_soon(extend, b, MemoryLogletConfig("mb"))
        assert sorted(results.values()) == [False, True]
        assert a.version == b.version == 2 and a.chain == b.chain
        assert a.chain.segments[0].stop == 3


async def test_append_that_hits_a_sealed_loglet_retries_on_the_new_segment(autojump_clock):
    """§3.2: "a client whose append fails with sealed fetches the latest chain and retries"."""
    async with cluster() as c:
        a, b = c.client("c1"), c.client("c2")
        await a.bootstrap(MemoryLogletConfig("m0"))
        assert await appended(b, 2, "b") == [0, 1]  # b caches version 1
        await a.reconfig_extend(MemoryLogletConfig("m1"))
        assert b.version == 1
        assert await b.append(b"after") == 2
        assert b.version == 2 and b.stats["sealed"] == 1
        assert c.memory.get("m1").statistics()["tail"] == 1


async def test_roll_forward_after_a_reconfigurer_dies_after_sealing(autojump_clock):
    """§3.2 roll-forward: a sealed loglet with no newer chain is extended with a clone."""
    async with cluster() as c:
        a, b = c.client("c1"), c.client("c2")
        await a.bootstrap(MemoryLogletConfig("m0"))
        await appended(a, 4, "a")
        await a.registry.loglet(a.chain.active).seal()  # step 1 of a reconfiguration; then a "dies"
        start = trio.current_time()
        assert await b.append(b"late") == 4
        assert trio.current_time() - start >= OPTIONS.roll_forward_s
        assert b.stats["roll_forwards"] == 1 and b.version == 2
        active = b.chain.active
        assert active.kind == "memory" and b.registry.config(active) != MemoryLogletConfig("m0")
        assert [(s.start, s.stop) for s in b.chain.segments] == [(0, 4), (4, None)]


# ------------------------------------------------------------------------- hot swap


async def swap_under_appender(app: VirtualLog, op: VirtualLog, configs: list[Any]) -> list[tuple[int, bytes]]:
    """A hot swap under load: ``op`` moves the log onto each of ``configs`` in turn, 0.1 s
    apart, while ``app`` appends in a loop (a failed append fails the test). Returns the
    acknowledged ``(position, entry)`` pairs."""
    acked: list[tuple[int, bytes]] = []
    done = trio.Event()

    async def appender() -> None:
        i = 0
        while not done.is_set():
            entry = b"e%d" % i
            acked.append((await app.append(entry), entry))
            i += 1
            await trio.sleep(0.003)

    async with trio.open_nursery() as n:
        n.start_soon(appender)
        for cfg in configs:
            await trio.sleep(0.1)
            assert await op.reconfig_extend(cfg) is True
        await trio.sleep(0.1)
        done.set()
    return acked


async def test_hot_swap_memory_native_native_under_a_concurrent_appender(autojump_clock):
    """§7: switching kinds and sequencers under live appends fails no client operation."""
    async with cluster() as c:
        app, op = c.client("app"), c.client("op")
        await op.bootstrap(MemoryLogletConfig("m0"))
        acked = await swap_under_appender(app, op, [native("N1", "s1"), native("N2", "s2")])
        assert [p for p, _ in acked] == list(range(len(acked)))
        assert [s.kind for s in op.chain.segments] == ["memory", "native", "native"]
        assert all(s.start < s.stop for s in op.chain.segments[:-1]), "each loglet took appends"
        assert await read_all(c.client("reader")) == acked


# ---------------------------------------------------------------------------- reads


async def test_reads_span_segments_and_respect_trims(autojump_clock):
    """§2 readNext goes to the segment that holds the range; trimmed positions are refused,
    and reconfig_truncate drops segments wholly below the trim point (no seal)."""
    async with cluster() as c:
        v = c.client("c1")
        await v.bootstrap(MemoryLogletConfig("m0"))
        await appended(v, 3, "a")
        await v.reconfig_extend(native("N1"))
        await appended(v, 3, "b")
        await v.reconfig_extend(MemoryLogletConfig("m2"))
        await appended(v, 2, "c")
        reader = c.client("r1")
        assert [e for _, e in await read_all(reader)] == [b"a0", b"a1", b"a2", b"b0", b"b1", b"b2", b"c0", b"c1"]
        assert await reader.read_next(2, 5) == [(2, b"a2"), (3, b"b0"), (4, b"b1")]
        await v.prefix_trim(4)
        assert await v.reconfig_truncate() is True
        assert v.chain.base == 3 and len(v.chain.segments) == 2
        with pytest.raises(TrimmedError):
            await reader.read_next(1, 8)
        assert await reader.read_next(4, 8) == [(4, b"b1"), (5, b"b2"), (6, b"c0"), (7, b"c1")]


async def test_reconfig_modify_repoints_a_sealed_segment(autojump_clock):
    """§2 reconfigModify: a sealed segment's config changes; its positions stay."""
    async with cluster() as c:
        v = c.client("c1")
        await v.bootstrap(MemoryLogletConfig("m0"))
        await appended(v, 2, "a")
        await v.reconfig_extend(MemoryLogletConfig("m1"))
        copy = c.memory.get("cold")
        await copy.append_many([b"a0", b"a1"])
        assert await v.reconfig_modify(0, MemoryLogletConfig("cold")) is True
        assert v.chain.segments[0].stop == 2 and v.registry.config(v.chain.segments[0]) == MemoryLogletConfig("cold")
        assert await c.client("r").read_next(0, 2) == [(0, b"a0"), (1, b"a1")]


# ------------------------------------------------------------------- failed appends


async def test_append_to_a_dead_sequencer_reports_an_unknown_outcome(autojump_clock):
    """§3.4: a failed append may still become durable; the caller is told so."""
    async with cluster() as c:
        v = c.client("c1", VirtualLogOptions(attempts=2, roll_forward_s=0.5))
        await v.bootstrap(native("N1", "s1"))
        assert await appended(v, 2, "a") == [0, 1]
        c.sim.crash("s1")  # the sequencer (a majority of LogServers and acceptors live on)
        with pytest.raises(AppendOutcomeUnknown):
            await v.append(b"lost?")


async def test_append_on_a_sealed_loglet_without_a_metastore_definitely_fails(autojump_clock):
    """§3.3: with the MetaStore down no successor can be learned or installed; the memory
    loglet refused the entry before giving it a position, so it certainly did not land."""
    async with cluster() as c:
        v = c.client("c1")
        await v.bootstrap(MemoryLogletConfig("m0"))
        await c.memory.get("m0").seal()
        c.sim.crash("s1")
        c.sim.crash("s2")
        with pytest.raises(AppendFailed):
            await v.append(b"x")


async def test_reads_below_an_acknowledged_append_need_no_check_tail(autojump_clock):
    """An acknowledged NativeLoglet append means every position before it is committed, so a
    client reads up to its own appends without asking for the tail (known_readable); beyond
    them it asks, and sees the others' later entries."""
    async with cluster() as c:
        v, w = c.client("c1"), c.client("c2")
        await v.bootstrap(native("N0"))
        await appended(w, 2, "w")
        mine = await appended(v, 2, "v")
        await appended(w, 2, "x")  # after v's appends: v cannot know of them yet
        loglet = v.registry.loglet(v.chain.active)
        before = loglet.stats["check_tails"]
        got = await v.read_next(0, mine[-1] + 1)
        assert [e for _, e in got] == [b"w0", b"w1", b"v0", b"v1"]
        assert loglet.stats["check_tails"] == before  # answered from what the appends taught
        assert [e for _, e in await v.read_next(4, 10)] == [b"x0", b"x1"]
        assert loglet.stats["check_tails"] > before  # past its own appends: it had to ask


async def test_a_sealed_tail_seen_elsewhere_does_not_let_a_stale_chain_read_a_zombie(autojump_clock):
    """known_readable rises only with what is committed for good. A sealed check_tail may
    count a zombie entry (stored by the old sequencer on its own LogServer only) above the
    stop the chain agreed on; a VirtualLog sharing the loglet client but holding the old
    chain must not read that zombie as the entry at its position. (Found in review: a shared
    registry is what a replica's poll_vlog and vlog do, db/hosting.py.)"""
    async with cluster() as c:
        v, w = c.client("c1"), c.client("c2")
        zombie = c.client("c3", VirtualLogOptions(attempts=1, roll_forward_s=0.5, poll_s=0.02))
        await v.bootstrap(native("N0"))
        poller = VirtualLog(v.metastore, v.registry, "c1.poll", options=OPTIONS)  # v's loglet clients
        for x in (v, w, zombie, poller):
            await x.refresh()
        await appended(v, 2, "a")
        c.sim.cut("s1", "s2")
        c.sim.cut("s1", "s3")  # s1's sequencer stores position 2 on s1 only: never committed
        with trio.move_on_after(1.0):
            with contextlib.suppress(Exception):
                await zombie.append(b"ZOMBIE")
        c.sim.cut("c2", "s1")
        c.sim.cut("s1", "c2")
        assert await w.reconfig_extend(native("N1", sequencer="s2")) is True  # sealed without s1
        assert [(s.start, s.stop) for s in w.chain.segments] == [(0, 2), (2, None)]
        assert await w.append(b"b") == 2
        c.sim.heal()
        c.sim.cut("c1", "s3")
        c.sim.cut("s3", "c1")  # the poller's sealed check_tail hears s1 (and its zombie) and s2
        assert await poller.check_tail() == 3
        c.sim.heal()
        assert [(s.start, s.stop) for s in v.chain.segments] == [(0, None)]  # v's chain is stale
        assert await v.read_next(2, 3) == [(2, b"b")] == await w.read_next(2, 3)
