"""The Paxos proposer's bookkeeping: quorums, and the one rule that makes Paxos safe.

A proposer does little but count, and this module is the counting, with no I/O: the async
driver in :mod:`paxos.register` sends the messages a :class:`Proposer` names and feeds the
answers back, one at a time, reading a :data:`Step` after each. Two classes:

* :class:`Proposer` -- one *attempt* at one instance with one ballot (Lamport, "Paxos Made
  Simple" §2.2):

  1. **Phase 1a.** Send ``Prepare(ballot)`` to every acceptor.
  2. **Phase 1b, counted.** Wait for promises from a majority. A majority of acceptors that
     promised ``ballot`` cannot let any smaller ballot be chosen from now on.
  3. **Phase 2a: pick the value (P2c).** "If the proposer receives a response to its prepare
     requests from a majority of acceptors, then it sends an accept request ... with a value
     v, where v is the value of the highest-numbered proposal among the responses, or is any
     value if the responses reported no proposals." This is the rule: a value that may already
     be chosen was accepted by a majority, so at least one promise in *our* majority reports
     it, and among the reported values the one with the highest ballot is the only one that
     can have been chosen. Proposing it again keeps every chosen value chosen. Only when no
     promise reports anything is the proposer free to propose its own value.
  4. **Phase 2b, counted.** The value is *chosen* once a majority accepted it at ``ballot``.

  An attempt is **abandoned** when a majority is out of reach: too many acceptors refused
  (each refusal names the ballot it promised, so the next attempt can jump above it) or fell
  silent. A refusal from a minority does not doom the attempt.

* :class:`QueryRound` -- step 1 of a linearizable read: ask a majority for their ``top``
  (highest instance holding an accepted value). If a majority report the *same* ballot at the
  same ``top``, that value is chosen and current: a one-round-trip read. Otherwise the read
  must settle ``top`` with a full attempt (see :mod:`paxos.register` for why).

Teaching switch ``ignore_accepted``: the proposer skips step 3 and proposes its own value
whatever the promises report -- exactly the mistake P2c exists to prevent. The simulator's
``metastore`` workload must catch it (two values chosen for one version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from paxos.ballot import ZERO, Ballot
from paxos.messages import CHAIN_REGISTER, Accept, Accepted, Learned, Nack, Prepare, Promise, Status, Update

# ----------------------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class Waiting:
    """No decision yet: keep feeding answers."""


WAITING = Waiting()


@dataclass(frozen=True, slots=True)
class Propose:
    """Phase 1 succeeded: send ``accept`` to every acceptor (phase 2a)."""

    accept: Accept
    adopted: bool  # the value came from a promise (P2c), not from this proposer's caller


@dataclass(frozen=True, slots=True)
class Chosen:
    """A majority accepted ``value`` at ``ballot``: it is the value of ``instance``, forever."""

    instance: int
    ballot: Ballot
    value: Update


@dataclass(frozen=True, slots=True)
class NothingAccepted:
    """Phase 1 succeeded, no promise reported a value, and there is no value of our own to
    propose: the instance is not chosen, and no ballot below ours can choose it any more."""

    instance: int
    ballot: Ballot


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A majority is out of reach for this ballot. ``highest_seen`` is the highest promise a
    refusal reported (``ZERO`` if the acceptors were merely silent)."""

    instance: int
    ballot: Ballot
    highest_seen: Ballot


@dataclass(frozen=True, slots=True)
class Current:
    """A read's query found the current state at once: ``version`` is chosen with ``value``
    (``0`` and ``None``: the empty register)."""

    version: int
    value: Update | None


@dataclass(frozen=True, slots=True)
class NoQuorum:
    """A read's query cannot hear from a majority: too many acceptors fell silent."""


@dataclass(frozen=True, slots=True)
class Unsettled:
    """A read's query found ``instance`` holding a value that may not be chosen yet."""

    instance: int


Step = Union[Waiting, Propose, Chosen, NothingAccepted, Abandoned, Current, NoQuorum, Unsettled]


def majority(n: int) -> int:
    assert n >= 1, "majority: at least one acceptor"
    return n // 2 + 1


# -------------------------------------------------------------------------- proposer

PREPARING, ACCEPTING, DONE = "preparing", "accepting", "done"


class Proposer:
    """One attempt: one instance, one ballot, phase 1 then phase 2. See the module docstring."""

    def __init__(
        self,
        instance: int,
        ballot: Ballot,
        acceptors: tuple[str, ...],
        value: Update | None = None,
        *,
        register: str = CHAIN_REGISTER,
        ignore_accepted: bool = False,
    ) -> None:
        assert instance >= 1, "Proposer: instances are numbered from 1"
        assert not ballot.is_zero, "Proposer: a real ballot"
        assert len(set(acceptors)) == len(acceptors) >= 1, "Proposer: distinct acceptors"
        self.register = register
        self.instance = instance
        self.ballot = ballot
        self.acceptors = tuple(acceptors)
        self.quorum = majority(len(acceptors))
        self.value = value
        self.ignore_accepted = ignore_accepted
        self.phase = PREPARING
        self.proposal: Update | None = None
        self.top = 0  # the highest ``top`` any answer reported
        self._votes: set[str] = set()  # acceptors that promised (phase 1) or accepted (phase 2)
        self._refusals: set[str] = set()  # acceptors that refused or fell silent, this phase
        self._highest_seen = ZERO
        self._adopt_ballot = ZERO  # the highest accepted ballot reported by a promise...
        self._adopt_value: Update | None = None  # ...and its value (P2c)

    def prepare(self) -> Prepare:
        assert self.phase == PREPARING, "Proposer.prepare: only before phase 2"
        return Prepare(self.instance, self.ballot, self.register)

    # ---------------------------------------------------------------------- answers

    def on_reply(self, src: str, reply: Any) -> Step:
        if type(reply) is Promise:
            return self.on_promise(src, reply)
        if type(reply) is Accepted:
            return self.on_accepted(src, reply)
        if type(reply) is Nack:
            return self.on_nack(src, reply)
        # A peer answering a Prepare or Accept with something else breaks the protocol:
        # it cannot count as a vote, so it counts against the quorum.
        return self.on_silence(src)

    def on_promise(self, src: str, msg: Promise) -> Step:
        """Phase 1b, counted; phase 2a once a majority promised."""
        if self.phase != PREPARING:
            return WAITING  # a late promise: phase 1 is already decided
        if not self._is_ours(src, msg.register, msg.instance, msg.ballot):
            return WAITING  # answers another attempt (stale) or comes from a stranger
        if src in self._votes or src in self._refusals:
            return WAITING  # a duplicate: each acceptor counts once
        self._votes.add(src)
        self.top = max(self.top, msg.top)
        # lab: proposer begin
        if msg.accepted_value is not None and msg.accepted_ballot > self._adopt_ballot:
            # P2c: remember the value of the highest-numbered proposal reported.
            self._adopt_ballot, self._adopt_value = msg.accepted_ballot, msg.accepted_value
        # lab: proposer end
        if len(self._votes) < self.quorum:
            return WAITING
        return self._begin_phase2()

    def on_accepted(self, src: str, msg: Accepted) -> Step:
        """Phase 2b, counted: chosen once a majority accepted our ballot."""
        if self.phase != ACCEPTING:
            return WAITING  # not proposing (yet, or any more)
        if not self._is_ours(src, msg.register, msg.instance, msg.ballot):
            return WAITING  # answers another attempt (stale) or comes from a stranger
        if src in self._votes or src in self._refusals:
            return WAITING  # a duplicate: each acceptor counts once
        self._votes.add(src)
        self.top = max(self.top, msg.top)
        if len(self._votes) < self.quorum:
            return WAITING
        self.phase = DONE
        assert self.proposal is not None, "Proposer: chosen means something was proposed"
        return Chosen(self.instance, self.ballot, self.proposal)

    def on_nack(self, src: str, msg: Nack) -> Step:
        """A refusal: the acceptor promised ``msg.promised`` > our ballot."""
        if self.phase == DONE:
            return WAITING  # the attempt is over
        if not self._is_ours(src, msg.register, msg.instance, msg.ballot):
            return WAITING  # refuses another attempt (stale) or comes from a stranger
        assert msg.promised > self.ballot, "Nack: names a promise above the refused ballot"
        self._highest_seen = max(self._highest_seen, msg.promised)
        return self._count_refusal(src)

    def on_silence(self, src: str) -> Step:
        """``src`` did not answer this phase in time (or answered nonsense)."""
        if self.phase == DONE or src not in self.acceptors:
            return WAITING  # over, or not one of ours
        return self._count_refusal(src)

    # --------------------------------------------------------------------- helpers

    def _is_ours(self, src: str, register: str, instance: int, ballot: Ballot) -> bool:
        return src in self.acceptors and register == self.register and instance == self.instance and ballot == self.ballot

    def _count_refusal(self, src: str) -> Step:
        if src in self._votes or src in self._refusals:
            return WAITING  # already counted in this phase
        self._refusals.add(src)
        if len(self._refusals) <= len(self.acceptors) - self.quorum:
            return WAITING  # a majority can still be reached without this acceptor
        self.phase = DONE
        return Abandoned(self.instance, self.ballot, self._highest_seen)

    def _begin_phase2(self) -> Step:
        self._votes, self._refusals = set(), set()  # phase 2 counts afresh
        proposal, adopted = self._choose_proposal()
        if proposal is None:
            self.phase = DONE
            return NothingAccepted(self.instance, self.ballot)
        self.phase = ACCEPTING
        self.proposal = proposal
        return Propose(Accept(self.instance, self.ballot, proposal, self.register), adopted)

    def _choose_proposal(self) -> tuple[Update | None, bool]:
        """P2c: the highest-ballot accepted value reported, else our own (which may be None)."""
        # lab: proposer begin
        if self.ignore_accepted and self.value is not None:
            return self.value, False  # teaching bug: throws away what P2c protects
        if self._adopt_value is not None:
            return self._adopt_value, True
        return self.value, False
        # lab: proposer end


# ------------------------------------------------------------------------ query round


class _MajorityRound:
    """One read-only round to the acceptors that decides once a majority answered: the
    bookkeeping :class:`QueryRound` and :class:`LearnRound` share. Each answer and each
    silence counts once per acceptor; when so many are silent that no majority can answer
    any more, the round ends with :class:`NoQuorum`."""

    def __init__(self, acceptors: tuple[str, ...]) -> None:
        assert len(set(acceptors)) == len(acceptors) >= 1, f"{type(self).__name__}: distinct acceptors"
        self.acceptors = tuple(acceptors)
        self.quorum = majority(len(acceptors))
        self.done = False
        self._answers: dict[str, Any] = {}
        self._silent: set[str] = set()

    def _count(self, src: str, answer: Any) -> Any:
        """Record ``src``'s answer; the decision once a majority answered, else WAITING."""
        if self.done or src not in self.acceptors or src in self._answers or src in self._silent:
            return WAITING  # decided, a stranger, or a duplicate
        self._answers[src] = answer
        if len(self._answers) < self.quorum:
            return WAITING
        self.done = True
        return self._decide()

    def on_silence(self, src: str) -> Any:
        if self.done or src not in self.acceptors or src in self._answers or src in self._silent:
            return WAITING  # decided, a stranger, or already counted
        self._silent.add(src)
        if len(self._silent) <= len(self.acceptors) - self.quorum:
            return WAITING
        self.done = True
        return NoQuorum()

    def _decide(self) -> Any:
        raise NotImplementedError


class QueryRound(_MajorityRound):
    """Step 1 of a read: the highest instance holding a value, as a majority reports it."""

    def __init__(self, acceptors: tuple[str, ...], register: str = CHAIN_REGISTER) -> None:
        super().__init__(acceptors)
        self.register = register

    def on_reply(self, src: str, reply: Any) -> Step:
        if type(reply) is not Status:
            return self.on_silence(src)  # a peer breaking the protocol counts as silent
        return self.on_status(src, reply)

    def on_status(self, src: str, msg: Status) -> Step:
        if self.done:
            return WAITING  # already decided
        if msg.register != self.register:
            return self.on_silence(src)  # an answer about another register: protocol broken
        return self._count(src, msg)

    def _decide(self) -> Step:
        top = max(s.top for s in self._answers.values())
        if top == 0:
            return Current(0, None)  # nothing accepted anywhere in a majority: version 0
        # A majority holding the same ballot at ``top`` is a majority that accepted it there:
        # the value is chosen, no second round needed.
        at_top = [s for s in self._answers.values() if s.top == top]
        for status in at_top:
            same = sum(1 for s in at_top if s.accepted_ballot == status.accepted_ballot)
            if same >= self.quorum:
                return Current(top, status.accepted_value)
        return Unsettled(top)


# ------------------------------------------------------------------------ learn round


@dataclass(frozen=True, slots=True)
class Known:
    """A learn round's outcome: ``values[i]`` is the value chosen in instance ``lo + i``, for
    the prefix of instances a majority showed chosen; ``undecided`` is the first instance
    after that prefix that a majority did not show chosen (it may still be chosen: settle
    it with a full attempt), or None if the prefix covers every instance reported."""

    lo: int
    values: tuple[Update, ...]
    undecided: int | None


class LearnRound(_MajorityRound):
    """Read instances ``lo ..`` of a register from a majority's :class:`~paxos.messages.Learned`.

    The fast rule is the one :class:`QueryRound` uses for ``top``: a value that a majority of
    acceptors report at the *same* ballot was accepted by that majority, so it is chosen.
    Anything less (acceptors that disagree, or hold nothing) proves nothing either way.
    """

    def __init__(self, acceptors: tuple[str, ...], register: str, lo: int) -> None:
        super().__init__(acceptors)
        self.register = register
        self.lo = lo

    def on_reply(self, src: str, reply: Any) -> Step | Known:
        if type(reply) is not Learned or reply.register != self.register or reply.lo != self.lo:
            return self.on_silence(src)  # a peer breaking the protocol counts as silent
        return self._count(src, reply)

    def _decide(self) -> Known:
        answers = list(self._answers.values())
        reported = max(len(a.accepted) for a in answers)
        values: list[Update] = []
        for i in range(reported):
            held = [a.accepted[i] for a in answers if i < len(a.accepted) and a.accepted[i][1] is not None]
            chosen = next((v for b, v in held if sum(1 for b2, _ in held if b2 == b) >= self.quorum), None)
            if chosen is None:
                return Known(self.lo, tuple(values), self.lo + i)
            values.append(chosen)
        return Known(self.lo, tuple(values), None)
