"""The replica's write batching (delos_ref/db/batching.py) over a fake log append."""

from __future__ import annotations

import pytest
import trio

from delos_ref.db.batching import BatchOptions, WriteBatcher
from delos_ref.db.table import Command, decode_entry
from delos_ref.virtuallog import AppendFailed


class FakeLog:
    """Appends wait until the test releases them; positions are handed out in order."""

    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.release = trio.Event()
        self.fail_next = False

    async def append(self, entry: bytes) -> int:
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise AppendFailed("the loglet refused it")
        self.entries.append(entry)
        return len(self.entries) - 1


def put(i: int) -> Command:
    return Command(f"c{i}", 0, 0, "put", (f"k{i}", "v"))


async def test_a_lone_write_is_appended_at_once_and_writes_arriving_meanwhile_share_one_entry():
    log = FakeLog()
    seen: list[tuple[int, bytes]] = []
    batcher = WriteBatcher(log.append, options=BatchOptions(max_in_flight=1), on_appended=lambda p, e: seen.append((p, e)))
    positions: dict[int, int] = {}

    async def write(i: int) -> None:
        positions[i] = await batcher.append(put(i), 40)

    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        nursery.start_soon(write, 0)
        await trio.testing.wait_all_tasks_blocked()  # write 0 is in flight alone
        for i in range(1, 6):
            nursery.start_soon(write, i)
        await trio.testing.wait_all_tasks_blocked()
        log.release.set()
        while len(positions) < 6:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert len(log.entries) == 2 and decode_entry(log.entries[0]) == [put(0)]
    assert sorted(decode_entry(log.entries[1]), key=lambda c: c.client) == [put(i) for i in range(1, 6)]  # any order
    assert positions == {0: 0, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    assert seen == list(enumerate(log.entries))
    assert batcher.stats == {"batches": 2, "commands": 6, "joined": 0}


@pytest.mark.parametrize("max_commands,max_bytes,sizes", [(2, 10_000, [2, 2, 1]), (100, 100, [3, 2])])
async def test_a_batch_is_bounded_by_commands_and_bytes(max_commands, max_bytes, sizes):
    log = FakeLog()
    log.release.set()
    batcher = WriteBatcher(log.append, options=BatchOptions(max_in_flight=1, max_commands=max_commands, max_bytes=max_bytes))
    done: list[int] = []

    async def write(i: int) -> None:
        done.append(await batcher.append(put(i), 40))

    async with trio.open_nursery() as nursery:
        for i in range(5):  # queued before the appender starts: it finds all five waiting
            nursery.start_soon(write, i)
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(batcher.run)
        while len(done) < 5:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert [len(decode_entry(e)) for e in log.entries] == sizes


async def test_every_write_of_a_failed_batch_gets_the_failure_and_later_writes_go_on():
    log = FakeLog()
    batcher = WriteBatcher(log.append, options=BatchOptions(max_in_flight=1))
    outcomes: dict[int, object] = {}

    async def write(i: int) -> None:
        try:
            outcomes[i] = await batcher.append(put(i), 40)
        except AppendFailed as e:
            outcomes[i] = e

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(write, i)
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(batcher.run)
        log.fail_next = True
        log.release.set()
        while len(outcomes) < 3:
            await trio.sleep(0.01)
        nursery.start_soon(write, 3)
        while len(outcomes) < 4:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert all(isinstance(outcomes[i], AppendFailed) for i in range(3))
    assert outcomes[3] == 0 and decode_entry(log.entries[0]) == [put(3)]


async def test_writes_whose_writers_gave_up_before_an_appender_took_them_are_not_appended():
    """A stalled append must not leave a growing queue of commands nobody waits for: a writer
    that stops waiting (its request timed out) takes its queued command with it."""
    log = FakeLog()
    batcher = WriteBatcher(log.append, options=BatchOptions(max_in_flight=1))
    positions: dict[int, int] = {}

    async def write(i: int, patience: float) -> None:
        with trio.move_on_after(patience):
            positions[i] = await batcher.append(put(i), 40)

    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        nursery.start_soon(write, 0, 10.0)
        await trio.testing.wait_all_tasks_blocked()  # write 0's append is stalled
        for i in range(1, 5):
            nursery.start_soon(write, i, 0.05 if i % 2 else 10.0)  # 1 and 3 give up
        await trio.sleep(0.2)
        log.release.set()
        while len(positions) < 3:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert positions == {0: 0, 2: 1, 4: 1}
    assert [sorted(c.client for c in decode_entry(e)) for e in log.entries] == [["c0"], ["c2", "c4"]]


async def test_a_retried_write_still_in_flight_here_is_not_appended_again():
    """Issue 17, item 4: a client that retries a write (same client and seq) at a replica whose
    append of it is still on its way to the log -- in flight, or queued behind another --
    waits for that copy. Before, each retry added a copy (one put took 21 positions)."""
    log = FakeLog()
    batcher = WriteBatcher(log.append, options=BatchOptions(max_in_flight=1))
    answers: list[tuple[str, int]] = []

    async def write(cmd: Command, tag: str) -> None:
        answers.append((tag, await batcher.append(cmd, 40)))

    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        nursery.start_soon(write, put(0), "first")
        await trio.testing.wait_all_tasks_blocked()  # put(0) is in flight, the log stalls
        nursery.start_soon(write, put(1), "other")  # queued behind it
        await trio.testing.wait_all_tasks_blocked()
        for retry in range(3):  # retries of both while they are on their way
            nursery.start_soon(write, put(0), f"retry0.{retry}")
            nursery.start_soon(write, put(1), f"retry1.{retry}")
        await trio.testing.wait_all_tasks_blocked()
        log.release.set()
        while len(answers) < 8:
            await trio.sleep(0.01)
        nursery.start_soon(write, put(0), "after")  # once answered, a retry is a new copy
        while len(answers) < 9:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert [decode_entry(e) for e in log.entries] == [[put(0)], [put(1)], [put(0)]]
    assert sorted(answers) == sorted([("first", 0), ("other", 1), ("after", 2)] + [(f"retry0.{r}", 0) for r in range(3)] + [(f"retry1.{r}", 1) for r in range(3)])
    assert batcher.stats["joined"] == 6


async def test_a_retry_revives_a_queued_write_whose_first_writer_gave_up():
    log = FakeLog()
    batcher = WriteBatcher(log.append, options=BatchOptions(max_in_flight=1))
    got: list[int] = []

    async def write(i: int, patience: float) -> None:
        with trio.move_on_after(patience):
            got.append(await batcher.append(put(i), 40))

    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        nursery.start_soon(write, 0, 10.0)
        await trio.testing.wait_all_tasks_blocked()  # put(0) in flight
        nursery.start_soon(write, 1, 0.05)  # queued, then given up...
        await trio.sleep(0.1)
        nursery.start_soon(write, 1, 10.0)  # ...and retried before an appender took it
        await trio.testing.wait_all_tasks_blocked()
        log.release.set()
        while len(got) < 2:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert got == [0, 1] and [decode_entry(e) for e in log.entries] == [[put(0)], [put(1)]]
