"""The VirtualLog client: one shared log over a chain of loglets (docs/design.md §2-§4; OSDI'20 §3).

A :class:`VirtualLog` offers the Loglet API -- ``append``, ``check_tail``, ``read_next``,
``prefix_trim`` -- over the whole chain, plus the three reconfigurations. It keeps a cached
copy of the chain (``version``, :class:`~delos_ref.virtuallog.chain.Chain`) and routes with
it; the MetaStore is read only to refresh that cache or to reconfigure, so while the MetaStore
is down, appends continue on the cached chain (§3.3).

**Routing** (§3.4). ``append`` and ``check_tail`` go to the active segment's loglet;
``read_next`` to the segment holding each position. Virtual position ``v`` of segment
``[start, stop)`` is loglet position ``v - start`` (see ``chain.py``).

**Reconfiguration** (``reconfig_extend``, §3.2), in the paper's four steps:

1. *seal* the active loglet (idempotent: racing reconfigurers may all seal);
2. *check_tail* it: the sealed tail, mapped to a virtual position, is where the old segment
   stops and the new one starts;
3. *install* the new chain with ``write_if(version read, chain)``: at most one racer wins;
4. *fetch* the chain -- someone else may have won -- and route with it. The write's outcome
   carries it (ours if written; a conflict carries the winner's), so only an unknown outcome
   costs a read.

**A sealed error** means the chain has moved on, or is about to: the client fetches the chain
and retries on the new active segment. If no newer chain appears within
``roll_forward_s`` (the reconfigurer died between seal and install), the client *rolls
forward*: it extends the chain itself with a clone of the sealed segment's config (a fresh
instance on the same servers). Racing roll-forwards are serialized by the conditional write.

**Zombies and stale caches.** After a seal a loglet's tail may still grow (appends in flight
land late); those positions are not in the VirtualLog, because the segment's stop was fixed
at install. A client with a stale chain must not read them: reads in the segment it believes
active are bounded by an *unsealed* ``check_tail`` of that loglet, whose tail lies below every
sealed tail; if the loglet reports sealed, the client refreshes the chain first. For the same
reason ``check_tail`` never answers from a sealed loglet. The one shortcut: below the
loglet's ``known_readable()`` -- positions it knows are committed for good, e.g. below this
client's own acknowledged append, never a sealed tail -- reads need no ``check_tail`` at all.

**Exactly-once appends.** ``append`` returns one position, and the log holds the entry there
and nowhere else. Every entry is stored in an envelope naming its appender (``entry.py``:
this client's id and the sequence number of the ``append`` call), which readers never see.
When an attempt's outcome is unknown -- the loglet stored the entry but the reply was lost,
or the chain moved on while it was in flight -- the client does not simply send it again
(that is how an entry came to be at the last position of a sealed segment *and* at the next
one, issue 17). It *resolves* the attempt first (:meth:`VirtualLog._resolve`): once the
attempt's segment is sealed and closed by a chain (waiting for a successor, or rolling
forward itself), it reads that segment from the loglet's committed prefix at the time of the
send up to its stop, where the entry can have landed, and looks for the entry's id. Found:
that is the append's position. Absent: the entry is certainly not in the log (anything that
lands later is a zombie above the stop, never read), and it is appended on the active
segment. Each append call thus stores its entry at most once, at the acknowledged position.

**What a failed append means.** Every error a caller sees says whether the entry may be in the
log: :class:`AppendFailed` (it certainly is not) or :class:`AppendOutcomeUnknown` (it may be,
once: the attempt could not be resolved within ``attempts`` -- the old segment could not be
sealed or read -- or a trim took the range where it may be). A caller that retries after an
unknown outcome makes a new append with a new id, so that copy may be a second one; the
database deduplicates its commands by (client, seq) for that reason (§3.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from delos_ref.loglet.api import MAX_ENTRY_BYTES, MAX_READ_ENTRIES, LogletUnavailable, SealedError, TrimmedError, check_entry, check_range
from delos_ref.virtuallog.chain import Chain, Segment, decode_chain, encode_chain
from delos_ref.virtuallog.entry import EntryId, decode_entry, encode_entry, entry_id
from delos_ref.virtuallog.registry import LogletRegistry
from paxos.register import Conflict, MetaStoreClient, MetaStoreUnavailable, WriteOutcomeUnknown, Written


class VirtualLogError(Exception):
    """Base of the VirtualLog's named failures."""


class NotBootstrapped(VirtualLogError):
    """The MetaStore register is empty: no chain yet (call :meth:`VirtualLog.bootstrap`)."""


class AppendFailed(VirtualLogError):
    """The append certainly did not take effect."""


class AppendOutcomeUnknown(VirtualLogError):
    """The append failed, but the entry may have landed (and may be read later)."""


class LogletContractBroken(VirtualLogError):
    """A loglet broke the contract of §3.4 (e.g. check_tail reported unsealed after seal()
    returned): the VirtualLog refuses to install a chain on its word. A bug in the loglet."""


class VirtualLogUnavailable(VirtualLogError):
    """check_tail, read_next or prefix_trim could not finish in time (no loglet quorum, or a
    sealed loglet with the MetaStore unreachable). The operation had no effect on the log."""


@dataclass(frozen=True, slots=True)
class VirtualLogOptions:
    """Bounds of one client."""

    attempts: int = 16  # loglet attempts per operation (each after a sealed/unavailable error)
    roll_forward_s: float = 1.0  # wait for a newer chain before rolling forward
    poll_s: float = 0.02  # between chain fetches while waiting for one
    unavailable_backoff_s: float = 0.05  # before retrying an unavailable loglet on the same chain
    watch_after_s: float = 0.5  # an append pending this long starts watching the chain (see _append_on)
    # After an attempt that may have landed: resolve it (look for the entry once its segment
    # is sealed) and retry if it is absent. False: raise AppendOutcomeUnknown at once.
    retry_unknown: bool = True

    def __post_init__(self) -> None:
        assert self.attempts >= 1, "VirtualLogOptions: at least one attempt"
        assert 0 < self.poll_s <= self.roll_forward_s, "VirtualLogOptions: 0 < poll <= roll_forward"


#: Bug switch: install chains without the version condition (a blind write at whatever
#: version the register is at): a racing reconfiguration overwrites the winner's chain.
BUG_UNCONDITIONAL_WRITE = "metastore_write_without_version"
#: Bug switch: after an attempt whose outcome is unknown, append the entry again without
#: looking for it first (how appends worked before _resolve): it can land twice.
BUG_REAPPEND_UNKNOWN = "reappend_unknown"
VIRTUALLOG_BUGS = {
    BUG_UNCONDITIONAL_WRITE: "reconfigurations overwrite the chain without the version condition",
    BUG_REAPPEND_UNKNOWN: "an append whose outcome is unknown is sent again without looking for it (it can land twice)",
}


@dataclass(frozen=True, slots=True)
class _Doubt:
    """An append attempt whose outcome is unknown: sent to ``seg``'s loglet as this client's
    ``seq``-th append, when the loglet's committed prefix reached ``lo`` (it can land no lower)."""

    seg: Segment
    lo: int
    seq: int


def _stop_of(chain: Chain, seg: Segment) -> int | None:
    """The stop of the once-active segment ``seg``, now closed in ``chain`` (perhaps moved to
    another loglet by ``reconfig_modify``: the same range, same start); None if truncated away."""
    closed = chain.segments[:-1]
    same = [s.stop for s in closed if s.same_loglet(seg)] or [s.stop for s in closed if s.start == seg.start]
    return max(same) if same else None  # type: ignore[type-var]


class VirtualLog:
    """One client of the VirtualLog; see the module docstring. ``client_id`` must be unique
    per client incarnation (it names the loglets this client's roll-forwards create)."""

    def __init__(
        self,
        metastore: MetaStoreClient,
        registry: LogletRegistry,
        client_id: str,
        *,
        options: VirtualLogOptions = VirtualLogOptions(),
        bugs: frozenset[str] = frozenset(),
    ) -> None:
        assert client_id, "VirtualLog: a client id"
        assert set(bugs) <= set(VIRTUALLOG_BUGS), f"VirtualLog: unknown bugs {sorted(set(bugs) - set(VIRTUALLOG_BUGS))}"
        self.bugs = frozenset(bugs)
        self.metastore = metastore
        self.registry = registry
        self.client_id = client_id
        self.options = options
        self.version = 0
        self.chain: Chain | None = None
        self._trim_point = 0
        self._clones = 0
        EntryId(client_id, 0)  # the id must fit an entry envelope (entry.py)
        self._next_seq = 0  # the sequence number of this client's next append (its entries' ids)
        self._in_flight: dict[trio.CancelScope, tuple[Segment, float]] = {}  # appends, for _watch
        self._watching = False
        self._watch_wakeup = trio.Event()
        self.stats = dict.fromkeys(("appends", "found", "resolved", "sealed", "unavailable", "abandoned", "refreshes", "roll_forwards", "won", "lost"), 0)

    def _emit(self, event: str, **fields: Any) -> None:
        """A ``virtuallog`` trace event, into the MetaStore client's trace sink (if any)."""
        trace = getattr(self.metastore, "_trace", None)
        if trace is not None:
            trace.emit(self.metastore.endpoint.node_id, "virtuallog", event, client=self.client_id, **fields)

    def statistics(self) -> dict[str, int]:
        return dict(self.stats, version=self.version, segments=0 if self.chain is None else len(self.chain.segments))

    # --------------------------------------------------------------------- the chain

    async def bootstrap(self, config: Any) -> bool:
        """Install a one-segment chain on the loglet ``config`` if the register is empty.
        True if this call installed it; either way the client then routes with the chain."""
        kind, params = self.registry.encode(config)
        result = await self.metastore.write_if(0, encode_chain(Chain.initial(kind, params)))
        await self.refresh()
        return type(result) is Written

    async def refresh(self) -> Chain:
        """Fetch the chain from the MetaStore (raises :class:`MetaStoreUnavailable`)."""
        version, value = await self.metastore.read()
        self.stats["refreshes"] += 1
        self._learn(version, value)
        return self._routing_chain()

    def _learn(self, version: int, value: bytes | None) -> None:
        if value is None:
            assert version == 0, "register: only version 0 is empty"
            return
        if version > self.version:  # versions only rise: never route with an older chain
            self.version, self.chain = version, decode_chain(value)

    def _routing_chain(self) -> Chain:
        if self.chain is None:
            raise NotBootstrapped("the MetaStore holds no chain: bootstrap the VirtualLog first")
        return self.chain

    async def _chain(self) -> Chain:
        return self.chain if self.chain is not None else await self.refresh()

    # ------------------------------------------------------------------------ append

    async def append(self, entry: bytes) -> int:
        """Append ``entry`` to the active segment; its virtual position, where it is the only
        copy. Retries on a sealed or unavailable loglet up to ``options.attempts``; then raises
        :class:`AppendFailed` (not in the log) or :class:`AppendOutcomeUnknown` (maybe, once).

        An attempt whose outcome is unknown is *resolved* before anything is sent again
        (:meth:`_resolve`): once its segment is sealed, the range where the entry can have
        landed is read; found there, that position is the answer; certainly absent, the next
        attempt appends it on the active segment."""
        seq, stored = self._envelope(entry)
        doubt: _Doubt | None = None  # the last attempt, while its outcome is unknown
        unresolved = False  # (bug reappend_unknown) an attempt may have landed, never looked for
        last: Exception | None = None
        for _ in range(self.options.attempts):
            try:
                if doubt is not None:
                    found = await self._resolve(doubt)
                    if found is not None:
                        return self._acked(self._segment_holding(found, doubt.seg), found, doubt.seq, "found")
                    doubt = None  # certainly not in the log: append it again
                seg = (await self._chain()).active
            except (LogletUnavailable, VirtualLogUnavailable) as e:
                last = e  # the old segment could not be sealed or read yet: look again
                continue
            except (MetaStoreUnavailable, WriteOutcomeUnknown) as e:
                last = e  # no chain to route by, or no way to learn or install a successor
                break
            lo = self.registry.loglet(seg).known_readable()  # a later send cannot land below
            try:
                pos = await self._append_on(seg, stored)
            except (SealedError, LogletUnavailable) as e:
                last = e
                if e.may_have_landed and BUG_REAPPEND_UNKNOWN not in self.bugs:
                    doubt = _Doubt(seg, lo, seq)
                    if not self.options.retry_unknown:
                        break
                    continue  # resolved at the top of the next attempt
                unresolved |= e.may_have_landed  # only with the bug: it is sent again blindly
                try:
                    await self._after_failure(seg, e)
                except LogletUnavailable:
                    continue  # a roll-forward could not seal yet: try again
                except (MetaStoreUnavailable, WriteOutcomeUnknown) as m:
                    last = m  # sealed, and no way to learn or install a successor
                    break
                continue
            return self._acked(seg, seg.to_virtual(pos), seq, "appended")
        error = AppendOutcomeUnknown if doubt is not None or unresolved else AppendFailed
        raise error(f"append gave up after {last!r}") from last

    def _envelope(self, entry: bytes) -> tuple[int, bytes]:
        """This client's next sequence number, and ``entry`` in its envelope under it (``entry.py``)."""
        check_entry(entry)
        seq = self._next_seq
        stored = encode_entry(EntryId(self.client_id, seq), entry)
        if len(stored) > MAX_ENTRY_BYTES:
            overhead = len(stored) - len(entry)
            raise ValueError(f"entry of {len(entry)} bytes exceeds the bound of {MAX_ENTRY_BYTES - overhead} (the log's {MAX_ENTRY_BYTES} less this client's {overhead}-byte envelope)")
        self._next_seq += 1
        return seq, stored

    def _acked(self, seg: Segment, vpos: int, seq: int, how: str) -> int:
        """Count and trace this client's ``seq``-th append, acknowledged at ``vpos`` of ``seg``."""
        assert seg.holds(vpos), "an acknowledged position lies in its segment"
        self.stats["appends"] += 1
        self.stats["found"] += how == "found"
        self._emit("AppendAck", vpos=vpos, lpos=seg.to_loglet(vpos), start=seg.start, loglet=getattr(self.registry.config(seg), "loglet_id", None), seq=seq, how=how)
        return vpos

    async def _resolve(self, doubt: "_Doubt") -> int | None:
        """Where the append ``doubt`` landed, or None if it certainly did not (OSDI'20 §3.4:
        "a failed append may still become durable"; here the VirtualLog finds out).

        The answer is only definite once the attempt's segment is sealed and its stop fixed
        by a chain: below the stop the entries are final, and anything that lands later is a
        zombie above it, never read. So if the chain still has that segment active, this
        waits for a successor (rolling forward after ``roll_forward_s``, which seals it).
        Then it reads the segment from where the entry could first land (``doubt.lo``: the
        loglet's committed prefix when it was sent) to the stop, and looks for its id.

        * The chain may have moved on several times: the segment is still in it, closed.
        * A ``reconfig_modify`` may have moved the segment to another loglet (same entries,
          same range): then it is the closed segment starting where it started.
        * A trim may have taken the range, or part of it: if the entry is not in the rest,
          nobody can tell any more -- :class:`AppendOutcomeUnknown`, the honest answer.
        """
        chain = await self.refresh()
        if chain.active.same_loglet(doubt.seg):
            await self._await_successor(doubt.seg)  # seals it, if nobody else does
            chain = self._routing_chain()
        ident = EntryId(self.client_id, doubt.seq)
        stop = _stop_of(chain, doubt.seg)
        if stop is None:
            raise AppendOutcomeUnknown(f"append of {ident}: the segment at {doubt.seg.start} it may have landed in was trimmed away")
        pos = await self._find(ident, doubt.seg.start + doubt.lo, stop)
        self.stats["resolved"] += 1
        return pos

    def _segment_holding(self, vpos: int, default: Segment) -> Segment:
        """The segment of the cached chain holding ``vpos`` (``default`` if trimmed away)."""
        index = self._routing_chain().segment_for(vpos)
        return default if index is None else self._routing_chain().segments[index]

    async def _find(self, ident: EntryId, lo: int, hi: int) -> int | None:
        """The virtual position in ``[lo, hi)`` holding the entry ``ident``, or None."""
        pos, trimmed = lo, False
        while pos < hi:
            try:
                got = await self._read_raw(pos, hi)
            except TrimmedError as e:
                trimmed, pos = True, max(pos + 1, e.trim_point)
                continue
            if not got:
                raise VirtualLogUnavailable(f"looking for {ident}: position {pos} of a sealed segment is not readable yet")
            for p, stored in got:
                if entry_id(stored) == ident:
                    return p
            pos = got[-1][0] + 1
        if trimmed:
            raise AppendOutcomeUnknown(f"append of {ident}: not found, and part of [{lo}, {hi}) where it may have landed is trimmed")
        return None

    async def _append_on(self, seg: Segment, entry: bytes) -> int:
        """Append to ``seg``'s loglet; give up early if the chain moves past ``seg`` meanwhile.

        A loglet whose sequencer died answers nothing, so its append only fails at its own
        deadline (seconds). But the supervisors reconfigure away from it sooner. So every
        append in flight is registered with this client's *watcher* (:meth:`_watch`): once
        one has waited ``watch_after_s``, the watcher fetches the chain, and if the active
        segment is another one it cancels the append, which is then retried there. The entry
        may still have landed below the old segment's sealed tail: ``may_have_landed``.
        """
        loglet = self.registry.loglet(seg)
        with trio.CancelScope() as scope:
            self._in_flight[scope] = (seg, trio.current_time())
            if not self._watching:
                self._watching = True
                trio.lowlevel.spawn_system_task(self._watch, name=f"VirtualLog {self.client_id} watcher")
            self._watch_wakeup.set()
            try:
                return await loglet.append(entry)
            finally:
                del self._in_flight[scope]
        self.stats["abandoned"] += 1
        raise SealedError(f"the chain moved past {seg.kind} loglet at {seg.start} while an append was in flight", may_have_landed=True)

    async def _watch(self) -> None:
        """The watcher of :meth:`_append_on` (one per client, started with its first append):
        asleep while no append has waited ``watch_after_s``; then it polls the chain."""
        while True:
            now = trio.current_time()
            if not self._in_flight:
                self._watch_wakeup = trio.Event()
                await self._watch_wakeup.wait()
                continue
            due = min(t for _, t in self._in_flight.values()) + self.options.watch_after_s
            if due > now:
                await trio.sleep(due - now)
                continue
            try:
                active = (await self.refresh()).active
            except Exception:  # no chain now (MetaStore unreachable...): look again later
                active = None
            for scope, (seg, _) in list(self._in_flight.items()):
                if active is not None and not active.same_loglet(seg):
                    scope.cancel()  # the chain moved on: stop waiting for this loglet
            await trio.sleep(self.options.poll_s)

    async def _after_failure(self, seg: Segment, e: Exception) -> None:
        """After ``seg``'s loglet failed an operation: fetch the chain; if it has not moved
        past ``seg``, wait for it (sealed: then roll forward) or back off (unavailable)."""
        if isinstance(e, SealedError):
            self.stats["sealed"] += 1
            await self._await_successor(seg)
            return
        self.stats["unavailable"] += 1
        if (await self.refresh()).active.same_loglet(seg):
            await trio.sleep(self.options.unavailable_backoff_s)

    async def _await_successor(self, seg: Segment) -> None:
        """Wait until the chain's active segment is no longer ``seg``; roll forward if no
        newer chain appears within ``roll_forward_s`` (§3.2 "roll-forward")."""
        # lab: roll_forward begin
        deadline = trio.current_time() + self.options.roll_forward_s
        while trio.current_time() < deadline:
            if not (await self.refresh()).active.same_loglet(seg):
                return
            await trio.sleep(self.options.poll_s)
        if not (await self.refresh()).active.same_loglet(seg):
            return
        self.stats["roll_forwards"] += 1
        kind, params = self.registry.clone(seg, self.fresh_loglet_id())
        await self.reconfig_extend_raw(kind, params)
        # lab: roll_forward end

    def fresh_loglet_id(self) -> str:
        """A loglet id no one else uses: a loglet id, once sealed, is sealed forever."""
        # Unique per client incarnation and per call.
        self._clones += 1
        return f"{self.client_id}.v{self.version + 1}.{self._clones}"

    # -------------------------------------------------------------------- check_tail

    async def check_tail(self) -> int:
        """The first unwritten virtual position (linearizable): every append acknowledged
        before this call is below it. Never answers from a sealed loglet (zombies)."""
        for _ in range(self.options.attempts):
            seg = (await self._chain()).active
            failure: Exception
            try:
                tail, sealed = await self.registry.loglet(seg).check_tail()
                if not sealed:
                    return seg.to_virtual(tail)
                failure = SealedError()
            except LogletUnavailable as e:
                failure = e
            try:
                await self._after_failure(seg, failure)
            except LogletUnavailable:
                continue  # a roll-forward could not seal yet: try again
            except (MetaStoreUnavailable, WriteOutcomeUnknown) as e:
                raise VirtualLogUnavailable(f"check_tail: {failure!r}, and the chain cannot move on: {e!r}") from None
        raise VirtualLogUnavailable(f"check_tail: no unsealed active segment after {self.options.attempts} attempts")

    # --------------------------------------------------------------------- read_next

    async def read_next(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """``(pos, entry)`` for ``lo, lo+1, ...`` below ``hi``, across segments, up to the
        first unreadable position (the tail) or ``MAX_READ_ENTRIES``. Each entry is the
        user's bytes as given to ``append`` (its envelope, ``entry.py``, taken off)."""
        return [(pos, decode_entry(stored)[1]) for pos, stored in await self._read_raw(lo, hi)]

    async def read_stored(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """:meth:`read_next` with each entry as stored (in its envelope): what a copy of the
        log must hold, e.g. a point-in-time restore (``delos_ref/migrate.py``)."""
        return await self._read_raw(lo, hi)

    async def _read_raw(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """:meth:`read_next` with each entry as stored (in its envelope)."""
        check_range(lo, hi)
        out: list[tuple[int, bytes]] = []
        pos = lo
        while pos < hi and len(out) < MAX_READ_ENTRIES:
            got, complete = await self._read_segment(pos, min(hi, lo + MAX_READ_ENTRIES))
            out.extend(got)
            pos += len(got)
            if not complete:
                break  # stopped below the segment's end: the tail, or a gap
        assert [p for p, _ in out] == list(range(lo, lo + len(out))), "read_next: positions are consecutive from lo"
        return out

    async def _read_segment(self, pos: int, hi: int) -> tuple[list[tuple[int, bytes]], bool]:
        """Entries from ``pos`` within the segment holding it; True if it read to its end."""
        for _ in range(self.options.attempts):
            chain = await self._chain()
            index = chain.segment_for(pos)
            if index is None:
                raise TrimmedError(pos, chain.base)
            seg = chain.segments[index]
            stop = await self._readable_stop(seg, hi)
            if stop is None:
                continue  # the segment we took as active is sealed: the chain was refreshed
            end = min(hi, stop)
            if pos >= end:
                return [], False
            try:
                got = await self.registry.loglet(seg).read_next(seg.to_loglet(pos), seg.to_loglet(end))
            except TrimmedError as e:
                if await self._moved_since(seg):
                    continue  # a migration moved the segment and dropped it here: read the copy
                raise TrimmedError(pos, seg.to_virtual(e.trim_point)) from None
            except LogletUnavailable as e:
                raise VirtualLogUnavailable(f"read_next at {pos}: {e}") from None
            return [(seg.to_virtual(p), v) for p, v in got], pos + len(got) == stop
        raise VirtualLogUnavailable(f"read_next at {pos}: the chain kept moving")

    async def _moved_since(self, seg: Segment) -> bool:
        """Whether a fresh chain routes ``seg``'s start to another loglet: after a migration
        (``reconfig_modify``, ``delos_ref/migrate.py``) the old loglet trims the range, and a
        client whose chain is older meets that trim; the copy holds the same entries."""
        try:
            chain = await self.refresh()
        except (MetaStoreUnavailable, NotBootstrapped):
            return False
        index = chain.segment_for(seg.start)
        return index is not None and not chain.segments[index].same_loglet(seg)

    async def _readable_stop(self, seg: Segment, want: int) -> int | None:
        """Where reads in ``seg`` must stop: its stop if closed; for the segment this client
        believes active, its unsealed tail (None: it is sealed, the chain was refreshed) --
        or, when every position below ``want`` is already known committed (the loglet's
        ``known_readable``: e.g. this client's own acknowledged appends), that known position,
        without asking: committed entries are readable whether or not the loglet has been
        sealed since. A database replica reading up to its own latest append needs no
        ``check_tail`` for it."""
        if seg.stop is not None:
            return seg.stop
        loglet = self.registry.loglet(seg)
        known = seg.to_virtual(loglet.known_readable())
        if want <= known:
            return known
        try:
            tail, sealed = await loglet.check_tail()
        except LogletUnavailable as e:
            raise VirtualLogUnavailable(f"read_next: {e}") from None
        if not sealed:
            return seg.to_virtual(tail)
        try:
            await self._await_successor(seg)
        except (LogletUnavailable, MetaStoreUnavailable, WriteOutcomeUnknown) as e:
            raise VirtualLogUnavailable(f"read_next: the active segment is sealed and {e}") from None
        return None

    # -------------------------------------------------------------------- prefix_trim

    async def prefix_trim(self, pos: int) -> None:
        """Allow every position below ``pos`` to be discarded, in every segment it touches.
        Segments wholly below it can then be dropped with :meth:`reconfig_truncate`."""
        chain = await self.refresh()
        for seg in chain.segments:
            if seg.start >= pos:
                break
            upto = pos if seg.stop is None else min(pos, seg.stop)
            try:
                await self.registry.loglet(seg).prefix_trim(seg.to_loglet(upto))
            except LogletUnavailable as e:
                raise VirtualLogUnavailable(f"prefix_trim({pos}): {e}") from None
        self._trim_point = max(self._trim_point, pos)

    # -------------------------------------------------------------- reconfigurations

    async def reconfig_extend(self, config: Any) -> bool:
        """Seal the active segment and append one on the loglet ``config``; True if this
        call's chain was installed. Either way the client then routes with the latest chain."""
        kind, params = self.registry.encode(config)
        return await self.reconfig_extend_raw(kind, params)

    async def reconfig_extend_raw(self, kind: str, params: bytes) -> bool:
        """:meth:`reconfig_extend` with the segment's ``(kind, params)`` given directly."""
        # lab: reconfigure begin
        chain = await self.refresh()
        version, seg = self.version, chain.active
        loglet = self.registry.loglet(seg)
        await loglet.seal()  # 1. seal (idempotent)
        tail, sealed = await loglet.check_tail()  # 2. the sealed tail
        if not sealed:
            raise LogletContractBroken(f"{seg.kind} loglet at {seg.start}: check_tail reports unsealed after seal() returned")
        new = chain.extend(seg.to_virtual(tail), kind, params)
        return await self._install(version, new)  # 3. install, 4. fetch
        # lab: reconfigure end

    async def reconfig_truncate(self, trim_point: int | None = None) -> bool:
        """Drop the leading segments wholly below ``trim_point`` (default: the highest this
        client trimmed). No seal: those segments are closed already. True if installed; False
        if another chain won or there was nothing to drop."""
        chain = await self.refresh()
        new = chain.truncate(self._trim_point if trim_point is None else trim_point)
        if new == chain:
            return False
        return await self._install(self.version, new)

    async def reconfig_modify(self, index: int, config: Any) -> bool:
        """Point sealed segment ``index`` at the loglet ``config`` (which must hold the same
        entries: e.g. a copy in cold storage). True if installed."""
        await self.refresh()
        return await self.reconfig_modify_at(self.version, index, config)

    async def reconfig_modify_at(self, version: int, index: int, config: Any) -> bool:
        """:meth:`reconfig_modify` on the chain of ``version`` only, the one the caller checked
        segment ``index`` against (``delos_ref/migrate.py``): if the register has moved on, the
        write loses and nothing changes (False). ``config`` may be ``(kind, params)``."""
        if self.version != version or self.chain is None:
            await self.refresh()
            if self.version != version:
                return False
        kind, params = config if isinstance(config, tuple) else self.registry.encode(config)
        return await self._install(version, self._routing_chain().modify(index, kind, params))

    async def _install(self, version: int, new: Chain) -> bool:
        """Conditional write of ``new`` over ``version``, then learn the chain. The write's
        outcome carries it: ``Written`` means ours is current; a ``Conflict`` carries the
        winner's (version, chain), read linearizably by the register. Only an unknown outcome
        needs a fetch, and it decides: won iff the register holds ``new`` at ``version + 1``."""
        try:
            result = await self.metastore.write_if(version, encode_chain(new))
            if type(result) is Conflict and BUG_UNCONDITIONAL_WRITE in self.bugs:
                result = await self.metastore.write_if(result.version, encode_chain(new))  # the bug: blind
        except WriteOutcomeUnknown:
            result = None
        assert type(result) in (Written, Conflict) or result is None, "write_if: Written or Conflict"
        if type(result) is Written:
            self._learn(result.version, encode_chain(new))
        elif type(result) is Conflict:
            self._learn(result.version, result.value)
        else:
            await self.refresh()
        won = type(result) is Written or (result is None and self.version == version + 1 and self.chain == new)
        self.stats["won" if won else "lost"] += 1
        return won
