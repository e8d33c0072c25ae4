"""The StripedLoglet's rules, one test each (delos_ref/loglet/striped.py; docs/design.md §6).

The loglet contract itself is held by the conformance suite (test_loglet_conformance.py);
these pin what is particular to striping: the position mapping, acknowledgement only over
filled prefixes, filling a hole that persists, the seal of every stripe, what "double the
failure threshold" means (each rotating sequencer orders 1/N of the appends), and the
simulator catching each bug switch.
"""

from __future__ import annotations

import pytest
import trio

from delos_ref.loglet import MemoryLoglet, SealedError, Tail
from delos_ref.loglet.striped import BUG_ACKS_OVER_HOLE, BUG_HALF_SEALED_TAIL, BUG_PARTIAL_SEAL, StripedLoglet, StripedOptions, combine, need
from delos_ref.sim import get_workload, run_seed, sweep
from delos_ref.sim.harness import RunConfig
from delos_ref.sim.workload_loglet import SIM_OPTIONS, start_native
from delos_ref.sim.workload_striped import striped_sim_factory
from delos_ref.loglet.native import NativeLoglet
from delos_ref.sim.simulation import Simulation


def test_logical_position_l_times_n_plus_k_lives_at_l_of_stripe_k():
    n = 3
    for p in range(40):
        l, k = divmod(p, n)
        below = [need(j, p, n) for j in range(n)]
        assert sum(below) == p, "the stripes' shares of [0, p) add up to p"
        assert below[k] == l, "stripe k holds l entries below its own position l"
    assert combine([2, 1, 1]) == 4  # stripe 1 lacks its position 1 (logical 4)
    assert combine([2, 2, 1]) == 5  # stripe 2 lacks logical 5
    assert combine([0, 5, 5]) == 0


async def test_a_lone_client_places_round_robin_and_acks_without_fillers(autojump_clock):
    inner = [MemoryLoglet() for _ in range(3)]
    s = StripedLoglet("s", inner)
    assert [await s.append(b"e%d" % i) for i in range(9)] == list(range(9))
    assert [len(m._entries) for m in inner] == [3, 3, 3]
    assert inner[1]._entries == [b"e1", b"e4", b"e7"], "logical l*N+k is at l of stripe k"
    assert s.stats["fillers"] == 0


async def test_an_append_above_a_hole_waits_and_the_hole_gets_a_filler(autojump_clock):
    inner = [MemoryLoglet(), MemoryLoglet()]
    other = StripedLoglet("s", inner, options=StripedOptions(fill_after_s=1.0))
    await inner[0].append(b"x0")  # another client landed at logical 0 and 2 ...
    await inner[0].append(b"x2")  # ... and nobody appended to stripe 1 yet
    s = StripedLoglet("s", inner, options=StripedOptions(fill_after_s=1.0))
    start = trio.current_time()
    s._readable[1] = 5  # steer rule 1 to stripe 0, as stale knowledge would
    pos = await s.append(b"mine")
    assert pos == 4, "stripe 0 position 2 is logical 4"
    assert trio.current_time() - start >= 1.0, "the ack waited for the holes at 1 and 3"
    assert s.stats["fillers"] == 2 and inner[1]._entries == [b"", b""]
    assert await other.check_tail() == Tail(5, False)
    assert [e for _, e in await other.read_next(0, 5)] == [b"x0", b"", b"x2", b"", b"mine"]


async def test_a_hole_filled_by_another_client_needs_no_filler(autojump_clock):
    inner = [MemoryLoglet(), MemoryLoglet()]
    a, b = StripedLoglet("s", inner), StripedLoglet("s", inner)
    a._readable[0] = 5  # a will land in stripe 1
    b._readable[1] = 5  # b will land at stripe 0 position 0 ... then 1 (logical 2)
    assert await b.append(b"b0") == 0
    async with trio.open_nursery() as nursery:
        got = {}

        async def b_second() -> None:
            got["b"] = await b.append(b"b2")

        nursery.start_soon(b_second)
        await trio.sleep(0.001)  # b waits for logical 1
        got["a"] = await a.append(b"a1")
    assert got == {"a": 1, "b": 2}
    assert b.stats["fillers"] == 0 and a.stats["fillers"] == 0


async def test_with_the_bug_an_append_is_acknowledged_over_a_hole(autojump_clock):
    inner = [MemoryLoglet(), MemoryLoglet()]
    await inner[0].append(b"x0")
    s = StripedLoglet("s", inner, bugs=frozenset([BUG_ACKS_OVER_HOLE]))
    s._readable[1] = 5
    pos = await s.append(b"over the hole")
    assert pos == 2
    await s.seal()
    assert await s.check_tail() == Tail(1, True), "the sealed tail stops at the hole: the acknowledged 2 is lost"


async def test_seal_seals_every_stripe_and_with_the_bug_only_one(autojump_clock):
    inner = [MemoryLoglet() for _ in range(3)]
    await StripedLoglet("s", inner).seal()
    assert [m._sealed for m in inner] == [True, True, True]
    inner = [MemoryLoglet() for _ in range(3)]
    buggy = StripedLoglet("s", inner, bugs=frozenset([BUG_PARTIAL_SEAL]))
    for i in range(4):
        await buggy.append(b"e%d" % i)  # stripes hold 2, 1, 1: logical 4 is next, in stripe 1
    await buggy.seal()
    assert [m._sealed for m in inner] == [True, False, False]
    assert await buggy.append(b"after seal") == 4, "the bug: an append after seal() returned is acknowledged"


async def test_check_tail_finishes_a_half_done_seal(autojump_clock):
    inner = [MemoryLoglet() for _ in range(2)]
    s = StripedLoglet("s", inner)
    for i in range(3):
        await s.append(b"e%d" % i)
    await inner[1].seal()  # a sealer died after sealing one stripe
    assert await s.check_tail() == Tail(3, True)
    assert all(m._sealed for m in inner), "check_tail sealed the rest"
    with pytest.raises(SealedError):
        await s.append(b"late")


async def test_trim_maps_to_the_stripes_and_never_past_the_tail(autojump_clock):
    inner = [MemoryLoglet(), MemoryLoglet()]
    s = StripedLoglet("s", inner)
    for i in range(6):
        await s.append(b"e%d" % i)
    await inner[0].append(b"e6")  # logical 6 (stripe 0 position 3)
    await inner[0].append(b"above-a-hole")  # logical 8: above the hole at 7
    await s.prefix_trim(100)
    assert [m._trim_point for m in inner] == [4, 3], "trimmed to the tail (7), not past it"
    assert inner[0]._entries[4] == b"above-a-hole", "an entry above the tail is kept"


async def test_rotating_sequencers_each_order_half_the_appends(autojump_clock):
    """"Double the failure threshold by rotating the sequencer": with 2 stripes, each
    sequencer orders half of the entries, so the load at which the busiest sequencer
    saturates doubles. Counted in the sequencers' own ``Append`` trace events."""
    total = 400

    async def ordered_per_sequencer(sim: Simulation, client) -> dict[str, int]:
        async with trio.open_nursery() as nursery:
            for i in range(64):
                nursery.start_soon(_append_n, client, total // 64 + (i < total % 64), i)
        counts: dict[str, int] = {}
        for ev in sim.trace.events:
            if ev["event"] == "Append" and ev["role"] == "sequencer":
                counts[ev["node"]] = counts.get(ev["node"], 0) + ev["count"]
        return counts

    async with striped_sim_factory(seed=5, stripes=2) as h:
        striped = await ordered_per_sequencer(h.sim, h.client("c"))
        assert h.client("c").stats["fillers"] == 0, "a lone client leaves no hole"
    async with Simulation(5).run() as sim:
        cfg = start_native(sim)
        single = await ordered_per_sequencer(sim, NativeLoglet(sim.client("c"), cfg, options=SIM_OPTIONS))
    assert single == {"q1": total}
    assert sorted(striped) == ["s1", "s2"] and sum(striped.values()) == total
    assert max(striped.values()) == total // 2, f"the busiest sequencer orders half: {striped}"


async def _append_n(loglet, n: int, tag: int) -> None:
    for i in range(n):
        await loglet.append(b"%d/%d" % (tag, i))


@pytest.mark.parametrize("bug", [BUG_ACKS_OVER_HOLE, BUG_PARTIAL_SEAL, BUG_HALF_SEALED_TAIL])
def test_the_simulator_catches_each_bug_switch(bug):
    """Within the first 40 seeds (the brief's bound is 200; ``delos-ref sim --workload striped
    --bug B --seeds 200`` shows how often), and the same seed is clean without the bug."""
    workload = get_workload("striped")
    faults = frozenset(workload.faults)
    found = sweep(workload, seeds=40, faults=faults, bug=bug, stop_at_first=True)
    assert found["violations"], f"{bug}: 40 seeds found nothing"
    seed = found["violations"][0]["seed"]
    clean = run_seed(workload, RunConfig(seed, faults))
    assert clean.violations == [], clean.violations


async def test_one_shot_clients_land_in_the_first_free_position(autojump_clock):
    """Rule 1's look: a client that appends once and goes (the CLI) first learns where the
    stripes stand, so it fills the next position instead of leaving a hole (and a filler)."""
    inner = [MemoryLoglet(), MemoryLoglet()]
    positions = [await StripedLoglet("s", inner).append(b"once-%d" % i) for i in range(5)]
    assert positions == [0, 1, 2, 3, 4]
    assert b"" not in inner[0]._entries + inner[1]._entries, "no filler was needed"
