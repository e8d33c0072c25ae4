"""Real nodes and real clients: a :class:`~delos_ref.runtime.Node` on UDP or TCP.

* :func:`run_node` is the body of ``delos-ref node``: it reads ``DIR/cluster.json``, takes an
  exclusive lock on ``DIR/<id>/`` (a second process on the same data dir is refused), binds
  the node's address, and hosts its roles until SIGTERM/SIGINT -- or until an error such as
  a full disk ends it. It logs each step (``delos_ref/logs.py``: start, recovery, roles,
  stop, the fatal cause) and keeps ``exit.json`` saying how the run ended.
* :func:`open_client` gives the CLI (or any script) a node id of its own (``cli-<hex>``), a
  transport with no listening socket for TCP (replies come back on the connection it opened)
  or an ephemeral port for UDP, and an RPC endpoint that has measured its round trips to the
  nodes (:func:`measure_round_trips`), so that its deadlines fit the network from its first
  operation on.

Roles a node hosts: ``ping`` (liveness), ``acceptor`` (the Paxos MetaStore, docs/design.md §3),
``logserver`` (NativeLoglet storage, §5), ``sequencer`` (the NativeLoglet's sequencer for
the loglets that name this node) and ``replica`` (the database, §8: :func:`host_replica`) --
all of them, or the subset ``cluster.json`` gives the node (the disaggregated layout, see
``cluster.py``). Their state lives in LMDB under ``DIR/<id>/``; this module is where a node's
composition lives.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import logging
import os
import secrets
import signal
import socket
import time
from pathlib import Path
from typing import Any, AsyncIterator

import trio

from delos_ref import cluster, logs
from delos_ref.ping import Ping, PingCore, Pong
from delos_ref.rpc import RESEND, DefiniteFailure, UnknownOutcome
from delos_ref.runtime import Node
from delos_ref.storage import LmdbStorage
from delos_ref.trace import FileSink, NullSink, TraceSink
from transports.base import PeerAddress, Transport
from transports.codec import FrameCodec


class NodeStartError(Exception):
    """The node could not start (port in use, data dir in use, bad cluster file)."""


class NodeExited(Exception):
    """The node stopped because of an error; the message is its cause (also in its log)."""


log = logging.getLogger(__name__)


def peers_of(cfg: cluster.ClusterConfig) -> dict[str, PeerAddress]:
    return {n.id: PeerAddress(n.host, n.port) for n in cfg.nodes}


@contextlib.asynccontextmanager
async def open_transport(cfg: cluster.ClusterConfig, node_id: str, bind: PeerAddress | None, *, shaped: bool = False) -> AsyncIterator[Transport]:
    """The cluster's transport for ``node_id``. ``shaped``: behind a link shaper (every cluster
    node's is, so that ``delos-ref net`` can give it delay, loss and partitions), whose
    release task runs as long as the transport is open."""
    codec = FrameCodec(secret=cfg.secret_bytes)
    if cfg.transport == "tcp":
        from transports.tcp import open_tcp_transport as opener
    else:
        from transports.udp import open_udp_transport as opener
    async with opener(node_id, bind=bind, peers=peers_of(cfg), codec=codec) as transport:
        if not shaped:
            yield transport
            return
        from transports.shaper import ShapedTransport

        outer = ShapedTransport(transport)
        async with trio.open_nursery() as nursery:
            await nursery.start(outer.run)
            yield outer
            nursery.cancel_scope.cancel()


# ------------------------------------------------------------------------------- nodes


def _lock_node_dir(path: Path) -> Any:
    path.mkdir(parents=True, exist_ok=True)
    fp = open(path / "NODE.lock", "a+")
    try:
        fcntl.flock(fp, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fp.seek(0)
        holder = fp.read().strip() or "another process"
        fp.close()
        raise NodeStartError(f"data directory {path} is in use by {holder}") from None
    fp.seek(0)
    fp.truncate()
    fp.write(f"pid {os.getpid()}\n")
    fp.flush()
    return fp


def _describe(node: Node) -> Any:
    def describe(want_stats: bool) -> tuple[tuple[str, ...], dict[str, Any]]:
        return tuple(sorted([*node.roles, *node.services])), (node.statistics() if want_stats else {})

    return describe


def host_roles(node: Node, data_dir: Path, roles: tuple[str, ...] = cluster.NODE_ROLES) -> list[LmdbStorage]:
    """Add ``ping`` and the given roles (default: every role) of a cluster node to ``node``,
    each recovering its state from LMDB."""
    from delos_ref.loglet.native.roles import add_logserver, add_sequencer
    from delos_ref.loglet.native.storage import LOGSERVER_TABLES, SEQUENCER_TABLES
    from paxos.acceptor import Acceptor
    from paxos.storage import TABLES as PAXOS_TABLES

    node.add_role("ping", PingCore(node.node_id, os.getpid(), _describe(node)))
    if hasattr(node.transport, "shaper"):  # the operator's network conditions (delos-ref net)
        add_net_control(node)
    storages = []
    if "acceptor" in roles:
        paxos_store = LmdbStorage(data_dir / "paxos", PAXOS_TABLES)
        storages.append(paxos_store)
        node.add_role("acceptor", Acceptor.recover(paxos_store), paxos_store)
    if "logserver" in roles:
        logserver_store = LmdbStorage(data_dir / "logserver", LOGSERVER_TABLES)
        storages.append(logserver_store)
        add_logserver(node, logserver_store)
    if "sequencer" in roles:
        sequencer_store = LmdbStorage(data_dir / "sequencer", SEQUENCER_TABLES)
        storages.append(sequencer_store)
        add_sequencer(node, sequencer_store)
    return storages


def serve_plugins(cfg: cluster.ClusterConfig, node: Node, data_dir: Path) -> None:
    """The cluster's loglet plugins on this node (``delos_ref/plugins.py``): each one's
    ``serve(node, data_dir)``, if its kind needs servers."""
    from delos_ref import plugins

    loaded = plugins.load_all(cfg.loglet_modules)
    for plugin in loaded:
        if plugin.serve is not None:
            plugin.serve(node, data_dir)
    if loaded:
        log.info("loglet plugins: %s", ", ".join(f"{p.kind} ({p.module}{', serving' if p.serve else ''})" for p in loaded))


def add_net_control(node: Node) -> None:
    """The ``net`` role: ``delos-ref net`` sets and reads the node's shaper through it."""
    from delos_ref.netctl import NetControlCore

    transport = node.transport

    def current() -> tuple[Any, dict[str, Any]]:
        return transport.shaper.conditions, dict(transport.shaper.stats, queued=transport.queued)

    node.add_role("net", NetControlCore(node.node_id, transport.set_conditions, current))


def host_supervisor(cfg: cluster.ClusterConfig, node: Node, directory: str | None = None) -> Any:
    """Failure detection and failure-driven reconfiguration on this node (requirement 5):
    heartbeats to every other node, and a supervisor that reconfigures the VirtualLog away from
    a failed loglet (``delos_ref/virtuallog/supervisor.py``). With the cluster's ``directory``,
    also the automatic migration to cold storage (``delos-ref migrate --auto``)."""
    from delos_ref.virtuallog.supervisor import AutoMigrator, Supervisor

    ids = tuple(n.id for n in cfg.nodes)
    supervisor = Supervisor(
        node, virtuallog_on(cfg, node, user="supervisor"), peers=ids, candidates=tuple(cfg.with_role("logserver")), sequencers=tuple(cfg.with_role("sequencer"))
    )
    if directory is None:
        node.add_service("supervisor", supervisor.run, supervisor.statistics)
        return supervisor

    def alive() -> list[str]:
        d = supervisor.detector
        now = trio.current_time()
        return [node.node_id] + ([p for p in supervisor.peers if d.alive(p, now)] if d is not None else [])

    auto = AutoMigrator(node, virtuallog_on(cfg, node, user="migrator"), directory, ids, alive)

    async def run() -> None:  # the supervisor runs the automatic migration beside its checks
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.run)
            nursery.start_soon(auto.run)

    node.add_service("supervisor", run, lambda: dict(supervisor.statistics(), auto_migrate=auto.statistics()))
    return supervisor


def host_replica(cfg: cluster.ClusterConfig, node: Node, data_dir: Path) -> LmdbStorage:
    """Add the node's database replica (``delos_ref/db``): its table in LMDB under
    ``DIR/<id>/db``, its own VirtualLog client (appends coalesced: concurrent writes share
    requests), and the other replicas -- the core (acceptor) nodes -- as its peers (for trim
    and snapshots). Its registry builds every loglet kind a cluster runs."""
    from delos_ref.db.hosting import add_replica
    from delos_ref.db.table import TABLES as DB_TABLES
    from delos_ref.loglet.native import NativeOptions
    from delos_ref.virtuallog.registry import cluster_registry

    storage = LmdbStorage(data_dir / "db", DB_TABLES)
    registry = cluster_registry(node, [n.id for n in cfg.nodes], cfg.loglet_modules, native_options=NativeOptions(coalesce_requests=2, probe_majority_first=True))
    add_replica(node, metastore_client(cfg, node, "replica"), registry, storage, cfg.with_role("acceptor"))
    return storage


async def run_node(directory: str, node_id: str, *, data_dir: Path | None = None, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Host ``node_id`` of the cluster in ``directory`` until cancelled or signalled, its data
    in ``DIR/<id>/``; or, ``directory`` being a cluster file (``node --cluster FILE --data
    DIR``, ``delos_ref/deploy.py``), in ``data_dir``.

    Every way out is written down (``delos_ref/logs.py``): a stop by SIGTERM/SIGINT as
    ``stopped``, an error as ``exited: <cause>`` (a full disk: ``exited: disk full``) in
    ``node.log`` and ``exit.json``, then :class:`NodeExited` is raised."""
    cfg = cluster.load(directory)
    spec = cfg.node(node_id)
    data_dir = cluster.node_dir(directory, node_id) if data_dir is None else Path(data_dir)
    try:
        lock = _lock_node_dir(data_dir)
    except NodeStartError as e:
        log.error("cannot start: %s", e)  # the other process's exit record is not ours to write
        raise
    try:
        _starting(cfg, spec, data_dir)
        how = await _host(directory, cfg, spec, data_dir, task_status)
    except BaseException as e:
        state, cause = _fatal_cause(e)
        if state is None:
            raise
        _exiting(data_dir, state, cause, e)
        raise NodeExited(cause) from None
    else:
        log.info("stopped (%s)", how)
        logs.write_exit_record(data_dir, os.getpid(), "stopped", how)
    finally:
        lock.close()


async def _host(directory: str, cfg: cluster.ClusterConfig, spec: cluster.NodeSpec, data_dir: Path, task_status: Any) -> str:
    """Build the node, run it until a signal; the name of the signal that stopped it."""
    # Wall-clock times (trio's clock has a random per-process offset), so that the nodes'
    # files merge into one trace by time (delos_ref.tracecheck.ndjson).
    trace = FileSink(time.time, str(data_dir / "trace.ndjson")) if cfg.trace else NullSink()
    # A Start after a Start with no Stop between them marks a crash cut in the trace
    # (delos_ref.tracecheck.ndjson: the killed process may have lost its last step's events).
    trace.emit(spec.id, "node", "Start", pid=os.getpid())
    storages: list[LmdbStorage] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            try:
                transport = await stack.enter_async_context(open_transport(cfg, spec.id, PeerAddress(spec.host, spec.port), shaped=True))
            except OSError as e:
                raise NodeStartError(f"node {spec.id} cannot bind {spec.address} ({cfg.transport}): {e.strerror or e}") from None
            node = Node(spec.id, transport, seed=secrets.token_hex(8), trace=trace, in_process=True, measure_rtt=True)
            storages = host_roles(node, data_dir, spec.hosted_roles)
            serve_plugins(cfg, node, data_dir)
            # ``migrate --auto`` is a setting in a local cluster's DIR: none for a cluster file
            host_supervisor(cfg, node, None if Path(directory).is_file() else directory)
            if "acceptor" in spec.hosted_roles:  # a database replica on every core node
                storages.append(host_replica(cfg, node, data_dir))
            _log_recovery(node, storages)
            rejected = logs.RejectedFrames(logging.getLogger("transports"), trio.current_time)
            transport.on_rejected = rejected
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async with trio.open_nursery() as nursery:
                    await nursery.start(node.run)
                    nursery.start_soon(_flush_every, rejected, rejected.window_s)
                    _profile_if_asked(nursery, spec.id)
                    log.info("serving: roles %s; services %s", ", ".join(sorted(node.roles)), ", ".join(sorted(node.services)) or "none")
                    task_status.started(node)
                    async for signum in signals:
                        log.info("%s received: stopping", signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        return signal.Signals(signum).name
    finally:
        for storage in storages:
            storage.close()
        trace.emit(spec.id, "node", "Stop")
        trace.close()
    return "cancelled"


def _profile_if_asked(nursery: trio.Nursery, node_id: str) -> None:
    """With ``DELOS_PROFILE_DIR`` set (``bench kv --profile``), profile this node while the
    benchmark measures a case: ``SIGUSR1`` starts, ``SIGUSR2`` writes (``delos_ref/profiling.py``)."""
    from delos_ref import profiling

    directory = os.environ.get(profiling.ENV_VAR)
    if directory:
        log.info("profiling on signal into %s", directory)
        nursery.start_soon(profiling.serve_signals, directory, node_id)


async def _flush_every(rejected: logs.RejectedFrames, period_s: float) -> None:
    """Report rejected frames still counted when the flood stops (one line per peer)."""
    while True:
        await trio.sleep(period_s)
        rejected.flush()


def _starting(cfg: cluster.ClusterConfig, spec: cluster.NodeSpec, data_dir: Path) -> None:
    """Log how the previous run ended and this one starts; reserve the space for last words."""
    previous = logs.read_exit_record(data_dir)
    if previous is None:
        log.info("first start in %s", data_dir)
    elif previous["state"] == "running":
        log.warning("restart: the previous run (pid %s) ended without a clean stop (killed or crashed)", previous.get("pid"))
    else:
        log.info("restart: the previous run (pid %s) %s%s", previous.get("pid"), previous["state"], f": {previous['cause']}" if previous.get("cause") else "")
    logs.write_exit_record(data_dir, os.getpid(), "running")
    if not logs.reserve_ballast(data_dir):
        log.warning("no room for %d bytes of reserve in %s: the disk is (nearly) full", logs.BALLAST_BYTES, data_dir)
    log.info("started: pid %d, %s at %s (%s), roles %s, cluster %s", os.getpid(), spec.id, spec.address, cfg.transport, ", ".join(spec.hosted_roles), cfg.cluster_id)


#: The role whose state each LMDB store under ``DIR/<id>/`` holds.
_STORE_ROLES = {"paxos": "acceptor", "logserver": "logserver", "sequencer": "sequencer", "db": "replica"}


def _log_recovery(node: Node, storages: list[LmdbStorage]) -> None:
    """One line per role: what it found on disk (nothing: a new node)."""
    for storage in storages:
        name = storage.path.name
        found = ", ".join(f"{n} {t}" for t, n in storage.table_sizes().items() if n) or "nothing (new)"
        if name == "db" and "replica" in node.roles:
            found += f"; applied up to position {node.roles['replica'].table.applied}"
        log.info("recovered %s (%s): %s", _STORE_ROLES.get(name, name), storage.path, found)


def _fatal_cause(e: BaseException) -> tuple[str | None, str]:
    """``(state, cause)`` for an error that ends the node; ``(None, "")`` for one to re-raise
    as it is (a cancellation, or Ctrl-C before the signal handlers were set up)."""
    from delos_ref.storage import StorageError, StorageFull

    found = _find(e, StorageFull) or _find(e, NodeStartError) or _find(e, StorageError) or _find(e, Exception)
    if found is None:
        return None, ""
    if isinstance(found, StorageFull):
        return "exited: disk full", str(found)  # "disk full: <store>: <error>"
    if isinstance(found, OSError) and found.errno == errno.ENOSPC:  # a trace file, a log...
        return "exited: disk full", f"disk full: {found.filename or 'a file'}: {found.strerror}"
    if isinstance(found, NodeStartError):
        return "exited: cannot start", f"cannot start: {found}"
    if isinstance(found, StorageError):
        return "exited: storage error", f"storage error: {found}"
    return "exited: error", f"{type(found).__name__}: {found}"


def _find(e: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of ``kind`` in ``e``, looking inside exception groups."""
    if isinstance(e, BaseExceptionGroup):
        for inner in e.exceptions:
            hit = _find(inner, kind)
            if hit is not None:
                return hit
        return None
    return e if isinstance(e, kind) else None


def _exiting(data_dir: Path, state: str, cause: str, error: BaseException) -> None:
    """Last words: free the reserve (a full disk needs it), log the cause, write the record."""
    if state == "exited: disk full":
        logs.release_ballast(data_dir)
    if state == "exited: error":  # a bug: the traceback is what a developer needs
        log.critical("fatal: %s; exiting", cause, exc_info=error)
    else:
        log.critical("fatal: %s; exiting", cause)
    logs.write_exit_record(data_dir, os.getpid(), state, cause)


# ----------------------------------------------------------------------------- clients


def client_trace(cfg: cluster.ClusterConfig, trace_dir: str | os.PathLike | None, client_id: str) -> TraceSink:
    """A client's trace sink: with the cluster's ``--trace`` on and its directory given,
    ``DIR/clients/<client_id>.trace.ndjson`` (``trace check --dir`` reads it with the nodes')."""
    if not (cfg.trace and trace_dir is not None):
        return NullSink()
    folder = Path(trace_dir) / "clients"
    folder.mkdir(exist_ok=True)
    return FileSink(time.time, str(folder / f"{client_id}.trace.ndjson"))


def client_bind(cfg: cluster.ClusterConfig) -> PeerAddress | None:
    """Where a client listens: nowhere on TCP (it only dials). On UDP it needs a socket of the
    nodes' address family on an address they can answer: loopback for a cluster on this
    machine, else every interface (a cluster across hosts, ``delos_ref/deploy.py``)."""
    if cfg.transport != "udp":
        return None
    first = cfg.nodes[0]
    try:
        family, *_, sockaddr = socket.getaddrinfo(first.host, first.port, type=socket.SOCK_DGRAM)[0]
    except socket.gaierror:
        return PeerAddress("127.0.0.1", 0)  # the send fails later, naming the address
    v6 = family == socket.AF_INET6
    if ipaddress.ip_address(sockaddr[0].split("%")[0]).is_loopback:
        return PeerAddress("::1" if v6 else "127.0.0.1", 0)
    return PeerAddress("::" if v6 else "0.0.0.0", 0)


@contextlib.asynccontextmanager
async def open_client(cfg: cluster.ClusterConfig, name: str = "cli", *, trace_dir: str | os.PathLike | None = None) -> AsyncIterator[Node]:
    """A client node (no roles) connected to the cluster; its router runs in the background.
    ``trace_dir``: the cluster's directory, where it logs its trace events if ``cfg.trace``."""
    client_id = f"{name}-{secrets.token_hex(4)}"
    bind = client_bind(cfg)
    trace = client_trace(cfg, trace_dir, client_id)
    try:
        async with open_transport(cfg, client_id, bind) as transport:
            node = Node(client_id, transport, seed=secrets.token_hex(8), trace=trace, measure_rtt=True)
            async with trio.open_nursery() as nursery:
                await nursery.start(node.run)
                await measure_round_trips(node, cfg)
                try:
                    yield node
                finally:
                    nursery.cancel_scope.cancel()
    finally:
        trace.close()


async def ping(client: Node, node_id: str, *, timeout_s: float = 1.0, want_stats: bool = False) -> Pong | None:
    """One node's answer to a ping over the transport, or None if it did not answer."""
    try:
        return await client.endpoint.call(node_id, Ping(want_stats), timeout_s=timeout_s, retry=RESEND, sample_rtt=True)
    except (DefiniteFailure, UnknownOutcome):
        return None


async def measure_round_trips(client: Node, cfg: cluster.ClusterConfig, *, timeout_s: float = 1.0) -> int:
    """Ping every node once (each answer a round-trip sample, ``delos_ref/rtt.py``), so that
    a new client knows how slow the network is before its first operation, whose deadlines
    stretch to it. It waits until every ping ended, but once a majority answered, only twice
    as long as that took more (a paused node does not hold every command up for
    ``timeout_s``; on loopback the whole costs a round trip or two). Returns how many answered."""
    need = len(cfg.nodes) // 2 + 1
    counts = {"answered": 0, "ended": 0}
    majority, every = trio.Event(), trio.Event()
    start = trio.current_time()

    async def one(node_id: str) -> None:
        try:  # one send only: a reply to a resent ping is no sample (Karn's rule)
            await client.endpoint.call(node_id, Ping(), timeout_s=timeout_s, sample_rtt=True)
            counts["answered"] += 1
        except (DefiniteFailure, UnknownOutcome):
            pass
        counts["ended"] += 1
        if counts["answered"] >= need or counts["ended"] == len(cfg.nodes):
            majority.set()
        if counts["ended"] == len(cfg.nodes):
            every.set()

    async with trio.open_nursery() as nursery:
        for n in cfg.nodes:
            nursery.start_soon(one, n.id)
        await majority.wait()
        with trio.move_on_after(max(0.05, 2 * (trio.current_time() - start))):
            await every.wait()
        nursery.cancel_scope.cancel()
    return counts["answered"]


async def ping_all(client: Node, cfg: cluster.ClusterConfig, *, timeout_s: float = 1.0, want_stats: bool = False) -> dict[str, Pong | None]:
    results: dict[str, Pong | None] = {}

    async def one(node_id: str) -> None:
        results[node_id] = await ping(client, node_id, timeout_s=timeout_s, want_stats=want_stats)

    async with trio.open_nursery() as nursery:
        for n in cfg.nodes:
            nursery.start_soon(one, n.id)
    return {n.id: results[n.id] for n in cfg.nodes}



# ------------------------------------------------------------------------- the VirtualLog


def metastore_client(cfg: cluster.ClusterConfig, node: Node, user: str, *, deadline_s: float = 2.0) -> Any:
    """A MetaStore client on ``node`` whose acceptors are the cluster's acceptor nodes.

    ``user`` names who on the node uses it (``"supervisor"``, ``"replica"``...): its proposer
    id is ``<incarnation>/<user>``. Two clients on one node must never share a proposer id:
    each keeps its own rounds, so both could propose different values under one ballot in
    the same instance, and Paxos's safety rests on a ballot proposing one value (the trace
    checker found exactly that on a real cluster, when the supervisor's and the replica's
    clients shared the node's id)."""
    from paxos.register import ClientTimeouts, MetaStoreClient

    timeouts = ClientTimeouts(deadline_s=deadline_s, call_timeout_s=min(deadline_s, 0.5))
    proposer = f"{incarnation_id(node)}/{user}"
    return MetaStoreClient(node.endpoint, cfg.with_role("acceptor"), node.rng("paxos", user), proposer, timeouts=timeouts, trace=node.trace)


def incarnation_id(node: Node) -> str:
    """A name for this node *incarnation*: ballots, write tags and fresh loglet ids are built
    from it, and a restarted node must never reuse those of its previous life."""
    return f"{node.node_id}@{node.seed[:16]}"


def virtuallog_on(cfg: cluster.ClusterConfig, node: Node, *, deadline_s: float = 2.0, options: Any = None, user: str = "virtuallog") -> Any:
    """A :class:`~delos_ref.virtuallog.VirtualLog` client on ``node`` (a cluster node or a
    client node): the cluster's MetaStore and a registry of every loglet kind a cluster runs."""
    from delos_ref.virtuallog import VirtualLog, VirtualLogOptions
    from delos_ref.virtuallog.registry import cluster_registry

    registry = cluster_registry(node, [n.id for n in cfg.nodes], cfg.loglet_modules)
    metastore = metastore_client(cfg, node, user, deadline_s=deadline_s)
    return VirtualLog(metastore, registry, incarnation_id(node), options=options or VirtualLogOptions())


@contextlib.asynccontextmanager
async def open_virtuallog(cfg: cluster.ClusterConfig, name: str = "cli", *, deadline_s: float = 2.0, trace_dir: str | os.PathLike | None = None) -> AsyncIterator[Any]:
    """A VirtualLog client of the cluster on a fresh client node (see :func:`open_client`)."""
    async with open_client(cfg, name, trace_dir=trace_dir) as node:
        yield virtuallog_on(cfg, node, deadline_s=deadline_s)


#: The loglet kinds a cluster's chain can start on (``initial_loglet``).
INITIAL_LOGLET_KINDS = ("native", "bootstrap", "striped")


def initial_loglet(cfg: cluster.ClusterConfig, kind: str = "native", stripes: int = 2) -> Any:
    """The loglet config a new cluster's chain starts on: ``"native"``, the NativeLoglet
    ``L0`` (sequencer on the first sequencer node, a LogServer on every LogServer node); or
    ``"bootstrap"``, the bootstrap loglet ``B0`` whose entries go through the Paxos acceptors
    (slow but simple; hot-swap it to a NativeLoglet with ``reconfig_extend``); or
    ``"striped"``, the StripedLoglet ``S0`` of ``stripes`` NativeLoglets over every LogServer,
    sequenced on the sequencer nodes in turn (rotating sequencer)."""
    from delos_ref.loglet.bootstrap import BootstrapLogletConfig
    from delos_ref.loglet.native.cluster import DEFAULT_LOGLET_ID
    from delos_ref.loglet.native.messages import NativeLogletConfig

    if kind == "native":
        return NativeLogletConfig(DEFAULT_LOGLET_ID, cfg.with_role("sequencer")[0], tuple(cfg.with_role("logserver")))
    if kind == "bootstrap":
        return BootstrapLogletConfig("B0", tuple(cfg.with_role("acceptor")))
    if kind == "striped":
        from delos_ref.loglet.striped_cluster import striped_native_config, striped_natives

        natives = striped_natives("S0", stripes, sequencer_nodes=cfg.with_role("sequencer"), logserver_nodes=cfg.with_role("logserver"))
        return striped_native_config("S0", natives)
    raise ValueError(f"unknown initial loglet kind {kind!r} (choose from {', '.join(INITIAL_LOGLET_KINDS)})")


async def bootstrap_log(cfg: cluster.ClusterConfig, kind: str = "native", stripes: int = 2, *, trace_dir: str | os.PathLike | None = None) -> bool:
    """Install the cluster's first chain if the MetaStore holds none (idempotent: a restarted
    cluster keeps its chain). True if this call installed it."""
    async with open_virtuallog(cfg, "up", trace_dir=trace_dir) as vlog:
        return await vlog.bootstrap(initial_loglet(cfg, kind, stripes))
