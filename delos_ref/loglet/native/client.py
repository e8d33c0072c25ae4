"""The NativeLoglet client: the Loglet API as straight-line async code (docs/design.md §5).

Everything a client does is a few rounds of requests to the sequencer or the LogServers, and
each method below reads like the paper's description of it:

* ``append`` sends the entries to the sequencer and waits for its acknowledgement, which
  comes once the entries are globally committed. Concurrent ``append`` calls from one client
  are pipelined: each is one request, many are in flight at once, and the sequencer answers
  them in position order. ``append_many`` sends several entries in one request (contiguous
  positions). With ``NativeOptions.coalesce_requests = k`` concurrent ``append`` calls are
  grouped instead: at most k requests in flight, and the appends made while they are join
  one batch that leaves as one ``append_many`` (client-side group commit); across a slow
  network k grows with the measured round trip (:meth:`NativeLoglet._stretch_slots`). A full
  sequencer window answers ``busy``; the client backs off and retries until its deadline.
* ``seal`` sets the seal bit on a majority of LogServers.
* ``check_tail`` asks every LogServer for (local tail, seal bit) and waits for a majority.
  (With ``NativeOptions.probe_majority_first``, as on a node, it asks a majority first -- the
  co-located LogServer and the others taking turns -- and the rest only if one of those fails
  or has not answered within ``read_hedge_s``: a *hedged* quorum. Any majority of answers
  will do, and with every server up the others' answers were work thrown away.) Then:

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
  first, then the others (one copy suffices below the tail). Reads are *hedged*: a server
  that has not answered within ``read_hedge_s`` does not hold the read up, the next one is
  asked too and the first useful answer wins; a server that failed a read is asked last for
  ``read_remember_s``. So a paused or dead LogServer costs a read ``read_hedge_s``, once.
* ``prefix_trim`` sends the trim point to the LogServers and waits for a majority.

Failures: every operation has a deadline. Too few answers raise :class:`LogletUnavailable`,
with ``may_have_landed`` set for an append whose outcome is unknown; the VirtualLog reacts by
reconfiguring. A sealed loglet raises :class:`SealedError` on append.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import trio

from delos_ref.loglet.api import (
    MAX_APPEND_MANY,
    MAX_READ_ENTRIES,
    Diagnosis,
    Loglet,
    LogletUnavailable,
    Membership,
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
from delos_ref.loglet.native.sequencer import stores_in_flight
from delos_ref.rpc import CallTimeout, NotSent, RemoteError, RetryPolicy, RpcError
from delos_ref.rtt import overall
from delos_ref.runtime import Node

#: Bug switch: ``seal`` returns once a single LogServer set its seal bit.
BUG_SEAL_MINORITY = "seal_on_minority"
#: Bug switch: ``check_tail`` neither finishes a seal nor repairs.
BUG_CHECK_TAIL_LAZY = "check_tail_neither_seals_nor_repairs"
CLIENT_BUGS = {
    BUG_SEAL_MINORITY: "seal returns after fewer than a majority of LogServers set the seal bit",
    BUG_CHECK_TAIL_LAZY: "check_tail that neither seals the rest nor repairs",
}
#: Bug switch (the seed's requirement 4): ``check_tail`` computes the sealed tail correctly
#: but reports ``sealed=False``, so the VirtualLog cannot tell a sealed loglet from a live one.
BUG_HIDE_SEAL = "check_tail_hides_seal"
#: Bug switch (requirement 5): ``diagnose`` never reports a failure, so nobody reconfigures
#: away from a dead sequencer.
BUG_NO_FAILURE_REPORTS = "loglet_never_reports_failures"
#: Bugs of the loglet's contract with the VirtualLog (caught by the ``log`` workload).
CONTRACT_BUGS = {
    BUG_HIDE_SEAL: "check_tail does not report the seal bit (always sealed=False)",
    BUG_NO_FAILURE_REPORTS: "the loglet never reports failures (diagnose always says healthy)",
}


def native_successor(
    config: NativeLogletConfig, view: Membership, fresh_id: str, *, replace_sequencer: bool, same_members_ok: bool = False
) -> NativeLogletConfig | None:
    """The NativeLoglet that should succeed ``config``, or None if none would help.

    * The sequencer: the old one, unless ``replace_sequencer``; then the first live node after
      it in ``view.sequencers`` (cluster order, wrapping), so racing detectors tend to pick
      the same one.
    * The LogServers: as many as before. Live ones first (the old ones, then spares from
      ``view.candidates``), then, if too few are alive, the old dead ones again: they still
      count toward the width and catch up when they return, so the loglet keeps its failure
      threshold instead of shrinking to a set that one more failure would stop.

    None when the successor would have the same members (a dead LogServer with no live spare:
    nothing to gain) unless ``same_members_ok`` (a restarted sequencer needs a fresh instance
    on the same nodes), or when fewer than a majority of the old LogServers are alive:
    the old loglet cannot be sealed, so no chain can move on until they come back.
    """
    if sum(1 for s in config.logservers if view.is_alive(s)) < config.majority:
        return None
    sequencer = config.sequencer
    if replace_sequencer:
        order = list(view.sequencers)
        start = order.index(sequencer) + 1 if sequencer in order else 0
        choices = [n for n in order[start:] + order[:start] if view.is_alive(n) and n != config.sequencer]
        if not choices:
            return None
        sequencer = choices[0]
    width = len(config.logservers)
    live_old = [s for s in config.logservers if view.is_alive(s)]
    spares = [n for n in view.candidates if view.is_stable(n) and n not in config.logservers]
    dead_old = [s for s in config.logservers if not view.is_alive(s)]
    chosen = (live_old + spares + dead_old)[:width]
    logservers = tuple(n for n in config.logservers if n in chosen) + tuple(n for n in chosen if n not in config.logservers)
    if sequencer == config.sequencer and set(logservers) == set(config.logservers) and not same_members_ok:
        return None
    return NativeLogletConfig(fresh_id, sequencer, logservers)


@dataclass(frozen=True, slots=True)
class NativeOptions:
    """Deadlines and retries of one NativeLoglet client."""

    append_timeout_s: float = 5.0  # one append, busy retries included
    op_timeout_s: float = 5.0  # one seal, check_tail, read_next or prefix_trim
    call_timeout_s: float = 1.0  # one request inside an operation (reads, sequencer polls)
    # Lossy networks (UDP, the simulator): resend after 20 ms, backing off to 250 ms. Over TCP
    # not before 500 ms: an append unanswered for 20 ms there is one still being worked on
    # (under load, resends that early made ~15k duplicate requests in a 2 s bench run).
    retry: RetryPolicy = RetryPolicy(max_sends=16, first_s=0.02, max_s=0.25, reliable_first_s=0.5)
    poll_s: float = 0.002  # between known_tail polls in check_tail's "none sealed" case
    busy_backoff_s: float = 0.001  # first backoff after "busy"; doubles up to 50x
    # Client-side group commit for ``append``: 0 = every append is its own request. k > 0 =
    # at most k Append requests in flight; appends made meanwhile join one open batch that
    # leaves (one append_many) when a request slot frees up. A lone append still leaves at
    # once; under load many appends share one request (see ``NativeLoglet.append``).
    coalesce_requests: int = 0
    coalesce_max_entries: int = MAX_APPEND_MANY  # per batch; keep <= the sequencer's max_store_entries
    read_first: str = ""  # the LogServer read_next tries first ("": the co-located one)
    read_hedge_s: float = 0.1  # a read (or check_tail's first majority) unanswered this long: ask the next LogServer(s) too
    # check_tail's question to the sequencer ("is everything below this committed?"): a
    # sequencer that does not answer this fast sends check_tail back to the LogServers, where
    # a seal shows as soon as it is set (waiting call_timeout_s on a dead sequencer held every
    # reader of its loglet for that long after the failover).
    known_tail_timeout_s: float = 0.25
    read_remember_s: float = 5.0  # a LogServer that failed a read (or lagged behind a hedge) is asked last this long
    # check_tail's probes go to a majority first, the others only if one of those fails or
    # lags (``_quorum``'s hedged mode). On nodes (process.py): at 64 clients it cut the CPU per
    # linearizable get by a sixth (``bench kv``). Off by default, so the simulator's runs keep
    # their schedules: the docs quote pinned seeds (walkthroughs, course, charts, minimized
    # counterexamples); ``tests/test_virtuallog_sim.py`` sweeps every workload with it on.
    probe_majority_first: bool = False

    def __post_init__(self) -> None:
        assert self.append_timeout_s > 0 and self.op_timeout_s > 0 and self.call_timeout_s > 0, "every wait is bounded"
        assert self.read_hedge_s > 0 and self.read_remember_s >= 0 and self.known_tail_timeout_s > 0, "read hedging: positive bounds"
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
        known_bugs = set(CLIENT_BUGS) | set(CONTRACT_BUGS)
        assert set(bugs) <= known_bugs, f"NativeLoglet: unknown bugs {sorted(set(bugs) - known_bugs)}"
        self.node = node
        self.config = config
        self.options = options
        self.bugs = frozenset(bugs)
        self._endpoint = node.endpoint
        self._known_tail = 0  # every position below it is readable from this loglet
        # ... and committed for good: learned from the sequencer (append replies, its known
        # tail) or from a stop the chain agreed on, never from a sealed check_tail (below).
        self._committed = 0
        self._last_status: tuple[int, int] | None = None  # (known_tail, next_pos) at the last diagnose
        self._batch: _Batch | None = None  # the open batch of coalesced appends
        self._slots = trio.Semaphore(options.coalesce_requests) if options.coalesce_requests else None
        self._slot_count = options.coalesce_requests  # stretched on a slow network (_stretch_slots)
        self._ask_last_until: dict[str, float] = {}  # LogServer -> until when reads and probes ask it last
        self._probe_turn = 0  # whose turn among the others it is in a hedged quorum (_probe_order)
        self.stats = {"appends": 0, "coalesced_batches": 0, "busy": 0, "activations": 0, "seals": 0, "check_tails": 0, "repairs": 0, "reads": 0, "hedges": 0}

    # ------------------------------------------------------------------------ helpers

    @property
    def known_tail(self) -> int:
        return self._known_tail

    def known_readable(self) -> int:
        return self._committed  # appends are acknowledged once committed, and commit in order

    def learn_tail(self, tail: int) -> None:
        """Tell this client that every position below ``tail`` is committed (e.g. the stop of a
        sealed segment, from the chain), so reads up to it need no ``check_tail`` first."""
        self._known_tail = max(self._known_tail, tail)
        self._committed = max(self._committed, tail)

    def _emit(self, event: str, **fields: Any) -> None:
        self.node.trace.emit(self.node.node_id, "loglet", event, loglet=self.config.loglet_id, logservers=list(self.config.logservers), **fields)

    async def _call(self, dst: str, msg: Any, deadline: float) -> Any:
        timeout = deadline - trio.current_time()
        if timeout <= 0:
            raise CallTimeout(dst, type(msg).__name__, 0.0, 0)
        return await self._endpoint.call(dst, msg, timeout_s=timeout, retry=self.options.retry)

    def _deadline(self, seconds: float) -> float:
        return trio.current_time() + seconds

    def _overall(self, seconds: float) -> float:
        """A whole operation's bound, ``seconds`` stretched to the measured round trips
        (``delos_ref/rtt.py``; the simulator keeps the constant)."""
        return overall(self._endpoint.rtt, seconds)

    def _stretch_slots(self) -> None:
        """Across a slow network, more coalesced requests in flight: ``coalesce_requests``, or
        one per ``PIPELINE_STEP_S`` of round trip to the sequencer (its ``min_rtt``) if that is more
        (the sequencer's rule for its Stores, :func:`~delos_ref.loglet.native.sequencer.stores_in_flight`).
        With two requests on a 10 ms round trip, an append waited about a quarter of a round
        trip for a slot. Stretched, never shrunk, like every constant (``delos_ref/rtt.py``);
        without an estimator (the simulator) it stays ``coalesce_requests``."""
        rtt = self._endpoint.rtt
        if self._slots is None or rtt is None:
            return
        want = stores_in_flight(rtt.min_rtt(self.config.sequencer), self.options.coalesce_requests)
        while self._slot_count < want:
            self._slots.release()
            self._slot_count += 1

    def _step_deadline(self, deadline: float) -> float:
        """One request of a multi-step operation: a dead server must not eat the whole deadline."""
        return min(deadline, self._deadline(self.options.call_timeout_s))

    async def _quorum(self, make: Callable[[str], Any], need: int, deadline: float, servers: Sequence[str] | None = None, *, hedged: bool = False) -> dict[str, Any]:
        """Send ``make(server)`` to every LogServer; return once ``need`` of them answered.

        ``hedged``: ask only ``need`` of them first (:meth:`_probe_order`), and the others as
        well once one of those fails or they have not all answered within the hedge time
        (:meth:`_probe_hedge_s`); the ones that had not answered are then asked last for
        ``read_remember_s``. Any ``need`` answers are what the protocol asks for, so this is
        the same quorum with fewer messages: with every server up, the one left out costs
        nothing (before, its request, its work and its reply, all thrown away)."""
        servers = self.config.logservers if servers is None else tuple(servers)
        replies: dict[str, Any] = {}
        failed: list[str] = []
        enough = trio.Event()
        settled = trio.Event()  # enough answers, or a failure: stop waiting for the first ones

        async def ask(server: str) -> None:
            try:
                replies[server] = await self._call(server, make(server), deadline)
            except RpcError:
                failed.append(server)
                settled.set()
            else:
                self._ask_last_until.pop(server, None)  # it answers again
            if len(replies) >= need or len(failed) > len(servers) - need:
                enough.set()
                settled.set()

        first, rest = self._probe_order(servers, need) if hedged else (list(servers), [])
        async with trio.open_nursery() as nursery:
            for server in first:
                nursery.start_soon(ask, server)
            if rest:
                with trio.move_on_after(self._probe_hedge_s()):
                    await settled.wait()
                if not enough.is_set():
                    self._hedge(first, replies, rest, ask, nursery)
            await enough.wait()
            nursery.cancel_scope.cancel()  # the others' answers are not needed
        if len(replies) < need:
            raise LogletUnavailable(f"{self.config.loglet_id}: {len(replies)} of {len(servers)} LogServers answered, {need} needed")
        return {s: replies[s] for s in servers if s in replies}  # config order: deterministic

    def _probe_order(self, servers: Sequence[str], need: int) -> tuple[list[str], list[str]]:
        """A hedged quorum's ``need`` servers to ask first, and the rest: the co-located one
        first (its answer is in-process, nearly free), those that failed or lagged lately
        last, the others taking turns (so every LogServer gets its share of the questions)."""
        here = self.node.node_id
        now = trio.current_time()
        self._probe_turn += 1
        n = len(servers)

        def rank(i: int) -> tuple[bool, bool, int]:
            return (self._ask_last_until.get(servers[i], 0.0) > now, servers[i] != here, (i - self._probe_turn) % n)

        ranked = [servers[i] for i in sorted(range(n), key=rank)]
        return ranked[:need], ranked[need:]

    def _probe_hedge_s(self) -> float:
        """How long a hedged quorum waits for its first servers: ``read_hedge_s``, or one
        round-trip timeout on a network that slow (``delos_ref/rtt.py``)."""
        return overall(self._endpoint.rtt, self.options.read_hedge_s, round_trips=1)

    def _hedge(self, first: list[str], replies: dict[str, Any], rest: list[str], ask: Callable, nursery: trio.Nursery) -> None:
        """The first servers did not all answer in time: ask the rest too, and ask the
        silent ones last for a while (a dead or paused LogServer costs one hedge, not one
        per call)."""
        self.stats["hedges"] += 1
        until = trio.current_time() + self.options.read_remember_s
        for server in first:
            if server not in replies:
                self._ask_last_until[server] = until
        for server in rest:
            nursery.start_soon(ask, server)

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
            # The leader sends the batch for everyone in it. It can be cancelled (the
            # VirtualLog's watcher does so when the chain moves past this loglet, and then
            # cancels every member too): the members then get "may have landed", as a request
            # may have left. Shielding it instead held every write of a replica for the whole
            # append deadline (5 s) after its sequencer died (issue 17 item 3).
            batch.error = LogletUnavailable(f"append to {self.config.loglet_id}: the batch was not sent or its leader gave up", may_have_landed=True)
            try:
                self._stretch_slots()
                with trio.move_on_after(self._overall(self.options.append_timeout_s)) as waited:
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
                    batch.error = LogletUnavailable(f"append to {self.config.loglet_id}: no request slot within {self._overall(self.options.append_timeout_s):g}s", may_have_landed=False)
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
        deadline = self._deadline(self._overall(self.options.append_timeout_s))
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
        deadline = self._deadline(self._overall(self.options.op_timeout_s))
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
        deadline = self._deadline(self._overall(self.options.op_timeout_s))
        self.stats["check_tails"] += 1
        with trio.move_on_at(deadline):
            while True:
                probes = await self._quorum(lambda s: TailQuery(self.config.loglet_id, self._known_tail), self.config.majority, deadline, hedged=self.options.probe_majority_first)
                result = await self._check_tail_round(probes, deadline)
                if result is not None:
                    # Readable from this loglet, but not learn_tail: a *sealed* tail is not
                    # final until a chain records it as the segment's stop (a server outside
                    # the sealing majority may hold a zombie entry that a later check_tail
                    # counts), so it must not raise known_readable. An unsealed one is already
                    # below the sequencer's known tail, learned in _await_known_tail.
                    self._known_tail = max(self._known_tail, result.tail)
                    return result
        raise LogletUnavailable(f"check_tail of {self.config.loglet_id}: no answer within {self._overall(self.options.op_timeout_s):g}s")

    async def _check_tail_round(self, probes: dict[str, TailReply], deadline: float) -> Tail | None:
        """One round on a majority of probes; None means "probe again"."""
        sealed = [s for s, r in probes.items() if r.sealed]
        if not sealed:
            target = max(r.local_tail for r in probes.values())
            if not await self._await_known_tail(target, probes, deadline):
                return None  # the sequencer saw a seal or did not answer: look again
            self._emit("CheckTail", case="none_sealed", tail=target, sealed=False)
            return Tail(target, False)
        # lab: check_tail begin
        case = "all_sealed" if len(sealed) == len(probes) else "some_sealed"
        reported = BUG_HIDE_SEAL not in self.bugs  # the bug: the seal bit goes unreported
        if BUG_CHECK_TAIL_LAZY in self.bugs:
            tail = max(r.local_tail for r in probes.values())
            self._emit("CheckTail", case=case, tail=tail, sealed=reported, probes={s: r.local_tail for s, r in probes.items()})
            return Tail(tail, reported)
        if case == "some_sealed":
            # Someone is sealing: finish it. The seal replies are sealing probes (BookKeeper).
            probes = await self._seal_quorum(deadline)
        tail = max(r.local_tail for r in probes.values())
        await self._repair(tail, probes, deadline)
        # The event logs what check_tail returns, the seal bit included.
        self._emit("CheckTail", case=case, tail=tail, sealed=reported, probes={s: r.local_tail for s, r in probes.items()})
        return Tail(tail, reported)
        # lab: check_tail end

    async def _await_known_tail(self, target: int, probes: dict[str, TailReply], deadline: float) -> bool:
        """Wait until known_tail >= target: True; False if the loglet got sealed meanwhile."""
        self.learn_tail(max(r.known_tail for r in probes.values()))
        while self._known_tail < target:
            try:
                status = await self._call(self.config.sequencer, KnownTailQuery(self.config.loglet_id), min(deadline, self._deadline(self.options.known_tail_timeout_s)))
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
        # lab: check_tail begin
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
        # lab: check_tail end

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
        deadline = self._deadline(self._overall(self.options.op_timeout_s))
        out: list[bytes] = []
        while lo + len(out) < hi:
            pos = lo + len(out)
            reply = await self._read_hedged(pos, hi, deadline)
            if reply is None:
                break  # no server answered, or none holds ``pos`` yet
            if reply.first > pos:
                raise TrimmedError(pos, reply.trim_point)
            out += reply.entries
        if not out:
            raise LogletUnavailable(f"read_next({lo}, {hi}) of {self.config.loglet_id}: no LogServer served it")
        self.stats["reads"] += 1
        return [(lo + i, e) for i, e in enumerate(out)]

    def _read_order(self) -> list[str]:
        """The co-located LogServer (or ``options.read_first``) first, then the others in config
        order; those that failed a read within ``read_remember_s`` last."""
        here = self.options.read_first or self.node.node_id
        now = trio.current_time()
        return sorted(self.config.logservers, key=lambda s: (self._ask_last_until.get(s, 0.0) > now, s != here))

    async def _read_hedged(self, pos: int, hi: int, deadline: float) -> ReadReply | None:
        """Entries from ``pos`` (below ``hi``) from the first LogServer in :meth:`_read_order`
        that has them. Each ``read_hedge_s`` without a useful answer, or at once after a
        failure or an empty answer (that server lags), the next server is asked as well;
        the first useful answer wins and the others are cancelled. None if nobody had any."""
        order = self._read_order()
        useful: list[ReadReply] = []
        answered = 0
        changed = trio.Event()

        async def ask(server: str) -> None:
            nonlocal answered
            try:
                reply = await self._call(server, ReadRange(self.config.loglet_id, pos, hi, hi - pos, self._known_tail), self._step_deadline(deadline))
            except RpcError:
                self._ask_last_until[server] = trio.current_time() + self.options.read_remember_s
                reply = None
            else:
                self._ask_last_until.pop(server, None)
            answered += 1
            if reply is not None and (reply.entries or reply.first > pos):
                useful.append(reply)
            changed.set()

        async with trio.open_nursery() as nursery:
            for i, server in enumerate(order):
                if i > 0:
                    self.stats["hedges"] += 1
                nursery.start_soon(ask, server)
                with trio.move_on_after(self.options.read_hedge_s):
                    await changed.wait()
                changed = trio.Event() if not useful else changed
                if useful:
                    break
            while not useful and answered < len(order):
                await changed.wait()
                changed = trio.Event()
            nursery.cancel_scope.cancel()  # the first useful answer is enough
        return useful[0] if useful else None

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
        deadline = self._deadline(self._overall(self.options.op_timeout_s))
        await self._quorum(lambda s: Trim(self.config.loglet_id, pos, self._known_tail), self.config.majority, deadline)

    # ----------------------------------------------------------------------- diagnose

    async def diagnose(self, view: Membership, fresh_id: str) -> Diagnosis | None:
        """Failure detection (requirement 5): is this loglet failing, and what should succeed it?

        In order, as the NativeLoglet depends on its parts:

        1. the sequencer: dead (no heartbeats), or restarted (it answers ``unavailable`` for
           this loglet: a sequencer serves a loglet in one incarnation only) -> no append can
           ever succeed here: a successor with another sequencer (or the restarted one);
        2. a LogServer is dead -> appends still work on the majority, but one more failure
           stops them: a successor with a live spare LogServer in its place, if there is one
           (see :func:`native_successor`; without a spare the dead one catches up on return).

        ``view`` is damped by the detector (see ``FailureDetector``): a node that comes back
        is a candidate again only once it has answered steadily for a while.
        """
        if BUG_NO_FAILURE_REPORTS in self.bugs:
            return None  # the bug: a loglet that never says it is failing
        cfg = self.config
        if not view.is_alive(cfg.sequencer):
            reason = f"sequencer {cfg.sequencer} of {cfg.loglet_id} does not answer heartbeats"
            return Diagnosis(reason, native_successor(cfg, view, fresh_id, replace_sequencer=True))
        status = None
        try:
            status = await self._call(cfg.sequencer, KnownTailQuery(cfg.loglet_id), self._deadline(self.options.call_timeout_s))
        except RemoteError as e:
            if e.code == UNAVAILABLE:
                reason = f"sequencer {cfg.sequencer} restarted and will not serve {cfg.loglet_id} again"
                return Diagnosis(reason, native_successor(cfg, view, fresh_id, replace_sequencer=False, same_members_ok=True))
            # unknown_loglet: not activated yet (the first append activates it): healthy.
        except (NotSent, CallTimeout):
            # One slow answer is no verdict: heartbeats decide whether the node is dead.
            return Diagnosis(f"sequencer {cfg.sequencer} does not answer for {cfg.loglet_id}", None)
        if status is not None:
            stalled = await self._seal_stalled(status)
            if stalled is not None:
                return Diagnosis(stalled, native_successor(cfg, view, fresh_id, replace_sequencer=False, same_members_ok=True))
        down = [s for s in cfg.logservers if not view.is_alive(s)]
        if down:
            reason = f"LogServer(s) {', '.join(down)} of {cfg.loglet_id} do not answer heartbeats"
            return Diagnosis(reason, native_successor(cfg, view, fresh_id, replace_sequencer=False))
        return None

    async def _seal_stalled(self, status: Any) -> str | None:
        """Why this loglet, still the chain's active segment, is sealed or half-sealed, or None.

        A sealed active loglet means a reconfiguration stopped after its seal (the
        reconfigurer died): clients would roll forward on their next append, the supervisor
        may as well. Worse is a *half* seal: the seal bit set on a minority (the sealer died
        in the middle) while another LogServer is down. The sequencer then counts neither
        the sealed server (its tail may hold repairs) nor the dead one, so nothing commits;
        and no client ever sees ``sealed``. The sign is a sequencer whose appends do not
        commit between two diagnoses; then the LogServers' seal bits are probed.
        """
        previous, self._last_status = self._last_status, (status.known_tail, status.next_pos)
        if status.sealed:
            return f"{self.config.loglet_id} is sealed but still the active segment (a reconfiguration stopped half-way)"
        if not (status.next_pos > status.known_tail and previous is not None and previous[0] == status.known_tail):
            return None  # nothing pending, or progress since the last look
        replies: dict[str, TailReply] = {}

        async def probe(server: str) -> None:
            with contextlib.suppress(RpcError):
                replies[server] = await self._call(server, TailQuery(self.config.loglet_id, self._known_tail), self._deadline(self.options.call_timeout_s))

        async with trio.open_nursery() as nursery:
            for server in self.config.logservers:
                nursery.start_soon(probe, server)
        sealed = [s for s in self.config.logservers if s in replies and replies[s].sealed]
        if sealed:
            return f"appends to {self.config.loglet_id} stall and {', '.join(sealed)} hold its seal bit: a seal stopped half-way"
        return None

    def statistics(self) -> dict[str, int]:
        return dict(self.stats, known_tail=self._known_tail)
