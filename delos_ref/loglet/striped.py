"""The StripedLoglet: one loglet made of N loglets (OSDI'20 §4.2.2; docs/design.md §6).

Loglets compose. A StripedLoglet owns no servers at all: it maps its address space over N
*inner* loglets, its *stripes*, and speaks to them only through the Loglet interface
(``api.py``), so a stripe may be any kind the registry knows -- a NativeLoglet, a memory
loglet, even another StripedLoglet. The mapping is Corfu's, round-robin::

    logical position  p = l * N + k   lives at position  l  of stripe  k

    N = 2:   stripe 0:  0  2  4  6  8 ...        (l = 0, 1, 2, ...)
             stripe 1:  1  3  5  7  9 ...

The seed names two uses, and both are only a choice of inner configs:

* **Rotating sequencer**: N NativeLoglets over the *same* LogServers, each with its
  sequencer on a different node. Every LogServer still stores every entry, but each
  sequencer orders only the appends of its own stripe.
* **Sharding**: N NativeLoglets over *disjoint* LogServer sets, so storage work divides too.

What "double the failure threshold by rotating the sequencer" means, exactly
----------------------------------------------------------------------------
The *failure threshold* of a loglet is the offered append load at which it fails: the load
at which its busiest process saturates, its queues fill, and appends answer ``busy`` and then
time out. In a NativeLoglet the busiest process is the sequencer: it handles every append
(the request, one ``Store`` batch per LogServer, every ``Stored`` reply, the commit and the
acknowledgement), while a LogServer handles only the ``Store`` s. With the rotating
sequencer over N stripes, each sequencer orders 1/N of the appends (round-robin placement
gives each stripe every N-th position), so the load at which *a* sequencer saturates grows
N-fold -- doubled at N = 2 -- as long as the sequencer stays the bottleneck. The LogServers'
share does not rotate (each still stores every entry), so the whole threshold grows less
than N-fold once they become the busiest; sharding removes that limit too. The property is
tested per append (``tests/test_striped_loglet.py``: each of 2 sequencers orders half the
entries, so the busiest one's work per append halves) and measured by ``delos-ref bench
append --loglet striped`` (CPU per append of each process).

It does **not** mean that more crashes are tolerated. Each stripe is an ordinary NativeLoglet
that tolerates a minority of its LogServers failing, and the crash of *any* stripe's
sequencer stops the striped loglet: appends may still land in the other stripes, but they
land above a hole that nothing can fill, so none is acknowledged (rule 2). A StripedLoglet of
N NativeLoglets is therefore N times as likely to need a reconfiguration; its ``diagnose``
says so (rule 6), and the VirtualLog replaces it, with the dead sequencer replaced in its
stripe.

The rules
---------
1. **Place.** ``append`` sends the entry to one stripe: the one whose next position, as far
   as this client knows, is the lowest logical position (round-robin for a lone client, and
   "least loaded" when many clients share the stripes). The stripe answers with its
   position ``l``; the entry's logical position is ``l * N + k``. A fresh client first
   looks at the stripes' tails (one ``check_tail``), so that a client that appends once and
   goes (the CLI) lands in the first free position instead of leaving a hole behind it.
2. **Acknowledge in order.** An append at ``p`` is acknowledged only once *every* earlier
   logical position is filled: stripe ``j`` holds at least ``need(j, p) = ceil((p - j) / N)``
   committed entries, for every ``j``. The stripes fill independently, so this is a wait,
   and without it a reader could see ``p`` while ``p - 1`` is still empty, and a seal could
   fix a tail below ``p``: an acknowledged append lost. (Bug switch
   ``striped_acks_over_hole`` skips the wait.)
3. **Fill holes.** A hole that persists (no client appended to that stripe yet, or the
   client that would have died) would stall every append above it forever. So a waiting
   client that has no append of its own in flight to the lagging stripe (whose answer would
   tell it more) first looks at that stripe's tail (``check_tail``: another client may have
   filled it), and after ``fill_after_s`` appends a *filler* there: the empty entry ``b""``,
   which readers of the shared log skip (the database applies it as a no-op). Fillers are
   rare: a lone client places round-robin and never leaves a hole of its own.
4. **Combine the tails.** ``check_tail`` asks every stripe; the first unfilled logical
   position is ``min over j of (tail_j * N + j)``. If some stripes are sealed and others are
   not, a seal is in progress: finish it (seal every stripe), then ask again. The answer is
   sealed only when every stripe is -- otherwise an unsealed stripe could still take an
   append below a sealed tail already returned. (Bug switch ``striped_check_tail_half_sealed``
   reports sealed as soon as one stripe is.)
5. **Seal everything.** ``seal`` seals every stripe and returns when all are sealed. Once it
   has, no stripe takes another append, so no more holes fill and no append is acknowledged
   (rule 2). (Bug switch ``striped_partial_seal`` returns once the first stripe is sealed.)
6. **Fail as a whole.** ``diagnose`` asks each stripe; if any is failing, the whole striped
   segment must be replaced (it cannot be half-sealed), by a striped config in which each
   failing stripe that names a successor is replaced by it and the others are cloned (fresh
   instances on the same nodes). No successor at all: no reconfiguration would help yet.

What becomes of appends that landed above a hole
------------------------------------------------
The sealed tail is the first hole: ``min_j(T_j * N + j)`` over the stripes' sealed tails
``T_j``. Entries that landed in a stripe *above* the first hole -- their stripe was ahead of
another when the seal came -- are never readable: ``read_next`` stops at the tail, and the
VirtualLog's next segment starts there, so those positions are never part of the log. None of
them was acknowledged (rule 2 waited for the hole). Their appends failed with
``SealedError(may_have_landed=True)`` (or ``LogletUnavailable`` with the same flag, on a
deadline) -- *may*, because the wait cannot tell whether a zombie will still fill the hole
below them before the seal fixes the tail. The VirtualLog above treats them like any append
whose outcome is unknown; the stripes keep the dead entries until the segment is trimmed.

The other operations map positions: ``read_next(lo, hi)`` reads each stripe's part of
``[lo, hi)`` at once and interleaves, stopping at the first position not returned;
``prefix_trim(pos)`` trims stripe ``j`` below ``need(j, pos)``, never past the tail.

What a stripe must promise (every loglet here does): an append acknowledged at ``l`` means
positions ``0..l`` of that stripe are filled for good (loglets fill gaplessly), and an
*unsealed* ``check_tail`` reports a committed tail. What this client knows per stripe:
``_filled[j]`` (committed for good: own acknowledgements, unsealed tails -- the basis of
rule 2 and of ``known_readable``) and ``_readable[j]`` (also sealed tails: readable, but a
seal may fix a lower stop, so never trusted for an acknowledgement).

Trace events (role ``loglet``, with ``loglet`` and ``stripes`` = the stripe count):
``StripedAppend`` (stripe, stripe_pos, pos -- landed), ``StripedAck`` (pos), ``StripedFill``
(stripe, stripe_pos), ``StripedSeal`` (partial), ``StripedCheckTail`` (tails, tail, sealed).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

import trio

from delos_ref.loglet.api import (
    MAX_READ_ENTRIES,
    Diagnosis,
    Loglet,
    LogletError,
    LogletUnavailable,
    Membership,
    SealedError,
    Tail,
    TrimmedError,
    check_entry,
    check_range,
)
from transports.codec import message

#: Bug switch (rule 2): acknowledge an append as soon as its stripe did, over any hole below.
BUG_ACKS_OVER_HOLE = "striped_acks_over_hole"
#: Bug switch (rule 5): ``seal`` returns once the first stripe is sealed, leaving the rest.
BUG_PARTIAL_SEAL = "striped_partial_seal"
#: Bug switch (rule 4): ``check_tail`` reports sealed once any stripe is, without finishing
#: the seal of the others.
BUG_HALF_SEALED_TAIL = "striped_check_tail_half_sealed"
STRIPED_BUGS = {
    BUG_ACKS_OVER_HOLE: "acknowledge an append while an earlier logical position is still empty",
    BUG_PARTIAL_SEAL: "seal returns once one stripe is sealed (the others stay unsealed)",
    BUG_HALF_SEALED_TAIL: "check_tail reports a sealed tail while some stripes are unsealed (no finishing seal)",
}
#: Bound on the stripes of one StripedLoglet.
MAX_STRIPES = 16
#: What a filler holds: the empty entry, which readers of the log skip (rule 3).
FILLER = b""


@message("loglet.striped.stripe")
class Stripe:
    """One stripe: an inner loglet named as a chain segment names one, ``(kind, params)``."""

    kind: str
    params: bytes


@message("loglet.striped.config")
class StripedLogletConfig:
    """A StripedLoglet instance: its id and its stripes, in stripe order."""

    loglet_id: str
    stripes: tuple[Stripe, ...]

    def __post_init__(self) -> None:
        if not 0 < len(self.loglet_id) <= 128:
            raise ValueError("StripedLogletConfig: loglet_id is 1..128 characters")
        if not 1 <= len(self.stripes) <= MAX_STRIPES:
            raise ValueError(f"StripedLogletConfig: 1..{MAX_STRIPES} stripes")


@dataclass(frozen=True, slots=True)
class StripedOptions:
    """Bounds of one StripedLoglet client (the stripes have their own deadlines)."""

    append_timeout_s: float = 5.0  # the wait for the holes below one append (rule 2)
    poll_s: float = 0.005  # between looks at a lagging stripe's tail (rule 3)
    fill_after_s: float = 0.05  # a hole waited on this long gets a filler (rule 3)

    def __post_init__(self) -> None:
        assert self.append_timeout_s > 0 and self.poll_s > 0 and self.fill_after_s >= 0, "every wait is bounded"


def need(j: int, p: int, n: int) -> int:
    """How many entries stripe ``j`` of ``n`` holds below logical position ``p``."""
    return max(0, (p - j + n - 1) // n)


def combine(counts: Sequence[int]) -> int:
    """The first logical position not covered by stripe prefixes of these lengths (rule 4)."""
    n = len(counts)
    return min(c * n + j for j, c in enumerate(counts))


#: ``successor(replacements, fresh_id)``: the config of a striped loglet named ``fresh_id``
#: whose stripe j is ``replacements[j]`` (an inner config) or else a clone (rule 6).
Successor = Callable[[dict[int, Any], str], Any]


class StripedLoglet(Loglet):
    """A client of one StripedLoglet over ``stripes`` (clients of the inner loglets)."""

    def __init__(
        self,
        loglet_id: str,
        stripes: Sequence[Loglet],
        *,
        options: StripedOptions = StripedOptions(),
        bugs: frozenset[str] = frozenset(),
        successor: Successor | None = None,
        emit: Callable[..., None] | None = None,
    ) -> None:
        assert 1 <= len(stripes) <= MAX_STRIPES, f"StripedLoglet: 1..{MAX_STRIPES} stripes"
        assert set(bugs) <= set(STRIPED_BUGS), f"StripedLoglet: unknown bugs {sorted(set(bugs) - set(STRIPED_BUGS))}"
        self.loglet_id = loglet_id
        self.stripes = tuple(stripes)
        self.n = len(stripes)
        self.options = options
        self.bugs = frozenset(bugs)
        self._successor = successor
        self._emit_to = emit
        self._filled = [0] * self.n  # committed for good in stripe j (rule 2's basis)
        self._readable = [0] * self.n  # readable in stripe j (sealed tails included)
        self._placed = [0] * self.n  # this client's appends sent to stripe j, ever
        self._inflight = [0] * self.n  # this client's appends to stripe j not answered yet
        self._looked = False  # whether this client has looked at the stripes' tails yet
        # Appends waiting for the holes below them (rule 2), by logical position: woken when
        # the filled prefix passes them (only those: one answer must not wake 256 waiters).
        self._waiters: dict[int, trio.Event] = {}
        self._waiting: list[int] = []  # heap of the positions in _waiters (lazily cleaned)
        self._catching_up: list[trio.Event | None] = [None] * self.n  # one look/fill per stripe at a time
        self.stats = {"appends": 0, "acks": 0, "fillers": 0, "hole_waits": 0, "seals": 0, "check_tails": 0, "reads": 0}

    # ------------------------------------------------------------------- bookkeeping

    def _emit(self, event: str, **fields: Any) -> None:
        if self._emit_to is not None:
            self._emit_to(event, loglet=self.loglet_id, stripes=self.n, **fields)

    def _learn(self, j: int, committed: int) -> None:
        """Stripe ``j`` holds ``committed`` entries for good."""
        if committed > self._filled[j]:
            self._filled[j] = committed
            self._wake_filled()
        self._readable[j] = max(self._readable[j], committed)

    def _wait_event(self, pos: int) -> trio.Event:
        """The event that wakes the append at ``pos`` waiting for the holes below it."""
        event = self._waiters.get(pos)
        if event is None:
            event = self._waiters[pos] = trio.Event()
            heapq.heappush(self._waiting, pos)
        return event

    def _wake_filled(self) -> None:
        """Wake the waiters the filled prefix has passed (rule 2)."""
        first = combine(self._filled)
        while self._waiting and self._waiting[0] < first:
            event = self._waiters.pop(heapq.heappop(self._waiting), None)
            if event is not None:
                event.set()

    def _wake_all(self) -> None:
        for event in self._waiters.values():
            event.set()
        self._waiters.clear()
        self._waiting.clear()

    def _first_unfilled(self) -> int:
        for j, stripe in enumerate(self.stripes):
            self._learn(j, stripe.known_readable())  # what the stripe learned on its own
        return combine(self._filled)

    def known_readable(self) -> int:
        return self._first_unfilled()

    def learn_tail(self, tail: int) -> None:
        """Every logical position below ``tail`` is committed (a closed segment's stop)."""
        for j, stripe in enumerate(self.stripes):
            self._learn(j, need(j, tail, self.n))
            if hasattr(stripe, "learn_tail"):
                stripe.learn_tail(need(j, tail, self.n))

    @property
    def known_tail(self) -> int:
        """Readable below this logical position, as far as this client knows."""
        return combine(self._readable)

    async def _each(self, op: Callable[[int, Loglet], Awaitable[Any]]) -> list[Any]:
        """``op`` on every stripe at once; the results in stripe order, or the first error."""
        results: list[Any] = [None] * self.n
        errors: list[LogletError | None] = [None] * self.n

        async def one(j: int) -> None:
            try:
                results[j] = await op(j, self.stripes[j])
            except LogletError as e:
                errors[j] = e

        async with trio.open_nursery() as nursery:
            for j in range(self.n):
                nursery.start_soon(one, j)
        for j, e in enumerate(errors):
            if e is not None:
                raise _relabel(e, f"{self.loglet_id} stripe {j}")
        return results

    # ------------------------------------------------------------------------ append

    def _pick_stripe(self) -> int:
        """Rule 1: the stripe whose next free position is the lowest logical one, as far as
        this client knows: the entries it placed there itself, or more if it learned of
        others' (a lone client thus places exactly round-robin)."""
        return min(range(self.n), key=lambda j: max(self._placed[j], self._readable[j]) * self.n + j)

    async def append(self, entry: bytes) -> int:
        check_entry(entry)
        if not self._looked:  # a fresh client learns where the stripes stand, once
            self._looked = True
            try:
                await self.check_tail()
            except LogletError:
                pass  # the append itself will tell
        k = self._pick_stripe()
        self._placed[k] += 1
        self._inflight[k] += 1
        try:
            l = await self.stripes[k].append(entry)
        except LogletError as e:
            raise _relabel(e, f"{self.loglet_id} stripe {k}") from None
        finally:
            self._inflight[k] -= 1
            if not self._inflight[k]:
                self._wake_all()  # waiters counting on an answer from stripe k look again
        self.stats["appends"] += 1
        self._learn(k, max(l + 1, self.stripes[k].known_readable()))
        pos = l * self.n + k
        self._emit("StripedAppend", stripe=k, stripe_pos=l, pos=pos)
        if BUG_ACKS_OVER_HOLE not in self.bugs:
            await self._await_filled_below(pos)
        self.stats["acks"] += 1
        self._emit("StripedAck", pos=pos)
        return pos

    async def _await_filled_below(self, pos: int) -> None:
        """Rule 2 (with rule 3 for holes that persist): return once ``[0, pos)`` is filled."""
        started = trio.current_time()
        deadline = started + self.options.append_timeout_s
        if self._first_unfilled() <= pos:
            self.stats["hole_waits"] += 1
        try:
            await self._await_holes(pos, started, deadline)
        finally:
            self._waiters.pop(pos, None)

    async def _await_holes(self, pos: int, started: float, deadline: float) -> None:
        why = "no stripe filled it"
        while self._first_unfilled() <= pos:
            if trio.current_time() >= deadline:
                raise LogletUnavailable(f"{self.loglet_id}: a hole below {pos} stayed open for {self.options.append_timeout_s}s ({why})", may_have_landed=True)
            # A stripe with an append of ours in flight needs no look: its answer at l tells
            # that [0, l] is filled (stripes fill gaplessly), wherever it lands; wait for it.
            lagging = [j for j in range(self.n) if self._filled[j] < need(j, pos, self.n) and not self._inflight[j]]
            with trio.move_on_at(min(deadline, trio.current_time() + self.options.poll_s) if lagging else deadline):
                await self._wait_event(pos).wait()
            if self._first_unfilled() > pos:
                return
            lagging = [j for j in range(self.n) if self._filled[j] < need(j, pos, self.n) and not self._inflight[j]]
            if not lagging:
                continue
            fill = trio.current_time() - started >= self.options.fill_after_s
            try:
                with trio.move_on_at(deadline):
                    await self._each(lambda j, _s: self._catch_up(j, pos, fill) if j in lagging else trio.lowlevel.checkpoint())
            except SealedError as e:
                raise SealedError(f"{self.loglet_id}: sealed below {pos} while it waited for a hole ({e})", may_have_landed=True) from None
            except LogletUnavailable as e:
                why = str(e)  # a stripe did not answer in time: look again until the deadline

    async def _catch_up(self, j: int, pos: int, fill: bool) -> None:
        """Rule 3 for stripe ``j``: look at its tail; if ``fill``, fill it up to ``need(j, pos)``.
        One client runs one catch-up per stripe at a time; the others wait for it."""
        running = self._catching_up[j]
        if running is not None:
            await running.wait()
            return
        done = self._catching_up[j] = trio.Event()
        try:
            tail = await self.stripes[j].check_tail()
            if tail.sealed:
                raise SealedError(f"stripe {j} is sealed", may_have_landed=True)
            self._learn(j, tail.tail)
            while fill and self._filled[j] < need(j, pos, self.n):
                l = await self.stripes[j].append(FILLER)
                self._learn(j, l + 1)
                self.stats["fillers"] += 1
                self._emit("StripedFill", stripe=j, stripe_pos=l)
        finally:
            self._catching_up[j] = None
            done.set()

    # ---------------------------------------------------------------- seal, check_tail

    async def seal(self) -> None:
        """Rule 5: seal every stripe; return when all are sealed."""
        if BUG_PARTIAL_SEAL in self.bugs:
            await self._seal_first()
        else:
            await self._each(lambda _j, s: s.seal())
        self.stats["seals"] += 1
        self._emit("StripedSeal", partial=BUG_PARTIAL_SEAL in self.bugs)

    async def _seal_first(self) -> None:
        """The bug: seal one stripe (the first) and call the loglet sealed."""
        try:
            await self.stripes[0].seal()
        except LogletError as e:
            raise _relabel(e, f"{self.loglet_id} stripe 0") from None

    async def check_tail(self) -> Tail:
        """Rule 4: the first unfilled logical position; sealed once every stripe is."""
        self.stats["check_tails"] += 1
        tails = await self._each(lambda _j, s: s.check_tail())
        half_sealed = any(t.sealed for t in tails) and not all(t.sealed for t in tails)
        if half_sealed and BUG_HALF_SEALED_TAIL in self.bugs:
            return self._sealed_result(tails)  # the bug: unsealed stripes may still grow below it
        if half_sealed:
            await self._each(lambda _j, s: s.seal())  # a seal is in progress: finish it
            tails = await self._each(lambda _j, s: s.check_tail())
            if not all(t.sealed for t in tails):
                raise LogletUnavailable(f"{self.loglet_id}: a stripe reports unsealed after its seal returned")
        sealed = all(t.sealed for t in tails)
        for j, t in enumerate(tails):
            if sealed:
                self._readable[j] = max(self._readable[j], t.tail)  # readable, not for acks
            else:
                self._learn(j, t.tail)
        tail = combine([t.tail for t in tails])
        self._emit("StripedCheckTail", tails=[t.tail for t in tails], tail=tail, sealed=sealed)
        return Tail(tail, sealed)

    def _sealed_result(self, tails: list[Tail]) -> Tail:
        tail = combine([t.tail for t in tails])
        self._emit("StripedCheckTail", tails=[t.tail for t in tails], tail=tail, sealed=True)
        return Tail(tail, True)

    # ------------------------------------------------------------------ read, trim

    async def read_next(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """Each stripe's share of ``[lo, hi)`` at once, interleaved up to the first gap."""
        check_range(lo, hi)
        hi = min(hi, lo + MAX_READ_ENTRIES)
        if hi > self.known_tail:
            try:
                await self.check_tail()  # learn how far it is safe to read
            except LogletUnavailable:
                pass  # read what we know
        hi = min(hi, self.known_tail)
        if lo >= hi:
            return []
        parts: list[list[bytes]] = [[] for _ in range(self.n)]
        errors: list[LogletError | None] = [None] * self.n

        async def part(j: int) -> None:
            first, stop = need(j, lo, self.n), need(j, hi, self.n)
            try:
                while first + len(parts[j]) < stop:
                    got = await self.stripes[j].read_next(first + len(parts[j]), stop)
                    if not got:
                        return
                    parts[j] += [e for _, e in got]
            except LogletError as e:
                errors[j] = e

        async with trio.open_nursery() as nursery:
            for j in range(self.n):
                nursery.start_soon(part, j)
        out = self._interleave(lo, hi, parts)
        if not out:
            self._raise_read_error(lo, errors)
        self.stats["reads"] += 1
        return out

    def _interleave(self, lo: int, hi: int, parts: list[list[bytes]]) -> list[tuple[int, bytes]]:
        out = []
        for p in range(lo, hi):
            j, i = p % self.n, p // self.n - need(p % self.n, lo, self.n)
            if i >= len(parts[j]):
                break  # the first position not returned: stop (read_next's contract)
            out.append((p, parts[j][i]))
        return out

    def _raise_read_error(self, lo: int, errors: list[LogletError | None]) -> None:
        e = errors[lo % self.n]
        if isinstance(e, TrimmedError):
            raise TrimmedError(lo, e.trim_point * self.n + lo % self.n)
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise _relabel(first, f"{self.loglet_id} read_next({lo})")
        raise LogletUnavailable(f"read_next({lo}) of {self.loglet_id}: no stripe served it")

    async def prefix_trim(self, pos: int) -> None:
        """Trim stripe j below ``need(j, pos)``; never past the tail (api.py): entries above
        a hole may become readable later and must not be discarded."""
        if pos > self.known_tail:
            try:
                await self.check_tail()
            except LogletUnavailable:
                pass  # trim what we know
        pos = min(pos, self.known_tail)
        if pos > 0:
            await self._each(lambda j, s: s.prefix_trim(need(j, pos, self.n)))

    # ---------------------------------------------------------------------- diagnose

    async def diagnose(self, view: Membership, fresh_id: str) -> Diagnosis | None:
        """Rule 6: any failing stripe fails the whole; its successor replaces that stripe."""
        verdicts = await self._each_diagnosis(view, fresh_id)
        failing = {j: d for j, d in enumerate(verdicts) if d is not None}
        if not failing:
            return None
        reason = "; ".join(f"stripe {j}: {d.reason}" for j, d in sorted(failing.items()))
        # A stripe with no successor (a dead LogServer and no spare: nothing to gain) is cloned.
        replacements = {j: d.successor for j, d in failing.items() if d.successor is not None}
        if self._successor is None or not replacements:
            return Diagnosis(f"{self.loglet_id}: {reason}", None)
        return Diagnosis(f"{self.loglet_id}: {reason}", self._successor(replacements, fresh_id))

    async def _each_diagnosis(self, view: Membership, fresh_id: str) -> list[Diagnosis | None]:
        out: list[Diagnosis | None] = [None] * self.n

        async def one(j: int) -> None:
            out[j] = await self.stripes[j].diagnose(view, stripe_id(fresh_id, j))

        async with trio.open_nursery() as nursery:
            for j in range(self.n):
                nursery.start_soon(one, j)
        return out

    def statistics(self) -> dict[str, Any]:
        return dict(self.stats, filled=list(self._filled), known_tail=self.known_tail)


def stripe_id(loglet_id: str, j: int) -> str:
    """The id of stripe ``j`` of the striped loglet ``loglet_id``."""
    return f"{loglet_id}.{j}"


def _relabel(e: LogletError, where: str) -> LogletError:
    """The same named error, saying which stripe it came from; flags kept."""
    if isinstance(e, SealedError):
        return SealedError(f"{where}: {e}", may_have_landed=e.may_have_landed)
    if isinstance(e, LogletUnavailable):
        return LogletUnavailable(f"{where}: {e}", may_have_landed=e.may_have_landed)
    if isinstance(e, TrimmedError):
        return e
    return type(e)(f"{where}: {e}")
