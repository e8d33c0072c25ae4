"""``delos-ref up`` from start to stop (issue 17, items 6, 7, 10): a foreground ``up`` follows
the pids ``restart`` gives its nodes and stops them all on Ctrl-C or SIGHUP; a failed ``up``
leaves nothing behind; ``--base-port`` moves a stale cluster.

The foreground ``up`` runs as a real process in its own session (as a terminal would run it),
and gets its signals from the test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from delos_ref import cluster
from tests.cluster_fixture import CLI, cli, free_base_port

pytestmark = pytest.mark.cluster


def _foreground_up(d: Path, base: int) -> subprocess.Popen:
    """``up`` in the foreground in its own session, once its cluster accepts appends."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # see test_cli_ops: a child of `make test &`
    try:
        proc = subprocess.Popen([*CLI, "up", "--dir", str(d), "--base-port", str(base)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if cluster.config_path(d).exists() and cli("tail", "--dir", str(d), "--json").returncode == 0:
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"up exited early: {proc.communicate()}")
        time.sleep(0.3)
    proc.kill()
    raise AssertionError("the foreground cluster never accepted appends")


def _stop(proc: subprocess.Popen, sig: int, d: Path) -> tuple[str, str]:
    try:
        proc.send_signal(sig)
        return proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if cluster.config_path(d).exists():
            cli("down", "--dir", str(d))


def test_foreground_up_follows_a_restarted_node_and_ctrl_c_stops_it_too(tmp_path):
    d = tmp_path / "c"
    proc = _foreground_up(d, free_base_port(3, "tcp"))
    restarted = cli("restart", "n2", "--dir", str(d), "--json")
    assert restarted.returncode == 0, restarted.stderr
    new_pid = json.loads(restarted.stdout)["pid"]
    time.sleep(2.5)  # at least two refreshes of the dashboard after the restart
    pids = [n.pid for n in cluster.load(d).nodes]
    assert new_pid in pids
    stdout, stderr = _stop(proc, signal.SIGINT, d)
    assert proc.returncode == 0, stderr
    assert "stopped 3 node(s)" in stderr
    assert not cluster.pid_alive(new_pid), "Ctrl-C stops the restarted node too"
    assert not any(cluster.pid_alive(p) for p in pids)
    last_frame = stdout[stdout.rfind("nodes"):]
    row = next(line for line in last_frame.splitlines() if line.strip().startswith("n2 "))
    assert str(new_pid) in row and "running" in row and "dead" not in row, row


def test_sighup_stops_a_foreground_up_and_every_node(tmp_path):
    d = tmp_path / "c"
    proc = _foreground_up(d, free_base_port(3, "tcp"))
    pids = [n.pid for n in cluster.load(d).nodes]
    _, stderr = _stop(proc, signal.SIGHUP, d)
    assert proc.returncode == 0, (proc.returncode, stderr)
    assert "stopped 3 node(s)" in stderr
    assert not any(cluster.pid_alive(p) for p in pids), "closing the terminal stops the cluster"


def test_sigterm_stops_a_foreground_up_and_every_node(tmp_path):
    d = tmp_path / "c"
    proc = _foreground_up(d, free_base_port(3, "tcp"))
    pids = [n.pid for n in cluster.load(d).nodes]
    _, stderr = _stop(proc, signal.SIGTERM, d)
    assert proc.returncode == 0, (proc.returncode, stderr)
    assert not any(cluster.pid_alive(p) for p in pids)


def test_a_failed_up_leaves_no_directory_behind(tmp_path):
    base = free_base_port(3, "tcp")
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", base + 1))
        holder.listen()
        result = cli("up", "--detach", "--dir", str(tmp_path / "new"), "--base-port", str(base))
        assert result.returncode == 1 and "port in use" in result.stderr and f"127.0.0.1:{base + 1}" in result.stderr
        assert "choose another --base-port" in result.stderr
        assert not (tmp_path / "new").exists(), "a failed up removes the directory it made"
        (tmp_path / "empty").mkdir()
        assert cli("up", "--detach", "--dir", str(tmp_path / "empty"), "--base-port", str(base)).returncode == 1
        assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir()), "an existing empty directory is left empty"


def test_a_node_that_cannot_start_fails_up_with_its_cause_and_up_stops_the_others(tmp_path):
    """A node that dies during start-up (here: another process holds its data directory)
    fails ``up`` with the node's own words; ``up`` stops the nodes it started, and keeps a
    stale cluster's data."""
    import fcntl

    d = tmp_path / "c"
    cli("up", "--detach", "--dir", str(d), "--base-port", str(free_base_port(3, "tcp")), check=True, timeout=90)
    cli("down", "--dir", str(d), check=True)
    with open(d / "n2" / "NODE.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = cli("up", "--detach", "--dir", str(d), timeout=90)
    assert result.returncode == 1, result.stderr
    assert "node n2 exited during start-up" in result.stderr and "is in use by" in result.stderr, result.stderr
    assert not cluster.live_nodes(cluster.load(d)), "up stopped the nodes it had started"
    assert (d / "n1" / "paxos").is_dir(), "a stale cluster's data is kept"


def test_up_on_a_stale_directory_honours_base_port(tmp_path):
    d = tmp_path / "c"
    first = free_base_port(3, "tcp")
    cli("up", "--detach", "--dir", str(d), "--base-port", str(first), check=True, timeout=90)
    try:
        cli("append", "kept", "--dir", str(d), check=True)
    finally:
        cli("down", "--dir", str(d), check=True)
    with socket.socket() as holder:  # the old ports are taken now
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", first))
        holder.listen()
        refused = cli("up", "--detach", "--dir", str(d))
        assert refused.returncode == 1 and "pass --base-port to move this cluster" in refused.stderr
        assert cluster.config_path(d).exists(), "a stale cluster's data is never removed"
        # Another free range below the ephemeral ports, away from the first (which may lie
        # anywhere in 20000..32700: free_base_port starts from the pid).
        candidates = [*range(first + 100, 32700, 7), *range(20000, first - 100, 7)]
        second = next(b for b in candidates if all(cluster.port_free("127.0.0.1", b + i, "tcp") for i in range(3)))
        moved = cli("up", "--detach", "--dir", str(d), "--base-port", str(second), timeout=90)
    try:
        assert moved.returncode == 0, moved.stderr
        assert [n.port for n in cluster.load(d).nodes] == [second, second + 1, second + 2]
        read = cli("read", "--dir", str(d), "--json")
        assert json.loads(read.stdout)["entries"] == [{"position": 0, "data": "kept"}]
    finally:
        cli("down", "--dir", str(d))
    assert not any(cluster.pid_alive(n.pid) for n in cluster.load(d).nodes)


def test_sighup_while_up_is_still_starting_stops_the_nodes_and_removes_the_new_cluster(tmp_path):
    """The terminal closes before the cluster is ready (here n3 is paused, so ``up`` waits
    for it): ``up`` stops every node it started, n3 included, and removes the new directory."""
    d = tmp_path / "c"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([*CLI, "up", "--dir", str(d), "--base-port", str(free_base_port(3, "tcp")), "--ready-timeout", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 30
        pids: list[int] = []
        while time.monotonic() < deadline and not pids:
            try:
                pids = [n.pid for n in cluster.load(d).nodes if n.pid]
            except cluster.ClusterError:
                pass  # not written yet (or half-written: it is replaced atomically)
            if len(pids) < 3:
                pids = []
                time.sleep(0.01)
        assert len(pids) == 3, "up never recorded its nodes' pids"
        os.kill(pids[2], signal.SIGSTOP)  # n3 cannot answer: up keeps waiting for it
        time.sleep(1.0)
        assert proc.poll() is None, "up is still starting"
        proc.send_signal(signal.SIGHUP)
        _, stderr = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        assert proc.returncode == 1 and "interrupted while starting" in stderr, (proc.returncode, stderr)
        deadline = time.monotonic() + 10
        while any(cluster.pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(cluster.pid_alive(p) for p in pids), "every node started is stopped, the paused one too"
        assert not d.exists(), "the new cluster's directory is removed"
    finally:
        for pid in pids:  # whatever happened, leave no process behind
            if cluster.pid_is_node(pid, f"n{pids.index(pid) + 1}"):
                os.kill(pid, signal.SIGKILL)


def test_up_on_a_stale_directory_refuses_options_that_would_shape_another_cluster(tmp_path):
    d = tmp_path / "c"
    base = free_base_port(3, "tcp")
    cli("up", "--detach", "--dir", str(d), "--base-port", str(base), check=True, timeout=90)
    cli("down", "--dir", str(d), check=True)
    result = cli("up", "--detach", "--dir", str(d), "--nodes", "5", "--transport", "udp")
    if result.returncode == 0:
        cli("down", "--dir", str(d))  # (it started the old cluster: leave nothing behind)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"error: the stopped cluster in {d} has --nodes 3, --transport tcp; --nodes, --transport shape only a new "
                                     "cluster: drop them, or add --fresh to wipe this one")
    assert len(cluster.load(d).nodes) == 3 and not cluster.live_nodes(cluster.load(d))
    same = cli("up", "--detach", "--dir", str(d), "--nodes", "3", "--transport", "tcp", timeout=90)  # what it has: fine
    try:
        assert same.returncode == 0 and "recovered stale cluster" in same.stderr, same.stderr
    finally:
        cli("down", "--dir", str(d))


def test_closing_the_terminal_of_a_foreground_up_stops_every_node(tmp_path):
    """``up`` on a real (pseudo-)terminal; closing the terminal sends the kernel's SIGHUP, and
    the dashboard's writes to the vanished terminal fail: every node is stopped all the same."""
    import pty
    import select

    d = tmp_path / "c"
    pid, fd = pty.fork()
    if pid == 0:  # the child: `up` with the pty as its controlling terminal
        try:
            os.execv(CLI[0], [*CLI, "up", "--dir", str(d), "--base-port", str(free_base_port(3, "tcp"))])
        finally:
            os._exit(127)
    screen, pids = b"", []
    try:
        deadline = time.monotonic() + 60
        while not (b"delos-ref: cluster up" in screen and b"running" in screen) and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                screen += os.read(fd, 65536)
        assert b"delos-ref: cluster up" in screen, f"the dashboard never showed the cluster: {screen[-2000:]!r}"
        pids = [n.pid for n in cluster.load(d).nodes]
        os.close(fd)  # the terminal goes away
        fd = -1
        deadline = time.monotonic() + 40
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, "up did not end after its terminal closed"
            time.sleep(0.1)
        pid = 0
        assert not any(cluster.pid_alive(p) for p in pids), "closing the terminal stops the cluster"
    finally:
        if fd >= 0:
            os.close(fd)
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        if cluster.config_path(d).exists():
            cli("down", "--dir", str(d))
