"""Clusters across hosts: the *cluster file* and what a node checks before it starts.

``delos-ref up`` runs every node on one machine: its directory ``DIR/cluster.json`` names the
nodes' addresses *and* their local processes (pids), and each node's data lives in
``DIR/<id>/`` (``delos_ref/cluster.py``). A cluster whose nodes run on several machines has
no such directory. What every machine -- and every operator -- needs to share is only the
*cluster file*, written once by ``delos-ref init``::

    delos-ref init --nodes n1=10.0.0.1:7101,n2=10.0.0.2:7101,n3=db3.example:7101 --out cluster.json

It has the same format as ``DIR/cluster.json`` (``ClusterConfig``), without pids: the
cluster's id, transport and secret, and each node's id, address and roles. Then, on each
machine, ``delos-ref node --id n2 --cluster cluster.json --data /var/lib/delos-ref/n2`` runs
one node with its data in ``--data`` (the layout of ``DIR/<id>/``), and ``delos-ref bootstrap
--cluster cluster.json`` installs the first chain once a majority of the acceptors answers.
Every operator command then takes ``--cluster cluster.json`` where it took ``--dir DIR``;
the commands that signal local processes (``kill``, ``pause``, ...) refuse it.

**Addresses.** ``HOST:PORT`` where HOST is a name (resolved when a node starts and when a
peer dials it), an IPv4 address, or an IPv6 address in brackets (``[fd00::1]:7101``). An
address is what the *peers dial*, so a wildcard (``0.0.0.0``, ``::``) is refused: it names no
machine. A node binds exactly its own address.

**Is this address mine?** A node started on the wrong machine must not start at all (it could
not be reached at its address, and would look like a second copy of the node if it could).
So :func:`check_local` resolves the node's host and tries to ``bind`` each resulting address
with port 0: the kernel lets a socket bind only an address of one of this machine's
interfaces. If none binds (``EADDRNOTAVAIL``), the node refuses to start.

**The secret** authenticates every frame between nodes and clients (an HMAC, see
``transports/codec.py``): whoever holds the file can talk to the cluster, so it is written
with mode 0600 and must be copied to the other machines by a secure channel (scp, a secret
store). It does not encrypt the traffic.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import secrets
import socket
from pathlib import Path

from delos_ref.cluster import CORE_ROLES, LOGSERVER_ROLES, NODE_ROLES, TRANSPORTS, ClusterConfig, ClusterError, NodeSpec

#: A node id: a letter, then letters, digits, ``-`` or ``_`` (it names a directory and a peer).
NODE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


class UsageError(ClusterError):
    """A cluster description that is wrong whatever the machines do (the CLI's exit 2)."""


# ------------------------------------------------------------------------------ addresses


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` -> ``(host, port)``; the host of an IPv6 address is kept
    without its brackets (``NodeSpec.address`` puts them back)."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]\s]+):(\d+)", text.strip())
    if m is None:
        hint = " (an IPv6 address goes in brackets: [::1]:7101)" if text.count(":") > 1 else ""
        raise UsageError(f"not a HOST:PORT address: {text!r}{hint}")
    host, port = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
    if m.group(1) is not None:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"{text!r}: {host!r} in brackets is not an IPv6 address") from None
    if not 1 <= int(port) <= 65535:
        raise UsageError(f"{text!r}: the port must be between 1 and 65535")
    if _unspecified(host):
        raise UsageError(f"{text!r}: a wildcard address names no machine; give the address the other nodes dial")
    return host, int(port)


def _unspecified(host: str) -> bool:
    """A wildcard address (``0.0.0.0``, ``::``): what a server binds, never what a peer dials."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def parse_members(text: str, option: str) -> list[tuple[str, str, int]]:
    """``n1=HOST:PORT,n2=HOST:PORT`` -> ``[(id, host, port), ...]`` in the order given."""
    members = []
    for item in (part.strip() for part in text.split(",")):
        node_id, sep, address = item.partition("=")
        if not sep:
            raise UsageError(f"{option}: {item!r} is not ID=HOST:PORT")
        if not NODE_ID.fullmatch(node_id.strip()):
            raise UsageError(f"{option}: {node_id.strip()!r} is not a node id (a letter, then letters, digits, - or _)")
        members.append((node_id.strip(), *parse_address(address)))
    return members


def _address_key(host: str, port: int) -> tuple[str, int]:
    """Two spellings of one IP address (``::1`` and ``0:0::1``) are the same address."""
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        return host.lower().rstrip("."), port


# ------------------------------------------------------------------------- the cluster file


def new_cluster(nodes: str, logservers: str | None = None, transport: str = "tcp") -> ClusterConfig:
    """The cluster ``init`` writes: ``nodes`` host every role (with ``logservers``: the
    acceptors and sequencers, and the ``logservers`` nodes host only a LogServer -- the
    disaggregated layout of ``up --logservers``); a fresh id and secret."""
    if transport not in TRANSPORTS:
        raise UsageError(f"--transport must be one of {', '.join(TRANSPORTS)} (got {transport!r})")
    core = parse_members(nodes, "--nodes")
    extra = parse_members(logservers, "--logservers") if logservers is not None else []
    core_roles = list(CORE_ROLES if extra else NODE_ROLES)
    specs = [NodeSpec(i, h, p, roles=list(core_roles)) for i, h, p in core] + [NodeSpec(i, h, p, roles=list(LOGSERVER_ROLES)) for i, h, p in extra]
    _check_unique(specs)
    cfg = ClusterConfig(secrets.token_hex(8), transport, secrets.token_hex(32), specs)
    for role in NODE_ROLES:
        if not cfg.with_role(role):
            raise UsageError(f"no node hosts the {role} role")
    return cfg


def _check_unique(specs: list[NodeSpec]) -> None:
    ids: set[str] = set()
    addresses: dict[tuple[str, int], str] = {}
    for n in specs:
        if n.id in ids:
            raise UsageError(f"node id {n.id} is given twice")
        ids.add(n.id)
        key = _address_key(n.host, n.port)
        if key in addresses:
            raise UsageError(f"{addresses[key]} and {n.id} have the same address {n.address}")
        addresses[key] = n.id


def write_cluster_file(path: str | os.PathLike, cfg: ClusterConfig, force: bool = False) -> None:
    """Write ``cfg`` to ``path`` with mode 0600 (it holds the secret); an existing file is
    refused unless ``force``."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file name such as {path / 'cluster.json'}")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists; add --force to replace it (its secret is then lost)") from None
    with os.fdopen(fd, "w") as fp:
        os.fchmod(fp.fileno(), 0o600)  # a replaced file keeps its mode otherwise
        fp.write(cfg.to_json())


def is_cluster_file(where: str | os.PathLike) -> bool:
    """True if ``where`` is a cluster file (``--cluster FILE``), not a directory (``--dir``)."""
    return Path(where).is_file()


def load_file(path: str | os.PathLike) -> ClusterConfig:
    """The cluster in a cluster file (as ``cluster.load`` reads a directory's)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ClusterError(f"cannot read {path}: {e.strerror}") from None
    return ClusterConfig.from_json(text, str(path))


# -------------------------------------------------------------------------- a node's host


def check_local(spec: NodeSpec, transport: str) -> None:
    """Refuse (``UsageError``) to run ``spec`` on a machine none of whose addresses is the
    node's address: resolve its host, and try to bind each address it resolves to."""
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    try:
        infos = socket.getaddrinfo(spec.host, 0, type=kind)
    except socket.gaierror as e:
        raise ClusterError(f"node {spec.id}: cannot resolve its host {spec.host!r} ({e.strerror})") from None
    tried = []
    for family, _, _, _, sockaddr in infos:
        tried.append(sockaddr[0])
        with socket.socket(family, kind) as s:
            try:
                s.bind((sockaddr[0], 0, *sockaddr[2:]))
                return
            except OSError as e:
                if e.errno != errno.EADDRNOTAVAIL:
                    raise ClusterError(f"node {spec.id}: cannot bind {sockaddr[0]}: {e.strerror}") from None
    resolved = f" (resolves to {', '.join(sorted(set(tried)))})" if tried != [spec.host] else ""
    raise UsageError(f"node {spec.id}'s address {spec.address}{resolved} is not an address of this machine: start {spec.id} on its own host")
