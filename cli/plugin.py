"""``delos-ref plugin``: the cluster's loglet plugins (``delos_ref/plugins.py``).

``plugin add MODULE`` records a loglet plugin module in ``cluster.json`` and restarts the
running nodes one at a time so that each loads it (appends go on meanwhile); then
``delos-ref reconfigure --loglet KIND`` can move the log onto the plugin's kind. ``plugin
list`` shows the recorded modules and their kinds. A new cluster takes them at start:
``delos-ref up --loglet-module MODULE``.

A module that cannot be imported, is not a loglet plugin, or takes a kind name already
taken is a usage error (exit 2) and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import USAGE, DirOpt, JsonOpt, err, fail, out, print_json, run_or_fail, timeout_option
from delos_ref import cluster

plugin_app = typer.Typer(help="The cluster's loglet plugins: a user's loglet kind, loaded by every node (see docs/tutorial-loglet.md).", no_args_is_help=True)


@plugin_app.command(epilog="\b\nExample: delos-ref plugin add delos_ref.examples.directory_loglet && delos-ref reconfigure --loglet directory")
def add(
    module: str = typer.Argument(..., help="Dotted name of the loglet plugin module (importable by every node: on PYTHONPATH or installed)."),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = timeout_option(20.0, "Seconds to wait for each restarted node to answer."),
) -> None:
    """Record a loglet plugin module in cluster.json, then restart the running nodes one at a
    time (each must answer before the next; a node that sequences the active NativeLoglet
    first hands the log to another sequencer), so that every node loads it.

    JSON: {"module", "kind", "added", "moved": [{"loglet_id", "sequencer"}], "restarted": [{"node", "pid"}]}.
    """
    from delos_ref import ops, plugins

    try:  # a module that cannot be used is refused before anything changes
        cfg = cluster.load(directory)
        ops.check_new_module(cfg.loglet_modules, module)
    except plugins.PluginError as e:
        raise fail(str(e), USAGE)
    except cluster.ClusterError as e:
        raise fail(str(e))
    say = (lambda text: None) if as_json else (lambda text: err.print(text, markup=False, highlight=False))
    report = run_or_fail(lambda: ops.add_loglet_module(str(directory), module, timeout_s=timeout_s, on_step=say), (ops.OpError,))
    if as_json:
        print_json(report)
    elif report["added"]:
        out.print(f"loglet module {module} (kind {report['kind']}) added; {len(report['restarted'])} node(s) restarted with it: `delos-ref reconfigure --loglet {report['kind']}` moves the log onto it", markup=False, highlight=False)
    else:
        out.print(f"loglet module {module} (kind {report['kind']}) was already recorded: nothing changed", markup=False, highlight=False)


@plugin_app.command(name="list", epilog="\b\nExample: delos-ref plugin list --json")
def list_(directory: Path = DirOpt, as_json: bool = JsonOpt) -> None:
    """The loglet plugin modules recorded in cluster.json, with their kinds.

    JSON: [{"module", "kind"}].
    """
    from delos_ref import plugins

    try:
        cfg = cluster.load(directory)
        rows = [{"module": p.module, "kind": p.kind} for p in plugins.load_all(cfg.loglet_modules)]
    except cluster.ClusterError as e:
        raise fail(str(e))
    if as_json:
        print_json(rows)
        return
    for row in rows:
        out.print(f"{row['kind']} ({row['module']})", markup=False, highlight=False)
    if not rows:
        out.print("no loglet modules (add one with `delos-ref plugin add MODULE`)", markup=False, highlight=False)
