"""The NativeLoglet's wire messages, and its configuration (docs/design.md §5).

Three parties talk. The *client* (``client.py``) sends ``Append`` and ``Activate`` to the
sequencer, and ``Seal``, ``TailQuery``, ``Repair``, ``ReadRange`` and ``Trim`` to LogServers.
The *sequencer* (``sequencer.py``) sends ``Store`` to every LogServer, one-way; each LogServer
(``logserver.py``) answers with ``Stored``, one-way. Every message names the loglet instance
it is about (``loglet_id``), because one LogServer role serves many loglet instances, and
every message that can carry it piggybacks the sender's ``known_tail``: a lower bound on the
global tail, of which every component keeps the maximum it has seen.

``Stored.local_tail`` is a *cumulative* acknowledgement, as in TCP: a LogServer holds every
position from its trim point up to its local tail, with no gaps (it refuses a position that
would leave one). That one rule is what lets the sequencer read "stored on a majority, and
every earlier position too" straight off the servers' tails, and what makes the server with
the greatest local tail a complete source for repair.

The config of one instance, :class:`NativeLogletConfig`, is a registered message because the
VirtualLog stores it in its chain.
"""

from __future__ import annotations

from transports.codec import message

#: Bound on the LogServers of one loglet instance (an odd number, in practice 3 or 5).
MAX_LOGSERVERS = 15

# Refusal codes (``Fail.code``), machine-readable.
SEALED = "sealed"  # refused before a position was assigned: certainly did not land
SEALED_IN_FLIGHT = "sealed_in_flight"  # had a position when the seal stopped it: may have landed
BUSY = "busy"  # the sequencer's window is full: retry later (nothing was assigned)
UNKNOWN_LOGLET = "unknown_loglet"  # the sequencer was never activated for this loglet
UNAVAILABLE = "unavailable"  # the sequencer restarted: it never serves this loglet again
TRIMMED = "trimmed"  # the read starts below the trim point
BAD_REQUEST = "bad_request"  # local misuse by the caller
TOO_MANY_LOGLETS = "too_many_loglets"  # the role's bound on loglet instances is reached


@message("loglet.native.config")
class NativeLogletConfig:
    """One NativeLoglet instance: its id, its sequencer node, its LogServer nodes."""

    loglet_id: str
    sequencer: str
    logservers: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.loglet_id or len(self.loglet_id) > 128:
            raise ValueError("NativeLogletConfig: loglet_id is 1..128 characters")
        if not self.sequencer:
            raise ValueError("NativeLogletConfig: a sequencer node is required")
        if not 1 <= len(self.logservers) <= MAX_LOGSERVERS:
            raise ValueError(f"NativeLogletConfig: 1..{MAX_LOGSERVERS} LogServers")
        if len(set(self.logservers)) != len(self.logservers) or not all(self.logservers):
            raise ValueError("NativeLogletConfig: LogServer node ids are distinct and non-empty")

    @property
    def majority(self) -> int:
        return len(self.logservers) // 2 + 1


# ------------------------------------------------------------- sequencer <-> LogServer


@message("loglet.native.store")
class Store:
    """Sequencer -> LogServer, one-way: entries at positions ``first, first+1, ...``.

    An empty ``entries`` carries only ``known_tail`` (sent when the tail advanced and no new
    entry would carry it).
    """

    loglet_id: str
    first: int
    entries: tuple[bytes, ...]
    known_tail: int


@message("loglet.native.stored")
class Stored:
    """LogServer -> sequencer, one-way: "I hold every position below ``local_tail``".

    ``sealed``: the server's seal bit is set, so it refused new positions. ``gap``: it refused
    positions beyond its local tail (an earlier ``Store`` was lost or overtaken).
    """

    loglet_id: str
    local_tail: int
    sealed: bool
    gap: bool
    known_tail: int


# ------------------------------------------------------------------ client -> sequencer


@message("loglet.native.activate")
class Activate:
    """Client -> sequencer: start sequencing this loglet (idempotent)."""

    config: NativeLogletConfig


@message("loglet.native.append")
class Append:
    """Client -> sequencer: append these entries at consecutive positions."""

    loglet_id: str
    entries: tuple[bytes, ...]
    known_tail: int


@message("loglet.native.append_reply")
class AppendReply:
    """The entries of the ``Append`` are at ``first, first+1, ...``, all globally committed."""

    first: int
    known_tail: int


@message("loglet.native.known_tail_query")
class KnownTailQuery:
    loglet_id: str


@message("loglet.native.sequencer_status")
class SequencerStatus:
    """The sequencer's view: its ``known_tail`` (globally committed prefix) and seal knowledge."""

    loglet_id: str
    known_tail: int
    next_pos: int
    sealed: bool


# ------------------------------------------------------------------ client -> LogServer


@message("loglet.native.seal")
class Seal:
    """Set the seal bit (idempotent). Answered by :class:`TailReply` once the bit is durable."""

    loglet_id: str
    known_tail: int


@message("loglet.native.tail_query")
class TailQuery:
    """Report the local tail and the seal bit; changes nothing."""

    loglet_id: str
    known_tail: int


@message("loglet.native.repair")
class Repair:
    """Write these entries even if sealed (check_tail's repair, docs/design.md §5).

    ``trim_point`` is the source server's: positions below it were trimmed there, so the
    target may treat them as present (they were committed before anyone trimmed them).
    """

    loglet_id: str
    first: int
    entries: tuple[bytes, ...]
    trim_point: int
    known_tail: int


@message("loglet.native.tail_reply")
class TailReply:
    """A LogServer's state for one loglet, after the request was applied (and synced)."""

    loglet_id: str
    local_tail: int
    sealed: bool
    trim_point: int
    known_tail: int


@message("loglet.native.read_range")
class ReadRange:
    """Entries at ``lo, lo+1, ...`` below ``hi`` (at most ``limit``), up to the local tail."""

    loglet_id: str
    lo: int
    hi: int
    limit: int
    known_tail: int


@message("loglet.native.read_reply")
class ReadReply:
    loglet_id: str
    first: int
    entries: tuple[bytes, ...]
    local_tail: int
    trim_point: int
    known_tail: int


@message("loglet.native.trim")
class Trim:
    """Discard positions below ``pos``. Answered by :class:`TailReply`."""

    loglet_id: str
    pos: int
    known_tail: int
