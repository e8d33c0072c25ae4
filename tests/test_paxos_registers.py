"""Many registers on one set of acceptors, and ``MetaStoreClient.learn`` (the simulated
network, virtual time). The bootstrap loglet is built on both (delos_ref/loglet/bootstrap.py)."""

from __future__ import annotations

import pytest

from paxos.ballot import Ballot
from paxos.messages import Accept, Update
from paxos.register import Conflict, MetaStoreUnavailable, Written
from test_metastore import ACCEPTORS, client, cluster
from transports.memory import LinkModel


async def test_registers_on_the_same_acceptors_do_not_interfere(autojump_clock):
    """Writes to one register never move another's version."""
    async with cluster(seed=11) as sim:
        chain, log = client(sim, "c1"), client(sim, "c2", register="loglet/L1")
        assert await chain.write_if(0, b"chain-1") == Written(1)
        for i in range(3):
            assert await log.write_if(i, b"e%d" % i) == Written(i + 1)
        assert await client(sim, "r1").read() == (1, b"chain-1")
        assert await client(sim, "r2", register="loglet/L1").read() == (3, b"e2")
        assert await client(sim, "w", register="loglet/L1").write_if(1, b"late") == Conflict(3, b"e2")


async def test_learn_returns_the_chosen_versions_up_to_the_first_unchosen(autojump_clock):
    async with cluster(seed=12, link=LinkModel(loss=0.05, duplicate=0.05, spike=0.05)) as sim:
        writer = client(sim, "w", register="r")
        for i in range(40):
            await writer.write_if(i, b"v%d" % i)
        reader = client(sim, "r", register="r")
        got = await reader.learn(1, 100)
        assert got == [(v, b"v%d" % (v - 1)) for v in range(1, 41)]
        assert reader.known_version == 40
        assert await reader.learn(5, 8) == [(5, b"v4"), (6, b"v5"), (7, b"v6")]
        assert await reader.learn(41, 50) == [] and await reader.learn(3, 3) == []


async def test_learn_settles_a_version_held_by_a_minority(autojump_clock):
    """A value accepted by one acceptor only may or may not be chosen: learn settles it (a
    full Paxos attempt), and whatever it reports, later reads agree with it."""
    async with cluster(seed=13) as sim:
        writer = client(sim, "w", register="r")
        await writer.write_if(0, b"one")
        stray = Update("stray", 1, b"two")
        await sim.client("x").endpoint.call("a1", Accept(2, Ballot(1, "stray"), stray, "r"), timeout_s=1.0)
        got = await client(sim, "r", register="r").learn(1, 3)
        assert got[0] == (1, b"one") and got in ([(1, b"one")], [(1, b"one"), (2, b"two")])
        version, value = await client(sim, "z", register="r").read()
        if len(got) == 2:
            assert (version, value) == (2, b"two"), "a learned version stays chosen"


async def test_learn_without_a_majority_is_unavailable(autojump_clock):
    async with cluster(seed=14) as sim:
        c = client(sim, "c", register="r")
        await c.write_if(0, b"x")
        sim.crash(ACCEPTORS[0])
        sim.crash(ACCEPTORS[1])
        with pytest.raises(MetaStoreUnavailable):
            await client(sim, "d", register="r").learn(1, 2)
