"""The loglet conformance suite: the contract of docs/design.md §2 / §3.4, as reusable checks.

Every loglet kind must pass every check here. A *harness* gives the checks clients of one
fresh loglet instance; a *factory* is an async context manager that builds a harness::

    @contextlib.asynccontextmanager
    async def my_factory():
        ... start whatever the loglet needs ...
        yield harness          # harness.client("c1") -> a Loglet

Plug a new kind in by adding its factory to ``FACTORIES`` in ``test_loglet_conformance.py``
(or by parametrizing your own test over :data:`CHECKS`). Checks run under trio's
``MockClock(autojump_threshold=0)`` (the ``autojump_clock`` fixture), so loglets that sleep
or time out cost no wall time.

The checks (each names the rule it holds the loglet to):

* gapless positions: concurrent appends get distinct positions that fill ``[0, tail)`` (for a
  harness with ``fills_holes = True``, the striped loglet's, together with filler entries
  ``b""`` that no client appended: see ``delos_ref/loglet/striped.py``, rule 3);
* reads return what was appended, to any client;
* ``append_many`` returns ascending positions holding its entries;
* an append after a seal fails with :class:`SealedError`;
* concurrent appenders racing a seal: every acknowledged position is below the first sealed
  tail anyone observed (and below every later one);
* sealing an empty loglet gives ``Tail(0, True)``;
* trim: reads below the trim point raise :class:`TrimmedError`, above it still work, the tail
  does not move;
* seal is idempotent (twice, from two clients);
* check_tail is monotonic, across clients and across the seal.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import AsyncContextManager, Awaitable, Callable, Protocol

import trio

from delos_ref.loglet import Loglet, MemoryLoglet, SealedError, Tail, TrimmedError


class LogletHarness(Protocol):
    def client(self, name: str) -> Loglet:
        """A client of the loglet under test, running as ``name`` (same name: same client)."""


Factory = Callable[[], AsyncContextManager[LogletHarness]]
Check = Callable[[LogletHarness], Awaitable[None]]


# ---------------------------------------------------------------------- memory factory


@dataclasses.dataclass
class MemoryHarness:
    loglet: MemoryLoglet = dataclasses.field(default_factory=MemoryLoglet)

    def client(self, name: str) -> Loglet:
        return self.loglet  # every client shares the one in-process loglet


@contextlib.asynccontextmanager
async def memory_factory():
    yield MemoryHarness()


@dataclasses.dataclass
class StripedMemoryHarness:
    """A StripedLoglet over ``stripes`` shared memory loglets; each client name has its own
    StripedLoglet client (its own knowledge of the stripes), as separate processes would."""

    stripes: int = 2
    fills_holes: bool = True
    inner: list[MemoryLoglet] = dataclasses.field(default_factory=list)
    clients: dict[str, Loglet] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.inner = [MemoryLoglet() for _ in range(self.stripes)]

    def client(self, name: str) -> Loglet:
        from delos_ref.loglet.striped import StripedLoglet

        if name not in self.clients:
            self.clients[name] = StripedLoglet("striped", self.inner)
        return self.clients[name]


@contextlib.asynccontextmanager
async def striped_memory_factory(stripes: int = 2):
    yield StripedMemoryHarness(stripes)


# ----------------------------------------------------------------------------- helpers


async def read_all(loglet: Loglet, lo: int, hi: int) -> list[tuple[int, bytes]]:
    """read_next in a loop until ``hi`` (read_next may return fewer entries per call)."""
    out: list[tuple[int, bytes]] = []
    while lo < hi:
        got = await loglet.read_next(lo, hi)
        assert got, f"read_next({lo}, {hi}) returned nothing below the tail"
        assert [p for p, _ in got] == list(range(lo, lo + len(got))), "read_next returns consecutive positions from lo"
        out += got
        lo += len(got)
    return out


async def append_loop(loglet: Loglet, tag: bytes, count: int, acked: dict[int, bytes], *, stop_on_seal: bool = False) -> None:
    for i in range(count):
        entry = tag + b"-%d" % i
        try:
            pos = await loglet.append(entry)
        except SealedError:
            if stop_on_seal:
                return
            raise
        assert pos not in acked, f"position {pos} acknowledged twice"
        acked[pos] = entry


# ------------------------------------------------------------------------------ checks


async def check_gapless_positions(h: LogletHarness) -> None:
    acked: dict[int, bytes] = {}
    async with trio.open_nursery() as nursery:
        for c in range(3):
            nursery.start_soon(append_loop, h.client(f"c{c}"), b"c%d" % c, 20, acked)
    tail = await h.client("checker").check_tail()
    if not getattr(h, "fills_holes", False):
        assert tail == Tail(60, False), tail
        assert sorted(acked) == list(range(60)), "acknowledged positions fill [0, tail) without gaps"
        return
    # A loglet that fills holes (the striped loglet's rule 3) may add filler entries, b"",
    # that no client appended: the acknowledged positions and the fillers fill [0, tail).
    assert not tail.sealed and tail.tail >= 60 and len(acked) == 60, tail
    assert max(acked) < tail.tail, "every acknowledged position is below the tail"
    got = dict(await read_all(h.client("checker"), 0, tail.tail))
    assert all(got[p] == e for p, e in acked.items()), "acknowledged entries read back in place"
    assert all(got[p] == b"" for p in range(tail.tail) if p not in acked), "every other position is a filler"


async def check_reads_return_what_was_appended(h: LogletHarness) -> None:
    writer, reader = h.client("writer"), h.client("reader")
    acked: dict[int, bytes] = {}
    await append_loop(writer, b"w", 25, acked)
    tail, sealed = await reader.check_tail()
    assert (tail, sealed) == (25, False)
    assert dict(await read_all(reader, 0, tail)) == acked
    assert dict(await read_all(writer, 10, 15)) == {p: acked[p] for p in range(10, 15)}
    assert await reader.read_next(tail, tail + 10) == [], "nothing is readable at or past the tail"
    assert await reader.read_next(3, 3) == [], "an empty range reads nothing"


async def check_append_many_returns_ascending_positions(h: LogletHarness) -> None:
    c = h.client("c1")
    first = await c.append(b"solo")
    entries = [b"m%d" % i for i in range(7)]
    positions = await c.append_many(entries)
    assert len(positions) == 7 and positions == sorted(positions) and positions[0] > first
    got = dict(await read_all(c, 0, (await c.check_tail()).tail))
    assert [got[p] for p in positions] == entries


async def check_append_after_seal_fails(h: LogletHarness) -> None:
    c = h.client("c1")
    for i in range(5):
        assert await c.append(b"e%d" % i) == i
    await c.seal()
    for who in ("c1", "c2"):
        try:
            await h.client(who).append(b"late")
        except SealedError:
            pass
        else:
            raise AssertionError(f"{who}: an append after seal() returned was acknowledged")
    assert await h.client("c2").check_tail() == Tail(5, True)


async def check_appenders_racing_a_seal_stay_below_the_sealed_tail(h: LogletHarness) -> None:
    acked: dict[int, bytes] = {}
    sealed_tails: list[int] = []

    async def sealer() -> None:
        await trio.sleep(0.005)  # let appends get going
        s = h.client("sealer")
        await s.seal()
        sealed_tails.append((await s.check_tail()).tail)

    async def tail_checker(name: str) -> None:
        c = h.client(name)
        for _ in range(20):
            tail, sealed = await c.check_tail()
            if sealed:
                sealed_tails.append(tail)
            await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        for a in range(3):
            nursery.start_soon(lambda a=a: append_loop(h.client(f"a{a}"), b"a%d" % a, 200, acked, stop_on_seal=True))
        nursery.start_soon(sealer)
        nursery.start_soon(tail_checker, "t1")
    assert sealed_tails, "the sealer observed a sealed tail"
    first = sealed_tails[0]
    assert all(pos < min(sealed_tails) for pos in acked), f"acked {max(acked, default=None)} >= a sealed tail {min(sealed_tails)}"
    final = await h.client("t2").check_tail()
    assert final.sealed and final.tail >= first
    got = dict(await read_all(h.client("t2"), 0, final.tail))
    assert all(got[p] == e for p, e in acked.items()), "every acknowledged entry is readable where it was acknowledged"


async def check_seal_of_an_empty_loglet(h: LogletHarness) -> None:
    await h.client("c1").seal()
    assert await h.client("c2").check_tail() == Tail(0, True)
    try:
        await h.client("c2").append(b"x")
    except SealedError:
        return
    raise AssertionError("append on a sealed empty loglet succeeded")


async def check_trim(h: LogletHarness) -> None:
    c = h.client("c1")
    acked: dict[int, bytes] = {}
    await append_loop(c, b"t", 10, acked)
    await c.prefix_trim(4)
    try:
        await c.read_next(2, 6)
    except TrimmedError:
        pass
    else:
        raise AssertionError("a read below the trim point succeeded")
    assert dict(await read_all(c, 4, 10)) == {p: acked[p] for p in range(4, 10)}
    await c.prefix_trim(2)  # trims never go back
    await c.prefix_trim(1000)  # past the tail: trims to the tail
    assert await h.client("c2").check_tail() == Tail(10, False), "trimming does not move the tail"
    assert await c.append(b"after-trim") == 10


async def check_seal_is_idempotent(h: LogletHarness) -> None:
    await append_loop(h.client("c1"), b"i", 3, {})
    await h.client("c1").seal()
    first = await h.client("c1").check_tail()
    await h.client("c1").seal()
    await h.client("c2").seal()
    assert first == Tail(3, True)
    assert await h.client("c2").check_tail() == first


async def check_check_tail_is_monotonic(h: LogletHarness) -> None:
    observed: list[tuple[float, int]] = []

    async def checker(name: str) -> None:
        c = h.client(name)
        last = 0
        for _ in range(25):
            tail, _sealed = await c.check_tail()
            assert tail >= last, f"{name}: check_tail went back from {last} to {tail}"
            last = tail
            observed.append((trio.current_time(), tail))
            await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(append_loop, h.client("a1"), b"m", 40, {})
        nursery.start_soon(checker, "k1")
        nursery.start_soon(checker, "k2")
    await h.client("k1").seal()
    after = await h.client("k2").check_tail()
    assert after.sealed and after.tail >= max(t for _, t in observed)


CHECKS: list[Check] = [
    check_gapless_positions,
    check_reads_return_what_was_appended,
    check_append_many_returns_ascending_positions,
    check_append_after_seal_fails,
    check_appenders_racing_a_seal_stay_below_the_sealed_tail,
    check_seal_of_an_empty_loglet,
    check_trim,
    check_seal_is_idempotent,
    check_check_tail_is_monotonic,
]


# ------------------------------------------------------------------ the read-only part
#
# A read-only loglet (the cold loglet, delos_ref/loglet/cold.py) holds a sealed segment that
# was written elsewhere, so the checks above, which append, do not apply to it. These do: a
# read-only harness is first *filled* with entries (``await h.fill(entries)``: after it, the
# loglet holds them at positions 0.. and is sealed), then ``h.client(name)`` as above.


class ReadOnlyHarness(Protocol):
    async def fill(self, entries: list[bytes]) -> None: ...

    def client(self, name: str) -> Loglet: ...


@dataclasses.dataclass
class SealedMemoryHarness:
    """The reference for the read-only checks: a memory loglet, appended to and sealed."""

    loglet: MemoryLoglet = dataclasses.field(default_factory=MemoryLoglet)

    async def fill(self, entries: list[bytes]) -> None:
        for e in entries:
            await self.loglet.append(e)
        await self.loglet.seal()

    def client(self, name: str) -> Loglet:
        return self.loglet


@contextlib.asynccontextmanager
async def sealed_memory_factory():
    yield SealedMemoryHarness()


def _entries(n: int) -> list[bytes]:
    return [b"ro-%d-" % i + bytes([i % 256]) * (i % 7) for i in range(n)]


async def check_ro_reads_return_what_was_stored(h: ReadOnlyHarness) -> None:
    entries = _entries(300)
    await h.fill(entries)
    a, b = h.client("a"), h.client("b")
    assert dict(await read_all(a, 0, 300)) == dict(enumerate(entries))
    assert dict(await read_all(b, 117, 260)) == {p: entries[p] for p in range(117, 260)}
    assert await a.read_next(300, 310) == [], "nothing is readable at or past the sealed tail"
    assert await a.read_next(5, 5) == [], "an empty range reads nothing"


async def check_ro_append_fails_sealed(h: ReadOnlyHarness) -> None:
    await h.fill(_entries(3))
    for who in ("a", "b"):
        try:
            await h.client(who).append(b"late")
        except SealedError as e:
            assert not e.may_have_landed, "a refused append on a read-only loglet certainly did not land"
        else:
            raise AssertionError(f"{who}: a read-only loglet acknowledged an append")
    assert dict(await read_all(h.client("a"), 0, 3)) == dict(enumerate(_entries(3))), "a refused append changes nothing"


async def check_ro_check_tail_reports_sealed(h: ReadOnlyHarness) -> None:
    await h.fill(_entries(42))
    assert await h.client("a").check_tail() == Tail(42, True)
    await h.client("a").seal()
    await h.client("b").seal()
    assert await h.client("b").check_tail() == Tail(42, True), "seal is idempotent and moves nothing"


async def check_ro_empty(h: ReadOnlyHarness) -> None:
    await h.fill([])
    assert await h.client("a").check_tail() == Tail(0, True)
    assert await h.client("a").read_next(0, 10) == []


async def check_ro_trim(h: ReadOnlyHarness) -> None:
    entries = _entries(20)
    await h.fill(entries)
    c = h.client("a")
    await c.prefix_trim(8)
    try:
        await c.read_next(3, 10)
    except TrimmedError:
        pass
    else:
        raise AssertionError("a read below the trim point succeeded")
    assert dict(await read_all(c, 8, 20)) == {p: entries[p] for p in range(8, 20)}
    await c.prefix_trim(1000)
    assert await c.check_tail() == Tail(20, True), "trimming does not move the tail"


READ_ONLY_CHECKS: list[Callable[[ReadOnlyHarness], Awaitable[None]]] = [
    check_ro_reads_return_what_was_stored,
    check_ro_append_fails_sealed,
    check_ro_check_tail_reports_sealed,
    check_ro_empty,
    check_ro_trim,
]
