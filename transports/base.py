"""The one transport interface that every layer of delos-ref talks through.

A transport moves :class:`~transports.codec.Envelope` s between *node ids* (short strings such
as ``"n1"`` or ``"cli-4f2a"``). It promises nothing about delivery: messages may be lost,
duplicated, reordered or delayed (the memory transport does all four on purpose; UDP does
them by nature; TCP loses what was queued when a connection breaks). Retries, deadlines and
reply correlation belong to the RPC layer above (:mod:`delos_ref.rpc`).

Three implementations pass one conformance suite (``tests/test_transport_conformance.py``):

* :mod:`transports.memory` -- the simulated network, driven by a seeded RNG;
* :mod:`transports.udp`    -- one datagram per frame;
* :mod:`transports.tcp`    -- length-prefixed frames over one reused connection per peer.

What every implementation guarantees:

* ``send`` refuses, with a named error and before anything is sent, a message that cannot be
  sent at all: :class:`~transports.codec.MessageTooLarge`, :class:`Unreachable` for a node id
  with no known address, :class:`TransportClosed` after close.
* ``send`` may wait (backpressure) but never queues without bound. ``send(env, wait=False)``
  never waits: what would have to wait is dropped and counted (``statistics().dropped``, and
  ``extra["send_queue_full"]`` where a queue was full). Roles send that way (:mod:`delos_ref.rpc`):
  a peer that is connected but does not read -- paused, or cut off without its connection
  breaking -- fills its queue, and a role that waited for it would stop serving everyone else.
  Its message is lost instead, which every protocol here tolerates.
* ``receive`` yields only well-formed, authenticated envelopes addressed to this node;
  garbage from a peer is counted in ``statistics().rejected`` and never stops the transport.
  If ``on_rejected`` is set, it is also told who sent it and why (a node logs it).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable

from transports.codec import BadMac, DecodeError, Envelope, FrameTooLarge


class TransportError(Exception):
    """Base of transport errors."""


class Unreachable(TransportError):
    """No address is known for the destination node id (a definite failure: nothing was sent)."""


class AddressInUse(TransportError, OSError):
    """The address to bind (listen on) is already taken by another socket.

    It is an ``OSError`` too (errno ``EADDRINUSE``), so code that already catches socket
    errors keeps working.
    """


class TransportClosed(TransportError):
    """The transport was closed."""


@dataclass(frozen=True, slots=True)
class PeerAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> "PeerAddress":
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not a host:port address: {text!r}")
        return cls(host, int(port))


@dataclass(slots=True)
class TransportStatistics:
    """Counters every transport keeps (trio style: a plain snapshot object)."""

    sent: int = 0
    received: int = 0
    dropped: int = 0  # dropped locally: queue overflow, broken connection, simulated loss
    rejected: int = 0  # garbage, wrong secret or misaddressed frames from peers
    bytes_sent: int = 0
    bytes_received: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        d = {k: getattr(self, k) for k in ("sent", "received", "dropped", "rejected", "bytes_sent", "bytes_received")}
        d.update(self.extra)
        return d


class Transport(abc.ABC):
    """Moves envelopes between node ids. See the module docstring for the contract."""

    node_id: str
    #: True if nothing is lost, duplicated or reordered between two nodes while their
    #: connection lives (TCP); messages can still be lost when a connection breaks. The RPC
    #: layer then resends later (``RetryPolicy.reliable_first_s``): an early resend would
    #: only duplicate a request the server is already working on.
    reliable: bool = False
    #: Told ``(peer, kind, detail)`` of every frame refused (see :func:`rejection_kind`); the
    #: peer is an address (``host:port``) or a node id. None: rejections are only counted.
    on_rejected: Callable[[str, str, str], None] | None = None

    @abc.abstractmethod
    async def send(self, env: Envelope, *, wait: bool = True) -> None:
        """Hand ``env`` to the network for ``env.dst``. ``env.src`` must be this node's id.

        ``wait=False``: drop ``env`` (and count it) rather than wait for room to send it.
        """

    @abc.abstractmethod
    async def receive(self) -> Envelope:
        """The next envelope addressed to this node."""

    @abc.abstractmethod
    def statistics(self) -> TransportStatistics:
        ...

    @abc.abstractmethod
    async def aclose(self) -> None:
        ...

    def _check_src(self, env: Envelope) -> None:
        assert env.src == self.node_id, f"send: envelope src {env.src!r} is not this node ({self.node_id!r})"

    def _report_rejected(self, peer: object, kind: str, detail: str = "") -> None:
        """Tell ``on_rejected`` about one refused frame (the caller counts it)."""
        if self.on_rejected is not None:
            self.on_rejected(str(peer), kind, detail)


def rejection_kind(error: DecodeError) -> str:
    """``bad MAC`` (a wrong secret or a forged frame), ``oversize`` or ``malformed``."""
    if isinstance(error, BadMac):
        return "bad MAC"
    if isinstance(error, FrameTooLarge):
        return "oversize"
    return "malformed"
