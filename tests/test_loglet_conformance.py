"""The loglet conformance suite (tests/loglet_conformance.py) against every loglet kind.

Memory: the in-process loglet. Native: a NativeLoglet on the simulator (3 LogServers and a
sequencer node, real RPC over the memory transport with codec round trips), once on clean
links and once on links that lose, duplicate and reorder messages. PAPER_NOTES §2, §3.4.
"""

from __future__ import annotations

import pytest

from delos_ref.sim.workload_loglet import native_sim_factory
from loglet_conformance import CHECKS, memory_factory
from transports.memory import LinkModel

FACTORIES = {
    "memory": memory_factory,
    "native": lambda: native_sim_factory(seed=1),
    "native-lossy": lambda: native_sim_factory(seed=2, link=LinkModel(loss=0.05, duplicate=0.05, spike=0.05)),
}


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
@pytest.mark.parametrize("kind", sorted(FACTORIES))
async def test_loglet_conformance(kind, check, autojump_clock):
    async with FACTORIES[kind]() as harness:
        await check(harness)
