"""Cold storage on a live cluster (issue 19, "Must show"): migrate under 64 outstanding
appends, every acknowledged entry reads back identically, the LogServers' data falls
(measured: LMDB entries and used pages; LMDB files never shrink), the database digests are
unchanged and a replica that replays from cold files reaches them; a point-in-time restore
reaches the original digest at its position; a corrupted cold file fails its range clearly
while the rest of the log reads."""

from __future__ import annotations

import json
import os
import time

import pytest
import trio
from typer.testing import CliRunner

from cli.main import app
from cluster_fixture import cli, running_cluster
from delos_ref.storage_size import logserver_data_size

OUTSTANDING = 64


def here(*args: str) -> str:
    """``delos-ref ARGS`` run in this process by typer's CliRunner (the same command, exit code
    and output, without a Python start-up: these tests poll ``status`` often); its stdout.
    Commands that start or stop node processes, or that run in a trio thread, use ``cli``."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args} -> {result.exit_code}: {result.stderr} {result.exception!r}"
    return result.stdout


def j(*args: str) -> dict:
    return json.loads(here(*args, "--json"))


async def _append(vlog, entries: list[bytes], acked: dict[int, bytes]) -> None:
    """Append ``entries`` with OUTSTANDING appends in flight; record each acknowledgement."""
    queue = list(reversed(entries))
    await vlog.refresh()  # one chain fetch, not one per worker

    async def worker() -> None:
        while queue:
            entry = queue.pop()
            acked[await vlog.append(entry)] = entry

    async with trio.open_nursery() as nursery:
        for _ in range(OUTSTANDING):
            nursery.start_soon(worker)


def _settled_digests(d: str, timeout_s: float = 30.0) -> tuple[int, str]:
    """Wait until every replica has applied the whole log and they agree: (applied, digest)."""
    tail = j("tail", "--dir", d)["position"]
    deadline = time.monotonic() + timeout_s
    while True:
        reps = j("kv", "status", "--dir", d)["replicas"]
        if all(r["applied"] == tail for r in reps) and len({r["digest"] for r in reps}) == 1:
            return tail, reps[0]["digest"]
        assert time.monotonic() < deadline, f"replicas did not settle at {tail}: {reps}"
        time.sleep(0.3)


async def _read_back(cfg) -> dict[int, bytes]:
    """The whole log, position -> entry, through a VirtualLog client of the cluster."""
    from delos_ref.process import open_virtuallog

    async with open_virtuallog(cfg, "reader", deadline_s=10.0) as vlog:
        log: dict[int, bytes] = {}
        tail = await vlog.check_tail()
        while len(log) < tail:
            log.update(await vlog.read_next(len(log), tail))
        return log


def _logserver_sizes(d: str) -> list[dict]:
    return [logserver_data_size(os.path.join(d, n)) for n in ("n1", "n2", "n3")]


def test_migrate_restore_and_a_corrupt_cold_file_on_a_live_cluster(tmp_path):
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c") as cfg:
        from delos_ref.process import open_virtuallog

        acked: dict[int, bytes] = {}

        async def phase_a() -> None:
            async with open_virtuallog(cfg, "test", deadline_s=10.0) as vlog:
                for k in range(3):  # three sealed segments of raw entries
                    await _append(vlog, [b"a%d-%d" % (k, i) for i in range(500)], acked)
                    await trio.to_thread.run_sync(lambda: cli("reconfigure", "--dir", d, check=True))

        trio.run(phase_a)
        for i in range(10):
            here("kv", "put", f"k{i}", f"v{i}", "--dir", d)
        here("reconfigure", "--dir", d)
        at, digest_at = _settled_digests(d)  # restore --at reaches this later
        before = _logserver_sizes(d)

        # Migrate while 64 appends are outstanding.
        migrated: list[dict] = []

        async def phase_b() -> None:
            async with open_virtuallog(cfg, "test2", deadline_s=10.0) as vlog:
                tail = await vlog.check_tail()

                async def run_migrate() -> None:
                    done = await trio.to_thread.run_sync(lambda: cli("migrate", "--below", str(tail - 1000), "--dir", d, "--json", check=True))
                    migrated.append(json.loads(done.stdout))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_append, vlog, [b"b-%d" % i for i in range(1500)], acked)
                    nursery.start_soon(run_migrate)

        trio.run(phase_b)
        assert [(m["start"], m["stop"], m["installed"]) for m in migrated[0]["migrated"]] == [(0, 500, True)], migrated  # wholly below tail - 1000
        here("reconfigure", "--dir", d)
        applied, digest = _settled_digests(d)
        again = j("migrate", "--below", str(applied), "--dir", d)  # the rest of the sealed segments
        assert len(again["migrated"]) >= 2 and all(m["installed"] for m in again["migrated"])

        # Every acknowledged entry reads back identically (from cold files and LogServers).
        log = trio.run(_read_back, cfg)
        assert all(log.get(p) == e for p, e in acked.items()), "an acknowledged entry reads back differently"
        segs = j("status", "--dir", d)["chain"]["segments"]
        assert [s["kind"] for s in segs[:-1]] == ["cold"] * (len(segs) - 1) and all(s["cold"]["files"] >= 1 and s["cold"]["bytes"] > 0 for s in segs[:-1])

        # The LogServers dropped the migrated entries (purged in chunks: wait for it).
        deadline = time.monotonic() + 20
        while (after := _logserver_sizes(d)) and any(a["entries"] > 0 for a in after) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert all(a["entries"] < b["entries"] and a["used_pages"] < b["used_pages"] for a, b in zip(after, before)), (before, after)

        # The database: digests unchanged, and a wiped replica replays from cold files to them.
        assert _settled_digests(d) == (applied, digest)
        cli("kill", "n3", "--dir", d, check=True)
        import shutil

        shutil.rmtree(os.path.join(d, "n3", "db"))
        cli("restart", "n3", "--dir", d, check=True)
        assert _settled_digests(d, timeout_s=40) == (applied, digest)

        # Point-in-time restore at `at`: the new cluster's replicas reach the digest of then.
        r = str(tmp_path / "restored")
        cli("restore", "--from", os.path.join(d, "cold"), "--at", str(at), "--dir", r, "--base-port", str(cfg.nodes[-1].port + 20), check=True, timeout=90)
        try:
            assert _settled_digests(r, timeout_s=40) == (at, digest_at)
        finally:
            cli("down", "--dir", r)

        # Corrupt one cold file: its range fails clearly; the rest of the log reads.
        first = segs[0]
        name = first["params"]["files"][0]["name"]
        path = os.path.join(d, "cold", name)
        data = bytearray(open(path, "rb").read())
        data[-1] ^= 1
        open(path, "wb").write(bytes(data))
        bad = cli("read", "--from", str(first["start"]), "--to", str(first["start"] + 5), "--dir", d)
        assert bad.returncode == 1 and "SHA-256 mismatch" in bad.stderr and bad.stdout == "", bad
        good = cli("read", "--from", str(segs[1]["start"]), "--to", str(segs[1]["start"] + 5), "--dir", d, "--json", check=True)
        assert len(json.loads(good.stdout)["entries"]) == 5


def _restored_digest(r: str, port: int, *args: str) -> tuple[int, str]:
    """``restore ARGS --dir r`` on ports from ``port``; the new cluster's settled (applied, digest)."""
    cli("restore", *args, "--dir", r, "--base-port", str(port), check=True, timeout=90)
    try:
        return _settled_digests(r, timeout_s=40)
    finally:
        cli("down", "--dir", r)


@pytest.mark.slow  # 40-90 s: keeps the default suite under 20 minutes; `make test-slow` runs it
def test_restore_inside_a_cold_copy_and_above_the_cold_store_with_the_live_log(tmp_path):
    """``restore --at POS``: POS inside a cold copy (its first entries are copied into the new
    cluster's store), and POS above the last cold segment, the rest read from the live
    cluster (``--live DIR``; without it, refused). Each restored database's digest is the one
    the original had at POS."""
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c") as cfg:
        for i in range(10):
            here("kv", "put", f"k{i}", f"v{i}", "--dir", d)
        mid, digest_mid = _settled_digests(d)  # inside the segment that is migrated below
        for i in range(10):
            here("kv", "put", f"k{i}", f"w{i}", "--dir", d)
        here("reconfigure", "--dir", d)
        moved = j("migrate", "--below", str(j("tail", "--dir", d)["position"]), "--dir", d)
        cold_end = max(m["stop"] for m in moved["migrated"])
        assert 0 < mid < cold_end and all(m["installed"] for m in moved["migrated"]), moved
        for i in range(5):  # only in the live cluster's active segment
            here("kv", "put", f"k{i}", f"x{i}", "--dir", d)
        here("kv", "put", "new", "entry", "--dir", d)
        above, digest_above = _settled_digests(d)
        assert above > cold_end

        cold = os.path.join(d, "cold")
        port = cfg.nodes[-1].port + 20
        assert _restored_digest(str(tmp_path / "r1"), port, "--from", cold, "--at", str(mid)) == (mid, digest_mid)
        refused = cli("restore", "--from", cold, "--at", str(above), "--dir", str(tmp_path / "r2"), "--base-port", str(port + 10))
        assert refused.returncode == 1 and f"positions from {cold_end} below {above} are not in it" in refused.stderr and "--live DIR" in refused.stderr, refused
        assert not (tmp_path / "r2").exists(), "a refused restore starts nothing"
        assert _restored_digest(str(tmp_path / "r3"), port + 20, "--from", cold, "--at", str(above), "--live", d) == (above, digest_above)
        past = cli("restore", "--from", cold, "--at", str(above + 1000), "--live", d, "--dir", str(tmp_path / "r4"), "--base-port", str(port + 30))
        assert past.returncode == 1 and f"past the live log's tail {above}" in past.stderr, past


def _sealed(d: str) -> list[dict]:
    """The chain's sealed, non-empty segments (status JSON)."""
    return [s for s in j("status", "--dir", d)["chain"]["segments"][:-1] if s["stop"] > s["start"]]


def test_migrate_auto_keeps_the_last_n_sealed_segments_on_the_logservers(tmp_path):
    """``migrate --auto --keep 1``: one round at once, then every node's supervisor repeats it.
    After several reconfigurations every sealed segment but the last is cold, every
    acknowledged entry reads back, and the LogServers hold fewer entries than before."""
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c") as cfg:
        from delos_ref.process import open_virtuallog

        acked: dict[int, bytes] = {}

        def segments(tag: str, n: int) -> None:
            """``n`` sealed segments of 300 entries each (64 appends outstanding), each closed by `reconfigure`."""

            async def run() -> None:
                async with open_virtuallog(cfg, "test", deadline_s=10.0) as vlog:
                    for k in range(n):
                        await _append(vlog, [b"%s%d-%d" % (tag.encode(), k, i) for i in range(300)], acked)
                        await trio.to_thread.run_sync(lambda: cli("reconfigure", "--dir", d, check=True))

            trio.run(run)

        segments("a", 3)
        before = _logserver_sizes(d)
        first = j("migrate", "--auto", "--keep", "1", "--dir", d)  # the round run at once
        assert [(m["installed"]) for m in first["migrated"]] == [True, True], first
        assert [s["kind"] for s in _sealed(d)] == ["cold", "cold", "native"]

        segments("b", 2)  # two more sealed segments: only the supervisors can move them now
        deadline = time.monotonic() + 60  # the supervisors' period is 5 s; a loaded machine is slow
        while True:
            sealed = _sealed(d)
            if [s["kind"] for s in sealed] == ["cold"] * 4 + ["native"]:
                break
            assert time.monotonic() < deadline, f"the supervisors did not keep only the last sealed segment on the LogServers: {sealed}"
            time.sleep(0.5)
        assert all(s["cold"]["files"] >= 1 and s["cold"]["bytes"] > 0 for s in sealed[:-1])
        assert sum(s["stop"] - s["start"] for s in sealed) == len(acked) == 1500

        log = trio.run(_read_back, cfg)
        assert all(log.get(p) == e for p, e in acked.items()), "an acknowledged entry reads back differently"
        # Each LogServer keeps the last sealed segment (300 entries) and the empty active one.
        deadline = time.monotonic() + 30
        while any(a["entries"] > 300 for a in _logserver_sizes(d)):
            assert time.monotonic() < deadline, (before, _logserver_sizes(d))
            time.sleep(0.3)
        after = _logserver_sizes(d)
        assert all(a["entries"] < b["entries"] for a, b in zip(after, before)), (before, after)
