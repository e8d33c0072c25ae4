"""``delos-ref``: run local clusters, simulations and benchmarks.

The only module of the project that prints. Every command reports operator errors as one
line on stderr with a non-zero exit code (1 for a failed operation, 2 for bad usage).
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from delos_ref import cluster

app = typer.Typer(
    name="delos-ref",
    help="A reference implementation of virtual consensus (Delos, OSDI 2020).\n\nQuick start: `delos-ref up` (foreground, Ctrl-C stops it), or `delos-ref up --detach` then `delos-ref status`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console()
err = Console(stderr=True)

DirOpt = typer.Option(cluster.DEFAULT_DIR, "--dir", help="Cluster directory (holds cluster.json and each node's data).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


# --------------------------------------------------------------------------------- node


@app.command(epilog="Example: delos-ref node --dir .delos-ref --id n1   (normally started by `delos-ref up`)")
def node(
    directory: Path = DirOpt,
    node_id: str = typer.Option(..., "--id", help="This node's id in cluster.json."),
) -> None:
    """Run one node of the cluster in DIR (in the foreground, until SIGTERM or Ctrl-C)."""
    import trio

    from delos_ref.process import NodeStartError, run_node
    from delos_ref.storage import StorageError

    try:
        trio.run(run_node, str(directory), node_id)
    except (cluster.ClusterError, NodeStartError, StorageError) as e:
        raise fail(str(e))
    except KeyboardInterrupt:
        pass


# ------------------------------------------------------------------------------ up/down


def _prepare_dir(directory: Path, nodes: int, transport: str, base_port: int, trace: bool, fresh: bool) -> tuple[cluster.ClusterConfig, bool]:
    """Refuse a live directory; recover a stale one; or make a new cluster config."""
    if cluster.config_path(directory).exists():
        cfg = cluster.load(directory)
        live = cluster.live_nodes(cfg)
        if live:
            ids = ", ".join(f"{n.id} (pid {n.pid})" for n in live)
            raise fail(f"a cluster is already running in {directory}: {ids}; stop it with `delos-ref down --dir {directory}`")
        if not fresh:
            return cfg, True
        shutil.rmtree(directory)
    elif directory.exists() and any(directory.iterdir()):
        raise fail(f"{directory} exists and is not a delos-ref cluster directory (no {cluster.CLUSTER_FILE}); choose another --dir")
    directory.mkdir(parents=True, exist_ok=True)
    return cluster.new_config(nodes, transport, base_port, trace=trace), False


def _start(directory: Path, cfg: cluster.ClusterConfig) -> None:
    busy = [n for n in cfg.nodes if not cluster.port_free(n.host, n.port, cfg.transport)]
    if busy:
        ports = ", ".join(f"{n.address}" for n in busy)
        raise fail(f"port in use ({cfg.transport}): {ports}; choose another --base-port or stop what holds it")
    cluster.save(directory, cfg)
    for n in cfg.nodes:
        n.pid = cluster.spawn_node(directory, n.id)
    cluster.save(directory, cfg)


def _wait_ready(directory: Path, cfg: cluster.ClusterConfig, timeout_s: float) -> dict[str, Any]:
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
        n = dead[0]
        log = cluster.node_dir(directory, n.id) / "node.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        raise fail(f"node {n.id} exited during start-up: {tail[0] if tail else 'no output'} (see {log})")
    missing = [k for k, v in answers.items() if v is None]
    if missing:
        cluster.stop_nodes(cfg)
        raise fail(f"nodes {', '.join(missing)} did not answer within {timeout_s:g}s; see their node.log in {directory}")
    return answers


def _bootstrap(directory: Path, cfg: cluster.ClusterConfig) -> None:
    """Install the VirtualLog's first chain (a no-op on a restarted cluster, which keeps its own)."""
    import trio

    from delos_ref.process import bootstrap_log
    from paxos.register import MetaStoreError

    try:
        trio.run(bootstrap_log, cfg)
    except MetaStoreError as e:
        cluster.stop_nodes(cfg)
        raise fail(f"the cluster in {directory} started but its MetaStore did not answer: {e}")


@app.command(epilog="Examples:\n\n  delos-ref up                      # 3 nodes on TCP, live view, Ctrl-C stops\n\n  delos-ref up --detach --nodes 5 --transport udp --dir /tmp/c1")
def up(
    nodes: int = typer.Option(3, "--nodes", "-n", help="Number of node processes."),
    transport: str = typer.Option("tcp", "--transport", "-t", help="tcp or udp."),
    directory: Path = DirOpt,
    base_port: int = typer.Option(cluster.DEFAULT_BASE_PORT, "--base-port", help="Node i listens on base-port + i - 1 (127.0.0.1)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Return once every node answers; leave the cluster running."),
    trace: bool = typer.Option(False, "--trace", help="Write each node's trace events to DIR/<node>/trace.ndjson."),
    fresh: bool = typer.Option(False, "--fresh", help="Wipe a stale (stopped) cluster directory instead of restarting it with its data."),
    ready_timeout_s: float = typer.Option(20.0, "--ready-timeout", help="Seconds to wait for every node to answer."),
) -> None:
    """Start a local cluster of node processes (foreground with a live view, or --detach).

    A directory whose nodes are running is refused; a stale one (its processes are gone) is
    restarted with its data, unless --fresh.
    """
    try:
        cfg, recovered = _prepare_dir(directory, nodes, transport, base_port, trace, fresh)
        _start(directory, cfg)
    except cluster.ClusterError as e:
        raise fail(str(e))
    answers = _wait_ready(directory, cfg, ready_timeout_s)
    _bootstrap(directory, cfg)
    what = "recovered stale cluster" if recovered else "cluster up"
    if detach:
        err.print(f"{what}: {len(cfg.nodes)} nodes on {cfg.transport} in {directory} ({', '.join(n.address for n in cfg.nodes)}); stop it with `delos-ref down --dir {directory}`")
        return
    _foreground(directory, cfg, what, answers)


def _foreground(directory: Path, cfg: cluster.ClusterConfig, what: str, answers: dict[str, Any]) -> None:
    from rich.live import Live

    import trio

    from delos_ref.process import open_client, ping_all

    async def live_view() -> None:
        # Ctrl-C (SIGINT) and SIGTERM end the view cleanly; the finally below stops the nodes.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with open_client(cfg, "up") as client, trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(stop_on_signal)
                with Live(_status_table(cfg, answers, what), console=out, refresh_per_second=4, transient=False) as live:
                    while True:
                        await trio.sleep(1.0)
                        now = await ping_all(client, cfg, timeout_s=0.5, want_stats=True)
                        live.update(_status_table(cfg, now, what))

    try:
        trio.run(live_view)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C while stopping
    finally:
        stopped = cluster.stop_nodes(cfg)
        err.print(f"stopped {len(stopped)} node(s) in {directory}")


def _status_table(cfg: cluster.ClusterConfig, answers: dict[str, Any], title: str) -> Table:
    table = Table(title=f"delos-ref: {title} ({cfg.transport}) - Ctrl-C stops the cluster", title_justify="left")
    for col in ("node", "address", "pid", "alive", "roles", "msgs in", "msgs out"):
        table.add_column(col)
    for n in cfg.nodes:
        pong = answers.get(n.id)
        stats = (pong.info or {}).get("transport", {}) if pong else {}
        table.add_row(
            n.id,
            n.address,
            str(n.pid or "-"),
            "[green]yes[/]" if pong else "[red]no[/]",
            ", ".join(pong.roles) if pong else "-",
            str(stats.get("received", "")),
            str(stats.get("sent", "")),
        )
    return table


@app.command(epilog="Example: delos-ref down --dir .delos-ref")
def down(directory: Path = DirOpt) -> None:
    """Stop every node of the cluster in DIR (SIGTERM, then SIGKILL after 5 s). Data is kept."""
    try:
        cfg = cluster.load(directory)
    except cluster.ClusterError as e:
        raise fail(str(e))
    stopped = cluster.stop_nodes(cfg)
    left = cluster.live_nodes(cfg)
    if left:
        raise fail(f"could not stop {', '.join(n.id for n in left)}")
    err.print(f"stopped {len(stopped)} node(s) in {directory}" if stopped else f"no node was running in {directory}")


# ------------------------------------------------------------------------------- status


@app.command(epilog="Example: delos-ref status --json")
def status(
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = typer.Option(1.0, "--timeout", help="Seconds to wait for each node's answer (and for the MetaStore read)."),
) -> None:
    """Each node's liveness from a real ping over the cluster's transport, and the MetaStore
    register's version from a linearizable read (null, with the error, without a quorum).

    Exit code 0 when every node answers, 1 when none does, 3 when some do not.
    """
    import trio

    from delos_ref.process import open_client, ping_all

    try:
        cfg = cluster.load(directory)
    except cluster.ClusterError as e:
        raise fail(str(e))

    async def read_register(client: Any) -> dict[str, Any]:
        # A linearizable read of the MetaStore register (a majority must answer in time).
        from paxos.register import ClientTimeouts, MetaStoreClient, MetaStoreError

        timeouts = ClientTimeouts(deadline_s=timeout_s, call_timeout_s=min(timeout_s, 0.5))
        store = MetaStoreClient(client.endpoint, [n.id for n in cfg.nodes], client.rng("paxos"), client.node_id, timeouts=timeouts)
        try:
            version, _ = await store.read()
        except MetaStoreError as e:
            return {"version": None, "error": str(e)}
        return {"version": version}

    async def ask() -> tuple[dict[str, Any], dict[str, Any]]:
        async with open_client(cfg) as client:
            answers = await ping_all(client, cfg, timeout_s=timeout_s)
            return answers, await read_register(client)

    answers, metastore = trio.run(ask)
    report = {
        "cluster_id": cfg.cluster_id,
        "transport": cfg.transport,
        "nodes": [
            {"id": n.id, "address": n.address, "pid": n.pid, "alive": answers[n.id] is not None, "roles": list(answers[n.id].roles) if answers[n.id] else []}
            for n in cfg.nodes
        ],
        "metastore": metastore,
    }
    if as_json:
        print_json(report)
    else:
        out.print(_status_table(cfg, answers, f"cluster {cfg.cluster_id}"))
        if metastore["version"] is not None:
            out.print(f"metastore: register at version {metastore['version']}", highlight=False)
        else:
            from rich.markup import escape

            out.print(f"metastore: [red]unavailable[/] ({escape(metastore['error'])})", highlight=False)
    alive = sum(1 for n in report["nodes"] if n["alive"])
    if alive == 0:
        raise fail(f"no node of the cluster in {directory} answered: is it running? (`delos-ref up --dir {directory}`)")
    if alive < len(cfg.nodes):
        raise typer.Exit(3)


# ---------------------------------------------------------------------------------- sim


@app.command(epilog="Examples:\n\n  delos-ref sim --workload rpc --seeds 200 --json\n\n  delos-ref sim --workload rpc --list-bugs\n\n  delos-ref sim --workload rpc --seeds 50 --bug ignore_rid")
def sim(
    workload: str = typer.Option("rpc", "--workload", "-w", help="Workload to simulate (see --list-workloads)."),
    seeds: int = typer.Option(100, "--seeds", help="Number of seeded runs."),
    seed: int = typer.Option(0, "--seed", help="First seed; runs use seed, seed+1, ..."),
    faults: Optional[str] = typer.Option(None, "--faults", help="Comma list of faults, or 'none'. Default: every fault the workload supports."),
    bug: Optional[str] = typer.Option(None, "--bug", help="Turn on a teaching bug switch (see --list-bugs)."),
    list_bugs: bool = typer.Option(False, "--list-bugs", help="List the workload's bug switches and exit."),
    list_workloads: bool = typer.Option(False, "--list-workloads", help="List workloads and exit."),
    stop_at_first: bool = typer.Option(False, "--stop-at-first", help="Stop at the first run with a violation."),
    as_json: bool = JsonOpt,
) -> None:
    """Run seeded, deterministic simulations of a workload under faults and check them.

    Exit code 1 when any run has a violation; each violation comes with its replay command.
    """
    from delos_ref.sim import harness

    if list_workloads:
        ws = harness.load_workloads()
        if as_json:
            print_json({name: {"description": w.description, "faults": list(w.faults), "bugs": w.bugs} for name, w in ws.items()})
        else:
            for name, w in ws.items():
                out.print(f"[bold]{name}[/]: {w.description}")
        return
    try:
        wl = harness.get_workload(workload)
        if list_bugs:
            if as_json:
                print_json({"workload": wl.name, "bugs": wl.bugs})
            else:
                for name, line in wl.bugs.items():
                    out.print(f"[bold]{name}[/]: {line}")
            return
        fault_set = harness.parse_faults(wl, faults)
        harness.check_bug(wl, bug)
        if seeds < 1:
            raise harness.BadSimArgument("--seeds must be at least 1")
    except (harness.UnknownWorkload, harness.BadSimArgument) as e:
        raise fail(str(e).strip("'\""), 2)
    summary = _run_sweep(wl, seeds, seed, fault_set, bug, stop_at_first, show_progress=not as_json)
    if as_json:
        print_json(summary)
    else:
        _print_sweep(summary)
    if summary["violations"]:
        raise typer.Exit(1)


def _run_sweep(wl: Any, seeds: int, first: int, faults: frozenset[str], bug: Optional[str], stop_at_first: bool, show_progress: bool) -> dict[str, Any]:
    from rich.progress import Progress

    from delos_ref.sim import harness

    if not show_progress or seeds < 20:
        return harness.sweep(wl, seeds=seeds, first_seed=first, faults=faults, bug=bug, stop_at_first=stop_at_first)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"sim {wl.name}", total=seeds)
        return harness.sweep(
            wl, seeds=seeds, first_seed=first, faults=faults, bug=bug, stop_at_first=stop_at_first,
            progress=lambda done, total: progress.update(task, completed=done),
        )


def _print_sweep(summary: dict[str, Any]) -> None:
    v = summary["violations"]
    colour = "red" if v else "green"
    out.print(
        f"[bold]{summary['workload']}[/]: {summary['runs']} runs, faults {','.join(summary['faults']) or 'none'}"
        + (f", bug {summary['bug']}" if summary["bug"] else "")
        + f": [{colour}]{len(v)} violation(s)[/] ({summary['events_per_s']:.0f} events/s)"
    )
    for item in v[:20]:
        out.print(f"  seed {item['seed']}: {item['what']}\n    replay: {item['replay']}", highlight=False)
    if len(v) > 20:
        out.print(f"  ... and {len(v) - 20} more")


# -------------------------------------------------------------------------------- bench


@app.command(epilog="Examples:\n\n  delos-ref bench transport --transport tcp --json\n\n  delos-ref bench metastore --json\n\n  delos-ref bench append --loglet native --transport tcp --json\n\n  delos-ref bench kv --json")
def bench(
    name: str = typer.Argument(..., help="Benchmark name (delos_ref/bench/<name>.py): transport, metastore, append, kv."),
    transport: str = typer.Option("tcp", "--transport", "-t", help="memory, udp or tcp (what the benchmark supports)."),
    loglet: str = typer.Option("native", "--loglet", help="Loglet kind, for benchmarks that use one."),
    seconds: float = typer.Option(2.0, "--seconds", help="Measurement time per case."),
    as_json: bool = JsonOpt,
) -> None:
    """Measure speed: p50/p99 and throughput next to a baseline measured in the same run."""
    import trio
    from rich.progress import Progress

    from delos_ref.bench import BadBenchArgument, get_bench

    try:
        run = get_bench(name)
        if seconds <= 0:
            raise BadBenchArgument("--seconds must be positive")
        options = {"transport": transport, "loglet": loglet, "seconds": seconds}
        if as_json:
            result = trio.run(lambda: run(progress=None, **options))
        else:
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task(f"bench {name}", total=1.0)
                result = trio.run(lambda: run(progress=lambda f: progress.update(task, completed=f), **options))
    except BadBenchArgument as e:
        raise fail(str(e), 2)
    if as_json:
        print_json(result)
    else:
        _print_bench(result)


def _print_bench(result: dict[str, Any]) -> None:
    m = result["machine"]
    table = Table(title=f"bench {result['bench']} on {m.get('cpu', '?')} ({m.get('cpus', '?')} cpus)", title_justify="left")
    for col in ("", "case", "outstanding", "p50 us", "p99 us", "ops/s"):
        table.add_column(col)
    for label, rows in (("delos-ref", result["results"]), ("baseline", result["baseline"])):
        for r in rows:
            table.add_row(label, r["case"], str(r["outstanding"]), f"{r['p50_us']:.1f}" if r["p50_us"] is not None else "-", f"{r['p99_us']:.1f}" if r["p99_us"] is not None else "-", f"{r['ops_per_s']:.0f}")
    out.print(table)


from cli.kv import kv_app  # noqa: E402  (the `kv` sub-commands)

app.add_typer(kv_app, name="kv")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
