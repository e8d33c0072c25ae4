"""Transport conformance, and what the real-socket transports must survive (transports/).

Part 1 runs against every entry of ``transport_factories.FACTORIES`` (udp, tcp, and the
simulated network once it registers): the contract of :mod:`transports.base`.

Part 2 is for UDP and TCP on real loopback sockets: garbage and wrong-secret bytes from a raw
socket, a port already taken, and (TCP) a peer restart, backpressure, the hello handshake and
the one-connection-per-pair rule.

Every test body runs under ``trio.fail_after`` so that nothing can hang; real sockets, so
real time (no MockClock). No assertion is about how long anything took: timeouts only bound
waits, and ``move_on_after`` only observes that a send is still blocked.
"""

from __future__ import annotations

import random
import socket
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

import pytest
import trio
from transport_factories import FACTORIES, SECRET

from delos_ref.rpc import RpcEndpoint
from transports.base import PeerAddress, Transport, TransportClosed, Unreachable
from transports.codec import KIND_ONEWAY, KIND_REPLY, KIND_REQUEST, Envelope, FrameCodec, FrameReader, MessageTooLarge, message
from transports.tcp import AddressInUse, Backoff, TcpHello, open_tcp_transport
from transports.udp import MAX_DATAGRAM_BYTES, open_udp_transport

TEST_TIMEOUT_S = 10
LOCALHOST = PeerAddress("127.0.0.1", 0)
CODEC = FrameCodec(secret=SECRET)
NET_KINDS = ["udp", "tcp"]


@message("test.transport.ping")
class Ping:
    seq: int
    data: bytes = b""


def ping(src: str, dst: str, seq: int, *, kind: int = KIND_ONEWAY, rid: int = 0, data: bytes = b"") -> Envelope:
    return Envelope(src, dst, kind, rid, Ping(seq, data))


async def wait_until(condition: Callable[[], bool], poll_s: float = 0.005) -> None:
    """Poll until ``condition()``; the test's ``fail_after`` bounds the wait."""
    while not condition():
        await trio.sleep(poll_s)


async def send_until_received(sender: Transport, receiver: Transport, *, retry_s: float = 0.1) -> Envelope:
    """Send pings until one arrives: for links that may lose messages while they recover."""
    seq = 0
    while True:
        seq += 1
        await sender.send(ping(sender.node_id, receiver.node_id, seq))
        with trio.move_on_after(retry_s):
            return await receiver.receive()


# ============================================================ part 1: conformance


@pytest.fixture(params=sorted(FACTORIES))
def make_network(request):
    return FACTORIES[request.param]


async def test_round_trip_delivers_request_and_reply(make_network):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with make_network(2) as (a, b):
            await a.send(ping("n0", "n1", 1, kind=KIND_REQUEST, rid=42))
            request = await b.receive()
            await b.send(Envelope("n1", request.src, KIND_REPLY, request.rid, Ping(2)))
            reply = await a.receive()
    assert request == ping("n0", "n1", 1, kind=KIND_REQUEST, rid=42)
    assert reply == Envelope("n1", "n0", KIND_REPLY, 42, Ping(2))


async def test_many_messages_flow_both_ways(make_network):
    count = 300
    with trio.fail_after(TEST_TIMEOUT_S):
        async with make_network(2) as (a, b):
            got: dict[str, list[int]] = {"n0": [], "n1": []}

            async def pump(src: Transport, dst: Transport) -> None:
                for seq in range(count):
                    await src.send(ping(src.node_id, dst.node_id, seq))

            async def drain(t: Transport) -> None:
                for _ in range(count):
                    got[t.node_id].append((await t.receive()).payload.seq)

            async with trio.open_nursery() as nursery:
                for t in (a, b):
                    nursery.start_soon(drain, t)
                nursery.start_soon(pump, a, b)
                nursery.start_soon(pump, b, a)
    assert sorted(got["n0"]) == sorted(got["n1"]) == list(range(count))


async def test_envelope_fields_arrive_unchanged(make_network):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with make_network(3) as (a, b, c):
            await a.send(Envelope("n0", "n2", KIND_REQUEST, 2**64 - 1, Ping(7, b"\x00\xff")))
            await b.send(Envelope("n1", "n2", KIND_ONEWAY, 0, Ping(8)))
            got = sorted([await c.receive(), await c.receive()], key=lambda e: e.src)
    assert got[0] == Envelope("n0", "n2", KIND_REQUEST, 2**64 - 1, Ping(7, b"\x00\xff"))
    assert got[1] == Envelope("n1", "n2", KIND_ONEWAY, 0, Ping(8))


async def test_reply_reaches_a_client_not_in_peers(make_network):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with make_network(1, clients=1) as (server, client):
            assert client.node_id == "c0"
            await client.send(ping("c0", "n0", 1, kind=KIND_REQUEST, rid=9))
            request = await server.receive()
            await server.send(Envelope("n0", request.src, KIND_REPLY, request.rid, Ping(2)))
            reply = await client.receive()
    assert reply == Envelope("n0", "c0", KIND_REPLY, 9, Ping(2))


async def test_too_large_message_is_refused_before_anything_is_sent(make_network):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with make_network(2) as (a, b):
            huge = b"x" * (CODEC.max_frame_bytes + 1)
            with pytest.raises(MessageTooLarge):
                await a.send(ping("n0", "n1", 1, data=huge))
            assert a.statistics().sent == 0
            await a.send(ping("n0", "n1", 2))  # and the transport still works
            assert (await b.receive()).payload.seq == 2


async def test_unknown_destination_is_unreachable(make_network):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with make_network(2) as (a, _b):
            with pytest.raises(Unreachable):
                await a.send(ping("n0", "nobody", 1))
            assert a.statistics().sent == 0


async def test_operations_after_close_raise_transport_closed(make_network):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with make_network(2) as (a, _b):
            await a.aclose()
            await a.aclose()  # idempotent
            with pytest.raises(TransportClosed):
                await a.send(ping("n0", "n1", 1))
            with pytest.raises(TransportClosed):
                await a.receive()


async def test_close_wakes_a_blocked_receiver(make_network):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with make_network(1) as (a,):
            outcome: list[type] = []

            async def receive_one() -> None:
                with pytest.raises(TransportClosed):
                    await a.receive()
                outcome.append(TransportClosed)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive_one)
                await trio.sleep(0.01)  # let it block
                await a.aclose()
    assert outcome == [TransportClosed]


async def test_receive_in_a_cancelled_scope_raises_and_keeps_the_message(make_network):
    """Fast paths still check for cancellation first, and never consume what they do not return."""
    with trio.fail_after(TEST_TIMEOUT_S):
        async with make_network(2) as (a, b):
            await a.send(ping("n0", "n1", 1))
            await wait_until(lambda: b.statistics().received == 1)
            with trio.CancelScope() as scope:
                scope.cancel()
                await b.receive()
            assert scope.cancelled_caught
            assert (await b.receive()).payload.seq == 1


# ================================================= part 2: real sockets (udp, tcp)


def open_net(kind: str, node_id: str, **kwargs):
    opener = {"udp": open_udp_transport, "tcp": open_tcp_transport}[kind]
    kwargs.setdefault("bind", LOCALHOST)
    kwargs.setdefault("peers", {})
    kwargs.setdefault("codec", CODEC)
    return opener(node_id, **kwargs)


async def send_raw(kind: str, address: PeerAddress, data: bytes) -> trio.SocketStream | None:
    """Deliver ``data`` from a raw socket: one datagram (udp), or a fresh stream (tcp, returned)."""
    if kind == "udp":
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            await sock.sendto(data, (address.host, address.port))
        return None
    stream = await trio.open_tcp_stream(address.host, address.port)
    await stream.send_all(data)
    return stream


async def assert_closed_by_peer(stream: trio.SocketStream) -> None:
    """The transport closed the connection: we read EOF (or a reset)."""
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass


BAD_BYTES: dict[str, Callable[[], bytes]] = {
    "garbage": lambda: b"\x00not a frame at all" * 10,
    "wrong-secret": lambda: FrameCodec(secret=b"another cluster").encode(ping("n1", "n0", 1)),
    "no-secret": lambda: FrameCodec().encode(ping("n1", "n0", 1)),
    "truncated-frame": lambda: CODEC.encode(ping("n1", "n0", 1))[:-5] + b"\x00" * 40,
}


@pytest.mark.parametrize("bad", sorted(BAD_BYTES))
@pytest.mark.parametrize("kind", NET_KINDS)
async def test_bad_bytes_are_rejected_and_a_legit_peer_is_still_served(kind, bad):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net(kind, "n0") as n0, open_net(kind, "n1", peers={"n0": LOCALHOST}) as n1:
            n1.add_peer("n0", n0.address)
            raw = await send_raw(kind, n0.address, BAD_BYTES[bad]())
            await wait_until(lambda: n0.statistics().rejected >= 1)
            if raw is not None:
                await assert_closed_by_peer(raw)  # TCP: that connection, and only it, is closed
                await raw.aclose()
            await n1.send(ping("n1", "n0", 2))
            assert (await n0.receive()).payload.seq == 2
            assert n0.statistics().received == 1


@pytest.mark.parametrize("kind", NET_KINDS)
async def test_binding_a_taken_port_raises_address_in_use(kind):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net(kind, "n0") as n0:
            with pytest.raises(AddressInUse, match=str(n0.address)) as caught:
                async with open_net(kind, "n1", bind=n0.address):
                    pass
    assert isinstance(caught.value, OSError)


@pytest.mark.parametrize("kind", NET_KINDS)
async def test_a_message_to_oneself_is_delivered_locally(kind):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net(kind, "n0") as n0:
            await n0.send(ping("n0", "n0", 5))
            assert (await n0.receive()).payload.seq == 5


async def test_udp_refuses_a_frame_over_the_datagram_bound_naming_both_sizes():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net("udp", "n0") as n0, open_net("udp", "n1") as n1:
            n0.add_peer("n1", n1.address)
            with pytest.raises(MessageTooLarge, match=rf"\d+ bytes, over the UDP datagram bound of {MAX_DATAGRAM_BYTES}"):
                await n0.send(ping("n0", "n1", 1, data=b"x" * MAX_DATAGRAM_BYTES))
            assert n0.statistics().sent == 0


async def test_udp_datagram_for_another_node_is_rejected():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net("udp", "n0") as n0:
            await send_raw("udp", n0.address, CODEC.encode(ping("n1", "n9", 1)))
            await wait_until(lambda: n0.statistics().rejected >= 1)
            assert n0.statistics().received == 0


async def test_tcp_carries_frames_larger_than_one_read():
    payload = bytes(range(256)) * 4096  # 1 MiB: many reads, split anywhere
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net("tcp", "n0") as n0, open_net("tcp", "n1") as n1:
            n0.add_peer("n1", n1.address)
            for seq in range(3):
                await n0.send(ping("n0", "n1", seq, data=payload))
            got = [await n1.receive() for _ in range(3)]
    assert [e.payload.seq for e in got] == [0, 1, 2]
    assert all(e.payload.data == payload for e in got)


async def test_tcp_sending_resumes_after_the_peer_restarts_on_the_same_port():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net("tcp", "n0", max_backoff_s=0.05) as n0:
            async with open_net("tcp", "n1") as n1:
                port = n1.address
                n0.add_peer("n1", port)
                assert (await send_until_received(n0, n1)).src == "n0"
            # n1 is gone: what n0 sends now is lost (counted), never an error.
            await n0.send(ping("n0", "n1", 99))
            async with open_net("tcp", "n1", bind=port) as n1:
                assert (await send_until_received(n0, n1)).src == "n0"
                await n1.send(ping("n1", "n0", 7))  # the reply goes back on n0's new connection
                assert (await n0.receive()).payload.seq == 7
            assert n0.statistics().extra["dials"] >= 2


@asynccontextmanager
async def a_peer_that_never_reads() -> AsyncIterator[PeerAddress]:
    """The address of a TCP listener that accepts connections and never reads from them."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    accepted: list[trio.SocketStream] = []

    async def accept_and_never_read() -> None:
        accepted.append(await listeners[0].accept())
        await trio.sleep_forever()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_and_never_read)
            yield PeerAddress("127.0.0.1", listeners[0].socket.getsockname()[1])
            nursery.cancel_scope.cancel()
    finally:
        for stream in accepted:
            await stream.aclose()
        for listener in listeners:
            await listener.aclose()


async def test_tcp_send_blocks_when_the_peer_does_not_read():
    """Backpressure: a tiny send queue and a peer that never reads; send must end up waiting."""
    with trio.fail_after(TEST_TIMEOUT_S):
        async with a_peer_that_never_reads() as sink:
            async with open_net("tcp", "n0", peers={"sink": sink}, send_queue_frames=4) as n0:
                chunk = b"x" * 65536
                completed = 0
                with trio.move_on_after(0.5) as blocked:
                    for seq in range(100_000):
                        await n0.send(ping("n0", "sink", seq, data=chunk))
                        completed += 1
                assert blocked.cancelled_caught, "send never waited: the queue is not bounded"
                # What was accepted fits the kernel buffers plus the 4-frame queue: far less
                # than what we tried to send.
                assert completed < 1000


async def test_tcp_roles_do_not_wait_for_a_peer_that_does_not_read():
    """A role's sends (``wait=False``, as :class:`RpcEndpoint` casts and replies) never wait
    on a full queue: they drop (counted), and the other peers are still served. Waiting here
    stalled a whole sequencer behind one LogServer cut off by iptables."""
    with trio.fail_after(TEST_TIMEOUT_S):
        async with a_peer_that_never_reads() as sink, open_net("tcp", "n1") as n1:
            peers = {"sink": sink, "n1": PeerAddress("127.0.0.1", n1.address.port)}
            async with open_net("tcp", "n0", peers=peers, send_queue_frames=4) as n0:
                endpoint = RpcEndpoint(n0, random.Random(0))
                chunk = b"x" * 65536
                with trio.move_on_after(TEST_TIMEOUT_S / 2) as stuck:
                    for seq in range(2000):
                        await endpoint.cast("sink", Ping(seq, chunk))
                        if seq % 100 == 0:
                            await endpoint.cast("n1", Ping(seq))
                assert not stuck.cancelled_caught, "a cast waited for the peer that does not read"
                full = n0.statistics().extra["send_queue_full"]
                assert full > 1000 and n0.statistics().dropped >= full
                got = [(await n1.receive()).payload.seq for _ in range(20)]
                assert got == list(range(0, 2000, 100)), "the peer that reads lost nothing"
                # A request still waits (backpressure on a caller), as before.
                with trio.move_on_after(0.5) as blocked:
                    for seq in range(100):
                        await n0.send(ping("n0", "sink", seq, data=chunk))
                assert blocked.cancelled_caught, "send() without wait=False never waited"


async def test_tcp_simultaneous_dials_settle_on_one_connection():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net("tcp", "n0") as n0, open_net("tcp", "n1") as n1:
            n0.add_peer("n1", n1.address)
            n1.add_peer("n0", n0.address)
            async with trio.open_nursery() as nursery:  # both dial at the same moment
                nursery.start_soon(n0.send, ping("n0", "n1", 1))
                nursery.start_soon(n1.send, ping("n1", "n0", 1))
            assert (await n0.receive()).payload.seq == 1
            assert (await n1.receive()).payload.seq == 1
            await wait_until(lambda: n0.statistics().extra["connections_open"] == 1)
            await wait_until(lambda: n1.statistics().extra["connections_open"] == 1)
            for seq in range(2, 12):  # and the one left carries both directions
                await n0.send(ping("n0", "n1", seq))
                await n1.send(ping("n1", "n0", seq))
                assert (await n1.receive()).payload.seq == seq
                assert (await n0.receive()).payload.seq == seq


def hello(src: str, dst: str) -> bytes:
    return CODEC.encode(Envelope(src, dst, KIND_ONEWAY, 0, TcpHello(src)))


@pytest.mark.parametrize(
    "first_frame",
    [
        pytest.param(lambda: CODEC.encode(ping("x1", "n0", 1)), id="not-a-hello"),
        pytest.param(lambda: hello("x1", "n7"), id="hello-to-another-node"),
        pytest.param(lambda: CODEC.encode(Envelope("x1", "n0", KIND_ONEWAY, 0, TcpHello("x2"))), id="hello-src-mismatch"),
    ],
)
async def test_tcp_connection_without_a_valid_hello_is_closed(first_frame):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net("tcp", "n0") as n0:
            raw = await send_raw("tcp", n0.address, first_frame())
            await assert_closed_by_peer(raw)
            await raw.aclose()
            assert n0.statistics().rejected == 1
            assert n0.statistics().received == 0


async def test_tcp_raw_client_is_answered_on_its_own_connection():
    """A client says hello, sends one misaddressed and one good envelope, and reads the reply."""
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net("tcp", "n0") as n0:
            frames = hello("x1", "n0") + CODEC.encode(ping("x1", "n9", 1)) + CODEC.encode(ping("x1", "n0", 2))
            raw = await send_raw("tcp", n0.address, frames)
            assert (await n0.receive()).payload.seq == 2
            assert n0.statistics().rejected == 1  # the one addressed to n9
            await n0.send(ping("n0", "x1", 3))
            reply = await read_one_frame(raw)
            await raw.aclose()
            await wait_until(lambda: n0.statistics().extra["connections_open"] == 0)
            with pytest.raises(Unreachable):  # the client left: no address, no connection
                await n0.send(ping("n0", "x1", 4))
    assert reply == ping("n0", "x1", 3)


async def read_one_frame(stream: trio.SocketStream) -> Envelope:
    reader = FrameReader(CODEC)
    while True:
        data = await stream.receive_some(65536)
        assert data, "the transport closed the connection instead of replying"
        envs = reader.feed(data)
        if envs:
            return envs[0]


async def test_tcp_client_without_listener_reaches_a_server_and_hears_back():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net("tcp", "n0") as server:
            async with open_net("tcp", "cli", bind=None, peers={"n0": server.address}) as client:
                assert client.address is None
                await client.send(ping("cli", "n0", 1, kind=KIND_REQUEST, rid=1))
                request = await server.receive()
                await server.send(Envelope("n0", "cli", KIND_REPLY, request.rid, Ping(2)))
                assert (await client.receive()).payload.seq == 2
            await wait_until(lambda: server.statistics().extra["connections_open"] == 0)
            with pytest.raises(Unreachable):
                await server.send(ping("n0", "cli", 3))



async def test_udp_learned_address_never_overrides_a_configured_one():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net("udp", "n0") as n0, open_net("udp", "n1") as n1:
            n0.add_peer("n1", n1.address)
            with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as impostor:
                await impostor.bind(("127.0.0.1", 0))
                await impostor.sendto(CODEC.encode(ping("n1", "n0", 1)), (n0.address.host, n0.address.port))
                assert (await n0.receive()).payload.seq == 1  # accepted: it is authenticated
                await n0.send(ping("n0", "n1", 2))
                assert (await n1.receive()).payload.seq == 2  # but the reply goes to the real n1
            assert n0.statistics().extra["learned_addresses"] == 0


async def test_tcp_connection_that_never_says_hello_is_closed_after_the_timeout():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net("tcp", "n0", connect_timeout_s=0.05) as n0:
            raw = await trio.open_tcp_stream(n0.address.host, n0.address.port)
            await assert_closed_by_peer(raw)
            await raw.aclose()
            assert n0.statistics().rejected == 1


async def test_tcp_refuses_connections_beyond_its_bound():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_net("tcp", "n0", max_connections=1) as n0:
            first = await send_raw("tcp", n0.address, hello("x1", "n0"))
            await wait_until(lambda: n0.statistics().extra["accepts"] == 1)
            second = await trio.open_tcp_stream(n0.address.host, n0.address.port)
            await assert_closed_by_peer(second)
            assert n0.statistics().extra["connections_refused"] == 1
            await first.send_all(CODEC.encode(ping("x1", "n0", 1)))  # the first is still served
            assert (await n0.receive()).payload.seq == 1
            for stream in (first, second):
                await stream.aclose()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backoff_doubles_within_its_bound_and_replays_from_its_seed(seed):
    def delays(rng_seed: int) -> list[float]:
        backoff = Backoff(random.Random(rng_seed), min_s=0.01, max_s=0.1)
        return [backoff.next_delay_s() for _ in range(10)]

    got = delays(seed)
    assert got == delays(seed), "same seed, same jitter"
    assert all(0.005 <= d <= 0.1 for d in got), "each delay is in [min/2, max]"
    assert got[-1] >= 0.05, "it grows to the bound (at least half of it, with jitter)"
