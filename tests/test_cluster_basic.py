"""Real node processes: `up`, `status`, `down`, and the operator errors around them (issue 2)."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from delos_ref import cluster
from tests.cluster_fixture import cli, free_base_port, running_cluster, status

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One running tcp cluster, shared by the checks that leave it as they found it (a refused
    ``up``, a refused second node process, garbage frames); each asserts it still serves. The
    tests that stop, kill or trace nodes start their own."""
    d = tmp_path_factory.mktemp("live") / "c"
    with running_cluster(d) as cfg:
        yield d, cfg


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_up_status_down_leaves_no_process(tmp_path, transport):
    d = tmp_path / "c"
    with running_cluster(d, transport=transport) as cfg:
        report = status(d)
        assert [n["alive"] for n in report["nodes"]] == [True, True, True]
        assert all({"ping", "acceptor", "logserver"} <= set(n["roles"]) for n in report["nodes"])
        pids = [n.pid for n in cfg.nodes]
    assert not any(cluster.pid_alive(p) for p in pids)


def test_second_up_on_a_live_directory_is_refused(live):
    d, cfg = live
    proc = cli("up", "--detach", "--dir", str(d), "--base-port", str(cfg.nodes[0].port))
    assert proc.returncode == 1
    assert "already running" in proc.stderr
    assert all(n["alive"] for n in status(d)["nodes"])  # the running cluster is untouched


def test_stale_directory_is_recovered_with_its_config(tmp_path):
    d = tmp_path / "c"
    with running_cluster(d) as cfg:
        for n in cfg.nodes:
            cluster.signal_node(n, signal.SIGKILL)
        time.sleep(0.3)
        cli("up", "--detach", "--dir", str(d), check=True, timeout=90)
        again = cluster.load(d)
        assert again.cluster_id == cfg.cluster_id and [n.port for n in again.nodes] == [n.port for n in cfg.nodes]
        assert all(n["alive"] for n in status(d)["nodes"])


def test_port_in_use_is_a_clear_error(tmp_path):
    proc = None
    for _ in range(5):  # another process may take a probed port first: probe again
        base = free_base_port(3, "tcp")
        with socket.socket() as s:
            # Like the nodes: a port in TIME_WAIT from an earlier test is free for a listener.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
            s.listen()
            proc = cli("up", "--detach", "--dir", str(tmp_path / "c"), "--base-port", str(base))
            break
    assert proc is not None, "could not hold a free port for the test"
    assert proc.returncode == 1
    assert "port in use" in proc.stderr and str(base + 1) in proc.stderr


def test_status_of_a_dead_cluster_says_so(tmp_path):
    d = tmp_path / "c"
    with running_cluster(d):
        pass  # stopped
    proc = cli("status", "--dir", str(d), "--json", "--timeout", "0.3")
    assert proc.returncode == 1
    assert "no node" in proc.stderr
    assert [n["alive"] for n in json.loads(proc.stdout)["nodes"]] == [False, False, False]


def test_no_cluster_directory_is_a_clear_error(tmp_path):
    for args in (["status"], ["down"]):
        proc = cli(*args, "--dir", str(tmp_path / "nothing"))
        assert proc.returncode == 1 and "no cluster" in proc.stderr


def test_foreign_cluster_file_is_a_clear_error(tmp_path):
    (tmp_path / "cluster.json").write_text("{not json")
    proc = cli("status", "--dir", str(tmp_path))
    assert proc.returncode == 1 and "not a delos-ref cluster file" in proc.stderr


def test_unknown_cli_argument_is_a_usage_error():
    proc = cli("status", "--no-such-flag")
    assert proc.returncode == 2 and "No such option" in proc.stderr


def test_second_node_process_on_the_same_data_dir_is_refused(live):
    d, _ = live
    proc = cli("node", "--dir", str(d), "--id", "n1")
    assert proc.returncode == 1 and "in use" in proc.stderr
    assert all(n["alive"] for n in status(d)["nodes"])  # n1 still serves


def test_live_node_keeps_serving_after_garbage_and_wrong_secret_frames(live):
    from transports.codec import Envelope, FrameCodec
    from delos_ref.ping import Ping

    d, cfg = live
    n1 = cfg.nodes[0]
    wrong = FrameCodec(secret=b"not-the-cluster-secret").encode(Envelope("evil", "n1", 1, 1, Ping()))
    for junk in (b"\x00" * 64, b"DL\x01\x00\xff\xff\xff\xff", wrong):
        with socket.create_connection((n1.host, n1.port)) as s:
            s.sendall(junk)
            time.sleep(0.05)
    assert all(n["alive"] for n in status(d)["nodes"])


def test_traced_nodes_write_ndjson_events_named_after_the_protocol(tmp_path):
    """`up --trace`: each node appends its protocol steps to DIR/<node>/trace.ndjson."""
    import trio

    from delos_ref.process import open_client
    from delos_ref.trace import read_ndjson
    from paxos.register import MetaStoreClient

    d = tmp_path / "c"
    with running_cluster(d, extra=("--trace",)) as cfg:

        async def write_once():
            async with open_client(cfg) as client:
                store = MetaStoreClient(client.endpoint, [n.id for n in cfg.nodes], client.rng("paxos"), client.node_id)
                version, _ = await store.read()
                return version, await store.write_if(version, b"hello")

        before, result = trio.run(write_once)
        assert before == 1, "up installed the VirtualLog's first chain as version 1"
        assert result.version == 2
    events = [e for n in cfg.nodes for e in read_ndjson(str(d / n.id / "trace.ndjson"))]
    names = {e["event"] for e in events}
    assert {"Promise", "Accepted"} <= names, names
    assert all({"t", "node", "role", "event"} <= e.keys() for e in events)
