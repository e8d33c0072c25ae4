"""The loglet of docs/tutorial-loglet.md (delos_ref/examples/directory_loglet.py): it passes the
loglet conformance suite, and a VirtualLog hot-swaps onto it and off it under a live appender
on the simulated cluster, losing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from loglet_conformance import CHECKS
from test_virtuallog import FAST, OPTIONS, SERVERS, cluster, native, read_all, swap_under_appender

from delos_ref.examples.directory_loglet import DirectoryLoglet, DirectoryLogletConfig, directory_kind
from delos_ref.loglet import SealedError
from delos_ref.sim.workload_loglet import SIM_OPTIONS
from delos_ref.virtuallog import VirtualLog, default_registry
from paxos.register import MetaStoreClient


class DirectoryHarness:
    """Each client name gets its own DirectoryLoglet object on the shared directory, as
    separate processes would."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.clients: dict[str, DirectoryLoglet] = {}

    def client(self, name: str) -> DirectoryLoglet:
        return self.clients.setdefault(name, DirectoryLoglet(self.path))


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
async def test_directory_loglet_passes_the_conformance_suite(check, tmp_path, autojump_clock):
    await check(DirectoryHarness(tmp_path / "L"))


async def test_the_seal_survives_a_new_client_and_refuses_appends(tmp_path):
    first = DirectoryLoglet(str(tmp_path / "L"))
    assert [await first.append(b"a"), await first.append(b"b")] == [0, 1]
    await first.seal()
    again = DirectoryLoglet(str(tmp_path / "L"))  # a restarted process
    assert tuple(await again.check_tail()) == (2, True)
    with pytest.raises(SealedError):
        await again.append(b"c")
    assert await again.read_next(0, 2) == [(0, b"a"), (1, b"b")]


def client(c, name: str) -> VirtualLog:
    node = c.sim.client(name)
    metastore = MetaStoreClient(node.endpoint, SERVERS, node.rng("metastore"), name, timeouts=FAST)
    registry = default_registry(node=node, native_options=SIM_OPTIONS)
    registry.add_kind(directory_kind())  # the one line that makes the new kind known
    return VirtualLog(metastore, registry, name, options=OPTIONS)


async def test_hot_swap_native_directory_native_under_a_live_appender(tmp_path, autojump_clock):
    async with cluster(seed=5) as c:
        app, op = client(c, "app"), client(c, "op")
        await op.bootstrap(native("N0", "s1"))
        acked = await swap_under_appender(app, op, [DirectoryLogletConfig("D1", str(tmp_path)), native("N2", "s2")])
        assert [s.kind for s in op.chain.segments] == ["native", "directory", "native"]
        assert all(s.start < s.stop for s in op.chain.segments[:-1]), "each loglet took appends"
        assert [p for p, _ in acked] == list(range(len(acked)))
        assert await read_all(client(c, "reader")) == acked
        assert (await DirectoryLoglet(str(tmp_path / "D1")).check_tail()).sealed
