"""Networks of connected transports, one factory per implementation, for the conformance suite.

Every factory has the same shape::

    async with make_network(n_nodes, secret=SECRET, clients=0) as nodes:
        ...  # nodes[i].node_id == f"n{i}" for i < n_nodes, then clients "c0", "c1", ...

The first ``n_nodes`` transports know each other's addresses (they are each other's
``peers``). The ``clients`` after them know every node but no node knows them: they stand
for a CLI or an application process, reachable only once it has spoken (a UDP return
address, a TCP connection it dialed). Real sockets listen on 127.0.0.1 with ephemeral ports,
so tests never collide on a port. Factories use the codec's default frame bound
(``DEFAULT_MAX_FRAME_BYTES``), with ``secret`` as the cluster secret (None: no MAC).

Adding an implementation is one line in :data:`FACTORIES` (plus its factory)::

    FACTORIES["memory"] = make_memory_network
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import AsyncIterator, Protocol

from transports.base import PeerAddress, Transport
from transports.codec import FrameCodec
from transports.tcp import open_tcp_transport
from transports.udp import open_udp_transport

SECRET = b"conformance-suite-secret"
LOCALHOST = PeerAddress("127.0.0.1", 0)


class NetworkFactory(Protocol):
    def __call__(self, n_nodes: int, *, secret: bytes | None = SECRET, clients: int = 0) -> AbstractAsyncContextManager[list[Transport]]: ...


def node_ids(n_nodes: int, clients: int) -> list[str]:
    """The ids a factory must use: ``n0..n{n-1}`` then ``c0..c{clients-1}``."""
    return [f"n{i}" for i in range(n_nodes)] + [f"c{i}" for i in range(clients)]


def introduce(nodes: list[Transport], n_nodes: int) -> None:
    """Tell every transport the address of every *node* (never of a client)."""
    for transport in nodes:
        for node in nodes[:n_nodes]:
            if node is not transport:
                transport.add_peer(node.node_id, node.address)  # type: ignore[attr-defined]


@asynccontextmanager
async def make_udp_network(n_nodes: int, *, secret: bytes | None = SECRET, clients: int = 0) -> AsyncIterator[list[Transport]]:
    codec = FrameCodec(secret=secret)
    async with AsyncExitStack() as stack:
        nodes: list[Transport] = [
            await stack.enter_async_context(open_udp_transport(node_id, bind=LOCALHOST, peers={}, codec=codec))
            for node_id in node_ids(n_nodes, clients)
        ]
        introduce(nodes, n_nodes)
        yield nodes


@asynccontextmanager
async def make_tcp_network(n_nodes: int, *, secret: bytes | None = SECRET, clients: int = 0) -> AsyncIterator[list[Transport]]:
    codec = FrameCodec(secret=secret)
    async with AsyncExitStack() as stack:
        nodes: list[Transport] = []
        for i, node_id in enumerate(node_ids(n_nodes, clients)):
            bind = LOCALHOST if i < n_nodes else None  # clients do not listen
            opened = open_tcp_transport(node_id, bind=bind, peers={}, codec=codec, max_backoff_s=0.05)
            nodes.append(await stack.enter_async_context(opened))
        introduce(nodes, n_nodes)
        yield nodes


@asynccontextmanager
async def make_memory_network(n_nodes: int, *, secret: bytes | None = SECRET, clients: int = 0) -> AsyncIterator[list[Transport]]:
    """The simulated network, driven in real time (no mock clock) with its default link model.

    Frames round-trip through the codec (without a MAC: the simulator has no adversary)."""
    import trio

    from transports.memory import SimNetwork

    net = SimNetwork("conformance")
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        yield [net.attach(node_id) for node_id in node_ids(n_nodes, clients)]
        nursery.cancel_scope.cancel()


FACTORIES: dict[str, NetworkFactory] = {
    "memory": make_memory_network,
    "udp": make_udp_network,
    "tcp": make_tcp_network,
}
