"""A database replica: plays the VirtualLog into its table and serves clients (docs/design.md §8).

Every node of a cluster hosts one :class:`Replica`. It owns a local table
(:class:`~delos_ref.db.table.TableState`, in LMDB on a node, in memory in the simulator) and a
:class:`~delos_ref.virtuallog.VirtualLog` client, and runs four kinds of work:

**The player** (one task) is the only code that changes the table. It reads the log from the
applied position with ``read_next`` and applies what it got as one batch (one transaction:
the entries' effects and the new applied position). Batches are not fsynced one by one: the
log already holds every write durably, and a crash only rolls the table back to an earlier
applied position, from which the log replays the same effects (see ``table.py``). The
player syncs the table after ``poll_s`` idle and at least every ``sync_s``, and a replica
syncs before it reports its applied position to a peer (so a trim never removes entries it
would need after a crash). It plays up to the highest position anyone waits for, and when idle polls ``check_tail`` every ``poll_s`` so that a replica that
serves no writes still keeps up (backing off to ``idle_poll_s`` while the log does not grow, and while the log is unavailable: a failed
``check_tail`` reads the MetaStore, which idle replicas must not crowd). Entries this replica appended itself are not read back:
``append`` returned their positions, so the player applies them from memory when it reaches
them; and the others' entries below them are read without a ``check_tail`` first (the
acknowledged append told the loglet client that everything before it is committed: see
``VirtualLog._readable_stop``). If the log was trimmed above its applied position (a new or wiped replica), it restores
a snapshot from a peer first (see below).

**Writes** (:class:`~delos_ref.db.messages.KvWrite`): append the command -- through the
:class:`~delos_ref.db.batching.WriteBatcher`, which puts the writes that arrive while earlier
appends are in flight into one batch entry --, wait until the player has applied the
position ``append`` returned, and answer with the command's result.
Because every copy of a ``(client, seq)`` after the first returns the first one's result
(the table's deduplication), a write that a client retried -- here or elsewhere -- takes
effect once, and each answer is that effect. Copies are few: the VirtualLog stores each
append at most once (it looks for an append whose outcome is unknown before retrying it), and
a retry arriving here while this replica's copy is still queued or in flight joins that copy
(``batching.py``), so a write takes at most one position per client attempt.

**Linearizable reads** (``mode="linearizable"``) *sync*: ``check_tail``, play forward to that
tail, then read the local table. Every write acknowledged before the read started is below
that tail, so the read sees it. Reads arriving together share one sync: a sync round takes
every reader waiting when it starts; readers arriving during a round wait for the next one
(the round in flight may have read the tail before they arrived). ``mode="stale"`` reads the
table as it is, without a sync. A read costs no task of its own, unlike a write: a stale one
is answered in the router's task as it arrives, and the syncer answers every reader of its
round when the round ends (or fails them with ``unavailable`` if it failed or took longer than
``request_timeout_s``). At 64 clients this cut the servers' CPU per linearizable get by about
a tenth (``bench kv``).

**Trim and snapshots.** ``KvTrim`` asks every replica for its durable applied position and
calls ``prefix_trim`` below the lowest (if some replica does not answer, nothing is trimmed:
it may still need those entries). A replica whose next position has been trimmed fetches a
snapshot -- every row of a peer's table, taken in one read, with the applied position it
holds -- in chunks, installs it in one transaction, and plays on from there.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass
from typing import Any

import trio

from delos_ref.db import messages as m
from delos_ref.db.batching import BatchOptions, WriteBatcher
from delos_ref.db.table import APPLIED_KEY, DEDUP, META, BadCommand, Command, TableState, _dedup_key
from delos_ref.loglet.api import LogletUnavailable, TrimmedError
from delos_ref.rpc import RESEND, DefiniteFailure, UnknownOutcome
from delos_ref.storage import Storage
from delos_ref.virtuallog import AppendFailed, AppendOutcomeUnknown, NotBootstrapped, VirtualLog, VirtualLogUnavailable
from paxos.register import MetaStoreUnavailable, WriteOutcomeUnknown
from transports.base import TransportError
from transports.codec import DecodeError, decode_value

#: Bug switch: a read asked for as linearizable is served from the local table without a sync.
BUG_STALE_READ = "stale_read_as_linearizable"

SNAPSHOT_CHUNK_BYTES = 256 * 1024
MAX_BATCH = 4096  # entries applied in one transaction
#: The log cannot be used now. DecodeError: the MetaStore register holds no chain (a test or
#: an operator wrote something else there): the replica waits, it does not bring the node down.
LOG_ERRORS = (VirtualLogUnavailable, MetaStoreUnavailable, WriteOutcomeUnknown, LogletUnavailable, NotBootstrapped, DecodeError)


@dataclass(frozen=True, slots=True)
class ReplicaOptions:
    poll_s: float = 0.1  # idle replicas check the tail this often...
    idle_poll_s: float = 2.0  # ... backing off to this while the log does not grow (idle means idle)
    max_poll_s: float = 5.0  # ... backing off to this while the log is unavailable
    retry_s: float = 0.02  # after an unreadable position or an unavailable log
    request_timeout_s: float = 5.0  # a bound on serving one request
    peer_timeout_s: float = 1.0  # status / snapshot calls to peers
    max_requests: int = 4096  # served concurrently; more wait in the router (backpressure)
    sync_s: float = 0.5  # under load, the table is fsynced at least this often
    batching: BatchOptions = BatchOptions()  # writes sharing one log entry (see batching.py)

    def __post_init__(self) -> None:
        assert 0 < self.retry_s <= self.poll_s <= min(self.idle_poll_s, self.max_poll_s) and self.request_timeout_s > 0 and self.sync_s > 0, "ReplicaOptions: bounded, positive waits"


class Replica:
    """See the module docstring. ``peers`` are the node ids of every replica (this one too)."""

    handles = (m.KvWrite, m.KvRead, m.KvStatus, m.KvTrim, m.KvSnapshotRequest)

    def __init__(self, node: Any, vlog: VirtualLog, storage: Storage, peers: list[str] | tuple[str, ...], *,
                 poll_vlog: VirtualLog | None = None, options: ReplicaOptions = ReplicaOptions(),
                 bugs: frozenset[str] = frozenset()) -> None:
        assert node.node_id in peers, "Replica: this node is one of the peers"
        self.node = node
        self.vlog = vlog
        self.poll_vlog = poll_vlog or vlog  # for idle polls: best with few attempts (one try)
        self.table = TableState(storage, bugs=frozenset(bugs) - {BUG_STALE_READ})
        self.peers = tuple(sorted(peers))
        self.options = options
        self.stale_reads = BUG_STALE_READ in bugs
        self._want = 0  # play at least up to here (exclusive)
        self._wake = trio.Event()
        # Tasks waiting for the table to reach a position: position -> the Event they share,
        # and those positions in a heap. Each applied batch wakes exactly the ones it reached.
        self._until: dict[int, trio.Event] = {}
        self._until_heap: list[int] = []
        self._waiting: Counter[tuple[str, int]] = Counter()  # (client, seq) -> writers waiting here
        self._results: dict[tuple[str, int], Any] = {}
        self._readers: list[Any] = []  # the reads (envelopes) the next sync round answers
        self._readers_changed = trio.Event()
        self._snapshot: tuple[int, list[tuple]] | None = None  # (id, chunks) being served
        self._mine: dict[int, bytes] = {}  # log positions of entries this replica appended
        self._serving = 0  # requests being served (at most options.max_requests)
        self._slot_freed = trio.lowlevel.ParkingLot()
        self.batcher = WriteBatcher(vlog.append, options=options.batching, on_appended=self._appended)
        self._nursery: trio.Nursery | None = None
        self.stats = dict.fromkeys(("writes", "reads", "syncs", "batches", "entries", "snapshots_restored", "trims", "errors"), 0)

    # ---------------------------------------------------------------------- the service

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (a node runs this as one of its roles)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for cls in self.handles:
                self.node.router.register(cls, self._on_envelope)
            try:
                nursery.start_soon(self._player)
                nursery.start_soon(self._syncer)
                await nursery.start(self.batcher.run)
                task_status.started()
                await trio.sleep_forever()
            finally:
                for cls in self.handles:
                    self.node.router.unregister(cls)

    async def _on_envelope(self, env: Any) -> None:
        # The router awaits this: wait for a free slot (backpressure), then serve. A read
        # needs no task of its own (see "Reads" below); anything else is served in a new task.
        while self._serving >= self.options.max_requests:
            await self._slot_freed.park()
        assert self._nursery is not None, "Replica: serving before run()"
        self._serving += 1
        if type(env.payload) is m.KvRead:
            await self._on_read(env)
        else:
            self._nursery.start_soon(self._serve, env)

    def _served(self) -> None:
        self._serving -= 1
        self._slot_freed.unpark()

    async def _serve(self, env: Any) -> None:
        try:
            with trio.move_on_after(self.options.request_timeout_s):
                handler = getattr(self, "_on_" + type(env.payload).__name__)
                code, detail, reply = await handler(env.payload)
                if code is None:
                    await self.node.endpoint.reply(env.src, env.rid, reply)
                else:
                    self.stats["errors"] += 1
                    await self.node.endpoint.fail(env.src, env.rid, code, detail)
                return
            # Timed out: a write may still land (its append is in the log's hands).
            await self.node.endpoint.fail(env.src, env.rid, m.OUTCOME_UNKNOWN if type(env.payload) is m.KvWrite else m.UNAVAILABLE, "timed out")
        except TransportError:
            self.stats["errors"] += 1  # the client is unreachable: a lost reply, which it tolerates
        finally:
            self._served()

    def statistics(self) -> dict[str, Any]:
        return dict(self.stats, applied=self.table.applied, durable=self.table.durable, batches_appended=self.batcher.stats["batches"])

    # ------------------------------------------------------------------------- writes

    async def _on_KvWrite(self, msg: m.KvWrite) -> tuple:
        try:
            cmd = Command(msg.client, msg.seq, msg.floor, msg.op, tuple(msg.arg))
        except BadCommand as e:
            return m.BAD_REQUEST, str(e), None
        key = (cmd.client, cmd.seq)
        self._waiting[key] += 1  # before the append: the player may apply it at once
        try:
            try:
                pos = await self.batcher.append(cmd, _size(msg))
            except (AppendFailed, MetaStoreUnavailable, NotBootstrapped) as e:
                # The latter two come from the first chain fetch, before any attempt.
                return m.APPEND_FAILED, str(e), None
            except (AppendOutcomeUnknown, *LOG_ERRORS) as e:
                return m.OUTCOME_UNKNOWN, str(e), None
            await self.wait_applied(pos + 1)
            self.stats["writes"] += 1
            return None, "", m.KvWritten(self._result_of(key), pos)
        finally:
            self._waiting[key] -= 1
            if self._waiting[key] == 0:
                del self._waiting[key]
                self._results.pop(key, None)

    def _appended(self, pos: int, entry: bytes) -> None:
        if pos >= self.table.applied:
            self._mine[pos] = entry  # the player need not read it back (see _play_once)

    def _result_of(self, key: tuple[str, int]) -> Any:
        if key in self._results:
            return self._results[key]
        # Applied before this replica waited for it (e.g. inside a restored snapshot): the
        # dedup table remembers the result until the client moves its floor past it.
        raw = self.table.storage.get(DEDUP, _dedup_key(*key))
        return None if raw is None else decode_value(raw)

    async def wait_applied(self, upto: int) -> None:
        """Return once positions below ``upto`` are applied here."""
        while self.table.applied < upto:
            if upto > self._want:
                self._want = upto
                self._wake.set()
            reached = self._until.get(upto)
            if reached is None:
                reached = self._until[upto] = trio.Event()
                heapq.heappush(self._until_heap, upto)
            await reached.wait()

    def _applied_moved(self) -> None:
        """Wake the tasks waiting for a position the table has now reached."""
        heap, applied = self._until_heap, self.table.applied
        while heap and heap[0] <= applied:
            self._until.pop(heapq.heappop(heap)).set()

    # -------------------------------------------------------------------------- reads

    async def _on_read(self, env: Any) -> None:
        """A read, served without a task of its own: a stale one at once, in the router's
        task; a linearizable one by the next sync round, in the syncer's task (``_syncer``),
        which answers every reader of its round when the round ends."""
        msg: m.KvRead = env.payload
        if msg.mode not in m.READ_MODES:
            await self._answer_read(env, (m.BAD_REQUEST, f"read mode is one of {', '.join(m.READ_MODES)}, not {msg.mode!r}"))
        elif msg.mode == m.LINEARIZABLE and not self.stale_reads:
            self._readers.append(env)  # answered (and counted served) by the next sync round
            self._readers_changed.set()
        else:
            await self._answer_read(env, None)

    async def _answer_read(self, env: Any, error: tuple[str, str] | None) -> None:
        """Read the table for ``env`` and reply, or fail with ``error`` (code, detail)."""
        try:
            if error is None:
                msg: m.KvRead = env.payload
                try:
                    reply = m.KvReadResult(self._read_local(msg.op, tuple(msg.arg)), self.table.applied)
                except (BadCommand, TypeError, ValueError) as e:
                    error = (m.BAD_REQUEST, str(e))
            if error is None:
                self.stats["reads"] += 1
                await self.node.endpoint.reply(env.src, env.rid, reply)
            else:
                self.stats["errors"] += 1
                await self.node.endpoint.fail(env.src, env.rid, *error)
        except TransportError:
            self.stats["errors"] += 1  # the client is unreachable: a lost reply, which it tolerates
        finally:
            self._served()

    def _read_local(self, op: str, arg: tuple) -> Any:
        if op == "get" and len(arg) == 1:
            return self.table.get(arg[0])
        if op == "scan" and len(arg) == 4:
            prefix, start, end, limit = arg
            return tuple(self.table.scan(prefix=prefix, start=start, end=end, limit=limit))
        raise BadCommand(f"reads are get(key) and scan(prefix, start, end, limit), not {op} with {len(arg)} argument(s)")

    async def _syncer(self) -> None:
        """Sync rounds, one at a time: a round takes every linearizable read waiting when it
        starts, learns the tail (check_tail), plays the table to it, then answers them all."""
        while True:
            while not self._readers:
                self._readers_changed = trio.Event()
                await self._readers_changed.wait()
            batch, self._readers = self._readers, []
            error = None
            with trio.move_on_after(self.options.request_timeout_s) as round_:
                try:
                    # lab: sync_read begin
                    tail = await self.vlog.check_tail()
                    await self.wait_applied(tail)
                    self.stats["syncs"] += 1
                    # lab: sync_read end
                except LOG_ERRORS as e:
                    error = f"sync failed: {e}"
            if round_.cancelled_caught:
                error = "timed out"
            for env in batch:
                await self._answer_read(env, None if error is None else (m.UNAVAILABLE, error))

    # ------------------------------------------------------------------------- player

    async def _player(self) -> None:
        poll_s = self.options.poll_s
        synced_at = trio.current_time()
        while True:
            if trio.current_time() - synced_at >= self.options.sync_s:
                self.table.sync()  # busy for a while: bound what a crash makes us replay
                synced_at = trio.current_time()
            if self._want <= self.table.applied:
                with trio.move_on_after(poll_s) as idle:
                    await self._wake.wait()
                self._wake = trio.Event()
                if idle.cancelled_caught:  # nobody waits: sync the table, learn the tail to keep up
                    self.table.sync()
                    synced_at = trio.current_time()
                    try:
                        tail = await self.poll_vlog.check_tail()
                        # Nothing new: poll less often (an idle cluster costs next to nothing;
                        # writes and linearizable reads never wait for a poll, they wake the
                        # player or sync themselves). Something new: back to poll_s.
                        poll_s = min(2 * poll_s, self.options.idle_poll_s) if tail <= self._want else self.options.poll_s
                        self._want = max(self._want, tail)
                    except LOG_ERRORS:
                        # The log is unavailable: poll less often (each failed check_tail
                        # reads the MetaStore, and idle pollers must not crowd it out).
                        poll_s = min(2 * poll_s, self.options.max_poll_s)
                        continue
            await self._play_once()

    async def _play_once(self) -> None:
        """Gather the entries from the applied position toward ``_want`` -- our own appends
        from memory, the others read from the log -- and apply them as one batch (one
        transaction, one fsync, however the positions interleave)."""
        lo, hi = self.table.applied, self._want
        batch: list[bytes] = []
        while lo + len(batch) < hi and len(batch) < MAX_BATCH:
            pos = lo + len(batch)
            if pos in self._mine and pos >= self._active_start():  # our own append: no read needed
                batch.append(self._mine[pos])
                continue
            try:
                got = await self.vlog.read_next(pos, hi)
            except TrimmedError:
                if not batch:
                    await self._restore_snapshot()
                    return
                break  # apply what we have; the next round meets the trim point again
            except LOG_ERRORS:
                break
            if not got:
                break  # below the tail but not readable yet (an append still in flight)
            batch.extend(entry for _, entry in got)
        if batch:
            self._apply(lo, batch)
        elif lo < hi:
            await trio.sleep(self.options.retry_s)

    def _active_start(self) -> int:
        """Where the active segment of the log client's chain starts. Below it, segments are
        sealed and ``skip`` may have replaced an entry (``delos_ref/loglet/skip.py``): read
        those from the log, as every other replica does, so all apply the same marker."""
        chain = self.vlog.chain
        return 0 if chain is None else chain.active.start

    def _apply(self, first: int, entries: list[bytes]) -> None:
        for p in range(first, first + len(entries)):
            self._mine.pop(p, None)
        for a in self.table.apply(first, entries, sync=False):  # synced by the player later
            if a.command is not None:
                key = (a.command.client, a.command.seq)
                if key in self._waiting and key not in self._results:
                    self._results[key] = a.result
        self.stats["batches"] += 1
        self.stats["entries"] += len(entries)
        self._applied_moved()

    # ------------------------------------------------------------------ trim, snapshots

    async def _on_KvStatus(self, msg: m.KvStatus) -> tuple:
        applied = self.table.sync()  # a peer may trim the log up to it: durable first
        digest = self.table.digest() if msg.want_digest else ""
        return None, "", m.KvStatusReply(self.node.node_id, applied, digest, self.stats["snapshots_restored"])

    async def _on_KvTrim(self, msg: m.KvTrim) -> tuple:
        lowest = self.table.sync()  # durable: the entries above it may be needed after a crash
        for peer in self.peers:
            if peer == self.node.node_id:
                continue
            try:
                reply = await self.node.endpoint.call(peer, m.KvStatus(), timeout_s=self.options.peer_timeout_s, retry=RESEND)
            except (DefiniteFailure, UnknownOutcome) as e:
                return m.UNAVAILABLE, f"replica {peer} did not report its applied position ({e}): nothing trimmed", None
            lowest = min(lowest, reply.applied)
        try:
            await self.vlog.prefix_trim(lowest)
        except LOG_ERRORS as e:
            return m.UNAVAILABLE, f"prefix_trim({lowest}): {e}", None
        self.stats["trims"] += 1
        return None, "", m.KvTrimmed(lowest)

    async def _on_KvSnapshotRequest(self, msg: m.KvSnapshotRequest) -> tuple:
        if msg.snapshot == 0 or self._snapshot is None or self._snapshot[0] != msg.snapshot:
            if msg.chunk != 0:
                return m.SNAPSHOT_GONE, "the snapshot was replaced: start over", None
            self._snapshot = (self.table.applied + 1, _chunks(self.table.dump()))  # one consistent read
        snap_id, chunks = self._snapshot
        if not 0 <= msg.chunk < len(chunks):
            return m.BAD_REQUEST, f"snapshot {snap_id} has {len(chunks)} chunks", None
        return None, "", m.KvSnapshotChunk(snap_id, chunks[msg.chunk], msg.chunk + 1 < len(chunks))

    async def _restore_snapshot(self) -> None:
        """Install a peer's snapshot that is ahead of the trim point (try peers in turn)."""
        for peer in self.peers:
            if peer == self.node.node_id:
                continue
            rows = await self._fetch_snapshot(peer)
            if rows is None:
                continue
            if _applied_in(rows) <= self.table.applied:
                continue  # no newer than what we have
            self.table.restore(rows)
            self._mine = {p: e for p, e in self._mine.items() if p >= self.table.applied}
            self.stats["snapshots_restored"] += 1
            self._applied_moved()
            return
        await trio.sleep(self.options.poll_s)  # nobody could help yet: try again later

    async def _fetch_snapshot(self, peer: str) -> list[tuple] | None:
        rows: list[tuple] = []
        snap_id, chunk = 0, 0
        while True:
            try:
                reply = await self.node.endpoint.call(peer, m.KvSnapshotRequest(snap_id, chunk), timeout_s=self.options.peer_timeout_s, retry=RESEND)
            except (DefiniteFailure, UnknownOutcome):
                return None
            snap_id = reply.snapshot
            rows.extend(reply.rows)
            if not reply.more:
                return rows
            chunk += 1


def _size(msg: m.KvWrite) -> int:
    """About how many bytes a write adds to a batch entry (keys and values dominate)."""
    return 32 + len(msg.client) + sum(len(a.encode()) for a in _strings(msg.arg))


def _strings(x: Any):
    if isinstance(x, str):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _strings(v)


def _chunks(rows: list[tuple[str, bytes, bytes]]) -> list[tuple]:
    out: list[tuple] = []
    current: list[tuple] = []
    size = 0
    for row in rows:
        current.append(row)
        size += len(row[1]) + len(row[2]) + 16
        if size >= SNAPSHOT_CHUNK_BYTES:
            out.append(tuple(current))
            current, size = [], 0
    out.append(tuple(current))
    return out


def _applied_in(rows: list[tuple]) -> int:
    for table, key, value in rows:
        if table == META and key == APPLIED_KEY:
            return int.from_bytes(value, "big")
    return 0

