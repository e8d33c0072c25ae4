"""The labs' table tests: small pure tests of each rule, run first by ``delos-ref lab check``.

One function per case; its docstring is the rule it checks (what the student reads when it
fails); it raises ``AssertionError`` with what it saw. The modules under test are imported
inside each case, so that under the lab overlay (:mod:`delos_ref.labs.overlay`) they are the
student's. ``TABLES[lab]`` lists a lab's cases in order.
"""

from __future__ import annotations

from typing import Any, Callable

Case = Callable[[], None]


def _of(effects: list, kind: type) -> list:
    return [e for e in effects if isinstance(e, kind)]


def _reply(effects: list) -> Any:
    from delos_ref.effects import Reply

    replies = _of(effects, Reply)
    assert len(replies) == 1, f"expected one Reply, got effects {effects!r}"
    return replies[0].msg


# ------------------------------------------------------------------------------ acceptor


def _acceptor(promised: Any, accepted: Any = None, value: Any = None) -> Any:
    from paxos.acceptor import Acceptor
    from paxos.ballot import ZERO
    from paxos.messages import Slot

    return Acceptor({("", 1): Slot(promised, accepted or ZERO, value)})


def _ask(acceptor: Any, msg: Any) -> list:
    from delos_ref.effects import Incoming

    return acceptor.handle(Incoming("client", 7, msg))


def acceptor_promises_a_higher_ballot() -> None:
    """Phase 1b: a Prepare at or above the promise is promised, reporting what was accepted."""
    from paxos.ballot import Ballot
    from paxos.messages import Prepare, Promise, Update

    x = Update("p", 1, b"x")
    a = _acceptor(Ballot(2, "p"), Ballot(1, "p"), x)
    reply = _reply(_ask(a, Prepare(1, Ballot(3, "q"))))
    assert type(reply) is Promise, f"Prepare(ballot 3) over a promise of 2 must be promised, got {reply!r}"
    assert (reply.accepted_ballot, reply.accepted_value) == (Ballot(1, "p"), x), f"the promise must report the accepted (ballot, value), got {reply!r}"
    assert a.slot(1).promised == Ballot(3, "q"), f"the promise must rise to 3, slot is {a.slot(1)!r}"


def acceptor_refuses_a_prepare_below_its_promise() -> None:
    """Phase 1b (P1a): a Prepare below the promise is answered with a Nack naming the promise."""
    from paxos.ballot import Ballot
    from paxos.messages import Nack, Prepare

    a = _acceptor(Ballot(3, "p"))
    reply = _reply(_ask(a, Prepare(1, Ballot(2, "q"))))
    assert type(reply) is Nack and reply.promised == Ballot(3, "p"), f"Prepare(2) under a promise of 3 must be refused with Nack(promised=3), got {reply!r}"
    assert a.slot(1).promised == Ballot(3, "p"), "a refused Prepare must not change the promise"


def acceptor_persists_a_promise_before_replying() -> None:
    """Persist before send: the promise is written (a Persist effect) before the Reply."""
    from delos_ref.effects import Persist, Reply
    from paxos.ballot import ZERO, Ballot
    from paxos.messages import Prepare

    fx = _ask(_acceptor(ZERO), Prepare(1, Ballot(1, "p")))
    kinds = [type(e) for e in fx if type(e) in (Persist, Reply)]
    assert kinds == [Persist, Reply], f"a promise must be persisted, then replied: got {[k.__name__ for k in kinds]}"


def acceptor_accepts_at_its_promise() -> None:
    """Phase 2b: an Accept at (or above) the promise is accepted, persisted, then answered."""
    from delos_ref.effects import Persist, Reply
    from paxos.ballot import Ballot
    from paxos.messages import Accept, Accepted, Update

    x = Update("p", 1, b"x")
    a = _acceptor(Ballot(2, "p"))
    fx = _ask(a, Accept(1, Ballot(2, "p"), x))
    reply = _reply(fx)
    assert type(reply) is Accepted, f"Accept(2) at a promise of 2 must be accepted, got {reply!r}"
    slot = a.slot(1)
    assert (slot.accepted_ballot, slot.accepted_value) == (Ballot(2, "p"), x), f"the slot must hold (2, x), holds {slot!r}"
    kinds = [type(e) for e in fx if type(e) in (Persist, Reply)]
    assert kinds == [Persist, Reply], f"an acceptance must be persisted, then replied: got {[k.__name__ for k in kinds]}"


def acceptor_refuses_an_accept_below_its_promise() -> None:
    """Phase 2b (P1a): an Accept below the promise must be refused (Nack), never accepted:
    accepting would break the promise made to the higher ballot."""
    from paxos.ballot import Ballot
    from paxos.messages import Accept, Nack, Update

    a = _acceptor(Ballot(3, "p"))
    reply = _reply(_ask(a, Accept(1, Ballot(2, "q"), Update("q", 1, b"y"))))
    assert type(reply) is Nack, f"Accept(2) under a promise of 3 must be refused with a Nack, got {reply!r}"
    assert a.slot(1).accepted_value is None, f"a refused Accept must not be accepted: slot is {a.slot(1)!r}"


def acceptor_refuses_a_reused_ballot() -> None:
    """One ballot carries one value: the same ballot with another value is refused (Fail)."""
    from delos_ref.effects import Fail
    from paxos.ballot import Ballot
    from paxos.messages import Accept, Update

    x, y = Update("p", 1, b"x"), Update("p", 2, b"y")
    a = _acceptor(Ballot(2, "p"), Ballot(2, "p"), x)
    fx = _ask(a, Accept(1, Ballot(2, "p"), y))
    assert _of(fx, Fail), f"Accept(2, y) after accepting (2, x) must fail with ballot_reused, got {fx!r}"
    assert a.slot(1).accepted_value == x, "the accepted value must never be overwritten"


# ------------------------------------------------------------------------------ proposer

_ACCEPTORS = ("a1", "a2", "a3")


def _phase1(reports: list[tuple[Any, Any]], value: Any) -> Any:
    """A proposer at ballot 9 given one promise per (accepted_ballot, accepted_value)."""
    from paxos.ballot import Ballot
    from paxos.messages import Promise
    from paxos.proposer import Proposer

    p = Proposer(1, Ballot(9, "me"), _ACCEPTORS, value)
    step = None
    for src, (ab, av) in zip(_ACCEPTORS, reports):
        step = p.on_promise(src, Promise(1, Ballot(9, "me"), ab, av, 0))
    return step


def proposer_proposes_its_own_value_when_none_was_accepted() -> None:
    """P2c: with no accepted value among the promises, propose our own (adopted=False)."""
    from paxos.ballot import ZERO
    from paxos.messages import Update
    from paxos.proposer import Propose

    mine = Update("me", 1, b"mine")
    step = _phase1([(ZERO, None), (ZERO, None)], mine)
    assert type(step) is Propose and step.accept.value == mine and not step.adopted, f"expected Propose(mine, adopted=False), got {step!r}"


def proposer_adopts_the_highest_accepted_value() -> None:
    """P2c: propose the value of the highest-numbered proposal among the promises."""
    from paxos.ballot import Ballot
    from paxos.messages import Update
    from paxos.proposer import Propose

    x, y, mine = Update("x", 1, b"x"), Update("y", 1, b"y"), Update("me", 1, b"mine")
    for reports in ([(Ballot(1, "x"), x), (Ballot(2, "y"), y)], [(Ballot(2, "y"), y), (Ballot(1, "x"), x)]):
        step = _phase1(reports, mine)
        assert type(step) is Propose and step.accept.value == y and step.adopted, f"promises reporting {reports} must make us propose y (ballot 2), adopted; got {step!r}"


def proposer_adopts_even_without_a_value_of_its_own() -> None:
    """P2c: a proposer with no value (a read settling an instance) re-proposes the accepted one."""
    from paxos.ballot import ZERO, Ballot
    from paxos.messages import Update
    from paxos.proposer import NothingAccepted, Propose

    x = Update("x", 1, b"x")
    step = _phase1([(ZERO, None), (Ballot(1, "x"), x)], None)
    assert type(step) is Propose and step.accept.value == x, f"expected Propose(x), got {step!r}"
    step = _phase1([(ZERO, None), (ZERO, None)], None)
    assert type(step) is NothingAccepted, f"no value anywhere: expected NothingAccepted, got {step!r}"


# ----------------------------------------------------------------------------- logserver


def _logserver() -> Any:
    from delos_ref.loglet.native.logserver import LogServerCore

    return LogServerCore("s1")


def _store(first: int, *entries: bytes) -> Any:
    from delos_ref.effects import Incoming
    from delos_ref.loglet.native.messages import Store

    return Incoming("q1", 0, Store("L1", first, tuple(entries), 0))


def _seal(rid: int = 7) -> Any:
    from delos_ref.effects import Incoming
    from delos_ref.loglet.native.messages import Seal

    return Incoming("c1", rid, Seal("L1", 0))


def logserver_seal_is_durable_before_the_reply() -> None:
    """Seal: set the seal bit and persist it before the reply reports sealed=True."""
    from delos_ref.effects import Persist, Reply

    core = _logserver()
    core.handle(_store(0, b"a"))
    fx = core.handle(_seal())
    kinds = [type(e) for e in fx if type(e) in (Persist, Reply)]
    assert kinds == [Persist, Reply], f"seal must persist, then reply: got {[k.__name__ for k in kinds]}"
    reply = _reply(fx)
    assert reply.sealed and reply.local_tail == 1, f"the reply must report sealed at local tail 1, got {reply!r}"
    assert core.state("L1").sealed, "the seal bit must be set"


def logserver_seal_is_idempotent() -> None:
    """Seal: a second seal changes nothing (no write) and still answers sealed."""
    from delos_ref.effects import Persist

    core = _logserver()
    core.handle(_seal())
    fx = core.handle(_seal(8))
    assert not _of(fx, Persist), f"a second seal must write nothing, got {fx!r}"
    assert _reply(fx).sealed, "a second seal still answers sealed"


def logserver_rejects_stores_after_the_seal() -> None:
    """Store: once the seal bit is set the LogServer rejects appends, answering sealed."""
    from delos_ref.effects import Persist, Send

    core = _logserver()
    core.handle(_store(0, b"a"))
    core.handle(_seal())
    fx = core.handle(_store(1, b"b"))
    assert not _of(fx, Persist), f"a store after the seal must write nothing, got {fx!r}"
    sends = _of(fx, Send)
    assert len(sends) == 1 and sends[0].msg.sealed and sends[0].msg.local_tail == 1, f"it must answer Stored(local_tail=1, sealed=True), got {sends!r}"
    assert core.state("L1").local_tail == 1, f"the local tail must stay 1, is {core.state('L1').local_tail}"


def logserver_drops_held_entries_on_seal() -> None:
    """Seal: entries held for a gap were never stored; after the seal they never will be."""
    core = _logserver()
    core.handle(_store(0, b"a"))
    core.handle(_store(2, b"c"))  # held: position 1 is missing
    core.handle(_seal())
    core.handle(_store(1, b"b"))  # refused: sealed
    assert core.state("L1").local_tail == 1, f"after the seal nothing may be added, local tail is {core.state('L1').local_tail}"


def logserver_still_stores_before_the_seal() -> None:
    """Store: an unsealed LogServer extends its gapless prefix and acknowledges it."""
    from delos_ref.effects import Persist, Send

    core = _logserver()
    fx = core.handle(_store(0, b"a", b"b"))
    assert _of(fx, Persist), "stored entries must be persisted"
    sends = _of(fx, Send)
    assert len(sends) == 1 and sends[0].msg.local_tail == 2 and not sends[0].msg.sealed, f"expected Stored(local_tail=2, sealed=False), got {sends!r}"


# ----------------------------------------------------------------------------- sequencer

_SERVERS5 = ("s1", "s2", "s3", "s4", "s5")


def _sequencer(servers: tuple[str, ...]) -> Any:
    from delos_ref.effects import Incoming
    from delos_ref.loglet.native.messages import Activate, NativeLogletConfig
    from delos_ref.loglet.native.sequencer import SequencerCore

    core = SequencerCore("q1")
    core.handle(Incoming("c0", 1, Activate(NativeLogletConfig("L1", "q1", servers))))
    return core


def _append_and_flush(core: Any, n: int) -> None:
    from delos_ref.effects import Incoming, TimerFired
    from delos_ref.loglet.native.messages import Append
    from delos_ref.loglet.native.sequencer import FLUSH_TIMER

    for rid in range(1, n + 1):
        core.handle(Incoming("c1", rid, Append("L1", (b"e%d" % rid,), 0)))
    core.handle(TimerFired(FLUSH_TIMER))


def _stored(core: Any, server: str, tail: int) -> list[int]:
    """The rids acknowledged by the sequencer when ``server`` reports ``tail``."""
    from delos_ref.effects import Incoming, Reply
    from delos_ref.loglet.native.messages import Stored

    fx = core.handle(Incoming(server, 0, Stored("L1", tail, False, False, 0)))
    return [e.rid for e in fx if type(e) is Reply]


def sequencer_does_not_commit_on_a_minority() -> None:
    """Commit: one LogServer of three holding an entry is not a majority: no acknowledgement."""
    core = _sequencer(("s1", "s2", "s3"))
    _append_and_flush(core, 1)
    acked = _stored(core, "s1", 1)
    assert acked == [], f"an append stored on 1 of 3 LogServers was acknowledged (rids {acked}): a majority is 2"


def sequencer_commits_on_a_majority() -> None:
    """Commit: once a majority (2 of 3) stored a position, its append is acknowledged."""
    core = _sequencer(("s1", "s2", "s3"))
    _append_and_flush(core, 1)
    _stored(core, "s1", 1)
    acked = _stored(core, "s3", 1)
    assert acked == [1], f"stored on 2 of 3 LogServers, append 1 must be acknowledged; got rids {acked}"


def sequencer_commits_the_majority_th_greatest_tail() -> None:
    """Commit: with tails 4, 3, 1, 0, 0 on five LogServers, [0, 1) is on a majority (3): only
    the first append commits."""
    core = _sequencer(_SERVERS5)
    _append_and_flush(core, 4)
    acked = []
    for server, tail in (("s1", 4), ("s2", 3), ("s3", 1)):
        acked += _stored(core, server, tail)
    assert acked == [1], f"tails 4, 3, 1 of five servers commit exactly position 0 (rid 1); acknowledged rids {acked}"
    acked = _stored(core, "s4", 3)
    assert acked == [2, 3], f"then tails 4, 3, 3, 1 commit [0, 3): rids 2 and 3; acknowledged rids {acked}"


TABLES: dict[str, list[Case]] = {
    "acceptor": [
        acceptor_promises_a_higher_ballot,
        acceptor_refuses_a_prepare_below_its_promise,
        acceptor_persists_a_promise_before_replying,
        acceptor_accepts_at_its_promise,
        acceptor_refuses_an_accept_below_its_promise,
        acceptor_refuses_a_reused_ballot,
    ],
    "proposer": [
        proposer_proposes_its_own_value_when_none_was_accepted,
        proposer_adopts_the_highest_accepted_value,
        proposer_adopts_even_without_a_value_of_its_own,
    ],
    "logserver": [
        logserver_still_stores_before_the_seal,
        logserver_seal_is_durable_before_the_reply,
        logserver_seal_is_idempotent,
        logserver_rejects_stores_after_the_seal,
        logserver_drops_held_entries_on_seal,
    ],
    "sequencer": [
        sequencer_does_not_commit_on_a_minority,
        sequencer_commits_on_a_majority,
        sequencer_commits_the_majority_th_greatest_tail,
    ],
}

# The asynchronous rules' cases are scripted scenarios on the simulator (their own module).
from delos_ref.labs.scenarios import CASES as _SCENARIOS  # noqa: E402

TABLES.update(_SCENARIOS)
