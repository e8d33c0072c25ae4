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

**Honest failures.** :class:`WriteFailed`: the write certainly did not take effect (every
attempt failed definitely). :class:`WriteOutcomeUnknown`: some attempt may have landed, so the
write may take effect (once) or not. :class:`ReadFailed`: no replica could serve the read.
:class:`BadRequest`: the replica refused the arguments; nothing was sent to the log.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable

from delos_ref.db import messages as m
from delos_ref.db.table import MAX_SCAN, BadCommand, validate
from delos_ref.rpc import NO_RETRY, RESEND, DefiniteFailure, RemoteError, RetryPolicy, UnknownOutcome


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


@dataclass(frozen=True, slots=True)
class ClientOptions:
    call_timeout_s: float = 5.0  # one attempt at one replica
    attempts: int = 6  # attempts in all, across replicas
    retry: RetryPolicy = NO_RETRY  # resends of one attempt (RESEND for lossy transports)

    def __post_init__(self) -> None:
        assert self.call_timeout_s > 0 and self.attempts >= 1, "ClientOptions: bounded, at least one attempt"


class KvClient:
    """One client of the table; see the module docstring. ``replicas`` are node ids; the first
    is tried first, then the others in turn."""

    def __init__(self, endpoint: Any, replicas: Iterable[str], client_id: str, *, options: ClientOptions = ClientOptions()) -> None:
        self.endpoint = endpoint
        self.replicas = tuple(replicas)
        assert self.replicas, "KvClient: at least one replica"
        self.client_id = client_id
        self.options = options
        self._next_seq = 0
        self._pending: set[int] = set()

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
        return await self.endpoint.call(replica, m.KvStatus(digest), timeout_s=self.options.call_timeout_s, retry=RESEND)

    async def trim(self, replica: str | None = None) -> int:
        """Ask a replica to prefix_trim the log below every replica's applied position."""
        try:
            reply = await self._call(self.replicas[0] if replica is None else replica, m.KvTrim())
        except (DefiniteFailure, UnknownOutcome) as e:
            raise TrimFailed(str(e)) from None
        return reply.trim_point

    # -------------------------------------------------------------------- the mechanics

    async def _call(self, replica: str, msg: Any) -> Any:
        try:
            return await self.endpoint.call(replica, msg, timeout_s=self.options.call_timeout_s, retry=self.options.retry)
        except RemoteError as e:
            if e.code == m.BAD_REQUEST:
                raise BadRequest(e.detail) from None
            raise

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
        try:
            for attempt in range(self.options.attempts):
                replica = self.replicas[attempt % len(self.replicas)]
                msg = m.KvWrite(self.client_id, seq, min(self._pending), op, arg)
                try:
                    return (await self._call(replica, msg)).result
                except RemoteError as e:
                    maybe_landed |= e.code not in DEFINITE_CODES
                    last = e
                except UnknownOutcome as e:
                    maybe_landed = True
                    last = e
                except DefiniteFailure as e:
                    last = e
        finally:
            self._pending.discard(seq)  # answered or given up: never asked about again
        error = WriteOutcomeUnknown if maybe_landed else WriteFailed
        raise error(f"{op} gave up after {self.options.attempts} attempts: {last}")

    async def _read(self, op: str, arg: tuple, stale: bool) -> Any:
        msg = m.KvRead(op, arg, m.STALE if stale else m.LINEARIZABLE)
        last: Exception | None = None
        for attempt in range(self.options.attempts):
            try:
                return (await self._call(self.replicas[attempt % len(self.replicas)], msg)).result
            except (DefiniteFailure, UnknownOutcome) as e:
                last = e
        raise ReadFailed(f"{op} failed on every replica: {last}")


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
