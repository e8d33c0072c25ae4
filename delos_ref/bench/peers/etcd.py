"""etcd for ``bench compare``: a 3-member cluster of Debian's ``etcd-server`` and a load
generator (``EtcdLoad.java``) that puts through etcd's HTTP/JSON gateway.

The members run with etcd's defaults (every write fsynced to the WAL of a quorum before it is
acknowledged), each with its own data directory and client and peer ports. Why this client:
Debian packages etcd's server and ``etcdctl`` but not etcd's Go ``benchmark`` tool, and
``etcdctl put`` is one process per write (milliseconds of start-up each, so it measures
itself). etcd's gateway (``POST /v3/kv/put``) is the same KV API as JSON over HTTP/1.1
keep-alive connections; k threads drive it, each on its own connection with one put in
flight, writing a request prepared once and reading the reply by hand (the JDK's HttpClient
cost as much CPU per put as etcd's three servers together). The gateway translates each request into a gRPC call inside the etcd process, so the
servers' CPU per put includes that translation: etcd's figure here is a lower bound on what its
Go client would reach (say so beside it).
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from pathlib import Path
from typing import AsyncIterator

from delos_ref.bench import peers
from delos_ref.bench.peers import HERE

NAME = "etcd"
SERVERS = 3
PORT_START = 19101


def check() -> tuple[str, str]:
    """(etcd, java), or :class:`~delos_ref.bench.peers.PeerMissing` with how to install."""
    return peers.need("etcd", "etcd"), peers.need("java", "etcd (its load generator is Java)")


def version() -> str:
    import subprocess

    try:
        out = subprocess.run([peers.need("etcd", "etcd"), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (peers.PeerMissing, OSError, subprocess.SubprocessError):
        return "?"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("etcd Version")), "?")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1.0) as r:
            return json.loads(r.read()).get("health") == "true"
    except (OSError, ValueError):
        return False


@contextlib.asynccontextmanager
async def ensemble(workdir: Path) -> AsyncIterator[dict]:
    """A running 3-member cluster under ``workdir``; yields what ``zookeeper.ensemble`` does."""
    etcd, java = check()
    classes = workdir / "classes"
    classes.mkdir(parents=True, exist_ok=True)
    peers.javac([HERE / "EtcdLoad.java", HERE / "Cpu.java"], "", classes, NAME)
    ports = peers.free_ports(2 * SERVERS, PORT_START)
    client_urls = [f"http://127.0.0.1:{ports[i]}" for i in range(SERVERS)]
    peer_urls = [f"http://127.0.0.1:{ports[SERVERS + i]}" for i in range(SERVERS)]
    initial = ",".join(f"e{i + 1}={peer_urls[i]}" for i in range(SERVERS))
    commands = []
    for i in range(SERVERS):
        data = workdir / f"e{i + 1}"
        data.mkdir()
        argv = [
            etcd, "--name", f"e{i + 1}", "--data-dir", str(data / "data"),
            "--listen-client-urls", client_urls[i], "--advertise-client-urls", client_urls[i],
            "--listen-peer-urls", peer_urls[i], "--initial-advertise-peer-urls", peer_urls[i],
            "--initial-cluster", initial, "--initial-cluster-state", "new",
            "--initial-cluster-token", f"delos-bench-{ports[0]}", "--log-level", "warn",
        ]
        commands.append((f"etcd member e{i + 1}", argv, data / "server.log"))
    with peers.processes(commands) as procs:
        await peers.wait_ready(lambda: all(_healthy(u) for u in client_urls), procs, commands, NAME)

        def argv_for(clients: int, seconds: float, op: str = "put") -> list[str]:
            return [java, "-cp", str(classes), "EtcdLoad", ",".join(client_urls), str(clients), str(seconds), str(peers.VALUE_BYTES), peers.PEER_OPS[op]]

        yield {"connect": ",".join(client_urls), "pids": [p.pid for p in procs], "argv_for": argv_for, "check": lambda: peers.exited(procs, commands)}
