"""A node's log and its exit record (issue 17, items 8 and 9): ``DIR/<node>/node.log`` says
what happened, rate-limits garbage, and a node that dies of a full disk says so in its log,
its exit record and ``status``.

Unit tests first (the rate limiter with a fake clock, the exit record, LMDB's full map, the
node's last words when its storage is full), then real clusters: the events of a kill, a
reconfiguration, a restart and garbage frames; ``--log-level``; a 2 MB tmpfs that fills up.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import trio

from delos_ref import cluster, logs
from delos_ref.effects import Write
from delos_ref.storage import LmdbStorage, StorageFull
from tests.cluster_fixture import cli, free_base_port, running_cluster


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _limiter(window_s: float = 10.0, max_peers: int = 256) -> tuple[logs.RejectedFrames, list[str], _Clock]:
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger(f"test-rejected-{id(lines)}")
    logger.propagate = False
    logger.addHandler(Capture())
    logger.setLevel(logging.DEBUG)
    clock = _Clock()
    return logs.RejectedFrames(logger, clock, window_s=window_s, max_peers=max_peers), lines, clock


# ------------------------------------------------------------------------ rejected frames


def test_rejected_frames_give_one_line_per_peer_per_window_with_a_count():
    rejected, lines, clock = _limiter()
    for i in range(1000):  # a flood from one host, each frame on a new connection (port)
        clock.now = i * 0.001
        rejected(f"10.0.0.9:{40000 + i}", "bad MAC" if i % 2 else "malformed", "detail")
    assert lines == ["rejected a frame from 10.0.0.9:40000: malformed (detail)"]
    clock.now = 10.5
    rejected("10.0.0.9:50000", "oversize", "frame of 99 MB")
    assert len(lines) == 2 and lines[1].startswith("rejected 1000 more frame(s) from 10.0.0.9:50000")
    assert "bad MAC 500" in lines[1] and "malformed 499" in lines[1] and "oversize 1" in lines[1]


def test_rejected_frames_counted_at_the_end_of_a_flood_are_reported_by_flush():
    rejected, lines, clock = _limiter()
    rejected("n7", "misaddressed", "for 'n2'")
    rejected("n7", "misaddressed", "for 'n2'")
    rejected.flush()
    assert len(lines) == 1, "within the window: nothing more yet"
    clock.now = 11.0
    rejected.flush()
    assert len(lines) == 2 and "rejected 1 more frame(s) from n7" in lines[1]
    clock.now = 22.0
    rejected.flush()  # a quiet window: the peer is forgotten, its next frame is logged at once
    rejected("n7", "malformed", "x")
    assert len(lines) == 3 and lines[2].startswith("rejected a frame from n7")


def test_rejected_frames_track_a_bounded_number_of_peers():
    rejected, lines, _ = _limiter(max_peers=4)
    for i in range(100):
        rejected(f"10.0.{i}.1:5000", "malformed", "x")
    assert len(lines) == 100 and len(rejected._peers) == 4


# ---------------------------------------------------------------------- the exit record


def test_exit_record_is_rewritten_in_place_at_a_fixed_size(tmp_path):
    assert logs.read_exit_record(tmp_path) is None
    assert logs.write_exit_record(tmp_path, 42, "running")
    assert (tmp_path / logs.EXIT_FILE).stat().st_size == logs.EXIT_RECORD_BYTES
    assert logs.write_exit_record(tmp_path, 42, "exited: disk full", "disk full: x" * 200)
    record = logs.read_exit_record(tmp_path)
    assert (record["pid"], record["state"]) == (42, "exited: disk full") and record["cause"].startswith("disk full")
    assert (tmp_path / logs.EXIT_FILE).stat().st_size == logs.EXIT_RECORD_BYTES


def test_status_shows_why_a_dead_node_exited(tmp_path):
    spec = cluster.NodeSpec("n1", "127.0.0.1", 1, pid=2**22 + 12345)  # above any pid_max: not running
    (tmp_path / "n1").mkdir()
    assert cluster.process_state(spec, tmp_path) == "dead"
    logs.write_exit_record(tmp_path / "n1", spec.pid, "exited: disk full", "disk full: ...")
    assert cluster.process_state(spec, tmp_path) == "exited: disk full"
    logs.write_exit_record(tmp_path / "n1", spec.pid - 1, "exited: disk full", "an older run")
    assert cluster.process_state(spec, tmp_path) == "dead", "a record of another pid says nothing about this one"


def test_a_full_lmdb_map_is_a_named_storage_full_error(tmp_path):
    store = LmdbStorage(tmp_path / "s", ("t",), map_size=64 * 1024)
    try:
        with pytest.raises(StorageFull, match="disk full"):
            for i in range(1000):
                store.write([Write("t", b"%08d" % i, os.urandom(2000))])
    finally:
        store.close()


async def test_a_node_whose_storage_fills_up_logs_the_cause_and_exits(tmp_path, monkeypatch):
    """The whole path on one in-process node: a Persist that the disk refuses ends the node
    with the cause in its log and exit record, and the ballast freed for those last words."""
    from delos_ref import process

    d = tmp_path / "c"
    d.mkdir()
    cfg = cluster.new_config(1, "udp", free_base_port(1, "udp"))
    cluster.save(d, cfg)
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.levelname} {record.getMessage()}")

    handler = Capture()
    logging.getLogger("delos_ref").addHandler(handler)
    logging.getLogger("delos_ref").setLevel(logging.INFO)

    def full(self, writes, sync=True):
        raise StorageFull(f"disk full: {self.path}: mdb_txn_commit: No space left on device")

    try:
        with trio.fail_after(20):
            node = await _start_in_background(process.run_node, str(d), "n1")
            assert (d / "n1" / logs.BALLAST_FILE).exists(), "space is held in reserve while the node runs"
            monkeypatch.setattr(LmdbStorage, "write", full)
            await _make_acceptor_persist(cfg, node)
            with pytest.raises(process.NodeExited, match="disk full"):
                await node.exited
    finally:
        logging.getLogger("delos_ref").removeHandler(handler)
    record = logs.read_exit_record(d / "n1")
    assert record["state"] == "exited: disk full" and record["pid"] == os.getpid()
    assert any(line.startswith("CRITICAL fatal: disk full") for line in lines), lines
    assert not (d / "n1" / logs.BALLAST_FILE).exists(), "the reserve was freed for the last words"


class _Background:
    def __init__(self) -> None:
        self._done = trio.Event()
        self._error: BaseException | None = None

    @property
    async def exited(self) -> None:
        await self._done.wait()
        if self._error is not None:
            raise self._error


async def _start_in_background(fn, *args) -> _Background:
    """Run ``fn(*args)`` in a system task (it may raise: we look at how it ends)."""
    bg = _Background()
    started = trio.Event()

    async def body() -> None:
        try:
            await fn(*args, task_status=_Started(started))
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            bg._error = e
            started.set()
        finally:
            bg._done.set()

    trio.lowlevel.spawn_system_task(body)
    await started.wait()
    return bg


class _Started:
    def __init__(self, event: trio.Event) -> None:
        self.event = event

    def started(self, value=None) -> None:
        self.event.set()


async def _make_acceptor_persist(cfg: cluster.ClusterConfig, node) -> None:
    """A MetaStore write through the node's acceptor: its promise is a Persist."""
    from delos_ref.process import metastore_client, open_client

    async with open_client(cfg) as client:
        with trio.move_on_after(3):
            try:
                await metastore_client(cfg, client, "test", deadline_s=2.0).write_if(0, b"x")
            except Exception:  # noqa: BLE001 - the acceptor died before answering: expected
                pass


# ------------------------------------------------------------------------- real clusters


def _log(directory: Path, node_id: str) -> str:
    return (directory / node_id / logs.LOG_FILE).read_text(errors="replace")


def _wait_for(what: str, predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.cluster
def test_node_logs_tell_start_recovery_reconfiguration_restart_and_garbage(tmp_path):
    d = tmp_path / "c"
    with running_cluster(d) as cfg:
        cli("append", "a", "b", "--dir", str(d), check=True)
        for n in cfg.nodes:
            text = _log(d, n.id)
            assert f" {n.id} INFO " in text and "first start in" in text
            assert "started: pid" in text and "recovered acceptor" in text and "serving: roles acceptor" in text
        cli("kill", "n1", "--dir", str(d), check=True)
        cli("append", "c", "--dir", str(d), "--timeout", "20", check=True)
        _wait_for("a reconfiguration won", lambda: any("reconfiguration won" in _log(d, n) for n in ("n2", "n3")))
        assert any("reconfiguration started: sequencer n1" in _log(d, n) for n in ("n2", "n3"))
        assert any("logserver: Seal loglet=L0" in _log(d, n) for n in ("n2", "n3"))
        cli("restart", "n1", "--dir", str(d), check=True)
        text = _log(d, "n1")
        assert "previous run" in text and "without a clean stop" in text
        assert "recovered logserver" in text and "logserver.entries" in text, "the restarted node says what it found on disk"
        # Garbage on a new connection each time: one line for the host, then a count.
        n2 = cfg.node("n2")
        for _ in range(20):
            with socket.create_connection((n2.host, n2.port)) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n" * 20)
                time.sleep(0.01)
        _wait_for("the rejection line", lambda: "rejected a frame from 127.0.0.1" in _log(d, "n2"))
        time.sleep(0.5)
        assert _log(d, "n2").count("rejected a frame from") == 1, "rate-limited: one line per peer per 10 s"
        result = cli("logs", "n2", "--dir", str(d), "--lines", "200")
        assert result.returncode == 0 and "rejected a frame from 127.0.0.1" in result.stdout
    text = _log(d, "n2")
    assert "SIGTERM received: stopping" in text and "stopped (SIGTERM)" in text


@pytest.mark.cluster
def test_log_level_warning_keeps_only_warnings_and_restart_keeps_the_level(tmp_path):
    d = tmp_path / "c"
    with running_cluster(d, extra=("--log-level", "warning")) as cfg:
        assert cfg.log_level == "warning"
        cli("kill", "n2", "--dir", str(d), check=True)
        cli("restart", "n2", "--dir", str(d), check=True)
        text = _log(d, "n2")
        assert " INFO " not in text, text
        assert "WARNING" in text and "without a clean stop" in text
    assert "must be one of" in cli("up", "--dir", str(tmp_path / "x"), "--log-level", "chatty").stderr
    assert not (tmp_path / "x").exists()


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


@pytest.mark.cluster
def test_a_full_disk_stops_nodes_with_the_cause_in_their_log_and_status(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "2m")
    d = disk / "c"
    try:
        with running_cluster(d):
            big = "".join("x" * 50_000 + "\n" for _ in range(40))
            result = cli("append", "--dir", str(d), "--timeout", "5", input=big)
            assert result.returncode == 1, "2 MB cannot hold 2 MB of entries three times"
            _wait_for("a node to exit", lambda: any(cluster.process_state(n, d).startswith("exited") for n in cluster.load(d).nodes))
            status = cli("status", "--dir", str(d), "--json", "--timeout", "0.5")
            import json

            states = {n["id"]: n["process"] for n in json.loads(status.stdout)["nodes"]}
            full = [k for k, v in states.items() if v == "exited: disk full"]
            assert full, states
            for node_id in full:
                text = _log(d, node_id)
                assert "CRITICAL delos_ref.process: fatal: disk full:" in text, text[-2000:]
                assert logs.read_exit_record(d / node_id)["cause"].startswith("disk full")
            assert "exited: disk full" in cli("status", "--dir", str(d), "--timeout", "0.5").stdout
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# --------------------------------------------------------------- the transports' reports


async def _rejections(open_transport, send_bad) -> list[tuple[str, str, str]]:
    """What ``on_rejected`` hears while a transport of node ``n1`` is sent ``send_bad(addr)``."""
    from transports.base import PeerAddress
    from transports.codec import FrameCodec

    seen: list[tuple[str, str, str]] = []
    async with open_transport("n1", bind=PeerAddress("127.0.0.1", 0), peers={}, codec=FrameCodec(secret=b"k" * 32)) as t:
        t.on_rejected = lambda *report: seen.append(report)
        await trio.to_thread.run_sync(send_bad, t.address)
        with trio.move_on_after(2):
            while len(seen) < 2:
                with trio.move_on_after(0.05):
                    await t.receive()
    return seen


def _frames_with_another_secret() -> tuple[bytes, bytes]:
    from delos_ref.ping import Ping
    from transports.codec import KIND_ONEWAY, Envelope, FrameCodec

    forged = FrameCodec(secret=b"x" * 32).encode(Envelope("n9", "n1", KIND_ONEWAY, 0, Ping()))
    return b"\x00garbage" * 8, forged


async def test_udp_reports_each_rejected_datagram_with_its_sender_and_kind():
    from transports.udp import open_udp_transport

    garbage, forged = _frames_with_another_secret()

    def send(addr) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(garbage, (addr.host, addr.port))
            s.sendto(forged, (addr.host, addr.port))

    seen = await _rejections(open_udp_transport, send)
    assert [kind for _, kind, _ in seen] == ["malformed", "bad MAC"], seen
    assert all(peer.startswith("127.0.0.1:") for peer, _, _ in seen)


async def test_tcp_reports_a_connection_that_opens_with_garbage_or_a_forged_frame():
    from transports.tcp import open_tcp_transport

    garbage, forged = _frames_with_another_secret()

    def send(addr) -> None:
        for data in (garbage, forged):
            with socket.create_connection((addr.host, addr.port)) as s:
                s.sendall(data)
                time.sleep(0.1)

    seen = await _rejections(open_tcp_transport, send)
    assert sorted(kind for _, kind, _ in seen) == ["bad MAC", "malformed"], seen
    assert all(peer.startswith("127.0.0.1:") for peer, _, _ in seen)


def test_a_full_disk_met_outside_lmdb_is_a_full_disk_too():
    """A trace file (``up --trace``) that cannot grow ends the node as a full disk, not as
    an unexplained error."""
    from delos_ref.process import _fatal_cause

    error = OSError(28, "No space left on device", "/d/n1/trace.ndjson")
    state, cause = _fatal_cause(BaseExceptionGroup("node", [error]))
    assert state == "exited: disk full" and cause == "disk full: /d/n1/trace.ndjson: No space left on device"
    assert _fatal_cause(KeyboardInterrupt())[0] is None, "Ctrl-C is not a fatal error"
