"""The MetaStore: a linearizable versioned register with conditional write, built on Paxos.

Delos keeps its one piece of fault-tolerant consensus here (docs/design.md §3; OSDI'20 §3.2,
§4.1): a register holding the VirtualLog's chain, with ``read() -> (version, value)`` and
``write_if(expected_version, value)``, which succeeds only if the register is still at
``expected_version`` and then raises the version by one. Delos used "a simple, unoptimized
implementation of canonical single-slot Paxos, incurring two round-trips to a quorum for both
writes and reads"; so do we.

**The construction (Lamport's).** The register is a sequence of single-decree Paxos
instances: instance ``v`` decides the value of version ``v`` (v = 1, 2, ...; version 0 is the
empty register, value ``None``). ``write_if(e, value)`` is a proposal of ``value`` in instance
``e + 1``. Why this is a correct conditional write:

* *At most one write per version succeeds*, because single-decree Paxos chooses at most one
  value per instance, and a writer reports :class:`Written` only if the chosen value is its own
  (values are tagged with their write, :class:`~paxos.messages.Update`, so equal bytes from two
  writers are still told apart).
* *Versions are gapless*: a writer proposes in instance ``e + 1`` only once it knows instance
  ``e`` is chosen (it learned so from a read, from its own earlier write, or by settling ``e``
  itself; if ``e`` turns out not to be chosen the register is not at ``e`` and the write is a
  :class:`Conflict`). Reads only re-propose values already accepted in an instance. So every
  value ever accepted in instance ``v`` descends from a writer that saw ``v - 1`` chosen.
* *A loser learns the current state*: when another value is chosen in ``e + 1``, the register
  has moved past ``e``; the writer reads it (a linearizable read, below) to report
  ``Conflict(version, value)``.

**Reads.** A read must be linearizable: it must return a version that was current at some
instant between its invocation and its return. It asks a majority for their ``top`` (the
highest instance in which they accepted a value) and takes the maximum ``h``. Every version
chosen before the read started was accepted by a majority, which overlaps the one we asked,
so no completed write is missed: ``h`` is at least the current version. But ``h`` may be
*ahead*: a value merely accepted by some acceptors in instance ``h`` is not (yet) chosen.
Returning it would not be linearizable: its write may never complete -- a later proposer can
find a majority that never saw it and choose another value in ``h`` -- and then a read that
returned it has reported a version that never existed; even if it is chosen later, a second
read that reaches a different majority could still see ``h - 1``, going back in time. So the
read *settles* instance ``h`` before returning it: phase 1 with a fresh ballot, then phase 2
re-proposing whatever P2c adopts. If phase 1 finds a value, phase 2 makes it chosen -- from
then on every reader finds it, and the read returns it. If no promise in the majority reports a
value, ``h`` is not chosen and no smaller ballot can choose it any more; the current version is
then ``h - 1`` (chosen: some writer proposed in ``h``), which the read settles the same way.
The common case needs no settling: when a majority report the same ballot at ``h``, that
majority accepted it, so it is chosen already and the read costs one round trip.

**Many registers.** One set of acceptors holds many independent registers, by name
(:mod:`paxos.messages`): a client is bound to one, ``MetaStoreClient(..., register=name)``.
The MetaStore's chain is register ``""``; a bootstrap loglet stores its entries in a register
of its own, one version per entry (:mod:`delos_ref.loglet.bootstrap`), and reads them back
with :meth:`MetaStoreClient.learn`, which returns the values chosen in a range of versions:
one ``Learn`` round to a majority shows most of them chosen at once (a majority holding one
ballot), and each version it cannot show is settled like a read's top.

**Failures.** Every operation has a deadline. A read that cannot reach a majority in time
raises :class:`MetaStoreUnavailable`. A write raises :class:`MetaStoreUnavailable` only when
its value certainly was not chosen (it never left this client in an Accept, or another value
was chosen in its instance); once its Accept may have reached an acceptor, a later proposer
may still adopt and choose it, so the outcome is unknown: :class:`WriteOutcomeUnknown`.
Dueling proposers (two writers, or a writer and a reader settling the same instance) preempt
each other's ballots; each backs off for a random time drawn from the client's seeded RNG,
doubling the bound after every lost attempt, so that one of them soon runs alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import trio

from delos_ref.rpc import RetryPolicy, RpcEndpoint, RpcError
from delos_ref.rtt import overall
from delos_ref.trace import TraceSink
from paxos.ballot import ZERO, Ballot, next_ballot
from paxos.messages import CHAIN_REGISTER, MAX_INSTANCE, MAX_LEARN, Learn, Query, Update, check_register
from paxos.proposer import (
    WAITING,
    Abandoned,
    Chosen,
    Current,
    Known,
    LearnRound,
    NoQuorum,
    NothingAccepted,
    Propose,
    Proposer,
    QueryRound,
    Step,
    Unsettled,
)

ROLE = "metastore"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Written:
    """``write_if`` succeeded: the register is now at ``version`` (expected + 1)."""

    version: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """``write_if`` lost: the register was not at the expected version; this is its state."""

    version: int
    value: bytes | None


class MetaStoreError(Exception):
    """Base of MetaStore failures."""


class MetaStoreUnavailable(MetaStoreError):
    """No majority answered before the deadline. The operation certainly took no effect."""


class WriteOutcomeUnknown(MetaStoreError):
    """No majority answered before the deadline, and the write's value may have reached an
    acceptor: it may yet be chosen (by this or any later proposer), or never. Read to find out."""

    def __init__(self, message: str, *, instance: int) -> None:
        super().__init__(message)
        self.instance = instance  # the version the write would have created


# ---------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """Bounds of one client. ``deadline_s`` bounds a whole operation; ``call_timeout_s`` one
    request to one acceptor (resent per ``retry``); backoff after a lost attempt is uniform in
    ``[0, min(backoff_max_s, backoff_first_s * 2**attempt)]``."""

    deadline_s: float = 5.0
    call_timeout_s: float = 0.5
    retry: RetryPolicy = RetryPolicy(max_sends=4, first_s=0.05, max_s=0.2)
    backoff_first_s: float = 0.005
    backoff_max_s: float = 0.5

    def __post_init__(self) -> None:
        assert 0 < self.call_timeout_s <= self.deadline_s, "ClientTimeouts: 0 < call_timeout <= deadline"
        assert 0 < self.backoff_first_s <= self.backoff_max_s, "ClientTimeouts: 0 < backoff_first <= backoff_max"


class _Feed(Protocol):
    def on_reply(self, src: str, reply: Any) -> Step: ...

    def on_silence(self, src: str) -> Step: ...


@dataclass(slots=True)
class _Exposure:
    """What a write's caller may be told if the deadline strikes."""

    sent: bool = False  # our value went out in an Accept: it may be chosen
    lost: bool = False  # another value was chosen in our instance: ours never will be


# ---------------------------------------------------------------------------- client


class MetaStoreClient:
    """The register API over RPC to the acceptors; one per client incarnation.

    ``proposer_id`` must be unique across every incarnation of every client: ballots and
    write tags are built from it and a counter that starts again at a restart (see
    :mod:`paxos.ballot`). A node id plus its incarnation (or a random boot id) will do.
    Concurrent operations on one client are allowed; they share its ballot counter.
    """

    def __init__(
        self,
        endpoint: RpcEndpoint,
        acceptors: list[str] | tuple[str, ...],
        rng: random.Random,
        proposer_id: str,
        *,
        timeouts: ClientTimeouts = ClientTimeouts(),
        trace: TraceSink | None = None,
        ignore_accepted: bool = False,
        register: str = CHAIN_REGISTER,
    ) -> None:
        assert len(set(acceptors)) == len(acceptors) >= 1, "MetaStoreClient: distinct acceptors"
        check_register(register)
        self.register = register
        assert proposer_id, "MetaStoreClient: a proposer id (unique per incarnation)"
        self.endpoint = endpoint
        self.acceptors = tuple(acceptors)
        self.proposer_id = proposer_id
        self.timeouts = timeouts
        self.ignore_accepted = ignore_accepted
        self._rng = rng
        self._trace = trace
        self._round = 0
        self._highest_seen = ZERO
        self._seq = 0
        # The highest version this client knows to be chosen, and its value. Chosen values
        # never change, and versions are gapless, so every version below it is chosen too.
        self._known_version = 0
        self._known_value: Update | None = None
        counters = ("reads", "writes", "written", "conflicts", "unavailable", "unknown", "attempts", "abandoned", "fast_reads", "learns")
        self.stats = dict.fromkeys(counters, 0)

    @property
    def known_version(self) -> int:
        """The highest version this client has seen chosen (a lower bound on the current one)."""
        return self._known_version

    def statistics(self) -> dict[str, int]:
        return dict(self.stats, known_version=self._known_version)

    # ------------------------------------------------------------------ public API

    async def read(self) -> tuple[int, bytes | None]:
        """The current ``(version, value)``, linearizable. Raises :class:`MetaStoreUnavailable`."""
        self.stats["reads"] += 1
        deadline_s = self.deadline_s()
        with trio.move_on_after(deadline_s):
            version, update = await self._read()
            self._emit("ReadDone", version=version, value=_data(update))
            return version, _data(update)
        self.stats["unavailable"] += 1
        raise MetaStoreUnavailable(f"read: no majority of {list(self.acceptors)} answered within {deadline_s:g}s")

    async def write_if(self, expected_version: int, value: bytes) -> Written | Conflict:
        """Write ``value`` as version ``expected_version + 1`` if the register is at
        ``expected_version``. Raises :class:`MetaStoreUnavailable` (certainly not written) or
        :class:`WriteOutcomeUnknown` (maybe written)."""
        if type(expected_version) is not int or not 0 <= expected_version < MAX_INSTANCE:
            raise ValueError(f"write_if: expected_version is an int in 0..{MAX_INSTANCE - 1}, got {expected_version!r}")
        if type(value) is not bytes:
            raise TypeError(f"write_if: the value is opaque bytes, got {type(value).__name__}")
        self.stats["writes"] += 1
        self._seq += 1
        update = Update(self.proposer_id, self._seq, value)
        exposure = _Exposure()
        deadline_s = self.deadline_s()
        with trio.move_on_after(deadline_s):
            result = await self._write_if(expected_version, update, exposure)
            self.stats["written" if type(result) is Written else "conflicts"] += 1
            self._emit("WriteDone", expected_version=expected_version, seq=update.seq, outcome=_describe(result))
            return result
        self._deadline_passed(expected_version, exposure, deadline_s)

    async def learn(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """``(version, value)`` for the versions ``lo, lo + 1, ...`` below ``hi`` that are
        chosen, stopping at the first that is not (the register's current version + 1, or
        ``hi``). Values never change once chosen, so any answer stays true. Raises
        :class:`MetaStoreUnavailable`."""
        if type(lo) is not int or type(hi) is not int or not 1 <= lo <= hi <= MAX_INSTANCE + 1:
            raise ValueError(f"learn: need 1 <= lo <= hi, got lo={lo!r} hi={hi!r}")
        self.stats["learns"] += 1
        deadline_s = self.deadline_s()
        with trio.move_on_after(deadline_s):
            return [(v, u.data) for v, u in await self._learn_range(lo, hi)]
        self.stats["unavailable"] += 1
        raise MetaStoreUnavailable(f"learn({lo}, {hi}): no majority of {list(self.acceptors)} answered within {deadline_s:g}s")

    # ------------------------------------------------------------------ the workflows

    async def _learn_range(self, lo: int, hi: int) -> list[tuple[int, Update]]:
        out: list[tuple[int, Update]] = []
        version, attempt = lo, 0
        while version < hi:
            round_ = LearnRound(self.acceptors, self.register, version)
            step = await self._phase(round_, Learn(self.register, version, min(hi, version + MAX_LEARN)))
            if type(step) is NoQuorum:
                await self._backoff(attempt)
                attempt += 1
                continue
            assert type(step) is Known, f"LearnRound: unexpected step {step!r}"
            out += [(version + i, value) for i, value in enumerate(step.values)]
            version += len(step.values)
            if step.undecided is not None and version < hi:
                # Not shown chosen by one majority ballot: settle it, as a read settles its top.
                chosen = await self._decide(version, None, _Exposure())
                if chosen is None:
                    break  # not chosen: versions are gapless, so none above it is either
                out.append((version, chosen))
                version += 1
        if out:
            self._learn(*out[-1])
        return out

    async def _read(self) -> tuple[int, Update | None]:
        attempt = 0
        while True:
            step = await self._phase(QueryRound(self.acceptors, self.register), Query(self.register))
            if type(step) is Current:
                self.stats["fast_reads"] += 1
                self._learn(step.version, step.value)
                return step.version, step.value
            if type(step) is Unsettled:
                return await self._settle_down_from(step.instance)
            assert type(step) is NoQuorum, f"QueryRound: unexpected step {step!r}"
            await self._backoff(attempt)
            attempt += 1

    async def _settle_down_from(self, top: int) -> tuple[int, Update | None]:
        """The highest chosen instance at or below ``top``, settling each on the way down."""
        for instance in range(top, 0, -1):
            if instance == self._known_version:
                return instance, self._known_value  # known chosen: nothing to settle
            chosen = await self._decide(instance, None, _Exposure())
            if chosen is not None:
                return instance, chosen
            # Not chosen at ``instance``: the writer that proposed there saw ``instance - 1``
            # chosen, so the current version is ``instance - 1``.
        return 0, None

    async def _write_if(self, expected: int, update: Update, exposure: _Exposure) -> Written | Conflict:
        # lab: register begin
        while expected > self._known_version:
            # Gapless versions: propose in ``expected + 1`` only once ``expected`` is chosen.
            if await self._decide(expected, None, _Exposure()) is None:
                version, current = await self._read()
                if version != expected:
                    return Conflict(version, _data(current))
        if expected < self._known_version:
            return await self._conflict(exposure)  # ``expected + 1`` is chosen already
        chosen = await self._decide(expected + 1, update, exposure)
        assert chosen is not None, "write_if: a proposer with a value always proposes one"
        if chosen == update:
            return Written(expected + 1)
        return await self._conflict(exposure)
        # lab: register end

    async def _conflict(self, exposure: _Exposure) -> Conflict:
        exposure.lost = True  # another value holds our instance: ours can never be chosen
        version, current = await self._read()
        return Conflict(version, _data(current))

    async def _decide(self, instance: int, value: Update | None, exposure: _Exposure) -> Update | None:
        """Run attempts on ``instance`` until a value is chosen (returned) or phase 1 shows
        that none is and ``value`` is None (returns None)."""
        attempt = 0
        while True:
            step = await self._attempt(instance, value, exposure)
            if type(step) is Chosen:
                self._emit("Chosen", instance=instance, ballot=step.ballot.as_trace(), value=step.value.as_trace())
                self._learn(instance, step.value)
                return step.value
            if type(step) is NothingAccepted:
                return None
            assert type(step) is Abandoned, f"Proposer: unexpected step {step!r}"
            self.stats["abandoned"] += 1
            self._highest_seen = max(self._highest_seen, step.highest_seen)
            await self._backoff(attempt)
            attempt += 1

    async def _attempt(self, instance: int, value: Update | None, exposure: _Exposure) -> Step:
        """One ballot: phase 1, then phase 2 if phase 1 found a value to propose."""
        self.stats["attempts"] += 1
        proposer = Proposer(instance, self._new_ballot(), self.acceptors, value, register=self.register, ignore_accepted=self.ignore_accepted)
        step = await self._phase(proposer, proposer.prepare())
        if type(step) is not Propose:
            return step
        if value is not None and step.accept.value == value:
            exposure.sent = True  # from here on an acceptor may hold our value
        value_trace = step.accept.value.as_trace()
        self._emit("Propose", instance=instance, ballot=proposer.ballot.as_trace(), value=value_trace, adopted=step.adopted)
        return await self._phase(proposer, step.accept)

    # ------------------------------------------------------------------- messaging

    async def _phase(self, feed: _Feed, msg: Any) -> Step:
        """Send ``msg`` to every acceptor at once; feed answers until ``feed`` decides."""
        decided: list[Step] = []
        async with trio.open_nursery() as nursery:

            def decide(step: Step) -> None:
                if step is not WAITING and not decided:
                    decided.append(step)
                    nursery.cancel_scope.cancel()  # the other answers no longer matter

            for dst in self.acceptors:
                nursery.start_soon(self._ask, dst, msg, feed, decide)
        assert decided, "phase: every acceptor answered or fell silent, so the round decided"
        return decided[0]

    async def _ask(self, dst: str, msg: Any, feed: _Feed, decide: Any) -> None:
        try:
            reply = await self.endpoint.call(dst, msg, timeout_s=self.timeouts.call_timeout_s, retry=self.timeouts.retry)
        except RpcError:
            # Timed out, refused or unsendable: this acceptor does not count towards a
            # majority this time. (trio.Cancelled is not an RpcError: it propagates.)
            decide(feed.on_silence(dst))
            return
        decide(feed.on_reply(dst, reply))

    # --------------------------------------------------------------------- helpers

    def _new_ballot(self) -> Ballot:
        ballot = next_ballot(self.proposer_id, self._round, self._highest_seen)
        self._round = ballot.round
        return ballot

    def _learn(self, version: int, value: Update | None) -> None:
        if version > self._known_version:
            self._known_version, self._known_value = version, value

    async def _backoff(self, attempt: int) -> None:
        bound = min(self.timeouts.backoff_max_s, self.timeouts.backoff_first_s * 2 ** min(attempt, 30))
        await trio.sleep(self._rng.uniform(0, bound))

    def deadline_s(self) -> float:
        """The deadline of one operation: ``timeouts.deadline_s``, stretched to the round
        trips the endpoint measured, if any (``delos_ref/rtt.py``: real nodes and clients;
        the simulator keeps the constant)."""
        return overall(getattr(self.endpoint, "rtt", None), self.timeouts.deadline_s)

    def _deadline_passed(self, expected: int, exposure: _Exposure, deadline_s: float) -> NoReturn:
        what = f"write_if({expected}): no majority of {list(self.acceptors)} answered within {deadline_s:g}s"
        if exposure.sent and not exposure.lost:
            self.stats["unknown"] += 1
            raise WriteOutcomeUnknown(what + "; the value may have reached an acceptor: outcome unknown", instance=expected + 1)
        self.stats["unavailable"] += 1
        raise MetaStoreUnavailable(what + "; the value was not written")

    def _emit(self, event: str, **fields: Any) -> None:
        if self._trace is not None:
            self._trace.emit(self.endpoint.node_id, ROLE, event, proposer=self.proposer_id, register=self.register, **fields)


def _data(update: Update | None) -> bytes | None:
    return None if update is None else update.data


def _describe(result: Written | Conflict) -> list[Any]:
    if type(result) is Written:
        return ["written", result.version]
    return ["conflict", result.version]
