"""A user's loglet hot-swapped into a running cluster (docs/tutorial-loglet.md §6).

One real 3-node TCP cluster, started *without* the plugin:

1. ``reconfigure --loglet directory`` is refused (exit 1, one line): no module registers it;
   ``plugin add json`` (not a plugin) is exit 2 and leaves ``cluster.json`` as it was;
2. ``plugin add delos_ref.examples.directory_loglet`` restarts the three nodes one at a time
   under a live appender: no append fails (the appender's VirtualLog retries over the seal of
   the sequencer moves), and the module is recorded;
3. under a second live appender (a client opened after the add: it loads the module from
   ``cluster.json``), ``reconfigure --loglet directory`` hot-swaps the log onto the tutorial's
   directory loglet and ``reconfigure --loglet native`` back off it: no append fails, the
   entries of the directory segment are files in ``DIR/directory-loglets/``;
4. every acknowledged entry of both appenders is read back by ``delos-ref read`` exactly
   once, at its position, in order; and every node's database replica read the same log
   through the swap (``kv put`` after it, then equal ``(applied, digest)`` on all replicas);
5. a command whose cluster.json lacks the module says, in one line, which module to add.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import trio

from cluster_fixture import cli, running_cluster
from delos_ref import cluster
from delos_ref.process import open_virtuallog

pytestmark = pytest.mark.cluster

MODULE = "delos_ref.examples.directory_loglet"


async def _under_appender(cfg: cluster.ClusterConfig, name: str, steps: list[tuple[str, ...]], acked: list[tuple[int, bytes]]) -> list[str]:
    """Append without pause through a VirtualLog client while each ``delos-ref`` command of
    ``steps`` runs in turn (1 s of appends before, between and after); the commands' stdout."""
    outputs = []
    async with open_virtuallog(cfg, name) as vlog:
        stop = trio.Event()

        async def appender() -> None:
            i = 0
            while not stop.is_set():
                entry = b"%s-%d" % (name.encode(), i)
                acked.append((await vlog.append(entry), entry))  # any exception fails the test
                i += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(appender)
            await trio.sleep(1.0)
            for step in steps:
                proc = await trio.to_thread.run_sync(lambda: cli(*step, timeout=120))
                assert proc.returncode == 0, f"delos-ref {' '.join(step)} -> {proc.returncode}: {proc.stderr}"
                outputs.append(proc.stdout)
                await trio.sleep(1.0)
            stop.set()
    return outputs


def test_a_plugin_added_to_a_running_cluster_takes_a_hot_swap_under_traffic(tmp_path: Path):
    d = tmp_path / "c"
    with running_cluster(d, nodes=3, transport="tcp") as cfg:
        dir_ = ("--dir", str(d))
        refused = cli("reconfigure", "--loglet", "directory", *dir_)
        assert refused.returncode == 1 and "unknown loglet kind 'directory'" in refused.stderr and "plugin add" in refused.stderr, refused.stderr
        before = cluster.config_path(d).read_text()
        bad = cli("plugin", "add", "json", *dir_)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not a loglet plugin" in bad.stderr, bad.stderr
        assert cluster.config_path(d).read_text() == before, "a refused plugin add changed cluster.json"

        acked: list[tuple[int, bytes]] = []
        [added] = trio.run(_under_appender, cfg, "a", [("plugin", "add", MODULE, *dir_, "--json")], acked)
        report = json.loads(added)
        assert report["added"] and report["kind"] == "directory"
        assert [r["node"] for r in report["restarted"]] == ["n1", "n2", "n3"]
        cfg = cluster.load(d)  # the new pids, and the module: this process now has it too
        assert cfg.loglet_modules == [MODULE]

        swap = [("reconfigure", "--loglet", "directory", *dir_), ("reconfigure", "--loglet", "native", *dir_)]
        trio.run(_under_appender, cfg, "b", swap, acked)

        chain = json.loads(cli("status", "--json", *dir_, check=True).stdout)["chain"]["segments"]
        kinds = [s["kind"] for s in chain]
        assert kinds[-2:] == ["directory", "native"], kinds
        moved = chain[-2]
        assert moved["stop"] > moved["start"], f"the directory loglet took no appends: {moved}"
        files = sorted(p.name for p in (d / "directory-loglets" / moved["params"]["loglet_id"]).iterdir() if p.name.isdigit())
        assert len(files) == moved["stop"] - moved["start"]

        entries = json.loads(cli("read", "--json", *dir_, check=True).stdout)["entries"]
        assert [e["position"] for e in entries] == list(range(len(entries)))
        log = {e["position"]: e["data"].encode() if "data" in e else base64.b64decode(e["data_b64"]) for e in entries}
        assert all(log.get(p) == e for p, e in acked), "an acknowledged entry is not at its position"
        ours = [e for e in log.values() if e.startswith((b"a-", b"b-"))]
        assert sorted(ours) == sorted(e for _, e in acked), "an acknowledged entry read twice, or an unacknowledged one"
        for name in (b"a-", b"b-"):  # each appender's entries, in its order
            seq = [int(e.split(b"-")[1]) for e in ours if e.startswith(name)]
            assert seq == sorted(seq)

        cli("kv", "put", "after", "swap", *dir_, check=True)
        deadline = time.monotonic() + 20
        while True:  # each replica applies the log at its own pace: wait until they agree
            replicas = json.loads(cli("kv", "status", "--json", *dir_, check=True).stdout)["replicas"]
            if len({(r["applied"], r["digest"]) for r in replicas}) == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(replicas) == 3 and len({(r["applied"], r["digest"]) for r in replicas}) == 1, replicas
        assert replicas[0]["applied"] > max(p for p, _ in acked), "the replicas did not read past the swap"

        path = cluster.config_path(d)
        saved = path.read_text()
        path.write_text(saved.replace(f'"{MODULE}"', ""))  # as if it were never recorded
        try:
            lost = cli("read", "--from", "0", "--to", "1", *dir_)
        finally:
            path.write_text(saved)
        assert lost.returncode == 1 and lost.stderr.count("\n") == 1, lost.stderr
        assert "loglet kind 'directory'" in lost.stderr and "plugin add" in lost.stderr, lost.stderr


def test_up_refuses_a_loglet_module_that_does_not_import_and_makes_nothing(tmp_path: Path):
    d = tmp_path / "never"
    proc = cli("up", "--detach", "--dir", str(d), "--base-port", "15100", "--loglet-module", "no_such_plugin_mod")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot import loglet module no_such_plugin_mod" in proc.stderr
    assert not d.exists()
