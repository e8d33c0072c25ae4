"""The runtime: drives pure protocol cores with trio, on a real or a simulated node.

A :class:`Node` owns one transport address and hosts *roles*. Each role is a pure core
(:class:`~delos_ref.effects.Core`) driven by one :class:`RoleRunner` task that

1. reads one bounded inbox, where both messages and timer firings arrive, so a core sees one
   totally ordered stream of inputs;
2. hands each input to the core and collects the effects it returns;
3. carries them out: all :class:`Persist` writes of the batch in one synced storage
   transaction first (group commit), then its trace events, written out at once (log
   before send: a crash loses no event whose consequences another node saw), then sends,
   replies and timers in order (the few events an operator cares about, such as a seal,
   also become a line in the node's log: ``delos_ref/logs.py``).

A timer set with zero delay ("as soon as the inputs already here are handled") does not go
through the timer task: the runner fires it itself, in the next batch, after the inputs
already queued. That saves two task switches per firing, and the NativeLoglet sequencer arms
one (its ``flush``) for every append.

Batching is what makes durable storage fast: while a sync is in flight, new inputs pile up
in the inbox and the next batch commits all of them with one fsync. It never breaks the
persist-before-send rule, because within a batch every send waits for the batch's sync.

The same :class:`Node` runs in a ``delos-ref node`` process (UDP/TCP, LMDB) and inside the
simulator (memory transport, :class:`~delos_ref.storage.MemoryStorage`, virtual time): the
protocol code cannot tell the difference.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any, Callable

import trio

from delos_ref.effects import (
    CancelTimer,
    Core,
    Emit,
    Fail,
    Incoming,
    Persist,
    Reply,
    Send,
    SetTimer,
    TimerFired,
)
from delos_ref.logs import log_event
from delos_ref.rpc import Router, RpcEndpoint
from delos_ref.rtt import RttEstimator
from delos_ref.storage import Storage
from delos_ref.trace import NullSink, TraceSink
from transports.base import Transport, TransportError
from transports.codec import Envelope

DEFAULT_INBOX = 4096
DEFAULT_MAX_BATCH = 512
# A runner that fires zero-delay timers back to back yields once per this many steps.
IMMEDIATE_STEPS_PER_YIELD = 16

_log = logging.getLogger(__name__)


def seeded_rng(*path: object) -> random.Random:
    """A reproducible RNG for one component, independent of PYTHONHASHSEED.

    ``random.Random(str)`` hashes the string with SHA-512, not with ``hash()``, so the seed tree
    ``seeded_rng(seed, "node", "n1")`` is the same in every process.
    """
    return random.Random("/".join(str(p) for p in path))


class Timers:
    """Named one-shot timers of one role; firings go into the role's inbox.

    Zero-delay timers are only recorded here (:meth:`take_due_now`): the role's runner fires
    them itself, which spares the round trip through this task and the inbox. So they are
    for the role's own effects (the runner looks for them after each step), which is the
    only place ``SetTimer`` comes from.
    """

    def __init__(self, inbox: trio.MemorySendChannel) -> None:
        self._inbox = inbox
        self._deadlines: dict[str, float] = {}
        self._due_now: dict[str, None] = {}  # zero-delay timers, in the order they were set
        self._changed = trio.Event()

    def set(self, name: str, delay_s: float) -> None:
        assert delay_s >= 0 and math.isfinite(delay_s), "SetTimer: delay is finite and >= 0"
        if delay_s == 0:
            self._due_now[name] = None
            self.cancel_delayed(name)
            return
        self._due_now.pop(name, None)
        self._deadlines[name] = trio.current_time() + delay_s
        self._changed.set()

    def cancel(self, name: str) -> None:
        self._due_now.pop(name, None)
        self.cancel_delayed(name)

    def cancel_delayed(self, name: str) -> None:
        if self._deadlines.pop(name, None) is not None:
            self._changed.set()

    def take_due_now(self) -> list[str]:
        """The zero-delay timers set since the last call (the runner fires them)."""
        if not self._due_now:
            return []
        names = list(self._due_now)
        self._due_now.clear()
        return names

    async def run(self) -> None:
        while True:
            self._changed = trio.Event()
            now = trio.current_time()
            # Fire due timers in (deadline, name) order: deterministic under a mock clock.
            due = sorted((d, n) for n, d in self._deadlines.items() if d <= now)
            for _, name in due:
                del self._deadlines[name]
                await self._inbox.send(TimerFired(name))
            if due:
                continue
            nearest = min(self._deadlines.values(), default=math.inf)
            with trio.move_on_at(nearest):
                await self._changed.wait()


class RoleRunner:
    """Drives one pure core. See the module docstring for the batch/effect rules."""

    def __init__(
        self,
        node: "Node",
        name: str,
        core: Core,
        storage: Storage | None = None,
        *,
        inbox_size: int = DEFAULT_INBOX,
        max_batch: int = DEFAULT_MAX_BATCH,
        extra_effects: dict[type, Callable[[Any], Any]] | None = None,
        timer_floors: dict[str, Callable[[], float]] | None = None,
    ) -> None:
        self.node = node
        self.name = name
        self.core = core
        self.storage = storage
        self.max_batch = max_batch
        self._send_inbox, self._inbox = trio.open_memory_channel(inbox_size)
        self.timers = Timers(self._send_inbox)
        self._extra = dict(extra_effects or {})
        # A timer named here waits at least what its function says (a retry tick stretched to
        # the measured round trip, delos_ref/rtt.py): the runtime decides when a timer fires,
        # the core only asks; firing later is what a slow scheduler does anyway.
        self._timer_floors = dict(timer_floors or {})
        self.stats = {"inputs": 0, "batches": 0, "persists": 0, "sends": 0}

    async def on_envelope(self, env: Envelope) -> None:
        """Router handler: enqueue (waits when the inbox is full: backpressure)."""
        await self._send_inbox.send(Incoming(env.src, env.rid, env.payload))

    def on_envelope_nowait(self, env: Envelope) -> None:
        """Router handler for this node's own roles: enqueue, or trio.WouldBlock if full."""
        self._send_inbox.send_nowait(Incoming(env.src, env.rid, env.payload))

    def submit_nowait(self, item: Any) -> None:
        """Local input (e.g. from a client task on the same node); raises trio.WouldBlock if full."""
        self._send_inbox.send_nowait(item)

    async def submit(self, item: Any) -> None:
        await self._send_inbox.send(item)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.timers.run)
            task_status.started()
            immediate = 0  # steps in a row that did not wait for input
            while True:
                due = self.timers.take_due_now()
                if due:
                    # Zero-delay timers fire after the inputs already queued, without waiting.
                    # Yield now and then, so a role that keeps re-arming one cannot starve others.
                    immediate += 1
                    if immediate % IMMEDIATE_STEPS_PER_YIELD == 0:
                        await trio.lowlevel.checkpoint()
                    batch = self._take_queued(self.max_batch)
                    batch += [TimerFired(name) for name in due]
                else:
                    immediate = 0
                    batch = [await self._inbox.receive()]
                    batch += self._take_queued(self.max_batch - 1)
                await self._step(batch)

    def _take_queued(self, limit: int) -> list[Any]:
        """Up to ``limit`` inputs already in the inbox, without waiting."""
        batch: list[Any] = []
        while len(batch) < limit:
            try:
                batch.append(self._inbox.receive_nowait())
            except trio.WouldBlock:
                break
        return batch

    async def _step(self, batch: list[Any]) -> None:
        effects: list[Any] = []
        for item in batch:
            effects.extend(self.core.handle(item))
        self.stats["inputs"] += len(batch)
        self.stats["batches"] += 1
        writes = [w for e in effects if type(e) is Persist for w in e.writes]
        if writes:
            assert self.storage is not None, f"role {self.name} persisted without storage"
            self.storage.write(writes, sync=True)  # persist before send (docs/design.md §11)
            self.stats["persists"] += 1
        # Log before send: the batch's trace events reach the trace file before any of its
        # messages leave, so a crash loses no event whose consequences another node saw.
        trace = self.node.trace
        if trace.enabled:
            with trace.hold():
                for e in effects:
                    if type(e) is Emit:
                        trace.emit(self.node.node_id, self.name, e.event, **e.fields)
        for effect in effects:
            if type(effect) is Emit:
                log_event(_log, self.name, effect.event, effect.fields)  # the meaningful few: node.log
            else:
                await self._execute(effect)

    async def _execute(self, effect: Any) -> None:
        kind = type(effect)
        try:
            if kind is Send:
                self.stats["sends"] += 1
                await self.node.endpoint.cast(effect.dst, effect.msg)
            elif kind is Reply:
                self.stats["sends"] += 1
                await self.node.endpoint.reply(effect.to, effect.rid, effect.msg)
            elif kind is Fail:
                await self.node.endpoint.fail(effect.to, effect.rid, effect.code, effect.detail)
            elif kind is SetTimer:
                floor = self._timer_floors.get(effect.name)
                self.timers.set(effect.name, effect.delay_s if floor is None else max(effect.delay_s, floor()))
            elif kind is CancelTimer:
                self.timers.cancel(effect.name)
            elif kind is Persist or kind is Emit:
                pass  # already written with the batch (``_step``: persist, then trace events)
            elif kind in self._extra:
                await self._extra[kind](effect)
            else:
                raise AssertionError(f"role {self.name}: unknown effect {kind.__name__}")
        except TransportError:
            # An unreachable or closed peer is a lost message, which every protocol here
            # tolerates by design; the role keeps serving.
            self.stats["send_errors"] = self.stats.get("send_errors", 0) + 1

    def statistics(self) -> dict[str, Any]:
        s = dict(self.stats)
        if hasattr(self.core, "statistics"):
            s.update(self.core.statistics())
        return s


class Node:
    """One transport address hosting roles, an RPC endpoint and a trace sink.

    ``in_process``: messages between roles of this node are handed over in-process, never
    encoded (``delos_ref/rpc.py``, "Roles on the same node"). ``measure_rtt``: timeouts stretch
    to the round trips this node measures (:mod:`delos_ref.rtt`). A node process sets both;
    the simulator neither, so every message there stays a network event it can delay or drop,
    and every timeout follows its policy's constants."""

    def __init__(self, node_id: str, transport: Transport, *, seed: str = "0", trace: TraceSink | None = None, in_process: bool = False, measure_rtt: bool = False) -> None:
        assert transport.node_id == node_id, "Node: transport belongs to another node"
        self.node_id = node_id
        self.transport = transport
        self.seed = seed
        self.trace = trace if trace is not None else NullSink()
        self.endpoint = RpcEndpoint(transport, self.rng("rpc"))
        if measure_rtt:
            self.endpoint.rtt = RttEstimator()
        self.router = Router(transport, self.endpoint)
        if in_process:
            self.endpoint.local = self.router.deliver_nowait
        self.roles: dict[str, RoleRunner] = {}
        self.services: dict[str, Callable[[], Any]] = {}
        self._service_stats: dict[str, Callable[[], dict[str, Any]]] = {}
        self._nursery: trio.Nursery | None = None

    def rng(self, *path: object) -> random.Random:
        return seeded_rng(self.seed, "node", self.node_id, *path)

    def add_role(self, name: str, core: Core, storage: Storage | None = None, **kw: Any) -> RoleRunner:
        assert name not in self.roles, f"Node {self.node_id}: role {name} already added"
        runner = RoleRunner(self, name, core, storage, **kw)
        for cls in core.handles:
            self.router.register(cls, runner.on_envelope, runner.on_envelope_nowait)
        self.roles[name] = runner
        if self._nursery is not None:  # the node is running: start the role now
            self._nursery.start_soon(runner.run)
        return runner

    def add_service(self, name: str, run: Callable[[], Any], statistics: Callable[[], dict[str, Any]] | None = None) -> None:
        """A background task of this node that is not a pure core (e.g. the VirtualLog
        supervisor, which runs client workflows): ``run()`` is started with the node and
        cancelled with it (a crash in the simulator, a stop of the process)."""
        assert name not in self.services, f"Node {self.node_id}: service {name} already added"
        self.services[name] = run
        if statistics is not None:
            self._service_stats[name] = statistics
        if self._nursery is not None:
            self._nursery.start_soon(run)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run the router, every role and every service until cancelled."""
        async with trio.open_nursery() as nursery:
            for runner in self.roles.values():
                await nursery.start(runner.run)
            nursery.start_soon(self.router.run)
            for service in self.services.values():
                nursery.start_soon(service)
            self._nursery = nursery
            task_status.started()

    def statistics(self) -> dict[str, Any]:
        return {
            "transport": self.transport.statistics().as_dict(),
            "rpc": self.endpoint.statistics(),
            **({"rtt": self.endpoint.rtt.snapshot()} if self.endpoint.rtt is not None else {}),
            "router": dict(self.router.stats),
            "roles": {name: r.statistics() for name, r in self.roles.items()},
            "services": {name: stats() for name, stats in self._service_stats.items()},
        }
