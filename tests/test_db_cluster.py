"""The database on a real cluster: a replica killed with SIGKILL mid-load catches up (issue 7).

A 3-node TCP cluster (``delos-ref up``): every node hosts a replica with its table in LMDB.
Writers spread over the replicas keep putting; replica n3 (not the sequencer node) is killed
with SIGKILL in the middle, writes continue through n1 and n2; n3 is restarted and recovers
its table and applied position from LMDB, then plays the log forward. Every acknowledged put
is then readable from every replica, and all three hold the same state digest at the same
applied position. Also: the CLI round trip (put/get/cas/txn/scan) and a trim.
"""

from __future__ import annotations

import json

import pytest
import trio

from delos_ref import cluster
from delos_ref.db import ClientOptions, KvClient, KvError
from delos_ref.db.batching import BatchOptions
from delos_ref.process import open_client
from tests.cluster_fixture import cli, running_cluster

pytestmark = pytest.mark.cluster

VICTIM = "n3"
WRITERS = 8


def _kill(directory, node_id: str) -> None:
    cluster.kill_node(cluster.load(directory), node_id)  # SIGKILL, and wait until it is gone


def _restart(directory, node_id: str) -> None:
    cluster.restart_node(directory, cluster.load(directory), node_id)


async def _load_kill_restart(directory) -> None:
    cfg = cluster.load(directory)
    ids = [n.id for n in cfg.nodes]
    acked: dict[str, str] = {}
    phase = {"stop": False}
    count = {"acked": 0}
    async with open_client(cfg, "test") as node:
        opts = ClientOptions(call_timeout_s=3.0, attempts=6)

        async def writer(i: int) -> None:
            table = KvClient(node.endpoint, ids[i % 3:] + ids[: i % 3], f"{node.node_id}-w{i}", options=opts)
            n = 0
            while not phase["stop"]:
                key, value = f"w{i}/{n % 20}", f"{i}.{n}"
                try:
                    await table.put(key, value)
                    acked[key] = value
                    count["acked"] += 1
                except KvError:
                    acked.pop(key, None)  # unknown outcome: the key's final value is not pinned
                n += 1

        async with trio.open_nursery() as nursery:
            for i in range(WRITERS):
                nursery.start_soon(writer, i)
            await trio.sleep(1.5)
            before = count["acked"]
            _kill(directory, VICTIM)
            await trio.sleep(1.5)
            _restart(directory, VICTIM)
            await trio.sleep(2.0)  # load continues while n3 recovers and catches up
            phase["stop"] = True
        assert before > 0 and count["acked"] > before, "puts were acknowledged before and after the kill"
        checker = KvClient(node.endpoint, ids, f"{node.node_id}-check", options=ClientOptions(call_timeout_s=10.0))
        for replica in ids:
            table = KvClient(node.endpoint, [replica], f"{node.node_id}-r{replica}", options=ClientOptions(call_timeout_s=10.0))
            for key, value in sorted(acked.items()):
                assert await table.get(key) == value, f"{replica} lost {key}={value}"
        statuses = [await checker.status(r, digest=True) for r in ids]
        assert len({(s.applied, s.digest) for s in statuses}) == 1, statuses
        # Positions, not writes: a batch entry holds up to max_commands writes.
        assert statuses[0].applied >= -(-count["acked"] // BatchOptions().max_commands)


def test_replica_killed_mid_load_catches_up_with_equal_digests(tmp_path):
    with running_cluster(tmp_path / "c") as _:
        trio.run(_load_kill_restart, tmp_path / "c")


def test_kv_cli_round_trip_and_trim(tmp_path):
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c"):
        assert cli("kv", "put", "user/1", "alice", "--dir", d).returncode == 0
        got = cli("kv", "get", "user/1", "--dir", d, "--node", "n2", "--json")
        assert json.loads(got.stdout) == {"key": "user/1", "value": "alice"}
        assert cli("kv", "cas", "user/1", "bob", "carol", "--dir", d).returncode == 1  # not bob: no swap
        assert cli("kv", "txn", "--if", "user/1=alice", "--put", "user/2=bob", "--delete", "user/1", "--dir", d).stdout.strip() == "true"
        scan = json.loads(cli("kv", "scan", "--prefix", "user/", "--dir", d, "--json").stdout)
        assert scan == {"pairs": [["user/2", "bob"]]}
        assert cli("kv", "get", "user/1", "--dir", d).returncode == 1  # absent
        bad = cli("kv", "put", "", "x", "--dir", d)
        assert bad.returncode == 2 and "key" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        trimmed = json.loads(cli("kv", "trim", "--dir", d, "--json").stdout)
        assert trimmed["trim_point"] >= 3
        status = json.loads(cli("kv", "status", "--dir", d, "--json").stdout)
        assert len({(r["applied"], r["digest"]) for r in status["replicas"]}) == 1


def test_wiped_replica_restores_a_snapshot_after_a_trim(tmp_path):
    """Trim the log, then wipe n3's table (kill -9, delete DIR/n3/db, restart): the log no
    longer holds its prefix, so n3 fetches a peer's snapshot and plays on from there."""
    import shutil

    from typer.testing import CliRunner

    from cli.main import app

    d = tmp_path / "c"
    with running_cluster(d):
        runner = CliRunner()  # the puts run `kv put` in this process: no Python start-up each
        for i in range(30):
            put = runner.invoke(app, ["kv", "put", f"k{i % 7}", str(i), "--dir", str(d)])
            assert put.exit_code == 0, (put.stdout, put.stderr, put.exception)
        point = json.loads(cli("kv", "trim", "--dir", str(d), "--json").stdout)["trim_point"]
        assert point >= 30
        _kill(d, VICTIM)
        shutil.rmtree(d / VICTIM / "db")
        _restart(d, VICTIM)
        assert cli("kv", "put", "after", "wipe", "--dir", str(d)).returncode == 0
        got = cli("kv", "get", "k1", "--node", VICTIM, "--dir", str(d), "--json", timeout=60)
        assert json.loads(got.stdout)["value"] == "29", got.stderr
        for n in ("n1", "n2"):  # a linearizable read syncs each replica to the same tail
            assert cli("kv", "get", "after", "--node", n, "--dir", str(d)).returncode == 0
        status = json.loads(cli("kv", "status", "--dir", str(d), "--json").stdout)["replicas"]
        victim = next(r for r in status if r["replica"] == VICTIM)
        assert victim["snapshots_restored"] >= 1
        assert len({(r["applied"], r["digest"]) for r in status}) == 1, status
