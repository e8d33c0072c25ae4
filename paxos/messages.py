"""The Paxos wire messages, and the acceptor's durable record.

One instance of single-decree Paxos per register version (see :mod:`paxos`). Every message
names its ``instance``; the four classic ones follow Lamport's "Paxos Made Simple" §2.2 and
the phase names of his TLA+ spec ``Paxos.tla``:

==============  =========  ==================================================================
message         phase      meaning
==============  =========  ==================================================================
``Prepare``     1a         "promise me not to accept ballots below ``ballot``"
``Promise``     1b         "promised; here is what I accepted before, if anything"
``Accept``      2a         "accept ``value`` at ``ballot``"
``Accepted``    2b         "accepted"
``Nack``        1b / 2b    "refused: I promised a higher ballot, ``promised``"
``Query``       read       "what is the highest instance in which you accepted a value?"
``Status``      read       the answer to ``Query``
``Learn``       read       "what did you accept in instances ``lo..hi-1``?"
``Learned``     read       the answer to ``Learn``
==============  =========  ==================================================================

**Registers.** One acceptor serves many independent registers, each its own sequence of
instances, named by the ``register`` field every message carries: ``""``
(:data:`CHAIN_REGISTER`) is the MetaStore's register holding the VirtualLog's chain; the
bootstrap loglet (:mod:`delos_ref.loglet.bootstrap`) uses one register per loglet. Paxos
runs unchanged within each register: nothing an acceptor does for one register looks at
another. The field comes last and defaults to ``""``, so ``Prepare(1, b)`` is the chain's.

``Nack`` is an optimization Lamport mentions ("the acceptor should inform the proposer, who
can then abandon its proposal"); without it a proposer could only time out. It carries the
promised ballot so the proposer can jump above it.

``Promise``, ``Accepted`` and ``Status`` carry ``top``: the highest instance in which the
acceptor holds an accepted value. Reads use it to find the current version (see
:mod:`paxos.register`).

:class:`Slot` is not sent to peers: it is what an acceptor persists for one instance, encoded
by the same codec. Think of it as the message an acceptor sends to its future self.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxos.ballot import ZERO, Ballot
from transports.codec import message


@message("paxos.update")
@dataclass(frozen=True, slots=True)
class Update:
    """The Paxos *value* of one instance: the register's new data, tagged with its write.

    The tag (``writer``, ``seq``) makes every write's value distinct even when two clients
    write the same bytes. Without it, two ``write_if(v, b"x")`` calls could both see
    ``b"x"`` chosen at ``v + 1`` and both report success -- one of them falsely.
    """

    writer: str
    seq: int
    data: bytes

    def __post_init__(self) -> None:
        if not self.writer:
            raise ValueError("an Update names the proposer that wrote it")
        if self.seq < 0:
            raise ValueError(f"Update.seq must be >= 0, got {self.seq}")

    def as_trace(self) -> dict[str, object]:
        return {"writer": self.writer, "seq": self.seq, "data": self.data}


#: Instances are numbered 1..MAX_INSTANCE (storage keys are 8 bytes; a peer cannot push past).
MAX_INSTANCE = 2**63 - 1


#: The MetaStore's own register (the VirtualLog's chain).
CHAIN_REGISTER = ""
#: Bound on a register name (UTF-8 bytes); names never contain NUL (the storage key separator).
MAX_REGISTER_NAME = 200
#: Bound on the instances one ``Learn`` asks about.
MAX_LEARN = 256


def check_register(register: str) -> None:
    if type(register) is not str or "\x00" in register or len(register.encode()) > MAX_REGISTER_NAME:
        raise ValueError(f"a register name is a str of at most {MAX_REGISTER_NAME} bytes without NUL, got {register!r}")


def _check_instance(instance: int) -> None:
    if not 1 <= instance <= MAX_INSTANCE:
        raise ValueError(f"Paxos instances are numbered from 1 (register version 1) to {MAX_INSTANCE}, got {instance}")


def _check_top(top: int) -> None:
    if not 0 <= top <= MAX_INSTANCE:
        raise ValueError(f"top must be in 0..{MAX_INSTANCE}, got {top}")


def _check_accepted(accepted_ballot: Ballot, accepted_value: Update | None) -> None:
    if accepted_ballot.is_zero != (accepted_value is None):
        raise ValueError("a value is accepted at a real ballot, and only then")


@message("paxos.prepare")
@dataclass(frozen=True, slots=True)
class Prepare:
    """Phase 1a."""

    instance: int
    ballot: Ballot
    register: str = CHAIN_REGISTER

    def __post_init__(self) -> None:
        check_register(self.register)
        _check_instance(self.instance)
        if self.ballot.is_zero:
            raise ValueError("Prepare needs a real ballot")


@message("paxos.promise")
@dataclass(frozen=True, slots=True)
class Promise:
    """Phase 1b: the acceptor promised ``ballot``; it had accepted ``accepted_value`` at
    ``accepted_ballot`` (``ZERO`` and ``None`` when it had accepted nothing)."""

    instance: int
    ballot: Ballot
    accepted_ballot: Ballot
    accepted_value: Update | None
    top: int
    register: str = CHAIN_REGISTER

    def __post_init__(self) -> None:
        check_register(self.register)
        _check_instance(self.instance)
        _check_top(self.top)
        _check_accepted(self.accepted_ballot, self.accepted_value)
        if self.accepted_ballot > self.ballot:
            raise ValueError("a Promise cannot report an accepted ballot above the one promised")


@message("paxos.accept")
@dataclass(frozen=True, slots=True)
class Accept:
    """Phase 2a."""

    instance: int
    ballot: Ballot
    value: Update
    register: str = CHAIN_REGISTER

    def __post_init__(self) -> None:
        check_register(self.register)
        _check_instance(self.instance)
        if self.ballot.is_zero:
            raise ValueError("Accept needs a real ballot")


@message("paxos.accepted")
@dataclass(frozen=True, slots=True)
class Accepted:
    """Phase 2b."""

    instance: int
    ballot: Ballot
    top: int
    register: str = CHAIN_REGISTER

    def __post_init__(self) -> None:
        check_register(self.register)
        _check_instance(self.instance)
        _check_top(self.top)


@message("paxos.nack")
@dataclass(frozen=True, slots=True)
class Nack:
    """A refused Prepare or Accept at ``ballot``: the acceptor promised ``promised`` > ``ballot``."""

    instance: int
    ballot: Ballot
    promised: Ballot
    register: str = CHAIN_REGISTER

    def __post_init__(self) -> None:
        check_register(self.register)
        _check_instance(self.instance)
        if not self.promised > self.ballot:
            raise ValueError("a Nack reports a promise above the refused ballot")


@message("paxos.query")
@dataclass(frozen=True, slots=True)
class Query:
    """Read step 1: ask for the highest instance holding an accepted value."""

    register: str = CHAIN_REGISTER

    def __post_init__(self) -> None:
        check_register(self.register)


@message("paxos.status")
@dataclass(frozen=True, slots=True)
class Status:
    """The answer to :class:`Query`: ``top`` and what is accepted there (``ZERO``/``None`` if
    ``top`` is 0, the empty register)."""

    top: int
    accepted_ballot: Ballot
    accepted_value: Update | None
    register: str = CHAIN_REGISTER

    def __post_init__(self) -> None:
        check_register(self.register)
        _check_top(self.top)
        _check_accepted(self.accepted_ballot, self.accepted_value)
        if (self.top == 0) != self.accepted_ballot.is_zero:
            raise ValueError("Status reports an accepted value exactly when top > 0")


@message("paxos.learn")
@dataclass(frozen=True, slots=True)
class Learn:
    """Ask what the acceptor accepted in instances ``lo .. hi - 1`` (read-only).

    Used to read instances below the top (the bootstrap loglet's ``read_next``): a value
    that a majority report at one ballot is chosen; anything else needs settling with a full
    Paxos attempt, as for a read's top (see :meth:`paxos.register.MetaStoreClient.learn`).
    """

    register: str
    lo: int
    hi: int

    def __post_init__(self) -> None:
        check_register(self.register)
        _check_instance(self.lo)
        if not self.lo < self.hi <= min(self.lo + MAX_LEARN, MAX_INSTANCE + 1):
            raise ValueError(f"Learn: need lo < hi <= lo + {MAX_LEARN}, got lo={self.lo} hi={self.hi}")


@message("paxos.learned")
@dataclass(frozen=True, slots=True)
class Learned:
    """The answer to :class:`Learn`: ``(accepted_ballot, accepted_value)`` for instances
    ``lo, lo + 1, ...`` (``ZERO``/``None`` where nothing is accepted). It may stop before the
    ``hi`` asked for, to keep the frame small; ``top`` as in :class:`Status`."""

    register: str
    lo: int
    accepted: tuple[tuple[Ballot, Update | None], ...]
    top: int

    def __post_init__(self) -> None:
        check_register(self.register)
        _check_instance(self.lo)
        _check_top(self.top)
        if len(self.accepted) > MAX_LEARN:
            raise ValueError(f"Learned: at most {MAX_LEARN} instances")
        for ballot, value in self.accepted:
            _check_accepted(ballot, value)


@message("paxos.slot")
@dataclass(frozen=True, slots=True)
class Slot:
    """An acceptor's durable state for one instance (Lamport's maxBal, maxVBal, maxVal)."""

    promised: Ballot = ZERO
    accepted_ballot: Ballot = ZERO
    accepted_value: Update | None = None

    def __post_init__(self) -> None:
        _check_accepted(self.accepted_ballot, self.accepted_value)
        if self.accepted_ballot > self.promised:
            raise ValueError("an acceptor never accepts above its promise (accepting promises too)")


EMPTY_SLOT = Slot()
