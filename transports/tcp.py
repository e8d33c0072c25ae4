"""The TCP transport: length-prefixed frames over one reused connection per pair of nodes.

Framing
    TCP is a byte stream; the codec's frame header already carries the body length, so a
    :class:`~transports.codec.FrameReader` splits the stream back into frames. A frame that
    does not parse, or whose MAC does not verify, makes the whole stream unusable (we could
    not find the next frame boundary with any confidence), so that *one connection* is closed
    and counted in ``statistics().rejected``; every other connection keeps working.

How connections are identified
    A TCP connection carries no node ids, so the node that dials sends one
    :class:`TcpHello` frame first, naming itself (``src``) and the node it meant to reach
    (``dst``). The acceptor checks the hello (authenticated like every frame when the cluster
    has a secret) and files the connection under the dialer's id. A connection that does not
    open with a valid hello within ``connect_timeout_s`` is closed and counted as rejected.
    After the hello, every envelope on the connection must carry that ``src`` and our id as
    ``dst``; others are counted as rejected and dropped.

One connection per pair, used in both directions
    To send to ``p`` we use the live connection with ``p``, whichever side dialed it, and dial
    ``peers[p]`` only when there is none. So a client with no listening socket (``bind=None``,
    e.g. the CLI) dials a server and gets its replies on the same connection; the server knows
    no address for it and could not dial it anyway. A node id with neither a known address nor
    a live connection is :class:`~transports.base.Unreachable`.

    Two nodes that start talking at the same moment may dial each other at once and end up
    with two connections. Both sides then apply the same rule, so they agree without a word
    exchanged: *keep the connection dialed by the smaller node id* (and between two dialed by
    the same node, keep the newer one: the dialer only dials again once it gave up on the
    old one). The losing connection is *retired*: no new frames go on it; its dialer
    half-closes it (``SHUT_WR``) after the frames already being written, the other side reads
    it to the end and then closes it, so nothing written on it is lost.

Writing: a fast path, and a writer that coalesces
    When nothing is queued for a peer, ``send`` writes the frame straight into the socket
    with one non-blocking ``send`` system call: no task switch at all (asyncio's transports
    do the same). Only what the kernel does not take at once -- its buffer is full, or there
    is no connection yet -- goes to the peer's bounded queue, which one writer task per peer
    drains, joining every queued frame (up to ``MAX_BATCH_BYTES``) into a single write. A
    frame the kernel took only part of stays tied to its connection: if that connection is
    gone by the time the writer gets to it, the rest is dropped rather than written as half a
    frame on a new connection.

    This is why we drive plain non-blocking sockets with trio's readiness primitives
    (``wait_readable`` / ``wait_writable``) instead of trio's ``SocketStream``: the fast path
    needs a synchronous, non-blocking send, which a stream does not offer.

Reading: the task that waits reads
    Every connection (once its hello is checked) is in one :class:`ReadableSet`, an epoll set
    whose own descriptor is readable when any connection is. A task that calls ``receive``
    and finds nothing queued becomes the *reading receiver*: it waits on that descriptor
    itself, and when it wakes it reads and decodes what arrived and returns the first
    envelope. Handing each envelope from a reader task to the waiting task would cost one
    more pass of trio's scheduler per message -- on loopback, about a tenth of a round trip.

    Someone must read even when no task is in ``receive`` (its consumer may be blocked
    sending to a peer that is blocked sending to us), so a background *reader task* waits on
    the same set whenever there is no reading receiver, and delivers into the receive queue.
    While a receiver reads, the reader task only checks every ``READER_IDLE_CHECK_S`` whether
    one still does (backing off to ``READER_IDLE_CHECK_MAX_S`` while it always does, so an
    idle node sleeps), so that one arrival wakes one task, not two. Other tasks that wait in
    ``receive`` meanwhile park in the queue (:class:`Inbox`) and are handed envelopes as they
    are read. Envelopes queued from elsewhere -- a message to ourselves, frames that came
    with a hello -- wake the reading receiver through a socket pair in the same set.

Backpressure and what is dropped when
    ``send`` waits while a peer's queue (``send_queue_frames``) is full, so a slow receiver
    slows its senders down instead of growing our memory. ``send(env, wait=False)`` -- how
    roles send -- never waits: a peer that is connected but does not read (paused, or cut off
    without the connection breaking) must not stop a role from serving everyone else. What
    is *dropped* (counted in ``statistics().dropped``):

    * a ``wait=False`` frame that finds its peer's queue full (also counted in
      ``extra["send_queue_full"]``);
    * frames being written, or queued, when a connection breaks (TCP "loses what was queued");
    * frames for a peer that cannot be reached right now: after a failed dial the peer is in
      *backoff* (bounded exponential, with jitter from a seeded RNG) and its queue is
      drained and dropped, so that one dead peer never blocks a sender for longer than one
      ``connect_timeout_s``. The next frame after the backoff triggers a new dial;
    * frames for a client whose only connection closed (its queue is dropped with it);
    * received envelopes that find the receive queue (``receive_queue``) full. We drop
      rather than stop reading: two nodes each blocked sending to the other, neither
      reading, would otherwise deadlock. Loss is in the transport contract; the RPC layer
      retries. (With no task in ``receive``, frames may wait in the kernel for up to
      ``READER_IDLE_CHECK_MAX_S`` before the reader task reads them.)

Sending to oneself
    An envelope whose ``dst`` is this node is encoded (so the same size bound applies) and
    put straight into our receive queue, never on a socket.

This module also holds what the UDP transport shares with it (:class:`AddressInUse`,
:class:`Inbox`, :class:`ScheduleBudget`, :func:`background_tasks`, :func:`close_socket`); they belong in a shared module once the
layout has one.
"""

from __future__ import annotations

import errno
import os
import random
import select
import selectors
import socket
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import AsyncIterator, Awaitable, Callable, Protocol

import outcome
import trio

from transports.base import AddressInUse, PeerAddress, Transport, TransportClosed, TransportStatistics, Unreachable, rejection_kind
from transports.codec import KIND_ONEWAY, DecodeError, Envelope, FrameCodec, FrameReader, message

# Bounds. One read takes whatever the kernel has, up to this much, into one buffer that every
# read of a checked connection reuses (a FrameReader keeps only an incomplete frame; a hello
# is read into a buffer of its own): one system call and one FrameReader pass for many small frames.
RECEIVE_CHUNK_BYTES = 64 * 1024
# A writer joins queued frames into one write of at most about this many bytes (a single
# frame larger than this is still written, alone).
MAX_BATCH_BYTES = 256 * 1024
# The first reconnect delay; it doubles after every failed dial, up to max_backoff_s.
MIN_BACKOFF_S = 0.01
# Open sockets, in and out. Beyond this, inbound connections are refused at accept.
DEFAULT_MAX_CONNECTIONS = 1024
LISTEN_BACKLOG = 128
# When accept fails for lack of resources (file descriptors, memory), wait this long.
ACCEPT_RETRY_S = 0.1
ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# While a receiver reads the connections itself, how often the reader task checks that one
# still does (it reads in its place once none does): bounds how long frames can sit unread.
# The check starts at READER_IDLE_CHECK_S and doubles, up to READER_IDLE_CHECK_MAX_S, for as
# long as it keeps finding a reading receiver: a busy node (whose receiver steps away often)
# is checked every 10 ms, an idle one a few times a second. (A fixed 10 ms check was 100
# wakeups a second on every idle node, most of its idle CPU: issue 17 item 5.)
READER_IDLE_CHECK_S = 0.01
READER_IDLE_CHECK_MAX_S = 0.16
# send/receive calls that need not wait yield to the scheduler once per this many calls.
OPERATIONS_PER_SCHEDULE_POINT = 16


@message("transport.hello")
class TcpHello:
    """The first frame on every TCP connection: the dialer says who it is."""

    node_id: str


def address_in_use(address: PeerAddress, cause: OSError) -> AddressInUse:
    """Translate a bind failure into :class:`AddressInUse` naming the address."""
    return AddressInUse(errno.EADDRINUSE, f"cannot bind {address}: address already in use ({cause.strerror})")


class ScheduleBudget:
    """Schedule points for operations that usually need not wait.

    Trio's convention is that every ``await`` of a library operation is a checkpoint: it can
    be cancelled, and it lets other tasks run. A receive that finds a message already queued,
    or a send the kernel accepts at once, would yield only to honour the convention, and at
    tens of thousands of messages a second those yields are most of the cost. So our
    ``send`` and ``receive`` always check for cancellation first
    (``trio.lowlevel.checkpoint_if_cancelled``), but *yield* only when they had to wait
    anyway, or once every ``every`` operations that did not. A task draining a burst thus
    handles up to ``every`` messages per turn and still cannot starve the others.
    """

    def __init__(self, every: int = OPERATIONS_PER_SCHEDULE_POINT) -> None:
        assert every >= 1, "ScheduleBudget: yield at least once per `every` operations"
        self._every = every
        self._since_yield = 0

    def waited(self) -> None:
        """The operation blocked (and so yielded): the budget starts over."""
        self._since_yield = 0

    def spend(self) -> bool:
        """Count one operation that did not wait; True if the budget is used up, and the
        caller must now yield with ``trio.lowlevel.cancel_shielded_checkpoint()``.

        That yield never raises ``Cancelled``: it comes after the operation took effect, and
        reporting the cancellation then would make the caller believe it had not. (A plain
        function, not a coroutine: most calls do not yield, and need not pay for one.)
        """
        self._since_yield += 1
        if self._since_yield < self._every:
            return False
        self._since_yield = 0
        return True


class Inbox:
    """A transport's bounded receive queue: delivering never waits, receiving rarely yields.

    A reader (a reader task, or a receiver that reads for everyone) must never block on a
    slow consumer, so :meth:`deliver` drops an envelope that finds the queue full, and counts
    it in the transport's ``dropped`` (and in :attr:`full_drops`). :meth:`receive` takes a
    queued envelope without a task switch, spending the :class:`ScheduleBudget`.

    It is a deque plus the tasks parked in :meth:`receive`, not a trio memory channel: an
    envelope that finds a receiver waiting is handed straight to it (``reschedule`` with the
    envelope as the result of its wait), and the common case of an empty queue costs no
    ``WouldBlock`` exception. At tens of thousands of messages a second, those few
    microseconds per message are a good part of the transport's overhead.
    """

    def __init__(self, node_id: str, capacity: int, stats: TransportStatistics, budget: ScheduleBudget) -> None:
        assert capacity >= 1, "the receive queue is bounded and non-empty"
        self._node_id = node_id
        self._capacity = capacity
        self._queue: deque[Envelope] = deque()
        self._waiters: deque[trio.lowlevel.Task] = deque()  # parked in receive(), oldest first
        self._closed = False
        self._stats = stats
        self._budget = budget
        self.full_drops = 0

    def deliver(self, env: Envelope) -> None:
        if self._closed:
            return  # closing: nobody will receive it
        if self._waiters:
            trio.lowlevel.reschedule(self._waiters.popleft(), outcome.Value(env))
        elif len(self._queue) < self._capacity:
            self._queue.append(env)
        else:
            self._stats.dropped += 1
            self.full_drops += 1
            return
        self._stats.received += 1

    def queued(self) -> int:
        return len(self._queue)

    def take_nowait(self) -> Envelope | None:
        """The oldest queued envelope, or None if there is none (never waits)."""
        return self._queue.popleft() if self._queue else None

    async def receive(self) -> Envelope:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise TransportClosed(f"{self._node_id}: receive after close")
        if self._queue:
            env = self._queue.popleft()
            if self._budget.spend():
                await trio.lowlevel.cancel_shielded_checkpoint()
            return env
        self._budget.waited()
        task = trio.lowlevel.current_task()
        self._waiters.append(task)

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiters.remove(task)  # cancelled while waiting: it takes nothing
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Wakes every task blocked in :meth:`receive` with TransportClosed."""
        if self._closed:
            return
        self._closed = True
        while self._waiters:
            error = TransportClosed(f"{self._node_id}: closed while receiving")
            trio.lowlevel.reschedule(self._waiters.popleft(), outcome.Error(error))


class Backoff:
    """Bounded exponential backoff with "equal jitter": each delay is in [d/2, d].

    The jitter spreads reconnect attempts of many nodes that lost the same peer at the same
    moment. Its randomness comes from the RNG we are given: no hidden global state.
    """

    def __init__(self, rng: random.Random, *, min_s: float, max_s: float) -> None:
        assert 0 < min_s <= max_s, "Backoff: 0 < min_s <= max_s"
        self._rng = rng
        self._min_s = min_s
        self._max_s = max_s
        self._next_s = min_s

    def next_delay_s(self) -> float:
        delay_s = self._next_s * (0.5 + 0.5 * self._rng.random())
        self._next_s = min(self._next_s * 2, self._max_s)
        assert 0 < delay_s <= self._max_s, "Backoff: every delay is within the bound"
        return delay_s

    def reset(self) -> None:
        self._next_s = self._min_s


class ReadableSet:
    """Sockets we read, and which of them are readable now (bytes or EOF waiting), asked
    without blocking.

    Its own descriptor, :meth:`fileno`, is readable whenever a member is, so one
    ``trio.lowlevel.wait_readable`` waits for *any* of them. It is an epoll set on Linux (one
    system call to ask), the platform's default selector elsewhere (kqueue on BSD and macOS).
    Each member carries an ``item`` that :meth:`ready` returns for it.
    """

    def __init__(self, *, use_epoll: bool = hasattr(select, "epoll")) -> None:
        self._epoll = select.epoll() if use_epoll else None
        self._selector = None if self._epoll is not None else selectors.DefaultSelector()
        self._items: dict[int, object] = {}  # by file descriptor

    def fileno(self) -> int:
        return self._epoll.fileno() if self._epoll is not None else self._selector.fileno()  # type: ignore[union-attr]

    def add(self, sock: socket.socket, item: object) -> None:
        fd = sock.fileno()
        assert fd not in self._items, "ReadableSet: a socket is added once"
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            self._selector.register(fd, selectors.EVENT_READ)  # type: ignore[union-attr]
        self._items[fd] = item

    def discard(self, sock: socket.socket, item: object) -> None:
        """Forget ``sock`` if it is still a member for ``item`` (call it before closing ``sock``)."""
        fd = sock.fileno()
        if fd == -1 or self._items.get(fd) is not item:
            return
        del self._items[fd]
        if self._epoll is not None:
            self._epoll.unregister(fd)
        else:
            self._selector.unregister(fd)  # type: ignore[union-attr]

    def ready(self) -> list[object]:
        """The items of the members that are readable now."""
        items = self._items
        if self._epoll is not None:
            # (room for every member: by default it would allocate room for a thousand)
            return [items[fd] for fd, _ in self._epoll.poll(0, max(1, len(items)))]
        return [items[key.fd] for key, _ in self._selector.select(0)]  # type: ignore[union-attr]

    def close(self) -> None:
        self._items.clear()
        if self._epoll is not None:
            self._epoll.close()
        else:
            self._selector.close()  # type: ignore[union-attr]


def close_socket(sock: socket.socket | None) -> None:
    """Close ``sock``, first waking any task that waits on it (it gets ClosedResourceError)."""
    if sock is not None and sock.fileno() != -1:
        trio.lowlevel.notify_closing(sock)
        sock.close()


async def send_all(sock: socket.socket, data: bytes | memoryview) -> None:
    """Write all of ``data``, waiting for room in the kernel's buffer as needed.

    Raises ``OSError`` if the connection breaks, ``trio.ClosedResourceError`` if we close it.
    """
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)


@dataclass(eq=False)
class _Connection:
    """One TCP connection with a known peer (the hello has been exchanged)."""

    sock: socket.socket
    peer: str
    dialer: str  # node id of the side that dialed: decides which of two connections is kept
    broken: bool = False
    retired: bool = False  # lost the one-connection-per-pair tie-break: carries no new frames
    eof_pending: bool = False  # retired while being written: half-close after that write
    reader: FrameReader | None = None  # splits what arrives into frames, once we read it


@dataclass(frozen=True, slots=True)
class _Rest:
    """The part of a frame the kernel did not take: only ever written on that connection."""

    conn: _Connection
    data: bytes


@dataclass(eq=False)
class _Link:
    """Everything about one peer: its address, its send queue, its current connection."""

    peer: str
    address: PeerAddress | None  # None: a client, reachable only while it is connected
    queue_in: trio.MemorySendChannel[bytes | _Rest]
    queue_out: trio.MemoryReceiveChannel[bytes | _Rest]
    backoff: Backoff
    conn: _Connection | None = None
    next_dial_at: float = 0.0  # trio time before which we do not dial again
    unwritten: int = 0  # frames handed to the writer and not yet written or dropped
    writing: _Connection | None = None  # the connection the writer is writing on now

    def live_connection(self) -> _Connection | None:
        return self.conn if self.conn is not None and not self.conn.broken else None


@dataclass(slots=True)
class _Counters:
    direct_writes: int = 0
    queued_writes: int = 0
    dials: int = 0
    dial_failures: int = 0
    accepts: int = 0
    connections_refused: int = 0
    send_queue_full: int = 0


class TcpTransport(Transport):
    """Frames over TCP, one connection per peer. Open it with :func:`open_tcp_transport`."""

    reliable = True  # in order and without loss while a connection lives

    def __init__(
        self,
        node_id: str,
        *,
        peers: dict[str, PeerAddress],
        codec: FrameCodec,
        send_queue_frames: int,
        receive_queue: int,
        connect_timeout_s: float,
        max_backoff_s: float,
        rng: random.Random,
        max_connections: int,
    ) -> None:
        assert send_queue_frames >= 1 and receive_queue >= 1, "queues are bounded and non-empty"
        assert connect_timeout_s > 0 and max_backoff_s >= MIN_BACKOFF_S, "every wait is bounded"
        self.node_id = node_id
        self.address: PeerAddress | None = None  # where we listen (None: a client)
        self._codec = codec
        self._send_queue_frames = send_queue_frames
        self._connect_timeout_s = connect_timeout_s
        self._max_backoff_s = max_backoff_s
        self._rng = rng
        self._max_connections = max_connections
        self._links: dict[str, _Link] = {}
        self._sockets: set[socket.socket] = set()  # every open connection, hello or not
        self._listener: socket.socket | None = None
        self._tasks: trio.Nursery | None = None
        self._closed = False
        self._budget = ScheduleBudget()
        self._stats = TransportStatistics()
        self._counters = _Counters()
        self._inbox = Inbox(node_id, receive_queue, self._stats, self._budget)
        self._pending_peers = dict(peers)
        # Reading (opened in _run; see "Reading" above): every connection in one ReadableSet.
        # The reader task waits on its descriptor, a reading receiver on a duplicate of it
        # (trio lets one task at a time wait for a given descriptor to become readable).
        self._readable: ReadableSet | None = None
        self._wait_fd: int | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._wake_sent = False
        self._reading_receiver = False
        self._read_buffer = memoryview(bytearray(RECEIVE_CHUNK_BYTES))  # reused by every read

    # ------------------------------------------------------------------ public API

    async def send(self, env: Envelope, *, wait: bool = True) -> None:
        """Send ``env`` to its peer: straight into the socket if nothing is queued, else queue it.

        Waits only while that peer's send queue is full (or a dial is in progress and fills it);
        with ``wait=False``, drops ``env`` then instead.
        """
        if self._closed:
            raise TransportClosed(f"{self.node_id}: send after close")
        self._check_src(env)
        await trio.lowlevel.checkpoint_if_cancelled()
        frame = self._codec.encode(env)  # MessageTooLarge before anything is sent
        if env.dst == self.node_id:
            self._stats.sent += 1
            self._inbox.deliver(env)
            self._wake_reading_receiver()
            if self._budget.spend():
                await trio.lowlevel.cancel_shielded_checkpoint()
            return
        link = self._links.get(env.dst)
        conn = link.live_connection() if link is not None else None
        if link is None or (link.address is None and conn is None):
            raise Unreachable(f"{self.node_id}: no address and no connection for {env.dst!r}")
        if conn is not None and link.unwritten == 0:
            self._write_now(link, conn, frame)
            if self._budget.spend():
                await trio.lowlevel.cancel_shielded_checkpoint()
        elif wait:
            await self._enqueue(link, frame)
        elif self._enqueue_or_drop(link, frame):
            # Queued: yield, as a waiting send does when its frame fits at once (the writer
            # gets to run as soon as it would have before).
            await trio.lowlevel.cancel_shielded_checkpoint()
            self._budget.waited()
        elif self._budget.spend():
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def receive(self) -> Envelope:
        """The next envelope addressed to this node.

        With nothing queued, the first task to wait becomes the *reading receiver*: it waits
        on the connections itself and reads what arrives (see "Reading" in the module
        docstring). Other tasks that wait meanwhile park in the inbox as usual.
        """
        if self._closed:
            raise TransportClosed(f"{self.node_id}: receive after close")
        if self._inbox.queued() or self._reading_receiver:
            return await self._inbox.receive()
        # Become the reading receiver: wait for the connections to be readable and read them
        # ourselves until an envelope is queued for us -- the reader task's work, minus the
        # hand-off to this task. (Here rather than in a helper coroutine: one less per message.)
        assert self._wait_fd is not None, "receiving happens while the transport runs"
        self._reading_receiver = True
        self._budget.waited()
        try:
            while True:
                if self._closed:  # (its descriptors are closed: their numbers may be reused)
                    raise trio.ClosedResourceError
                await trio.lowlevel.wait_readable(self._wait_fd)
                self._read_ready()
                env = self._inbox.take_nowait()
                if env is not None:
                    return env
        except trio.ClosedResourceError:
            raise TransportClosed(f"{self.node_id}: closed while receiving") from None
        finally:
            self._reading_receiver = False

    def add_peer(self, node_id: str, address: PeerAddress) -> None:
        """Learn (or change) the address of ``node_id``; the next dial uses it.

        Cluster membership changes (a reconfiguration adds servers), and a test that binds
        ephemeral ports learns them only after every transport is open.
        """
        if self._closed:
            raise TransportClosed(f"{self.node_id}: add_peer after close")
        if node_id == self.node_id:
            return
        if self._tasks is None:
            self._pending_peers[node_id] = address  # applied when the transport starts
            return
        link = self._links.get(node_id) or self._new_link(node_id, address=None)
        link.address = address

    def statistics(self) -> TransportStatistics:
        stats = replace(self._stats, extra={})
        c = self._counters
        stats.extra.update(
            direct_writes=c.direct_writes,
            queued_writes=c.queued_writes,
            dials=c.dials,
            dial_failures=c.dial_failures,
            accepts=c.accepts,
            connections_refused=c.connections_refused,
            send_queue_full=c.send_queue_full,
            receive_queue_full=self._inbox.full_drops,
            connections_open=len(self._sockets),
        )
        return stats

    async def aclose(self) -> None:
        """Close every connection and the listener and stop every task. Idempotent."""
        self.close_nowait()
        await trio.lowlevel.checkpoint()

    def close_nowait(self) -> None:
        """Synchronous :meth:`aclose` (for ``finally`` blocks that must not wait)."""
        if self._closed:
            return
        self._closed = True
        self._inbox.close()  # wakes a task blocked in receive(): TransportClosed
        for link in self._links.values():
            link.queue_in.close()  # wakes senders blocked on a full queue: TransportClosed
        close_socket(self._listener)
        for sock in list(self._sockets):
            close_socket(sock)
        self._sockets.clear()
        self._close_readable()
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()

    def _close_readable(self) -> None:
        if self._readable is None:
            return
        trio.lowlevel.notify_closing(self._readable.fileno())  # the reader task: ClosedResourceError
        assert self._wait_fd is not None and self._wake_r is not None and self._wake_w is not None
        trio.lowlevel.notify_closing(self._wait_fd)  # a reading receiver: TransportClosed
        os.close(self._wait_fd)
        self._readable.close()
        self._wake_r.close()
        self._wake_w.close()
        self._readable = None

    # ----------------------------------------------------------------- startup

    async def _run(self, listener: socket.socket | None, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Own every background task, in a nursery whose cancellation is ours alone."""
        self._listener = listener
        if listener is not None:
            host, port = listener.getsockname()[:2]
            self.address = PeerAddress(host, port)
        self._readable = ReadableSet()
        self._wait_fd = os.dup(self._readable.fileno())
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._readable.add(self._wake_r, None)
        async with trio.open_nursery() as tasks:
            self._tasks = tasks
            tasks.start_soon(self._read_loop, self._readable.fileno())
            for peer, address in sorted(self._pending_peers.items()):
                self.add_peer(peer, address)
            if listener is not None:
                tasks.start_soon(self._accept_loop, listener)
            task_status.started()
            await trio.sleep_forever()  # links and connections come and go until we close

    def _new_link(self, peer: str, address: PeerAddress | None) -> _Link:
        assert self._tasks is not None, "links are made once the transport runs"
        queue_in, queue_out = trio.open_memory_channel[bytes | _Rest](self._send_queue_frames)
        backoff = Backoff(self._rng, min_s=MIN_BACKOFF_S, max_s=self._max_backoff_s)
        link = _Link(peer, address, queue_in, queue_out, backoff)
        self._links[peer] = link
        self._tasks.start_soon(self._run_writer, link)
        return link

    # ------------------------------------------------------------------ writing

    def _write_now(self, link: _Link, conn: _Connection, frame: bytes) -> None:
        """The fast path: one non-blocking send; the writer finishes what the kernel left."""
        try:
            written = conn.sock.send(frame)
        except BlockingIOError:
            written = 0
        except OSError:
            self._stats.dropped += 1
            self._connection_lost(conn)
            return
        self._stats.bytes_sent += written
        if written == len(frame):
            self._stats.sent += 1
            self._counters.direct_writes += 1
            return
        link.unwritten += 1
        link.queue_in.send_nowait(_Rest(conn, frame[written:]))  # the queue was empty: it fits

    def _enqueue_or_drop(self, link: _Link, frame: bytes) -> bool:
        """Queue ``frame`` if the peer's queue has room (True), else drop it (never waits)."""
        link.unwritten += 1
        try:
            link.queue_in.send_nowait(frame)
        except trio.WouldBlock:
            link.unwritten -= 1
            self._stats.dropped += 1
            self._counters.send_queue_full += 1
            return False
        except trio.ClosedResourceError:
            link.unwritten -= 1
            if self._closed:
                raise TransportClosed(f"{self.node_id}: closed while sending") from None
            raise Unreachable(f"{self.node_id}: {link.peer!r} disconnected") from None
        return True

    async def _enqueue(self, link: _Link, frame: bytes) -> None:
        link.unwritten += 1  # before the await: the writer may take it before we resume
        try:
            await link.queue_in.send(frame)
        except trio.ClosedResourceError:
            link.unwritten -= 1
            if self._closed:
                raise TransportClosed(f"{self.node_id}: closed while sending") from None
            raise Unreachable(f"{self.node_id}: {link.peer!r} disconnected while we waited to send") from None
        except BaseException:  # cancelled while waiting: the frame was not queued
            link.unwritten -= 1
            raise
        self._budget.waited()

    async def _run_writer(self, link: _Link) -> None:
        """Drain one peer's queue for as long as the link lives: connect, coalesce, write."""
        async with link.queue_out:
            async for first in link.queue_out:
                conn = await self._connection_for(link)
                if conn is None:
                    # Unreachable right now (in backoff, or a client that left): drop what is
                    # queued rather than make senders wait for a peer that is not there.
                    dropped = 1 + len(self._take_batch(link, max_bytes=None))
                    self._stats.dropped += dropped
                    link.unwritten -= dropped
                    continue
                batch = [first, *self._take_batch(link, max_bytes=MAX_BATCH_BYTES)]
                await self._write_batch(link, conn, batch)

    def _take_batch(self, link: _Link, *, max_bytes: int | None) -> list[bytes | _Rest]:
        """Whatever is queued right now, up to about ``max_bytes`` (None: everything)."""
        batch: list[bytes | _Rest] = []
        size = 0
        while max_bytes is None or size < max_bytes:
            try:
                item = link.queue_out.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            batch.append(item)
            size += len(item) if isinstance(item, bytes) else len(item.data)
        return batch

    async def _write_batch(self, link: _Link, conn: _Connection, batch: list[bytes | _Rest]) -> None:
        frames = [self._frame_for(conn, item) for item in batch]
        data = b"".join(frames)
        written = sum(1 for f in frames if f)
        link.writing = conn
        try:
            await send_all(conn.sock, data)
        except (OSError, trio.ClosedResourceError):
            self._stats.dropped += written
            self._connection_lost(conn)
        else:
            self._stats.sent += written
            self._stats.bytes_sent += len(data)
            self._counters.queued_writes += 1
        finally:
            link.writing = None
            link.unwritten -= len(batch)
            if conn.eof_pending:
                self._half_close(conn)

    def _frame_for(self, conn: _Connection, item: bytes | _Rest) -> bytes:
        """The bytes to write on ``conn`` for a queued item (b"" if it belonged elsewhere)."""
        if isinstance(item, bytes):
            return item
        if item.conn is conn:
            return item.data
        self._stats.dropped += 1  # the rest of a frame whose connection is gone
        return b""

    # ------------------------------------------------------------------ dialing

    async def _connection_for(self, link: _Link) -> _Connection | None:
        """The live connection with ``link.peer``, dialing one if we may; None if unreachable."""
        conn = link.live_connection()
        if conn is not None:
            return conn
        if link.address is None or trio.current_time() < link.next_dial_at:
            return None
        if await self._dial(link):
            link.backoff.reset()
        else:
            link.next_dial_at = trio.current_time() + link.backoff.next_delay_s()
        return link.live_connection()

    async def _dial(self, link: _Link) -> bool:
        """Connect to ``link.address`` and say hello, within ``connect_timeout_s``."""
        assert link.address is not None, "only peers with an address are dialed"
        self._counters.dials += 1
        sock = None
        said_hello = False
        with trio.move_on_after(self._connect_timeout_s):
            sock = await self._connect(link.address)
            if sock is not None:
                said_hello = await self._say_hello(sock, link.peer)
        if sock is None or not said_hello or self._closed or len(self._sockets) >= self._max_connections:
            close_socket(sock)
            self._counters.dial_failures += 1
            return False
        conn = _Connection(sock, peer=link.peer, dialer=self.node_id)
        self._sockets.add(sock)
        self._adopt(conn)
        self._start_reading(conn, FrameReader(self._codec), [])
        return True

    async def _connect(self, address: PeerAddress) -> socket.socket | None:
        """A connected non-blocking socket to ``address``, or None if every attempt failed."""
        try:
            infos = await trio.socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
        except OSError:
            return None
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                await trio.socket.from_stdlib_socket(sock).connect(sockaddr)
            except OSError:
                sock.close()
                continue
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            return sock
        return None

    async def _say_hello(self, sock: socket.socket, peer: str) -> bool:
        hello = self._codec.encode(Envelope(self.node_id, peer, KIND_ONEWAY, 0, TcpHello(self.node_id)))
        try:
            await send_all(sock, hello)
        except OSError:
            return False
        self._stats.bytes_sent += len(hello)
        return True

    # ---------------------------------------------------------------- accepting

    async def _accept_loop(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                await trio.lowlevel.wait_readable(listener)
                sock, _ = listener.accept()
            except BlockingIOError:
                continue  # another accept took it, or a spurious wakeup
            except trio.ClosedResourceError:
                return
            except OSError as e:
                if e.errno not in ACCEPT_RESOURCE_ERRORS:
                    continue  # the connection died before we accepted it (ECONNABORTED...)
                self._counters.connections_refused += 1
                await trio.sleep(ACCEPT_RETRY_S)  # out of descriptors or memory: let some go
                continue
            self._on_accepted(sock)

    def _on_accepted(self, sock: socket.socket) -> None:
        if len(self._sockets) >= self._max_connections:
            self._counters.connections_refused += 1
            sock.close()
            return
        self._counters.accepts += 1
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self._sockets.add(sock)  # counted against the bound while its hello is awaited
        assert self._tasks is not None, "accepting happens while the transport runs"
        self._tasks.start_soon(self._serve_inbound, sock)

    async def _serve_inbound(self, sock: socket.socket) -> None:
        """Handle one accepted connection: check its hello, then read it like any other."""
        reader = FrameReader(self._codec)
        first = await self._read_hello(sock, reader)
        if first is None:
            self._stats.rejected += 1
            self._sockets.discard(sock)
            close_socket(sock)
            return
        hello, rest = first
        conn = _Connection(sock, peer=hello.src, dialer=hello.src)
        self._adopt(conn)
        self._start_reading(conn, reader, rest)

    async def _read_hello(self, sock: socket.socket, reader: FrameReader) -> tuple[Envelope, list[Envelope]] | None:
        """The valid hello and the envelopes that came with it, or None to close the socket."""
        buffer = bytearray(RECEIVE_CHUNK_BYTES)
        with trio.move_on_after(self._connect_timeout_s):
            try:
                while True:
                    data = await self._receive_some(sock, buffer)
                    if not data:
                        return None
                    envs = reader.feed(data)  # type: ignore[arg-type]  # feed copies a memoryview
                    if envs:
                        if self._valid_hello(envs[0]):
                            return envs[0], envs[1:]
                        self._report_rejected(_peer_name(sock), "bad hello", f"first frame {type(envs[0].payload).__name__} from {envs[0].src!r}")
                        return None
            except DecodeError as e:
                self._report_rejected(_peer_name(sock), rejection_kind(e), str(e))
                return None
            except (OSError, trio.ClosedResourceError):
                return None
        self._report_rejected(_peer_name(sock), "no hello", f"none within {self._connect_timeout_s:g}s")
        return None

    def _valid_hello(self, env: Envelope) -> bool:
        return (
            isinstance(env.payload, TcpHello)
            and env.kind == KIND_ONEWAY
            and env.src == env.payload.node_id
            and env.dst == self.node_id  # the dialer reached the node it meant to
            and env.src != self.node_id
        )

    # ------------------------------------------------------------------ reading

    async def _read_loop(self, readable_fd: int) -> None:
        """Read every connection whenever one is readable, so that a peer is never blocked by
        us not reading (we drop at the inbox instead). A reading receiver may get there first."""
        check_s = READER_IDLE_CHECK_S
        try:
            while not self._closed:
                if self._reading_receiver:
                    await trio.sleep(check_s)  # a receiver reads: nothing to do
                    check_s = min(2 * check_s, READER_IDLE_CHECK_MAX_S)
                    continue
                check_s = READER_IDLE_CHECK_S  # the receiver stepped away: look often again
                await trio.lowlevel.wait_readable(readable_fd)
                if not self._reading_receiver:  # else it was woken too, and reads itself
                    self._read_ready()
        except trio.ClosedResourceError:
            return  # closed

    def _start_reading(self, conn: _Connection, reader: FrameReader, first: list[Envelope]) -> None:
        """Deliver what came with the hello, then read ``conn`` with the others."""
        assert self._readable is not None, "connections are read while the transport runs"
        self._accept_all(conn, first)
        if first:
            self._wake_reading_receiver()
        if not conn.broken:
            conn.reader = reader
            self._readable.add(conn.sock, conn)

    def _read_ready(self) -> None:
        """Read every connection that has bytes (or EOF) waiting, without blocking."""
        if self._readable is None:
            return  # closed
        for item in self._readable.ready():
            if item is None:
                self._drain_wake_up()
            else:
                self._read_once(item)  # type: ignore[arg-type]

    def _read_once(self, conn: _Connection) -> None:
        """One read of ``conn`` (it is readable): deliver its whole frames, or lose it."""
        try:
            size = conn.sock.recv_into(self._read_buffer)
        except BlockingIOError:
            return
        except OSError:
            self._connection_lost(conn)  # reset by the peer
            return
        if size == 0:
            self._connection_lost(conn)  # EOF: the peer closed (or half-closed a retired connection)
            return
        self._stats.bytes_received += size
        try:
            envs = conn.reader.feed(self._read_buffer[:size])  # type: ignore[union-attr]
        except DecodeError as e:
            self._stats.rejected += 1  # garbage or a wrong secret: this stream is lost
            self._report_rejected(conn.peer, rejection_kind(e), str(e))
            self._connection_lost(conn)
            return
        self._accept_all(conn, envs)

    def _drain_wake_up(self) -> None:
        """Consume a wake-up byte: its work, ending the reading receiver's wait, is done."""
        assert self._wake_r is not None, "wake-ups arrive while the transport runs"
        try:
            self._wake_r.recv(64)
        except BlockingIOError:
            pass
        self._wake_sent = False

    def _wake_reading_receiver(self) -> None:
        """An envelope was queued from outside :meth:`_read_ready` (a message to ourselves, or
        frames that came with a hello): make a reading receiver's wait end, so it looks."""
        if self._reading_receiver and self._inbox.queued() and not self._wake_sent:
            assert self._wake_w is not None, "a receiver reads only while the transport runs"
            self._wake_sent = True
            try:
                self._wake_w.send(b"w")
            except BlockingIOError:
                pass  # a wake-up is already pending

    async def _receive_some(self, sock: socket.socket, buffer: bytearray) -> memoryview:
        """Wait until ``sock`` is readable, then read what is there (empty: EOF)."""
        while True:
            if sock.fileno() == -1:
                raise trio.ClosedResourceError("socket closed")  # a closed socket cannot be waited on
            await trio.lowlevel.wait_readable(sock)
            try:
                size = sock.recv_into(buffer)
            except BlockingIOError:
                continue
            self._stats.bytes_received += size
            return memoryview(buffer)[:size]

    def _accept_all(self, conn: _Connection, envs: list[Envelope]) -> None:
        for env in envs:
            if env.src != conn.peer or env.dst != self.node_id or isinstance(env.payload, TcpHello):
                self._stats.rejected += 1  # misaddressed (or a second hello): not for us
                self._report_rejected(conn.peer, "misaddressed", f"{type(env.payload).__name__} for {env.dst!r} from {env.src!r}")
                continue
            self._inbox.deliver(env)

    # ---------------------------------------------------- connection bookkeeping

    def _adopt(self, conn: _Connection) -> None:
        """File ``conn`` under its peer, unless the peer already has a connection we prefer."""
        link = self._links.get(conn.peer)
        if link is None:
            link = self._new_link(conn.peer, address=None)  # a client: reachable through conn
        current = link.live_connection()
        if current is None or self._prefer(conn, current):
            link.conn = conn
            if current is not None:
                self._retire(link, current)
        else:
            self._retire(link, conn)

    def _prefer(self, new: _Connection, current: _Connection) -> bool:
        """The one rule both ends apply to two connections between the same pair."""
        if new.dialer == current.dialer:
            return True  # its dialer gave up on the older one
        return new.dialer == min(self.node_id, new.peer)

    def _retire(self, link: _Link, conn: _Connection) -> None:
        conn.retired = True
        if conn.dialer != self.node_id:
            return  # its dialer half-closes it; we read it to EOF and then close it
        if link.writing is conn:
            conn.eof_pending = True  # half-close once the write in progress is done
        else:
            self._half_close(conn)

    def _half_close(self, conn: _Connection) -> None:
        conn.eof_pending = False
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # already broken: its reader sees that and cleans up

    def _connection_lost(self, conn: _Connection) -> None:
        """Forget a connection that can no longer be used, and close it. Idempotent."""
        conn.broken = True
        self._sockets.discard(conn.sock)
        if self._readable is not None:
            self._readable.discard(conn.sock, conn)
        close_socket(conn.sock)  # wakes its writer, if it is waiting
        link = self._links.get(conn.peer)
        if link is None or link.conn is not conn:
            return
        link.conn = None
        if link.address is None:
            # A client is reachable only through its connection: forget it and drop its queue.
            del self._links[conn.peer]
            link.queue_in.close()


@asynccontextmanager
async def open_tcp_transport(
    node_id: str,
    *,
    bind: PeerAddress | None,
    peers: dict[str, PeerAddress],
    codec: FrameCodec,
    send_queue_frames: int = 1024,
    receive_queue: int = 4096,
    connect_timeout_s: float = 1.0,
    max_backoff_s: float = 1.0,
    rng: random.Random | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> AsyncIterator[TcpTransport]:
    """Open a :class:`TcpTransport`; listen on ``bind`` (None: a client that only dials).

    ``bind`` may use port 0; the port chosen is then in ``transport.address``. Raises
    :class:`AddressInUse` if ``bind`` is taken. ``rng`` drives reconnect jitter (default:
    seeded from ``node_id``). Everything is closed when the block exits.
    """
    transport = TcpTransport(
        node_id,
        peers=peers,
        codec=codec,
        send_queue_frames=send_queue_frames,
        receive_queue=receive_queue,
        connect_timeout_s=connect_timeout_s,
        max_backoff_s=max_backoff_s,
        rng=rng if rng is not None else random.Random(f"tcp-backoff:{node_id}"),
        max_connections=max_connections,
    )
    listener = None if bind is None else await _listen(bind)
    try:
        async with background_tasks(transport, transport._run, listener):
            yield transport
    finally:
        close_socket(listener)


async def _listen(bind: PeerAddress) -> socket.socket:
    """A non-blocking listening socket on ``bind``; :class:`AddressInUse` if it is taken."""
    infos = await trio.socket.getaddrinfo(bind.host, bind.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        # Lets a restarted node listen again at once, while the old connections sit in
        # TIME_WAIT. It does not let two live listeners share the port (that is SO_REUSEPORT).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(LISTEN_BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise address_in_use(bind, e) from e
        raise
    return sock


class ClosesNow(Protocol):
    def close_nowait(self) -> None: ...


@asynccontextmanager
async def background_tasks(transport: ClosesNow, run: Callable[..., Awaitable[None]], *args: object) -> AsyncIterator[None]:
    """Run ``await run(*args, task_status=...)`` beside the caller's block, then close ``transport``.

    The caller's block runs inside our nursery, and trio wraps whatever it raises in an
    ExceptionGroup; a lone exception is unwrapped again, so ``async with open_..._transport``
    raises what its body raised. ``run`` owns its own nursery, so closing the transport
    cancels our tasks and never the caller's block.
    """
    try:
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(run, *args)
                yield
            finally:
                transport.close_nowait()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], BaseExceptionGroup):
            raise group.exceptions[0] from None
        raise


def _peer_name(sock: socket.socket) -> str:
    """``host:port`` of a connected socket's peer (for log lines), or ``?``."""
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"
