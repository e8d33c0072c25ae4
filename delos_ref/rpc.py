"""Request/reply over any transport: ids, deadlines, retries, and honest outcomes.

A consensus client must know *how* a call failed, because the two kinds of failure call for
opposite reactions:

* a **definite failure** (:class:`DefiniteFailure`): the call certainly did not take effect
  -- the server refused it (:class:`RemoteError`), or nothing was ever sent (:class:`NotSent`:
  unknown peer, message too large). Retrying elsewhere is safe.
* an **unknown outcome** (:class:`UnknownOutcome`, raised as :class:`CallTimeout`): no reply
  arrived before the deadline. The request may have been executed, perhaps more than once if
  it was resent. A Paxos proposer must treat its ballot as possibly used; a log client must
  treat its append as possibly landed (docs/design.md §2: "a failed append may still become
  durable").

Mechanics. Each call gets a request id (``rid``) unique to this endpoint's incarnation; the
request travels in an :class:`~transports.codec.Envelope` of kind REQUEST, and a reply or
error envelope with the same ``rid`` *from the node that was called* completes it. A
:class:`RetryPolicy` resends the *same* request (same rid) while no answer has arrived: this
covers lossy links (UDP, the simulator) and means handlers must tolerate duplicates -- which
they must anyway, since networks duplicate. Late and duplicate replies find no pending call
and are dropped (counted). Every wait is bounded by the call's deadline.

Incoming requests and one-way messages are routed to roles by message type (see
:class:`Router`); the router answers a request for a type nobody serves with a definite
``unknown_message`` error.

Roles on the same node (a node process hosts a sequencer, a LogServer, an acceptor and a
database replica side by side) need no wire between them: with :attr:`RpcEndpoint.local` set
(``Node(..., in_process=True)``, as a node process does), an envelope addressed to this node
is handed straight to the router's :meth:`Router.deliver_nowait` -- no encoding, no transport
inbox, no pass through the router's task. It is a plain function call into the role's bounded
inbox; when that inbox is full (or nobody here serves the message without waiting), the
envelope takes the transport's own path to itself as before, so a full inbox never blocks
the sender (two roles on one node sending to each other could otherwise wait on each other
forever). The simulator keeps ``local`` unset: every message there is a network event.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

import trio

from delos_ref.rtt import RttEstimator
from transports.base import Transport, TransportClosed, Unreachable
from transports.codec import (
    KIND_ERROR,
    KIND_ONEWAY,
    KIND_REPLY,
    KIND_REQUEST,
    Envelope,
    MessageTooLarge,
    message,
)


# ------------------------------------------------------------------------------ errors


class RpcError(Exception):
    """Base of call failures."""


class DefiniteFailure(RpcError):
    """The call certainly did not take effect."""


class RemoteError(DefiniteFailure):
    """The server answered with a refusal (``code`` is machine-readable)."""

    def __init__(self, dst: str, code: str, detail: str = "") -> None:
        super().__init__(f"{dst} refused: {code}" + (f" ({detail})" if detail else ""))
        self.dst = dst
        self.code = code
        self.detail = detail


class NotSent(DefiniteFailure):
    """The request never left this node (unknown peer, oversize message, closed transport)."""


class UnknownOutcome(RpcError):
    """No answer: the request may or may not have been executed."""


class CallTimeout(UnknownOutcome):
    def __init__(self, dst: str, what: str, timeout_s: float, sends: int) -> None:
        super().__init__(f"no reply from {dst} to {what} within {timeout_s:g}s ({sends} send(s)): outcome unknown")
        self.dst = dst
        self.sends = sends


@message("rpc.error")
class ErrorReply:
    """The payload of an ERROR envelope: a definite refusal."""

    code: str
    detail: str


# ------------------------------------------------------------------------------ policy


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Resend the same request while unanswered: after ``first_s``, then growing by ``multiplier``
    up to ``max_s``, with +-``jitter`` (a fraction) drawn from the endpoint's seeded RNG, at most
    ``max_sends`` sends in all. The call's deadline bounds everything.

    ``reliable_first_s`` (optional) is for transports that lose nothing while a connection
    lives (``transport.reliable``: TCP). There an unanswered request is almost always one the
    server is still working on -- a busy server, a slow fsync -- and resending it after
    ``first_s`` only adds duplicate work. So on such a transport the first resend waits at
    least ``reliable_first_s``, and later ones at least as long. A message lost with a broken
    connection is still resent, only later. Lossy transports (UDP, the simulator) ignore it.
    """

    max_sends: int = 1
    first_s: float = 0.05
    multiplier: float = 2.0
    max_s: float = 1.0
    jitter: float = 0.2
    reliable_first_s: float | None = None

    def __post_init__(self) -> None:
        assert self.max_sends >= 1, "RetryPolicy: at least one send"
        assert 0 < self.first_s <= self.max_s, "RetryPolicy: 0 < first_s <= max_s"
        assert 0 <= self.jitter < 1, "RetryPolicy: jitter is a fraction"
        assert self.reliable_first_s is None or self.reliable_first_s > 0, "RetryPolicy: reliable_first_s > 0"

    def intervals(self, reliable: bool) -> tuple[float, float]:
        """``(first, max)`` resend interval on a transport that is ``reliable`` or not."""
        if reliable and self.reliable_first_s is not None:
            return max(self.first_s, self.reliable_first_s), max(self.max_s, self.reliable_first_s)
        return self.first_s, self.max_s


NO_RETRY = RetryPolicy()
RPC_BUGS = {
    "ignore_rid": "replies are matched to any pending call to the same node, not by request id",
    "timeout_as_failure": "a call that timed out is reported as a definite failure instead of an unknown outcome",
}
#: For lossy transports: resend a few times within the deadline.
RESEND = RetryPolicy(max_sends=8, first_s=0.05, max_s=0.5)


@dataclass(slots=True)
class _Call:
    dst: str
    done: trio.Event
    reply: Any = None
    error: ErrorReply | None = None


class Watch(Protocol):
    """What watches a call while it waits (see :meth:`RpcEndpoint.call`)."""

    first_s: float  # the first check, this long after the send
    every_s: float  # then every this long

    async def check(self) -> None:
        """Return to keep waiting; raise (an :class:`UnknownOutcome`) to give the call up."""


def _not_sent(env: Envelope, cause: Exception) -> NotSent:
    return NotSent(f"{type(env.payload).__name__} to {env.dst}: {cause}")


# ---------------------------------------------------------------------------- endpoint


class RpcEndpoint:
    """The client half of RPC on one node: issues calls and correlates their answers.

    It does not read the transport itself: the node's :class:`Router` does, and hands replies
    to :meth:`deliver_reply`. That keeps one reader per transport.
    """

    def __init__(self, transport: Transport, rng: random.Random, *, bugs: frozenset[str] = frozenset()) -> None:
        self.transport = transport
        # Teaching bug switches (``delos-ref sim --workload rpc --list-bugs``); empty in production.
        assert bugs <= RPC_BUGS.keys(), f"unknown rpc bugs {sorted(bugs - RPC_BUGS.keys())}"
        self.bugs = bugs
        self.node_id = transport.node_id
        self._rng = rng
        # Request ids start at a random 48-bit offset so that a restarted node does not
        # reuse the ids of its previous incarnation (stale replies would match new calls).
        self._next_rid = rng.getrandbits(48) + 1
        self._pending: dict[int, _Call] = {}
        #: In-process delivery to this node's own roles (see the module docstring): takes an
        #: envelope addressed to this node, True if it was delivered. None: the transport.
        self.local: Callable[[Envelope], bool] | None = None
        self.stats = {"calls": 0, "replies": 0, "errors": 0, "timeouts": 0, "resends": 0, "stray_replies": 0, "local": 0}
        #: Measured round trips (:mod:`delos_ref.rtt`), or None: then resends follow their
        #: policy's constants exactly (the simulator). With it, the round trip of each call
        #: made with ``sample_rtt`` is a sample (Karn's rule: only a call answered after its
        #: only send), such a call that times out backs the peer's timeout off, and no call
        #: resends sooner, or gives up sooner, than the peer's round-trip timeout (``rto``).
        self.rtt: RttEstimator | None = None

    def peek_next_rid(self) -> int:
        """The id the next :meth:`call` will use (for checkers correlating with the net trace)."""
        return self._next_rid

    def _new_rid(self) -> int:
        rid = self._next_rid
        self._next_rid = (self._next_rid + 1) % (1 << 63) or 1
        return rid

    async def call(self, dst: str, msg: Any, *, timeout_s: float, retry: RetryPolicy = NO_RETRY, sample_rtt: bool = False, watch: Watch | None = None) -> Any:
        """Send ``msg`` to ``dst`` and return its reply payload.

        ``sample_rtt``: this call measures the network (a ping, answered at once): its round
        trip is a sample for :attr:`rtt`, and its timing out backs the peer's timeout off.
        Other calls may wait on the server (an fsync, a batch, a sync), which says nothing
        about the network, so they only read the estimate.

        ``watch`` (only with one send, ``retry.max_sends == 1``): while no answer has come,
        the call awaits ``watch.check()`` after ``watch.first_s`` and then every
        ``watch.every_s``, in the caller's own task; ``check`` may raise an
        :class:`UnknownOutcome` to give the call up (e.g. the server stopped answering
        pings). A reply that arrives while ``check`` runs wins. So a client can watch its
        call without a second task and a nursery around the two.

        Raises :class:`RemoteError` or :class:`NotSent` (definite) or :class:`CallTimeout`
        (unknown outcome). Cancellation propagates as usual; the outcome is then unknown too.
        """
        assert timeout_s > 0, "call: a deadline is required"
        if self.rtt is not None:  # a deadline shorter than a round trip could never be met
            timeout_s = self.rtt.stretch(dst, timeout_s)
        rid = self._new_rid()
        call = _Call(dst, trio.Event())
        self._pending[rid] = call
        self.stats["calls"] += 1
        env = Envelope(self.node_id, dst, KIND_REQUEST, rid, msg)
        sends = 0
        measure = sample_rtt and self.rtt is not None
        sent_at = trio.current_time() if measure else 0.0
        try:
            if watch is not None:
                assert retry.max_sends == 1, "call: watch is for one send only"
                sends = await self._send_watched(env, call, trio.current_time() + timeout_s, watch)
            else:
                with trio.move_on_after(timeout_s):
                    # The usual case on TCP, one send then wait: what _send_until_answered
                    # does with max_sends 1, written inline to spare a coroutine on every call.
                    if retry.max_sends == 1:
                        try:
                            await self._send(env)
                        except (Unreachable, MessageTooLarge) as e:
                            raise _not_sent(env, e) from e
                        sends = 1
                        await call.done.wait()
                    else:
                        sends = await self._send_until_answered(env, call, retry)
        finally:
            del self._pending[rid]
        if measure:
            if call.done.is_set():
                if sends == 1:
                    self.rtt.sample(dst, trio.current_time() - sent_at)
            elif sends:
                self.rtt.unanswered(dst)
        if not call.done.is_set():
            self.stats["timeouts"] += 1
            if "timeout_as_failure" in self.bugs:
                raise NotSent(f"{dst} did not answer")  # BUG: an unknown outcome reported as definite
            raise CallTimeout(dst, type(msg).__name__, timeout_s, sends)
        if call.error is not None:
            self.stats["errors"] += 1
            raise RemoteError(dst, call.error.code, call.error.detail)
        self.stats["replies"] += 1
        return call.reply

    async def _send_first(self, env: Envelope) -> None:
        try:
            await self._send(env)
        except (Unreachable, MessageTooLarge) as e:
            raise _not_sent(env, e) from e

    async def _send_watched(self, env: Envelope, call: _Call, deadline: float, watch: Watch) -> int:
        """One send, then wait for the answer until ``deadline``, running ``watch.check()``
        on its schedule (see :meth:`call`); the number of sends (0 or 1). Each cancel scope
        ends at the next check or the deadline, whichever is first: a call answered before
        its first check (nearly every call) costs one scope, as an unwatched call does."""
        sends = 0
        wake = min(deadline, trio.current_time() + watch.first_s)
        if wake <= trio.current_time():  # check at once: send first, bounded by the deadline
            with trio.move_on_at(deadline):
                await self._send_first(env)
                sends = 1
        while True:
            with trio.move_on_at(wake):
                if sends == 0:
                    await self._send_first(env)
                    sends = 1
                await call.done.wait()
            if call.done.is_set() or trio.current_time() >= deadline:
                return sends
            with trio.move_on_at(deadline):
                try:
                    await watch.check()
                except UnknownOutcome:
                    if not call.done.is_set():  # else: answered meanwhile, the answer wins
                        raise
            if call.done.is_set() or trio.current_time() >= deadline:
                return sends
            wake = min(deadline, trio.current_time() + watch.every_s)

    async def _send_until_answered(self, env: Envelope, call: _Call, retry: RetryPolicy) -> int:
        interval, max_interval = retry.intervals(self.transport.reliable)
        if self.rtt is not None:  # never resend before a reply could have come back
            interval, max_interval = self.rtt.stretch(env.dst, interval), self.rtt.stretch(env.dst, max_interval)
        sends = 0
        while True:
            try:
                await self._send(env)
            except (Unreachable, MessageTooLarge) as e:
                if sends == 0:
                    raise _not_sent(env, e) from e
                # An earlier copy may be on its way: the outcome stays unknown.
            sends += 1
            if sends >= retry.max_sends:
                await call.done.wait()
                return sends
            delay = interval * (1 + retry.jitter * (2 * self._rng.random() - 1))
            with trio.move_on_after(delay):
                await call.done.wait()
            if call.done.is_set():
                return sends
            self.stats["resends"] += 1
            interval = min(interval * retry.multiplier, max_interval)

    # One-way messages, replies and errors never wait for a peer (``wait=False``): they are
    # what roles send, and a role serves every peer from one task. A peer that is connected
    # but does not read (paused, or cut off while its connection stays up) fills its send
    # queue; waiting for room would stop the role -- a sequencer would stop sequencing for
    # everyone because one LogServer is unreachable. The message is dropped instead: loss,
    # which every protocol here tolerates. Requests (``call``) still wait: backpressure on a
    # caller that sends faster than its server takes.

    async def cast(self, dst: str, msg: Any) -> None:
        """A one-way message: no reply, no delivery guarantee, never waits for the peer."""
        await self._send(Envelope(self.node_id, dst, KIND_ONEWAY, 0, msg), wait=False)

    async def reply(self, to: str, rid: int, msg: Any) -> None:
        await self._send(Envelope(self.node_id, to, KIND_REPLY, rid, msg), wait=False)

    async def fail(self, to: str, rid: int, code: str, detail: str = "") -> None:
        await self._send(Envelope(self.node_id, to, KIND_ERROR, rid, ErrorReply(code, detail)), wait=False)

    async def _send(self, env: Envelope, *, wait: bool = True) -> None:
        """To a role on this node in-process if :attr:`local` takes it, else by the transport."""
        if env.dst == self.node_id and self.local is not None and self.local(env):
            self.stats["local"] += 1
            return
        await self.transport.send(env, wait=wait)

    def deliver_reply(self, env: Envelope) -> None:
        """Complete the pending call that ``env`` answers; drop strays and duplicates."""
        call = self._pending.get(env.rid)
        if "ignore_rid" in self.bugs:  # BUG: correlate by sender only
            call = next((c for c in self._pending.values() if c.dst == env.src and not c.done.is_set()), None)
        if call is None or call.dst != env.src or call.done.is_set():
            self.stats["stray_replies"] += 1
            return
        if env.kind == KIND_ERROR:
            if not isinstance(env.payload, ErrorReply):
                self.stats["stray_replies"] += 1
                return
            call.error = env.payload
        else:
            call.reply = env.payload
        call.done.set()

    def statistics(self) -> dict[str, int]:
        return dict(self.stats, pending=len(self._pending))


# ------------------------------------------------------------------------------ router

Handler = Callable[[Envelope], Awaitable[None]]


class Router:
    """Reads one transport and routes what arrives: replies to the endpoint, the rest by type.

    Handlers are registered per message class. A handler should only enqueue (into a role's
    bounded inbox) and return quickly; the router awaits it, so a full inbox pushes back on
    the transport rather than growing memory.
    """

    def __init__(self, transport: Transport, endpoint: RpcEndpoint) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self._handlers: dict[type, Handler] = {}
        self._nowait: dict[type, Callable[[Envelope], None]] = {}
        self.stats = {"routed": 0, "unknown": 0}

    def register(self, cls: type, handler: Handler, nowait: Callable[[Envelope], None] | None = None) -> None:
        """``handler`` takes every ``cls`` from the transport. ``nowait``, if given, is the
        same handler without waiting (it raises ``trio.WouldBlock`` instead), for envelopes
        from this node's own roles (:meth:`deliver_nowait`)."""
        assert cls not in self._handlers, f"Router: {cls.__name__} already has a handler"
        self._handlers[cls] = handler
        if nowait is not None:
            self._nowait[cls] = nowait

    def unregister(self, cls: type) -> None:
        self._handlers.pop(cls, None)
        self._nowait.pop(cls, None)

    def deliver_nowait(self, env: Envelope) -> bool:
        """Route an envelope from this node to this node without waiting: replies to the
        endpoint, the rest to a ``nowait`` handler. False if that cannot be done now (no such
        handler, or its inbox is full): the caller sends it by the transport instead."""
        if env.kind in (KIND_REPLY, KIND_ERROR):
            self.endpoint.deliver_reply(env)
            return True
        handler = self._nowait.get(type(env.payload))
        if handler is None:
            return False
        try:
            handler(env)
        except trio.WouldBlock:
            return False
        self.stats["routed"] += 1
        return True

    async def run(self) -> None:
        """Route until the transport closes (then return: the node is shutting down)."""
        while True:
            try:
                env = await self.transport.receive()
            except TransportClosed:
                return
            await self.route(env)

    async def route(self, env: Envelope) -> None:
        if env.kind in (KIND_REPLY, KIND_ERROR):
            self.endpoint.deliver_reply(env)
            return
        handler = self._handlers.get(type(env.payload))
        if handler is None:
            self.stats["unknown"] += 1
            if env.kind == KIND_REQUEST:
                await self.endpoint.fail(env.src, env.rid, "unknown_message", f"{self.transport.node_id} does not serve {type(env.payload).__name__}")
            return
        self.stats["routed"] += 1
        await handler(env)
