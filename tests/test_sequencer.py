"""Table tests of the sequencer core, one per rule (docs/design.md §5; sequencer.py's docstring).

The sequencer is pure: each test activates a loglet over LogServers s1..s3, feeds appends,
``Stored`` acknowledgements and timer firings, and reads the effects.
"""

from __future__ import annotations

from delos_ref.effects import Emit, Fail, Incoming, Persist, Reply, Send, SetTimer, TimerFired
from delos_ref.loglet.native.messages import (
    Activate,
    Append,
    AppendReply,
    KnownTailQuery,
    NativeLogletConfig,
    SequencerStatus,
    Store,
    Stored,
)
from delos_ref.loglet.native.sequencer import BUG_ACK_BEFORE_MAJORITY, FLUSH_TIMER, TICK_TIMER, SequencerCore, SequencerLimits
from delos_ref.loglet.native.storage import SEQUENCER, recover_sequencer
from delos_ref.storage import MemoryStorage

L = "L1"
SERVERS = ("s1", "s2", "s3")
CFG = NativeLogletConfig(L, "q1", SERVERS)


def of(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


def started(**kw) -> SequencerCore:
    core = SequencerCore("q1", **kw)
    fx = core.handle(Incoming("c0", 1, Activate(CFG)))
    assert isinstance(replied_msg(fx), SequencerStatus)
    return core


def replied_msg(fx):
    (reply,) = of(fx, Reply)
    return reply.msg


def append(core, rid, *entries, src="c1"):
    return core.handle(Incoming(src, rid, Append(L, tuple(entries), 0)))


def flush(core):
    return core.handle(TimerFired(FLUSH_TIMER))


def ack(core, server, tail, sealed=False):
    return core.handle(Incoming(server, 0, Stored(L, tail, sealed, False, 0)))


def stores(fx) -> dict[str, Store]:
    return {e.dst: e.msg for e in of(fx, Send)}


def acked_rids(fx) -> list[int]:
    return [e.rid for e in of(fx, Reply)]


# ------------------------------------------------------------------------- activation


def test_sequencer_refuses_appends_for_a_loglet_it_was_not_activated_for():
    (fail,) = of(SequencerCore("q1").handle(Incoming("c1", 1, Append(L, (b"a",), 0))), Fail)
    assert fail.code == "unknown_loglet"


def test_sequencer_persists_its_served_marker_before_it_confirms_activation():
    fx = SequencerCore("q1").handle(Incoming("c1", 1, Activate(CFG)))
    kinds = [type(e) for e in fx if not isinstance(e, Emit)]
    assert kinds == [Persist, Reply]
    storage = MemoryStorage()
    storage.write(fx[0].writes)
    assert recover_sequencer(storage) == frozenset([L]) and fx[0].writes[0].table == SEQUENCER


def test_sequencer_activation_is_idempotent():
    core = started()
    fx = core.handle(Incoming("c2", 5, Activate(CFG)))
    assert not of(fx, Persist) and replied_msg(fx) == SequencerStatus(L, 0, 0, False)


def test_sequencer_refuses_to_activate_a_loglet_sequenced_elsewhere():
    other = NativeLogletConfig(L, "q2", SERVERS)
    (fail,) = of(SequencerCore("q1").handle(Incoming("c1", 1, Activate(other))), Fail)
    assert fail.code == "bad_request"


def test_sequencer_restarted_never_serves_a_loglet_it_served_before():
    core = SequencerCore("q1", frozenset([L]))
    (fail,) = of(core.handle(Incoming("c1", 1, Activate(CFG))), Fail)
    assert fail.code == "unavailable"
    (fail,) = of(core.handle(Incoming("c1", 2, Append(L, (b"a",), 0))), Fail)
    assert fail.code == "unavailable"


# ----------------------------------------------------------------------------- append


def test_sequencer_assigns_consecutive_positions_in_arrival_order():
    core = started()
    assert [e.fields["first"] for e in of(append(core, 1, b"a") + append(core, 2, b"b", b"c") + append(core, 3, b"d"), Emit)] == [0, 1, 3]


def test_sequencer_batches_queued_appends_into_one_store_per_server():
    core = started()
    fx = append(core, 1, b"a") + append(core, 2, b"b")
    assert of(fx, SetTimer) == [SetTimer(FLUSH_TIMER, 0.0), SetTimer(TICK_TIMER, core.limits.tick_s)]
    out = stores(flush(core))
    assert sorted(out) == list(SERVERS), "entries go to all LogServers"
    assert all(s == Store(L, 0, (b"a", b"b"), 0) for s in out.values())


def test_sequencer_splits_a_store_at_the_entry_bound():
    core = started(limits=SequencerLimits(max_store_entries=2, max_window=8, max_retained=8, max_dedupe=8))
    append(core, 1, b"a", b"b")
    append(core, 2, b"c")
    first = stores(flush(core))
    assert first["s1"].entries == (b"a", b"b")
    ack(core, "s1", 2)
    assert stores(flush(core))["s1"] == Store(L, 2, (b"c",), 0)


def test_sequencer_gathers_appends_while_a_server_has_a_store_unanswered():
    core = started()
    append(core, 1, b"a")
    assert stores(flush(core))["s1"].entries == (b"a",), "a lone append leaves at once"
    append(core, 2, b"b")
    append(core, 3, b"c")
    assert stores(flush(core)) == {}, "every server is still busy with the first Store"
    ack(core, "s2", 1)
    assert stores(flush(core)) == {"s2": Store(L, 1, (b"b", b"c"), 0)}, "one batch when it answers"


def test_across_a_slow_link_more_stores_wait_for_one_server():
    """Rule 2 across a slow network: with a measured round trip of 10 ms to s2 (an input,
    ``round_trip``), five Stores may await its answer, one per 2 ms of round trip; s1 and s3,
    on loopback or not measured, keep one."""
    from delos_ref.loglet.native.sequencer import MAX_PIPELINE, stores_in_flight

    assert [stores_in_flight(rtt, 1) for rtt in (None, 0.0001, 0.004, 0.010, 0.5)] == [1, 1, 2, 5, MAX_PIPELINE]
    core = started(round_trip={"s2": 0.010}.get)
    sent = {s: 0 for s in SERVERS}
    for rid in range(1, 8):
        append(core, rid, f"e{rid}".encode())
        for server in stores(flush(core)):
            sent[server] += 1
    assert sent == {"s1": 1, "s2": 5, "s3": 1}


def test_sequencer_acks_only_after_a_majority_stored():
    core = started()
    append(core, 1, b"a")
    flush(core)
    assert acked_rids(ack(core, "s1", 1)) == []
    fx = ack(core, "s3", 1)
    assert of(fx, Reply)[0].msg == AppendReply(0, 1)


def test_sequencer_acks_in_position_order():
    core = started()
    append(core, 1, b"a")
    append(core, 2, b"b", b"c")
    append(core, 3, b"d")
    flush(core)
    ack(core, "s1", 4)
    assert acked_rids(ack(core, "s2", 4)) == [1, 2, 3]


def test_sequencer_does_not_ack_a_position_while_an_earlier_one_is_uncommitted():
    core = started()
    append(core, 1, b"a")
    append(core, 2, b"b")
    flush(core)
    # Cumulative tails: a server that holds 1 holds 0 too; one at tail 2 and one at tail 1
    # commit exactly position 0.
    ack(core, "s1", 2)
    assert acked_rids(ack(core, "s2", 1)) == [1]


def test_sequencer_piggybacks_known_tail_on_every_store():
    core = started()
    append(core, 1, b"a")
    flush(core)
    ack(core, "s1", 1)
    ack(core, "s2", 1)
    append(core, 2, b"b")
    assert {s.known_tail for s in stores(flush(core)).values()} == {1}


def test_sequencer_pushes_known_tail_when_no_entry_would_carry_it():
    core = started()
    append(core, 1, b"a")
    flush(core)
    ack(core, "s1", 1)
    fx = ack(core, "s2", 1)
    assert SetTimer(FLUSH_TIMER, 0.0) in fx
    out = stores(flush(core))
    assert out["s3"] == Store(L, 1, (), 1), "an empty store carries the new known_tail"


def test_sequencer_retries_a_slow_server_from_its_tail_until_it_has_everything():
    core = started()
    append(core, 1, b"a", b"b")
    flush(core)
    ack(core, "s1", 2)
    ack(core, "s2", 2)
    ack(core, "s3", 1)
    flush(core)  # the known_tail push
    assert stores(core.handle(TimerFired(TICK_TIMER))) == {}, "first tick: s3 may still be in progress"
    fx = core.handle(TimerFired(TICK_TIMER))
    assert stores(fx) == {"s3": Store(L, 1, (b"b",), 2)}, "second tick without progress: resend from its tail"
    assert SetTimer(TICK_TIMER, core.limits.tick_s) in fx
    ack(core, "s3", 2)
    assert not of(core.handle(TimerFired(TICK_TIMER)), SetTimer), "everyone has everything: stop ticking"


def test_sequencer_duplicate_request_gets_one_position():
    core = started()
    append(core, 1, b"a")
    assert append(core, 1, b"a") == [], "a resend of a pending request waits for the same answer"
    flush(core)
    ack(core, "s1", 1)
    assert acked_rids(ack(core, "s2", 1)) == [1]
    assert of(append(core, 1, b"a"), Reply)[0].msg.first == 0, "a resend after the ack gets the same position"
    assert core.loglet(L).next_pos == 1


def test_sequencer_refuses_with_busy_when_its_window_is_full():
    core = started(limits=SequencerLimits(max_window=2, max_retained=4, max_dedupe=4))
    append(core, 1, b"a", b"b")
    (fail,) = of(append(core, 2, b"c"), Fail)
    assert fail.code == "busy" and core.loglet(L).next_pos == 2, "refused before taking a position"
    flush(core)
    ack(core, "s1", 2)
    ack(core, "s2", 2)
    assert not of(append(core, 3, b"c"), Fail), "room again once the window committed"


def test_sequencer_leaves_behind_a_server_that_falls_beyond_retention():
    core = started(limits=SequencerLimits(max_window=2, max_retained=2, max_dedupe=4))
    for rid in range(1, 4):
        append(core, rid, b"x")
        flush(core)
        ack(core, "s1", rid)
        ack(core, "s2", rid)
    lg = core.loglet(L)
    assert lg.base == 1 and not lg.active("s3")
    assert "s3" not in stores(flush(core) + core.handle(TimerFired(TICK_TIMER)))


# ------------------------------------------------------------------------------- seal


def test_sequencer_fails_pending_appends_once_a_majority_answers_sealed():
    core = started()
    append(core, 1, b"a")
    append(core, 2, b"b")
    flush(core)
    ack(core, "s1", 0, sealed=True)
    fx = ack(core, "s2", 0, sealed=True)
    assert [f.code for f in of(fx, Fail)] == ["sealed_in_flight", "sealed_in_flight"]
    (fail,) = of(append(core, 3, b"c"), Fail)
    assert fail.code == "sealed", "later appends fail definitely"
    assert core.handle(Incoming("c1", 9, KnownTailQuery(L)))[0].msg.sealed


def test_sequencer_commits_what_a_majority_stored_before_it_sealed():
    core = started()
    append(core, 1, b"a")
    append(core, 2, b"b")
    flush(core)
    ack(core, "s1", 1)
    assert acked_rids(ack(core, "s2", 1)) == [1]
    ack(core, "s1", 1, sealed=True)
    fx = ack(core, "s2", 1, sealed=True)
    assert [f.rid for f in of(fx, Fail)] == [2]


def test_sequencer_does_not_count_tails_reported_by_sealed_servers():
    # s1 stored 0..1 itself; s2's tail of 2 came from a repair after its seal. Counting it
    # would acknowledge position 1, which a sealed check_tail on {s2, s3} may have excluded.
    core = started()
    append(core, 1, b"a")
    append(core, 2, b"b")
    flush(core)
    ack(core, "s1", 2)
    assert acked_rids(ack(core, "s2", 2, sealed=True)) == []
    assert core.loglet(L).known_tail == 0


def test_sequencer_keeps_committing_on_the_rest_when_a_minority_is_sealed():
    core = started()
    append(core, 1, b"a")
    flush(core)
    ack(core, "s1", 0, sealed=True)
    ack(core, "s2", 1)
    assert acked_rids(ack(core, "s3", 1)) == [1]


def test_sequencer_ignores_acknowledgements_from_strangers_and_impossible_tails():
    core = started()
    append(core, 1, b"a")
    flush(core)
    assert ack(core, "s9", 1) == []
    assert ack(core, "s1", 5) == [], "a tail beyond what was assigned is not this incarnation's"
    ack(core, "s1", 1)
    assert core.loglet(L).known_tail == 0


# -------------------------------------------------------------------------- bug switch


def test_bug_switch_sequencer_acks_before_a_majority():
    core = started(bugs=frozenset([BUG_ACK_BEFORE_MAJORITY]))
    append(core, 1, b"a")
    flush(core)
    assert acked_rids(ack(core, "s1", 1)) == [1]
