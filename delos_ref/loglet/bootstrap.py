"""The bootstrap loglet: a log stored through the Paxos machinery itself (OSDI'20 §4.2, ZKLoglet).

Delos went into production on a *ZKLoglet*, a loglet that kept its entries in ZooKeeper:
simple, slow, fault-tolerant, and built from a system that already existed. Once Delos was
running, its operators hot-swapped the log onto the NativeLoglet -- a ``reconfig_extend`` --
with no downtime, and append latency dropped about tenfold. This module is our ZKLoglet: it
keeps its entries in the Paxos acceptors that already hold the MetaStore.

**The construction.** The acceptors hold many independent registers by name
(:mod:`paxos.messages`); the MetaStore's chain is register ``""``. Bootstrap loglet ``id``
uses register ``"loglet/<id>"``, and its entries are that register's versions: *loglet
position p is register version p + 1*. Each operation is a MetaStore operation:

* ``append(entry)`` is ``write_if(t, entry)`` at the tail ``t`` this client believes
  (concurrent appends of one client take turns: they would only duel for one version). The
  register accepts the write only at version ``t + 1``, so positions are gapless and no two
  appends share one. On :class:`~paxos.register.Conflict` the client learns the current
  version from it and tries again there -- unless the value there is the SEAL marker: then
  the append raises :class:`SealedError`.
* ``seal()`` writes the SEAL marker on top of the current tail (retrying on Conflict until
  the marker is chosen, or found written by someone else). Nothing is ever written above
  it: a client writes at version ``t`` only when it knows the value at ``t`` is an entry
  (a chosen value never changes), so after the marker every ``write_if`` is a Conflict.
  The seal races the appends for each version, and it starts every race late: after a
  lost version it reads the register, while the appender that won proposes its next entry
  at once. With the appenders' backoff it lost every race against one client appending
  back to back (661 lost rounds in 5 s, then ``LogletUnavailable``: a hot swap under load
  failed about one time in three, ``tests/test_hotswap_cluster.py``). So the seal has its
  own proposer whose backoff after a lost ballot is 25 times shorter
  (``BootstrapOptions.seal_metastore``): when it meets an appender in a ballot duel, it
  retries first and wins. Measured on that test: the marker got in after 16-54 rounds. It is
  still a race, not a fence (a production loglet would fence appends); a seal that misses
  its deadline raises :class:`LogletUnavailable` and the caller retries.
* ``check_tail()`` is a linearizable register read: ``(version - 1, sealed)`` when the top
  value is the marker, else ``(version, unsealed)``. The register's reads are linearizable
  and its versions only rise, so tails are monotonic across clients; every acknowledged
  append is a version below the marker, hence below every sealed tail. A bootstrap loglet
  has no "zombie" appends: the sealed tail is final.
* ``read_next(lo, hi)`` learns the chosen values of versions ``lo + 1 ..`` with
  :meth:`~paxos.register.MetaStoreClient.learn`: one ``Learn`` round asks a majority what
  they accepted in the whole range; a value a majority hold at one ballot is chosen, and
  any other version is settled with a full Paxos attempt. Reads stop at the tail this client
  knows (refreshed with ``check_tail`` when the range reaches past it).
* ``prefix_trim(pos)`` records the trim point in a companion register
  ``"loglet/<id>/trim"`` (a max-register: raised with ``write_if``, never lowered). Reads
  below it raise :class:`TrimmedError`; a read asks the trim register in parallel with the
  entries, so a trim by any client is seen. The acceptors do not forget trimmed slots (the
  bootstrap loglet lives only until its cluster is swapped to a NativeLoglet; a production
  version would let acceptors drop a trimmed register prefix).

**Values.** An entry is stored as ``b"E" + entry`` and the marker as ``b"S"``, so no entry
can be mistaken for the marker whatever its bytes. (Each Paxos value also carries its
writer's tag, :class:`~paxos.messages.Update`: two equal entries are still two writes.)

**Failures.** Every operation is bounded by ``BootstrapOptions.op_timeout_s``. A MetaStore
that cannot reach a majority turns into :class:`LogletUnavailable`; an append whose value
may have reached an acceptor (:class:`~paxos.register.WriteOutcomeUnknown`, or the deadline
striking while its write was out) has ``may_have_landed=True``. A Conflict is a definite
"not written": the write's value can never be chosen in the version it was proposed for.

**Cost.** An append is a Paxos write: phase 1 and phase 2 to a majority, each with a synced
write at the acceptors -- two round trips and two fsyncs, against the NativeLoglet's one
(sequencer to LogServers). Concurrent appenders duel for each version and back off.
That is the price of simplicity, and the reason to hot-swap (``tests/test_hotswap_cluster.py``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import trio

from delos_ref.loglet.api import (
    MAX_READ_ENTRIES,
    Loglet,
    LogletUnavailable,
    SealedError,
    Tail,
    TrimmedError,
    check_entry,
    check_range,
)
from delos_ref.rtt import overall
from delos_ref.runtime import Node
from paxos.messages import MAX_REGISTER_NAME
from paxos.register import ClientTimeouts, Conflict, MetaStoreClient, MetaStoreUnavailable, WriteOutcomeUnknown, Written
from transports.codec import message

#: Tag bytes of the register values: an entry, and the seal marker.
ENTRY_TAG = b"E"
SEAL_MARKER = b"S"
#: Bound on a bootstrap loglet id (the register names built from it stay within bounds).
MAX_ID = 128
assert len("loglet/") + MAX_ID + len("/trim") <= MAX_REGISTER_NAME


@message("loglet.bootstrap.config")
class BootstrapLogletConfig:
    """One bootstrap loglet: its id and the Paxos acceptors (node ids) that store it."""

    loglet_id: str
    acceptors: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 0 < len(self.loglet_id) <= MAX_ID or "\x00" in self.loglet_id:
            raise ValueError(f"BootstrapLogletConfig: loglet_id is 1..{MAX_ID} characters without NUL")
        if not 1 <= len(self.acceptors) <= 15 or len(set(self.acceptors)) != len(self.acceptors) or not all(self.acceptors):
            raise ValueError("BootstrapLogletConfig: 1..15 distinct, non-empty acceptor node ids")

    @property
    def entries_register(self) -> str:
        return f"loglet/{self.loglet_id}"

    @property
    def trim_register(self) -> str:
        return f"loglet/{self.loglet_id}/trim"


@dataclass(frozen=True, slots=True)
class BootstrapOptions:
    """Bounds of one bootstrap loglet client: ``op_timeout_s`` bounds every operation;
    ``metastore`` bounds each register operation inside it."""

    op_timeout_s: float = 5.0
    metastore: ClientTimeouts = ClientTimeouts(deadline_s=2.0, call_timeout_s=0.5)
    # The seal's proposer backs off far less after losing a ballot than appenders do, so it
    # wins the duels it gets into (see seal() in the module docstring).
    seal_metastore: ClientTimeouts = ClientTimeouts(deadline_s=2.0, call_timeout_s=0.5, backoff_first_s=0.0002, backoff_max_s=0.005)

    def __post_init__(self) -> None:
        assert self.op_timeout_s > 0, "BootstrapOptions: every operation is bounded"


@dataclass(slots=True)
class _Exposure:
    """Whether an append's current write may have reached an acceptor: if its deadline
    strikes then, the entry may still be chosen (``may_have_landed``)."""

    in_flight: bool = False


#: Distinguishes the clients one process builds, so each gets its own proposer id.
_client_numbers = itertools.count(1)


def _decode(version: int, value: bytes | None) -> bytes | None:
    """The entry a register value holds, or None for the seal marker (or the empty register)."""
    if value is None or value == SEAL_MARKER:
        return None
    if not value.startswith(ENTRY_TAG):
        raise AssertionError(f"bootstrap loglet: version {version} holds a value that is neither an entry nor the seal marker")
    return value[len(ENTRY_TAG) :]


class BootstrapLoglet(Loglet):
    """A client of one bootstrap loglet on ``node``; see the module docstring."""

    def __init__(self, node: Node, config: BootstrapLogletConfig, *, options: BootstrapOptions = BootstrapOptions()) -> None:
        self.node = node
        self.config = config
        self.options = options
        number = next(_client_numbers)
        # Ballots and write tags come from the proposer id: it must be unique across every
        # client of every incarnation. The node's RNG is seeded per incarnation (randomly on
        # a real node), the number separates this process's clients.
        token = node.rng("bootstrap-loglet", config.loglet_id, number).getrandbits(48)
        proposer = f"{node.node_id}/{config.loglet_id}/{number}.{token:012x}"

        def register_client(register: str, name: str, timeouts: ClientTimeouts = options.metastore) -> MetaStoreClient:
            rng = node.rng("bootstrap-loglet", config.loglet_id, number, name)
            return MetaStoreClient(node.endpoint, config.acceptors, rng, f"{proposer}/{name}", timeouts=timeouts, register=register)

        self._log = register_client(config.entries_register, "log")
        self._sealer = register_client(config.entries_register, "seal", options.seal_metastore)
        self._trims = register_client(config.trim_register, "trim")
        self._known = 0  # the highest version known to hold an entry (all below do too)
        self._sealed_at: int | None = None  # the version of the seal marker, once seen
        self._trim_point = 0  # a lower bound on the trim point
        # Concurrent appends of this client take turns: two of them would only duel for the
        # same version (each preempting the other's ballot) and both go slower.
        self._append_turn = trio.Lock()
        self.stats = dict.fromkeys(("appends", "conflicts", "sealed", "unavailable", "reads", "learned"), 0)

    def _op_timeout(self) -> float:
        """One operation's bound: ``op_timeout_s`` stretched to the measured round trips
        (``delos_ref/rtt.py``; the simulator keeps the constant)."""
        return overall(self.node.endpoint.rtt, self.options.op_timeout_s)

    def statistics(self) -> dict[str, Any]:
        return dict(self.stats, known=self._known, sealed_at=self._sealed_at, trim_point=self._trim_point)

    def learn_tail(self, tail: int) -> None:
        """Positions below ``tail`` hold entries (the VirtualLog knows it of a closed segment)."""
        self._known = max(self._known, tail)

    # ------------------------------------------------------------------------ append

    async def append(self, entry: bytes) -> int:
        check_entry(entry)
        exposure = _Exposure()
        with trio.move_on_after(self._op_timeout()):
            async with self._append_turn:
                return await self._append(ENTRY_TAG + bytes(entry), exposure)
        self.stats["unavailable"] += 1
        raise LogletUnavailable(
            f"bootstrap loglet {self.config.loglet_id}: append not done within {self._op_timeout():g}s",
            may_have_landed=exposure.in_flight,
        )

    async def _append(self, value: bytes, exposure: "_Exposure") -> int:
        while True:
            if self._sealed_at is not None:
                raise SealedError(f"bootstrap loglet {self.config.loglet_id} is sealed")
            exposure.in_flight = True
            try:
                result = await self._log.write_if(self._known, value)
            except WriteOutcomeUnknown as e:
                self.stats["unavailable"] += 1
                raise LogletUnavailable(f"bootstrap loglet {self.config.loglet_id}: {e}", may_have_landed=True) from None
            except MetaStoreUnavailable as e:
                self.stats["unavailable"] += 1
                raise LogletUnavailable(f"bootstrap loglet {self.config.loglet_id}: {e}") from None
            exposure.in_flight = False
            if type(result) is Written:
                self._observe(result.version, value)
                self.stats["appends"] += 1
                return result.version - 1
            # Another value holds our version; ours can never be chosen there. Move on.
            self.stats["conflicts"] += 1
            self._observe(result.version, result.value)

    # -------------------------------------------------------------------- seal, tail

    async def seal(self) -> None:
        with trio.move_on_after(self._op_timeout()):
            while self._sealed_at is None:
                try:
                    result = await self._sealer.write_if(self._known, SEAL_MARKER)
                except WriteOutcomeUnknown:
                    continue  # the marker may be in: the next write_if finds out (Conflict)
                except MetaStoreUnavailable:
                    break
                if type(result) is Written:
                    self._observe(result.version, SEAL_MARKER)
                else:
                    self._observe(result.version, result.value)
            if self._sealed_at is not None:
                self.stats["sealed"] += 1
                return
        raise LogletUnavailable(f"bootstrap loglet {self.config.loglet_id}: seal not done within {self._op_timeout():g}s")

    async def check_tail(self) -> Tail:
        with trio.move_on_after(self._op_timeout()):
            try:
                version, value = await self._log.read()
            except MetaStoreUnavailable as e:
                raise LogletUnavailable(f"bootstrap loglet {self.config.loglet_id}: {e}") from None
            self._observe(version, value)
            return self._tail()
        raise LogletUnavailable(f"bootstrap loglet {self.config.loglet_id}: check_tail not done within {self._op_timeout():g}s")

    def _tail(self) -> Tail:
        if self._sealed_at is not None:
            return Tail(self._sealed_at - 1, True)
        return Tail(self._known, False)

    def _observe(self, version: int, value: bytes | None) -> None:
        """Learn that ``version`` is chosen with ``value`` (so are all versions below it)."""
        if value == SEAL_MARKER:
            assert self._sealed_at in (None, version), "bootstrap loglet: one seal marker per loglet"
            self._sealed_at = version
            self._known = max(self._known, version - 1)
        else:
            _decode(version, value)  # refuses a foreign value
            self._known = max(self._known, version)

    # ------------------------------------------------------------------------- reads

    async def read_next(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        check_range(lo, hi)
        hi = min(hi, lo + MAX_READ_ENTRIES)
        self.stats["reads"] += 1
        with trio.move_on_after(self._op_timeout()):
            try:
                return await self._read(lo, hi)
            except MetaStoreUnavailable as e:
                raise LogletUnavailable(f"bootstrap loglet {self.config.loglet_id}: {e}") from None
        raise LogletUnavailable(f"bootstrap loglet {self.config.loglet_id}: read_next not done within {self._op_timeout():g}s")

    async def _read(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        if lo < self._trim_point:
            raise TrimmedError(lo, self._trim_point)
        if lo == hi:
            return []
        if hi > self._tail().tail:
            await self.check_tail()  # the range reaches past what we know: learn the tail
        hi = min(hi, self._tail().tail)
        learned: list[tuple[int, bytes]] = []

        async def entries() -> None:
            if lo < hi:
                learned.extend(await self._log.learn(lo + 1, hi + 1))

        async with trio.open_nursery() as nursery:  # the trim point, while the entries come
            nursery.start_soon(entries)
            nursery.start_soon(self._refresh_trim_point)
        if lo < self._trim_point:
            raise TrimmedError(lo, self._trim_point)
        out = []
        for version, value in learned:
            entry = _decode(version, value)
            assert entry is not None, f"bootstrap loglet: the seal marker below the tail, at version {version}"
            out.append((version - 1, entry))
        self.stats["learned"] += len(out)
        return out

    async def _refresh_trim_point(self) -> int:
        _version, value = await self._trims.read()
        self._trim_point = max(self._trim_point, _trim_value(value))
        return self._trim_point

    async def prefix_trim(self, pos: int) -> None:
        if type(pos) is not int or pos < 0:
            raise ValueError(f"prefix_trim: need a position >= 0, got {pos!r}")
        with trio.move_on_after(self._op_timeout()):
            try:
                await self._trim(pos)
                return
            except (MetaStoreUnavailable, WriteOutcomeUnknown) as e:
                raise LogletUnavailable(f"bootstrap loglet {self.config.loglet_id}: {e}") from None
        raise LogletUnavailable(f"bootstrap loglet {self.config.loglet_id}: prefix_trim not done within {self._op_timeout():g}s")

    async def _trim(self, pos: int) -> None:
        pos = min(pos, (await self.check_tail()).tail)  # past the tail: trim to the tail
        version, value = await self._trims.read()
        while True:
            current = _trim_value(value)
            self._trim_point = max(self._trim_point, current)
            if pos <= current:
                return  # trims never go back
            result = await self._trims.write_if(version, b"%d" % pos)
            if type(result) is Written:
                self._trim_point = max(self._trim_point, pos)
                return
            assert type(result) is Conflict
            version, value = result.version, result.value


def _trim_value(value: bytes | None) -> int:
    return 0 if value is None else int(value)
