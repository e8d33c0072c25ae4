"""Migration to cold storage and skipping a poison entry (delos_ref/migrate.py), on the
simulator: the rules of the module docstring, each pinned, and each bug switch with teeth."""

from __future__ import annotations

import pytest

from delos_ref.loglet.cold import MemoryColdStore
from delos_ref.loglet.skip import skip_marker, skipped_reason
from delos_ref.migrate import (
    BUG_MIGRATE_BEFORE_VERIFIED,
    BUG_MIGRATE_UNSEALED,
    CopyMismatch,
    SkipRefused,
    candidates,
    keep_last,
    migrate_below,
    skip_entry,
)
from delos_ref.virtuallog import VirtualLog, default_registry
from delos_ref.virtuallog.chain import Chain, Segment
from delos_ref.sim.workload_loglet import SIM_OPTIONS
from paxos.register import MetaStoreClient
from test_virtuallog import FAST, OPTIONS, SERVERS, appended, native, read_all
from test_virtuallog import cluster as _cluster
from delos_ref.loglet.cold import ColdStores
import contextlib

#: The simulator's cold stores, by location: every client of a test sees the same ones.
STORES: dict[str, MemoryColdStore] = {}


@contextlib.asynccontextmanager
async def cluster(seed: int = 0):
    """test_virtuallog's cluster, its clients' registries opening the memory cold stores."""
    STORES.clear()
    async with _cluster(seed) as c:

        def client(name, options=OPTIONS):
            node = c.sim.client(name)
            metastore = MetaStoreClient(node.endpoint, SERVERS, node.rng("metastore"), name, timeouts=FAST)
            stores = ColdStores(lambda location: STORES[location])
            return VirtualLog(metastore, default_registry(memory=c.memory, node=node, native_options=SIM_OPTIONS, cold=stores), name, options=options)

        c.client = client
        yield c


def store(cls=MemoryColdStore, location="cold") -> MemoryColdStore:
    STORES[location] = cls(location)
    return STORES[location]


def copy_ids(prefix: str):
    return lambda seg: f"{prefix}-{seg.start}"


async def _three_segments(c):
    """A log of 30 entries over three NativeLoglets: [0,10) [10,20) sealed, [20,..) active."""
    v = c.client("w")
    await v.bootstrap(native("n0"))
    await appended(v, 10, "a")
    await v.reconfig_extend(native("n1", "s2"))
    await appended(v, 10, "b")
    await v.reconfig_extend(native("n2", "s3"))
    await appended(v, 10, "c")
    return v


async def test_migrate_moves_sealed_segments_and_every_entry_reads_back(autojump_clock):
    async with cluster() as c:
        v = await _three_segments(c)
        stale = c.client("stale")
        before = await read_all(stale)  # this reader's chain still names the LogServers
        cold = store()
        done = await migrate_below(v, cold, 25, copy_ids("cp"))
        assert [(m.start, m.stop, m.installed) for m in done] == [(0, 10, True), (10, 20, True)], "only sealed segments, wholly below"
        assert [s.kind for s in v.chain.segments] == ["cold", "cold", "native"]
        assert [(s.start, s.stop) for s in v.chain.segments[:2]] == [(0, 10), (10, 20)], "modify never moves a range"
        assert await read_all(c.client("fresh")) == before
        assert await read_all(stale) == before, "a stale chain meets the LogServers' trim, re-fetches, reads the copy"
        n0 = v.registry.build("native", Segment(0, 10, *v.registry.encode(native("n0"))).params)
        assert (await n0.check_tail()).tail == 10
        with pytest.raises(Exception, match="trimmed"):
            await n0.read_next(0, 1)  # the LogServers dropped the migrated range
        assert sorted(n for n in cold.blobs if n.endswith(".manifest")) == ["cp-0.manifest", "cp-10.manifest"]
        assert await migrate_below(v, cold, 25, copy_ids("again")) == [], "a cold segment is not migrated twice"


async def test_a_migration_that_loses_a_race_re_checks_and_installs_on_the_new_chain(autojump_clock):
    async with cluster() as c:
        v = await _three_segments(c)
        other = c.client("other")
        real = v.reconfig_modify_at
        raced = []

        async def racing(version, index, config):
            if not raced:  # another reconfiguration wins between our check and our write
                raced.append(await other.reconfig_extend(native("n3", "s1")))
            return await real(version, index, config)

        v.reconfig_modify_at = racing
        done = await migrate_below(v, store(), 10, copy_ids("cp"))
        assert raced == [True] and v.stats["lost"] >= 1
        assert [(m.start, m.stop, m.installed) for m in done] == [(0, 10, True)]
        assert [s.kind for s in v.chain.segments] == ["cold", "native", "native", "native"], "both changes are in the chain"
        assert [e for _, e in await read_all(other)][:10] == [b"a%d" % i for i in range(10)]


async def test_two_migrations_of_one_segment_install_one_copy(autojump_clock):
    async with cluster() as c:
        v = await _three_segments(c)
        w = c.client("w2")
        cold = store()
        first = await migrate_below(v, cold, 10, copy_ids("x"), drop=False)
        # w's view was taken before: it copies the same native segment, and finds it gone.
        from delos_ref.migrate import migrate_segment

        seg = Segment(0, 10, *v.registry.encode(native("n0")))
        second = await migrate_segment(w, cold, seg, "y", bugs=frozenset(), drop=True, emit=lambda *a, **k: None)
        assert first[0].installed and not second.installed
        assert v.registry.config((await w.refresh()).segments[0]).loglet_id == "x-0"


class _FlippingStore(MemoryColdStore):
    """A store that corrupts what it is given before it hashes nothing: a bad copier."""

    async def put(self, name, data):
        if name.endswith(".seg"):
            data = data[:-1] + bytes([data[-1] ^ 1])
        await super().put(name, data)


async def test_an_unverified_copy_is_never_installed(autojump_clock):
    async with cluster() as c:
        v = await _three_segments(c)
        with pytest.raises(CopyMismatch):
            await migrate_below(v, store(_FlippingStore), 10, copy_ids("bad"))
        assert v.chain.segments[0].kind == "native", "the chain still names the LogServers"
        assert [e for _, e in await read_all(c.client("r"))][:10] == [b"a%d" % i for i in range(10)]


async def test_bug_migrate_before_verified_installs_a_bad_copy(autojump_clock):
    async with cluster() as c:
        v = await _three_segments(c)
        with pytest.raises(CopyMismatch):
            await migrate_below(v, store(_FlippingStore), 10, copy_ids("bad"), bugs=frozenset([BUG_MIGRATE_BEFORE_VERIFIED]))
        assert (await v.refresh()).segments[0].kind == "cold", "the bug installed the copy before reading it back"


async def test_bug_migrate_unsealed_loses_entries_landed_after_the_copy(autojump_clock):
    async with cluster() as c:
        v = await _three_segments(c)
        writer = c.client("late")
        real = v.reconfig_extend_raw

        async def late_append_then_seal(kind, params):
            await writer.append(b"late")  # lands in the active segment after the copy read it
            return await real(kind, params)

        v.reconfig_extend_raw = late_append_then_seal
        await migrate_below(v, store(), 40, copy_ids("u"), bugs=frozenset([BUG_MIGRATE_UNSEALED]), drop=False)
        chain = await v.refresh()
        seg = chain.segments[2]
        assert (seg.kind, seg.start, seg.stop) == ("cold", 20, 31)
        assert v.registry.config(seg).count == 10, "the copy stops at the tail it saw"
        assert await c.client("r").read_next(30, 31) == [], "the acknowledged late entry is lost"


def test_candidates_and_keep_last_are_sealed_segments_only():
    segs = (Segment(0, 10, "native", b"a"), Segment(10, 10, "native", b"b"), Segment(10, 20, "cold", b"c"), Segment(20, 30, "native", b"d"), Segment(30, None, "native", b"e"))
    chain = Chain(segs)
    assert candidates(chain, 1000) == [segs[0], segs[3]], "not empty, not cold, not active"
    assert candidates(chain, 29) == [segs[0]], "wholly below"
    assert keep_last(chain, 1) == 20 and keep_last(chain, 0) == 30 and keep_last(chain, 5) == 0


# ------------------------------------------------------------------------------ skip


async def test_skip_replaces_one_sealed_entry_by_a_marker(autojump_clock):
    async with cluster() as c:
        v = await _three_segments(c)
        out = await skip_entry(v, 13, "poison: crashes the replicas")
        assert out["segment"] == {"start": 10, "stop": 20, "kind": "native"}
        await skip_entry(v, 15, "second")
        got = dict(await read_all(c.client("r")))
        assert skipped_reason(got[13]) == "poison: crashes the replicas" and got[15] == skip_marker("second")
        assert [got[p] for p in (10, 12, 14, 16, 19)] == [b"b0", b"b2", b"b4", b"b6", b"b9"], "every other entry is as it was"
        assert (await v.refresh()).segments[1].kind == "skip" and (v.chain.segments[1].start, v.chain.segments[1].stop) == (10, 20)
        # A migration copies the markers: the cold segment carries the skip for good.
        await migrate_below(v, store(), 20, copy_ids("cp"))
        assert dict(await read_all(c.client("r2")))[13] == got[13]


async def test_skip_is_refused_outside_sealed_segments(autojump_clock):
    async with cluster() as c:
        v = await _three_segments(c)
        with pytest.raises(SkipRefused, match="active segment"):
            await skip_entry(v, 25, "x")
        with pytest.raises(SkipRefused, match="active segment"):
            await skip_entry(v, 10_000, "x")
        await v.prefix_trim(10)
        await v.reconfig_truncate()
        with pytest.raises(SkipRefused, match="below the log's first position 10"):
            await skip_entry(v, 3, "x")


def test_only_the_first_live_node_decides_to_migrate_and_only_when_something_is_left():
    from delos_ref.virtuallog.supervisor import decide_migration

    segs = (Segment(0, 10, "native", b"a"), Segment(10, 20, "native", b"b"), Segment(20, None, "native", b"c"))
    chain = Chain(segs)
    assert decide_migration(chain, 1, "n1", ["n1", "n2", "n3"]) == 10, "all but the last sealed segment"
    assert decide_migration(chain, 1, "n2", ["n1", "n2", "n3"]) is None, "n1 is alive: it migrates"
    assert decide_migration(chain, 1, "n2", ["n2", "n3"]) == 10, "n1 is silent: n2 takes over"
    assert decide_migration(chain, 2, "n1", ["n1"]) is None, "nothing beyond the last 2"
    moved = Chain((Segment(0, 10, "cold", b"x"),) + segs[1:])
    assert decide_migration(moved, 1, "n1", ["n1"]) is None, "already cold"


# --------------------------------------------------------------------------- restore


async def test_restore_takes_what_the_cold_store_lacks_from_the_live_log(autojump_clock):
    """``restore --live``: the plan stops where the cold copies end, the rest is read from the
    live log as stored and becomes one more verified cold copy; together they are the log's
    prefix, entry for entry (envelopes included, so a replica decodes them as the original)."""
    from delos_ref.loglet.cold import ColdLoglet
    from delos_ref.migrate import RestoreRefused, live_segment, plan_stop, read_live, read_segment, restore_plan, restored_segments

    async with cluster() as c:
        v = await _three_segments(c)
        cold = store()
        await migrate_below(v, cold, 10, copy_ids("cp"))  # [0, 10) cold; [10, 30) only live
        with pytest.raises(RestoreRefused, match=r"positions from 10 below 25 are not in it \(read them from the live cluster with `--live DIR`"):
            await restore_plan(cold, 25)
        plan = await restore_plan(cold, 25, partial=True)
        assert [(start, take) for start, _, take in plan] == [(0, 10)] and plan_stop(plan) == 10
        entries = await read_live(v, 10, 25)
        target = store(location="restored")
        seg = await live_segment(entries, 10, target, "restore-live")
        assert (seg.kind, seg.start, seg.stop) == ("cold", 10, 25)
        copied = await read_segment(ColdLoglet(v.registry.config(seg), target), 15)
        original = await v.read_stored(0, 25)
        assert copied == [e for _, e in original[10:25]], "the live part is copied as stored"
        assert await read_segment(ColdLoglet(plan[0][1], cold), 10) == [e for _, e in original[:10]]
        assert "restore-live.manifest" in target.blobs
        # --at inside a copy: its first entries are copied (and verified) into the target.
        part = await restored_segments(await restore_plan(cold, 4), cold, target, "restore-part")
        assert [(s.start, s.stop) for s in part] == [(0, 4)]
        assert await read_segment(ColdLoglet(v.registry.config(part[0]), target), 4) == [e for _, e in original[:4]]

        with pytest.raises(RestoreRefused, match="past the live log's tail 30"):
            await read_live(v, 10, 31)
        await v.prefix_trim(20)
        await v.reconfig_truncate()
        with pytest.raises(RestoreRefused, match="live log is trimmed below 20: neither holds them"):
            await read_live(v, 10, 25)
