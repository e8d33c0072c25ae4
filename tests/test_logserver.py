"""Table tests of the LogServer core, one per rule (docs/design.md §5; logserver.py's docstring).

The core is pure, so each test feeds it messages and reads the effects it returns; where a
rule is about durability, the Persist effects are applied to a MemoryStorage, which is then
crashed and recovered. Also here: the scan that keeps every loglet core free of I/O imports.
"""

from __future__ import annotations



from delos_ref.effects import Emit, Fail, Incoming, Persist, Reply, Send, SetTimer, TimerFired
from delos_ref.loglet.native import storage as layout
from delos_ref.loglet.native.logserver import BUG_ACCEPT_AFTER_SEAL, PURGE_TIMER, LogServerCore, LogServerLimits, ReadEntries
from delos_ref.loglet.native.messages import ReadRange, ReadReply, Repair, Seal, Store, Stored, TailQuery, TailReply, Trim
from delos_ref.storage import MemoryStorage

L = "L1"
SEQ = "q1"


def store(first, *entries, known=0, loglet=L):
    return Incoming(SEQ, 0, Store(loglet, first, tuple(entries), known))


def request(msg, rid=7, src="c1"):
    return Incoming(src, rid, msg)


def of(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


def stored(effects) -> Stored:
    (send,) = of(effects, Send)
    assert send.dst == SEQ
    return send.msg


def replied(effects):
    (reply,) = of(effects, Reply)
    return reply.msg


def apply(storage: MemoryStorage, effects) -> None:
    """What the runtime does with a batch's persists: one synced write."""
    writes = [w for e in of(effects, Persist) for w in e.writes]
    if writes:
        storage.write(writes, sync=True)


# ----------------------------------------------------------------------------- store


def test_logserver_stores_entries_and_acks_cumulative_local_tail():
    core = LogServerCore("s1")
    fx = core.handle(store(0, b"a", b"b", b"c"))
    assert stored(fx) == Stored(L, 3, False, False, 0)
    assert core.state(L).local_tail == 3


def test_logserver_writes_metadata_in_the_same_transaction_as_entries():
    core = LogServerCore("s1")
    (persist,) = of(core.handle(store(0, b"a", b"b")), Persist)
    tables = [w.table for w in persist.writes]
    assert tables == [layout.ENTRIES, layout.ENTRIES, layout.META]


def test_logserver_persists_before_it_acknowledges():
    fx = LogServerCore("s1").handle(store(0, b"a"))
    kinds = [type(e) for e in fx if not isinstance(e, Emit)]
    assert kinds == [Persist, Send], "the ack follows the persist (the runtime syncs in between)"


def test_logserver_acknowledges_a_duplicate_store_without_rewriting():
    core = LogServerCore("s1")
    core.handle(store(0, b"a", b"b"))
    fx = core.handle(store(0, b"a", b"b"))
    assert not of(fx, Persist)
    assert stored(fx).local_tail == 2


def test_logserver_holds_early_entries_until_the_gap_closes():
    core = LogServerCore("s1")
    fx = core.handle(store(2, b"c"))  # overtook the store of 0..1
    assert not of(fx, Persist) and stored(fx) == Stored(L, 0, False, True, 0)
    fx = core.handle(store(0, b"a", b"b"))
    (persist,) = of(fx, Persist)
    assert [layout.key_position(w.key) for w in persist.writes if w.table == layout.ENTRIES] == [0, 1, 2]
    assert stored(fx) == Stored(L, 3, False, False, 0)


def test_logserver_refuses_positions_beyond_the_hold_bound():
    core = LogServerCore("s1", limits=LogServerLimits(max_held=4))
    fx = core.handle(store(10, b"far"))
    assert stored(fx).gap and stored(fx).local_tail == 0
    core.handle(store(0, b"a"))
    assert core.state(L).local_tail == 1, "the far entry was dropped, not held"


def test_logserver_ignores_a_known_tail_push_but_learns_it():
    core = LogServerCore("s1")
    assert core.handle(store(0, known=5)) == []
    assert replied(core.handle(request(TailQuery(L, 0)))).known_tail == 5


def test_logserver_keeps_the_maximum_known_tail():
    core = LogServerCore("s1")
    core.handle(store(0, b"a", known=4))
    core.handle(store(1, b"b", known=2))
    assert stored(core.handle(store(2, b"c", known=3))).known_tail == 4


def test_logserver_keys_state_by_loglet_id():
    core = LogServerCore("s1")
    core.handle(store(0, b"a", b"b", loglet="A"))
    core.handle(store(0, b"x", loglet="B"))
    core.handle(request(Seal("A", 0)))
    assert (core.state("A").local_tail, core.state("A").sealed) == (2, True)
    assert (core.state("B").local_tail, core.state("B").sealed) == (1, False)
    assert stored(core.handle(store(1, b"y", loglet="B"))).local_tail == 2


def test_logserver_bounds_the_number_of_loglets():
    core = LogServerCore("s1", limits=LogServerLimits(max_loglets=1))
    core.handle(store(0, b"a", loglet="A"))
    assert core.handle(store(0, b"a", loglet="B")) == []
    (fail,) = of(core.handle(request(Seal("B", 0))), Fail)
    assert fail.code == "too_many_loglets"


# ------------------------------------------------------------------------------ seal


def test_logserver_rejects_append_after_seal():
    core = LogServerCore("s1")
    core.handle(store(0, b"a"))
    core.handle(request(Seal(L, 0)))
    fx = core.handle(store(1, b"b"))
    assert not of(fx, Persist)
    assert stored(fx) == Stored(L, 1, True, False, 0)
    assert core.state(L).local_tail == 1


def test_logserver_seal_is_durable_before_the_reply():
    core = LogServerCore("s1")
    core.handle(store(0, b"a"))
    fx = core.handle(request(Seal(L, 0)))
    kinds = [type(e) for e in fx if not isinstance(e, Emit)]
    assert kinds == [Persist, Reply]
    assert replied(fx) == TailReply(L, 1, True, 0, 0)


def test_logserver_seal_is_idempotent():
    core = LogServerCore("s1")
    core.handle(request(Seal(L, 0)))
    fx = core.handle(request(Seal(L, 0), rid=8))
    assert not of(fx, Persist), "a second seal changes nothing"
    assert replied(fx).sealed


def test_logserver_seal_of_an_unknown_loglet_persists_the_bit():
    storage = MemoryStorage()
    core = LogServerCore("s1")
    apply(storage, core.handle(request(Seal("never-seen", 0))))
    assert layout.recover_logserver(storage)["never-seen"].sealed


def test_logserver_drops_held_entries_on_seal():
    core = LogServerCore("s1")
    core.handle(store(1, b"early"))
    core.handle(request(Seal(L, 0)))
    fx = core.handle(request(Repair(L, 0, (b"a",), 0, 0)))
    assert core.state(L).local_tail == 1, "the held entry at 1 never becomes durable after the seal"
    assert replied(fx).local_tail == 1


def test_logserver_tail_query_of_an_unknown_loglet_is_empty_unsealed_and_changes_nothing():
    core = LogServerCore("s1")
    fx = core.handle(request(TailQuery("nope", 0)))
    assert replied(fx) == TailReply("nope", 0, False, 0, 0)
    assert core.state("nope") is None and not of(fx, Persist)


# ---------------------------------------------------------------------------- repair


def test_logserver_accepts_repair_writes_when_sealed():
    core = LogServerCore("s1")
    core.handle(store(0, b"a"))
    core.handle(request(Seal(L, 0)))
    fx = core.handle(request(Repair(L, 1, (b"b", b"c"), 0, 0)))
    assert of(fx, Persist)
    assert replied(fx) == TailReply(L, 3, True, 0, 0)


def test_logserver_repair_seals_an_unsealed_target_first():
    core = LogServerCore("s1")
    fx = core.handle(request(Repair(L, 0, (b"a",), 0, 0)))
    kinds = [type(e) for e in fx if not isinstance(e, Emit)]
    assert kinds == [Persist, Persist, Reply] and replied(fx).sealed
    assert stored(core.handle(store(1, b"b"))).sealed, "a repaired server refuses the sequencer"


def test_logserver_repair_from_a_trimmed_source_skips_trimmed_positions():
    core = LogServerCore("s1")
    fx = core.handle(request(Repair(L, 5, (b"f",), 5, 0)))
    assert replied(fx).local_tail == 6 and replied(fx).trim_point == 5


# ------------------------------------------------------------------------------ read


def test_logserver_read_is_an_effect_clamped_to_its_local_tail():
    core = LogServerCore("s1")
    core.handle(store(0, b"a", b"b", b"c", known=2))
    (read,) = core.handle(request(ReadRange(L, 1, 100, 50, 0)))
    assert isinstance(read, ReadEntries)
    assert (read.lo, read.hi, read.limit, read.local_tail, read.known_tail) == (1, 3, 50, 3, 2)


def test_logserver_read_at_or_past_its_tail_replies_empty_at_once():
    core = LogServerCore("s1")
    core.handle(store(0, b"a"))
    assert replied(core.handle(request(ReadRange(L, 1, 5, 10, 0)))) == ReadReply(L, 1, (), 1, 0, 0)


def test_logserver_read_below_the_trim_point_starts_at_the_trim_point():
    core = LogServerCore("s1")
    core.handle(store(0, b"a", b"b", b"c", b"d", known=4))
    core.handle(request(Trim(L, 2, 4)))
    (read,) = core.handle(request(ReadRange(L, 0, 4, 10, 0)))
    assert (read.lo, read.trim_point) == (2, 2)


def test_logserver_read_entries_come_from_storage_contiguously():
    storage = MemoryStorage()
    core = LogServerCore("s1")
    apply(storage, core.handle(store(0, b"a", b"b", b"c")))
    assert layout.read_entries(storage, L, 1, 3, 10, 1 << 20) == [b"b", b"c"]
    assert layout.read_entries(storage, L, 0, 3, 2, 1 << 20) == [b"a", b"b"]


# ------------------------------------------------------------------------------ trim


def test_logserver_trim_never_goes_back():
    core = LogServerCore("s1")
    core.handle(store(0, *[b"x"] * 6, known=6))
    core.handle(request(Trim(L, 4, 6)))
    fx = core.handle(request(Trim(L, 2, 6)))
    assert not of(fx, Persist) and replied(fx).trim_point == 4


def test_logserver_trim_is_clamped_to_what_is_held_or_known_committed():
    core = LogServerCore("s1")
    core.handle(store(0, b"a", b"b"))
    assert replied(core.handle(request(Trim(L, 100, 0)))).trim_point == 2
    assert replied(core.handle(request(Trim(L, 100, 5)))).trim_point == 5
    assert core.state(L).local_tail == 5, "positions below the trim point count as held"


def test_logserver_purges_trimmed_entries_in_bounded_chunks():
    storage = MemoryStorage()
    core = LogServerCore("s1", limits=LogServerLimits(purge_chunk=3))
    apply(storage, core.handle(store(0, *[b"x"] * 8, known=8)))
    fx = core.handle(request(Trim(L, 7, 8)))
    assert of(fx, SetTimer) == [SetTimer(PURGE_TIMER, core.limits.purge_delay_s)]
    apply(storage, fx)
    rounds = 0
    while True:
        fx = core.handle(TimerFired(PURGE_TIMER))
        apply(storage, fx)
        rounds += 1
        if not of(fx, SetTimer):
            break
    assert rounds == 3
    assert [layout.key_position(k) for k, _ in storage.scan(layout.ENTRIES)] == [7]


# -------------------------------------------------------------------------- recovery


def test_logserver_recovers_seal_bit_tail_and_trim_from_storage_after_a_crash():
    storage = MemoryStorage()
    core = LogServerCore("s1")
    for item in (store(0, b"a", b"b", b"c", known=3), request(Trim(L, 1, 3)), request(Seal(L, 3))):
        apply(storage, core.handle(item))
    core.handle(store(3, b"unsynced"))  # handled but never persisted: lost by the crash
    storage.crash()
    again = LogServerCore("s1", layout.recover_logserver(storage))
    st = again.state(L)
    assert (st.local_tail, st.trim_point, st.sealed) == (3, 1, True)
    assert stored(again.handle(store(3, b"d"))).sealed, "the recovered seal bit still refuses appends"


# --------------------------------------------------------------------------- bug switch


def test_bug_switch_logserver_accepts_append_after_seal():
    core = LogServerCore("s1", bugs=frozenset([BUG_ACCEPT_AFTER_SEAL]))
    core.handle(request(Seal(L, 0)))
    fx = core.handle(store(0, b"a"))
    assert of(fx, Persist) and stored(fx) == Stored(L, 1, False, False, 0)


