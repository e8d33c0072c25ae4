"""The bootstrap loglet (delos_ref/loglet/bootstrap.py): entries stored through Paxos.

* the shared loglet conformance suite (tests/loglet_conformance.py) on the simulator, on
  clean links and on links that lose, duplicate and reorder messages, and over real TCP with
  the acceptors' state in LMDB;
* the seal marker is never confused with an entry, and a seal survives a minority crash;
* registry: the "bootstrap" kind builds it, clones it under a fresh id, and
  ``cluster_registry`` / ``initial_loglet`` offer it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from delos_ref.loglet import LogletUnavailable, SealedError, Tail
from delos_ref.loglet.bootstrap import BootstrapLoglet, BootstrapLogletConfig, BootstrapOptions
from delos_ref.runtime import Node
from delos_ref.sim.simulation import Simulation
from loglet_conformance import CHECKS, read_all
from paxos.acceptor import Acceptor
from transports.memory import LinkModel

ACCEPTORS = ("p1", "p2", "p3")


def _acceptor(node: Node, storage_for: Any) -> None:
    storage = storage_for("paxos")
    node.add_role("acceptor", Acceptor.recover(storage), storage)


@dataclass
class SimBootstrapHarness:
    sim: Simulation
    config: BootstrapLogletConfig
    clients: dict[str, BootstrapLoglet] = field(default_factory=dict)

    def client(self, name: str) -> BootstrapLoglet:
        if name not in self.clients:
            self.clients[name] = BootstrapLoglet(self.sim.client(name), self.config)
        return self.clients[name]


@contextlib.asynccontextmanager
async def bootstrap_sim_factory(seed: int = 0, link: LinkModel = LinkModel()):
    """Three simulated acceptors (memory storage that loses unsynced writes on a crash)."""
    async with Simulation(seed, link=link).run() as sim:
        for name in ACCEPTORS:
            sim.add_node(name, _acceptor)
        yield SimBootstrapHarness(sim, BootstrapLogletConfig("B1", ACCEPTORS))


FACTORIES = {
    "bootstrap-sim": lambda: bootstrap_sim_factory(seed=3),
    "bootstrap-lossy": lambda: bootstrap_sim_factory(seed=4, link=LinkModel(loss=0.05, duplicate=0.05, spike=0.05)),
}


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
@pytest.mark.parametrize("kind", sorted(FACTORIES))
async def test_bootstrap_loglet_conformance(kind, check, autojump_clock):
    async with FACTORIES[kind]() as harness:
        await check(harness)


# ---------------------------------------------------------------- over TCP with LMDB


class _TcpHarness:
    def __init__(self, node: Node, cfg: BootstrapLogletConfig) -> None:
        self._node, self._cfg, self._clients = node, cfg, {}

    def client(self, name: str) -> BootstrapLoglet:
        if name not in self._clients:
            self._clients[name] = BootstrapLoglet(self._node, self._cfg)
        return self._clients[name]


@contextlib.asynccontextmanager
async def bootstrap_tcp_lmdb_factory(root):
    """Three acceptors with LMDB storage on loopback TCP, in this process."""
    from delos_ref.storage import LmdbStorage
    from paxos.storage import TABLES
    from transports.base import PeerAddress
    from transports.codec import FrameCodec
    from transports.tcp import open_tcp_transport

    codec = FrameCodec(secret=b"bootstrap-secret")
    storages: list[LmdbStorage] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            nodes: dict[str, Node] = {}
            for name in ACCEPTORS:
                transport = await stack.enter_async_context(
                    open_tcp_transport(name, bind=PeerAddress("127.0.0.1", 0), peers={}, codec=codec, max_backoff_s=0.05)
                )
                storage = LmdbStorage(root / name / "paxos", TABLES)
                storages.append(storage)
                node = nodes[name] = Node(name, transport)
                node.add_role("acceptor", Acceptor.recover(storage), storage)
            addresses = {name: node.transport.address for name, node in nodes.items()}
            for node in nodes.values():
                for peer, address in addresses.items():
                    node.transport.add_peer(peer, address)
            client_transport = await stack.enter_async_context(open_tcp_transport("client", bind=None, peers=addresses, codec=codec))
            client = Node("client", client_transport)
            async with trio.open_nursery() as nursery:
                for node in [*nodes.values(), client]:
                    await nursery.start(node.run)
                yield _TcpHarness(client, BootstrapLogletConfig("B-tcp", ACCEPTORS))
                nursery.cancel_scope.cancel()
    finally:
        for storage in storages:
            storage.close()


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
async def test_bootstrap_loglet_conformance_over_tcp_with_lmdb(check, tmp_path):
    """The same checks on real sockets and real disks (real time: no mock clock)."""
    with trio.fail_after(60):
        async with bootstrap_tcp_lmdb_factory(tmp_path) as harness:
            await check(harness)


# --------------------------------------------------------------------- specific rules


async def test_entries_that_look_like_the_seal_marker_are_entries(autojump_clock):
    """Values are tagged: an entry whose bytes equal the marker (or are empty) is an entry."""
    async with bootstrap_sim_factory(seed=5) as h:
        c = h.client("c1")
        assert await c.append(b"S") == 0
        assert await c.append(b"") == 1
        assert await h.client("c2").check_tail() == Tail(2, False)
        assert await read_all(h.client("c2"), 0, 2) == [(0, b"S"), (1, b"")]


async def test_seal_survives_a_minority_crash_and_stops_stale_appenders(autojump_clock):
    """A client whose tail is stale (it appended before the seal) gets SealedError, and the
    sealed tail is the same after an acceptor crashes and restarts."""
    async with bootstrap_sim_factory(seed=6) as h:
        stale = h.client("stale")
        for i in range(3):
            await stale.append(b"e%d" % i)
        await h.client("sealer").append(b"e3")
        await h.client("sealer").seal()
        h.sim.crash("p1")
        with pytest.raises(SealedError) as err:
            await stale.append(b"late")
        assert not err.value.may_have_landed
        h.sim.restart("p1")
        h.sim.crash("p2")
        assert await h.client("other").check_tail() == Tail(4, True)
        assert [e for _, e in await read_all(h.client("other"), 0, 4)] == [b"e0", b"e1", b"e2", b"e3"]


async def test_append_without_a_majority_is_unavailable(autojump_clock):
    """With two of three acceptors down, an append fails within its deadline with
    LogletUnavailable (and says whether the entry may still land)."""
    from delos_ref.loglet import LogletUnavailable

    async with bootstrap_sim_factory(seed=7) as h:
        c = BootstrapLoglet(h.sim.client("c1"), h.config, options=BootstrapOptions(op_timeout_s=3.0))
        assert await c.append(b"x") == 0
        h.sim.crash("p1")
        h.sim.crash("p2")
        with pytest.raises(LogletUnavailable):
            await c.append(b"y")
        h.sim.restart("p1")
        tail = await h.client("c2").check_tail()
        assert tail.tail in (1, 2) and not tail.sealed  # "y" may or may not have landed


# ------------------------------------------------------------------------ the registry


def _cluster_cfg(ids: tuple[str, ...]):
    from delos_ref.cluster import ClusterConfig, NodeSpec

    return ClusterConfig("c", "tcp", "00" * 16, [NodeSpec(n, "127.0.0.1", 41000 + i) for i, n in enumerate(ids)])


async def test_cluster_registry_builds_and_clones_bootstrap_loglets(autojump_clock):
    from delos_ref.process import initial_loglet
    from delos_ref.virtuallog.chain import Chain
    from delos_ref.virtuallog.registry import cluster_registry

    ids = ("n1", "n2", "n3")
    cfg = initial_loglet(_cluster_cfg(ids), "bootstrap")
    assert cfg == BootstrapLogletConfig("B0", ids)
    async with Simulation(1).run() as sim:
        registry = cluster_registry(sim.client("client"), ids)
        assert {"bootstrap", "native"} <= set(registry.kinds)
        kind, params = registry.encode(cfg)
        seg = Chain.initial(kind, params).active
        loglet = registry.loglet(seg)
        assert type(loglet) is BootstrapLoglet and loglet.config == cfg
        clone_kind, clone_params = registry.clone(seg, "B0.clone")
    from transports.codec import decode_value

    assert clone_kind == "bootstrap" and decode_value(clone_params) == BootstrapLogletConfig("B0.clone", ids)
    with pytest.raises(ValueError, match="unknown initial loglet kind"):
        initial_loglet(_cluster_cfg(ids), "zk")


def test_bootstrap_config_refuses_bad_ids():
    with pytest.raises(ValueError):
        BootstrapLogletConfig("", ("n1",))
    with pytest.raises(ValueError):
        BootstrapLogletConfig("x" * 129, ("n1",))
    with pytest.raises(ValueError):
        BootstrapLogletConfig("B", ("n1", "n1"))


# ------------------------------------------------- the VirtualLog on a bootstrap loglet


async def extend_retrying(vlog, config, attempts: int = 5) -> bool:
    """reconfig_extend as an operator or a supervisor runs it: again after an unavailable
    loglet. (A bootstrap loglet's seal races the appenders for each version and can lose
    several rounds in a row under load: the seal has no priority over appends.)"""
    for _ in range(attempts - 1):
        try:
            return await vlog.reconfig_extend(config)
        except LogletUnavailable:
            continue
    return await vlog.reconfig_extend(config)


async def test_virtuallog_hot_swaps_from_bootstrap_to_native_in_the_simulator(autojump_clock):
    """A VirtualLog starts on a bootstrap loglet; appenders keep going across two
    reconfigurations (bootstrap -> native s1 -> native s2); every acknowledged entry is read
    back at its position. (The real-process version: tests/test_hotswap_cluster.py.)"""
    from test_virtuallog import SERVERS, cluster, native, read_all as read_vlog

    async with cluster(seed=21) as c:
        admin = c.client("admin")
        assert await admin.bootstrap(BootstrapLogletConfig("B0", SERVERS))
        acked: dict[int, bytes] = {}
        done = trio.Event()

        async def appender(name: str) -> None:
            vlog = c.client(name)
            i = 0
            while not done.is_set():
                entry = f"{name}-{i}".encode()
                pos = await vlog.append(entry)
                assert pos not in acked
                acked[pos] = entry
                i += 1

        async with trio.open_nursery() as nursery:
            for name in ("w1", "w2"):
                nursery.start_soon(appender, name)
            await trio.sleep(0.2)
            assert await extend_retrying(admin, native("N1", "s1"))
            await trio.sleep(0.2)
            assert await extend_retrying(admin, native("N2", "s2"))
            await trio.sleep(0.2)
            done.set()
        chain = await admin.refresh()
        assert [s.kind for s in chain.segments] == ["bootstrap", "native", "native"]
        assert chain.segments[0].stop > 0, "the bootstrap phase acknowledged appends"
        got = dict(await read_vlog(admin))
        assert all(got[p] == e for p, e in acked.items())


# ------------------------------------------------------------------ under every fault


@pytest.mark.parametrize("seed", range(6))
async def test_bootstrap_loglet_under_faults_keeps_every_acknowledged_entry(seed, autojump_clock):
    """Appenders and a sealer while the nemesis crashes a minority of acceptors (their
    unsynced writes lost), partitions and cuts links, on links that lose, duplicate and
    reorder. Checks: every acknowledged entry is read back at its position; each is below
    every sealed tail observed; an append invoked after the seal returned never succeeds."""
    from delos_ref.loglet import LogletUnavailable
    from delos_ref.sim.simulation import ALL_FAULTS, Nemesis, link_for

    async with bootstrap_sim_factory(seed=100 + seed, link=link_for(set(ALL_FAULTS))) as h:
        acked: dict[int, bytes] = {}
        sealed_tails: list[int] = []
        seal_returned: list[float] = []
        late_acks: list[int] = []
        outcomes = {"ok": 0, "unavailable": 0, "sealed": 0}

        async def appender(name: str) -> None:
            c = h.client(name)
            for i in range(1000):  # until the seal stops it
                invoked = trio.current_time()
                try:
                    pos = await c.append(b"%s-%d" % (name.encode(), i))
                except SealedError:
                    outcomes["sealed"] += 1
                    return
                except LogletUnavailable:
                    outcomes["unavailable"] += 1
                    continue
                outcomes["ok"] += 1
                assert pos not in acked, f"position {pos} acknowledged twice"
                acked[pos] = b"%s-%d" % (name.encode(), i)
                if seal_returned and invoked > seal_returned[0]:
                    late_acks.append(pos)

        async def sealer() -> None:
            await trio.sleep(1.0 + seed * 0.2)
            s = h.client("sealer")
            while True:
                try:
                    await s.seal()
                    break
                except LogletUnavailable:
                    continue
            seal_returned.append(trio.current_time())

        nemesis = Nemesis(h.sim, faults=set(ALL_FAULTS), crashable=list(ACCEPTORS), partitionable=[*ACCEPTORS, "w1", "w2", "w3", "sealer"], max_down=1, interval_s=(0.02, 0.2))
        with trio.fail_after(300):
            async with trio.open_nursery() as faults:
                faults.start_soon(nemesis.run)
                async with trio.open_nursery() as clients:
                    for name in ("w1", "w2", "w3"):
                        clients.start_soon(appender, name)
                    clients.start_soon(sealer)
                faults.cancel_scope.cancel()
            nemesis.heal_all()
            await trio.sleep(0.5)
            final = await h.client("final").check_tail()
            sealed_tails.append(final.tail)
            got = dict(await read_all(h.client("final"), 0, final.tail))
        assert final.sealed
        assert outcomes["ok"] > 0 and outcomes["sealed"] == 3, outcomes
        assert nemesis.stats["crashes"] + nemesis.stats["partitions"] + nemesis.stats["cuts"] > 0, nemesis.stats
        assert not late_acks, f"appends invoked after seal() returned were acknowledged at {late_acks}"
        assert all(p < min(sealed_tails) for p in acked), "every acknowledged position is below the sealed tail"
        assert all(got[p] == e for p, e in acked.items()), "every acknowledged entry is read back where it was acknowledged"
