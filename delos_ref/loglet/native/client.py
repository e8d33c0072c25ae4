"""The NativeLoglet client: the Loglet API as straight-line async code (PAPER_NOTES §5).

Everything a client does is a few rounds of requests to the sequencer or the LogServers, and
each method below reads like the paper's description of it:

* ``append`` sends the entries to the sequencer and waits for its acknowledgement, which
  comes once the entries are globally committed. Concurrent ``append`` calls from one client
  are pipelined: each is one request, many are in flight at once, and the sequencer answers
  them in position order. ``append_many`` sends several entries in one request (contiguous
  positions). With ``NativeOptions.coalesce_requests = k`` concurrent ``append`` calls are
  grouped instead: at most k requests in flight, and the appends made while they are join
  one batch that leaves as one ``append_many`` (client-side group commit). A full sequencer window answers ``busy``; the client backs off and retries
  until its deadline.
* ``seal`` sets the seal bit on a majority of LogServers.
* ``check_tail`` asks every LogServer for (local tail, seal bit) and waits for a majority:

  - **all sealed**: the tail is the greatest local tail among the replies; positions below it
    are *repaired* onto servers that lack them until a majority holds them all;
  - **some sealed**: someone is sealing; finish the seal (on a majority) and use the seal
    replies themselves as the probes, then proceed as "all sealed";
  - **none sealed**: take the greatest local tail and wait until ``known_tail`` reaches it
    (every position below is then globally committed); return it, unsealed.

  The BookKeeper lesson: a sealed tail is computed only from replies of servers whose seal
  bit was already durably set when they answered (a LogServer answers only after its seal bit
  is synced), so those local tails are frozen against the sequencer, and no append at or
  above the sealed tail can ever reach a majority.
* ``read_next`` reads below the tail this client has learned, from the co-located LogServer
  first, then the others (one copy suffices below the tail).
* ``prefix_trim`` sends the trim point to the LogServers and waits for a majority.

Failures: every operation has a deadline. Too few answers raise :class:`LogletUnavailable`,
with ``may_have_landed`` set for an append whose outcome is unknown; the VirtualLog reacts by
reconfiguring. A sealed loglet raises :class:`SealedError` on append.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import trio

from delos_ref.loglet.api import (
    MAX_APPEND_MANY,
    MAX_READ_ENTRIES,
    Loglet,
    LogletUnavailable,
    SealedError,
    Tail,
    TrimmedError,
    check_entry,
    check_range,
)
from delos_ref.loglet.native.messages import (
    BUSY,
    SEALED,
    SEALED_IN_FLIGHT,
    UNAVAILABLE,
    UNKNOWN_LOGLET,
    Activate,
    Append,
    KnownTailQuery,
    NativeLogletConfig,
    ReadRange,
    ReadReply,
    Repair,
    Seal,
    TailQuery,
    TailReply,
    Trim,
)
from delos_ref.rpc import CallTimeout, NotSent, RemoteError, RetryPolicy, RpcError
from delos_ref.runtime import Node

#: Bug switch: ``seal`` returns once a single LogServer set its seal bit.
BUG_SEAL_MINORITY = "seal_on_minority"
#: Bug switch: ``check_tail`` neither finishes a seal nor repairs.
BUG_CHECK_TAIL_LAZY = "check_tail_neither_seals_nor_repairs"
CLIENT_BUGS = {
    BUG_SEAL_MINORITY: "seal returns after fewer than a majority of LogServers set the seal bit",
    BUG_CHECK_TAIL_LAZY: "check_tail that neither seals the rest nor repairs",
}


@dataclass(frozen=True, slots=True)
class NativeOptions:
    """Deadlines and retries of one NativeLoglet client."""

    append_timeout_s: float = 5.0  # one append, busy retries included
    op_timeout_s: float = 5.0  # one seal, check_tail, read_next or prefix_trim
    call_timeout_s: float = 1.0  # one request inside an operation (reads, sequencer polls)
    retry: RetryPolicy = RetryPolicy(max_sends=16, first_s=0.02, max_s=0.25)
    poll_s: float = 0.002  # between known_tail polls in check_tail's "none sealed" case
    busy_backoff_s: float = 0.001  # first backoff after "busy"; doubles up to 50x
    # Client-side group commit for ``append``: 0 = every append is its own request. k > 0 =
    # at most k Append requests in flight; appends made meanwhile join one open batch that
    # leaves (one append_many) when a request slot frees up. A lone append still leaves at
    # once; under load many appends share one request (see ``NativeLoglet.append``).
    coalesce_requests: int = 0
    coalesce_max_entries: int = MAX_APPEND_MANY  # per batch; keep <= the sequencer's max_store_entries

    def __post_init__(self) -> None:
        assert self.append_timeout_s > 0 and self.op_timeout_s > 0 and self.call_timeout_s > 0, "every wait is bounded"
        assert self.coalesce_requests >= 0, "coalesce_requests: 0 (off) or the requests in flight"
        assert 1 <= self.coalesce_max_entries <= MAX_APPEND_MANY, f"coalesce_max_entries: 1..{MAX_APPEND_MANY}"


class _Batch:
    """Appends waiting to leave together as one ``append_many`` (client-side group commit)."""

    __slots__ = ("entries", "closed", "done", "first", "error")

    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.closed = False
        self.done = trio.Event()
        self.first = -1
        self.error: BaseException | None = None


class NativeLoglet(Loglet):
    """A client of one NativeLoglet instance, running on ``node``. Cheap: make one per user."""

    def __init__(self, node: Node, config: NativeLogletConfig, *, options: NativeOptions = NativeOptions(), bugs: frozenset[str] = frozenset()) -> None:
        assert set(bugs) <= set(CLIENT_BUGS), f"NativeLoglet: unknown bugs {sorted(set(bugs) - set(CLIENT_BUGS))}"
        self.node = node
        self.config = config
        self.options = options
        self.bugs = frozenset(bugs)
        self._endpoint = node.endpoint
        self._known_tail = 0  # every position below it is known committed (readable)
        self._batch: _Batch | None = None  # the open batch of coalesced appends
        self._slots = trio.Semaphore(options.coalesce_requests) if options.coalesce_requests else None
        self.stats = {"appends": 0, "coalesced_batches": 0, "busy": 0, "activations": 0, "seals": 0, "check_tails": 0, "repairs": 0, "reads": 0}

    # ------------------------------------------------------------------------ helpers

    @property
    def known_tail(self) -> int:
        return self._known_tail

    def learn_tail(self, tail: int) -> None:
        """Tell this client that every position below ``tail`` is committed (e.g. the stop of a
        sealed segment, from the chain), so reads up to it need no ``check_tail`` first."""
        self._known_tail = max(self._known_tail, tail)

    def _emit(self, event: str, **fields: Any) -> None:
        self.node.trace.emit(self.node.node_id, "loglet", event, loglet=self.config.loglet_id, logservers=list(self.config.logservers), **fields)

    async def _call(self, dst: str, msg: Any, deadline: float) -> Any:
        timeout = deadline - trio.current_time()
        if timeout <= 0:
            raise CallTimeout(dst, type(msg).__name__, 0.0, 0)
        return await self._endpoint.call(dst, msg, timeout_s=timeout, retry=self.options.retry)

    def _deadline(self, seconds: float) -> float:
        return trio.current_time() + seconds

    def _step_deadline(self, deadline: float) -> float:
        """One request of a multi-step operation: a dead server must not eat the whole deadline."""
        return min(deadline, self._deadline(self.options.call_timeout_s))

    async def _quorum(self, make: Callable[[str], Any], need: int, deadline: float, servers: Sequence[str] | None = None) -> dict[str, Any]:
        """Send ``make(server)`` to every LogServer; return once ``need`` of them answered."""
        servers = self.config.logservers if servers is None else tuple(servers)
        replies: dict[str, Any] = {}
        failed: list[str] = []
        enough = trio.Event()

        async def ask(server: str) -> None:
            try:
                replies[server] = await self._call(server, make(server), deadline)
            except RpcError:
                failed.append(server)
            if len(replies) >= need or len(failed) > len(servers) - need:
                enough.set()

        async with trio.open_nursery() as nursery:
            for server in servers:
                nursery.start_soon(ask, server)
            await enough.wait()
            nursery.cancel_scope.cancel()  # the others' answers are not needed
        if len(replies) < need:
            raise LogletUnavailable(f"{self.config.loglet_id}: {len(replies)} of {len(servers)} LogServers answered, {need} needed")
        return {s: replies[s] for s in servers if s in replies}  # config order: deterministic

    # ------------------------------------------------------------------------- append

    async def append(self, entry: bytes) -> int:
        if self._slots is None:
            return (await self.append_many((entry,)))[0]
        check_entry(entry)
        batch = self._batch
        if batch is not None:  # join the open batch; its leader sends it
            index = len(batch.entries)
            batch.entries.append(bytes(entry))
            if len(batch.entries) >= self.options.coalesce_max_entries:
                self._batch = None  # full: later appends open a new one
            await batch.done.wait()
        else:
            batch = _Batch()
            index = 0
            batch.entries.append(bytes(entry))
            if self.options.coalesce_max_entries > 1:
                self._batch = batch  # open: later appends join until it leaves
            # The leader sends the batch for everyone in it, so it is not cancellable half-way:
            # it is bounded by the append deadline (the slot wait plus append_many's own).
            batch.error = LogletUnavailable(f"append to {self.config.loglet_id}: the batch was not sent", may_have_landed=True)
            try:
                with trio.CancelScope(shield=True), trio.move_on_after(self.options.append_timeout_s) as waited:
                    async with self._slots:
                        if self._batch is batch:
                            self._batch = None  # closed: it leaves now
                        waited.deadline = float("inf")  # append_many has its own deadline
                        try:
                            batch.first = (await self.append_many(batch.entries))[0]
                            batch.error = None
                            self.stats["coalesced_batches"] += 1
                        except Exception as e:  # every member gets the request's outcome
                            batch.error = e
                if waited.cancelled_caught:
                    batch.error = LogletUnavailable(f"append to {self.config.loglet_id}: no request slot within {self.options.append_timeout_s}s", may_have_landed=False)
            finally:
                if self._batch is batch:
                    self._batch = None
                batch.done.set()  # members never wait for a leader that is gone
            await trio.lowlevel.checkpoint_if_cancelled()
        if batch.error is not None:
            raise copy.copy(batch.error)
        return batch.first + index

    async def append_many(self, entries: Sequence[bytes]) -> list[int]:
        """One request carrying several entries; they get consecutive positions."""
        if not 0 < len(entries) <= MAX_APPEND_MANY:
            raise ValueError(f"append_many takes 1..{MAX_APPEND_MANY} entries, got {len(entries)}")
        for e in entries:
            check_entry(e)
        deadline = self._deadline(self.options.append_timeout_s)
        msg = Append(self.config.loglet_id, tuple(bytes(e) for e in entries), self._known_tail)
        backoff = self.options.busy_backoff_s
        while True:
            try:
                reply = await self._call(self.config.sequencer, msg, deadline)
            except RemoteError as e:
                if e.code == UNKNOWN_LOGLET:
                    await self._activate(deadline)
                elif e.code == BUSY and trio.current_time() + backoff < deadline:
                    self.stats["busy"] += 1
                    await trio.sleep(backoff)  # backpressure: the sequencer's window is full
                    backoff = min(backoff * 2, self.options.busy_backoff_s * 50)
                else:
                    raise self._append_error(e) from None
                continue
            except NotSent as e:
                raise LogletUnavailable(f"append to {self.config.loglet_id}: {e}", may_have_landed=False) from None
            except CallTimeout as e:
                raise LogletUnavailable(f"append to {self.config.loglet_id}: {e}", may_have_landed=True) from None
            self.stats["appends"] += 1
            self.learn_tail(reply.known_tail)
            return list(range(reply.first, reply.first + len(entries)))

    def _append_error(self, e: RemoteError) -> Exception:
        if e.code == SEALED:
            return SealedError(f"{self.config.loglet_id} is sealed", may_have_landed=False)
        if e.code == SEALED_IN_FLIGHT:
            return SealedError(f"{self.config.loglet_id} was sealed while the append was in flight", may_have_landed=True)
        if e.code == UNAVAILABLE:
            # The sequencer restarted. This copy of the request was refused, but a copy sent
            # before the crash may have been sequenced and stored by the previous incarnation.
            return LogletUnavailable(f"append to {self.config.loglet_id}: {e}", may_have_landed=True)
        # busy past the deadline, too many loglets, bad request: nothing was assigned.
        return LogletUnavailable(f"append to {self.config.loglet_id}: {e}", may_have_landed=False)

    async def _activate(self, deadline: float) -> None:
        """Ask the sequencer to start serving this loglet (idempotent)."""
        self.stats["activations"] += 1
        try:
            status = await self._call(self.config.sequencer, Activate(self.config), deadline)
        except RemoteError as e:
            raise LogletUnavailable(f"activating {self.config.loglet_id}: {e}", may_have_landed=False) from None
        except (NotSent, CallTimeout) as e:
            raise LogletUnavailable(f"activating {self.config.loglet_id}: {e}", may_have_landed=False) from None
        self.learn_tail(status.known_tail)

    # --------------------------------------------------------------------------- seal

    async def seal(self) -> None:
        """Set the seal bit on a majority of LogServers (§5 seal)."""
        deadline = self._deadline(self.options.op_timeout_s)
        replies = await self._seal_quorum(deadline)
        self.stats["seals"] += 1
        self._emit("SealReturned", tails={s: r.local_tail for s, r in replies.items()})

    async def _seal_quorum(self, deadline: float) -> dict[str, TailReply]:
        if BUG_SEAL_MINORITY in self.bugs:
            # The bug: seal fewer than a majority (here, one server), and call it sealed.
            return await self._quorum(lambda s: Seal(self.config.loglet_id, self._known_tail), 1, deadline, self.config.logservers[:1])
        replies = await self._quorum(lambda s: Seal(self.config.loglet_id, self._known_tail), self.config.majority, deadline)
        assert all(r.sealed for r in replies.values()), "seal: a Seal reply reports the bit set"
        return replies

    # --------------------------------------------------------------------- check_tail

    async def check_tail(self) -> Tail:
        """The three cases of §5; see the module docstring."""
        deadline = self._deadline(self.options.op_timeout_s)
        self.stats["check_tails"] += 1
        with trio.move_on_at(deadline):
            while True:
                probes = await self._quorum(lambda s: TailQuery(self.config.loglet_id, self._known_tail), self.config.majority, deadline)
                result = await self._check_tail_round(probes, deadline)
                if result is not None:
                    self.learn_tail(result.tail)
                    return result
        raise LogletUnavailable(f"check_tail of {self.config.loglet_id}: no answer within {self.options.op_timeout_s}s")

    async def _check_tail_round(self, probes: dict[str, TailReply], deadline: float) -> Tail | None:
        """One round on a majority of probes; None means "probe again"."""
        sealed = [s for s, r in probes.items() if r.sealed]
        if not sealed:
            target = max(r.local_tail for r in probes.values())
            if not await self._await_known_tail(target, probes, deadline):
                return None  # the sequencer saw a seal or did not answer: look again
            self._emit("CheckTail", case="none_sealed", tail=target, sealed=False)
            return Tail(target, False)
        case = "all_sealed" if len(sealed) == len(probes) else "some_sealed"
        if BUG_CHECK_TAIL_LAZY in self.bugs:
            tail = max(r.local_tail for r in probes.values())
            self._emit("CheckTail", case=case, tail=tail, sealed=True, probes={s: r.local_tail for s, r in probes.items()})
            return Tail(tail, True)
        if case == "some_sealed":
            # Someone is sealing: finish it. The seal replies are sealing probes (BookKeeper).
            probes = await self._seal_quorum(deadline)
        tail = max(r.local_tail for r in probes.values())
        await self._repair(tail, probes, deadline)
        self._emit("CheckTail", case=case, tail=tail, sealed=True, probes={s: r.local_tail for s, r in probes.items()})
        return Tail(tail, True)

    async def _await_known_tail(self, target: int, probes: dict[str, TailReply], deadline: float) -> bool:
        """Wait until known_tail >= target: True; False if the loglet got sealed meanwhile."""
        self.learn_tail(max(r.known_tail for r in probes.values()))
        while self._known_tail < target:
            try:
                status = await self._call(self.config.sequencer, KnownTailQuery(self.config.loglet_id), self._step_deadline(deadline))
            except RpcError:
                await trio.sleep(self.options.poll_s)
                return False  # no sequencer: maybe someone sealed; probe the servers again
            self.learn_tail(status.known_tail)
            if status.sealed and self._known_tail < target:
                return False  # the uncommitted positions will never commit: go the sealed way
            if self._known_tail < target:
                await trio.sleep(self.options.poll_s)
        return True

    # ------------------------------------------------------------------------- repair

    async def _repair(self, tail: int, probes: dict[str, TailReply], deadline: float) -> None:
        """Copy positions below ``tail`` onto servers lacking them, until a majority holds all."""
        have = {s: r.local_tail for s, r in probes.items()}
        holders = [s for s in self.config.logservers if have.get(s, -1) >= tail]
        assert holders, "repair: the server with the greatest local tail holds the tail"
        # Servers that answered first (we know what they lack), then the silent ones.
        lacking = [s for s in probes if s not in holders] + [s for s in self.config.logservers if s not in probes]
        for target in lacking:
            if len(holders) >= self.config.majority:
                break
            if await self._repair_one(target, have.get(target, 0), tail, holders, deadline):
                holders.append(target)
        if len(holders) < self.config.majority:
            raise LogletUnavailable(f"repair of {self.config.loglet_id} reached {len(holders)} LogServers, {self.config.majority} needed")

    async def _repair_one(self, target: str, start: int, tail: int, sources: list[str], deadline: float) -> bool:
        pos = start
        while pos < tail:
            chunk = await self._read_any(sources, pos, tail, deadline)
            if chunk is None:
                return False  # no source answered
            msg = Repair(self.config.loglet_id, chunk.first, chunk.entries, chunk.trim_point, self._known_tail)
            try:
                reply = await self._call(target, msg, self._step_deadline(deadline))
            except RpcError:
                return False  # the target is unreachable: try another
            if reply.local_tail <= pos:
                return False  # no progress: do not spin
            self.stats["repairs"] += 1
            self._emit("Repair", target=target, lo=pos, hi=min(reply.local_tail, tail), tail=tail)
            pos = reply.local_tail
        return True

    async def _read_any(self, sources: list[str], lo: int, hi: int, deadline: float) -> ReadReply | None:
        for source in sources:
            try:
                reply = await self._call(source, ReadRange(self.config.loglet_id, lo, hi, MAX_READ_ENTRIES, self._known_tail), self._step_deadline(deadline))
            except RpcError:
                continue
            if reply.entries or reply.first > lo:
                return reply
        return None

    # --------------------------------------------------------------------------- read

    async def read_next(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """Entries from ``lo`` below ``hi`` and below the known tail (refreshed if needed)."""
        check_range(lo, hi)
        hi = min(hi, lo + MAX_READ_ENTRIES)
        if hi > self._known_tail:
            try:
                await self.check_tail()  # learn how far it is safe to read
            except LogletUnavailable:
                pass  # read what we know is committed
        hi = min(hi, self._known_tail)
        if lo >= hi:
            return []
        deadline = self._deadline(self.options.op_timeout_s)
        out: list[bytes] = []
        for server in self._read_order():
            out += await self._read_from(server, lo + len(out), hi, deadline)
            if lo + len(out) >= hi:
                break
        if not out:
            raise LogletUnavailable(f"read_next({lo}, {hi}) of {self.config.loglet_id}: no LogServer served it")
        self.stats["reads"] += 1
        return [(lo + i, e) for i, e in enumerate(out)]

    def _read_order(self) -> list[str]:
        """The co-located LogServer first (no network hop), then the others in config order."""
        here = self.node.node_id
        return sorted(self.config.logservers, key=lambda s: s != here)

    async def _read_from(self, server: str, lo: int, hi: int, deadline: float) -> list[bytes]:
        out: list[bytes] = []
        while lo + len(out) < hi:
            pos = lo + len(out)
            try:
                reply = await self._call(server, ReadRange(self.config.loglet_id, pos, hi, hi - pos, self._known_tail), self._step_deadline(deadline))
            except RpcError:
                break
            if reply.first > pos:
                raise TrimmedError(pos, reply.trim_point)
            if not reply.entries:
                break  # this server lags: another may have more
            out += reply.entries
        return out

    # --------------------------------------------------------------------------- trim

    async def prefix_trim(self, pos: int) -> None:
        """Trim a majority of LogServers; never past the tail (api.py)."""
        if pos > self._known_tail:
            try:
                await self.check_tail()
            except LogletUnavailable:
                pass  # trim what we know is committed
        pos = min(pos, self._known_tail)
        if pos <= 0:
            return
        deadline = self._deadline(self.options.op_timeout_s)
        await self._quorum(lambda s: Trim(self.config.loglet_id, pos, self._known_tail), self.config.majority, deadline)

    def statistics(self) -> dict[str, int]:
        return dict(self.stats, known_tail=self._known_tail)
