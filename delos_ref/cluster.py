"""Local clusters on one machine: ``DIR/cluster.json`` and the node processes it names.

``delos-ref up`` writes ``DIR/cluster.json``::

    {"format": 1, "cluster_id": "...", "transport": "tcp", "secret": "<hex>",
     "nodes": [{"id": "n1", "host": "127.0.0.1", "port": 7101, "pid": 4242}, ...]}

and starts one ``delos-ref node`` process per node, each with its data under ``DIR/<id>/``
(LMDB environments, ``node.log``, ``trace.ndjson`` when tracing is on). The file is created
with mode 0600 because it holds the cluster secret that authenticates every frame.

A directory is *live* if any of its pids is a running ``delos-ref node`` process, *stale* if
none is (the processes died or the machine rebooted): ``up`` refuses the first and recovers
the second.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

CLUSTER_FILE = "cluster.json"
FORMAT = 1
DEFAULT_DIR = ".delos-ref"
DEFAULT_BASE_PORT = 7101
TRANSPORTS = ("tcp", "udp")


class ClusterError(Exception):
    """An operator-facing error: the message is the one line the CLI prints."""


@dataclass(slots=True)
class NodeSpec:
    id: str
    host: str
    port: int
    pid: int | None = None
    roles: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(slots=True)
class ClusterConfig:
    cluster_id: str
    transport: str
    secret: str
    nodes: list[NodeSpec]
    trace: bool = False
    format: int = FORMAT

    @property
    def secret_bytes(self) -> bytes:
        return bytes.fromhex(self.secret)

    def node(self, node_id: str) -> NodeSpec:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise ClusterError(f"unknown node {node_id!r}; this cluster has {', '.join(n.id for n in self.nodes)}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> "ClusterConfig":
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT:
                raise ClusterError(f"{where} has format {raw.get('format')!r}; this delos-ref reads format {FORMAT}")
            nodes = [NodeSpec(n["id"], n["host"], int(n["port"]), n.get("pid"), list(n.get("roles", []))) for n in raw["nodes"]]
            cfg = cls(raw["cluster_id"], raw["transport"], raw["secret"], nodes, bool(raw.get("trace", False)))
            bytes.fromhex(cfg.secret)
        except ClusterError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ClusterError(f"{where} is not a delos-ref cluster file ({type(e).__name__}: {e})") from None
        if cfg.transport not in TRANSPORTS:
            raise ClusterError(f"{where}: unknown transport {cfg.transport!r}")
        return cfg


def new_config(n_nodes: int, transport: str, base_port: int, host: str = "127.0.0.1", trace: bool = False) -> ClusterConfig:
    if not 1 <= n_nodes <= 15:
        raise ClusterError(f"--nodes must be between 1 and 15 (got {n_nodes})")
    if transport not in TRANSPORTS:
        raise ClusterError(f"--transport must be one of {', '.join(TRANSPORTS)} (got {transport!r})")
    if not 1024 <= base_port <= 65535 - n_nodes:
        raise ClusterError(f"--base-port must leave room for {n_nodes} ports below 65536 (got {base_port})")
    nodes = [NodeSpec(f"n{i + 1}", host, base_port + i) for i in range(n_nodes)]
    return ClusterConfig(secrets.token_hex(8), transport, secrets.token_hex(32), nodes, trace)


# ------------------------------------------------------------------------ the directory


def config_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / CLUSTER_FILE


def load(directory: str | os.PathLike) -> ClusterConfig:
    path = config_path(directory)
    if not Path(directory).is_dir():
        raise ClusterError(f"no cluster in {directory}: the directory does not exist (start one with `delos-ref up --dir {directory}`)")
    if not path.exists():
        raise ClusterError(f"no cluster in {directory}: {CLUSTER_FILE} is missing (start one with `delos-ref up --dir {directory}`)")
    try:
        text = path.read_text()
    except OSError as e:
        raise ClusterError(f"cannot read {path}: {e.strerror}") from None
    return ClusterConfig.from_json(text, str(path))


def save(directory: str | os.PathLike, cfg: ClusterConfig) -> None:
    path = config_path(directory)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fp:
        fp.write(cfg.to_json())
        fp.flush()
        os.fsync(fp.fileno())
    os.replace(tmp, path)


def node_dir(directory: str | os.PathLike, node_id: str) -> Path:
    return Path(directory) / node_id


# ----------------------------------------------------------------------------- processes


def pid_alive(pid: int | None) -> bool:
    """True if ``pid`` is a live (or stopped) process that is not a zombie."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fp:
            return fp.read().split(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def pid_is_node(pid: int | None, node_id: str) -> bool:
    """A live pid that runs ``delos-ref node`` for ``node_id`` (pids get reused)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid
    return b"node" in cmdline and node_id.encode() in cmdline


def live_nodes(cfg: ClusterConfig) -> list[NodeSpec]:
    return [n for n in cfg.nodes if pid_is_node(n.pid, n.id)]


def port_free(host: str, port: int, transport: str) -> bool:
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def spawn_node(directory: str | os.PathLike, node_id: str) -> int:
    """Start ``delos-ref node`` for ``node_id`` in its own session (Ctrl-C in the terminal
    reaches only ``up``, which then stops the nodes in order); output goes to node.log."""
    nd = node_dir(directory, node_id)
    nd.mkdir(parents=True, exist_ok=True)
    log = open(nd / "node.log", "ab")
    cmd = [sys.executable, "-m", "cli.main", "node", "--dir", str(directory), "--id", node_id]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc.pid


def signal_node(node: NodeSpec, sig: int) -> bool:
    if not pid_is_node(node.pid, node.id):
        return False
    try:
        os.kill(node.pid, sig)  # type: ignore[arg-type]
    except ProcessLookupError:
        return False
    return True


def stop_nodes(cfg: ClusterConfig, timeout_s: float = 5.0) -> list[str]:
    """SIGTERM every live node (SIGCONT first, in case it was paused), then SIGKILL stragglers.
    Returns the ids of the nodes that were running."""
    running = live_nodes(cfg)
    for n in running:
        signal_node(n, signal.SIGCONT)
        signal_node(n, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid_alive(n.pid) for n in running):
        _reap()
        time.sleep(0.05)
    for n in running:
        if pid_alive(n.pid):
            signal_node(n, signal.SIGKILL)
    end = time.monotonic() + 2.0
    while time.monotonic() < end and any(pid_alive(n.pid) for n in running):
        _reap()
        time.sleep(0.02)
    return [n.id for n in running]


def _reap() -> None:
    """Collect exited children of this process (when ``up`` runs in the foreground)."""
    try:
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
    except ChildProcessError:
        return
