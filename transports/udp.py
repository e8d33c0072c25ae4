"""The UDP transport: one datagram carries exactly one frame.

Why this is the simplest transport
    A datagram arrives whole or not at all, so there is no stream to split, no connection to
    set up, restore or deduplicate. Everything UDP does wrong -- loss, duplication,
    reordering -- is allowed by the transport contract (:mod:`transports.base`) and is
    repaired, where it matters, by the RPC layer above (request ids, timeouts, retries).

Size: we refuse, we do not fragment
    A frame must fit one datagram: at most ``MAX_DATAGRAM_BYTES`` (65507, the IPv4 UDP
    payload limit) or the codec's ``max_frame_bytes`` if that is smaller. ``send`` refuses a
    bigger one with :class:`~transports.codec.MessageTooLarge` naming both sizes, before
    anything is sent. Splitting frames into fragments would re-invent TCP badly (one lost
    fragment loses the frame); payloads that can be big belong on the TCP transport.

Addresses
    ``peers`` maps node ids to addresses. A node that is not in ``peers`` -- a client such as
    the CLI, on an ephemeral port -- becomes reachable once we receive one well-formed,
    authenticated datagram whose envelope ``src`` names it: we remember the address it came
    from (at most ``MAX_LEARNED_ADDRESSES``, least recently heard forgotten first), so replies
    find their way back. A learned address never overrides a configured one.

What is dropped when (all counted in ``statistics()``)
    * garbage, wrong-secret and misaddressed datagrams: ``rejected``, ignored;
    * a datagram that finds the receive queue full: ``dropped`` (we must keep draining the
      socket, or the kernel drops for us, uncounted);
    * a send the kernel refuses (e.g. an ICMP error reported on the socket): ``dropped``.
    ``send`` waits only when the kernel's socket send buffer is full.

The socket is a non-blocking standard socket driven by trio's low-level readiness waits:
each wakeup drains up to ``RECEIVE_BURST`` datagrams, so one scheduler round serves a burst,
and a send is one system call in the caller's task. ``send`` and ``receive`` yield to the
scheduler only when they wait or once per :class:`~transports.tcp.ScheduleBudget` (they
always check for cancellation).
"""

from __future__ import annotations

import errno
import socket
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import AsyncIterator

import trio

from transports.base import PeerAddress, Transport, TransportClosed, TransportStatistics, Unreachable, rejection_kind
from transports.codec import DecodeError, Envelope, FrameCodec, MessageTooLarge
from transports.tcp import Inbox, ScheduleBudget, address_in_use, background_tasks, close_socket

# The largest UDP payload over IPv4: 65535 - 8 (UDP header) - 20 (IP header).
MAX_DATAGRAM_BYTES = 65507
# Datagrams read per wakeup before giving other tasks a turn.
RECEIVE_BURST = 64
# Ask the kernel for roomy socket buffers (it caps them at net.core.[rw]mem_max): a burst of
# pipelined messages should not overflow them before the receiver gets a turn.
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
# Return addresses learned from clients not in `peers`.
MAX_LEARNED_ADDRESSES = 4096

SockAddr = tuple  # (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6


class UdpTransport(Transport):
    """Frames in datagrams. Open it with :func:`open_udp_transport`."""

    def __init__(self, node_id: str, *, sock: socket.socket, peers: dict[str, PeerAddress], codec: FrameCodec, receive_queue: int) -> None:
        assert receive_queue >= 1, "the receive queue is bounded and non-empty"
        assert not sock.getblocking(), "the socket is driven by trio's readiness waits"
        self.node_id = node_id
        host, port = sock.getsockname()[:2]
        self.address = PeerAddress(host, port)
        self.max_datagram_bytes = min(MAX_DATAGRAM_BYTES, codec.max_frame_bytes)
        self._sock = sock
        self._codec = codec
        self._peers: dict[str, PeerAddress] = {}
        self._sockaddrs: dict[PeerAddress, SockAddr] = {}  # resolved configured addresses
        self._learned: OrderedDict[str, SockAddr] = OrderedDict()
        self._buffer = bytearray(MAX_DATAGRAM_BYTES + 1)  # reused for every datagram
        self._tasks: trio.Nursery | None = None
        self._closed = False
        self._budget = ScheduleBudget()
        self._stats = TransportStatistics()
        self._socket_errors = 0  # send/receive errors the kernel reported (ICMP...)
        self._send_buffer_full = 0  # wait=False datagrams dropped on a full kernel send buffer
        self._inbox = Inbox(node_id, receive_queue, self._stats, self._budget)
        for peer, address in sorted(peers.items()):
            self.add_peer(peer, address)

    # ------------------------------------------------------------------ public API

    async def send(self, env: Envelope, *, wait: bool = True) -> None:
        """Send ``env`` as one datagram. Waits only while the kernel's send buffer is full;
        with ``wait=False``, drops ``env`` then instead."""
        if self._closed:
            raise TransportClosed(f"{self.node_id}: send after close")
        self._check_src(env)
        await trio.lowlevel.checkpoint_if_cancelled()
        frame = self._codec.encode(env)  # refuses frames over the codec's bound
        if len(frame) > self.max_datagram_bytes:
            raise MessageTooLarge(
                f"{type(env.payload).__name__} frames to {len(frame)} bytes, over the UDP datagram bound "
                f"of {self.max_datagram_bytes} bytes; UDP does not fragment: send it over TCP"
            )
        if env.dst == self.node_id:
            self._stats.sent += 1
            self._inbox.deliver(env)
            if self._budget.spend():
                await trio.lowlevel.cancel_shielded_checkpoint()
            return
        sockaddr = await self._sockaddr_of(env.dst)
        await self._sendto(frame, sockaddr, wait=wait)

    async def receive(self) -> Envelope:
        """The next envelope addressed to this node."""
        if self._closed:
            raise TransportClosed(f"{self.node_id}: receive after close")
        return await self._inbox.receive()

    def add_peer(self, node_id: str, address: PeerAddress) -> None:
        """Learn (or change) the address of ``node_id``."""
        if self._closed:
            raise TransportClosed(f"{self.node_id}: add_peer after close")
        self._peers[node_id] = address
        self._learned.pop(node_id, None)  # configured beats learned

    def statistics(self) -> TransportStatistics:
        stats = replace(self._stats, extra={})
        stats.extra.update(
            learned_addresses=len(self._learned),
            receive_queue_full=self._inbox.full_drops,
            socket_errors=self._socket_errors,
            send_queue_full=self._send_buffer_full,
        )
        return stats

    async def aclose(self) -> None:
        """Close the socket and stop the receiver. Idempotent."""
        self.close_nowait()
        await trio.lowlevel.checkpoint()

    def close_nowait(self) -> None:
        """Synchronous :meth:`aclose` (for ``finally`` blocks that must not wait)."""
        if self._closed:
            return
        self._closed = True
        self._inbox.close()  # wakes a task blocked in receive(): TransportClosed
        close_socket(self._sock)  # wakes tasks waiting on the socket
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()

    # ----------------------------------------------------------------- sending

    async def _sockaddr_of(self, node_id: str) -> SockAddr:
        address = self._peers.get(node_id)
        if address is None:
            learned = self._learned.get(node_id)
            if learned is None:
                raise Unreachable(f"{self.node_id}: no address known for {node_id!r}")
            return learned
        sockaddr = self._sockaddrs.get(address)
        if sockaddr is None:
            sockaddr = await self._resolve(address)
            self._sockaddrs[address] = sockaddr
        return sockaddr

    async def _resolve(self, address: PeerAddress) -> SockAddr:
        """Resolve a configured address once (numeric hosts never leave this thread)."""
        try:
            infos = await trio.socket.getaddrinfo(address.host, address.port, self._sock.family, socket.SOCK_DGRAM)
        except OSError as e:
            raise Unreachable(f"{self.node_id}: cannot resolve {address}: {e}") from None
        if not infos:
            raise Unreachable(f"{self.node_id}: {address} has no address of our family")
        return infos[0][4]

    async def _sendto(self, frame: bytes, sockaddr: SockAddr, *, wait: bool = True) -> None:
        """One datagram; waits (and so yields) only while the kernel's send buffer is full
        (``wait=False``: drops it then)."""
        while True:
            try:
                self._sock.sendto(frame, sockaddr)
            except BlockingIOError:
                if not wait:
                    self._stats.dropped += 1
                    self._send_buffer_full += 1
                    break
                self._budget.waited()
                await self._wait_writable()  # the only backpressure UDP has
                continue
            except OSError:
                if self._closed:
                    raise TransportClosed(f"{self.node_id}: closed while sending") from None
                self._socket_errors += 1  # e.g. an ICMP error reported on the socket
                self._stats.dropped += 1
            else:
                self._stats.sent += 1
                self._stats.bytes_sent += len(frame)
            break
        if self._budget.spend():
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _wait_writable(self) -> None:
        try:
            await trio.lowlevel.wait_writable(self._sock)
        except trio.ClosedResourceError:
            raise TransportClosed(f"{self.node_id}: closed while sending") from None

    # --------------------------------------------------------------- receiving

    async def _run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Own the receiver task, in a nursery whose cancellation is ours alone."""
        async with trio.open_nursery() as tasks:
            self._tasks = tasks
            tasks.start_soon(self._run_receiver)
            task_status.started()

    async def _run_receiver(self) -> None:
        view = memoryview(self._buffer)
        while not self._closed:  # a closed socket has no descriptor left to wait on
            try:
                await trio.lowlevel.wait_readable(self._sock)
            except trio.ClosedResourceError:
                return
            for _ in range(RECEIVE_BURST):
                try:
                    size, sockaddr = self._sock.recvfrom_into(self._buffer)
                except BlockingIOError:
                    break  # drained
                except OSError:
                    if self._closed:
                        return
                    self._socket_errors += 1  # e.g. an ICMP error from an earlier send
                    continue
                self._on_datagram(view[:size], sockaddr)

    def _on_datagram(self, data: memoryview, sockaddr: SockAddr) -> None:
        self._stats.bytes_received += len(data)
        try:
            env = self._codec.decode(data)
        except DecodeError as e:
            self._stats.rejected += 1  # garbage, a wrong secret, or a truncated frame
            self._report_rejected(_address(sockaddr), rejection_kind(e), str(e))
            return
        if env.dst != self.node_id:
            self._stats.rejected += 1  # misaddressed: not for us
            self._report_rejected(_address(sockaddr), "misaddressed", f"for {env.dst!r} from {env.src!r}")
            return
        if env.src not in self._peers:
            self._learn(env.src, sockaddr)
        self._inbox.deliver(env)

    def _learn(self, node_id: str, sockaddr: SockAddr) -> None:
        self._learned[node_id] = sockaddr
        self._learned.move_to_end(node_id)
        while len(self._learned) > MAX_LEARNED_ADDRESSES:
            self._learned.popitem(last=False)


async def _bound_socket(bind: PeerAddress) -> socket.socket:
    """A non-blocking UDP socket bound to ``bind``; :class:`AddressInUse` if it is taken."""
    infos = await trio.socket.getaddrinfo(bind.host, bind.port, type=socket.SOCK_DGRAM)
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        # No SO_REUSEADDR: for UDP it would let a second node share the port silently.
        sock.bind(sockaddr)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise address_in_use(bind, e) from e
        raise
    return sock


@asynccontextmanager
async def open_udp_transport(
    node_id: str,
    *,
    bind: PeerAddress | None,
    peers: dict[str, PeerAddress],
    codec: FrameCodec,
    receive_queue: int = 4096,
) -> AsyncIterator[UdpTransport]:
    """Open a :class:`UdpTransport` on ``bind`` (None: 127.0.0.1 on an ephemeral port).

    The port actually bound is in ``transport.address``. Raises
    :class:`~transports.tcp.AddressInUse` if ``bind`` is taken. Closed when the block exits.
    """
    sock = await _bound_socket(bind if bind is not None else PeerAddress("127.0.0.1", 0))
    transport = UdpTransport(node_id, sock=sock, peers=peers, codec=codec, receive_queue=receive_queue)
    async with background_tasks(transport, transport._run):
        yield transport


def _address(sockaddr: SockAddr) -> str:
    return f"{sockaddr[0]}:{sockaddr[1]}"
