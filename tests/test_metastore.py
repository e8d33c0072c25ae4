"""The MetaStore end to end, in process: real acceptor roles and clients on the simulated
network (virtual time), plus acceptor state on real LMDB across a restart."""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

import pytest
import trio

from delos_ref.effects import Incoming, Persist
from delos_ref.runtime import Node
from delos_ref.sim import Simulation
from delos_ref.storage import LmdbStorage
from paxos.acceptor import Acceptor
from paxos.ballot import Ballot
from paxos.messages import Accept, Prepare, Update
from paxos.register import (
    ClientTimeouts,
    Conflict,
    MetaStoreClient,
    MetaStoreUnavailable,
    WriteOutcomeUnknown,
    Written,
)
from paxos.storage import TABLES
from transports.memory import LinkModel

ACCEPTORS = ["a1", "a2", "a3"]
FAST = ClientTimeouts(deadline_s=2.0, call_timeout_s=0.2)


def build_acceptor(node: Node, storage_for: Any) -> None:
    storage = storage_for("paxos")
    node.add_role("acceptor", Acceptor.recover(storage), storage)


@contextlib.asynccontextmanager
async def cluster(seed: int = 0, *, link: LinkModel = LinkModel(), builds: dict[str, Any] | None = None) -> AsyncIterator[Simulation]:
    async with Simulation(seed, link=link).run() as sim:
        for name in ACCEPTORS:
            sim.add_node(name, (builds or {}).get(name, build_acceptor))
        yield sim


def client(sim: Simulation, name: str, **kw: Any) -> MetaStoreClient:
    node = sim.client(name)
    kw.setdefault("timeouts", FAST)
    return MetaStoreClient(node.endpoint, ACCEPTORS, node.rng("metastore"), name, trace=sim.trace, **kw)


# ------------------------------------------------------------------------ the basics


async def test_empty_register_reads_version_zero(autojump_clock):
    async with cluster() as sim:
        assert await client(sim, "c1").read() == (0, None)


async def test_write_then_read_from_another_client(autojump_clock):
    """A completed write is seen by every later read, from any client (linearizability)."""
    async with cluster() as sim:
        c1, c2 = client(sim, "c1"), client(sim, "c2")
        assert await c1.write_if(0, b"chain-1") == Written(1)
        assert await c2.read() == (1, b"chain-1")
        assert await c2.write_if(1, b"chain-2") == Written(2)
        assert await c1.read() == (2, b"chain-2")


async def test_write_with_stale_version_conflicts_with_current_state(autojump_clock):
    """The conditional write: a writer that expected an old version loses, and learns the
    current version and value to retry with."""
    async with cluster() as sim:
        c1, c2 = client(sim, "c1"), client(sim, "c2")
        await c1.write_if(0, b"a")
        await c1.write_if(1, b"b")
        assert await c2.write_if(0, b"late") == Conflict(2, b"b")
        assert await c2.write_if(1, b"late") == Conflict(2, b"b")


async def test_write_with_future_version_conflicts_and_leaves_no_gap(autojump_clock):
    """Versions are gapless: a write that expects a version the register has not reached is a
    conflict, not a write into a far-away instance."""
    async with cluster() as sim:
        c1 = client(sim, "c1")
        await c1.write_if(0, b"a")
        assert await client(sim, "c2").write_if(5, b"far") == Conflict(1, b"a")
        assert await c1.write_if(1, b"b") == Written(2)
        assert await client(sim, "c3").read() == (2, b"b")


async def test_equal_bytes_from_two_writers_win_once(autojump_clock):
    """Values are tagged with their write: two clients writing the same bytes at the same
    version get one Written and one Conflict, not two successes."""
    async with cluster() as sim:
        c1, c2 = client(sim, "c1"), client(sim, "c2")
        results = []

        async def write(c: MetaStoreClient) -> None:
            results.append(await c.write_if(0, b"same"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, c1)
            nursery.start_soon(write, c2)
        assert sorted(map(type, results), key=lambda t: t.__name__) == [Conflict, Written]
        assert Conflict(1, b"same") in results


async def test_concurrent_writers_make_progress_and_never_fork(autojump_clock):
    """Dueling proposers: every client loops read -> write_if; randomized backoff lets them
    all finish, each version is won by exactly one write, and the final read agrees."""
    async with cluster(seed=3) as sim:
        won: list[tuple[int, bytes]] = []

        async def loop(c: MetaStoreClient) -> None:
            for i in range(6):
                version, _ = await c.read()
                value = f"{c.proposer_id}-{i}".encode()
                result = await c.write_if(version, value)
                if type(result) is Written:
                    won.append((result.version, value))

        async with trio.open_nursery() as nursery:
            for name in ("c1", "c2", "c3"):
                nursery.start_soon(loop, client(sim, name))
        versions = sorted(v for v, _ in won)
        assert versions == list(range(1, len(won) + 1))  # one winner per version, no gaps
        assert await client(sim, "reader").read() == max(won)


# ------------------------------------------------------------------------ reads settle


def deaf_to(*kinds: type):
    """An acceptor build whose node drops the requests of ``kinds`` (it never hears them)."""

    class Deaf(Acceptor):
        def handle(self, item: Any) -> list:
            if type(item) is Incoming and type(item.msg) in kinds:
                return []
            return super().handle(item)

    def build(node: Node, storage_for: Any) -> None:
        storage = storage_for("paxos")
        node.add_role("acceptor", Deaf(), storage)

    return build


async def test_unknown_outcome_when_the_value_reached_a_minority(autojump_clock):
    """A write whose Accept reached one acceptor but no majority cannot know whether it will
    be chosen: it says so. A later read settles it, and every later read agrees."""
    deaf = deaf_to(Accept)
    async with cluster(builds={"a2": deaf, "a3": deaf}) as sim:
        with pytest.raises(WriteOutcomeUnknown) as info:
            await client(sim, "c1").write_if(0, b"maybe")
        assert info.value.instance == 1
        for name in ACCEPTORS[1:]:
            sim.crash(name)
            sim.restart(name)  # the deaf acceptors come back healthy (empty: they stored nothing)
        first = await client(sim, "r1").read()
        assert first in [(0, None), (1, b"maybe")]
        assert await client(sim, "r2").read() == first  # settled: no going back


async def test_read_settles_a_value_held_by_one_acceptor(autojump_clock):
    """A value accepted by one acceptor is not chosen. A read that sees it either settles it
    (phase 1 + 2: now chosen) or finds it not chosen; either way every later read agrees."""
    for seed in range(4):
        async with cluster(seed) as sim:
            rogue = sim.client("rogue")
            await rogue.endpoint.call("a1", Accept(1, Ballot(1, "rogue"), Update("rogue", 1, b"r")), timeout_s=1)
            first = await client(sim, "r1").read()
            assert first in [(0, None), (1, b"r")]
            for name in ("r2", "r3"):
                assert await client(sim, name).read() == first


# ------------------------------------------------------------------------ failures


async def test_minority_crash_does_not_stop_the_register(autojump_clock):
    async with cluster() as sim:
        c1 = client(sim, "c1")
        await c1.write_if(0, b"a")
        sim.crash("a3")
        assert await c1.write_if(1, b"b") == Written(2)
        assert await client(sim, "c2").read() == (2, b"b")


async def test_restarted_acceptor_rejoins_from_its_storage(autojump_clock):
    """An acceptor that crashed and restarted rebuilds its promises and acceptances from
    storage; with another acceptor down, the majority that includes it still holds every
    chosen version."""
    async with cluster(seed=1) as sim:
        c1 = client(sim, "c1")
        await c1.write_if(0, b"a")
        await c1.write_if(1, b"b")
        sim.crash("a1")
        sim.restart("a1")
        sim.crash("a2")
        assert await client(sim, "c2").read() == (2, b"b")
        assert await client(sim, "c3").write_if(2, b"c") == Written(3)
        assert sim.node("a1").roles["acceptor"].core.top == 3


async def test_read_without_a_majority_is_unavailable(autojump_clock):
    async with cluster() as sim:
        sim.crash("a1")
        sim.crash("a2")
        with pytest.raises(MetaStoreUnavailable):
            await client(sim, "c1").read()


async def test_write_that_never_proposed_is_definitely_not_written(autojump_clock):
    """No majority promised, so the value never left the client in an Accept: a definite
    failure, not an unknown outcome."""
    async with cluster() as sim:
        sim.crash("a2")
        sim.crash("a3")
        with pytest.raises(MetaStoreUnavailable):
            await client(sim, "c1").write_if(0, b"x")
        sim.restart("a2")
        assert await client(sim, "c2").read() == (0, None)


async def test_lossy_duplicating_network_still_linear(autojump_clock):
    """Loss, duplication and reordering: resends and idempotent handlers keep it correct."""
    link = LinkModel(loss=0.1, duplicate=0.1, spike=0.1)
    async with cluster(seed=5, link=link) as sim:
        c1, c2 = client(sim, "c1"), client(sim, "c2")
        for i in range(5):
            assert await c1.write_if(i, b"%d" % i) == Written(i + 1)
            assert await c2.read() == (i + 1, b"%d" % i)


# ------------------------------------------------------------------------ LMDB


def test_acceptor_state_survives_restart_on_lmdb(tmp_path):
    """Real durable storage: the acceptor's Persist effects go to LMDB (synced); a fresh
    acceptor recovered from the reopened environment has the same promises and values."""
    storage = LmdbStorage(tmp_path / "acceptor", TABLES)
    before = Acceptor.recover(storage)
    for rid, msg in enumerate([Prepare(1, Ballot(3, "p")), Accept(2, Ballot(1, "q"), Update("q", 1, b"chain"))], 1):
        effects = before.handle(Incoming("p", rid, msg))
        storage.write([w for e in effects if type(e) is Persist for w in e.writes], sync=True)
    storage.close()

    storage = LmdbStorage(tmp_path / "acceptor", TABLES)
    after = Acceptor.recover(storage)
    assert after.slot(1) == before.slot(1) and after.slot(2) == before.slot(2)
    assert after.top == 2
    storage.close()
