"""``bench --dir/--base-port`` (issue 17, item 23): a benchmark's cluster runs where it is told,
and a port in use is a one-line error. Speed is not checked here (benchmarks measure it)."""

from __future__ import annotations

import json
import socket

import pytest

from delos_ref import cluster
from tests.cluster_fixture import cli, free_base_port

pytestmark = pytest.mark.cluster


def test_bench_runs_its_cluster_in_the_given_directory_on_the_given_ports(tmp_path):
    d = tmp_path / "bench"
    base = free_base_port(3, "tcp")
    result = cli("bench", "virtuallog", "--seconds", "0.2", "--dir", str(d), "--base-port", str(base), "--json", timeout=180)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bench"] == "virtuallog"
    cfg = cluster.load(d)  # kept after the run, with its node logs
    assert [n.port for n in cfg.nodes] == [base, base + 1, base + 2]
    assert not cluster.live_nodes(cfg), "the benchmark's cluster is stopped afterwards"
    assert "serving: roles" in (d / "n1" / "node.log").read_text()


def test_bench_base_port_in_use_is_a_one_line_error(tmp_path):
    base = free_base_port(3, "tcp")
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", base + 2))
        holder.listen()
        result = cli("bench", "kv", "--seconds", "0.2", "--base-port", str(base), "--dir", str(tmp_path / "b"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: bench kv: port in use (tcp): 127.0.0.1:{base + 2}; choose another --base-port"
    assert not (tmp_path / "b").exists(), "nothing was started"


def test_bench_placement_options_are_checked():
    result = cli("bench", "transport", "--seconds", "0.2", "--base-port", "9000")
    assert result.returncode == 2 and "starts no cluster" in result.stderr
    result = cli("bench", "kv", "--base-port", "70000")
    assert result.returncode == 2 and "--base-port must leave room" in result.stderr
