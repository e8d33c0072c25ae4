"""Write batching: the writes that arrive while earlier appends are in flight share one log entry.

Every database write is one VirtualLog append, and an append costs the same whether its entry
holds one command or a hundred: a round trip to the sequencer, a synced write on a majority
of LogServers, and a read by every other replica. So a replica does not append each write on
its own. Writes queue here; ``max_in_flight`` appender tasks each take *everything queued*
(up to ``max_commands`` commands and about ``max_bytes`` bytes), append it as one batch entry
(:func:`~delos_ref.db.table.encode_batch`) and hand the entry's position to every write in it.

* An idle replica appends a lone write at once: batching adds no latency to it.
* Under load, each batch holds the writes that arrived during the previous appends' round
  trips, so the log's per-entry cost is shared by many writes (group commit one layer above
  the LogServers' own; Delos batches the same way above its log).
* Every command in a batch shares its append's outcome: a position, a definite failure
  (nothing of the batch is in the log) or an unknown outcome. The table still deduplicates
  each command on its own, so a batch that lands twice takes effect once.
* A command already queued or in flight here is not appended again: a client that retries
  a write (same ``(client, seq)``) at this replica while its first copy is still on its way
  to the log waits for that copy's outcome instead (issue 17, item 4: during a LogServer
  outage one ``kv put`` used to occupy 21 positions). With the VirtualLog storing each
  append at most once, a write thus takes at most one position per client attempt that
  finds no copy of it in flight here.

Pure bookkeeping over a VirtualLog: no clock, no randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import trio

from delos_ref.db.table import Command, encode_batch


@dataclass(frozen=True, slots=True)
class BatchOptions:
    # Appends of one replica in flight at once. One: the writes that arrive during an append's
    # round trip all go into the next batch. Measured (bench kv, put at 64 clients): 1 in
    # flight did ~24% more puts/s than 4, at a lower p50, because bigger batches cost the log,
    # and every replica reading it, less per write; a lone write is still appended at once.
    max_in_flight: int = 1
    max_commands: int = 256  # commands in one batch entry
    max_bytes: int = 32 * 1024  # a batch stops growing past this (one big command goes alone)

    def __post_init__(self) -> None:
        assert self.max_in_flight >= 1 and self.max_commands >= 1 and self.max_bytes >= 1, "BatchOptions: positive bounds"


@dataclass(slots=True, eq=False)
class _Queued:
    cmd: Command
    size: int
    done: trio.Event = field(default_factory=trio.Event)
    pos: int = -1
    error: BaseException | None = None
    waiters: int = 0  # writers waiting for it; none left before an appender takes it: dropped


class WriteBatcher:
    """Queues commands and appends them in batches through ``append`` (the VirtualLog's).
    ``on_appended(pos, entry)`` is told of each entry this replica put at ``pos`` before the
    writes waiting on it are woken."""

    def __init__(self, append: Callable, *, options: BatchOptions = BatchOptions(),
                 on_appended: Callable[[int, bytes], None] = lambda pos, entry: None) -> None:
        self._append = append
        self.options = options
        self._on_appended = on_appended
        # Unbounded: the replica bounds the writes it serves at once (its max_requests).
        self._send, self._queue = trio.open_memory_channel(math.inf)
        # (client, seq) -> its command queued or in flight here (at most one copy of each).
        self._pending: dict[tuple[str, int], _Queued] = {}
        self.stats = {"batches": 0, "commands": 0, "joined": 0}

    async def append(self, cmd: Command, size: int) -> int:
        """Append ``cmd`` (about ``size`` bytes encoded) in some batch; its entry's position.
        Raises what that batch's append raised. A command whose ``(client, seq)`` is already
        queued or in flight here is not appended again: this waits for that copy."""
        key = (cmd.client, cmd.seq)
        item = self._pending.get(key)
        if item is None:
            item = self._pending[key] = _Queued(cmd, size)
            self._send.send_nowait(item)
        else:
            self.stats["joined"] += 1  # a retry of a write still on its way: no second copy
        item.waiters += 1
        try:
            await item.done.wait()
        finally:
            # A writer that gave up (its request timed out, or shutdown) stops waiting. If
            # nobody waits when an appender reaches the command, it is not appended at all
            # -- the writer answered "outcome unknown", which covers that -- so a stalled
            # log does not leave a growing queue of commands nobody waits for.
            item.waiters -= 1
        if item.error is not None:
            raise item.error
        return item.pos

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The appender tasks; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            for _ in range(self.options.max_in_flight):
                nursery.start_soon(self._appender)
            task_status.started()

    def _take_queued(self, first: _Queued) -> list[_Queued]:
        batch, size = [first], first.size
        while len(batch) < self.options.max_commands and size < self.options.max_bytes:
            try:
                item = self._queue.receive_nowait()
            except trio.WouldBlock:
                break
            if item.waiters:
                batch.append(item)
                size += item.size
            else:
                self._forget(item)
        return batch

    def _forget(self, item: _Queued) -> None:
        """``item`` was appended, or dropped unwanted: a later copy of it is a new command."""
        key = (item.cmd.client, item.cmd.seq)
        if self._pending.get(key) is item:
            del self._pending[key]

    async def _appender(self) -> None:
        while True:
            first = await self._queue.receive()
            if not first.waiters:
                self._forget(first)
                continue
            batch = self._take_queued(first)
            entry = encode_batch([item.cmd for item in batch])
            pos, error = -1, None
            try:
                pos = await self._append(entry)
            except Exception as e:  # every outcome of the append is every command's outcome
                error = e
            else:
                self._on_appended(pos, entry)
            self.stats["batches"] += 1
            self.stats["commands"] += len(batch)
            for item in batch:
                item.pos, item.error = pos, error
                self._forget(item)
                item.done.set()
