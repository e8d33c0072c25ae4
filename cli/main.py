"""``delos-ref``: run local clusters, simulations and benchmarks.

Here: ``node``, ``up`` (with the live dashboard of ``cli/dashboard.py``), ``down``,
``restore`` (a new cluster from a cold store, to a position), ``status``, ``sim``, ``bench``; ``chart`` and ``explore`` (pictures of a run) live in ``cli/viz.py``; ``init`` and ``bootstrap`` (a cluster across hosts, with ``node --cluster``) in ``cli/deploy.py``. The operator commands (``append``, ``read``, ``tail``,
``reconfigure``, ``seal``, ``trim``, ``kill``, ``pause``, ``resume``, ``restart``, ``logs``)
live in ``cli/ops.py`` and are registered on the same app; ``plugin`` (a user's loglet kinds)
in ``cli/plugin.py``; shared helpers in ``cli/common.py``.

The ``cli`` package is the only part of the project that prints. Every command reports
operator errors as one line on stderr with the exit codes of ``cli/common.py`` (0 ok, 1 failed
operation, 2 bad usage, 3 partial, 130 interrupted); :class:`cli.common.Group` catches what
escapes a command (usage errors, OS errors) and says it in one line too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.markup import escape
from rich.table import Table

from cli.common import USAGE, DirOpt, Group, JsonOpt, err, fail, message_of, out, positive_seconds, print_json, run_or_fail, sole_error, timeout_option
from cli.minimize import CHARTS_UNAVAILABLE, DEFAULT_MAX_RUNS, charts_available, run_minimize
from delos_ref import cluster

app = typer.Typer(
    name="delos-ref",
    help="A reference implementation of virtual consensus (Delos, OSDI 2020).\n\nQuick start: `delos-ref up` (foreground, Ctrl-C stops it), or `delos-ref up --detach` then `delos-ref status`.\n\n"
    "Exit codes: 0 ok, 1 the operation failed, 2 bad usage, 3 partial (some nodes did not answer), 130 interrupted.",
    cls=Group,
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# --------------------------------------------------------------------------------- node


@app.command(epilog="\b\nExamples:\n  delos-ref node --dir .delos-ref --id n1 --log-level debug   (normally started by `delos-ref up`)\n"
             "  delos-ref node --cluster cluster.json --id n2 --data /var/lib/delos-ref/n2   (one node of a cluster across hosts: docs/deployment.md)")
def node(
    directory: Path = DirOpt,
    node_id: str = typer.Option(..., "--id", help="This node's id in the cluster file."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="With --cluster FILE: this node's data directory (LMDB, node.log, exit.json; created if missing). Under --dir it is DIR/<id>/."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error: the least important line written to node.log."),
) -> None:
    """Run one node of the cluster (in the foreground, until SIGTERM or Ctrl-C), logging to
    node.log in its data directory; if it stops on an error (a full disk), the cause is the
    last line of that log and `status` shows it.

    With --cluster FILE (a cluster across hosts), the node refuses to start (exit 2) unless
    its address in FILE is one of this machine's: its host is resolved and must be bindable
    here (a host that does not resolve: exit 1)."""
    import functools

    import trio

    from delos_ref import deploy, logs
    from delos_ref.process import NodeExited, NodeStartError, run_node
    from delos_ref.storage import StorageError

    from_file = deploy.is_cluster_file(directory)
    if from_file and data is None:
        raise fail("--cluster FILE needs --data DIR: the directory where this node keeps its data", USAGE)
    if not from_file and data is not None:
        raise fail(f"--data goes with --cluster FILE; a node of the cluster in --dir {directory} keeps its data in {directory}/<id>/", USAGE)
    try:
        logs.check_level(log_level)
        cfg = cluster.load(directory)
        spec = cfg.node(node_id)
        if from_file:
            deploy.check_local(spec, cfg.transport)
    except (ValueError, deploy.UsageError) as e:
        raise fail(str(e), USAGE)
    except cluster.ClusterError as e:
        raise fail(str(e))
    data_dir = data if data is not None else cluster.node_dir(directory, node_id)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        logs.setup_node_logging(data_dir, node_id, log_level)
    except OSError as e:
        raise fail(f"cannot write the log in {data_dir}: {e.strerror or e}")
    from delos_ref.labs.overlay import log_if_active

    log_if_active()  # `up --lab WORK`: node.log says which lab modules come from WORK
    try:
        trio.run(functools.partial(run_node, str(directory), node_id, data_dir=data_dir))
    except NodeExited:
        raise typer.Exit(1)  # the cause is in node.log and exit.json already
    except (cluster.ClusterError, NodeStartError, StorageError) as e:
        raise fail(str(e))
    except KeyboardInterrupt:
        pass


# ------------------------------------------------------------------------------ up/down


def _prepare_dir(directory: Path, nodes: int, transport: str, base_port: int | None, trace: bool, fresh: bool, logservers: int, log_level: str | None) -> tuple[cluster.ClusterConfig, bool]:
    """Refuse a live directory; recover a stale one (moved to ``base_port`` if given); or
    make a new cluster config (the directory itself is made by :func:`_start`)."""
    if cluster.config_path(directory).exists():
        cfg = cluster.load(directory)
        live = cluster.live_nodes(cfg)
        if live:
            ids = ", ".join(f"{n.id} (pid {n.pid})" for n in live)
            raise fail(f"a cluster is already running in {directory}: {ids}; stop it with `delos-ref down --dir {directory}`")
        if not fresh:
            if base_port is not None:
                cluster.move_ports(cfg, base_port)
            if log_level is not None:
                cfg.log_level = log_level.lower()
            return cfg, True
        _remove_netns(directory, cfg)  # a stale `up --netns` cluster's namespaces go with it
        shutil.rmtree(directory)
    elif directory.exists() and any(directory.iterdir()):
        raise fail(f"{directory} exists and is not a delos-ref cluster directory (no {cluster.CLUSTER_FILE}); choose another --dir")
    port = cluster.DEFAULT_BASE_PORT if base_port is None else base_port
    return cluster.new_config(nodes, transport, port, trace=trace, logservers=logservers, log_level=log_level or "info"), False


def _refuse_new_cluster_options(ctx: typer.Context, directory: Path, cfg: cluster.ClusterConfig, **given: Any) -> None:
    """A stale cluster restarts as it was: an option given on the command line that would
    shape a *new* cluster differently (--nodes, --logservers, --transport) is an error
    rather than silently ignored."""
    core = [n for n in cfg.nodes if "acceptor" in n.hosted_roles]
    has = {"nodes": len(core), "logservers": len(cfg.nodes) - len(core), "transport": cfg.transport}
    differ = [name for name, value in given.items() if ctx.get_parameter_source(name).name != "DEFAULT" and value != has[name]]
    if differ:
        what = ", ".join(f"--{name.replace('_', '-')} {str(has[name]).lower()}" for name in differ)
        raise fail(f"the stopped cluster in {directory} has {what}; {', '.join('--' + n for n in differ)} shape only a new cluster: drop them, or add --fresh to wipe this one", 2)


def _start(directory: Path, cfg: cluster.ClusterConfig, recovered: bool, netns_plan: Any = None) -> None:
    """Save cluster.json and spawn the nodes; ``netns_plan`` (``up --netns``): first make
    their namespaces (``delos_ref/netns.py``), where each node then runs."""
    busy = [] if netns_plan is not None else [n for n in cfg.nodes if not cluster.port_free(n.host, n.port, cfg.transport)]
    if busy:
        ports = ", ".join(f"{n.address}" for n in busy)
        hint = "pass --base-port to move this cluster to other ports" if recovered else "choose another --base-port"
        raise fail(f"port in use ({cfg.transport}): {ports}; {hint} or stop what holds it")
    directory.mkdir(parents=True, exist_ok=True)
    cluster.save(directory, cfg)
    if netns_plan is not None:
        from delos_ref import netns

        try:
            netns.setup(directory, cfg.cluster_id, [n.id for n in cfg.nodes], netns_plan)
        except netns.NetnsError as e:
            raise fail(str(e))
    for n in cfg.nodes:
        n.pid = cluster.spawn_node(directory, n.id, cfg.log_level)
    cluster.save(directory, cfg)


@contextlib.contextmanager
def _undone_on_failure(directory: Path, cfg: cluster.ClusterConfig, recovered: bool) -> Iterator[None]:
    """If starting fails or is interrupted (Ctrl-C, SIGHUP, SIGTERM), stop every node started
    so far, and remove what a new cluster left in ``directory`` -- no half-made cluster
    remains that a later ``up`` would take for a stale one. A recovered cluster keeps its
    data."""
    existed = directory.exists()
    try:
        yield
    except BaseException as e:
        stopped = cluster.stop_nodes(cfg)
        _remove_netns(directory, cfg)
        if not recovered:
            _remove_new_cluster(directory, existed)
        if isinstance(e, KeyboardInterrupt) or (isinstance(e, BaseExceptionGroup) and e.subgroup(KeyboardInterrupt) is not None):
            raise fail(f"interrupted while starting the cluster in {directory}: stopped {len(stopped)} node(s)" + ("" if recovered else ", removed the new cluster")) from None
        raise


def _remove_netns(directory: Path, cfg: cluster.ClusterConfig) -> str:
    """Remove an ``up --netns`` cluster's namespaces, links and rules (nothing for another
    cluster); returns what to add to the ``stopped ...`` line."""
    from delos_ref import netns

    if not netns.record_path(directory).exists():
        return ""
    try:
        netns.check_usable()
        left = netns.teardown(directory, cfg.cluster_id)
    except netns.NetnsError as e:
        raise fail(f"cannot remove the namespaces of the cluster in {directory}: {e}")
    if left:
        raise fail(f"could not remove {', '.join(left)}")
    return "; removed its network namespaces"


def _netns_plan(directory: Path, cfg: cluster.ClusterConfig, recovered: bool, want: bool) -> Any:
    """``up --netns``: the namespaces to make (a stopped ``--netns`` cluster makes them again,
    with or without the flag); None for a cluster on loopback."""
    from delos_ref import netns

    try:
        rec = netns.load_record(directory) if recovered else None
        if recovered and rec is None:
            if want:
                raise fail(f"the stopped cluster in {directory} is not on namespaces; --netns shapes only a new cluster: drop it, or add --fresh", USAGE)
            return None
        if rec is None and not want:
            return None
        netns.check_usable()
        if rec is None:
            rec = netns.plan(cfg.cluster_id, [n.id for n in cfg.nodes], netns.used_subnets())
    except netns.NetnsError as e:
        raise fail(str(e), USAGE)
    for n in cfg.nodes:
        n.host = rec.nodes[n.id].ip
    return rec


def _remove_new_cluster(directory: Path, existed: bool) -> None:
    """Remove a new cluster's directory (only empty its contents if it existed before)."""
    if not existed:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


@contextlib.contextmanager
def _hangup_is_ctrl_c() -> Iterator[None]:
    """Make SIGHUP (the terminal closed) and SIGTERM do what Ctrl-C does: a SIGINT to this
    process, which trio (inside ``trio.run``) or Python (outside) turns into
    KeyboardInterrupt at a safe point."""

    def forward(signum: int, frame: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGHUP, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_ready(directory: Path, cfg: cluster.ClusterConfig, timeout_s: float) -> None:
    """Ping until every node answers; fail early and clearly if a node process died."""
    import trio

    from delos_ref.process import open_client, ping_all

    async def wait() -> dict[str, Any]:
        async with open_client(cfg) as client:
            deadline = trio.current_time() + timeout_s
            while True:
                answers = await ping_all(client, cfg, timeout_s=0.5)
                if all(answers.values()):
                    return answers
                dead = [n for n in cfg.nodes if not cluster.pid_alive(n.pid)]
                if dead or trio.current_time() > deadline:
                    return answers

    answers = trio.run(wait)
    dead = [n for n in cfg.nodes if not cluster.pid_alive(n.pid)]
    if dead:
        cluster.stop_nodes(cfg)
        raise fail(f"node {dead[0].id} exited during start-up: {_last_words(directory, dead[0])}")
    missing = [cfg.node(k) for k, v in answers.items() if v is None]
    if missing:
        cluster.stop_nodes(cfg)
        raise fail(f"nodes {', '.join(n.id for n in missing)} did not answer within {timeout_s:g}s; {missing[0].id}'s log ends: {_last_words(directory, missing[0])}")


def _last_words(directory: Path, node: cluster.NodeSpec) -> str:
    """Why a node stopped: the cause in its exit record, else its log's last line."""
    from delos_ref import logs

    record = logs.read_exit_record(cluster.node_dir(directory, node.id))
    if record is not None and record.get("pid") == node.pid and record.get("cause"):
        return record["cause"]
    try:
        _, lines = cluster.log_tail(directory, node.id, 1)
    except cluster.ClusterError:
        return "no output"
    return lines[-1] if lines else "no output"


def _bootstrap(directory: Path, cfg: cluster.ClusterConfig, loglet: str, timeout_s: float, recovered: bool, stripes: int = 2) -> None:
    """Install the VirtualLog's first chain (a no-op on a restarted cluster, which keeps its
    own, and is moved onto a fresh loglet), then check that the active loglet answers."""
    import trio

    from delos_ref import ops
    from delos_ref.process import bootstrap_log
    from delos_ref.virtuallog.chain import Segment
    from paxos.register import MetaStoreError

    async def ready() -> None:
        await bootstrap_log(cfg, loglet, stripes, trace_dir=directory)
        async with ops.session(str(directory), timeout_s=timeout_s, name="up") as s:
            active = s.vlog.chain.active
            if recovered and active.kind in ("native", "striped"):
                # The nodes restarted, and a sequencer serves a loglet in one incarnation only:
                # move the log onto a fresh loglet on the same nodes (seal, install, fetch).
                if active.kind == "native":
                    await ops.reconfigure(s, "native")
                else:  # the same stripes' nodes, fresh instances
                    await s.vlog.reconfig_extend(s.vlog.registry.config(Segment(0, None, *s.vlog.registry.clone(active, ops.fresh_loglet_id()))))
            await ops.check_ready(s)

    try:
        trio.run(ready)
    except BaseException as e:
        known = sole_error(e, (MetaStoreError, ops.OpError))
        if known is None:
            raise
        cluster.stop_nodes(cfg)
        what = "its MetaStore did not answer" if isinstance(known, MetaStoreError) else "does not accept appends"
        raise fail(f"the cluster in {directory} started but {what}: {known}") from None


@app.command(
    epilog="\b\nExamples:\n  delos-ref up                      # 3 nodes on TCP, live dashboard, Ctrl-C stops\n"
    "  delos-ref up --detach --nodes 5 --transport udp --dir /tmp/c1\n"
    "  delos-ref up --nodes 3 --logservers 3   # disaggregated: n1..n3 acceptor+sequencer, ls1..ls3 LogServers\n"
    "  delos-ref up --detach --loglet bootstrap   # then: delos-ref reconfigure --loglet native (hot swap)\n"
    "  delos-ref up --detach --loglet striped --stripes 2   # a StripedLoglet: 2 NativeLoglets, sequencers n1, n2\n"
    "  delos-ref up --detach --base-port 7201   # a stopped cluster: restart it on other ports\n"
    "  sudo delos-ref up --detach --netns   # each node in its own network namespace (kernel partitions)\n"
    "  delos-ref up --detach --loglet-module delos_ref.examples.directory_loglet   # then: delos-ref reconfigure --loglet directory"
)
def up(
    ctx: typer.Context,
    nodes: int = typer.Option(3, "--nodes", "-n", help="Number of core node processes (n1..nN)."),
    logservers: int = typer.Option(0, "--logservers", help="Disaggregated layout: this many LogServer-only nodes (ls1..lsK); the core nodes then host the acceptors and sequencers. 0: every node hosts every role."),
    transport: str = typer.Option("tcp", "--transport", "-t", help="tcp or udp."),
    directory: Path = DirOpt,
    base_port: Optional[int] = typer.Option(None, "--base-port", help=f"Node i listens on base-port + i - 1 (127.0.0.1); default {cluster.DEFAULT_BASE_PORT}. On a stale directory, moves its nodes to these ports (default: the ports it had)."),
    loglet: str = typer.Option("native", "--loglet", help="Loglet kind of the first segment: native (the NativeLoglet), bootstrap (entries in a Paxos register; hot-swap it later with `reconfigure --loglet native`) or striped (a StripedLoglet of NativeLoglets over the same LogServers, sequenced on different nodes)."),
    stripes: int = typer.Option(2, "--stripes", help="With --loglet striped: the number of stripes (1..16)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Return once the cluster accepts appends; leave it running."),
    trace: bool = typer.Option(False, "--trace", help="Write each node's trace events to DIR/<node>/trace.ndjson."),
    fresh: bool = typer.Option(False, "--fresh", help="Wipe a stale (stopped) cluster directory instead of restarting it with its data."),
    ready_timeout_s: float = typer.Option(20.0, "--ready-timeout", help="Seconds to wait for every node to answer.", callback=positive_seconds, metavar="SECONDS"),
    log_level: Optional[str] = typer.Option(None, "--log-level", help="The nodes' log level in DIR/<node>/node.log: debug, info (default), warning or error. Kept in cluster.json (`restart` uses it)."),
    netns: bool = typer.Option(False, "--netns", help="Root only: run each node in its own network namespace on a bridge, with its own address (10.232.S.x); `net partition` and `net loss` then also act in the kernel (iptables). `down` removes the namespaces."),
    loglet_modules: list[str] = typer.Option([], "--loglet-module", metavar="MODULE", help="A loglet plugin module (repeatable; importable by every node): recorded in cluster.json, loaded by every node and command, its kind then usable with `reconfigure --loglet KIND` (docs/tutorial-loglet.md)."),
    lab: Optional[Path] = typer.Option(None, "--lab", metavar="WORK", help="Run the nodes with a lab's work (`delos-ref lab start`): the lab modules in WORK replace the real ones (sets DELOS_LAB=WORK for the nodes; set it yourself for a later `restart`)."),
) -> None:
    """Start a local cluster of node processes: foreground with a live dashboard (Ctrl-C,
    SIGTERM or SIGHUP stops everything), or --detach for scripts.

    A directory whose nodes are running is refused; a stale one (its processes are gone) is
    restarted with its data, unless --fresh (--nodes, --logservers and --transport given
    for it must match what it has; --base-port moves it). A start that fails stops what it
    started, and a new cluster's directory is removed (the error gives the failing node's
    cause).
    """
    from delos_ref.process import initial_loglet

    if lab is not None:
        _use_lab(lab)
    if netns:
        from delos_ref import netns as netns_module

        try:
            netns_module.check_usable()
        except netns_module.NetnsError as e:
            raise fail(str(e), USAGE)
    try:
        try:  # check the arguments before touching the directory (--fresh wipes it)
            initial_loglet(cluster.new_config(nodes, transport, base_port or cluster.DEFAULT_BASE_PORT, logservers=logservers, log_level=log_level or "info"), loglet, stripes)
        except cluster.ClusterError as e:
            raise fail(str(e), USAGE)
        except ValueError as e:
            raise fail(f"--loglet: {e}", USAGE)
        _add_loglet_modules(cluster.new_config(1, "tcp", cluster.DEFAULT_BASE_PORT), loglet_modules)  # each one usable?
        cfg, recovered = _prepare_dir(directory, nodes, transport, base_port, trace, fresh, logservers, log_level)
        _add_loglet_modules(cfg, loglet_modules)
    except cluster.ClusterError as e:
        raise fail(str(e))
    if recovered:
        _refuse_new_cluster_options(ctx, directory, cfg, nodes=nodes, logservers=logservers, transport=transport)
        if ctx.get_parameter_source("trace").name != "DEFAULT":
            cfg.trace = trace  # tracing may be turned on (or off) for a restart
    netns_plan = _netns_plan(directory, cfg, recovered, netns)
    with _hangup_is_ctrl_c():
        with _undone_on_failure(directory, cfg, recovered):
            _start(directory, cfg, recovered, netns_plan)
            _wait_ready(directory, cfg, ready_timeout_s)
            _bootstrap(directory, cfg, loglet, ready_timeout_s, recovered, stripes)
        what = "recovered stale cluster" if recovered else "cluster up"
        if detach:
            where = f" in network namespaces on bridge {netns_plan.bridge}" if netns_plan is not None else ""
            err.print(f"{what}: {len(cfg.nodes)} nodes on {cfg.transport}{where} in {directory} ({', '.join(n.address for n in cfg.nodes)}); stop it with `delos-ref down --dir {directory}`", markup=False, highlight=False)
            return
        _foreground(directory, cfg, what)


def _add_loglet_modules(cfg: cluster.ClusterConfig, modules: list[str]) -> None:
    """``up --loglet-module``: add each new module to the cluster's (a usage error, exit 2,
    before any node starts, if one cannot be used: ``delos_ref/plugins.py``)."""
    from delos_ref import ops, plugins

    for module in modules:
        try:
            ops.check_new_module(cfg.loglet_modules, module)
        except plugins.PluginError as e:
            raise fail(f"--loglet-module: {e}", USAGE)
        if module not in cfg.loglet_modules:
            cfg.loglet_modules.append(module)


def _use_lab(work: Path) -> None:
    """``up --lab WORK``: the nodes this process starts inherit ``DELOS_LAB`` (delos_ref/labs/overlay.py)."""
    from delos_ref.labs.catalog import LABS

    if not work.is_dir():
        raise fail(f"--lab {work}: no such directory (start a lab with `delos-ref lab start NAME --dir {work}`)", USAGE)
    if not any((work / lb.path).is_file() for lb in LABS):
        raise fail(f"--lab {work}: holds no lab module (start a lab with `delos-ref lab start NAME --dir {work}`)", USAGE)
    os.environ["DELOS_LAB"] = str(work.resolve())


@app.command(epilog="\b\nExample: delos-ref restore --from .delos-ref/cold --at 5000 --dir /tmp/restored   # then: delos-ref kv status --dir /tmp/restored\n"
             "         delos-ref restore --from .delos-ref/cold --at 9000 --live .delos-ref --dir /tmp/r2   # above the cold store: the rest from the live cluster")
def restore(
    cold_from: Path = typer.Option(..., "--from", help="The cold store to restore from (a cluster's DIR/cold/, or its --cold-dir)."),
    at: int = typer.Option(..., "--at", help="The position to restore to: the new log holds the entries below it, and its first writable segment begins there."),
    directory: Path = typer.Option(..., "--dir", help="Directory of the NEW cluster (must not hold one)."),
    live: Optional[Path] = typer.Option(None, "--live", help="The DIR of the live cluster the cold store came from: positions below --at that the cold store does not hold (not migrated yet) are read from its log."),
    nodes: int = typer.Option(3, "--nodes", "-n", help="Number of core node processes of the new cluster."),
    transport: str = typer.Option("tcp", "--transport", "-t", help="tcp or udp."),
    base_port: Optional[int] = typer.Option(None, "--base-port", help=f"Node i listens on base-port + i - 1; default {cluster.DEFAULT_BASE_PORT}."),
    ready_timeout_s: float = typer.Option(20.0, "--ready-timeout", help="Seconds to wait for every node to answer.", callback=positive_seconds, metavar="SECONDS"),
    as_json: bool = JsonOpt,
) -> None:
    """Point-in-time restore: start a NEW cluster (detached) whose log is the cold segments
    below --at, read from the files in --from, followed by a fresh NativeLoglet from --at.
    Its database replicas replay that log, so `kv status` shows the digest the original had
    at --at. It needs the log's prefix [0, --at): the cold store holds what was migrated;
    positions not migrated yet are only on the live cluster, so either give its DIR with
    --live (they are read from its log, as stored, and copied into the new DIR/cold/) or run
    `delos-ref migrate --below AT` there first. Without --live, a cold store that does not
    cover [0, --at) is refused; with it, so is a range the live log no longer holds (trimmed)
    or does not hold yet (--at past its tail). A cold copy that covers --at only in part is
    copied, up to --at, into the new DIR/cold/.

    JSON: {"dir", "at", "segments": [{"start", "stop", "files", "from"}], "nodes"}, "from"
    being "cold" or "live".
    """
    import functools

    import trio

    from delos_ref.loglet.cold import FileColdStore
    from delos_ref.migrate import RestoreRefused, plan_stop, restore_plan

    source = FileColdStore(cold_from)
    if not cold_from.is_dir():
        raise fail(f"--from {cold_from}: no such directory (a cold store is a cluster's DIR/cold/ or its --cold-dir)")
    if cluster.config_path(directory).exists() or (directory.exists() and any(directory.iterdir())):
        raise fail(f"{directory} is not empty: restore starts a new cluster; choose a new --dir")
    try:
        plan = trio.run(functools.partial(restore_plan, source, at, partial=live is not None))
    except RestoreRefused as e:
        raise fail(str(e)) from None
    except ValueError as e:
        raise fail(f"--from {cold_from}: {e}") from None
    live_start = plan_stop(plan)
    live_entries = _read_live(live, live_start, at, ready_timeout_s) if live is not None and live_start < at else []
    cfg, _ = _prepare_dir(directory, nodes, transport, base_port, False, False, 0, None)
    with _hangup_is_ctrl_c():
        with _undone_on_failure(directory, cfg, False):
            _start(directory, cfg, False)
            _wait_ready(directory, cfg, ready_timeout_s)
            segments = _install_restored(directory, cfg, plan, source, at, ready_timeout_s, live_entries)
    if as_json:
        print_json({"dir": str(directory), "at": at, "segments": segments, "nodes": [n.address for n in cfg.nodes]})
        return
    from_live = f", and [{live_start}, {at}) from the live cluster in {live}" if live_entries else ""
    err.print(f"restored the log below {at} from {cold_from} ({len(plan)} cold segment(s)){from_live} into a new cluster in {directory}; "
              f"stop it with `delos-ref down --dir {directory}`", markup=False, highlight=False)


def _read_live(live: Path, start: int, at: int, timeout_s: float) -> list[bytes]:
    """``restore --live DIR``: the entries ``[start, at)`` of the live cluster's log (the part
    the cold store does not hold), read before the new cluster starts (a refusal starts
    nothing)."""
    import trio

    from delos_ref import ops
    from delos_ref.migrate import RestoreRefused, read_live
    from delos_ref.virtuallog.client import VirtualLogError
    from paxos.register import MetaStoreError

    async def read() -> list[bytes]:
        async with ops.session(str(live), timeout_s=timeout_s, name="restore") as s:
            return await read_live(s.vlog, start, at)

    try:
        return trio.run(read)
    except BaseException as e:
        known = sole_error(e, (RestoreRefused, ops.OpError, VirtualLogError, MetaStoreError, OSError))
        if known is None:
            raise
        raise fail(f"--live {live}: {message_of(known)}") from None


def _install_restored(directory: Path, cfg: cluster.ClusterConfig, plan: list, source: Any, at: int, timeout_s: float, live_entries: list[bytes]) -> list[dict[str, Any]]:
    """Install the restored chain: the cold segments (those of the cold store, then one of
    the entries read from the live cluster, if any), then a fresh NativeLoglet from ``at``."""
    import secrets

    import trio

    from delos_ref import ops
    from delos_ref.loglet.cold import FileColdStore
    from delos_ref.migrate import live_segment, restored_segments
    from delos_ref.process import initial_loglet, open_virtuallog
    from delos_ref.virtuallog.chain import Chain, Segment, encode_chain
    from paxos.register import MetaStoreError
    from transports.codec import decode_value

    async def install() -> list[Segment]:
        target, token = FileColdStore(directory / "cold"), secrets.token_hex(4)
        closed = await restored_segments(plan, source, target, f"restore-{token}")
        if live_entries:
            closed.append(await live_segment(live_entries, at - len(live_entries), target, f"restore-{token}-live"))
        async with open_virtuallog(cfg, "restore", trace_dir=directory) as vlog:
            kind, params = vlog.registry.encode(initial_loglet(cfg))
            await vlog.metastore.write_if(0, encode_chain(Chain(tuple(closed) + (Segment(at, None, kind, params),))))
        async with ops.session(str(directory), timeout_s=timeout_s, name="restore") as s:
            await ops.check_ready(s)
        return closed

    try:
        closed = trio.run(install)
    except BaseException as e:
        known = sole_error(e, (MetaStoreError, ops.OpError, OSError))
        if known is None:
            raise
        raise fail(f"the restored cluster in {directory} started but its chain could not be installed: {message_of(known)}") from None
    n_cold = len(plan)
    return [{"start": seg.start, "stop": seg.stop, "files": len(decode_value(seg.params).files), "from": "cold" if i < n_cold else "live"} for i, seg in enumerate(closed)]


def _foreground(directory: Path, cfg: cluster.ClusterConfig, what: str) -> None:
    """The dashboard until Ctrl-C, SIGTERM or SIGHUP; then stop the nodes that
    ``cluster.json`` names *now* (``restart`` gives a node a new pid)."""
    import trio

    footer = f"{directory}: Ctrl-C stops the cluster; from another shell: delos-ref append/read/kill/... --dir {directory}"
    try:
        trio.run(_watch_until_signal, directory, cfg, f"delos-ref: {what}", footer)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C while stopping
    except BaseException as e:
        if sole_error(e, (OSError,)) is None:  # the terminal went away (EIO): stop all the same
            raise
    finally:
        stopped = cluster.stop_nodes(_current(directory, cfg))
        removed = _remove_netns(directory, cfg)
        with contextlib.suppress(OSError):
            err.print(f"stopped {len(stopped)} node(s) in {directory}{removed}", markup=False, highlight=False)


def _current(directory: Path, cfg: cluster.ClusterConfig) -> cluster.ClusterConfig:
    """``cluster.json`` as it is now (its pids follow ``restart``); ``cfg`` if it is unreadable."""
    try:
        return cluster.load(directory)
    except cluster.ClusterError:
        return cfg


async def _watch_until_signal(directory: Path, cfg: cluster.ClusterConfig, title: str, footer: str) -> None:
    """The live dashboard until Ctrl-C (SIGINT), SIGTERM or SIGHUP, which end it cleanly."""
    import trio

    from cli import dashboard
    from delos_ref.process import open_client

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with open_client(cfg, "watch") as client, trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
            await dashboard.run_live(out, client, str(directory), cfg, title=title, footer=footer)


@app.command(epilog="\b\nExample: delos-ref down --dir .delos-ref")
def down(directory: Path = DirOpt) -> None:
    """Stop every node of the cluster in DIR (SIGTERM, then SIGKILL after 5 s). Data is kept.
    An `up --netns` cluster's namespaces, links, bridge and iptables rules are removed (also
    those left by an `up` that crashed)."""
    try:
        cfg = cluster.load(directory)
    except cluster.ClusterError as e:
        raise fail(str(e))
    stopped = cluster.stop_nodes(cfg)
    left = cluster.live_nodes(cfg)
    if left:
        raise fail(f"could not stop {', '.join(n.id for n in left)}")
    removed = _remove_netns(directory, cfg)
    err.print((f"stopped {len(stopped)} node(s) in {directory}" if stopped else f"no node was running in {directory}") + removed, markup=False, highlight=False)


# ------------------------------------------------------------------------------- status


@app.command(epilog="\b\nExamples:\n  delos-ref status\n  delos-ref status --watch\n  delos-ref status --json | jq '.chain.segments[-1].params.sequencer'")
def status(
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = timeout_option(1.0, "Seconds to wait for each node's answer (and for the MetaStore read and the tail)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Show the live dashboard (as `up` does) until Ctrl-C; the cluster keeps running."),
) -> None:
    """The cluster at a glance: each node's liveness from a real ping over the cluster's
    transport and its roles; the chain (version, segments with ranges, kinds, loglets, seal
    marks) from a linearizable MetaStore read; the active loglet's tail.

    JSON: {"cluster_id", "transport", "nodes": [{"id", "address", "pid", "alive", "roles",
    "process", "configured_roles"}], "metastore": {"version"} or {"version": null, "error"},
    "chain": {"version", "segments": [{"start", "stop", "kind", "sealed", "params"}]} or null,
    "tail": {"position", "sealed"} or null}; on an `up --netns` cluster also "netns": {"tag",
    "bridge", "subnet", "namespaces": {ID: NAME}, "kernel": [the kernel conditions, one line a node]}.
    With --cluster FILE (nodes on other hosts) each node's "process" is "remote" and its "pid"
    null: only its answer says it runs.

    Exit code 0 when every node answers, 1 when none does, 3 when some do not.
    """
    import trio

    from cli import dashboard
    from delos_ref import ops

    if watch:
        try:
            cfg = cluster.load(directory)
            ops.require_running(str(directory), cfg)
        except (cluster.ClusterError, ops.OpError) as e:
            raise fail(str(e))
        footer = f"{directory}: Ctrl-C ends this view (the cluster keeps running)"
        try:
            trio.run(_watch_until_signal, directory, cfg, f"delos-ref status of {directory}", footer)
        except KeyboardInterrupt:
            pass
        return
    report = run_or_fail(lambda: ops.status_report(str(directory), timeout_s=timeout_s), (ops.OpError,))
    if as_json:
        print_json(report)
    else:
        out.print(dashboard.render(report, title=f"delos-ref status of {directory}"))
    alive = sum(1 for n in report["nodes"] if n["alive"])
    if alive == 0:
        raise fail(f"no node of the cluster in {directory} answered: is it running? (`delos-ref up --dir {directory}`)")
    if alive < len(report["nodes"]):
        raise typer.Exit(3)


from cli.ops import register as _register_ops  # noqa: E402 - the operator commands, after status

_register_ops(app)

from cli.deploy import register as _register_deploy  # noqa: E402 - init and bootstrap (clusters across hosts)

_register_deploy(app)


# ---------------------------------------------------------------------------------- sim


@app.command(
    epilog="\b\nExamples:\n  delos-ref sim --workload rpc --seeds 200 --json\n  delos-ref sim --workload rpc --list-bugs\n  delos-ref sim --workload rpc --seeds 50 --bug ignore_rid\n"
    "  delos-ref sim --workload loglet --seed 0 --bug seal_on_minority --minimize   # a minimal failing run\n"
    "  delos-ref sim --workload rpc --seed 0 --bug ignore_rid --schedule 'f=/n=/o=c1@0:11-24,c2@0:'   # replay one"
)
def sim(
    workload: str = typer.Option("rpc", "--workload", "-w", help="Workload to simulate (see --list-workloads)."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Number of seeded runs (default 100; 1 with --schedule)."),
    seed: int = typer.Option(0, "--seed", help="First seed; runs use seed, seed+1, ..."),
    faults: Optional[str] = typer.Option(None, "--faults", help="Comma list of faults, or 'none'. Default: every fault the workload supports."),
    bug: Optional[str] = typer.Option(None, "--bug", help="Turn on a teaching bug switch (see --list-bugs)."),
    list_bugs: bool = typer.Option(False, "--list-bugs", help="List the workload's bug switches and exit."),
    list_workloads: bool = typer.Option(False, "--list-workloads", help="List workloads and exit."),
    stop_at_first: bool = typer.Option(False, "--stop-at-first", help="Stop at the first run with a violation."),
    minimize: bool = typer.Option(
        False, "--minimize", help="Shrink the failing run of --seed to a smallest run that fails the same check (delta debugging over its "
        "faults and client operations); print its replay command and history. Exit 0 when it printed one, 1 if the seed passes."
    ),
    max_runs: int = typer.Option(DEFAULT_MAX_RUNS, "--max-runs", help="With --minimize: at most this many simulated runs."),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="Replay one run with this explicit fault schedule and operation list (as --minimize prints it); replaces --faults."),
    chart_out: Optional[Path] = typer.Option(None, "--chart-out", help="With --minimize: also write the minimal run's message-sequence chart here (a build without the chart renderer says so, exit 2)."),
    as_json: bool = JsonOpt,
) -> None:
    """Run seeded, deterministic simulations of a workload under faults and check them.

    Exit code 1 when any run has a violation; each violation comes with its replay command.
    """
    from delos_ref.sim import harness
    from delos_ref.sim.schedule import BadSchedule

    if list_workloads:
        ws = harness.load_workloads()
        if as_json:
            print_json({name: {"description": w.description, "faults": list(w.faults), "bugs": w.bugs} for name, w in ws.items()})
        else:
            for name, w in ws.items():
                out.print(f"[bold]{escape(name)}[/]: {escape(w.description)}")
        return
    try:
        wl = harness.get_workload(workload)
        if list_bugs:
            if as_json:
                print_json({"workload": wl.name, "bugs": wl.bugs})
            else:
                for name, line in wl.bugs.items():
                    out.print(f"[bold]{escape(name)}[/]: {escape(line)}")
            return
        fault_set = harness.parse_faults(wl, faults)
        harness.check_bug(wl, bug)
        plan = _check_sim_modes(wl, seeds, faults, minimize, max_runs, schedule, chart_out)
    except (harness.UnknownWorkload, harness.BadSimArgument, BadSchedule) as e:
        raise fail(message_of(e), USAGE)
    if minimize:
        raise typer.Exit(run_minimize(wl, seed, fault_set, bug, max_runs, chart_out, as_json))
    try:
        summary = _run_sweep(wl, seeds or (1 if plan else 100), seed, fault_set, bug, stop_at_first, show_progress=not as_json, schedule=plan)
    except BadSchedule as e:
        raise fail(message_of(e), USAGE)
    if as_json:
        print_json(summary)
    else:
        _print_sweep(summary)
    if summary["violations"]:
        raise typer.Exit(1)


def _check_sim_modes(wl: Any, seeds: Optional[int], faults: Optional[str], minimize: bool, max_runs: int, schedule: Optional[str], chart_out: Optional[Path]) -> Any:
    """The options that exclude each other; the parsed ``--schedule`` (or None)."""
    from delos_ref.sim import harness

    if seeds is not None and seeds < 1:
        raise harness.BadSimArgument("--seeds must be at least 1")
    if chart_out is not None and not minimize:
        raise harness.BadSimArgument("--chart-out goes with --minimize")
    if minimize:
        if schedule is not None:
            raise harness.BadSimArgument("give --minimize or --schedule, not both")
        if seeds not in (None, 1):
            raise harness.BadSimArgument("--minimize shrinks one run: give --seed S, not --seeds")
        if max_runs < 2:
            raise harness.BadSimArgument("--max-runs must be at least 2 (the seed and its schedule)")
        if chart_out is not None and not charts_available():
            raise harness.BadSimArgument(CHARTS_UNAVAILABLE)
        if chart_out is not None and chart_out.suffix.lower() not in (".svg", ".html", ".htm"):
            raise harness.BadSimArgument(f"--chart-out {chart_out}: the name must end in .svg or .html")
    if schedule is None:
        return None
    if faults is not None:
        raise harness.BadSimArgument("--schedule says which faults are on: leave out --faults")
    return harness.parse_schedule(wl, schedule)


def _run_sweep(wl: Any, seeds: int, first: int, faults: frozenset[str], bug: Optional[str], stop_at_first: bool, show_progress: bool, schedule: Any = None) -> dict[str, Any]:
    from rich.progress import Progress

    from delos_ref.sim import harness

    if not show_progress or seeds < 20:
        return harness.sweep(wl, seeds=seeds, first_seed=first, faults=faults, bug=bug, stop_at_first=stop_at_first, schedule=schedule)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"sim {wl.name}", total=seeds)
        return harness.sweep(
            wl, seeds=seeds, first_seed=first, faults=faults, bug=bug, stop_at_first=stop_at_first,
            progress=lambda done, total: progress.update(task, completed=done), schedule=schedule,
        )


def _print_sweep(summary: dict[str, Any]) -> None:
    v = summary["violations"]
    colour = "red" if v else "green"
    out.print(
        f"[bold]{escape(summary['workload'])}[/]: {summary['runs']} runs, faults {escape(','.join(summary['faults'])) or 'none'}"
        + (f", bug {escape(summary['bug'])}" if summary["bug"] else "")
        + f": [{colour}]{len(v)} violation(s)[/] ({summary['events_per_s']:.0f} events/s)"
    )
    for item in v[:20]:  # untrusted text: no markup ([events 73..75] is not a style)
        out.print(f"  seed {item['seed']}: {item['what']}\n    replay: {item['replay']}", highlight=False, markup=False)
    if len(v) > 20:
        out.print(f"  ... and {len(v) - 20} more")


# -------------------------------------------------------------------------------- bench


@app.command(epilog="\b\nExamples:\n  delos-ref bench transport --transport tcp --json\n  delos-ref bench metastore --json\n  delos-ref bench append --loglet native --transport tcp --json\n  delos-ref bench append --loglet striped --stripes 3\n  delos-ref bench virtuallog --json\n  delos-ref bench migrate --json   # cold storage: migration speed, appends during it, cold reads\n  delos-ref bench kv --json --base-port 9101 --dir /tmp/kv-bench   # its cluster there; node logs kept\n  delos-ref bench compare --with zookeeper,etcd --clients 1,64 --rounds 3   # make peers installs them\n  delos-ref bench compare --op get --clients 64   # linearizable gets (ZooKeeper's getData is not linearizable)\n  delos-ref bench paper --quick --out /tmp/paper   # the paper's 7 experiments: report.md + figures")
def bench(
    name: str = typer.Argument(..., help="Benchmark name (delos_ref/bench/<name>.py): transport, metastore, append, virtuallog, kv, migrate; or compare (with ZooKeeper and etcd), paper (the paper's evaluation)."),
    transport: str = typer.Option("tcp", "--transport", "-t", help="memory, udp or tcp (what the benchmark supports)."),
    loglet: str = typer.Option("native", "--loglet", help="Loglet kind, for benchmarks that use one."),
    stripes: int = typer.Option(2, "--stripes", help="bench append --loglet striped: measure 1..N stripes (next to one NativeLoglet)."),
    sharded: bool = typer.Option(False, "--sharded", help="bench append --loglet striped: stripes on disjoint LogServer sets (3 nodes per stripe)."),
    seconds: float = typer.Option(2.0, "--seconds", help="Measurement time per case."),
    trace: bool = typer.Option(False, "--trace", help="bench append: start its cluster with up --trace (what writing the nodes' traces costs)."),
    bench_dir: Optional[Path] = typer.Option(None, "--dir", help="Run the benchmark's cluster in this directory (a fresh cluster; its data and node logs stay after the run). Default: a temporary directory, removed afterwards."),
    base_port: Optional[int] = typer.Option(None, "--base-port", help="The benchmark cluster's node i listens on base-port + i - 1 (must be free). Default: the first free ports from 8101."),
    net_delay: Optional[str] = typer.Option(None, "--net-delay", help="Benchmarks on a cluster: hold every message its nodes send this long (5ms, 500us; `delos-ref net delay`): a round trip between nodes takes twice it."),
    with_peers: str = typer.Option("zookeeper,etcd", "--with", help="bench compare: the peers, zookeeper and/or etcd (a missing one is named, with how to install it, and left out)."),
    clients: str = typer.Option("1,64", "--clients", help="bench compare: clients (each with one write in flight) per measurement, comma-separated."),
    rounds: int = typer.Option(3, "--rounds", help="bench compare: interleaved rounds (ratios are their medians)."),
    op: str = typer.Option("put", "--op", help="bench compare: put (peers: setData, put), get (delos-ref's linearizable get; peers: ZooKeeper getData, which is NOT linearizable, and etcd's linearizable range) or append (NativeLoglet appends; peers: their write)."),
    quick: bool = typer.Option(False, "--quick", help="bench paper: every experiment short (all 7 in about 3-5 minutes)."),
    only: Optional[str] = typer.Option(None, "--only", help="bench paper: the experiments to run, e.g. 1,5,7 (default: all 7)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="bench paper: where report.md, results.json and the figures go (required); bench compare: where its plot goes (default ./bench-compare)."),
    profile: Optional[Path] = typer.Option(None, "--profile", help="bench kv: profile every process (client and nodes) while each case is measured, into DIR/<case>-<clients>/<process>.prof and .txt (top 30). Slows the run: its figures are not the benchmark's."),
    as_json: bool = JsonOpt,
) -> None:
    """Measure speed: p50/p99 and throughput next to a baseline measured in the same run.

    Benchmarks on a real cluster (metastore, append, virtuallog, kv, migrate) start their own, in
    --dir on --base-port if given. `compare` runs delos-ref's database puts against real
    3-server ZooKeeper and etcd ensembles in interleaved rounds; `paper` reruns the paper's
    evaluation into --out DIR/report.md (see README, "Reproducing the paper")."""
    from cli import bench_paper

    if name == "compare":
        return bench_paper.compare(with_peers, clients, rounds, seconds, out_dir, as_json, op)
    if name == "paper":
        return bench_paper.paper(quick, only, out_dir, as_json)
    from delos_ref.bench import BadBenchArgument, Placement, get_bench

    try:
        run = get_bench(name)
        if seconds <= 0:
            raise BadBenchArgument("--seconds must be positive")
        if profile is not None and name != "kv":
            raise BadBenchArgument(f"--profile is for bench kv (not {name})")
        if base_port is not None:
            try:
                cluster.check_base_port(base_port, 1)
            except cluster.ClusterError as e:
                raise BadBenchArgument(str(e)) from None
        delay_s = _net_delay(name, net_delay)
    except BadBenchArgument as e:
        raise fail(str(e), 2)
    placement = Placement(bench_dir, base_port, delay_s)
    options = {"transport": transport, "loglet": loglet, "seconds": seconds, "placement": placement, "stripes": stripes, "sharded": sharded, **({"trace": True} if trace else {}), **({"profile": profile} if profile is not None else {})}
    result = bench_paper.run_bench(lambda progress: run(progress=progress, **options), f"bench {name}", as_json)
    if delay_s:
        result["net_delay_ms"] = delay_s * 1000
    if as_json:
        print_json(result)
    else:
        _print_bench(result)


def _net_delay(name: str, text: str | None) -> float:
    """``bench --net-delay``'s seconds (0 without it); BadBenchArgument for a bad one."""
    from cli.net import parse_duration
    from delos_ref.bench import BadBenchArgument

    if text is None:
        return 0.0
    if name == "transport":
        raise BadBenchArgument("--net-delay is for benchmarks on a cluster; bench transport has none")
    try:
        return parse_duration(text)
    except ValueError as e:
        raise BadBenchArgument(f"--net-delay: {e}") from None


def _print_bench(result: dict[str, Any]) -> None:
    m = result["machine"]
    delay = f", {result['net_delay_ms']:g} ms network delay" if result.get("net_delay_ms") else ""
    table = Table(title=f"bench {result['bench']} on {m.get('cpu', '?')} ({m.get('cpus', '?')} cpus){delay}", title_justify="left")
    for col in ("", "case", "outstanding", "p50 us", "p99 us", "ops/s", "cpu us/op"):
        table.add_column(col)
    for label, rows in (("delos-ref", result["results"]), ("baseline", result["baseline"])):
        for r in rows:
            cpu = r.get("cpu_us_per_op", {}).get("total")  # every process of the run, per operation
            table.add_row(label, r["case"], str(r["outstanding"]), f"{r['p50_us']:.1f}" if r["p50_us"] is not None else "-", f"{r['p99_us']:.1f}" if r["p99_us"] is not None else "-", f"{r['ops_per_s']:.0f}", "-" if cpu is None else f"{cpu:.0f}")
    out.print(table)
    if result.get("profile"):
        out.print(f"profiles (one per process and case): {result['profile']}/<case>-<clients>/<process>.prof and .txt", markup=False, highlight=False)


from cli.viz import register as _register_viz  # noqa: E402 - chart and explore

_register_viz(app)

from cli.trace import trace_app  # noqa: E402

app.add_typer(
    trace_app,
    name="trace",
    epilog="\b\nExamples:\n  delos-ref trace check --workload log --seeds 100\n"
    "  delos-ref trace record --workload loglet --seed 7 --out /tmp/loglet-7.ndjson && delos-ref trace check /tmp/loglet-7.ndjson",
)

from cli.kv import kv_app  # noqa: E402  (the `kv` sub-commands)

app.add_typer(kv_app, name="kv")

from cli.net import net_app  # noqa: E402  (the `net` sub-commands: network conditions)

app.add_typer(
    net_app,
    name="net",
    epilog="\b\nExamples:\n  delos-ref net delay 5ms --jitter 1ms\n  delos-ref net loss 2%\n"
    "  delos-ref net partition n1 '|' n2,n3\n  delos-ref net show\n  delos-ref net heal",
)

from cli.lab import lab_app  # noqa: E402  (the `lab` sub-commands: graded labs)

app.add_typer(
    lab_app,
    name="lab",
    epilog="\b\nExamples:\n  delos-ref lab list\n  delos-ref lab start acceptor --dir delos-lab\n"
    "  delos-ref lab check acceptor --dir delos-lab\n  delos-ref lab solution acceptor",
)


from cli.plugin import plugin_app  # noqa: E402  (the `plugin` sub-commands: loglet plugins)

app.add_typer(plugin_app, name="plugin")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
