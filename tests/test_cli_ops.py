"""The operator commands on real clusters (issue 6): the JSON shapes scripts rely on, seal and
roll-forward, reconfigure, process control, the disaggregated layout, and the one-line errors.

The clusters are real node processes (``up --detach``); the commands run in this process
through typer's CliRunner (same code, same exit codes and stdout/stderr, without paying a
Python start-up per command). tests/test_new_user_session.py runs the real executable.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest
from typer.testing import CliRunner

from cli.main import app
from delos_ref import cluster
from tests.cluster_fixture import CLI, cli, free_base_port, running_cluster

pytestmark = pytest.mark.cluster


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def j(*args: str, input: bytes | None = None) -> dict:
    """Run a command with --json; its parsed output (the command must succeed)."""
    result = run(*args, "--json", input=input)
    assert result.exit_code == 0, f"{args} -> {result.exit_code}: {result.stderr} {result.exception!r}"
    return json.loads(result.stdout)


def error(*args: str, code: int = 1, input: bytes | None = None) -> str:
    """Run a command that must fail with ``code`` and one line on stderr; that line."""
    result = run(*args, input=input)
    assert result.exit_code == code, f"{args} -> {result.exit_code} (wanted {code}): {result.stdout} {result.stderr} {result.exception!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_append_read_tail_status_json_shapes(tmp_path):
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c"):
        assert j("append", "alpha", "beta", "--dir", d) == {"positions": [0, 1]}
        # stdin: one entry per line, raw bytes (the third line is not UTF-8)
        assert j("append", "--dir", d, input=b"gamma\ndelta\n\xff\xfe\n") == {"positions": [2, 3, 4]}
        assert j("tail", "--dir", d) == {"position": 5, "sealed": False}
        assert j("read", "--dir", d) == {
            "entries": [
                {"position": 0, "data": "alpha"},
                {"position": 1, "data": "beta"},
                {"position": 2, "data": "gamma"},
                {"position": 3, "data": "delta"},
                {"position": 4, "data_b64": "//4="},
            ]
        }
        assert [e["position"] for e in j("read", "--dir", d, "--from", "1", "--to", "3")["entries"]] == [1, 2]
        report = j("status", "--dir", d)
        assert {"cluster_id", "transport", "nodes", "chain", "tail", "metastore"} <= report.keys()
        assert all({"id", "address", "pid", "alive", "roles"} <= n.keys() for n in report["nodes"])
        assert report["metastore"]["version"] == report["chain"]["version"] == 1
        (seg,) = report["chain"]["segments"]
        assert seg == {"start": 0, "stop": None, "kind": "native", "sealed": False, "params": {"loglet_id": "L0", "sequencer": "n1", "logservers": ["n1", "n2", "n3"]}}
        assert report["tail"] == {"position": 5, "sealed": False}


def test_seal_then_append_rolls_the_chain_forward(tmp_path):
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c"):
        j("append", "a", "b", "c", "--dir", d)
        sealed = j("seal", "--dir", d)
        assert sealed["tail"] == {"position": 3, "sealed": True} and sealed["loglet"]["loglet_id"] == "L0"
        report = j("status", "--dir", d)
        assert len(report["chain"]["segments"]) == 1, "seal installs nothing"
        assert report["chain"]["segments"][0]["sealed"] is True and report["tail"]["sealed"] is True
        # The next append meets the seal, waits for a successor, then rolls forward itself.
        assert j("append", "d", "--dir", d) == {"positions": [3]}
        first, second = j("status", "--dir", d)["chain"]["segments"]
        assert (first["start"], first["stop"], first["sealed"]) == (0, 3, True)
        assert (second["start"], second["stop"], second["sealed"]) == (3, None, False)
        assert second["params"]["loglet_id"] != "L0" and second["params"]["sequencer"] == "n1"
        assert [e["data"] for e in j("read", "--dir", d)["entries"]] == ["a", "b", "c", "d"]


def test_reconfigure_kill_pause_resume_restart_logs(tmp_path):
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c") as cfg:
        j("append", "one", "--dir", d)
        result = j("reconfigure", "--loglet", "native", "--sequencer", "n2", "--dir", d)
        assert result["installed"] is True and result["loglet"]["sequencer"] == "n2"
        assert [s["params"]["sequencer"] for s in result["chain"]["segments"]] == ["n1", "n2"]
        assert result["chain"]["segments"][1]["start"] == 1

        assert j("kill", "n2", "--dir", d)["process"] == "dead"
        assert not cluster.pid_alive(cfg.node("n2").pid)
        # The nodes' failure detector moves the chain off the dead sequencer; the append waits.
        assert j("append", "two", "--dir", d, "--timeout", "20")["positions"] == [1]
        result = run("status", "--dir", d, "--json", "--timeout", "0.5")
        assert result.exit_code == 3, "n2 does not answer"
        active = json.loads(result.stdout)["chain"]["segments"][-1]
        assert active["start"] == 1 and active["params"]["sequencer"] != "n2"

        assert j("pause", "n1", "--dir", d)["process"] == "paused"
        result = run("status", "--dir", d, "--json", "--timeout", "0.5")
        assert result.exit_code == 3, "some nodes do not answer"
        nodes = {n["id"]: n for n in json.loads(result.stdout)["nodes"]}
        assert (nodes["n1"]["alive"], nodes["n1"]["process"]) == (False, "paused")
        assert (nodes["n2"]["alive"], nodes["n2"]["process"]) == (False, "dead")
        assert j("resume", "n1", "--dir", d)["process"] == "running"

        restarted = j("restart", "n2", "--dir", d)
        assert restarted["process"] == "running" and restarted["pid"] != cfg.node("n2").pid
        assert cluster.load(d).node("n2").pid == restarted["pid"], "cluster.json follows the restart"
        assert all(n["alive"] for n in j("status", "--dir", d)["nodes"])
        assert [e["data"] for e in j("read", "--dir", d)["entries"]] == ["one", "two"]

        logs = j("logs", "n2", "--dir", d, "--lines", "5")
        assert logs["node"] == "n2" and logs["path"].endswith("n2/node.log") and len(logs["lines"]) <= 5


def test_trim_drops_old_segments_and_reads_below_fail(tmp_path):
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c"):
        j("append", *[f"e{i}" for i in range(6)], "--dir", d)
        assert j("reconfigure", "--logservers", "n1,n3", "--dir", d)["loglet"]["logservers"] == ["n1", "n3"]
        j("append", "e6", "e7", "--dir", d)
        result = j("trim", "7", "--dir", d)
        assert result == {"trim_point": 7, "segments_dropped": 1, "base": 6}
        assert [s["start"] for s in j("status", "--dir", d)["chain"]["segments"]] == [6]
        assert "trimmed" in error("read", "--from", "0", "--dir", d)
        assert [e["data"] for e in j("read", "--from", "7", "--dir", d)["entries"]] == ["e7"]
        assert "bad position" in error("trim", "99", "--dir", d)
        assert "bad position" in error("trim", "--dir", d, "--", "-1", code=2)


def test_disaggregated_layout(tmp_path):
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c", extra=("--logservers", "3")) as cfg:
        assert [n.id for n in cfg.nodes] == ["n1", "n2", "n3", "ls1", "ls2", "ls3"]
        report = j("status", "--dir", d)
        roles = {n["id"]: set(n["roles"]) - {"ping", "supervisor", "net"} for n in report["nodes"]}  # ping, supervisor, net: on every node
        core = {"acceptor", "sequencer", "replica"}  # a database replica on every core node
        assert roles == {"n1": core, "n2": core, "n3": core, "ls1": {"logserver"}, "ls2": {"logserver"}, "ls3": {"logserver"}}
        assert report["chain"]["segments"][0]["params"]["logservers"] == ["ls1", "ls2", "ls3"]
        assert j("append", "x", "y", "--dir", d) == {"positions": [0, 1]}
        assert "does not host the logserver role" in error("reconfigure", "--logservers", "n1,ls1,ls2", "--dir", d)
        assert "does not host the sequencer role" in error("reconfigure", "--sequencer", "ls1", "--dir", d)
        # LogServers are a separate failure domain: one down is fine, two of three are not.
        j("kill", "ls1", "--dir", d)
        assert j("append", "z", "--dir", d) == {"positions": [2]}
        j("kill", "ls3", "--dir", d)
        line = error("append", "w", "--dir", d, "--timeout", "2")
        assert "LogServers down: ls1, ls3" in line


def test_up_on_the_bootstrap_loglet_then_hot_swap_to_native(tmp_path):
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c", extra=("--loglet", "bootstrap")):
        (seg,) = j("status", "--dir", d)["chain"]["segments"]
        assert (seg["kind"], seg["params"]) == ("bootstrap", {"loglet_id": "B0", "acceptors": ["n1", "n2", "n3"]})
        assert j("append", "b0", "b1", "--dir", d) == {"positions": [0, 1]}
        assert "no sequencer or LogServers" in error("reconfigure", "--loglet", "bootstrap", "--sequencer", "n1", "--dir", d)
        swap = j("reconfigure", "--loglet", "native", "--sequencer", "n2", "--dir", d)
        assert [(s["kind"], s["start"], s["stop"]) for s in swap["chain"]["segments"]] == [("bootstrap", 0, 2), ("native", 2, None)]
        assert j("append", "n0", "--dir", d) == {"positions": [2]}
        assert [e["data"] for e in j("read", "--dir", d)["entries"]] == ["b0", "b1", "n0"]


def test_operator_errors_are_one_line(tmp_path):
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c"):
        j("append", "a", "--dir", d)
        assert "unknown node 'n9'" in error("kill", "n9", "--dir", d)
        assert "unknown node 'n9'" in error("reconfigure", "--sequencer", "n9", "--dir", d)
        assert "past the tail 1" in error("read", "--from", "5", "--dir", d)
        assert "past the tail 1" in error("read", "--to", "5", "--dir", d)
        assert "bad position" in error("read", "--from", "3", "--to", "1", "--dir", d, code=2)
        assert "unknown loglet kind" in error("reconfigure", "--loglet", "cold", "--dir", d)
        assert "nothing to append" in error("append", "--dir", d, input=b"", code=2)
        # Two of three acceptors down: the MetaStore has no quorum, and the error names them.
        j("kill", "n2", "--dir", d)
        j("kill", "n3", "--dir", d)
        line = error("tail", "--dir", d, "--timeout", "1")
        assert "cannot reach a quorum" in line and "n2, n3" in line
    assert "no cluster running" in error("append", "x", "--dir", d)
    assert "no cluster running" in error("kill", "n1", "--dir", d)
    assert "no cluster in" in error("read", "--dir", str(tmp_path / "none"))
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "cluster.json").write_text('{"format": 1, "nodes": 3}')
    assert "not a delos-ref cluster file" in error("tail", "--dir", str(tmp_path / "foreign"))


def _line_reader(proc: subprocess.Popen) -> "queue.Queue[str]":
    """A thread that moves ``proc``'s stdout lines into a queue (readline blocks)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    return lines


def _take(lines: "queue.Queue[str]", n: int, timeout_s: float) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    got = []
    while len(got) < n:
        try:
            got.append(json.loads(lines.get(timeout=max(0.01, deadline - time.monotonic()))))
        except queue.Empty:
            break
    return got


def test_read_follow_streams_new_entries_and_big_entries_are_refused(tmp_path):
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c"):
        j("append", "old", "--dir", d)
        # (faulthandler: if Ctrl-C does not end it, SIGABRT makes it print every thread's stack)
        err = open(tmp_path / "follower.err", "w+")  # a file, not a pipe: stderr can never block it
        # A test run started in the background by a shell (`make test &`) inherits SIGINT
        # *ignored*, and so would the follower: Ctrl-C would never reach it. A Python handler
        # here becomes the default disposition in the child after exec.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            follower = subprocess.Popen([*CLI, "read", "--follow", "--json", "--dir", d], stdout=subprocess.PIPE, stderr=err,
                                        text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
        finally:
            signal.signal(signal.SIGINT, previous)
        lines = _line_reader(follower)
        try:
            assert _take(lines, 1, 30) == [{"position": 0, "data": "old"}]
            j("append", "new1", "new2", "--dir", d)
            assert _take(lines, 2, 30) == [{"position": 1, "data": "new1"}, {"position": 2, "data": "new2"}]
        finally:
            follower.send_signal(signal.SIGINT)
            try:
                code = follower.wait(timeout=10)
            except subprocess.TimeoutExpired:
                follower.send_signal(signal.SIGABRT)
                follower.wait(timeout=10)
                pytest.fail("read --follow did not end within 10 s of Ctrl-C; its stacks:\n" + (tmp_path / "follower.err").read_text()[-6000:])
        err.close()
        assert code == 0, "Ctrl-C ends --follow quietly"
        big = b"x" * ((1 << 20) + 1) + b"\n"
        line = error("append", "--dir", d, input=b"fine\n" + big)
        assert "entry 1 refused" in line and "exceeds" in line and "1 of 2 appended" in line
        assert j("tail", "--dir", d)["position"] == 4


def test_up_in_the_foreground_shows_the_dashboard_and_ctrl_c_stops_everything(tmp_path):
    d = str(tmp_path / "c")
    base = free_base_port(3, "tcp")
    proc = subprocess.Popen([*CLI, "up", "--dir", d, "--base-port", str(base)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if cluster.config_path(d).exists() and run("tail", "--dir", d, "--json").exit_code == 0:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the foreground cluster never accepted appends")
        assert j("append", "seen", "--dir", d) == {"positions": [0]}
        time.sleep(1.5)  # at least one refresh of the live view
        pids = [n.pid for n in cluster.load(d).nodes]
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            cli("down", "--dir", d)
    assert proc.returncode == 0, stderr
    assert "chain (version 1)" in stdout and "[0, tail)" in stdout and "tail 1" in stdout
    assert "acceptor" in stdout and "logserver" in stdout and "no (active)" in stdout
    assert "stopped 3 node(s)" in stderr
    assert not any(cluster.pid_alive(p) for p in pids), "Ctrl-C leaves no process behind"
