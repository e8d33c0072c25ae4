"""The database client: the table API over RPC to any replica (docs/design.md §8).

    async with delos_ref.connect(".delos-ref") as table:
        await table.put("k", "v")
        assert await table.get("k") == "v"              # linearizable
        await table.get("k", stale=True)                # this replica's table as it is
        await table.cas("k", "v", "w")                  # True: k was "v", now "w"
        await table.txn(conditions=[("k", "w")], writes=[("a", "1"), ("k", None)])
        await table.scan(prefix="a", limit=10)          # [("a", "1")]

**Exactly once.** Each write gets the next sequence number of this client (``client_id``,
fresh per client). When a replica does not answer, or answers that the outcome is unknown,
the client sends the *same* ``(client, seq)`` again, to the next replica; the table applies a
``(client, seq)`` once and answers every copy with that one result. Each write also carries
the client's *floor*, the lowest seq it still awaits, so replicas can forget older results.

**Fast failover.** A replica that is dead or paused must not cost every write its whole
deadline. While an attempt waits, the client pings the replica every ``probe_after_s``; a
replica that does not answer a ping within ``probe_s`` is *silent*: the attempt is abandoned
(its outcome unknown, so the same ``(client, seq)`` goes to the next replica) and the client
remembers it for ``remember_s``, trying live replicas first meanwhile. A replica that answers
pings but is slow (its log is moving to a new sequencer) keeps the attempt: that wait is the
failover's, and another replica would wait for the same thing -- unless it waits past
``patience_s``: a replica cut off with a minority answers pings but can never append, so an
attempt unanswered for ``patience_s`` (doubling with every attempt of the write, up to
``call_timeout_s``) moves on too. So one crash, pause or partition costs a write about one
failover, once, not ``call_timeout_s`` on every write. On a slow network (a real client
measures its round trips, ``delos_ref/rtt.py``) ``patience_s`` and ``call_timeout_s``
stretch to a number of round trips, so a write is not given up before it could be done. The price: an abandoned attempt may
still land, and the retry appends the command again; the table applies it once.

**Honest failures.** :class:`WriteFailed`: the write certainly did not take effect (every
attempt failed definitely). :class:`WriteOutcomeUnknown`: some attempt may have landed, so the
write may take effect (once) or not. :class:`ReadFailed`: no replica could serve the read.
:class:`BadRequest`: the replica refused the arguments; nothing was sent to the log.
"""

from __future__ import annotations

import contextlib
import math
import secrets
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable

from delos_ref.db import messages as m
from delos_ref.db.table import MAX_SCAN, BadCommand, validate
import trio

from delos_ref.ping import Ping
from delos_ref.rpc import NO_RETRY, RESEND, DefiniteFailure, RemoteError, RetryPolicy, RpcError, UnknownOutcome, Watch
from delos_ref.rtt import overall


#: Refusals after which this attempt certainly appended nothing.
DEFINITE_CODES = (m.APPEND_FAILED, "unknown_message")  # the latter: no replica serves there (yet)


class KvError(Exception):
    """Base of the client's named failures."""


class BadRequest(KvError):
    """The arguments are malformed (nothing was appended)."""


class WriteFailed(KvError):
    """The write certainly did not take effect."""


class WriteOutcomeUnknown(KvError):
    """The write may or may not take effect (at most once)."""


class ReadFailed(KvError):
    """No replica answered the read in time."""


class TrimFailed(KvError):
    """The replica could not trim (some replica did not report its applied position)."""


class ReplicaSlow(UnknownOutcome):
    """The replica answers pings but not the attempt within its patience (e.g. it is cut off
    with a minority): the attempt was given up and may still land."""

    def __init__(self, replica: str, patience_s: float) -> None:
        super().__init__(f"{replica} did not answer within {patience_s:g} s")


class ReplicaSilent(UnknownOutcome):
    """The replica stopped answering pings while an attempt waited: the attempt was given up
    (it may still land there, so the write's outcome is unknown until another replica answers)."""

    def __init__(self, replica: str, probe_s: float) -> None:
        super().__init__(f"{replica} did not answer a ping within {probe_s:g} s")


@dataclass(frozen=True, slots=True)
class ClientOptions:
    call_timeout_s: float = 5.0  # one attempt at one replica that keeps answering pings
    attempts: int = 6  # attempts in all, across replicas
    retry: RetryPolicy = NO_RETRY  # resends of one attempt (RESEND for lossy transports)
    probe_after_s: float = 0.5  # an attempt unanswered this long pings its replica (and again)
    probe_s: float = 0.3  # a replica that does not answer a ping this fast is silent
    patience_s: float = 1.0  # first attempt's wait at a replica that answers pings; doubles per attempt
    remember_s: float = 10.0  # a silent replica is tried last for this long
    status_timeout_s: float = 1.0  # status is a local read: a replica answers at once or is out

    def __post_init__(self) -> None:
        assert self.call_timeout_s > 0 and self.attempts >= 1, "ClientOptions: bounded, at least one attempt"
        assert self.probe_after_s > 0 and self.probe_s > 0 and self.patience_s > 0 and self.remember_s >= 0 and self.status_timeout_s > 0, "ClientOptions: positive probes"


class KvClient:
    """One client of the table; see the module docstring. ``replicas`` are node ids; the first
    is tried first, then the others in turn (those found silent lately last)."""

    def __init__(self, endpoint: Any, replicas: Iterable[str], client_id: str, *, options: ClientOptions = ClientOptions()) -> None:
        self.endpoint = endpoint
        self.replicas = tuple(replicas)
        assert self.replicas, "KvClient: at least one replica"
        self.client_id = client_id
        self.options = options
        self._next_seq = 0
        self._pending: set[int] = set()
        self._silent_until: dict[str, float] = {}  # replica -> until when it is tried last
        self.stats = dict.fromkeys(("attempts", "silent", "slow", "probes"), 0)

    # ---------------------------------------------------------------------- the table API

    async def put(self, key: str, value: str) -> None:
        await self._write("put", (key, value))

    async def delete(self, key: str) -> None:
        await self._write("delete", (key,))

    async def cas(self, key: str, expected: str | None, new: str | None) -> bool:
        """Set ``key`` to ``new`` iff it holds ``expected`` (None: absent / delete)."""
        return await self._write("cas", (key, expected, new))

    async def txn(self, *, conditions: Iterable[tuple[str, str | None]] = (), writes: Iterable[tuple[str, str | None]] = ()) -> bool:
        """All or nothing: if every ``(key, expected)`` holds, apply every ``(key, value)``
        (None deletes) and return True; else change nothing and return False."""
        return await self._write("txn", (tuple(map(tuple, conditions)), tuple(map(tuple, writes))))

    async def get(self, key: str, *, stale: bool = False) -> str | None:
        return await self._read("get", (key,), stale)

    async def scan(self, *, prefix: str | None = None, start: str | None = None, end: str | None = None, limit: int = 100, stale: bool = False) -> list[tuple[str, str]]:
        """Pairs in key order with ``prefix``, or with ``start <= key < end``; at most ``limit``."""
        if not 1 <= limit <= MAX_SCAN:
            raise BadRequest(f"scan: limit is 1..{MAX_SCAN}, got {limit}")
        return [tuple(p) for p in await self._read("scan", (prefix, start, end, limit), stale)]  # type: ignore[misc]

    async def status(self, replica: str, *, digest: bool = False) -> m.KvStatusReply:
        return await self.endpoint.call(replica, m.KvStatus(digest), timeout_s=self.options.status_timeout_s, retry=RESEND)

    async def trim(self, replica: str | None = None) -> int:
        """Ask a replica to prefix_trim the log below every replica's applied position."""
        try:
            reply = await self._call(self.replicas[0] if replica is None else replica, m.KvTrim())
        except (DefiniteFailure, UnknownOutcome) as e:
            raise TrimFailed(str(e)) from None
        return reply.trim_point

    # -------------------------------------------------------------------- the mechanics

    async def _call(self, replica: str, msg: Any, watch: Watch | None = None) -> Any:
        try:
            return await self.endpoint.call(replica, msg, timeout_s=self._overall(self.options.call_timeout_s), retry=self.options.retry, watch=watch)
        except RemoteError as e:
            if e.code == m.BAD_REQUEST:
                raise BadRequest(e.detail) from None
            raise

    def order(self) -> list[str]:
        """Replicas in the order to try them: the configured order, but those found silent
        within ``remember_s`` last (a dead node is not asked first on every write)."""
        now = trio.current_time()
        live = [r for r in self.replicas if self._silent_until.get(r, 0.0) <= now]
        return live + [r for r in self.replicas if r not in live]

    def _patience(self, attempt: int) -> float:
        """How long attempt ``attempt`` (0, 1, ...) waits at a replica that answers pings:
        ``patience_s`` doubling per attempt up to ``call_timeout_s`` (with one replica, all of it)."""
        if len(self.replicas) == 1:
            return math.inf
        return min(self._overall(self.options.patience_s) * 2**attempt, self._overall(self.options.call_timeout_s))

    def _probe_s(self) -> float:
        """How long a probe waits for a ping's answer: ``probe_s``, or two of the slowest
        round-trip timeouts measured (a peer not measured yet is no faster than those)."""
        return overall(getattr(self.endpoint, "rtt", None), self.options.probe_s, round_trips=2)

    def _overall(self, seconds: float) -> float:
        """``seconds`` stretched to the round trips this client measured: a write is a
        replica's append, several round trips between nodes (``delos_ref/rtt.py``; the
        simulator keeps the constant)."""
        return overall(getattr(self.endpoint, "rtt", None), seconds)

    def _next_replica(self, tries: dict[str, int]) -> str:
        """The replica for the next attempt of one operation: the least tried so far, the
        earliest in :meth:`order` among those (so every replica gets its turn)."""
        order = self.order()
        replica = min(order, key=lambda r: (tries.get(r, 0), order.index(r)))
        tries[replica] = tries.get(replica, 0) + 1
        return replica

    async def _attempt(self, replica: str, msg: Any, patience_s: float = math.inf, *, ping_first: bool = False) -> Any:
        """One call to ``replica``, watched: every ``probe_after_s`` without an answer, the
        replica is pinged; if the ping goes unanswered for ``probe_s``, the call is given up
        (:class:`ReplicaSilent`) and the replica is remembered as silent; if it answers but
        the call waited ``patience_s``, it is given up too (:class:`ReplicaSlow`). A retry
        pings at once (``ping_first``): the replica it moves to may be the one that failed.

        With one send per call (TCP) the call waits and is watched in this task (the
        endpoint runs the :class:`_Watcher`'s check between its waits): no task and no
        nursery per call, which measured a quarter to a third of the client's CPU per put. With resends (lossy transports, the simulator) the
        call runs in a task of its own beside the watcher (:meth:`_call_beside`)."""
        self.stats["attempts"] += 1
        watcher = _Watcher(self, replica, patience_s, first_s=0.0 if ping_first else self.options.probe_after_s)
        try:
            if self.options.retry.max_sends == 1:
                reply = await self._call(replica, msg, watch=watcher)
            else:
                reply = await self._call_beside(watcher, replica, msg)
        except ReplicaSilent:
            self.stats["silent"] += 1
            self._silent_until[replica] = trio.current_time() + self.options.remember_s
            raise
        except RemoteError:
            self._silent_until.pop(replica, None)  # it answered
            raise
        self._silent_until.pop(replica, None)
        return reply

    async def _call_beside(self, watcher: "_Watcher", replica: str, msg: Any) -> Any:
        """The call in a task of its own (it resends while it waits), the watcher beside it."""
        outcome: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:

            async def call() -> None:
                try:
                    outcome["reply"] = await self._call(replica, msg)
                except (RpcError, BadRequest) as e:
                    outcome["error"] = e
                nursery.cancel_scope.cancel()

            nursery.start_soon(call)
            wait_s = watcher.first_s
            while True:
                await trio.sleep(wait_s)
                wait_s = watcher.every_s
                try:
                    await watcher.check()
                except UnknownOutcome as e:
                    outcome.setdefault("error", e)
                    nursery.cancel_scope.cancel()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["reply"]

    async def _answers(self, replica: str) -> bool:
        """Whether ``replica`` answers a ping within ``probe_s`` (any answer counts, even a
        refusal: a node that refuses is running)."""
        self.stats["probes"] += 1
        try:
            await self.endpoint.call(replica, Ping(), timeout_s=self._probe_s(), retry=self.options.retry)
        except RemoteError:
            return True
        except RpcError:
            return False
        return True

    async def _write(self, op: str, arg: tuple) -> Any:
        try:
            validate(op, arg)
        except BadCommand as e:
            raise BadRequest(str(e)) from None
        seq = self._next_seq
        self._next_seq += 1
        self._pending.add(seq)
        maybe_landed = False
        last: Exception | None = None
        tries: dict[str, int] = {}
        try:
            for attempt in range(self.options.attempts):
                replica = self._next_replica(tries)
                msg = m.KvWrite(self.client_id, seq, min(self._pending), op, arg)
                try:
                    return (await self._attempt(replica, msg, self._patience(attempt), ping_first=attempt > 0)).result
                except RemoteError as e:
                    maybe_landed |= e.code not in DEFINITE_CODES
                    last = e
                except UnknownOutcome as e:
                    maybe_landed = True
                    last = e
                except DefiniteFailure as e:
                    self._silent_until[replica] = trio.current_time() + self.options.remember_s  # not there: ask the others first
                    last = e
        finally:
            self._pending.discard(seq)  # answered or given up: never asked about again
        error = WriteOutcomeUnknown if maybe_landed else WriteFailed
        raise error(f"{op} gave up after {self.options.attempts} attempts: {last}")

    async def _read(self, op: str, arg: tuple, stale: bool) -> Any:
        msg = m.KvRead(op, arg, m.STALE if stale else m.LINEARIZABLE)
        last: Exception | None = None
        tries: dict[str, int] = {}
        for attempt in range(self.options.attempts):
            replica = self._next_replica(tries)
            try:
                return (await self._attempt(replica, msg, self._patience(attempt), ping_first=attempt > 0)).result
            except (DefiniteFailure, UnknownOutcome) as e:
                if isinstance(e, DefiniteFailure) and not isinstance(e, RemoteError):
                    self._silent_until[replica] = trio.current_time() + self.options.remember_s
                last = e
        raise ReadFailed(f"{op} failed on every replica: {last}")


class _Watcher:
    """Watches one attempt (:meth:`KvClient._attempt`): each :meth:`check` pings the
    replica, and gives the attempt up if the replica is silent, or answers pings but has
    kept the attempt waiting ``patience_s``. An :class:`~delos_ref.rpc.Watch`."""

    def __init__(self, client: KvClient, replica: str, patience_s: float, *, first_s: float) -> None:
        self.client = client
        self.replica = replica
        self.patience_s = patience_s
        self.first_s = first_s
        self.every_s = client.options.probe_after_s
        self.started = trio.current_time()

    async def check(self) -> None:
        if not await self.client._answers(self.replica):
            raise ReplicaSilent(self.replica, self.client._probe_s())
        if trio.current_time() - self.started >= self.patience_s:
            self.client.stats["slow"] += 1
            raise ReplicaSlow(self.replica, self.patience_s)


@contextlib.asynccontextmanager
async def connect(directory: str = ".delos-ref", *, node: str | None = None, options: ClientOptions | None = None) -> AsyncIterator[KvClient]:
    """A :class:`KvClient` of the cluster in ``directory`` (started by ``delos-ref up``),
    talking first to replica ``node`` (default: the first node), then to the others."""
    from delos_ref import cluster
    from delos_ref.process import open_client

    cfg = cluster.load(directory)
    ids = [n.id for n in cfg.nodes]
    if node is not None and node not in ids:
        raise BadRequest(f"no node {node!r} in {directory}; nodes: {', '.join(ids)}")
    first = node or ids[0]
    order = [first] + [i for i in ids if i != first]
    if options is None:
        options = ClientOptions(retry=RESEND if cfg.transport == "udp" else NO_RETRY)
    failure: Exception | None = None
    async with open_client(cfg, "kv") as client_node:
        try:
            yield KvClient(client_node.endpoint, order, f"{client_node.node_id}-{secrets.token_hex(4)}", options=options)
        except Exception as e:  # re-raised below, outside the client node's nursery, so the
            failure = e  # caller sees KvError itself, not an ExceptionGroup around it
    if failure is not None:
        raise failure
