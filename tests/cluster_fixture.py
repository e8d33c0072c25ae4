"""Real local clusters for tests: ``delos-ref up --detach`` in a temporary directory.

Each cluster gets ports from a free range (probed, so parallel runs and leftovers do not
collide) and is always stopped, with every process gone, when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from delos_ref import cluster

CLI = [sys.executable, "-m", "cli.main"]


def free_base_port(n: int, transport: str) -> int:
    """A base port with ``n`` consecutive free ports (tcp and udp), below Linux's ephemeral
    range (32768+), so that no outgoing connection can take a node's port after the probe."""
    for base in range(20000 + (os.getpid() * 37) % 12000, 32700, 17):
        if all(cluster.port_free("127.0.0.1", base + i, t) for i in range(n) for t in ("tcp", "udp")):
            return base
    raise RuntimeError("no free port range")


def cli(*args: str, timeout: float = 60, check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"delos-ref {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@contextlib.contextmanager
def running_cluster(directory: Path, *, nodes: int = 3, transport: str = "tcp", extra: tuple[str, ...] = ()) -> Iterator[cluster.ClusterConfig]:
    base = free_base_port(nodes, transport)
    cli("up", "--detach", "--dir", str(directory), "--nodes", str(nodes), "--transport", transport, "--base-port", str(base), *extra, check=True, timeout=90)
    cfg = cluster.load(directory)
    try:
        yield cfg
    finally:
        down_here(directory)
        left = cluster.live_nodes(cluster.load(directory))
        assert not left, f"processes left behind: {[(n.id, n.pid) for n in left]}"


def down_here(directory: Path) -> None:
    """``delos-ref down --dir DIRECTORY`` run in this process by typer's CliRunner: the same
    command, without the Python start-up of a new process (about a second per cluster on a
    loaded 2-core machine). ``down`` starts no event loop, so async tests may call it too."""
    from typer.testing import CliRunner

    from cli.main import app

    CliRunner().invoke(app, ["down", "--dir", str(directory)])


def status(directory: Path) -> dict:
    proc = cli("status", "--dir", str(directory), "--json")
    return json.loads(proc.stdout)


async def wait_answers(cfg: cluster.ClusterConfig, node_id: str, timeout_s: float = 20.0) -> None:
    """Wait (bounded) until ``node_id`` answers a ping over the cluster's transport."""
    import trio

    from delos_ref.process import open_client, ping

    async with open_client(cfg, "probe") as client:
        with trio.fail_after(timeout_s):
            while await ping(client, node_id, timeout_s=0.3) is None:
                await trio.sleep(0.1)
