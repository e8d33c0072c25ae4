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

from delos_ref.loglet import SealedError, Tail
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
