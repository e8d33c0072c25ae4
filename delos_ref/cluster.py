"""Local clusters on one machine: ``DIR/cluster.json`` and the node processes it names.

``delos-ref up`` writes ``DIR/cluster.json``::

    {"format": 1, "cluster_id": "...", "transport": "tcp", "secret": "<hex>", "log_level": "info",
     "nodes": [{"id": "n1", "host": "127.0.0.1", "port": 7101, "pid": 4242,
                "roles": ["acceptor", "logserver", "sequencer"]}, ...]}

and starts one ``delos-ref node`` process per node, each with its data under ``DIR/<id>/``
(LMDB environments, ``node.log``, ``exit.json`` -- how its last run ended --, a ``ballast``
of reserved space, and ``trace.ndjson`` when tracing is on; see ``delos_ref/logs.py``). The file is created
with mode 0600 because it holds the cluster secret that authenticates every frame.

**Roles.** A node's ``roles`` say which protocol roles it hosts (every node also answers
pings). In the default *co-located* layout every node hosts all of :data:`NODE_ROLES`: a Paxos
acceptor of the MetaStore, a NativeLoglet LogServer and a sequencer. The *disaggregated*
layout (``up --logservers K``) mirrors the paper's deployments where the data plane is apart
from the control plane: the core nodes ``n1..nN`` host the acceptors and the sequencers (and
the database later), and ``K`` more nodes ``ls1..lsK`` host only a LogServer. So the MetaStore's
acceptors are :meth:`ClusterConfig.with_role` ``("acceptor")`` and a NativeLoglet's LogServers
are picked among ``with_role("logserver")``. A file without ``roles`` (older format-1 files)
means every role.

**Loglet plugins.** ``"loglet_modules"`` (optional) names the modules of a user's loglet
kinds (``up --loglet-module``, ``plugin add``; ``delos_ref/plugins.py``): :func:`load` imports
them, so every process that loads the cluster can decode a chain that names their kinds.

**Process control.** :func:`kill_node` (SIGKILL), :func:`pause_node` / :func:`resume_node`
(SIGSTOP / SIGCONT), :func:`restart_node` (stop, then a new process on the same data) act on
one node's process and keep ``cluster.json``'s pids current (whoever stops the cluster
must read them again: ``up`` in the foreground does); :func:`log_tail` reads its
``node.log``; :func:`process_state` adds the cause from ``exit.json`` for a node that stopped
on an error (``exited: disk full``).

**Separate addresses.** ``up --netns`` (``delos_ref/netns.py``) gives every node a network
namespace and an address of its own (``host`` is then ``10.232.S.x``); ``DIR/netns.json``
records the namespaces, and :func:`spawn_node` starts each node inside its own.

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

from delos_ref import logs

CLUSTER_FILE = "cluster.json"
FORMAT = 1
DEFAULT_DIR = ".delos-ref"
DEFAULT_BASE_PORT = 7101
TRANSPORTS = ("tcp", "udp")
#: The protocol roles a node can host (see "Roles" above); every node also hosts ``ping``.
NODE_ROLES = ("acceptor", "logserver", "sequencer")
#: The roles of a core node in the disaggregated layout.
CORE_ROLES = ("acceptor", "sequencer")
#: The roles of a LogServer-only node.
LOGSERVER_ROLES = ("logserver",)


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
        """``host:port``; an IPv6 host in brackets (``[::1]:7101``)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def hosted_roles(self) -> tuple[str, ...]:
        """The protocol roles this node hosts (no ``roles`` recorded: every role)."""
        return tuple(self.roles) if self.roles else NODE_ROLES


@dataclass(slots=True)
class ClusterConfig:
    cluster_id: str
    transport: str
    secret: str
    nodes: list[NodeSpec]
    trace: bool = False
    format: int = FORMAT
    #: The nodes' ``--log-level`` (``up --log-level``; ``restart`` keeps it).
    log_level: str = "info"
    #: Loglet plugin modules (``up --loglet-module``, ``plugin add``): every process that
    #: loads the cluster imports them (:func:`load`; ``delos_ref/plugins.py``).
    loglet_modules: list[str] = field(default_factory=list)

    @property
    def secret_bytes(self) -> bytes:
        return bytes.fromhex(self.secret)

    def node(self, node_id: str) -> NodeSpec:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise ClusterError(f"unknown node {node_id!r}; this cluster has {', '.join(n.id for n in self.nodes)}")

    def with_role(self, role: str) -> list[str]:
        """The ids of the nodes hosting ``role``, in cluster order."""
        return [n.id for n in self.nodes if role in n.hosted_roles]

    @property
    def disaggregated(self) -> bool:
        return any(set(n.hosted_roles) != set(NODE_ROLES) for n in self.nodes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> "ClusterConfig":
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT:
                raise ClusterError(f"{where} has format {raw.get('format')!r}; this delos-ref reads format {FORMAT}")
            nodes = [NodeSpec(n["id"], n["host"], int(n["port"]), n.get("pid"), list(n.get("roles", []))) for n in raw["nodes"]]
            cfg = cls(raw["cluster_id"], raw["transport"], raw["secret"], nodes, bool(raw.get("trace", False)), log_level=str(raw.get("log_level", "info")))
            cfg.loglet_modules = [str(m) for m in raw.get("loglet_modules", [])]
            bytes.fromhex(cfg.secret)
            logs.check_level(cfg.log_level)
        except ClusterError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ClusterError(f"{where} is not a delos-ref cluster file ({type(e).__name__}: {e})") from None
        if cfg.transport not in TRANSPORTS:
            raise ClusterError(f"{where}: unknown transport {cfg.transport!r}")
        for n in cfg.nodes:
            unknown = set(n.roles) - set(NODE_ROLES)
            if unknown:
                raise ClusterError(f"{where}: node {n.id} has unknown roles {sorted(unknown)} (known: {', '.join(NODE_ROLES)})")
        for role in NODE_ROLES:
            if not cfg.with_role(role):
                raise ClusterError(f"{where}: no node hosts the {role} role")
        return cfg


def new_config(n_nodes: int, transport: str, base_port: int, host: str = "127.0.0.1", trace: bool = False, logservers: int = 0, log_level: str = "info") -> ClusterConfig:
    """A new cluster: ``n_nodes`` nodes ``n1..`` on consecutive ports from ``base_port``; with
    ``logservers > 0`` the disaggregated layout, whose LogServer-only nodes ``ls1..`` follow."""
    if not 1 <= n_nodes <= 15:
        raise ClusterError(f"--nodes must be between 1 and 15 (got {n_nodes})")
    if not 0 <= logservers <= 15:
        raise ClusterError(f"--logservers must be between 0 and 15 (got {logservers})")
    if transport not in TRANSPORTS:
        raise ClusterError(f"--transport must be one of {', '.join(TRANSPORTS)} (got {transport!r})")
    try:
        logs.check_level(log_level)
    except ValueError as e:
        raise ClusterError(str(e)) from None
    total = n_nodes + logservers
    check_base_port(base_port, total)
    core_roles = list(CORE_ROLES if logservers else NODE_ROLES)
    nodes = [NodeSpec(f"n{i + 1}", host, base_port + i, roles=list(core_roles)) for i in range(n_nodes)]
    nodes += [NodeSpec(f"ls{i + 1}", host, base_port + n_nodes + i, roles=list(LOGSERVER_ROLES)) for i in range(logservers)]
    return ClusterConfig(secrets.token_hex(8), transport, secrets.token_hex(32), nodes, trace, log_level=log_level.lower())


def check_base_port(base_port: int, total: int) -> None:
    if not 1024 <= base_port <= 65535 - total:
        raise ClusterError(f"--base-port must leave room for {total} ports below 65536 (got {base_port})")


def move_ports(cfg: ClusterConfig, base_port: int) -> bool:
    """Give the nodes consecutive ports from ``base_port`` (in cluster order), as ``up
    --base-port`` does for a stale directory; True if any address changed. Only addresses
    move: the chain names nodes by id, and each node's data stays where it is."""
    check_base_port(base_port, len(cfg.nodes))
    changed = False
    for i, n in enumerate(cfg.nodes):
        changed |= n.port != base_port + i
        n.port = base_port + i
    return changed


# ------------------------------------------------------------------------ the directory


def config_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / CLUSTER_FILE


def load(directory: str | os.PathLike) -> ClusterConfig:
    """The cluster in ``directory`` (or, given a cluster file -- ``--cluster FILE``, nodes on
    any hosts: ``delos_ref/deploy.py`` -- the cluster it describes), with its loglet plugin
    modules imported (so that this process decodes every chain the cluster may hold); any
    failure is a :class:`ClusterError`."""
    if Path(directory).is_file():
        from delos_ref import deploy

        cfg = deploy.load_file(directory)
    else:
        cfg = load_file(directory)
    from delos_ref import plugins

    try:
        plugins.load_all(cfg.loglet_modules)
    except plugins.PluginError as e:
        where = directory if Path(directory).is_file() else config_path(directory)
        raise ClusterError(f"{where}: {e}") from None
    return cfg


def load_file(directory: str | os.PathLike) -> ClusterConfig:
    """``directory``'s cluster.json as it is (its loglet modules not imported)."""
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


def spawn_node(directory: str | os.PathLike, node_id: str, log_level: str = "info") -> int:
    """Start ``delos-ref node`` for ``node_id`` in its own session (Ctrl-C in the terminal
    reaches only ``up``, which then stops the nodes in order). The node writes its own log
    lines to node.log; its stdout and stderr go there too (a crash's last words). A node of
    an ``up --netns`` cluster runs inside its network namespace (``ip netns exec``)."""
    nd = node_dir(directory, node_id)
    nd.mkdir(parents=True, exist_ok=True)
    log = open(nd / logs.LOG_FILE, "ab")
    cmd = [*_netns_prefix(directory, node_id), sys.executable, "-m", "cli.main", "node", "--dir", str(directory), "--id", node_id, "--log-level", log_level]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc.pid


def _netns_prefix(directory: str | os.PathLike, node_id: str) -> list[str]:
    """``ip netns exec NS`` for a node of an ``up --netns`` cluster (``delos_ref/netns.py``)."""
    if not (Path(directory) / "netns.json").exists():
        return []
    from delos_ref import netns

    try:
        return netns.exec_prefix(directory, node_id)
    except netns.NetnsError as e:
        raise ClusterError(str(e)) from None


def signal_node(node: NodeSpec, sig: int) -> bool:
    if not pid_is_node(node.pid, node.id):
        return False
    try:
        os.kill(node.pid, sig)  # type: ignore[arg-type]
    except ProcessLookupError:
        return False
    return True


def stop_nodes(cfg: ClusterConfig, timeout_s: float = 5.0, only: list[NodeSpec] | None = None) -> list[str]:
    """SIGTERM every live node (SIGCONT first, in case it was paused), then SIGKILL stragglers.
    Returns the ids of the nodes that were running. ``only``: just these nodes."""
    running = [n for n in (only if only is not None else cfg.nodes) if pid_is_node(n.pid, n.id)]
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


# ------------------------------------------------------------------ one node's process


def _wait_gone(node: NodeSpec, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while pid_alive(node.pid):
        if time.monotonic() > deadline:
            return False
        _reap()
        time.sleep(0.02)
    return True


def _running(cfg: ClusterConfig, node_id: str, verb: str) -> NodeSpec:
    node = cfg.node(node_id)
    if not pid_is_node(node.pid, node.id):
        raise ClusterError(f"cannot {verb} {node_id}: its process is not running (start it with `delos-ref restart {node_id}`)")
    return node


def process_state(node: NodeSpec, directory: str | os.PathLike | None = None) -> str:
    """``running``, ``paused`` (SIGSTOPped), ``dead``, or -- for a node that stopped and said
    why in its exit record (``delos_ref/logs.py``; needs ``directory``) -- ``exited: <why>``
    such as ``exited: disk full``, or ``stopped``."""
    if not pid_is_node(node.pid, node.id):
        record = logs.read_exit_record(node_dir(directory, node.id)) if directory is not None else None
        if record is not None and record.get("pid") == node.pid and record["state"] != "running":
            return record["state"]
        return "dead"
    try:
        with open(f"/proc/{node.pid}/stat") as fp:
            return "paused" if fp.read().split(")", 1)[1].split()[0] == "T" else "running"
    except OSError:
        return "running"


def kill_node(cfg: ClusterConfig, node_id: str) -> NodeSpec:
    """SIGKILL one node (a crash: no clean shutdown; its synced LMDB state survives)."""
    node = _running(cfg, node_id, "kill")
    os.kill(node.pid, signal.SIGKILL)  # type: ignore[arg-type]
    if not _wait_gone(node, 5.0):
        raise ClusterError(f"{node_id} (pid {node.pid}) did not die after SIGKILL")
    return node


def pause_node(cfg: ClusterConfig, node_id: str) -> NodeSpec:
    """SIGSTOP one node: it stays alive but answers nothing (a slow or partitioned node)."""
    node = _running(cfg, node_id, "pause")
    os.kill(node.pid, signal.SIGSTOP)  # type: ignore[arg-type]
    _wait_state(node, "paused")
    return node


def resume_node(cfg: ClusterConfig, node_id: str) -> NodeSpec:
    """SIGCONT a paused node."""
    node = _running(cfg, node_id, "resume")
    os.kill(node.pid, signal.SIGCONT)  # type: ignore[arg-type]
    _wait_state(node, "running")
    return node


def _wait_state(node: NodeSpec, state: str, timeout_s: float = 2.0) -> None:
    """Signals are delivered asynchronously: wait (bounded) until the kernel shows ``state``."""
    deadline = time.monotonic() + timeout_s
    while process_state(node) != state and time.monotonic() < deadline:
        time.sleep(0.01)


def restart_node(directory: str | os.PathLike, cfg: ClusterConfig, node_id: str) -> NodeSpec:
    """Stop ``node_id`` if it runs (SIGTERM, then SIGKILL), start a new process on the same
    data and address, and record its pid in ``cluster.json``."""
    node = cfg.node(node_id)
    stop_nodes(cfg, only=[node])
    # The kernel releases a killed process's sockets asynchronously: give the port a moment.
    # (A node in its own network namespace has its address to itself: nothing to check.)
    in_netns = bool(_netns_prefix(directory, node_id))
    deadline = time.monotonic() + 5.0
    while not in_netns and not port_free(node.host, node.port, cfg.transport) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not in_netns and not port_free(node.host, node.port, cfg.transport):
        raise ClusterError(f"cannot restart {node_id}: port {node.address} ({cfg.transport}) is in use by another process")
    node.pid = spawn_node(directory, node.id, cfg.log_level)
    save(directory, cfg)
    return node


def log_tail(directory: str | os.PathLike, node_id: str, lines: int) -> tuple[Path, list[str]]:
    """The last ``lines`` lines of a node's ``node.log`` (all of them if ``lines`` <= 0)."""
    path = node_dir(directory, node_id) / logs.LOG_FILE
    if not path.exists():
        raise ClusterError(f"{node_id} has no log yet ({path} is missing)")
    text = path.read_text(errors="replace").splitlines()
    return path, text[-lines:] if lines > 0 else text
