"""Table tests of the Paxos proposer's rules (Lamport, "Paxos Made Simple" §2.2), one per rule.

The proposer is pure bookkeeping: each test feeds it answers and checks the step it returns.
The last tests wire proposers to real acceptor cores by hand (no network) to show the rules at
work: P2c keeps a chosen value chosen, and the ``ignore_accepted`` bug breaks exactly that.
"""

from __future__ import annotations

import pytest

from delos_ref.effects import Incoming, Reply
from paxos.acceptor import Acceptor
from paxos.ballot import ZERO, Ballot, next_ballot
from paxos.messages import Accept, Accepted, Nack, Prepare, Promise, Status, Update
from paxos.proposer import (
    WAITING,
    Abandoned,
    Chosen,
    Current,
    NoQuorum,
    NothingAccepted,
    Propose,
    Proposer,
    QueryRound,
    Unsettled,
    majority,
)

ACCEPTORS = ("a1", "a2", "a3")
B1, B2, B3, B5 = Ballot(1, "p"), Ballot(2, "q"), Ballot(3, "p"), Ballot(5, "p")
MINE = Update("me", 1, b"mine")
X = Update("x", 1, b"x")
Y = Update("y", 1, b"y")


def promise(ballot: Ballot = B3, accepted: Ballot = ZERO, value: Update | None = None, instance: int = 1, top: int = 0) -> Promise:
    return Promise(instance, ballot, accepted, value, top)


def after_phase1(value: Update | None = MINE, ballot: Ballot = B3) -> tuple[Proposer, Propose]:
    p = Proposer(1, ballot, ACCEPTORS, value)
    p.on_promise("a1", promise(ballot))
    step = p.on_promise("a2", promise(ballot))
    assert type(step) is Propose
    return p, step


# ------------------------------------------------------------------------------ ballots


def test_ballots_are_totally_ordered_round_first_then_proposer():
    """Proposal numbers come from a totally ordered set (§2.2): compare rounds, then ids."""
    assert ZERO < Ballot(1, "b") < Ballot(1, "c") < Ballot(2, "a")
    assert sorted([Ballot(2, "a"), ZERO, Ballot(1, "z")]) == [ZERO, Ballot(1, "z"), Ballot(2, "a")]


def test_ballots_of_different_proposers_never_collide():
    """"Different proposers choose their numbers from disjoint sets" (§2.2)."""
    assert next_ballot("p", 4) != next_ballot("q", 4)


def test_next_ballot_exceeds_own_rounds_and_every_ballot_seen():
    """A preempted proposer jumps above the promise that refused it, in one step."""
    assert next_ballot("p", 0) == Ballot(1, "p")
    assert next_ballot("p", 3) == Ballot(4, "p")
    assert next_ballot("a", 1, Ballot(7, "z")) == Ballot(8, "a") > Ballot(7, "z")


def test_majority_is_more_than_half():
    """Any two majorities intersect: the fact every Paxos argument rests on."""
    assert [majority(n) for n in (1, 3, 5)] == [1, 2, 3]


# ------------------------------------------------------------------------------ phase 1


def test_proposer_sends_prepare_with_its_ballot():
    """Phase 1a: "a proposer selects a proposal number n and sends a prepare request with
    number n to a majority of acceptors" (we send to all and wait for a majority)."""
    assert Proposer(4, B3, ACCEPTORS, MINE).prepare() == Prepare(4, B3)


def test_proposer_waits_for_a_majority_of_promises():
    """Phase 2a starts only after promises from a majority."""
    p = Proposer(1, B3, ACCEPTORS, MINE)
    assert p.on_promise("a1", promise()) is WAITING
    assert type(p.on_promise("a3", promise())) is Propose


def test_proposer_waits_for_three_of_five():
    p = Proposer(1, B3, ACCEPTORS + ("a4", "a5"), MINE)
    assert p.on_promise("a1", promise()) is WAITING
    assert p.on_promise("a2", promise()) is WAITING
    assert type(p.on_promise("a5", promise())) is Propose


def test_proposer_proposes_own_value_when_no_promise_reports_one():
    """P2c: "... or is any value if the responses reported no proposals"."""
    _, step = after_phase1(MINE)
    assert step == Propose(Accept(1, B3, MINE), adopted=False)


ADOPT_TABLE = [
    # promises (accepted ballot, value) from a majority -> the value to propose
    pytest.param([(ZERO, None), (B1, X)], X, id="one-report-is-adopted"),
    pytest.param([(B1, X), (B2, Y)], Y, id="highest-ballot-wins"),
    pytest.param([(B2, Y), (B1, X)], Y, id="order-of-arrival-does-not-matter"),
    pytest.param([(B1, X), (B1, X)], X, id="same-report-twice"),
]


@pytest.mark.parametrize("reports, expected", ADOPT_TABLE)
def test_proposer_adopts_value_of_highest_accepted_ballot(reports, expected):
    """P2c: propose "the value of the highest-numbered proposal among the responses" -- the
    only value that may already be chosen -- instead of our own."""
    p = Proposer(1, B3, ACCEPTORS, MINE)
    steps = [p.on_promise(src, promise(B3, b, v)) for src, (b, v) in zip(ACCEPTORS, reports)]
    assert steps[-1] == Propose(Accept(1, B3, expected), adopted=True)


def test_proposer_reports_nothing_accepted_when_it_has_no_value():
    """A settling proposer (a read) has no value of its own: when no promise reports one, the
    instance is not chosen and no smaller ballot can choose it any more."""
    p = Proposer(1, B3, ACCEPTORS, None)
    p.on_promise("a1", promise())
    assert p.on_promise("a2", promise()) == NothingAccepted(1, B3)


def test_proposer_counts_each_acceptor_once():
    """Networks duplicate: a duplicated promise must not make a majority of one."""
    p = Proposer(1, B3, ACCEPTORS, MINE)
    assert p.on_promise("a1", promise()) is WAITING
    assert p.on_promise("a1", promise()) is WAITING


@pytest.mark.parametrize(
    "src, msg",
    [
        pytest.param("a2", promise(B2), id="other-ballot"),
        pytest.param("a2", promise(instance=2), id="other-instance"),
        pytest.param("stranger", promise(), id="not-an-acceptor"),
    ],
)
def test_proposer_ignores_promises_for_another_attempt(src, msg):
    """Stale answers (an earlier ballot, another instance) and strangers do not count."""
    p = Proposer(1, B3, ACCEPTORS, MINE)
    p.on_promise("a1", promise())
    assert p.on_promise(src, msg) is WAITING


def test_proposer_survives_a_minority_refusal():
    """A Nack from one acceptor of three does not doom the attempt: a majority can still promise."""
    p = Proposer(1, B3, ACCEPTORS, MINE)
    assert p.on_nack("a1", Nack(1, B3, B5)) is WAITING
    p.on_promise("a2", promise())
    assert type(p.on_promise("a3", promise())) is Propose


def test_proposer_abandons_when_a_majority_is_out_of_reach():
    """Lamport: the acceptor "should inform the proposer, who can then abandon its proposal".
    Once a majority refused, the step names the highest promise seen, to jump above."""
    p = Proposer(1, B3, ACCEPTORS, MINE)
    p.on_nack("a1", Nack(1, B3, Ballot(4, "z")))
    assert p.on_nack("a2", Nack(1, B3, B5)) == Abandoned(1, B3, B5)
    assert p.on_promise("a3", promise()) is WAITING  # over


def test_proposer_silence_counts_against_the_quorum():
    """An acceptor that never answers is no vote; with two of three silent, the attempt is
    abandoned without any ballot to jump over."""
    p = Proposer(1, B3, ACCEPTORS, MINE)
    assert p.on_silence("a1") is WAITING
    assert p.on_silence("a2") == Abandoned(1, B3, ZERO)


# ------------------------------------------------------------------------------ phase 2


def test_proposer_value_is_chosen_once_a_majority_accepted():
    """A value is chosen when "a large enough set of acceptors" -- a majority -- accepted it."""
    p, _ = after_phase1(MINE)
    assert p.on_accepted("a3", Accepted(1, B3, 1)) is WAITING
    assert p.on_accepted("a1", Accepted(1, B3, 1)) == Chosen(1, B3, MINE)


def test_proposer_phase2_counts_afresh():
    """Promises are not acceptances: phase 2 needs a majority of its own, and duplicates of
    one acceptance still count once."""
    p, _ = after_phase1(MINE)
    assert p.on_accepted("a1", Accepted(1, B3, 1)) is WAITING
    assert p.on_accepted("a1", Accepted(1, B3, 1)) is WAITING


def test_proposer_ignores_acceptances_before_phase2_or_for_another_ballot():
    p = Proposer(1, B3, ACCEPTORS, MINE)
    assert p.on_accepted("a1", Accepted(1, B3, 1)) is WAITING  # no Accept sent yet
    p, _ = after_phase1(MINE)
    assert p.on_accepted("a1", Accepted(1, B2, 1)) is WAITING
    assert p.on_accepted("a2", Accepted(1, B2, 1)) is WAITING


def test_proposer_abandons_phase2_when_a_majority_refuses():
    p, _ = after_phase1(MINE)
    p.on_nack("a1", Nack(1, B3, B5))
    assert p.on_silence("a3") == Abandoned(1, B3, B5)


def test_ignore_accepted_bug_proposes_own_value_over_reported_one():
    """Teaching bug ``ignore_accepted``: the proposer skips P2c."""
    p = Proposer(1, B3, ACCEPTORS, MINE, ignore_accepted=True)
    p.on_promise("a1", promise(B3, B1, X))
    assert p.on_promise("a2", promise()) == Propose(Accept(1, B3, MINE), adopted=False)


# ------------------------------------------------------------------------- read query


def status(top: int, ballot: Ballot = B1, value: Update | None = X) -> Status:
    return Status(top, ballot, value) if top else Status(0, ZERO, None)


def test_read_query_of_an_empty_register_is_version_zero():
    q = QueryRound(ACCEPTORS)
    q.on_status("a1", status(0))
    assert q.on_status("a2", status(0)) == Current(0, None)


def test_read_query_is_current_when_a_majority_holds_the_same_ballot_at_top():
    """A majority that accepted the same ballot in ``top`` is the majority that chose it:
    the read needs no second round."""
    q = QueryRound(ACCEPTORS)
    q.on_status("a1", status(2, B1, X))
    assert q.on_status("a3", status(2, B1, X)) == Current(2, X)


@pytest.mark.parametrize(
    "first, second",
    [
        pytest.param(status(2, B1, X), status(1, B1, Y), id="top-held-by-one"),
        pytest.param(status(2, B1, X), status(2, B2, Y), id="top-held-at-different-ballots"),
    ],
)
def test_read_query_is_unsettled_when_top_may_not_be_chosen(first, second):
    """A value held at ``top`` by less than a majority at one ballot may be unchosen: the read
    must settle that instance before returning it (see paxos.register)."""
    q = QueryRound(ACCEPTORS)
    q.on_status("a1", first)
    assert q.on_status("a2", second) == Unsettled(2)


def test_read_query_without_a_majority_has_no_answer():
    q = QueryRound(ACCEPTORS)
    q.on_status("a1", status(1))
    assert q.on_silence("a2") is WAITING
    assert q.on_silence("a3") == NoQuorum()


def test_read_query_counts_each_acceptor_once():
    q = QueryRound(ACCEPTORS)
    q.on_status("a1", status(1))
    assert q.on_status("a1", status(1)) is WAITING


# ---------------------------------------------------------- proposers meet acceptors


def deliver(acceptor: Acceptor, msg):
    (reply,) = [e.msg for e in acceptor.handle(Incoming("p", 1, msg)) if type(e) is Reply]
    return reply


def run_attempt(p: Proposer, acceptors: dict[str, Acceptor], reach: list[str]):
    """One attempt in which only the acceptors in ``reach`` hear the proposer."""
    phase1 = [p.on_reply(n, deliver(acceptors[n], p.prepare())) for n in reach]
    propose = next(s for s in phase1 if type(s) is Propose)
    phase2 = [p.on_reply(n, deliver(acceptors[n], propose.accept)) for n in reach]
    return next(s for s in phase2 if s is not WAITING)


@pytest.mark.parametrize("ignore_accepted", [False, True], ids=["p2c", "ignore-accepted-bug"])
def test_chosen_value_stays_chosen_across_ballots(ignore_accepted):
    """P2: "If a proposal with value v is chosen, then every higher-numbered proposal that is
    chosen has value v." Proposer p gets X chosen by {a1, a2}; proposer q then runs a higher
    ballot through {a2, a3}: a2 reports X and q must propose X again. With the bug, q
    proposes its own Y, and Y is chosen too: two values chosen for one instance."""
    acceptors = {n: Acceptor() for n in ACCEPTORS}
    first = run_attempt(Proposer(1, B1, ACCEPTORS, X), acceptors, ["a1", "a2"])
    assert first == Chosen(1, B1, X)
    second = run_attempt(Proposer(1, B2, ACCEPTORS, Y, ignore_accepted=ignore_accepted), acceptors, ["a2", "a3"])
    assert second == Chosen(1, B2, Y if ignore_accepted else X)


# ------------------------------------------------------------------------ learn round


def learned(*accepted, lo: int = 1, register: str = "r"):
    from paxos.messages import Learned

    return Learned(register, lo, tuple(accepted), top=0)


def test_learn_round_takes_the_prefix_a_majority_shows_chosen():
    """A value two of three acceptors report at one ballot is chosen; the first instance
    without such a majority is ``undecided`` (it may be chosen: settle it)."""
    from paxos.proposer import Known, LearnRound

    r = LearnRound(ACCEPTORS, "r", 1)
    assert r.on_reply("a1", learned((B1, X), (B1, Y), (B2, MINE))) is WAITING
    step = r.on_reply("a2", learned((B1, X), (B1, Y), (B1, Y)))
    assert step == Known(1, (X, Y), undecided=3)


def test_learn_round_stops_cleanly_where_answers_end_and_ignores_other_registers():
    from paxos.proposer import Known, LearnRound

    r = LearnRound(ACCEPTORS, "r", 5)
    assert r.on_reply("a1", learned((B1, X), lo=5, register="other")) is WAITING  # counted as silent
    assert r.on_reply("a2", learned((B1, X), (B1, Y), lo=5)) is WAITING
    assert r.on_reply("a3", learned((B1, X), lo=5)) == Known(5, (X,), undecided=6)
    r2 = LearnRound(ACCEPTORS, "r", 5)
    r2.on_reply("a2", learned((B1, X), lo=5))
    assert r2.on_reply("a3", learned((B1, X), lo=5)) == Known(5, (X,), undecided=None)


def test_learn_round_without_a_majority_is_no_quorum():
    from paxos.proposer import LearnRound

    r = LearnRound(ACCEPTORS, "r", 1)
    assert r.on_silence("a1") is WAITING
    assert r.on_silence("a2") == NoQuorum()
