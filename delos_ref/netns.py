"""Separate addresses on one machine: ``delos-ref up --netns`` (root only).

Every node of a ``--netns`` cluster runs in its own Linux *network namespace*: its own
interfaces, addresses, routes and firewall, as if it were a machine of its own. The
namespaces hang off one bridge in the root namespace, like machines on a switch::

    root namespace:   bridge drXXXXXXbr  10.232.S.1/24   (operator commands, clients)
                        |            |            |
                     drXXXXXXh0   drXXXXXXh1   drXXXXXXh2     (the host ends of veth pairs)
                        |            |            |
    namespaces:      drXXXXXX-n1  drXXXXXX-n2  drXXXXXX-n3
                     10.232.S.11  10.232.S.12  10.232.S.13    (each node binds its own)

``drXXXXXX`` is the cluster's *tag*: ``dr`` and the first six hex digits of its
``cluster_id``, so that every name this module makes carries it and two clusters never share
one; the subnet ``10.232.S.0/24`` is picked per cluster among those no interface uses yet.

**Kernel conditions.** Each namespace's firewall gets a chain ``DELOS-NET``, jumped to from
``INPUT``: ``delos-ref net partition`` and ``net loss`` are also written there as iptables
rules, on the *receiving* side (``-s SENDER -j DROP``, or ``-m statistic --mode random
--probability P -j DROP`` for a loss), so the kernel drops what the link shaper would have
dropped (the shaper works on the sender's side; either end gives the same links). There is
no delay in the kernel layer: this machine's kernel has no ``netem``.

**Records and cleanup.** Before making anything, ``up`` writes ``DIR/netns.json``
(:class:`NetnsRecord`): every namespace, link, bridge and rule it is about to make, and the
kernel conditions set since. ``down`` removes what the record names *and* anything else
whose name starts with the tag, so a ``kill -9`` of ``up`` half-way leaves nothing that
``down`` cannot find.

The module has two halves: the *planner* (:func:`plan`, :func:`setup_commands`,
:func:`teardown_commands`, :func:`kernel_rules`, :func:`restore_input`) only computes names
and commands, and is tested without root; the *runner* (:func:`setup`, :func:`teardown`,
:func:`apply_kernel`, :func:`show_rules`) runs them with ``ip`` and ``iptables``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from transports.shaper import NetConditions

RECORD_FILE = "netns.json"
#: The chain, in every node's namespace, that holds the kernel conditions.
CHAIN = "DELOS-NET"
#: Subnets are 10.232.S.0/24, S in 1..254.
SUBNET_PREFIX = "10.232"
#: A node's address is 10.232.S.(FIRST_HOST + its index).
FIRST_HOST = 11


class NetnsError(Exception):
    """An operator-facing error: the message is the one line the CLI prints."""


@dataclass(slots=True)
class NodeNet:
    """One node's namespace, the two ends of its veth pair, and its address."""

    netns: str
    veth: str  # the end on the bridge, in the root namespace
    peer: str  # the end inside the namespace
    ip: str


@dataclass(slots=True)
class NetnsRecord:
    """``DIR/netns.json``: what ``up --netns`` made (or is making) for one cluster."""

    tag: str
    subnet: int  # S of 10.232.S.0/24
    nodes: dict[str, NodeNet]
    #: The kernel conditions of each node (``NetConditions.as_data()``), as ``net`` set them.
    kernel: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: int = 1

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    @property
    def bridge_ip(self) -> str:
        return f"{SUBNET_PREFIX}.{self.subnet}.1"

    @property
    def forward_rule(self) -> list[str]:
        """The root namespace's FORWARD rule that lets the bridge pass traffic between the
        namespaces even where the host's firewall drops forwarded packets."""
        return ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]

    def kernel_conditions(self) -> dict[str, NetConditions]:
        return {n: NetConditions.from_data(self.kernel[n]) if n in self.kernel else NetConditions() for n in self.nodes}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "NetnsRecord":
        raw = json.loads(text)
        nodes = {k: NodeNet(**v) for k, v in raw["nodes"].items()}
        return cls(raw["tag"], int(raw["subnet"]), nodes, dict(raw.get("kernel", {})))


# ------------------------------------------------------------------------ the planner


def tag_of(cluster_id: str) -> str:
    """``dr`` + six hex digits of the cluster id (of its hash if it does not start with
    six): the prefix of every name made for it."""
    head = cluster_id[:6].lower()
    if len(head) < 6 or any(ch not in "0123456789abcdef" for ch in head):
        head = hashlib.sha256(cluster_id.encode()).hexdigest()[:6]
    return "dr" + head


def plan(cluster_id: str, node_ids: list[str], used_subnets: Iterable[int]) -> NetnsRecord:
    """Names and addresses for a cluster's namespaces, on the first subnet 10.232.S.0/24 that
    is not in ``used_subnets`` (starting from one derived from the cluster id)."""
    if len(node_ids) > 254 - FIRST_HOST:
        raise NetnsError(f"--netns supports at most {254 - FIRST_HOST} nodes")
    used = set(used_subnets)
    start = int(hashlib.sha256(cluster_id.encode()).hexdigest()[:4], 16) % 254
    free = [s for s in ((start + i) % 254 + 1 for i in range(254)) if s not in used]
    if not free:
        raise NetnsError(f"no free subnet {SUBNET_PREFIX}.S.0/24 left for the cluster's bridge")
    s, tag = free[0], tag_of(cluster_id)
    nodes = {n: NodeNet(f"{tag}-{n}", f"{tag}h{i}", f"{tag}p{i}", f"{SUBNET_PREFIX}.{s}.{FIRST_HOST + i}") for i, n in enumerate(node_ids)}
    return NetnsRecord(tag, s, nodes)


def setup_commands(rec: NetnsRecord) -> list[list[str]]:
    """The commands that make the bridge, each namespace, its veth pair, address and
    ``DELOS-NET`` chain (run in order; each must succeed)."""
    br = rec.bridge
    cmds = [
        ["ip", "link", "add", br, "type", "bridge"],
        ["ip", "addr", "add", f"{rec.bridge_ip}/24", "dev", br],
        ["ip", "link", "set", br, "up"],
        ["iptables", "-w", "-I", *rec.forward_rule],
    ]
    for n in rec.nodes.values():
        inside = ["ip", "netns", "exec", n.netns]
        cmds += [
            ["ip", "netns", "add", n.netns],
            ["ip", "link", "add", n.veth, "type", "veth", "peer", "name", n.peer],
            ["ip", "link", "set", n.peer, "netns", n.netns],
            ["ip", "link", "set", n.veth, "master", br],
            ["ip", "link", "set", n.veth, "up"],
            [*inside, "ip", "link", "set", "lo", "up"],
            [*inside, "ip", "addr", "add", f"{n.ip}/24", "dev", n.peer],
            [*inside, "ip", "link", "set", n.peer, "up"],
            [*inside, "iptables", "-w", "-N", CHAIN],
            [*inside, "iptables", "-w", "-A", "INPUT", "-j", CHAIN],
        ]
    return cmds


def teardown_commands(rec: NetnsRecord | None, tag: str, netns_now: Iterable[str], links_now: Iterable[str]) -> list[list[str]]:
    """The commands that remove what ``rec`` names and whatever else carries ``tag``
    (``netns_now``/``links_now``: the namespaces and links that exist). Each may fail
    (already gone). Deleting a namespace deletes the veth end in it, and with it its pair."""
    namespaces = {n for n in netns_now if n.startswith(tag)}
    links = {lk for lk in links_now if lk.startswith(tag)}
    cmds = []
    if rec is not None:
        cmds.append(["iptables", "-w", "-D", *rec.forward_rule])
        namespaces |= {n.netns for n in rec.nodes.values()} & set(netns_now)
    cmds += [["ip", "netns", "del", ns] for ns in sorted(namespaces)]
    cmds += [["ip", "link", "del", lk] for lk in sorted(links, key=lambda lk: lk.endswith("br"))]  # veths, then the bridge
    return cmds


def _rule_for_loss(loss: float) -> list[str]:
    if loss >= 1:
        return ["-j", "DROP"]
    return ["-m", "statistic", "--mode", "random", "--probability", f"{loss:.6f}", "-j", "DROP"]


def kernel_rules(rec: NetnsRecord, conditions: dict[str, NetConditions]) -> dict[str, list[list[str]]]:
    """The ``DELOS-NET`` rules of each node's namespace for the nodes' conditions: for every
    link ``src -> dst`` that ``src``'s conditions cut, ``-s SRC -j DROP`` in ``dst``'s
    namespace; for a link with a loss, the same drop with that probability. Delays (and
    duplication) have no kernel rule."""
    rules: dict[str, list[list[str]]] = {n: [] for n in rec.nodes}
    for src, c in conditions.items():
        if src not in rec.nodes:
            continue
        source = ["-s", f"{rec.nodes[src].ip}/32"]
        for dst in rec.nodes:
            if dst == src:
                continue
            if dst in c.cut:
                rules[dst].append([*source, "-j", "DROP"])
            elif c.link(dst).loss > 0:
                rules[dst].append([*source, *_rule_for_loss(c.link(dst).loss)])
    return rules


def restore_input(rules: list[list[str]]) -> str:
    """``iptables-restore --noflush`` input that replaces the ``DELOS-NET`` chain's rules
    (declaring the chain empties it) and touches nothing else, in one atomic step."""
    lines = ["*filter", f":{CHAIN} - [0:0]"]
    lines += [" ".join(["-A", CHAIN, *r]) for r in rules]
    return "\n".join([*lines, "COMMIT", ""])


# ------------------------------------------------------------------------- the runner


def record_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / RECORD_FILE


def load_record(directory: str | os.PathLike) -> NetnsRecord | None:
    """The cluster's record, or None if it is not a ``--netns`` cluster."""
    path = record_path(directory)
    if not path.exists():
        return None
    try:
        return NetnsRecord.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NetnsError(f"{path} is unreadable ({type(e).__name__}: {e}); remove the namespaces by hand (`ip netns list`)") from None


def save_record(directory: str | os.PathLike, rec: NetnsRecord) -> None:
    path = record_path(directory)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(rec.to_json())
    os.replace(tmp, path)


def check_usable() -> None:
    """Raise :class:`NetnsError` unless namespaces can be made here (root, ``ip``, ``iptables``)."""
    if os.geteuid() != 0:
        raise NetnsError("--netns needs root: it makes network namespaces, veth pairs, a bridge and iptables rules")
    missing = [tool for tool in ("ip", "iptables", "iptables-restore") if shutil.which(tool) is None]
    if missing:
        raise NetnsError(f"--netns needs {' and '.join(missing)} (iproute2, iptables), not found on PATH")


def _run(cmd: list[str], *, check: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=30)
    if check and proc.returncode != 0:
        raise NetnsError(f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip() or f'exit {proc.returncode}'}")
    return proc.stdout


def existing_netns() -> list[str]:
    return [line.split()[0] for line in _run(["ip", "netns", "list"], check=False).splitlines() if line.strip()]


def existing_links() -> list[str]:
    names = []
    for line in _run(["ip", "-o", "link", "show"], check=False).splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def used_subnets() -> set[int]:
    """The S of every 10.232.S.x address on this machine's interfaces."""
    used = set()
    for word in _run(["ip", "-o", "-4", "addr", "show"], check=False).split():
        if word.startswith(SUBNET_PREFIX + "."):
            used.add(int(word.split(".")[2]))
    return used


def setup(directory: str | os.PathLike, cluster_id: str, node_ids: list[str], previous: NetnsRecord | None = None) -> NetnsRecord:
    """Make the namespaces of a cluster (``previous``: re-make those of a stopped one, on the
    same addresses; what is left of them is removed first). The record is written before
    anything is made; on a failure, everything made is removed again."""
    check_usable()
    teardown(directory, cluster_id)
    rec = previous if previous is not None else plan(cluster_id, node_ids, used_subnets())
    rec.kernel = {}  # a new start begins on a perfect network, in the kernel as in the shaper
    if previous is not None and rec.subnet in used_subnets():
        raise NetnsError(f"the subnet {SUBNET_PREFIX}.{rec.subnet}.0/24 of this cluster is in use by another interface; remove it or start with --fresh")
    save_record(directory, rec)
    try:
        for cmd in setup_commands(rec):
            _run(cmd)
    except BaseException:
        teardown(directory, cluster_id)
        raise
    return rec


def teardown(directory: str | os.PathLike, cluster_id: str) -> list[str]:
    """Remove the cluster's namespaces (killing any process left in them: only its nodes run
    there), links, bridge and rules -- those the record names and any carrying the tag.
    Keeps the record (its addresses serve a restart). Returns what could not be removed."""
    try:
        rec = load_record(directory)
    except NetnsError:
        rec = None
    tag = tag_of(cluster_id)
    namespaces = existing_netns()
    for ns in namespaces:
        if ns.startswith(tag):
            _kill_inside(ns)
    for cmd in teardown_commands(rec, tag, namespaces, existing_links()):
        _run(cmd, check=False)
    return leftovers(cluster_id)


def leftovers(cluster_id: str) -> list[str]:
    """The namespaces and links carrying the cluster's tag that still exist."""
    tag = tag_of(cluster_id)
    return [f"namespace {n}" for n in existing_netns() if n.startswith(tag)] + [f"link {lk}" for lk in existing_links() if lk.startswith(tag)]


def _kill_inside(ns: str) -> None:
    for word in _run(["ip", "netns", "pids", ns], check=False).split():
        try:
            os.kill(int(word), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def exec_prefix(directory: str | os.PathLike, node_id: str) -> list[str]:
    """The command prefix that runs a process inside ``node_id``'s namespace (``[]`` when the
    cluster is not on namespaces)."""
    rec = load_record(directory)
    if rec is None or node_id not in rec.nodes:
        return []
    return ["ip", "netns", "exec", rec.nodes[node_id].netns]


def apply_kernel(directory: str | os.PathLike, rec: NetnsRecord, conditions: dict[str, NetConditions]) -> None:
    """Write the kernel rules of ``conditions`` into every namespace and record them."""
    rules = kernel_rules(rec, conditions)
    for node_id, n in rec.nodes.items():
        _run(["ip", "netns", "exec", n.netns, "iptables-restore", "-w", "--noflush"], input=restore_input(rules[node_id]))
    rec.kernel = {node: c.as_data() for node, c in conditions.items()}
    save_record(directory, rec)


def show_rules(rec: NetnsRecord) -> dict[str, list[str]]:
    """Each namespace's ``DELOS-NET`` rules as ``iptables -S -v`` prints them (with the
    packet counters), or ``["namespace missing"]``."""
    shown = {}
    for node_id, n in rec.nodes.items():
        try:
            text = _run(["ip", "netns", "exec", n.netns, "iptables", "-w", "-S", CHAIN, "-v"])
            shown[node_id] = [line for line in text.splitlines() if line.startswith("-A")]
        except NetnsError:
            shown[node_id] = ["namespace missing"]
    return shown
