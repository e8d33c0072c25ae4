"""The memory transport *is* the simulated network.

Every message sent through a :class:`MemoryTransport` goes through :class:`SimNetwork`,
which decides its fate with random draws from a per-link RNG (the model real nodes share:
:func:`transports.shaper.link_fate`): lost, delayed (the draw for
each copy is independent, so messages overtake each other: reordering), or duplicated. Links
can be cut one way or both (partitions), nodes can be taken down and brought back. By
default every message is encoded to a real frame and decoded again on delivery, so the
simulator exercises the same serialization path (and size bounds) as UDP and TCP.

**Stepped delivery.** The network keeps one event queue ordered by ``(virtual time, origin,
per-origin counter)`` and delivers one event at a time. Before each step it waits until every
other task is blocked (``trio.testing.wait_all_tasks_blocked``), so the effects of a delivery
-- including the messages it causes -- are complete before the next delivery starts. Sends
made during one step are sorted before they are given delay draws and queue positions, so
their order does not depend on which task trio happened to run first. Run it under
``trio.testing.MockClock(autojump_threshold=0)`` and virtual time jumps straight to the next
event: simulated seconds cost microseconds.

Every delivery, drop and fault is recorded in the trace sink (node ``"~net"``) with the
fields needed to explain it (src, dst, kind, rid, message type), which the checkers use.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass
from typing import Any

import trio
import trio.testing

from delos_ref.trace import NullSink, TraceSink
from transports.base import Transport, TransportClosed, TransportStatistics, Unreachable
from transports.codec import DEFAULT_MAX_FRAME_BYTES, Envelope, FrameCodec
from transports.shaper import LinkModel, link_fate  # the decision model real nodes share

__all__ = ["LinkModel", "MemoryTransport", "SimNetwork"]


NET = "~net"


@dataclass(slots=True)
class _Pending:
    src: str
    dst: str
    data: bytes | None
    env: Envelope


class SimNetwork:
    """The simulated network shared by every :class:`MemoryTransport` of one simulation."""

    def __init__(
        self,
        seed: str = "0",
        *,
        link: LinkModel = LinkModel(),
        trace: TraceSink | None = None,
        codec_roundtrip: bool = True,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        inbox_size: int = 10_000,
    ) -> None:
        from delos_ref.runtime import seeded_rng  # runtime imports transports; import late

        self._rng_for = lambda *p: seeded_rng(seed, "link", *p)
        self.default_link = link
        self._links: dict[tuple[str, str], LinkModel] = {}
        self._link_rngs: dict[tuple[str, str], Any] = {}
        self.trace = trace if trace is not None else NullSink()
        self.codec = FrameCodec(max_frame_bytes=max_frame_bytes) if codec_roundtrip else None
        self.max_frame_bytes = max_frame_bytes
        self.inbox_size = inbox_size
        self._endpoints: dict[str, MemoryTransport] = {}
        self._down: set[str] = set()
        self._blocked: set[tuple[str, str]] = set()
        self._heap: list[tuple[float, str, int, str, bytes | None, Envelope]] = []
        self._counters: dict[str, itertools.count] = {}
        self._pending: list[_Pending] = []
        self._wakeup = trio.Event()
        self.steps = 0
        self.stats = {"delivered": 0, "lost": 0, "duplicated": 0, "cut": 0, "to_down": 0, "overflow": 0}

    # ----------------------------------------------------------------- topology & faults

    def attach(self, node_id: str) -> "MemoryTransport":
        """A transport for ``node_id`` (a fresh one after a restart)."""
        old = self._endpoints.get(node_id)
        if old is not None:
            old._closed = True
        t = MemoryTransport(self, node_id)
        self._endpoints[node_id] = t
        self._down.discard(node_id)
        return t

    def set_link(self, src: str, dst: str, model: LinkModel) -> None:
        self._links[(src, dst)] = model

    def set_default_link(self, model: LinkModel) -> None:
        self.default_link = model

    def take_down(self, node_id: str) -> None:
        """The node crashed: nothing reaches it, whatever was queued for it is lost."""
        self._down.add(node_id)
        t = self._endpoints.get(node_id)
        if t is not None:
            t._closed = True

    def cut(self, src: str, dst: str) -> None:
        """Drop everything from ``src`` to ``dst`` (one way) until healed."""
        self._blocked.add((src, dst))

    def partition(self, *groups: list[str] | set[str]) -> None:
        """Cut every link between different groups, both ways."""
        for a, b in itertools.permutations(range(len(groups)), 2):
            for x in sorted(groups[a]):
                for y in sorted(groups[b]):
                    self._blocked.add((x, y))

    def heal(self) -> None:
        self._blocked.clear()

    def is_cut(self, src: str, dst: str) -> bool:
        return (src, dst) in self._blocked

    # -------------------------------------------------------------------------- sending

    def submit(self, env: Envelope) -> None:
        if env.dst not in self._endpoints:
            raise Unreachable(f"no simulated node {env.dst!r}")
        data = self.codec.encode(env) if self.codec is not None else None  # MessageTooLarge here
        self._pending.append(_Pending(env.src, env.dst, data, env))
        self._wakeup.set()

    def _flush(self) -> None:
        """Give this step's sends their fates, in an order independent of task scheduling."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if self.codec is not None:
            pending.sort(key=lambda p: (p.src, p.dst, p.data))
        now = trio.current_time()
        for p in pending:
            link = self._links.get((p.src, p.dst), self.default_link)
            rng = self._link_rngs.get((p.src, p.dst))
            if rng is None:
                rng = self._link_rngs[(p.src, p.dst)] = self._rng_for(p.src, p.dst)
            delays = link_fate(link, rng)
            if not delays:
                self.stats["lost"] += 1
                self._record("lost", p.env)
                continue
            if len(delays) == 2:
                self.stats["duplicated"] += 1
            for delay in delays:
                counter = self._counters.setdefault(p.src, itertools.count())
                heapq.heappush(self._heap, (now + delay, p.src, next(counter), p.dst, p.data, p.env))

    def _record(self, what: str, env: Envelope) -> None:
        self.trace.emit(NET, "net", what, src=env.src, dst=env.dst, kind=env.kind, rid=env.rid, msg=type(env.payload).__name__)

    # ------------------------------------------------------------------------- delivery

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The stepped delivery loop. Runs until cancelled."""
        task_status.started()
        while True:
            await trio.testing.wait_all_tasks_blocked()
            self._flush()
            next_t = self._heap[0][0] if self._heap else math.inf
            if next_t > trio.current_time():
                self._wakeup = trio.Event()
                with trio.move_on_at(next_t):
                    await self._wakeup.wait()
                continue
            self._deliver(heapq.heappop(self._heap))
            self.steps += 1

    def _deliver(self, item: tuple) -> None:
        _, src, _, dst, data, env = item
        if (src, dst) in self._blocked:
            self.stats["cut"] += 1
            self._record("cut", env)
            return
        target = self._endpoints.get(dst)
        if dst in self._down or target is None or target._closed:
            self.stats["to_down"] += 1
            self._record("to_down", env)
            return
        if data is not None:
            env = self.codec.decode(data)  # the real deserialization path
        try:
            target._inbox_send.send_nowait(env)
        except trio.WouldBlock:
            self.stats["overflow"] += 1
            target._stats.dropped += 1
            self._record("overflow", env)
            return
        target._stats.received += 1
        self.stats["delivered"] += 1
        self._record("deliver", env)


class MemoryTransport(Transport):
    """One node's attachment to a :class:`SimNetwork`."""

    def __init__(self, net: SimNetwork, node_id: str) -> None:
        self.net = net
        self.node_id = node_id
        self._inbox_send, self._inbox = trio.open_memory_channel(net.inbox_size)
        self._closed = False
        self._stats = TransportStatistics()

    async def send(self, env: Envelope, *, wait: bool = True) -> None:
        """Hand ``env`` to the simulated network (which never makes a sender wait)."""
        self._check_src(env)
        if self._closed:
            raise TransportClosed(f"transport of {self.node_id} is closed")
        self.net.submit(env)
        self._stats.sent += 1
        await trio.lowlevel.checkpoint()

    async def receive(self) -> Envelope:
        if self._closed:
            raise TransportClosed(f"transport of {self.node_id} is closed")
        try:
            return await self._inbox.receive()
        except trio.EndOfChannel:
            raise TransportClosed(f"transport of {self.node_id} is closed") from None

    def statistics(self) -> TransportStatistics:
        return self._stats

    async def aclose(self) -> None:
        self._closed = True
        self._inbox_send.close()  # wakes a blocked receive()
        await trio.lowlevel.checkpoint()
