"""``delos-ref init`` and ``delos-ref bootstrap``: start a cluster whose nodes run on several hosts.

A local cluster is started by one command, ``up``. A cluster across hosts takes three steps
(``docs/deployment.md``; the cluster file and its checks are ``delos_ref/deploy.py``):

1. ``init --nodes n1=HOST:PORT,... --out cluster.json`` writes the cluster file (fresh id and
   secret, mode 0600), once, on one machine; it is then copied to every host.
2. ``node --id ID --cluster cluster.json --data DIR`` runs each node on its own host
   (``cli/main.py``; a systemd unit in the deployment doc).
3. ``bootstrap --cluster cluster.json`` waits until a majority of the acceptors answers, then
   installs the VirtualLog's first chain -- what ``up`` does after starting its nodes -- and
   checks that the log takes appends. On a cluster that has a chain already it says so and
   exits 0 (a chain is installed once: the MetaStore's conditional write refuses a second).

Every other operator command then takes ``--cluster cluster.json``. Exit codes as every
command's (``cli/common.py``): 1 the operation failed (no majority answered within
``--timeout``), 2 bad usage (a malformed address, a duplicate id or address, an existing
``--out`` without ``--force``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from cli.common import USAGE, DirOpt, JsonOpt, err, fail, print_json, run_or_fail, timeout_option
from delos_ref import cluster, deploy


def init(
    nodes: str = typer.Option(..., "--nodes", metavar="ID=HOST:PORT,...", help="The core nodes: ids and the addresses the other nodes dial (names, IPv4, or IPv6 in brackets: [fd00::1]:7101)."),
    logservers: Optional[str] = typer.Option(None, "--logservers", metavar="ID=HOST:PORT,...", help="Disaggregated layout: LogServer-only nodes; the --nodes then host the acceptors and sequencers."),
    transport: str = typer.Option("tcp", "--transport", "-t", help="tcp or udp."),
    out_path: Path = typer.Option(Path("cluster.json"), "--out", metavar="FILE", help="The cluster file to write (mode 0600: it holds the secret)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file (its cluster's secret is lost)."),
    as_json: bool = JsonOpt,
) -> None:
    """Write a cluster file for nodes on several hosts: a fresh cluster id and secret, and
    each node's id, address and roles. Copy it to every host by a secure channel, start each
    node there with `delos-ref node --cluster FILE --id ID --data DIR`, then run `delos-ref
    bootstrap --cluster FILE` once.

    JSON: {"out", "cluster_id", "transport", "nodes": [{"id", "address", "roles"}]}.
    """
    try:
        cfg = deploy.new_cluster(nodes, logservers, transport)
        deploy.write_cluster_file(out_path, cfg, force)
    except deploy.UsageError as e:
        raise fail(str(e), USAGE)
    if as_json:
        print_json({"out": str(out_path), "cluster_id": cfg.cluster_id, "transport": cfg.transport, "nodes": [{"id": n.id, "address": n.address, "roles": n.roles} for n in cfg.nodes]})
        return
    members = ", ".join(f"{n.id} {n.address}" for n in cfg.nodes)
    err.print(f"wrote {out_path} (mode 0600, it holds the secret): {len(cfg.nodes)} node(s) on {cfg.transport}: {members}; "
              f"copy it to every host securely, start each node with `delos-ref node --cluster {out_path} --id ID --data DIR`, then `delos-ref bootstrap --cluster {out_path}`",
              markup=False, highlight=False)


def bootstrap(
    directory: Path = DirOpt,
    loglet: str = typer.Option("native", "--loglet", help="Loglet kind of the first segment: native, bootstrap or striped (as `up --loglet`)."),
    stripes: int = typer.Option(2, "--stripes", help="With --loglet striped: the number of stripes."),
    timeout_s: float = timeout_option(30.0, "Seconds to wait for a majority of the acceptors, and then for the log to take appends."),
    as_json: bool = JsonOpt,
) -> None:
    """Install the VirtualLog's first chain once a majority of the acceptors answers, then
    check that the log takes appends. A cluster that has a chain already keeps it: the command
    says so and exits 0.

    JSON: {"installed": true|false, "version", "acceptors_answering": [...]}.
    """
    from delos_ref import ops
    from delos_ref.process import initial_loglet
    from paxos.register import MetaStoreError

    try:
        cfg = cluster.load(directory)
        first = initial_loglet(cfg, loglet, stripes)
    except cluster.ClusterError as e:
        raise fail(str(e))
    except ValueError as e:
        raise fail(f"--loglet: {e}", USAGE)
    result = run_or_fail(lambda: _bootstrap(directory, cfg, first, timeout_s), (ops.OpError, MetaStoreError))
    if as_json:
        print_json(result)
    elif result["installed"]:
        err.print(f"bootstrapped: installed the first chain (version {result['version']}) on {cfg.cluster_id}; the log takes appends", markup=False, highlight=False)
    else:
        err.print(f"already bootstrapped: the MetaStore holds a chain (version {result['version']}); left as it is, and the log takes appends", markup=False, highlight=False)


async def _bootstrap(directory: Path, cfg: cluster.ClusterConfig, first: Any, timeout_s: float) -> dict[str, Any]:
    import trio

    from delos_ref import ops
    from delos_ref.process import open_client, virtuallog_on

    async with open_client(cfg, "bootstrap") as client:
        deadline = trio.current_time() + timeout_s
        answering = await _majority_of_acceptors(client, cfg, deadline, timeout_s)
        vlog = virtuallog_on(cfg, client, deadline_s=max(1.0, deadline - trio.current_time()))
        installed = await vlog.bootstrap(first)
        session = ops.OpsSession(str(directory), cfg, client, vlog, timeout_s=1.0)
        while True:  # the loglet's servers may still be starting: retry until the deadline
            try:
                await ops.check_ready(session)
                break
            except ops.OpError as e:
                if trio.current_time() > deadline:
                    raise ops.OpError(f"the chain is {'installed' if installed else 'there'} (version {vlog.version}) but the log does not take appends yet: {e}") from None
                await trio.sleep(0.2)
        return {"installed": installed, "version": vlog.version, "acceptors_answering": answering}


async def _majority_of_acceptors(client: Any, cfg: cluster.ClusterConfig, deadline: float, timeout_s: float) -> list[str]:
    """Ping until a majority of the acceptors answers (their ids); OpError at ``deadline``."""
    import trio

    from delos_ref import ops
    from delos_ref.process import ping_all

    acceptors = cfg.with_role("acceptor")
    need = len(acceptors) // 2 + 1
    while True:
        answers = await ping_all(client, cfg, timeout_s=0.5)
        up = [a for a in acceptors if answers[a] is not None]
        if len(up) >= need:
            return up
        if trio.current_time() > deadline:
            down = [a for a in acceptors if a not in up]
            raise ops.OpError(f"no majority of the acceptors answered within {timeout_s:g}s: {', '.join(down)} did not ({len(up)} of {len(acceptors)}, need {need}); are their nodes started?")
        await trio.sleep(0.2)


def register(app: typer.Typer) -> None:
    """Add ``init`` and ``bootstrap`` to the ``delos-ref`` app."""
    app.command(epilog="\b\nExamples:\n  delos-ref init --nodes n1=10.0.0.1:7101,n2=10.0.0.2:7101,n3=10.0.0.3:7101 --out cluster.json\n"
                "  delos-ref init --nodes 'n1=[fd00::1]:7101,n2=[fd00::2]:7101,n3=[fd00::3]:7101' --transport udp --out c6.json")(init)
    app.command(epilog="\b\nExample: delos-ref bootstrap --cluster cluster.json --timeout 60")(bootstrap)
