"""The Loglet interface: what every shared-log segment offers the VirtualLog (docs/design.md §2).

A loglet is a totally ordered, durable log with a *static* configuration. It needs no leader
election and no membership change, because the VirtualLog above it does reconfiguration: all
a loglet must do is store entries in order, and offer a highly available, fault-tolerant
``seal``. That split is the paper's central idea ("consensus in the VirtualLog is simple and
fault-tolerant, consensus in the Loglet is simple and fast", §1), and this small interface is
where the two layers meet. Every loglet kind implements it: the memory loglet (the simplest
worked example), the NativeLoglet (sequencer plus LogServers), and later the striped and
bootstrap loglets; one conformance suite (``tests/loglet_conformance.py``) holds them all to
the same contract.

The contract (§3.4), operation by operation:

* ``append(entry) -> pos`` stores one entry at the next free position. Once the loglet is
  sealed it fails with :class:`SealedError`. A *failed* append may still have become durable
  (its error says whether that is possible: ``may_have_landed``); the layer above deduplicates.
* ``append_many(entries) -> [pos, ...]`` is the pipelined path: several entries in one call,
  acknowledged together, positions ascending. Many concurrent ``append`` calls from one
  client are pipelined as well (see each implementation).
* ``check_tail() -> Tail(tail, sealed)``: ``tail`` is the first unwritten position; every
  position below it is readable. After a seal, ``sealed`` is True and the tail may still grow
  ("zombie" appends that were in flight), but never below a tail returned earlier, and every
  acknowledged append lies below every sealed tail anyone observes.
* ``read_next(lo, hi)`` returns the entries at ``lo, lo+1, ...`` below ``hi``, stopping at the
  first position that is not readable (the tail, or a per-call bound): a range read.
* ``prefix_trim(pos)``: positions below ``pos`` may be discarded; reading them then raises
  :class:`TrimmedError`. Trimming past the tail trims to the tail.
* ``seal()``: idempotent, one-way and sticky. When it returns, every later append fails and
  every later ``check_tail`` reports ``sealed=True``.
* ``diagnose(view, fresh_id) -> Diagnosis | None``: *failure detection* (the seed's requirement
  5: "loglets need to detect failures and initiate the VirtualLog reconfiguration process").
  Given what the node's failure detector believes (:class:`Membership`: which nodes answer
  heartbeats), the loglet says whether it is failing -- and which loglet should succeed it.
  The VirtualLog's supervisor (``delos_ref/virtuallog/supervisor.py``) then runs the
  reconfiguration. Only the loglet knows what its own failure means (a NativeLoglet with a
  dead sequencer can take no append; one with a dead LogServer still can), so the decision is
  the loglet's; the act, sealing and installing a new chain, is the VirtualLog's. A loglet
  that cannot fail (the memory loglet) returns None.

Errors say whose fault they are: :class:`SealedError` and :class:`TrimmedError` are the
protocol working as designed; :class:`LogletUnavailable` means too few servers answered
within the deadline; ``ValueError`` means the caller misused the API (an oversized entry).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

#: Bound on one entry (the frame bound is 4 MiB; leave room for batching several).
MAX_ENTRY_BYTES = 1 << 20
#: Bound on the entries of one ``append_many`` call.
MAX_APPEND_MANY = 512
#: Bound on the entries one ``read_next`` call returns.
MAX_READ_ENTRIES = 1024


class LogletError(Exception):
    """Base of the named, expected failures of loglet operations."""


class SealedError(LogletError):
    """The loglet is sealed: this append was refused (docs/design.md §2).

    ``may_have_landed`` is True when the entry had already been given a position before the
    seal stopped it: it may be durable below the sealed tail ("a failed append may still
    become durable"). When False, the append certainly did not take effect.
    """

    def __init__(self, message: str = "loglet is sealed", *, may_have_landed: bool = False) -> None:
        super().__init__(message)
        self.may_have_landed = may_have_landed


class LogletUnavailable(LogletError):
    """Not enough of the loglet answered in time (a crashed sequencer, no majority).

    ``may_have_landed`` tells an append's caller whether the entry may still become durable.
    The VirtualLog reacts to this error by reconfiguring (§3.2).
    """

    def __init__(self, message: str, *, may_have_landed: bool = False) -> None:
        super().__init__(message)
        self.may_have_landed = may_have_landed


class TrimmedError(LogletError):
    """The position asked for lies below the trim point: it was discarded by ``prefix_trim``."""

    def __init__(self, pos: int, trim_point: int) -> None:
        super().__init__(f"position {pos} is trimmed (trim point {trim_point})")
        self.pos = pos
        self.trim_point = trim_point


class Tail(NamedTuple):
    """What ``check_tail`` returns: the first unwritten position and the seal status."""

    tail: int
    sealed: bool


def check_entry(entry: bytes) -> None:
    """Refuse local misuse before anything is sent: entries are bytes within the bound."""
    if not isinstance(entry, (bytes, bytearray)):
        raise TypeError(f"a log entry is bytes, not {type(entry).__name__}")
    if len(entry) > MAX_ENTRY_BYTES:
        raise ValueError(f"entry of {len(entry)} bytes exceeds the bound of {MAX_ENTRY_BYTES}")


def check_range(lo: int, hi: int) -> None:
    if not (isinstance(lo, int) and isinstance(hi, int)) or lo < 0 or hi < lo:
        raise ValueError(f"read_next: need 0 <= lo <= hi, got lo={lo!r} hi={hi!r}")


@dataclass(frozen=True, slots=True)
class Membership:
    """What one node's failure detector believes: ``alive`` answered heartbeats lately;
    ``candidates`` are the nodes that may host LogServers, ``sequencers`` those that may
    host sequencers (default: the candidates), in cluster order."""

    alive: frozenset[str]
    candidates: tuple[str, ...]
    sequencers: tuple[str, ...] = ()
    #: The alive nodes that have answered steadily for the damping time (None: all alive
    #: ones). Only these are taken in as *new* members (spares); a node that answers counts
    #: as alive for everything else, so damping never hides a working majority.
    stable: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not self.sequencers:
            object.__setattr__(self, "sequencers", self.candidates)
        if self.stable is None:
            object.__setattr__(self, "stable", self.alive)

    def is_stable(self, node_id: str) -> bool:
        return node_id in self.stable  # type: ignore[operator]

    def is_alive(self, node_id: str) -> bool:
        return node_id in self.alive


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A loglet's verdict on itself: ``reason`` (one line, for operators and traces) and the
    config of the loglet that should succeed it, or None when no successor can help yet (for
    example, a majority of its LogServers is down, so it cannot even be sealed)."""

    reason: str
    successor: Any | None


class Loglet(abc.ABC):
    """One shared-log segment. See the module docstring for the contract of each method."""

    @abc.abstractmethod
    async def append(self, entry: bytes) -> int:
        """Store ``entry`` at the next position and return it; :class:`SealedError` once sealed."""

    async def append_many(self, entries: Sequence[bytes]) -> list[int]:
        """Append several entries; positions come back ascending.

        This default appends one at a time; implementations with a real pipeline override it.
        """
        if not 0 < len(entries) <= MAX_APPEND_MANY:
            raise ValueError(f"append_many takes 1..{MAX_APPEND_MANY} entries, got {len(entries)}")
        return [await self.append(e) for e in entries]

    @abc.abstractmethod
    async def check_tail(self) -> Tail:
        """The first unwritten position, and whether the loglet is sealed."""

    @abc.abstractmethod
    async def read_next(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """``(pos, entry)`` pairs for ``lo, lo+1, ...`` below ``hi``, up to the first gap."""

    def known_readable(self) -> int:
        """A position below which this client already knows every entry is committed for good
        (from replies it got: an acknowledged append, an unsealed ``check_tail``), with no I/O.
        A reader may read below it without a ``check_tail`` first: it never exceeds the tail an
        unsealed ``check_tail`` would report, nor the stop a seal can fix -- so never a
        *sealed* tail, which may still count a zombie entry. This default knows nothing: 0."""
        return 0

    @abc.abstractmethod
    async def prefix_trim(self, pos: int) -> None:
        """Allow positions below ``pos`` to be discarded."""

    @abc.abstractmethod
    async def seal(self) -> None:
        """Seal the loglet: idempotent, one-way, sticky."""

    async def diagnose(self, view: Membership, fresh_id: str) -> Diagnosis | None:
        """Whether this loglet is failing, given ``view``; a successor config named
        ``fresh_id`` if reconfiguring would help. This default: a loglet that cannot fail."""
        return None
