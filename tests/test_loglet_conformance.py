"""The loglet conformance suite (tests/loglet_conformance.py) against every loglet kind.

Memory: the in-process loglet. Native: a NativeLoglet on the simulator (3 LogServers and a
sequencer node, real RPC over the memory transport with codec round trips), once on clean
links and once on links that lose, duplicate and reorder messages. Striped (docs/design.md):
over 2 and 3 memory loglets, over 2 NativeLoglets with rotating sequencers on the same 3
LogServers, and over 2 sharded NativeLoglets on lossy links. docs/design.md §2, §3.4.
"""

from __future__ import annotations

import contextlib

import pytest

from delos_ref.sim.workload_loglet import native_sim_factory
from delos_ref.sim.workload_striped import striped_sim_factory
from loglet_conformance import CHECKS, READ_ONLY_CHECKS, memory_factory, sealed_memory_factory, striped_memory_factory
from transports.memory import LinkModel

FACTORIES = {
    "memory": memory_factory,
    "native": lambda: native_sim_factory(seed=1),
    "native-lossy": lambda: native_sim_factory(seed=2, link=LinkModel(loss=0.05, duplicate=0.05, spike=0.05)),
    "striped-memory-2": lambda: striped_memory_factory(2),
    "striped-memory-3": lambda: striped_memory_factory(3),
    "striped-native-rotating": lambda: striped_sim_factory(seed=3, stripes=2),
    "striped-native-sharded-lossy": lambda: striped_sim_factory(seed=4, stripes=2, sharded=True, link=LinkModel(loss=0.05, duplicate=0.05, spike=0.05)),
}


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
@pytest.mark.parametrize("kind", sorted(FACTORIES))
async def test_loglet_conformance(kind, check, autojump_clock):
    async with FACTORIES[kind]() as harness:
        await check(harness)


# ------------------------------------------------------------- native over TCP and LMDB


class _TcpHarness:
    """Every client name gets its own NativeLoglet client (own known_tail, own requests);
    they share one client node and its TCP connections."""

    def __init__(self, node, cfg) -> None:
        self._node, self._cfg, self._clients = node, cfg, {}

    def client(self, name: str):
        from delos_ref.loglet.native import NativeLoglet

        if name not in self._clients:
            self._clients[name] = NativeLoglet(self._node, self._cfg)
        return self._clients[name]


@contextlib.asynccontextmanager
async def native_tcp_lmdb_factory(root):
    """Three LogServers with LMDB storage (sequencer on n1) on loopback TCP, in this process."""
    import trio

    from delos_ref.loglet.native import NativeLogletConfig
    from delos_ref.runtime import Node
    from test_native_loglet import TcpLmdbNode
    from transports.codec import FrameCodec
    from transports.tcp import open_tcp_transport

    cfg = NativeLogletConfig("conformance-tcp", "n1", ("n1", "n2", "n3"))
    codec = FrameCodec(secret=b"conformance-secret")
    async with trio.open_nursery() as nursery:
        nodes = {n: TcpLmdbNode(n, root, cfg, codec) for n in cfg.logservers}
        addresses = {n: await node.start(nursery, {}) for n, node in nodes.items()}
        for node in nodes.values():
            for peer, address in addresses.items():
                node.node.transport.add_peer(peer, address)
        async with open_tcp_transport("client", bind=None, peers=addresses, codec=codec) as transport:
            client = Node("client", transport)
            async with trio.open_nursery() as client_tasks:
                await client_tasks.start(client.run)
                yield _TcpHarness(client, cfg)
                client_tasks.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
async def test_loglet_conformance_native_over_tcp_with_lmdb(check, tmp_path):
    """The same checks on real sockets and real disks (real time: no mock clock)."""
    import trio

    with trio.fail_after(60):
        async with native_tcp_lmdb_factory(tmp_path) as harness:
            await check(harness)


# ------------------------------------------------------------ the read-only part (cold)


class _ColdHarness:
    """A cold copy in ``store``, filled with ``write_copy``; each client name its own
    ColdLoglet (own cache and trim point), as separate processes would have."""

    def __init__(self, store) -> None:
        self._store, self._config, self._clients = store, None, {}

    async def fill(self, entries):
        from delos_ref.loglet.cold import write_copy

        self._config = await write_copy(self._store, "conformance", entries)

    def client(self, name):
        from delos_ref.loglet.cold import ColdLoglet

        if name not in self._clients:
            self._clients[name] = ColdLoglet(self._config, self._store)
        return self._clients[name]


@contextlib.asynccontextmanager
async def cold_memory_factory():
    from delos_ref.loglet.cold import MemoryColdStore

    yield _ColdHarness(MemoryColdStore())


READ_ONLY_FACTORIES = {"sealed-memory": sealed_memory_factory, "cold-memory-store": cold_memory_factory}


@pytest.mark.parametrize("check", READ_ONLY_CHECKS, ids=[c.__name__.removeprefix("check_ro_") for c in READ_ONLY_CHECKS])
@pytest.mark.parametrize("kind", sorted(READ_ONLY_FACTORIES))
async def test_loglet_conformance_read_only(kind, check, autojump_clock):
    async with READ_ONLY_FACTORIES[kind]() as harness:
        await check(harness)


@pytest.mark.parametrize("check", READ_ONLY_CHECKS, ids=[c.__name__.removeprefix("check_ro_") for c in READ_ONLY_CHECKS])
async def test_loglet_conformance_read_only_cold_on_disk(check, tmp_path):
    """The cold loglet over real files (FileColdStore: atomic writes, fsync), real time."""
    import trio

    from delos_ref.loglet.cold import FileColdStore

    with trio.fail_after(30):
        await check(_ColdHarness(FileColdStore(tmp_path / "cold")))
