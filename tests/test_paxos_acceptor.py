"""Table tests of the Paxos acceptor, one per rule (Lamport, "Paxos Made Simple" §2.2-2.5).

The acceptor is a pure core: each test feeds it requests and reads the effects it returns.
A tiny harness (:func:`ask`) applies its Persist effects to a MemoryStorage, the way the
runtime does, so restarts can be tested without trio.
"""

from __future__ import annotations


import pytest

from delos_ref.effects import Emit, Fail, Incoming, Persist, Reply, TimerFired
from delos_ref.storage import MemoryStorage
from paxos.acceptor import Acceptor
from paxos.ballot import ZERO, Ballot
from paxos.messages import Accept, Accepted, Nack, Prepare, Promise, Query, Slot, Status, Update
from paxos.storage import SLOTS_TABLE, decode_slot, load_slots, slot_write

B1, B2, B3 = Ballot(1, "p"), Ballot(2, "p"), Ballot(3, "p")
X = Update("p", 1, b"x")
Y = Update("q", 1, b"y")


def ask(acceptor: Acceptor, msg, storage: MemoryStorage | None = None, rid: int = 7):
    """Deliver one request; apply its Persist effects to ``storage``; return (reply, effects)."""
    effects = acceptor.handle(Incoming("client", rid, msg))
    if storage is not None:
        for e in effects:
            if type(e) is Persist:
                storage.write(e.writes, sync=True)
    replies = [e.msg for e in effects if type(e) is Reply]
    assert len(replies) <= 1, "one reply per request"
    return (replies[0] if replies else None), effects


def acceptor_with(instance: int, promised: Ballot, accepted: Ballot = ZERO, value: Update | None = None) -> Acceptor:
    return Acceptor({("", instance): Slot(promised, accepted, value)})


def persisted(effects) -> list:
    return [w for e in effects if type(e) is Persist for w in e.writes]


# ------------------------------------------------------------------------- phase 1b

PREPARE_TABLE = [
    # (promised, accepted, value, prepare ballot, expected reply type, promised after)
    pytest.param(ZERO, ZERO, None, B1, Promise, B1, id="fresh-acceptor-promises"),
    pytest.param(B1, ZERO, None, B2, Promise, B2, id="higher-ballot-raises-promise"),
    pytest.param(B2, ZERO, None, B2, Promise, B2, id="equal-ballot-is-a-duplicate-repromised"),
    pytest.param(B2, ZERO, None, B1, Nack, B2, id="lower-ballot-refused"),
    pytest.param(B2, B2, X, B1, Nack, B2, id="below-accepted-refused"),
    pytest.param(B2, B1, X, B3, Promise, B3, id="above-everything-promised-reporting-x"),
]


@pytest.mark.parametrize("promised, accepted, value, ballot, reply_type, promised_after", PREPARE_TABLE)
def test_acceptor_prepare_table(promised, accepted, value, ballot, reply_type, promised_after):
    """P1a and phase 1b as one table: promise iff the ballot is not below the promise."""
    acceptor = acceptor_with(1, promised, accepted, value)
    reply, _ = ask(acceptor, Prepare(1, ballot))
    assert type(reply) is reply_type
    assert acceptor.slot(1).promised == promised_after
    assert acceptor.slot(1).accepted_ballot == accepted and acceptor.slot(1).accepted_value == value


def test_acceptor_rejects_prepare_below_promise():
    """P1a: having promised b2, the acceptor must not take part in ballot b1 < b2; it says
    which ballot it promised so the proposer can jump above it."""
    acceptor = acceptor_with(1, B2)
    reply, effects = ask(acceptor, Prepare(1, B1))
    assert reply == Nack(1, B1, B2)
    assert persisted(effects) == []
    assert [e.event for e in effects if type(e) is Emit] == ["RejectPrepare"]


def test_acceptor_promise_reports_highest_accepted_proposal():
    """Phase 1b: the promise carries "the highest-numbered proposal (if any) that it has
    accepted" -- the information P2c needs."""
    acceptor = acceptor_with(1, B1, B1, X)
    reply, _ = ask(acceptor, Prepare(1, B2))
    assert reply == Promise(1, B2, B1, X, top=1)


def test_acceptor_repromises_duplicate_prepare_without_persisting():
    """Duplicates are harmless: the same Prepare twice yields the same Promise, and the second
    time nothing is written (the state did not change)."""
    acceptor = Acceptor()
    first, effects1 = ask(acceptor, Prepare(1, B1))
    second, effects2 = ask(acceptor, Prepare(1, B1))
    assert first == second == Promise(1, B1, ZERO, None, 0)
    assert len(persisted(effects1)) == 1 and persisted(effects2) == []


# ------------------------------------------------------------------------- phase 2b

ACCEPT_TABLE = [
    # (promised, accept ballot, expected reply type)
    pytest.param(ZERO, B1, Accepted, id="no-promise-accepts"),
    pytest.param(B1, B1, Accepted, id="promised-ballot-accepts"),
    pytest.param(B1, B2, Accepted, id="higher-ballot-accepts"),
    pytest.param(B2, B1, Nack, id="lower-ballot-refused"),
]


@pytest.mark.parametrize("promised, ballot, reply_type", ACCEPT_TABLE)
def test_acceptor_accept_table(promised, ballot, reply_type):
    """P1a: "An acceptor can accept a proposal numbered n iff it has not responded to a
    prepare request having a number greater than n." """
    acceptor = acceptor_with(1, promised)
    reply, _ = ask(acceptor, Accept(1, ballot, X))
    assert type(reply) is reply_type
    if reply_type is Accepted:
        assert acceptor.slot(1) == Slot(ballot, ballot, X)
    else:
        assert acceptor.slot(1) == Slot(promised)


def test_acceptor_rejects_accept_below_promise():
    """P1a: an Accept below the promise is refused, naming the promise; nothing changes."""
    acceptor = acceptor_with(1, B2)
    reply, effects = ask(acceptor, Accept(1, B1, X))
    assert reply == Nack(1, B1, B2)
    assert persisted(effects) == [] and acceptor.slot(1) == Slot(B2)
    assert [e.event for e in effects if type(e) is Emit] == ["RejectAccept"]


def test_acceptor_accept_raises_promise():
    """Accepting at b is also a promise of b: a later Prepare below b is refused (otherwise a
    proposer with a smaller ballot could learn nothing of the accepted value)."""
    acceptor = Acceptor()
    ask(acceptor, Accept(1, B2, X))
    reply, _ = ask(acceptor, Prepare(1, B1))
    assert reply == Nack(1, B1, B2)


def test_acceptor_later_accept_replaces_earlier_value():
    """An acceptor may accept several proposals; phase 1b reports the last (highest) one."""
    acceptor = Acceptor()
    ask(acceptor, Accept(1, B1, X))
    ask(acceptor, Accept(1, B2, Y))
    reply, _ = ask(acceptor, Prepare(1, B3))
    assert reply == Promise(1, B3, B2, Y, top=1)


def test_acceptor_duplicate_accept_is_idempotent():
    """Duplicates are harmless: a resent Accept is acknowledged again, and persisted once."""
    acceptor = Acceptor()
    first, effects1 = ask(acceptor, Accept(1, B1, X))
    second, effects2 = ask(acceptor, Accept(1, B1, X))
    assert first == second == Accepted(1, B1, top=1)
    assert len(persisted(effects1)) == 1 and persisted(effects2) == []


def test_acceptor_refuses_second_value_under_same_ballot():
    """One ballot carries one value: a proposer reusing a ballot for another value breaks the
    protocol, and the acceptor refuses (a definite Fail) instead of overwriting."""
    acceptor = Acceptor()
    ask(acceptor, Accept(1, B1, X))
    _, effects = ask(acceptor, Accept(1, B1, Y))
    assert [type(e) for e in effects] == [Fail] and effects[0].code == "ballot_reused"
    assert acceptor.slot(1).accepted_value == X


# ------------------------------------------------------------------- persistence

@pytest.mark.parametrize("msg", [Prepare(1, B1), Accept(1, B1, X)], ids=["prepare", "accept"])
def test_acceptor_persists_before_reply(msg):
    """§2.5: "an acceptor records its intended response in stable storage before actually
    sending the response". The Persist effect comes before the Reply (the runtime syncs every
    Persist before any later reply), and it holds the new state."""
    acceptor = Acceptor()
    _, effects = ask(acceptor, msg)
    kinds = [type(e) for e in effects]
    assert kinds.index(Persist) < kinds.index(Reply)
    (write,) = persisted(effects)
    assert write.table == SLOTS_TABLE and decode_slot(write.key, write.value) == (("", 1), acceptor.slot(1))


def test_acceptor_recovers_state_from_storage():
    """A restarted acceptor rebuilds every promise and acceptance from storage: the new
    incarnation answers exactly as the old one would have."""
    storage = MemoryStorage()
    old = Acceptor()
    ask(old, Prepare(1, B2), storage)
    ask(old, Accept(2, B1, X), storage)
    ask(old, Prepare(3, B3), storage)
    ask(old, Accept(3, B3, Y), storage)
    storage.crash()  # only synced writes survive; the runtime syncs every Persist
    new = Acceptor.recover(storage)
    assert load_slots(storage) == {("", 1): Slot(B2), ("", 2): Slot(B1, B1, X), ("", 3): Slot(B3, B3, Y)}
    assert new.top == old.top == 3
    for msg in (Prepare(1, B1), Prepare(2, B2), Query(), Accept(1, B1, Y)):
        assert ask(new, msg)[0] == ask(old, msg)[0]


def test_acceptor_forget_promise_bug_persists_nothing():
    """Teaching bug ``forget_promise``: the acceptor answers as usual but never persists, so
    after a crash it has forgotten its promise and accepts a ballot it promised to refuse."""
    storage = MemoryStorage()
    buggy = Acceptor(forget_promise=True)
    _, effects = ask(buggy, Prepare(1, B2), storage)
    assert persisted(effects) == []
    storage.crash()
    restarted = Acceptor.recover(storage, forget_promise=True)
    assert type(ask(restarted, Accept(1, B1, X))[0]) is Accepted  # the broken promise


# ------------------------------------------------------------------------- queries

def test_acceptor_query_reports_top_and_its_value():
    """Reads ask for ``top``: the highest instance with an accepted value, and that value.
    A promise alone (instance 5 here) does not raise ``top``."""
    acceptor = Acceptor()
    assert ask(acceptor, Query())[0] == Status(0, ZERO, None)
    ask(acceptor, Accept(2, B1, X))
    ask(acceptor, Accept(1, B2, Y))
    ask(acceptor, Prepare(5, B3))
    reply, effects = ask(acceptor, Query())
    assert reply == Status(2, B1, X)
    assert persisted(effects) == []  # a read changes nothing


def test_acceptor_instances_are_independent():
    """Each instance is its own single-decree Paxos: a promise in one says nothing of another."""
    acceptor = acceptor_with(1, B3)
    assert type(ask(acceptor, Prepare(2, B1))[0]) is Promise
    assert type(ask(acceptor, Accept(2, B1, X))[0]) is Accepted


def test_acceptor_one_way_request_changes_state_without_reply():
    """A request that nobody waits for (rid 0) still takes effect, but nothing is sent."""
    acceptor = Acceptor()
    effects = acceptor.handle(Incoming("client", 0, Prepare(1, B1)))
    assert Reply not in [type(e) for e in effects] and acceptor.slot(1).promised == B1


def test_acceptor_ignores_timers():
    """An acceptor only ever answers: it sets no timers and ignores firings."""
    assert Acceptor().handle(TimerFired("anything")) == []


def test_acceptor_record_round_trips_through_storage_codec():
    """The durable record is the codec's: a Slot written is the Slot read back."""
    slot = Slot(B2, B1, X)
    write = slot_write(9, slot)
    assert decode_slot(write.key, write.value) == (("", 9), slot)
    named = slot_write(9, slot, "loglet/L1")
    assert decode_slot(named.key, named.value) == (("loglet/L1", 9), slot)


# ---------------------------------------------------------------------- wire hygiene

def test_malformed_paxos_messages_are_refused_at_the_codec():
    """A peer's ill-formed request never reaches the acceptor: instance 0, an instance beyond
    the key space, or a Nack that does not name a higher promise are refused at decode."""
    import cbor2

    from transports.codec import CBOR_TAG_MESSAGE, DecodeError, decode_value

    def raw(tag: str, *fields):
        return cbor2.CBORTag(CBOR_TAG_MESSAGE, [tag, *fields])

    ballot = raw("paxos.ballot", 1, "p")
    for bad in (
        raw("paxos.prepare", 0, ballot),
        raw("paxos.prepare", 2**63, ballot),
        raw("paxos.prepare", 1, raw("paxos.ballot", 0, "p")),
        raw("paxos.nack", 1, ballot, ballot),
    ):
        with pytest.raises(DecodeError):
            decode_value(cbor2.dumps(bad))


# ------------------------------------------------------------------ named registers


def test_registers_are_independent():
    """Each register is its own sequence of instances: a promise or an acceptance in one
    changes nothing in another, and ``top`` is per register."""
    acceptor = Acceptor()
    ask(acceptor, Prepare(1, B3, "loglet/L1"))
    assert ask(acceptor, Prepare(1, B1))[0] == Promise(1, B1, ZERO, None, 0), "the chain register is untouched"
    ask(acceptor, Accept(1, B3, X, "loglet/L1"))
    ask(acceptor, Accept(2, B3, Y, "loglet/L1"))
    assert acceptor.top == 0 and acceptor.top_of("loglet/L1") == 2
    assert ask(acceptor, Query())[0] == Status(0, ZERO, None)
    assert ask(acceptor, Query("loglet/L1"))[0] == Status(2, B3, Y, "loglet/L1")
    reply, _ = ask(acceptor, Prepare(2, B1, "loglet/L1"))
    assert reply == Nack(2, B1, B3, "loglet/L1"), "a refusal names its register"


def test_named_registers_survive_a_restart():
    storage = MemoryStorage()
    old = Acceptor()
    ask(old, Accept(1, B1, X), storage)
    ask(old, Accept(1, B2, Y, "loglet/L1"), storage)
    ask(old, Prepare(4, B3, "loglet/L1/trim"), storage)
    storage.crash()
    new = Acceptor.recover(storage)
    assert load_slots(storage) == {("", 1): Slot(B1, B1, X), ("loglet/L1", 1): Slot(B2, B2, Y), ("loglet/L1/trim", 4): Slot(B3)}
    assert (new.top, new.top_of("loglet/L1"), new.top_of("loglet/L1/trim")) == (1, 1, 0)
    for msg in (Query(), Query("loglet/L1"), Prepare(1, B1, "loglet/L1"), Prepare(4, B2, "loglet/L1/trim")):
        assert ask(new, msg)[0] == ask(old, msg)[0]


@pytest.mark.parametrize("key", [b"\x00" * 7, b"x" + b"\x01" * 8, b"\xff\x00" + b"\x00" * 8], ids=["short", "no-separator", "bad-utf8"])
def test_corrupt_slot_keys_are_refused(key):
    from paxos.storage import CorruptAcceptorState

    with pytest.raises(CorruptAcceptorState):
        decode_slot(key, slot_write(1, Slot(B1)).value)


def test_register_names_are_bounded():
    with pytest.raises(ValueError):
        Prepare(1, B1, "a\x00b")
    with pytest.raises(ValueError):
        Query("r" * 201)


def test_learn_reports_a_range_of_instances_and_stops_at_the_byte_bound():
    """``Learn`` is read-only: what is accepted in each instance (ZERO/None where nothing),
    cut short once the values reach LEARN_BYTES, but never empty."""
    from paxos.acceptor import LEARN_BYTES
    from paxos.messages import Learn, Learned

    acceptor = Acceptor()
    ask(acceptor, Accept(1, B1, X, "r"))
    ask(acceptor, Accept(3, B2, Y, "r"))
    reply, effects = ask(acceptor, Learn("r", 1, 5))
    assert reply == Learned("r", 1, ((B1, X), (ZERO, None), (B2, Y), (ZERO, None)), top=3)
    assert persisted(effects) == []
    big = Update("p", 9, b"b" * (LEARN_BYTES // 2 + 1))
    for i in (1, 2, 3):
        ask(acceptor, Accept(i, B1, big, "big"))
    assert len(ask(acceptor, Learn("big", 1, 4))[0].accepted) == 1
    huge = Update("p", 10, b"h" * (LEARN_BYTES + 1))
    ask(acceptor, Accept(1, B1, huge, "huge"))
    assert ask(acceptor, Learn("huge", 1, 2))[0].accepted == ((B1, huge),), "at least one instance"
