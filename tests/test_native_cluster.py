"""The NativeLoglet of a real cluster: LMDB recovery of a LogServer killed mid-load (issue 4).

A 3-node TCP cluster (``delos-ref up``), the default loglet (sequencer n1, LogServers on every
node). A client (coalescing its appends, ``coalesce_requests=2``) keeps 16 appends outstanding and records every acknowledged (position,
entry). Then a LogServer that is not the sequencer is killed with SIGKILL: appends keep being
acknowledged on the remaining majority; restarted, its entries are intact (read from it
directly); the loglet is sealed, check_tail'd and read back. Finally the restarted server's
seal bit survives another SIGKILL (LMDB, synced before the seal was acknowledged).
"""

from __future__ import annotations


import pytest
import trio

from delos_ref import cluster
from delos_ref.loglet.api import SealedError
from delos_ref.loglet.native import NativeLoglet, NativeOptions, default_config
from delos_ref.loglet.native.messages import ReadRange, Seal, TailQuery
from delos_ref.process import open_client, ping
from delos_ref.rpc import RESEND
from tests.cluster_fixture import running_cluster

pytestmark = pytest.mark.cluster

WRITERS = 16
VICTIM = "n3"  # a LogServer that is not the sequencer (n1)


def _kill(directory, node_id: str) -> None:
    cluster.kill_node(cluster.load(directory), node_id)  # SIGKILL, and wait until it is gone


def _restart(directory, node_id: str) -> None:
    cluster.restart_node(directory, cluster.load(directory), node_id)


async def _until_up(client, node_id: str, timeout_s: float = 15.0) -> None:
    with trio.fail_after(timeout_s):
        while await ping(client, node_id, timeout_s=0.5) is None:
            await trio.sleep(0.05)


async def _read_all(client, server: str, loglet_id: str, lo: int, hi: int) -> list[bytes]:
    """Every entry of ``server`` in [lo, hi), read from that LogServer only."""
    out: list[bytes] = []
    while lo + len(out) < hi:
        pos = lo + len(out)
        reply = await client.endpoint.call(server, ReadRange(loglet_id, pos, hi, 1024, 0), timeout_s=2.0, retry=RESEND)
        assert reply.first == pos, f"{server} does not hold {pos} (trim point {reply.trim_point})"
        assert reply.entries, f"{server} stops at {reply.local_tail}, below {hi}"
        out += reply.entries
    return out


def test_logserver_killed_mid_load_recovers_from_lmdb(tmp_path):
    d = tmp_path / "c"
    with running_cluster(d, nodes=3, transport="tcp") as cfg:
        config = default_config(cfg)
        assert config.sequencer == "n1" and config.logservers == ("n1", "n2", "n3")
        lid = config.loglet_id

        async def scenario() -> None:
            async with open_client(cfg, "test") as client:
                loglet = NativeLoglet(client, config, options=NativeOptions(append_timeout_s=10.0, coalesce_requests=2))
                acked: dict[int, bytes] = {}
                ack_times: list[float] = []
                stop = False

                async def writer(w: int) -> None:
                    i = 0
                    while not stop:
                        entry = b"w%02d-%06d-" % (w, i) + b"x" * 80
                        i += 1
                        pos = await loglet.append(entry)
                        assert pos not in acked, f"position {pos} acknowledged twice"
                        acked[pos] = entry
                        ack_times.append(trio.current_time())

                async with trio.open_nursery() as nursery:
                    for w in range(WRITERS):
                        nursery.start_soon(writer, w)
                    with trio.fail_after(10):
                        while len(acked) < 1000:
                            await trio.sleep(0.01)

                    # What the victim holds durably: a TailReply is sent after its state is synced.
                    before = await client.endpoint.call(VICTIM, TailQuery(lid, 0), timeout_s=2.0, retry=RESEND)
                    assert not before.sealed and before.local_tail > 0
                    _kill(d, VICTIM)
                    killed_at, acked_at_kill = trio.current_time(), len(acked)

                    # Meanwhile the remaining majority (n1, n2) keeps acknowledging.
                    with trio.fail_after(10):
                        while len(acked) < acked_at_kill + 2000:
                            await trio.sleep(0.01)
                    assert sum(t > killed_at for t in ack_times) >= 2000

                    _restart(d, VICTIM)
                    await _until_up(client, VICTIM)
                    after = await client.endpoint.call(VICTIM, TailQuery(lid, 0), timeout_s=2.0, retry=RESEND)
                    assert not after.sealed
                    assert after.local_tail >= before.local_tail, (before, after)
                    recovered = await _read_all(client, VICTIM, lid, 0, before.local_tail)

                    # A little more load with the victim back, then stop the writers.
                    acked_at_restart = len(acked)
                    with trio.fail_after(10):
                        while len(acked) < acked_at_restart + 1000:
                            await trio.sleep(0.01)
                    stop = True

                # Every append the victim held before the kill was committed (a majority of
                # n1, n2 got it too), so it was acknowledged, and the victim kept it verbatim.
                for pos, entry in enumerate(recovered):
                    assert acked[pos] == entry, f"{VICTIM} recovered a different entry at {pos}"

                # Seal, then check_tail: every acknowledged position is below the sealed tail.
                await loglet.seal()
                with pytest.raises(SealedError):
                    await loglet.append(b"after the seal")
                tail = await loglet.check_tail()
                assert tail.sealed
                assert tail.tail >= max(acked) + 1
                assert sorted(acked) == list(range(len(acked)))  # gapless, nothing lost or moved

                # Every acknowledged entry is readable at exactly its position.
                got: dict[int, bytes] = {}
                while len(got) < tail.tail:
                    got.update(await loglet.read_next(len(got), tail.tail))
                assert all(got[pos] == entry for pos, entry in acked.items())

                # The victim's seal bit, once acknowledged, survives another SIGKILL.
                sealed = await client.endpoint.call(VICTIM, Seal(lid, 0), timeout_s=2.0, retry=RESEND)
                assert sealed.sealed
                _kill(d, VICTIM)
                _restart(d, VICTIM)
                await _until_up(client, VICTIM)
                again = await client.endpoint.call(VICTIM, TailQuery(lid, 0), timeout_s=2.0, retry=RESEND)
                assert again.sealed and again.local_tail == sealed.local_tail
                assert await _read_all(client, VICTIM, lid, 0, sealed.local_tail) == [got[p] for p in range(sealed.local_tail)]
                assert (await loglet.check_tail()) == tail

        trio.run(scenario)


# ------------------------------------------------ client-side group commit, in the simulator


async def test_coalesced_appends_share_requests_and_share_their_outcome(autojump_clock):
    """``coalesce_requests``: concurrent appends leave in few requests, each gets its own
    position (distinct, gapless, in its batch's order), and a refusal reaches every member."""
    import dataclasses

    from delos_ref.sim import Simulation
    from delos_ref.sim.workload_loglet import SIM_OPTIONS, SimNativeHarness, start_native

    async with Simulation(5).run() as sim:
        h = SimNativeHarness(sim, start_native(sim))
        h.options = dataclasses.replace(SIM_OPTIONS, coalesce_requests=2)
        c = h.client("c1")
        got: dict[int, bytes] = {}

        async def one(i: int) -> None:
            entry = b"e%03d" % i
            got[await c.append(entry)] = entry

        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(one, i)
        assert sorted(got) == list(range(100))
        assert c.stats["coalesced_batches"] < 100 / 4, c.stats  # most appends shared a request
        assert await c.read_next(0, 100) == sorted(got.items())

        await c.seal()
        refused: list[BaseException] = []

        async def late(i: int) -> None:
            try:
                await c.append(b"late%d" % i)
            except SealedError as e:
                refused.append(e)

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(late, i)
        assert len(refused) == 20 and len({id(e) for e in refused}) == 20


async def test_a_request_larger_than_the_window_is_taken_by_an_empty_window(autojump_clock):
    """A coalesced batch (or an append_many) bigger than the sequencer's window is not refused
    with ``busy`` forever: an empty window takes it; a non-empty one still pushes back."""
    import dataclasses

    from delos_ref.loglet.native import SequencerLimits
    from delos_ref.sim import Simulation
    from delos_ref.sim.workload_loglet import SIM_OPTIONS, SimNativeHarness, start_native

    limits = SequencerLimits(max_window=4, max_retained=64, max_dedupe=64)
    async with Simulation(6).run() as sim:
        h = SimNativeHarness(sim, start_native(sim, sequencer_limits=limits))
        assert await h.client("c0").append_many([b"m%d" % i for i in range(10)]) == list(range(10))
        h.options = dataclasses.replace(SIM_OPTIONS, coalesce_requests=2)
        c = h.client("c1")
        got: list[int] = []

        async def one(i: int) -> None:
            got.append(await c.append(b"p%d" % i))

        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(one, i)
        assert sorted(got) == list(range(10, 110))

        # Batches never exceed coalesce_max_entries (here below the sequencer's store bound).
        h.options = dataclasses.replace(SIM_OPTIONS, coalesce_requests=1, coalesce_max_entries=3)
        c2 = h.client("c2")
        got.clear()
        async with trio.open_nursery() as nursery:
            for i in range(30):
                nursery.start_soon(lambda i=i: _append_into(c2, got, i))
        assert sorted(got) == list(range(110, 140))
        assert c2.stats["coalesced_batches"] >= 10


async def _append_into(loglet, out: list[int], i: int) -> None:
    out.append(await loglet.append(b"q%d" % i))
