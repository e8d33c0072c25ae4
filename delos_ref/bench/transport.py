"""How fast a transport moves small messages, next to a bare TCP echo measured in the same run.

What is measured
    Two transports of the requested kind -- a server that echoes every envelope back to its
    sender, and a client -- exchange ``bench.echo`` messages in a *closed loop* with a fixed
    number of messages outstanding:

    * ``outstanding = 1`` (case ``round_trip``): ping-pong; p50/p99 are round-trip latencies;
    * ``outstanding = 64`` (case ``pipelined``): a new message leaves each time a reply
      arrives; ops/s is the throughput, p50/p99 the latency under that load.

    One *op* is one echoed message: a request and its reply, so two messages cross the
    transport per op (``ops_per_s`` x 2 = messages per second).

    The *baseline* runs the same loop over a bare trio TCP echo: prebuilt frame bytes of the
    same size as the transport's frames, one ``send_all`` per message, the echo server and the
    client each reading exactly one frame length per message. No codec, no queues, no tasks
    between the socket and the loop: the floor that trio and the kernel set. The cost of the
    transport is the distance from it.

How to read the numbers
    Server and client run as tasks in *one* trio run, in one process, on one core: every
    number includes both ends' work, and no number includes a network. That is on purpose --
    it measures our code, not a NIC -- and it is the same for the baseline. Frames carry an
    HMAC (``BENCH_SECRET``), as in a cluster with a secret: computing it is part of the
    codec's cost, and the baseline's frames have the same length, MAC included. Time is read with
    ``time.perf_counter`` (benchmarks measure real time; protocol code never does). Each case
    is preceded by a short warm-up that is not counted. UDP may lose a message even on
    loopback (a socket buffer overflows under pipelining); the loop then waits
    ``LOSS_TIMEOUT_S`` and refills its window, so a loss shows as lower throughput, never as a
    hang.

Adding a transport kind is one entry in :data:`PAIRS`: an async context manager that yields a
connected ``(client, server)`` pair.
"""

from __future__ import annotations

import functools
import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import trio

from delos_ref.bench import BadBenchArgument, machine
from transports.base import PeerAddress, Transport
from transports.codec import KIND_REPLY, KIND_REQUEST, Envelope, FrameCodec, message
from transports.tcp import open_tcp_transport
from transports.udp import open_udp_transport

BENCH_SECRET = b"delos-ref benchmark secret"  # frames are authenticated, as in a real cluster
CLIENT_ID = "bench-client"
SERVER_ID = "bench-server"
WARMUP_S = 0.2
LOSS_TIMEOUT_S = 0.2  # a reply not back by then is taken as lost (UDP)
DRAIN_TIMEOUT_S = 0.5  # after a case, how long we wait for the replies still in flight
PROGRESS_EVERY_S = 0.1


@message("bench.echo")
class BenchEcho:
    seq: int
    data: bytes


# --------------------------------------------------------------- transport pairs


@asynccontextmanager
async def _tcp_pair(codec: FrameCodec) -> AsyncIterator[tuple[Transport, Transport]]:
    """A listening server and a client that dials it (like the CLI: no listener of its own)."""
    async with open_tcp_transport(SERVER_ID, bind=PeerAddress("127.0.0.1", 0), peers={}, codec=codec) as server:
        assert server.address is not None, "the server listens"
        async with open_tcp_transport(CLIENT_ID, bind=None, peers={SERVER_ID: server.address}, codec=codec) as client:
            yield client, server


@asynccontextmanager
async def _udp_pair(codec: FrameCodec) -> AsyncIterator[tuple[Transport, Transport]]:
    """A server and a client it does not know: it learns the client's address from its requests."""
    async with open_udp_transport(SERVER_ID, bind=None, peers={}, codec=codec) as server:
        async with open_udp_transport(CLIENT_ID, bind=None, peers={SERVER_ID: server.address}, codec=codec) as client:
            yield client, server


@asynccontextmanager
async def _memory_pair(codec: FrameCodec) -> AsyncIterator[tuple[Transport, Transport]]:
    """The simulated network with zero link delay, in real time: the cost of the simulator's
    stepped delivery plus a codec round trip per message."""
    from transports.memory import LinkModel, SimNetwork

    net = SimNetwork("bench", link=LinkModel(delay_min_s=0.0, delay_max_s=0.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        yield net.attach(CLIENT_ID), net.attach(SERVER_ID)
        nursery.cancel_scope.cancel()


PAIRS: dict[str, Callable[[FrameCodec], AbstractAsyncContextManager[tuple[Transport, Transport]]]] = {
    "memory": _memory_pair,
    "udp": _udp_pair,
    "tcp": _tcp_pair,
}


# ------------------------------------------------------------------ the closed loop


@dataclass(slots=True)
class _Loop:
    """One side of a closed loop: how to send message ``seq``, and which seq came back."""

    send: Callable[[int], Awaitable[None]]
    receive: Callable[[], Awaitable[int]]


class _Progress:
    """Turns "this much of the planned time is done" into a fraction for a progress bar."""

    def __init__(self, callback: Callable[[float], None] | None, cases: int, seconds: float) -> None:
        self._callback = callback
        self._total_s = cases * (seconds + WARMUP_S)
        self._done_s = 0.0  # the planned time of every stretch already finished
        self._reported = 0.0
        self._next_report = 0.0

    def tick(self, elapsed_s: float, planned_s: float) -> None:
        """``elapsed_s`` into a stretch of ``planned_s``; reported at most every PROGRESS_EVERY_S."""
        now = time.perf_counter()
        if self._callback is None or now < self._next_report:
            return
        self._next_report = now + PROGRESS_EVERY_S
        self._report(self._done_s + min(elapsed_s, planned_s))

    def stretch_done(self, planned_s: float) -> None:
        self._done_s += planned_s
        if self._callback is not None:
            self._report(self._done_s)

    def _report(self, done_s: float) -> None:
        fraction = min(1.0, max(self._reported, done_s / self._total_s))  # never goes back
        self._reported = fraction
        assert self._callback is not None
        self._callback(fraction)


async def _run_case(loop: _Loop, first_seq: int, *, outstanding: int, seconds: float, progress: _Progress) -> tuple[dict, int]:
    """Keep ``outstanding`` messages in flight for ``seconds``; return a result row and the next seq."""
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    seq = first_seq

    async def send_next() -> None:
        nonlocal seq
        sent_at[seq] = time.perf_counter()
        await loop.send(seq)
        seq += 1

    for _ in range(outstanding):
        await send_next()
    start = time.perf_counter()
    deadline = start + seconds
    while (now := time.perf_counter()) < deadline:
        progress.tick(now - start, seconds)
        with trio.move_on_after(LOSS_TIMEOUT_S) as waited:
            got = await loop.receive()
        if waited.cancelled_caught:  # lost: forget what is in flight and refill the window
            sent_at.clear()
            for _ in range(outstanding):
                await send_next()
            continue
        sent = sent_at.pop(got, None)
        if sent is None:
            continue  # a reply we had given up on, or a duplicate
        latencies.append(time.perf_counter() - sent)
        await send_next()
    elapsed_s = time.perf_counter() - start
    await _drain(loop, sent_at)
    progress.stretch_done(seconds)
    return _row(latencies, outstanding, elapsed_s), seq


async def _drain(loop: _Loop, in_flight: dict[int, float]) -> None:
    """Collect the replies still in flight, so the next case starts from a quiet link."""
    with trio.move_on_after(DRAIN_TIMEOUT_S):
        while in_flight:
            in_flight.pop(await loop.receive(), None)


def _row(latencies: list[float], outstanding: int, elapsed_s: float) -> dict:
    latencies.sort()

    def percentile_us(p: float) -> float:
        if not latencies:
            return float("nan")
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e6, 1)

    return {
        "case": "round_trip" if outstanding == 1 else "pipelined",
        "outstanding": outstanding,
        "p50_us": percentile_us(0.50),
        "p99_us": percentile_us(0.99),
        "ops_per_s": round(len(latencies) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
    }


async def _measure(loop: _Loop, levels: tuple[int, ...], seconds: float, progress: _Progress) -> list[dict]:
    rows = []
    seq = 0
    for outstanding in levels:
        _, seq = await _run_case(loop, seq, outstanding=outstanding, seconds=WARMUP_S, progress=progress)
        row, seq = await _run_case(loop, seq, outstanding=outstanding, seconds=seconds, progress=progress)
        rows.append(row)
    return rows


# ------------------------------------------------------------ the transport under test


async def _echo_server(server: Transport) -> None:
    while True:
        env = await server.receive()
        await server.send(Envelope(server.node_id, env.src, KIND_REPLY, env.rid, env.payload))


def _transport_loop(client: Transport, payload: bytes) -> _Loop:
    async def send(seq: int) -> None:
        await client.send(Envelope(CLIENT_ID, SERVER_ID, KIND_REQUEST, seq, BenchEcho(seq, payload)))

    async def receive() -> int:
        return (await client.receive()).rid

    return _Loop(send, receive)


async def _measure_transport(kind: str, codec: FrameCodec, payload: bytes, levels: tuple[int, ...], seconds: float, progress: _Progress) -> list[dict]:
    async with PAIRS[kind](codec) as (client, server):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_echo_server, server)
            rows = await _measure(_transport_loop(client, payload), levels, seconds, progress)
            nursery.cancel_scope.cancel()
    return rows


# ------------------------------------------------------------ the bare TCP baseline


async def _receive_exact(stream: trio.SocketStream, size: int) -> None:
    """Read exactly ``size`` bytes (one frame), as a length-prefixed reader would."""
    remaining = size
    while remaining:
        data = await stream.receive_some(remaining)
        if not data:
            raise trio.BrokenResourceError("bare echo: connection closed mid-frame")
        remaining -= len(data)


async def _measure_baseline(frame: bytes, levels: tuple[int, ...], seconds: float, progress: _Progress) -> list[dict]:
    async def echo(stream: trio.SocketStream) -> None:
        try:
            while True:
                await _receive_exact(stream, len(frame))
                await stream.send_all(frame)
        except trio.BrokenResourceError:
            return  # the client left

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            replies = iter(range(2**62))  # TCP keeps order: the n-th reply answers the n-th send

            async def send(seq: int) -> None:
                await stream.send_all(frame)

            async def receive() -> int:
                await _receive_exact(stream, len(frame))
                return next(replies)

            rows = await _measure(_Loop(send, receive), levels, seconds, progress)
        nursery.cancel_scope.cancel()
    return rows


# ---------------------------------------------------------------------- entry point


async def bench_transport(
    transport: str,
    *,
    seconds: float = 2.0,
    payload_bytes: int = 100,
    outstanding_levels: tuple[int, ...] = (1, 64),
    progress: Callable[[float], None] | None = None,
) -> dict:
    """Measure ``transport`` ("udp" or "tcp") and the bare TCP echo baseline, in this trio run.

    Returns ``{"bench": "transport", "machine": {...}, "results": [row...], "baseline":
    [row...]}``, one row per outstanding level: ``{"case", "outstanding", "p50_us",
    "p99_us", "ops_per_s"}``. ``progress``, if given, is called with a fraction in [0, 1].
    Takes about ``2 * len(outstanding_levels) * (seconds + WARMUP_S)`` seconds.
    """
    if transport not in PAIRS:
        raise BadBenchArgument(f"unknown transport {transport!r}; expected one of {sorted(PAIRS)}")
    if seconds <= 0 or payload_bytes < 0 or not outstanding_levels or min(outstanding_levels) < 1:
        raise ValueError("seconds > 0, payload_bytes >= 0, and at least one outstanding level >= 1")
    levels = tuple(outstanding_levels)
    codec = FrameCodec(secret=BENCH_SECRET)
    payload = b"\xa5" * payload_bytes
    typical = 100_000  # a sequence number of typical encoded width, for same-size frames
    frame = codec.encode(Envelope(CLIENT_ID, SERVER_ID, KIND_REQUEST, typical, BenchEcho(typical, payload)))
    meter = _Progress(progress, cases=2 * len(levels), seconds=seconds)
    results = await _measure_transport(transport, codec, payload, levels, seconds, meter)
    baseline = await _measure_baseline(frame, levels, seconds, meter)
    return {"bench": "transport", "machine": machine(), "results": results, "baseline": baseline}


async def run(*, transport: str, seconds: float, progress: Callable[[float], None] | None = None, placement: Any = None, **_: object) -> dict:
    """``delos-ref bench transport`` (two transports on ephemeral ports: no cluster)."""
    from delos_ref.bench import BadBenchArgument, Placement

    if placement is not None and placement != Placement():
        raise BadBenchArgument("bench transport starts no cluster: --dir and --base-port do not apply")
    return await bench_transport(transport, seconds=seconds, progress=progress)
