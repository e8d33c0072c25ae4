"""The sequencer: orders appends and decides when each is globally committed (docs/design.md §5).

A NativeLoglet instance has exactly one sequencer and no leader election. Its job is small
and it does it fast:

1. **Assign.** An ``Append`` gets the next positions, in arrival order.
2. **Store everywhere.** Entries go, in batches, to *all* LogServers (a zero-delay ``flush``
   timer collects every append the runtime handed us in one batch into one ``Store`` per
   server). The sequencer never waits for one server before sending to another. At most
   ``max_stores_in_flight`` unanswered ``Store`` s go to one server (Nagle's idea): while a
   server syncs one batch, new entries gather here and leave as the next batch when it
   answers, so under load one fsync covers many appends (group commit end to end), while
   a lone append still leaves at once. Across a slow network one Store at a time would
   leave a server idle for most of each round trip, so there the runtime allows more: about
   one per ``PIPELINE_STEP_S`` of the path's round trip (:func:`stores_in_flight`, the
   bandwidth-delay product with a synced write as the unit). The runtime measures that
   round trip as the least recent one (``RttEstimator.min_rtt``): ``srtt`` also counts the
   time a reply waits behind a busy node's work, and on a loaded loopback cluster it reached
   milliseconds, which would pipeline where the path takes 0.1 ms.
3. **Commit.** A position is *globally committed* once a majority stored it *and* every
   earlier position is committed. Because LogServers keep gapless prefixes and acknowledge
   cumulatively (``Stored.local_tail``), that is one order statistic: the global tail is the
   ``majority``-th greatest local tail. The sequencer's ``known_tail`` is exactly that, and it
   rides on every ``Store``; when nothing else would carry it, an empty ``Store`` takes it to
   the servers that lag it (not to every server at every commit: that would double the
   messages of a lone append; to a server holding everything committed it is only a hint).
4. **Acknowledge in position order.** Requests are answered when their last position falls
   below ``known_tail``; since positions are assigned in arrival order and the tail only
   grows, replies leave in position order.
5. **Retry until success or seal.** A ``tick`` timer resends, from its reported tail, to any
   server whose tail has not moved since the last tick while it lags what we sent; a server
   that reports a gap is caught up the same way. Entries are kept until every live server
   holds them (this back-fills slow servers, which a gapless server needs to ever move
   again), within a bound: a server that falls behind the oldest retained entry is left
   behind and no longer counted on for appends (it still takes part in seal and check_tail).
6. **Seal.** A server whose seal bit is set answers ``sealed``. Once a majority did, no new
   position can reach a majority: every uncommitted append fails with ``sealed_in_flight``
   (it may still land below the sealed tail: "a failed append may still become durable"),
   and every later append fails with ``sealed``.

   Only tails reported by *unsealed* servers count toward a commit. A sealed server's tail
   can still grow, by check_tail's repair, and counting it would be wrong: one check_tail
   may return sealed tail 95 from servers {s2, s3} while another, probing {s1, s2}, returns
   99 and repairs 95..98 onto s2; s1 and s2 then "hold" 95..98, and acknowledging them
   would put acknowledged appends above a sealed tail already returned (the simulator found
   this: ``tests/test_loglet_sim.py``, seed 39). An unsealed tail only ever grows through
   the sequencer's own stores, so a majority of those is a majority that every sealed
   probe majority intersects before its seal.

Backpressure: the window of assigned-but-uncommitted positions is bounded (``max_window``, or
one request's ``max_store_entries`` when that is larger: an empty window takes any request).
An append that does not fit is **refused** with the retryable code ``busy`` before it gets a
position (a definite failure); the client backs off and retries within its deadline. A
refusal, rather than a queue, keeps the sequencer's memory bounded by construction.

Duplicate requests (the RPC layer resends the same request id; networks duplicate) are
recognised by ``(src, rid)`` in a bounded table and answered with the first outcome, so one
request never takes two positions.

A sequencer serves each loglet in one incarnation only. It persists a marker when it starts
serving a loglet, and after a restart it refuses that loglet with ``unavailable``: a fresh
sequencer would reassign positions from 0. The cure for a dead sequencer is reconfiguration
to a new loglet instance (§4.2.1), not recovery.

One sequencer role per node serves every loglet naming the node (keyed by loglet id), for the
same reason as the LogServer: the router dispatches by message type.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from delos_ref.effects import Effect, Emit, Fail, Incoming, Persist, Reply, Send, SetTimer, TimerFired
from delos_ref.loglet.native.messages import (
    BAD_REQUEST,
    BUSY,
    SEALED,
    SEALED_IN_FLIGHT,
    TOO_MANY_LOGLETS,
    UNAVAILABLE,
    UNKNOWN_LOGLET,
    Activate,
    Append,
    AppendReply,
    KnownTailQuery,
    NativeLogletConfig,
    SequencerStatus,
    Store,
    Stored,
)
from delos_ref.loglet.native.storage import mark_served

#: Bug switch: acknowledge once *one* LogServer stored the entry instead of a majority.
BUG_ACK_BEFORE_MAJORITY = "sequencer_acks_before_majority"
SEQUENCER_BUGS = {BUG_ACK_BEFORE_MAJORITY: "a sequencer that acknowledges an append before a majority stored it"}

FLUSH_TIMER = "flush"
TICK_TIMER = "tick"


#: Across a slow network, one more unanswered Store per this much round trip (about one
#: LogServer's synced write): see :func:`stores_in_flight`.
PIPELINE_STEP_S = 0.002
MAX_PIPELINE = 8


def stores_in_flight(rtt_s: float | None, base: int) -> int:
    """Unanswered Stores allowed to a server with round trip ``rtt_s`` (rule 2): ``base`` on a
    fast link or one not measured; across a slow one, one per ``PIPELINE_STEP_S`` of round trip
    (at most ``MAX_PIPELINE``), so the server is sent its next batch while it syncs this one,
    not a round trip later. On loopback (0.1 ms) that is ``base``; at 5 ms each way, 5."""
    if rtt_s is None:
        return base
    return max(base, min(MAX_PIPELINE, int(rtt_s / PIPELINE_STEP_S)))


@dataclass(frozen=True, slots=True)
class SequencerLimits:
    max_window: int = 4096  # positions assigned but not yet globally committed
    max_retained: int = 65536  # positions kept for slow LogServers (>= max_window)
    max_store_entries: int = 512  # entries in one Store (and in one Append)
    max_store_bytes: int = 2 << 20  # bytes of entries in one Store (about)
    tick_s: float = 0.05  # how often slow LogServers are retried
    max_stores_in_flight: int = 1  # unanswered Stores with entries, per server
    max_loglets: int = 1024
    max_dedupe: int = 1 << 16  # remembered (src, rid) outcomes

    def __post_init__(self) -> None:
        assert 1 <= self.max_window <= self.max_retained, "SequencerLimits: 1 <= max_window <= max_retained"
        assert self.max_store_entries >= 1 and self.tick_s > 0, "SequencerLimits: positive bounds"
        assert self.max_dedupe >= self.max_window, "SequencerLimits: dedupe table covers the window"


@dataclass(slots=True)
class _Request:
    src: str
    rid: int
    first: int
    count: int


@dataclass(slots=True)
class _Loglet:
    """Everything the sequencer knows about one loglet instance."""

    config: NativeLogletConfig
    next_pos: int = 0  # the next position to assign
    known_tail: int = 0  # the global tail: every position below is globally committed
    base: int = 0  # the oldest retained entry
    entries: dict[int, bytes] = field(default_factory=dict)  # retained: [base, next_pos)
    tails: dict[str, int] = field(default_factory=dict)  # each server's acknowledged local tail
    sent: dict[str, int] = field(default_factory=dict)  # next position to send each server
    pushed: dict[str, int] = field(default_factory=dict)  # known_tail last sent each server
    unanswered: dict[str, int] = field(default_factory=dict)  # Stores with entries awaiting a Stored
    seen_at_tick: dict[str, int] = field(default_factory=dict)
    sealed_by: set[str] = field(default_factory=set)
    sealed: bool = False
    requests: deque = field(default_factory=deque)  # of _Request, in position order

    def __post_init__(self) -> None:
        for s in self.config.logservers:
            self.tails[s] = self.sent[s] = self.pushed[s] = self.seen_at_tick[s] = self.unanswered[s] = 0

    def active(self, server: str) -> bool:
        """Worth sending to: not sealed, not left behind the retained entries."""
        return not self.sealed and server not in self.sealed_by and self.tails[server] >= self.base

    def status(self) -> SequencerStatus:
        return SequencerStatus(self.config.loglet_id, self.known_tail, self.next_pos, self.sealed)


class SequencerCore:
    """Pure sequencer for every loglet on one node. See the module docstring."""

    handles = (Activate, Append, KnownTailQuery, Stored)

    def __init__(
        self,
        node_id: str,
        served_before: frozenset[str] = frozenset(),
        *,
        limits: SequencerLimits = SequencerLimits(),
        bugs: frozenset[str] = frozenset(),
        round_trip: Callable[[str], float | None] | None = None,
    ) -> None:
        """``round_trip``: an input from the runtime, a server's measured round trip (or None);
        without it -- the simulator's case -- every server gets ``limits.max_stores_in_flight``."""
        assert set(bugs) <= set(SEQUENCER_BUGS), f"sequencer: unknown bugs {sorted(set(bugs) - set(SEQUENCER_BUGS))}"
        self.node_id = node_id
        self.limits = limits
        self.round_trip = round_trip
        self.bugs = frozenset(bugs)
        self._retired = set(served_before)  # served in an earlier incarnation: never again
        self._loglets: dict[str, _Loglet] = {}
        self._outcomes: OrderedDict[tuple[str, int], tuple] = OrderedDict()
        self._dirty: set[str] = set()
        self._flush_armed = False
        self._tick_armed = False
        self.stats = {"appends": 0, "entries": 0, "busy": 0, "duplicates": 0, "commits": 0, "acks": 0, "stores_sent": 0, "resends": 0, "sealed_fails": 0, "left_behind": 0}

    # ------------------------------------------------------------------------ dispatch

    def handle(self, item: Any) -> list[Effect]:
        if isinstance(item, TimerFired):
            if item.name == FLUSH_TIMER:
                return self.on_flush()
            return self.on_tick() if item.name == TICK_TIMER else []
        handler = self._HANDLERS.get(type(item.msg))
        assert handler is not None, f"sequencer: routed a {type(item.msg).__name__} it does not handle"
        return handler(self, item)

    def loglet(self, loglet_id: str) -> _Loglet | None:
        """Read-only view for tests and statistics."""
        return self._loglets.get(loglet_id)

    def _refuse_unknown(self, item: Incoming, loglet_id: str) -> list[Effect]:
        if loglet_id in self._retired:
            return [Fail(item.src, item.rid, UNAVAILABLE, f"sequencer {self.node_id} restarted; loglet {loglet_id} needs reconfiguration")]
        return [Fail(item.src, item.rid, UNKNOWN_LOGLET, f"sequencer {self.node_id} was not activated for {loglet_id}")]

    # ------------------------------------------------------------------------ activate

    def on_activate(self, item: Incoming) -> list[Effect]:
        """Start serving a loglet: persist the marker first, so a restart will know (§4.2.1)."""
        cfg: NativeLogletConfig = item.msg.config
        if not item.wants_reply:
            return []  # an activation must be confirmed; a one-way one is ignored
        if cfg.sequencer != self.node_id:
            return [Fail(item.src, item.rid, BAD_REQUEST, f"{cfg.loglet_id} is sequenced by {cfg.sequencer}, not {self.node_id}")]
        existing = self._loglets.get(cfg.loglet_id)
        if existing is not None:
            if existing.config != cfg:
                return [Fail(item.src, item.rid, BAD_REQUEST, f"{cfg.loglet_id} is already active with another config")]
            return [Reply(item.src, item.rid, existing.status())]  # idempotent
        if cfg.loglet_id in self._retired:
            return self._refuse_unknown(item, cfg.loglet_id)
        if len(self._loglets) >= self.limits.max_loglets:
            return [Fail(item.src, item.rid, TOO_MANY_LOGLETS, f"sequencer {self.node_id} serves {self.limits.max_loglets} loglets")]
        lg = self._loglets[cfg.loglet_id] = _Loglet(cfg)
        return [
            Persist((mark_served(cfg.loglet_id),)),
            Emit("Activate", {"loglet": cfg.loglet_id, "logservers": list(cfg.logservers)}),
            Reply(item.src, item.rid, lg.status()),
        ]

    # -------------------------------------------------------------------------- append

    def on_append(self, item: Incoming) -> list[Effect]:
        """Assign the next positions; the entries leave with the next flush (§5 append)."""
        msg: Append = item.msg
        if not item.wants_reply:
            return []  # an append nobody awaits could never be acknowledged
        if (item.src, item.rid) in self._outcomes:
            return self._replay(item)  # a resent or duplicated request: one request, one outcome
        lg = self._loglets.get(msg.loglet_id)
        if lg is None:
            # Remember the refusal: a delayed copy of this same request must not be sequenced
            # after the loglet is activated, or a refusal the client took as definite would
            # land after all (and the client's retry would land it twice).
            refusal = self._refuse_unknown(item, msg.loglet_id)
            self._remember(item, ("fail", refusal[0].code))
            return refusal
        if lg.sealed:
            return [Fail(item.src, item.rid, SEALED, f"loglet {msg.loglet_id} is sealed")]  # sticky: no record needed
        if not 0 < len(msg.entries) <= self.limits.max_store_entries:
            return [Fail(item.src, item.rid, BAD_REQUEST, f"an append carries 1..{self.limits.max_store_entries} entries")]
        if lg.next_pos > lg.known_tail and lg.next_pos + len(msg.entries) - lg.known_tail > self.limits.max_window:
            # Backpressure: refuse before assigning, so the refusal is definite. An empty
            # window takes any request (at most max_store_entries): one larger than the
            # window would otherwise be refused forever.
            self.stats["busy"] += 1
            self._remember(item, ("fail", BUSY))
            return [Fail(item.src, item.rid, BUSY, f"{lg.next_pos - lg.known_tail} appends in flight")]
        first = lg.next_pos
        for entry in msg.entries:
            lg.entries[lg.next_pos] = entry
            lg.next_pos += 1
        lg.requests.append(_Request(item.src, item.rid, first, len(msg.entries)))
        self._remember(item, ("pending",))
        self._dirty.add(msg.loglet_id)
        self.stats["appends"] += 1
        self.stats["entries"] += len(msg.entries)
        return [Emit("Append", {"loglet": msg.loglet_id, "first": first, "count": len(msg.entries), "client": item.src})] + self._arm_flush() + self._arm_tick()

    def _remember(self, item: Incoming, outcome: tuple) -> None:
        self._outcomes[(item.src, item.rid)] = outcome
        while len(self._outcomes) > self.limits.max_dedupe:
            self._outcomes.popitem(last=False)

    def _replay(self, item: Incoming) -> list[Effect]:
        self.stats["duplicates"] += 1
        outcome = self._outcomes[(item.src, item.rid)]
        if outcome[0] == "pending":
            return []  # the answer goes out when the positions commit (or the seal fails them)
        if outcome[0] == "fail":
            return [Fail(item.src, item.rid, outcome[1], "duplicate request")]
        lg = self._loglets.get(item.msg.loglet_id)
        known = lg.known_tail if lg is not None else outcome[1] + 1
        return [Reply(item.src, item.rid, AppendReply(outcome[1], known))]

    def on_known_tail_query(self, item: Incoming) -> list[Effect]:
        """check_tail's "none sealed" case waits for our known_tail to reach its target."""
        if not item.wants_reply:
            return []  # a query nobody awaits
        lg = self._loglets.get(item.msg.loglet_id)
        if lg is None:
            return self._refuse_unknown(item, item.msg.loglet_id)
        return [Reply(item.src, item.rid, lg.status())]

    # -------------------------------------------------------------------------- stored

    def on_stored(self, item: Incoming) -> list[Effect]:
        """A server's cumulative acknowledgement: advance the global tail, or learn a seal."""
        msg: Stored = item.msg
        lg = self._loglets.get(msg.loglet_id)
        if lg is None or lg.sealed:
            return []  # not a loglet we serve now (or done with): nothing to advance
        if item.src not in lg.tails:
            return []  # not one of this loglet's LogServers: its word counts for nothing
        if msg.local_tail > lg.next_pos:
            return []  # claims positions we never assigned: not this incarnation's data
        if msg.sealed:
            lg.sealed_by.add(item.src)  # its tail may include repairs: never count it (docstring, 6)
        else:
            lg.tails[item.src] = max(lg.tails[item.src], msg.local_tail)
        lg.unanswered[item.src] = max(0, lg.unanswered[item.src] - 1)
        if lg.sent[item.src] < lg.next_pos:
            self._dirty.add(msg.loglet_id)  # entries were waiting for this answer
        effects: list[Effect] = [Emit("Stored", {"loglet": msg.loglet_id, "server": item.src, "local_tail": msg.local_tail, "sealed": msg.sealed})]
        effects += self._advance(lg)
        if len(lg.sealed_by) >= lg.config.majority:
            effects += self._seal_off(lg)
        return effects + (self._arm_flush() if self._dirty else [])

    def _committed(self, lg: _Loglet) -> int:
        """The global tail: the majority-th greatest local tail (servers are gapless)."""
        # lab: sequencer begin
        ranked = sorted(lg.tails.values(), reverse=True)
        index = 0 if BUG_ACK_BEFORE_MAJORITY in self.bugs else lg.config.majority - 1
        return ranked[index]
        # lab: sequencer end

    def _advance(self, lg: _Loglet) -> list[Effect]:
        committed = self._committed(lg)
        if committed <= lg.known_tail:
            return []  # nothing new is on a majority yet
        assert committed <= lg.next_pos, "sequencer: commit only assigned positions"
        lg.known_tail = committed
        self.stats["commits"] += 1
        effects: list[Effect] = [Emit("Commit", {"loglet": lg.config.loglet_id, "known_tail": committed})]
        while lg.requests and lg.requests[0].first + lg.requests[0].count <= committed:
            req = lg.requests.popleft()  # position order: the oldest request completes first
            self._outcomes[(req.src, req.rid)] = ("ok", req.first)
            self.stats["acks"] += 1
            effects.append(Reply(req.src, req.rid, AppendReply(req.first, committed)))
        self._release(lg)
        # The new known_tail rides on the next Store. If none leaves, a server that lags it is
        # told at once (an empty Store); one that holds everything committed learns it with
        # its next Store (for it, known_tail is only a hint it hands back to readers, who can
        # ask us). Pushing to every server at every commit would double the sequencer's
        # messages when one append is outstanding (bench append).
        if any(self._lags(lg, s) for s in lg.config.logservers):
            self._dirty.add(lg.config.loglet_id)
            effects += self._arm_flush()
        return effects

    @staticmethod
    def _lags(lg: _Loglet, server: str) -> bool:
        return lg.active(server) and lg.tails[server] < lg.known_tail and lg.pushed[server] < lg.known_tail

    def _release(self, lg: _Loglet) -> None:
        """Drop entries every active server holds, or that exceed the retention bound."""
        live = [lg.tails[s] for s in lg.config.logservers if lg.active(s)]
        floor = max(min(live, default=lg.known_tail), lg.next_pos - self.limits.max_retained)
        floor = min(floor, lg.known_tail)  # never drop an uncommitted entry
        for pos in range(lg.base, floor):
            del lg.entries[pos]
        if floor > lg.base:
            lg.base = floor
            self.stats["left_behind"] = sum(1 for s in lg.config.logservers if lg.tails[s] < lg.base)

    def _seal_off(self, lg: _Loglet) -> list[Effect]:
        """A majority is sealed: no uncommitted position can commit any more (§5)."""
        lg.sealed = True
        failed = 0
        effects: list[Effect] = []
        while lg.requests:
            req = lg.requests.popleft()
            self._outcomes[(req.src, req.rid)] = ("fail", SEALED_IN_FLIGHT)
            effects.append(Fail(req.src, req.rid, SEALED_IN_FLIGHT, "sealed before a majority stored it"))
            failed += 1
        self.stats["sealed_fails"] += failed
        lg.entries.clear()
        lg.base = lg.next_pos
        return [Emit("SequencerSealed", {"loglet": lg.config.loglet_id, "known_tail": lg.known_tail, "next_pos": lg.next_pos, "failed": failed})] + effects

    # -------------------------------------------------------------------------- timers

    def _arm_flush(self) -> list[Effect]:
        if self._flush_armed:
            return []
        self._flush_armed = True
        # Zero delay: it fires after every input already queued, so one flush batches them.
        return [SetTimer(FLUSH_TIMER, 0.0)]

    def _arm_tick(self) -> list[Effect]:
        if self._tick_armed:
            return []
        self._tick_armed = True
        return [SetTimer(TICK_TIMER, self.limits.tick_s)]

    def on_flush(self) -> list[Effect]:
        """Send every server what it has not been sent yet, one Store per server and loglet."""
        self._flush_armed = False
        effects: list[Effect] = []
        dirty, self._dirty = sorted(self._dirty), set()
        for loglet_id in dirty:
            lg = self._loglets[loglet_id]
            # Other nodes first: a Store to our own node's LogServer costs no network time,
            # and sending it first would only delay the ones that do.
            for server in sorted(lg.config.logservers, key=lambda s: s == self.node_id):
                effects += self._send_to(lg, server)
        return effects + (self._arm_flush() if self._dirty else [])

    def _pipeline(self, server: str) -> int:
        """How many Stores with entries may await ``server``'s answer (rule 2)."""
        base = self.limits.max_stores_in_flight
        return base if self.round_trip is None else stores_in_flight(self.round_trip(server), base)

    def _send_to(self, lg: _Loglet, server: str) -> list[Effect]:
        """The next Store for ``server``: entries it was not sent yet (and the known_tail); an
        empty Store when only the known_tail is news and ``server`` lags it."""
        if not lg.active(server):
            return []  # sealed, or left behind: it can take no new position
        lo = max(lg.sent[server], lg.tails[server])
        hi, size = lo, 0
        busy = lg.unanswered[server] >= self._pipeline(server)
        while not busy and hi < lg.next_pos and hi - lo < self.limits.max_store_entries and (hi == lo or size + len(lg.entries[hi]) <= self.limits.max_store_bytes):
            size += len(lg.entries[hi])
            hi += 1
        if hi < lg.next_pos and not busy:
            self._dirty.add(lg.config.loglet_id)  # more to send: the next flush continues
        if hi == lo and (lg.pushed[server] >= lg.known_tail or lg.tails[server] >= lg.known_tail):
            return []  # nothing new to say (or the server is busy: its answer will flush)
        lg.sent[server], lg.pushed[server] = hi, lg.known_tail
        lg.unanswered[server] += int(hi > lo)
        self.stats["stores_sent"] += 1
        entries = tuple(lg.entries[p] for p in range(lo, hi))
        return [Send(server, Store(lg.config.loglet_id, lo, entries, lg.known_tail))]

    def on_tick(self) -> list[Effect]:
        """Retry every server that lags what we sent and made no progress since the last tick."""
        self._tick_armed = False
        waiting = False
        for loglet_id in sorted(self._loglets):
            lg = self._loglets[loglet_id]
            for server in lg.config.logservers:
                if not lg.active(server):
                    continue  # sealed or left behind: retrying cannot help
                tail = lg.tails[server]
                if tail < lg.sent[server] and tail == lg.seen_at_tick[server]:
                    lg.sent[server] = tail  # rewind: resend from what it holds
                    lg.unanswered[server] = 0  # those Stores (or their answers) are lost
                    self.stats["resends"] += 1
                    self._dirty.add(loglet_id)
                lg.seen_at_tick[server] = tail
                waiting = waiting or tail < lg.next_pos
        effects = self.on_flush() if self._dirty else []
        return effects + (self._arm_tick() if waiting else [])

    def statistics(self) -> dict[str, int]:
        return dict(self.stats, loglets=len(self._loglets), in_flight=sum(lg.next_pos - lg.known_tail for lg in self._loglets.values()))

    _HANDLERS = {
        Activate: on_activate,
        Append: on_append,
        KnownTailQuery: on_known_tail_query,
        Stored: on_stored,
    }
