"""Clusters across hosts (issue 24): ``init``, ``node --cluster --data``, ``bootstrap`` and the
``--cluster FILE`` option of the operator commands (``delos_ref/deploy.py``, ``cli/deploy.py``).

The first tests need no cluster: ``init``'s parsing and validation, a node refusing an address
that is not its machine's, and the usage errors of ``--cluster``. The last one is the
cross-host run: two network namespaces joined by a veth pair stand in for two machines, and
the cluster is started only with ``init``, ``node`` and ``bootstrap`` (root only).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from delos_ref import cluster, deploy
from tests.cluster_fixture import CLI

REPO = Path(__file__).resolve().parent.parent


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def one_line(result, code: int) -> str:
    """The single ``error: ...`` line of a command that exited with ``code``."""
    assert result.exit_code == code, f"exit {result.exit_code} (wanted {code}): {result.stdout!r} {result.stderr!r} {result.exception!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


# --------------------------------------------------------------------------------- init


def test_init_writes_a_cluster_file_of_names_ipv4_and_ipv6(tmp_path):
    out = tmp_path / "cluster.json"
    result = run("init", "--nodes", "n1=10.0.0.1:7101,n2=db2.example:7102,n3=[fd00::3]:7103", "--logservers", "ls1=[::1]:7201", "--out", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    cfg = cluster.load(out)  # cluster.load reads a cluster file as well as a directory
    assert [(n.id, n.host, n.port) for n in cfg.nodes] == [("n1", "10.0.0.1", 7101), ("n2", "db2.example", 7102), ("n3", "fd00::3", 7103), ("ls1", "::1", 7201)]
    assert [n.address for n in cfg.nodes][2:] == ["[fd00::3]:7103", "[::1]:7201"]
    assert cfg.with_role("acceptor") == ["n1", "n2", "n3"] and cfg.with_role("logserver") == ["ls1"]
    assert len(cfg.secret_bytes) == 32 and all(n.pid is None for n in cfg.nodes)
    assert json.loads(result.stdout)["nodes"][2] == {"id": "n3", "address": "[fd00::3]:7103", "roles": ["acceptor", "sequencer"]}


def test_init_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "c.json"
    assert run("init", "--nodes", "n1=h1:7101", "--out", str(out)).exit_code == 0
    first = cluster.load(out).secret
    assert "exists; add --force" in one_line(run("init", "--nodes", "n1=h1:7101", "--out", str(out)), 2)
    assert cluster.load(out).secret == first
    assert run("init", "--nodes", "n1=h1:7101", "--out", str(out), "--force").exit_code == 0
    assert cluster.load(out).secret != first and stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "nodes, words",
    [
        ("n1=h:7101,n1=g:7102", "given twice"),
        ("n1=10.0.0.1:7101,n2=10.0.0.1:7101", "same address"),
        ("n1=[::1]:7101,n2=[0:0::1]:7101", "same address"),
        ("n1=h:0", "between 1 and 65535"),
        ("n1=h:65536", "between 1 and 65535"),
        ("n1=h", "not a HOST:PORT"),
        ("n1=::1:7101", "in brackets"),
        ("n1=[nope]:7101", "not an IPv6 address"),
        ("n1=0.0.0.0:7101", "wildcard"),
        ("n1=[::]:7101", "wildcard"),
        ("1n=h:7101", "not a node id"),
        ("n1:h:7101", "not ID=HOST:PORT"),
    ],
)
def test_init_bad_input_is_one_line_exit_2(nodes, words, tmp_path):
    assert words in one_line(run("init", "--nodes", nodes, "--out", str(tmp_path / "c.json")), 2)
    assert not (tmp_path / "c.json").exists()


def test_init_bad_transport_and_logservers(tmp_path):
    out = str(tmp_path / "c.json")
    assert "--transport" in one_line(run("init", "--nodes", "n1=h:1", "--transport", "quic", "--out", out), 2)
    assert "same address" in one_line(run("init", "--nodes", "n1=h:1", "--logservers", "ls1=h:1", "--out", out), 2)


# ----------------------------------------------------------------- a node on the wrong host


def test_a_node_refuses_an_address_that_is_not_its_machines(tmp_path):
    out = tmp_path / "c.json"
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    assert run("init", "--nodes", "n1=192.0.2.1:12101,n2=127.0.0.1:12102", "--out", str(out)).exit_code == 0
    line = one_line(run("node", "--cluster", str(out), "--id", "n1", "--data", str(tmp_path / "n1")), 2)
    assert "192.0.2.1:12101" in line and "not an address of this machine" in line
    assert not (tmp_path / "n1").exists()  # refused before touching its data
    cfg = cluster.load(out)
    deploy.check_local(cfg.node("n2"), "tcp")  # loopback is this machine's: no error
    with pytest.raises(deploy.UsageError):
        deploy.check_local(cfg.node("n1"), "udp")
    assert "--data" in one_line(run("node", "--cluster", str(out), "--id", "n2"), 2)
    assert "unknown node" in one_line(run("node", "--cluster", str(out), "--id", "n9", "--data", str(tmp_path / "x")), 1)


# ----------------------------------------------------------------------- --cluster usage


def test_cluster_and_dir_together_are_refused(tmp_path):
    out = tmp_path / "c.json"
    assert run("init", "--nodes", "n1=127.0.0.1:12111", "--out", str(out)).exit_code == 0
    for command in (("status",), ("append", "x"), ("kv", "get", "k"), ("net", "show")):
        assert "not both" in one_line(run(*command, "--dir", str(tmp_path), "--cluster", str(out)), 2)
    assert "is a directory" in one_line(run("tail", "--cluster", str(tmp_path)), 2)
    assert "use --cluster" in one_line(run("tail", "--dir", str(out)), 1)
    assert "no such file" in one_line(run("tail", "--cluster", str(tmp_path / "missing.json")), 2)


@pytest.mark.parametrize("command", [("up",), ("down",), ("kill", "n1"), ("pause", "n1"), ("resume", "n1"), ("restart", "n1"), ("logs", "n1")], ids=lambda c: c[0])
def test_process_commands_need_a_local_dir(command, tmp_path):
    out = tmp_path / "c.json"
    assert run("init", "--nodes", "n1=127.0.0.1:12121", "--out", str(out)).exit_code == 0
    assert "needs a local --dir cluster" in one_line(run(*command, "--cluster", str(out)), 2)


def test_migrate_with_cluster_needs_a_shared_cold_dir(tmp_path):
    out = tmp_path / "c.json"
    assert run("init", "--nodes", "n1=127.0.0.1:12131", "--out", str(out)).exit_code == 0
    assert "--cold-dir" in one_line(run("migrate", "--below", "5", "--cluster", str(out)), 2)
    assert "needs --dir" in one_line(run("migrate", "--auto", "--cluster", str(out), "--cold-dir", str(tmp_path)), 2)


def test_bootstrap_and_status_of_a_cluster_whose_nodes_do_not_run(tmp_path):
    out = tmp_path / "c.json"
    assert run("init", "--nodes", "n1=127.0.0.1:12141,n2=127.0.0.1:12142,n3=127.0.0.1:12143", "--out", str(out)).exit_code == 0
    line = one_line(run("bootstrap", "--cluster", str(out), "--timeout", "1"), 1)
    assert "no majority of the acceptors answered within 1s" in line and "n1, n2, n3" in line
    assert "no node of the cluster" in one_line(run("status", "--cluster", str(out), "--timeout", "0.3"), 1)


def test_the_systemd_unit_file_is_the_one_the_deployment_doc_shows():
    doc = (REPO / "docs" / "deployment.md").read_text()
    unit = (REPO / "docs" / "examples" / "delos-ref@.service").read_text()
    assert f"```ini\n{unit}```" in doc
    assert "delos-ref node --cluster /etc/delos-ref/cluster.json --id %i --data /var/lib/delos-ref/%i" in unit


# ------------------------------------------------------------- two namespaces, two "hosts"


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    probe = f"dlhprobe{secrets.token_hex(3)}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "ip netns add fails here"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class TwoHosts:
    """Two network namespaces A (10.231.0.1) and B (10.231.0.2) joined by a veth pair."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.a, self.b = f"dlh{tag}a", f"dlh{tag}b"
        self.made: list[str] = []

    def __enter__(self) -> "TwoHosts":
        try:
            veth_a, veth_b = f"vh{self.a[3:]}", f"vh{self.b[3:]}"
            for ns in (self.a, self.b):
                _ip("netns", "add", ns)
                self.made.append(ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
            _ip("link", "set", veth_a, "netns", self.a)
            _ip("link", "set", veth_b, "netns", self.b)
            for ns, dev, addr in ((self.a, veth_a, "10.231.0.1/24"), (self.b, veth_b, "10.231.0.2/24")):
                _ip("-n", ns, "addr", "add", addr, "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in self.made:  # deleting a namespace deletes its end of the veth pair, and so the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

    @staticmethod
    def command(ns: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *CLI, *args]

    def cli(self, ns: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(self.command(ns, *args), capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


@pytest.mark.skipif(sys.platform != "linux", reason="network namespaces are Linux's")
def test_a_cluster_across_two_hosts(tmp_path):
    why = _netns_unavailable()
    if why is not None:
        pytest.skip(why)
    conf = tmp_path / "cluster.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with TwoHosts() as hosts:
        made = run("init", "--nodes", "n1=10.231.0.1:12201,n2=10.231.0.1:12202,n3=10.231.0.2:12203", "--out", str(conf))
        assert made.exit_code == 0, made.stderr
        where = {"n1": hosts.a, "n2": hosts.a, "n3": hosts.b}
        # n1 started on the wrong "machine" refuses, before it binds or writes anything
        wrong = hosts.cli(hosts.b, "node", "--cluster", str(conf), "--id", "n1", "--data", str(tmp_path / "wrong"))
        assert wrong.returncode == 2 and "not an address of this machine" in wrong.stderr, wrong.stderr
        assert not (tmp_path / "wrong").exists()
        procs = []
        try:
            for node_id, ns in where.items():
                log = open(tmp_path / f"{node_id}.out", "wb")
                procs.append(subprocess.Popen(hosts.command(ns, "node", "--cluster", str(conf), "--id", node_id, "--data", str(tmp_path / node_id)), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO))
                log.close()
            booted = hosts.cli(hosts.a, "bootstrap", "--cluster", str(conf), "--timeout", "60", timeout=90)
            assert booted.returncode == 0 and "bootstrapped: installed the first chain" in booted.stderr, booted.stderr + _logs(tmp_path)
            again = hosts.cli(hosts.b, "bootstrap", "--cluster", str(conf), "--json")
            assert again.returncode == 0 and json.loads(again.stdout)["installed"] is False, again.stderr

            appended = hosts.cli(hosts.b, "append", "--cluster", str(conf), "--json", "from-b-1", "from-b-2")
            assert appended.returncode == 0 and json.loads(appended.stdout) == {"positions": [0, 1]}, appended.stderr
            put = hosts.cli(hosts.a, "kv", "put", "greeting", "hello", "--cluster", str(conf))
            assert put.returncode == 0, put.stderr
            for ns in (hosts.a, hosts.b):  # each "host" reads the same log
                got = hosts.cli(ns, "read", "--cluster", str(conf), "--to", "2", "--json")
                assert got.returncode == 0, got.stderr
                assert [e["data"] for e in json.loads(got.stdout)["entries"]] == ["from-b-1", "from-b-2"]
            for node_id in where:  # every node's replica holds the put (read from that node)
                got = hosts.cli(hosts.b, "kv", "get", "greeting", "--node", node_id, "--cluster", str(conf))
                assert got.returncode == 0 and got.stdout.strip() == "hello", (node_id, got.stderr)

            report = hosts.cli(hosts.b, "status", "--cluster", str(conf), "--json")
            assert report.returncode == 0, report.stderr
            nodes = json.loads(report.stdout)["nodes"]
            assert [(n["id"], n["alive"], n["process"]) for n in nodes] == [(i, True, "remote") for i in where]
            for node_id in where:  # each node's data lives under its --data directory
                assert (tmp_path / node_id / "logserver").is_dir() and (tmp_path / node_id / "node.log").is_file()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def _logs(tmp_path: Path) -> str:
    return "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(tmp_path.glob("*.out")))
