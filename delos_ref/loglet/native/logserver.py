"""The LogServer: a durable, gapless log per loglet instance, behind a seal bit (docs/design.md §5).

A NativeLoglet stores its entries on an odd number of LogServers. Each one is deliberately
dumb: it writes what the sequencer sends, at the position the sequencer chose, and answers
how far it got. All the cleverness of the loglet lives in three small rules kept here:

1. **Gapless prefix.** A LogServer holds every position in ``[trim_point, local_tail)`` and
   nothing else. It accepts position ``p`` only when ``p == local_tail`` (a position below is
   a duplicate it already holds; a position above would leave a hole, so it is refused and
   the answer says ``gap``). Its acknowledgement, ``Stored(local_tail)``, is therefore
   cumulative: from the servers' tails alone, the sequencer knows which positions sit on a
   majority with every earlier position too, and ``check_tail`` knows that the server with the
   greatest local tail can repair every other. A position that arrives early (the network
   reordered two ``Store`` s) is *held* in memory, within a bound, and written once the gap
   before it closes; held entries are never acknowledged, and a seal or a crash drops them.
2. **Seal bit.** Once set (durably, before the answer leaves), the server refuses every new
   position from the sequencer: "once set, the LogServer rejects appends". It still accepts
   *repair* writes from ``check_tail``, which only copy positions that already exist on
   another server, below the sealed tail. A repair sets the seal bit first if it is not set:
   repairs happen only once a majority is sealed, and a repaired entry on an *unsealed*
   server would look to the sequencer like one it stored itself (see sequencer.py, rule 6).
3. **Sync before ack.** Every state change is a :class:`~delos_ref.effects.Persist` whose
   writes carry the entries *and* the loglet's metadata record (tail, trim point, seal bit),
   so a crash never separates them; the runtime syncs before any reply leaves and syncs a
   whole batch of inputs at once (group commit).

One LogServer role per node serves every loglet instance that names the node, keyed by loglet
id: the node's router dispatches by message type (so one role per message type and node),
and one role means one storage environment and one fsync per batch *across* loglets, which
is what the rotating-sequencer StripedLoglet (§4.2.2, many instances over the same servers)
needs to be fast. State for a loglet is created by the first message that names it; a seal
of a loglet never heard of still sets (and persists) its seal bit.

The core is pure: reads of stored entries are handed to the runtime as a
:class:`ReadEntries` effect (``roles.py`` carries it out against storage), and purging of
trimmed entries proceeds in bounded chunks on a timer.

Handlers, one per message: :meth:`on_store`, :meth:`on_seal`, :meth:`on_tail_query`,
:meth:`on_repair`, :meth:`on_read`, :meth:`on_trim`, and the ``purge`` timer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from delos_ref.effects import Effect, Emit, Fail, Incoming, Persist, Reply, Send, SetTimer, TimerFired
from delos_ref.loglet.native import storage as layout
from delos_ref.loglet.native.messages import (
    TOO_MANY_LOGLETS,
    ReadRange,
    ReadReply,
    Repair,
    Seal,
    Store,
    Stored,
    TailQuery,
    TailReply,
    Trim,
)
from delos_ref.loglet.native.storage import LogletState

#: Bug switch (for the simulator to catch): keep accepting appends after the seal bit is set.
BUG_ACCEPT_AFTER_SEAL = "logserver_accepts_after_seal"
LOGSERVER_BUGS = {BUG_ACCEPT_AFTER_SEAL: "a LogServer that accepts appends after its seal bit is set"}

PURGE_TIMER = "purge"


@dataclass(frozen=True, slots=True)
class LogServerLimits:
    max_loglets: int = 4096  # loglet instances one LogServer serves
    max_read_entries: int = 1024  # entries in one ReadReply
    max_read_bytes: int = 1 << 20  # bytes in one ReadReply (about)
    purge_chunk: int = 4096  # trimmed entries deleted per purge step
    purge_delay_s: float = 0.01
    max_held: int = 4096  # out-of-order entries held in memory, per loglet

    def __post_init__(self) -> None:
        assert self.max_loglets >= 1 and self.max_read_entries >= 1 and self.purge_chunk >= 1, "LogServerLimits: bounds >= 1"


@dataclass(frozen=True, slots=True)
class ReadEntries:
    """Effect: read ``lo, lo+1, ... < hi`` (at most ``limit``) of a loglet and reply with them.

    The core has checked the range against its tail and trim point; the runtime only reads
    storage and sends the :class:`ReadReply` (after the batch's sync, like every reply).
    """

    to: str
    rid: int
    loglet_id: str
    lo: int
    hi: int
    limit: int
    max_bytes: int
    local_tail: int
    trim_point: int
    known_tail: int

    def reply(self, entries: list[bytes]) -> ReadReply:
        return ReadReply(self.loglet_id, self.lo, tuple(entries), self.local_tail, self.trim_point, self.known_tail)


class LogServerCore:
    """Pure LogServer state machine for every loglet on one node. See the module docstring."""

    handles = (Store, Seal, TailQuery, Repair, ReadRange, Trim)

    def __init__(
        self,
        node_id: str,
        recovered: dict[str, LogletState] | None = None,
        *,
        limits: LogServerLimits = LogServerLimits(),
        bugs: frozenset[str] = frozenset(),
    ) -> None:
        assert set(bugs) <= set(LOGSERVER_BUGS), f"LogServer: unknown bugs {sorted(set(bugs) - set(LOGSERVER_BUGS))}"
        self.node_id = node_id
        self.limits = limits
        self.bugs = frozenset(bugs)
        self._loglets: dict[str, LogletState] = dict(recovered or {})
        for st in self._loglets.values():
            st.check()
        self._known: dict[str, int] = {}  # known_tail per loglet: a hint, never persisted
        self._held: dict[str, dict[int, bytes]] = {}  # early positions, waiting for the gap to close
        self._purge_armed = False
        self.stats = {"stores": 0, "stored_entries": 0, "refused_sealed": 0, "gaps": 0, "seals": 0, "repairs": 0, "reads": 0, "trims": 0, "purged": 0}

    # ------------------------------------------------------------------------ dispatch

    def handle(self, item: Any) -> list[Effect]:
        if isinstance(item, TimerFired):
            return self.on_purge_timer() if item.name == PURGE_TIMER else []
        handler = self._HANDLERS.get(type(item.msg))
        assert handler is not None, f"LogServer: routed a {type(item.msg).__name__} it does not handle"
        return handler(self, item)

    def state(self, loglet_id: str) -> LogletState | None:
        """Read-only view for tests and statistics."""
        return self._loglets.get(loglet_id)

    def _state(self, loglet_id: str) -> LogletState | None:
        """The loglet's state, created on first mention; None when the bound is reached."""
        st = self._loglets.get(loglet_id)
        if st is None and len(self._loglets) < self.limits.max_loglets:
            st = self._loglets[loglet_id] = LogletState()
        return st

    def _learn(self, loglet_id: str, known_tail: int) -> int:
        """``known_tail`` is a lower bound on the global tail: keep the maximum seen (§5)."""
        known = max(self._known.get(loglet_id, 0), known_tail)
        self._known[loglet_id] = known
        return known

    def _tail_reply(self, loglet_id: str, st: LogletState) -> TailReply:
        return TailReply(loglet_id, st.local_tail, st.sealed, st.trim_point, self._known.get(loglet_id, 0))

    # -------------------------------------------------------------------------- store

    def on_store(self, item: Incoming) -> list[Effect]:
        """The sequencer's entries: extend the gapless prefix, unless sealed (§5 append)."""
        msg: Store = item.msg
        if msg.first < 0:
            return []  # a malformed store: nothing sensible to acknowledge
        st = self._state(msg.loglet_id)
        if st is None:
            return []  # over the loglet bound: stay silent, the sequencer treats us as slow
        self._learn(msg.loglet_id, msg.known_tail)
        if not msg.entries:
            return []  # a known_tail push: nothing to store, nothing to acknowledge
        # lab: logserver begin
        if st.sealed and BUG_ACCEPT_AFTER_SEAL not in self.bugs:
            # "Once set, the LogServer rejects appends": answer so the sequencer can count seals.
            self.stats["refused_sealed"] += 1
            return [
                Emit("StoreRefused", {"loglet": msg.loglet_id, "reason": "sealed", "local_tail": st.local_tail}),
                Send(item.src, Stored(msg.loglet_id, st.local_tail, True, False, self._known[msg.loglet_id])),
            ]
        # lab: logserver end
        lo = st.local_tail
        writes, gap = self._extend(msg.loglet_id, st, msg.first, msg.entries)
        self.stats["stores"] += 1
        self.stats["gaps"] += int(gap)
        effects: list[Effect] = []
        if writes:
            effects += [Persist(tuple(writes)), Emit("Store", {"loglet": msg.loglet_id, "lo": lo, "hi": st.local_tail, "local_tail": st.local_tail})]
        # (Under the bug switch the server also hides its seal bit, as if it had none.)
        reply = Stored(msg.loglet_id, st.local_tail, st.sealed and BUG_ACCEPT_AFTER_SEAL not in self.bugs, gap, self._known[msg.loglet_id])
        return effects + [Send(item.src, reply)]

    def _extend(self, loglet_id: str, st: LogletState, first: int, entries: tuple[bytes, ...]) -> tuple[list, bool]:
        """Append what continues the prefix, hold what arrived early; report a remaining gap."""
        held = self._held.setdefault(loglet_id, {})
        for offset, entry in enumerate(entries):
            pos = first + offset
            if st.local_tail < pos < st.local_tail + self.limits.max_held:
                held.setdefault(pos, entry)
            elif pos == st.local_tail:
                held[pos] = entry
            # pos < local_tail: a duplicate (or trimmed) position we already hold; and a
            # position too far ahead is dropped: the sequencer resends it.
        writes = []
        while st.local_tail in held:
            writes.append(layout.write_entry(loglet_id, st.local_tail, held.pop(st.local_tail)))
            st.local_tail += 1
        for pos in [p for p in held if p < st.local_tail]:
            del held[pos]  # filled meanwhile (a trim or a repair)
        self.stats["stored_entries"] += len(writes)
        return self._with_meta(loglet_id, st, writes), bool(held) or first + len(entries) > st.local_tail + self.limits.max_held

    @staticmethod
    def _with_meta(loglet_id: str, st: LogletState, writes: list) -> list:
        """Metadata rides in the same transaction as the data it describes."""
        return writes + [layout.write_meta(loglet_id, st)] if writes else writes

    # --------------------------------------------------------------------------- seal

    def on_seal(self, item: Incoming) -> list[Effect]:
        """Set the seal bit, durably, then answer with the (now frozen) local tail (§5 seal)."""
        msg: Seal = item.msg
        st = self._state(msg.loglet_id)
        if st is None:
            return [Fail(item.src, item.rid, TOO_MANY_LOGLETS, f"{self.node_id} serves {self.limits.max_loglets} loglets")]
        self._learn(msg.loglet_id, msg.known_tail)
        effects = self._seal(msg.loglet_id, st)
        if item.wants_reply:
            # The reply leaves after the batch's sync: whoever reads sealed=True reads a durable bit.
            effects.append(Reply(item.src, item.rid, self._tail_reply(msg.loglet_id, st)))
        return effects

    def _seal(self, loglet_id: str, st: LogletState) -> list[Effect]:
        # lab: logserver begin
        if st.sealed:
            return []  # sticky and idempotent: nothing changes
        st.sealed = True
        self._held.pop(loglet_id, None)  # held entries were never stored: now they never will be
        self.stats["seals"] += 1
        return [Persist((layout.write_meta(loglet_id, st),)), Emit("Seal", {"loglet": loglet_id, "local_tail": st.local_tail})]
        # lab: logserver end

    def on_tail_query(self, item: Incoming) -> list[Effect]:
        """Report (local tail, seal bit); a loglet never heard of is empty and unsealed."""
        msg: TailQuery = item.msg
        if not item.wants_reply:
            return []  # a query nobody awaits
        self._learn(msg.loglet_id, msg.known_tail)
        st = self._loglets.get(msg.loglet_id, LogletState())
        return [Reply(item.src, item.rid, self._tail_reply(msg.loglet_id, st))]

    # ------------------------------------------------------------------------- repair

    def on_repair(self, item: Incoming) -> list[Effect]:
        """check_tail copies positions we lack; allowed even when sealed (§5 checkTail)."""
        msg: Repair = item.msg
        if msg.first < 0 or msg.trim_point < 0:
            return [] if not item.wants_reply else [Fail(item.src, item.rid, "bad_request", "negative position")]
        st = self._state(msg.loglet_id)
        if st is None:
            return [Fail(item.src, item.rid, TOO_MANY_LOGLETS, f"{self.node_id} serves {self.limits.max_loglets} loglets")]
        self._learn(msg.loglet_id, msg.known_tail)
        lo = st.local_tail
        effects = self._seal(msg.loglet_id, st)  # a repaired server is a sealed server
        effects += self._advance_trim(msg.loglet_id, st, msg.trim_point)
        writes, _gap = self._extend(msg.loglet_id, st, msg.first, msg.entries)
        if writes:
            self.stats["repairs"] += 1
            effects += [Persist(tuple(writes)), Emit("Repair", {"loglet": msg.loglet_id, "lo": lo, "hi": st.local_tail, "local_tail": st.local_tail, "sealed": st.sealed})]
        if item.wants_reply:
            effects.append(Reply(item.src, item.rid, self._tail_reply(msg.loglet_id, st)))
        return effects

    # --------------------------------------------------------------------------- read

    def on_read(self, item: Incoming) -> list[Effect]:
        """Serve ``lo ..`` below ``hi`` from our prefix; a trimmed start shows as ``first > lo``."""
        msg: ReadRange = item.msg
        if not item.wants_reply:
            return []  # nobody to give the entries to
        known = self._learn(msg.loglet_id, msg.known_tail)
        st = self._loglets.get(msg.loglet_id, LogletState())
        lo = max(msg.lo, st.trim_point, 0)
        hi = min(msg.hi, st.local_tail)
        limit = max(0, min(msg.limit, self.limits.max_read_entries))
        self.stats["reads"] += 1
        if lo >= hi or limit == 0:
            return [Reply(item.src, item.rid, ReadReply(msg.loglet_id, lo, (), st.local_tail, st.trim_point, known))]
        return [ReadEntries(item.src, item.rid, msg.loglet_id, lo, hi, limit, self.limits.max_read_bytes, st.local_tail, st.trim_point, known)]

    # --------------------------------------------------------------------------- trim

    def on_trim(self, item: Incoming) -> list[Effect]:
        """Raise the trim point; entries below it are purged in bounded chunks later."""
        msg: Trim = item.msg
        st = self._state(msg.loglet_id)
        if st is None:
            return [Fail(item.src, item.rid, TOO_MANY_LOGLETS, f"{self.node_id} serves {self.limits.max_loglets} loglets")]
        known = self._learn(msg.loglet_id, msg.known_tail)
        # Never trim past what we hold or what is known committed: a trim point counts as held.
        effects = self._advance_trim(msg.loglet_id, st, min(msg.pos, max(st.local_tail, known)))
        if item.wants_reply:
            effects.append(Reply(item.src, item.rid, self._tail_reply(msg.loglet_id, st)))
        return effects

    def _advance_trim(self, loglet_id: str, st: LogletState, pos: int) -> list[Effect]:
        if pos <= st.trim_point:
            return []  # trims are monotonic: an older or equal one changes nothing
        st.trim_point = pos
        st.local_tail = max(st.local_tail, pos)  # positions below the trim point count as held
        self.stats["trims"] += 1
        return [
            Persist((layout.write_meta(loglet_id, st),)),
            Emit("Trim", {"loglet": loglet_id, "trim_point": pos, "local_tail": st.local_tail}),
        ] + self._arm_purge()

    def _arm_purge(self) -> list[Effect]:
        if self._purge_armed:
            return []
        self._purge_armed = True
        return [SetTimer(PURGE_TIMER, self.limits.purge_delay_s)]

    def on_purge_timer(self) -> list[Effect]:
        """Delete at most ``purge_chunk`` trimmed entries per loglet, then come back."""
        self._purge_armed = False
        writes = []
        for loglet_id in sorted(self._loglets):
            st = self._loglets[loglet_id]
            stop = min(st.trim_point, st.purged + self.limits.purge_chunk)
            writes += [layout.delete_entry(loglet_id, p) for p in range(st.purged, stop)]
            if stop > st.purged:
                self.stats["purged"] += stop - st.purged
                st.purged = stop
                writes.append(layout.write_meta(loglet_id, st))
        if not writes:
            return []
        more = any(st.purged < st.trim_point for st in self._loglets.values())
        return [Persist(tuple(writes))] + (self._arm_purge() if more else [])

    def statistics(self) -> dict[str, int]:
        return dict(self.stats, loglets=len(self._loglets))

    _HANDLERS = {
        Store: on_store,
        Seal: on_seal,
        TailQuery: on_tail_query,
        Repair: on_repair,
        ReadRange: on_read,
        Trim: on_trim,
    }
