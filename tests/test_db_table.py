"""The table state machine (delos_ref/db/table.py), driven directly: memory storage, and LMDB
where the two must agree."""

from __future__ import annotations

import random

import pytest

from delos_ref.db.table import (
    APPLIED_KEY,
    BUG_NO_DEDUP,
    DEDUP,
    META,
    TABLES,
    BadCommand,
    Command,
    TableState,
    decode_command,
    decode_entry,
    encode_batch,
    encode_command,
)
from delos_ref.effects import Write
from delos_ref.storage import LmdbStorage, MemoryStorage


def cmd(op, *arg, client="c", seq=0, floor=0):
    return encode_command(Command(client, seq, floor, op, tuple(arg)))


class Log:
    """A table and the log it plays, one position per call."""

    def __init__(self, storage=None, bugs=frozenset()):
        self.storage = storage or MemoryStorage()
        self.table = TableState(self.storage, bugs=bugs)
        self.seq = 0

    def write(self, op, *arg, client="c", seq=None, floor=None):
        if seq is None:
            seq, self.seq = self.seq, self.seq + 1
        entry = cmd(op, *arg, client=client, seq=seq, floor=seq if floor is None else floor)
        return self.table.apply(self.table.applied, [entry])[0].result


def test_put_get_delete():
    log = Log()
    assert log.write("put", "a", "1") is None
    assert log.table.get("a") == "1"
    log.write("put", "a", "2")
    assert log.table.get("a") == "2"
    log.write("delete", "a")
    assert log.table.get("a") is None
    assert log.table.applied == 3


def test_cas_compares_with_absent_as_none():
    log = Log()
    assert log.write("cas", "k", "x", "1") is False  # absent is not "x"
    assert log.table.get("k") is None
    assert log.write("cas", "k", None, "1") is True  # create only if absent
    assert log.write("cas", "k", None, "2") is False
    assert log.write("cas", "k", "1", "2") is True
    assert log.write("cas", "k", "2", None) is True  # new=None deletes
    assert log.table.get("k") is None


def test_txn_is_all_or_nothing():
    log = Log()
    log.write("put", "a", "1")
    assert log.write("txn", (("a", "1"), ("b", "nope")), (("a", "9"), ("c", "3"))) is False
    assert (log.table.get("a"), log.table.get("c")) == ("1", None)  # the failed txn wrote nothing
    assert log.write("txn", (("a", "1"), ("b", None)), (("a", "9"), ("c", "3"), ("a", "10"))) is True
    assert (log.table.get("a"), log.table.get("c")) == ("10", "3")  # writes in order
    assert log.write("txn", (), (("c", None),)) is True
    assert log.table.get("c") is None


def test_scan_prefix_and_range_are_bounded():
    log = Log()
    for k in ("a1", "a2", "a3", "b1", "b\xff"):
        log.write("put", k, k.upper())
    assert log.table.scan(prefix="a") == [("a1", "A1"), ("a2", "A2"), ("a3", "A3")]
    assert log.table.scan(prefix="a", limit=2) == [("a1", "A1"), ("a2", "A2")]
    assert log.table.scan(start="a2", end="b1") == [("a2", "A2"), ("a3", "A3")]
    assert log.table.scan(prefix="b") == [("b1", "B1"), ("b\xff", "b\xff".upper())]
    with pytest.raises(BadCommand):
        log.table.scan(prefix="a", start="a")
    with pytest.raises(BadCommand):
        log.table.scan(limit=0)


def test_a_retried_command_takes_effect_once_and_every_copy_gets_its_result():
    log = Log()
    first = cmd("cas", "k", None, "1", seq=0)
    assert log.table.apply(0, [first])[0].result is True
    log.write("put", "k", "2", client="other", seq=0)
    # The copy of seq 0 lands again later: no effect, the first copy's result.
    assert log.table.apply(2, [first])[0].result is True
    assert log.table.get("k") == "2"


def test_without_dedup_the_copy_takes_effect_again():
    log = Log(bugs=frozenset([BUG_NO_DEDUP]))
    first = cmd("put", "k", "1", seq=0)
    log.table.apply(0, [first])
    log.write("put", "k", "2", client="other", seq=0)
    log.table.apply(2, [first])
    assert log.table.get("k") == "1"  # the bug: an old write overwrote a newer one


def test_the_floor_forgets_answered_results_and_ignores_their_late_copies():
    log = Log()
    copy0 = cmd("put", "k", "old", seq=0, floor=0)
    log.table.apply(0, [copy0])
    assert log.storage.scan(DEDUP)  # remembered
    log.write("put", "k", "new", seq=1, floor=1)  # the client has its answer for seq 0
    assert len(log.storage.scan(DEDUP)) == 1  # only seq 1 is remembered
    log.table.apply(2, [copy0])  # a late copy of seq 0: below the floor, no effect
    assert log.table.get("k") == "new"


@pytest.mark.parametrize("step", [1, 3, 64, 65, 500])
def test_a_floor_step_of_any_size_forgets_every_result_below_it(step):
    """Small steps delete the results by key, long ones scan (FLOOR_STEP_DELETES): both
    leave exactly the results at or above the floor, in a batch or entry by entry."""
    log = Log()
    outstanding = [cmd("put", f"k{s}", "v", client="c", seq=s, floor=0) for s in range(step + 2)]
    log.table.apply(0, outstanding[:-1])  # seqs 0..step answered, all results remembered
    assert len(log.storage.scan(DEDUP)) == step + 1
    other = cmd("put", "o", "v", client="c2", seq=0, floor=0)  # another client's result stays
    log.table.apply(step + 1, [other, cmd("put", "k", "v", client="c", seq=step + 1, floor=step)])
    left = sorted(k for k, _ in log.storage.scan(DEDUP))
    assert left == sorted([b"c\0" + step.to_bytes(8, "big"), b"c\0" + (step + 1).to_bytes(8, "big"), b"c2\0" + bytes(8)])


def test_one_batch_is_one_transaction_with_the_applied_position():
    storage = MemoryStorage()
    table = TableState(storage)
    entries = [cmd("put", f"k{i}", str(i), seq=i, floor=i) for i in range(5)]
    syncs = storage.syncs
    out = table.apply(0, entries)
    assert [a.pos for a in out] == list(range(5))
    assert storage.syncs == syncs + 1  # group apply: one synced write
    assert storage.get(META, APPLIED_KEY) == (5).to_bytes(8, "big")


def test_exactly_once_across_a_crash_between_batches():
    """A crash loses nothing synced and nothing is half applied: replaying the log from the
    recovered applied position gives the same table as a replica that never crashed."""
    entries = [cmd("cas", "n", str(i) if i else None, str(i + 1), seq=i, floor=i) for i in range(6)]
    storage = MemoryStorage()
    table = TableState(storage)
    table.apply(0, entries[:3])
    storage.crash()  # after the first batch's sync
    recovered = TableState(storage)
    assert recovered.applied == 3
    recovered.apply(recovered.applied, entries[recovered.applied:])
    reference = TableState(MemoryStorage())
    reference.apply(0, entries)
    assert recovered.get("n") == "6" and recovered.digest() == reference.digest()


def test_a_write_that_was_not_synced_is_lost_together_with_its_position():
    storage = MemoryStorage()
    table = TableState(storage)
    table.apply(0, [cmd("put", "a", "1", seq=0)])
    storage.write([], sync=False)
    storage.crash()
    assert TableState(storage).applied == 1


def test_malformed_entries_are_skipped_but_advance_the_position():
    log = Log()
    out = log.table.apply(0, [b"not a command", b"KV1\xff\xff", cmd("put", "a", "1")])
    assert [a.command is None for a in out] == [True, True, False]
    assert log.table.applied == 3 and log.table.get("a") == "1"


@pytest.mark.parametrize(
    "op,arg",
    [("put", ("k",)), ("put", ("", "v")), ("put", ("k", None)), ("cas", ("k", 1, "v")), ("txn", ((("k",),), ())), ("drop", ("k",)), ("put", ("k" * 2000, "v"))],
)
def test_malformed_commands_are_refused(op, arg):
    with pytest.raises(BadCommand):
        Command("c", 0, 0, op, arg)


def test_encoding_roundtrip():
    c = Command("c1", 7, 3, "txn", ((("a", None),), (("b", "1"),)))
    assert decode_command(encode_command(c)) == c


def test_a_snapshot_restores_the_same_state():
    log = Log()
    for i in range(10):
        log.write("put", f"k{i % 3}", str(i))
    other = TableState(MemoryStorage())
    other.apply(0, [cmd("put", "junk", "x", client="z")])
    other.restore(log.table.dump())
    assert other.applied == log.table.applied and other.digest() == log.table.digest()
    assert other.get("junk") is None


def test_deferred_sync_loses_whole_batches_and_replay_gives_the_same_table():
    """apply(sync=False): a crash before sync() rolls back to the durable position, and
    replaying the log from there makes the same decisions (dedup included)."""
    entries = [cmd("cas", "n", str(i) if i else None, str(i + 1), seq=i, floor=i) for i in range(4)]
    entries.append(entries[3])  # a retried copy of seq 3: deduplicated
    storage = MemoryStorage()
    table = TableState(storage)
    table.apply(0, entries[:2], sync=False)
    assert (table.applied, table.durable) == (2, 0)
    assert table.sync() == 2 and storage.syncs == 1
    table.apply(2, entries[2:], sync=False)
    storage.crash()
    recovered = TableState(storage)
    assert (recovered.applied, recovered.durable, recovered.get("n")) == (2, 2, "2")
    recovered.apply(2, entries[2:])
    reference = TableState(MemoryStorage())
    reference.apply(0, entries)
    assert recovered.get("n") == "4" and recovered.digest() == reference.digest()


def test_a_batch_entry_applies_each_command_once_in_order_at_one_position():
    c = [Command("a", 0, 0, "cas", ("n", None, "1")), Command("b", 0, 0, "cas", ("n", "1", "2")), Command("a", 0, 0, "cas", ("n", None, "1"))]
    entry = encode_batch(c)
    assert entry.startswith(b"KVB") and decode_entry(entry) == c
    table = TableState(MemoryStorage())
    out = table.apply(0, [entry, cmd("put", "x", "y", client="z")])
    # the third command is a copy of the first (same client and seq): the first one's result
    assert [(a.pos, a.command, a.result) for a in out] == [(0, c[0], True), (0, c[1], True), (0, c[2], True), (1, decode_command(cmd("put", "x", "y", client="z")), None)]
    assert table.applied == 2 and table.get("n") == "2"  # the copy did not set n back to "1"
    later = table.apply(2, [encode_batch([c[1]])])  # a batch of one is a plain KV1 entry
    assert later[0].result is True and table.get("n") == "2" and table.applied == 3


def test_a_malformed_command_inside_a_batch_is_skipped_alone():
    from transports.codec import encode_value

    good = Command("a", 0, 0, "put", ("k", "v"))
    entry = b"KVB" + encode_value([["a", 0, 0, "drop", ["k"]], ["", 1, 0, "put", ["k", "w"]], 7, ["a", 0, 0, "put", ["k", "v"]]])
    assert decode_entry(entry) == [good]
    table = TableState(MemoryStorage())
    out = table.apply(0, [entry, b"KVB\xff", b"KVB" + encode_value("not a list")])
    assert [(a.pos, a.command) for a in out] == [(0, good), (1, None), (2, None)]
    assert table.applied == 3 and table.get("k") == "v"


# ----------------------------------------------------- the same table on LMDB and in memory


@pytest.fixture(params=["memory", "lmdb"])
def any_storage(request, tmp_path):
    if request.param == "memory":
        yield MemoryStorage()
        return
    storage = LmdbStorage(tmp_path / "table", TABLES)
    yield storage
    storage.close()


def test_a_transaction_reads_its_own_writes_and_commits_them_together(any_storage):
    any_storage.write([Write(DEDUP, b"a", b"1"), Write(DEDUP, b"b", b"2"), Write(DEDUP, b"d", b"4")])
    with any_storage.transaction() as txn:
        txn.put(DEDUP, b"b", None)
        txn.put(DEDUP, b"c", b"3")
        assert txn.get(DEDUP, b"b") is None and txn.get(DEDUP, b"c") == b"3" and txn.get(DEDUP, b"a") == b"1"
        assert txn.keys_in(DEDUP, b"a", b"d") == [b"a", b"c"]  # its delete and its insert, "d" excluded
    assert [k for k, _ in any_storage.scan(DEDUP)] == [b"a", b"c", b"d"]


def test_a_transaction_that_raises_changes_nothing(any_storage):
    any_storage.write([Write(DEDUP, b"a", b"1")])
    with pytest.raises(RuntimeError):
        with any_storage.transaction() as txn:
            txn.put(DEDUP, b"a", None)
            txn.put(DEDUP, b"b", b"2")
            raise RuntimeError("a bug in the middle of an apply")
    assert any_storage.scan(DEDUP) == [(b"a", b"1")]


def test_the_table_on_lmdb_makes_the_decisions_it_makes_in_memory(tmp_path):
    """LMDB applies a batch in one native write transaction, memory through an overlay: the
    same log gives the same results, the same dedup and floor state, the same digest. The log
    mixes every op, duplicates, late copies below the floor, and floor steps on both sides of
    FLOOR_STEP_DELETES (the scan path)."""
    rng = random.Random(5)
    entries, seqs = [], {"a": 0, "b": 0}
    for _ in range(400):
        client = rng.choice("ab")
        if rng.random() < 0.15 and seqs[client]:  # a retried copy, maybe below the floor by now
            s = rng.randrange(seqs[client])
        else:
            s = seqs[client] = seqs[client] + rng.choice([1, 1, 1, 70])
        floor = max(0, s - rng.choice([0, 0, 3, 80]))
        key = f"k{rng.randrange(6)}"
        op, arg = rng.choice([("put", (key, str(s))), ("delete", (key,)), ("cas", (key, None, str(s))),
                              ("txn", (((key, None),), ((key, "t"), (f"k{rng.randrange(6)}", None))))])
        entries.append(encode_command(Command(f"client-{client}", s, floor, op, arg)))
    memory = TableState(MemoryStorage())
    lmdb_storage = LmdbStorage(tmp_path / "table", TABLES)
    on_lmdb = TableState(lmdb_storage)
    results = {"memory": [], "lmdb": []}
    at = 0
    while at < len(entries):
        n = rng.randint(1, 9)
        for name, table in (("memory", memory), ("lmdb", on_lmdb)):
            results[name] += [a.result for a in table.apply(at, entries[at:at + n], sync=False)]
        at += n
    assert results["memory"] == results["lmdb"] and True in results["memory"] and False in results["memory"]
    assert on_lmdb.digest() == memory.digest() and on_lmdb.applied == len(entries)
    lmdb_storage.close()
