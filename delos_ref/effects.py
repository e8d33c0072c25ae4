"""What a pure protocol core hands back: effects, never actions.

A protocol core (Paxos acceptor, LogServer, sequencer, failure detector) is a synchronous
state machine with no I/O, no clock and no randomness. The runtime (:mod:`delos_ref.runtime`)
feeds it one input at a time -- an :class:`Incoming` message or a :class:`TimerFired` -- and
the core returns a list of effects, which the runtime carries out **in order** with one rule
(etcd/raft's): every :class:`Persist` completes, synced, before any later :class:`Send` or
:class:`Reply` leaves the node. The runtime may batch several inputs and carry out their
persists in one synced transaction (group commit) before their sends; delaying a send is
always safe, sending before a persist is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Union

from transports.codec import fast_frozen_init  # effects are built for every message: see there


# ------------------------------------------------------------------------------ inputs


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Incoming:
    """A message delivered to a role. ``rid`` is nonzero when the sender awaits a reply."""

    src: str
    rid: int
    msg: Any

    @property
    def wants_reply(self) -> bool:
        return self.rid != 0


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class TimerFired:
    name: str


Input = Union[Incoming, TimerFired]


# ----------------------------------------------------------------------------- effects


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Send:
    """A one-way message to another node."""

    dst: str
    msg: Any


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a request (``Incoming.rid``)."""

    to: str
    rid: int
    msg: Any


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Fail:
    """A definite refusal of a request: the caller learns that it did *not* take effect."""

    to: str
    rid: int
    code: str
    detail: str = ""


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Write:
    """One key in one table of the role's storage; ``value=None`` deletes it."""

    table: str
    key: bytes
    value: bytes | None


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Persist:
    """Writes applied atomically and synced before any later send (group-committed)."""

    writes: tuple[Write, ...]


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class SetTimer:
    """(Re)arm the named timer; it fires once as :class:`TimerFired` after ``delay_s``."""

    name: str
    delay_s: float


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)  # (default_factory: fast_frozen_init would leave it as is)
class Emit:
    """A trace event (see :mod:`delos_ref.trace`): a protocol step a spec talks about."""

    event: str
    fields: dict[str, Any] = field(default_factory=dict)


Effect = Union[Send, Reply, Fail, Persist, SetTimer, CancelTimer, Emit]


class Core(Protocol):
    """What the runtime needs from a pure protocol core."""

    #: Message classes this role accepts; the node routes them here.
    handles: tuple[type, ...]

    def handle(self, item: Input) -> list[Effect]:
        ...
