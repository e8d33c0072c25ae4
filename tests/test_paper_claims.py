"""Claims of the paper that docs/paper-map.md maps and no other test checked directly.

§3.3: "if the MetaStore is down, appends continue on the cached chain; only reconfiguration
waits" -- the MetaStore is off the data path.
"""

from __future__ import annotations

import pytest
import trio

from delos_ref.virtuallog import MemoryLogletConfig
from paxos.register import MetaStoreUnavailable
from test_virtuallog import appended, cluster, read_all


async def test_appends_continue_on_the_cached_chain_while_the_metastore_is_down(autojump_clock):
    async with cluster() as c:
        v = c.client("c1")
        await v.bootstrap(MemoryLogletConfig("m0"))  # a memory loglet: the data plane stays up
        assert await appended(v, 2, "a") == [0, 1]
        c.sim.crash("s1")
        c.sim.crash("s2")  # two of three acceptors: no MetaStore quorum
        with trio.fail_after(1):
            assert await appended(v, 3, "b") == [2, 3, 4]  # no MetaStore call on the way
        with pytest.raises(MetaStoreUnavailable):  # only reconfiguration waits: it cannot install
            await v.reconfig_extend(MemoryLogletConfig("m1"))
        c.sim.restart("s1")
        c.sim.restart("s2")
        assert [e for _, e in await read_all(c.client("reader"))] == [b"a0", b"a1", b"b0", b"b1", b"b2"]
