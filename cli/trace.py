"""``delos-ref trace``: record, check and validate NDJSON traces against the TLA+ specs.

* ``trace record`` writes one seeded simulation's trace to a file;
* ``trace check`` replays traces against the Python transcriptions of the specs
  (:mod:`delos_ref.tracecheck`): files (or a cluster directory started with ``up --trace``),
  or many seeded simulations of a workload at once;
* ``trace validate`` runs TLC on ``specs/Trace<Spec>.tla`` over a trace, when TLC is
  installed (``TLA2TOOLS_JAR`` or ``tlc`` on PATH), and otherwise says how to get it.

Exit codes: 0 accepted, 1 a trace was rejected (not a behaviour of the spec) or a simulated
run raised, 2 bad usage or a tool error (TLC missing, a spec that does not parse, for
``validate``), 3 truncated: a checker stopped at an event involving a node after that node's
crash cut (see :mod:`delos_ref.tracecheck.ndjson`), which a lost trace line can explain.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from cli.common import message_of

trace_app = typer.Typer(
    help="Record, check and validate NDJSON traces against the TLA+ specs (specs/Trace*.tla).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
#: Exit code of a trace whose check stopped at a crash cut (not shown to violate the spec).
TRUNCATED = 3

out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@trace_app.command(epilog="Example: delos-ref trace record --workload loglet --seed 7 --out /tmp/loglet-7.ndjson")
def record(
    workload: str = typer.Option(..., "--workload", "-w", help="Simulator workload (metastore, loglet, log, ...)."),
    seed: int = typer.Option(0, "--seed", help="The run's seed."),
    faults: Optional[str] = typer.Option(None, "--faults", help="Comma list of faults, or 'none'. Default: every fault the workload supports."),
    bug: Optional[str] = typer.Option(None, "--bug", help="A teaching bug switch (see `delos-ref sim --workload W --list-bugs`)."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Where to write the NDJSON trace."),
) -> None:
    """Run one seeded simulation and write its trace (every node's events, in order) as NDJSON."""
    from delos_ref.sim import harness

    try:
        wl = harness.get_workload(workload)
        fault_set = harness.parse_faults(wl, faults)
        harness.check_bug(wl, bug)
    except (harness.UnknownWorkload, harness.BadSimArgument) as e:
        raise _fail(message_of(e), 2)
    result = harness.run_seed(wl, harness.RunConfig(seed, fault_set, bug, keep_trace=True))
    assert result.trace is not None
    with open(out_path, "w") as fp:
        for event in result.trace:
            fp.write(json.dumps(event, sort_keys=True) + "\n")
    out.print(f"{len(result.trace)} events -> {out_path}" + (f" (the simulator's checks found {len(result.violations)} violation(s))" if result.violations else ""), highlight=False)


@trace_app.command(
    epilog="Examples:\n\n  delos-ref trace check --workload metastore --seeds 500\n\n"
    "  delos-ref trace check --workload loglet --seeds 50 --bug sequencer_acks_before_majority\n\n"
    "  delos-ref trace check --spec NativeLoglet /tmp/loglet-7.ndjson\n\n"
    "  delos-ref trace check --spec MetaStorePaxos --dir .delos-ref   (a cluster started with up --trace)"
)
def check(
    paths: list[Path] = typer.Argument(None, help="Trace files (NDJSON; several are merged by time), or cluster directories."),
    spec: Optional[str] = typer.Option(None, "--spec", "-s", help="MetaStorePaxos, NativeLoglet or VirtualLog (for trace files; default: all three)."),
    cluster_dir: Optional[Path] = typer.Option(None, "--dir", help="A cluster directory (running or stopped): check its nodes' and clients' trace files."),
    workload: Optional[str] = typer.Option(None, "--workload", "-w", help="Instead of files: run seeded simulations of this workload and check their traces."),
    seeds: int = typer.Option(100, "--seeds", help="With --workload: number of seeded runs."),
    seed: int = typer.Option(0, "--seed", help="With --workload: first seed."),
    faults: Optional[str] = typer.Option(None, "--faults", help="With --workload: comma list of faults, or 'none'."),
    bug: Optional[str] = typer.Option(None, "--bug", help="With --workload: a teaching bug switch; its traces should be rejected."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Replay traces against the Python transcriptions of the specs; exit 1 if one is rejected,
    3 if a check stopped at a crash cut (truncated: see ``delos_ref/tracecheck/ndjson.py``)."""
    from delos_ref import tracecheck
    from delos_ref.tracecheck.ndjson import BadTrace, load_traces_report
    from delos_ref.tracecheck.run import spec_name

    if workload is not None:
        if paths or cluster_dir:
            raise _fail("give either --workload or trace files, not both", 2)
        if seeds < 1:
            raise _fail("--seeds must be at least 1", 2)
        from delos_ref.sim import harness

        try:
            summary = tracecheck.check_workload(workload, seeds=seeds, first_seed=seed, faults=faults, bug=bug)
        except (harness.UnknownWorkload, harness.BadSimArgument, KeyError) as e:
            raise _fail(message_of(e), 2)
        if as_json:
            _print_json(summary)
        else:
            n = len(summary["rejected"])
            colour = "red" if n else "green"
            out.print(
                f"[bold]{summary['workload']}[/]: {summary['runs']} traces, faults {','.join(summary['faults']) or 'none'}"
                + (f", bug {bug}" if bug else "")
                + f": [{colour}]{n} rejected[/], {summary['accepted']} accepted"
                + f" (the simulator's own checks flagged {summary['sim_violations']}; {summary['wall_s']:.1f} s)"
            )
            for item in summary["rejected"][:10]:
                out.print(f"  seed {item['seed']}: {escape(item['why'])}", highlight=False, soft_wrap=True)
            if n > 10:
                out.print(f"  ... and {n - 10} more")
            for item in summary["crashed"]:
                out.print(f"  seed {item['seed']}: [red]the simulation itself raised[/] {escape(str(item['error']))}", highlight=False, soft_wrap=True)
        if summary["rejected"] or summary["crashed"]:
            raise typer.Exit(1)
        return
    sources = list(paths or []) + ([cluster_dir] if cluster_dir else [])
    if not sources:
        raise _fail("give trace files, --dir, or --workload (see --help)", 2)
    try:
        specs = [spec_name(spec)] if spec else list(tracecheck.CHECKERS)
        loaded = load_traces_report(sources)
    except (KeyError, BadTrace, OSError) as e:
        raise _fail(message_of(e), 2)
    events = loaded.events
    results: dict[str, Any] = {}
    for name in specs:
        try:
            results[name] = {"verdict": "accepted", "steps": tracecheck.check_events(name, events)}
        except tracecheck.TraceViolation as v:
            why = loaded.truncation(v.event)
            results[name] = {"verdict": "truncated", "why": str(v), "truncated": why} if why else {"verdict": "rejected", "why": str(v)}
    if as_json:
        _print_json({"events": len(events), "notes": loaded.notes, "specs": results})
    else:
        for note in loaded.notes:
            out.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
        for name, r in results.items():
            if r["verdict"] == "accepted" and not r["steps"]:
                out.print(f"[bold]{name}[/]: no events of this spec in {len(events)} events")
            elif r["verdict"] == "accepted":
                out.print(f"[bold]{name}[/]: [green]accepted[/] ({sum(r['steps'].values())} steps over {len(events)} events)")
            elif r["verdict"] == "truncated":
                out.print(f"[bold]{name}[/]: [yellow]truncated[/]: {r['truncated']}. The checker stopped at: {r['why']}", highlight=False, soft_wrap=True)
            else:
                out.print(f"[bold]{name}[/]: [red]rejected[/]: {escape(r['why'])}", highlight=False, soft_wrap=True)
    verdicts = {r["verdict"] for r in results.values()}
    if "rejected" in verdicts:
        raise typer.Exit(1)
    if "truncated" in verdicts:
        raise typer.Exit(TRUNCATED)


@trace_app.command(
    epilog="Examples:\n\n  delos-ref trace validate NativeLoglet /tmp/loglet-7.ndjson\n\n"
    "  TLA2TOOLS_JAR=~/tla2tools.jar TLA_COMMUNITY_JAR=~/CommunityModules-deps.jar delos-ref trace validate specs/TraceMetaStorePaxos.tla /tmp/ms-3.ndjson\n\n"
    "  delos-ref trace validate VirtualLog --dir .delos-ref   (a cluster started with up --trace)\n\n"
    "  delos-ref trace validate VirtualLog /tmp/log-1.ndjson --prepare-only /tmp/log-1.tla.ndjson\n\n"
    "Exit codes: 0 accepted, 1 rejected (a bounded report: the trace line, the action expected, "
    "the failed condition, the last state against the one before), 2 a tool error (TLC missing, "
    "a spec that does not parse, an unreadable trace)."
)
def validate(
    spec: str = typer.Argument(..., help="MetaStorePaxos, NativeLoglet or VirtualLog (specs/Trace<Spec>.tla), or the path of a Trace*.tla (its directory's modules are used)."),
    paths: list[Path] = typer.Argument(None, help="Trace files (merged by time) or cluster directories."),
    cluster_dir: Optional[Path] = typer.Option(None, "--dir", help="A cluster directory: validate its node and client trace files."),
    prepare_only: Optional[Path] = typer.Option(None, "--prepare-only", help="Only write the prepared trace (what the Trace spec reads) here."),
    keep: bool = typer.Option(False, "--keep", help="Keep TLC's working directory (the prepared trace, the specs, TLC's whole output in tlc.out) and print its path."),
) -> None:
    """Validate a trace with TLC: is it a behaviour of the spec (specs/Trace<Spec>.tla)?"""
    from delos_ref.tracecheck.ndjson import BadTrace, load_traces_report
    from delos_ref.tracecheck.tla import SpecError, TLCFailed, TLCUnavailable, prepare, resolve_spec, validate_with_tlc
    from delos_ref.tracecheck.virtuallog import ChainDecodeError

    sources = list(paths or []) + ([cluster_dir] if cluster_dir else [])
    if not sources:
        raise _fail("give trace files or --dir (see --help)", 2)
    try:
        name = resolve_spec(spec)[0]
        loaded = load_traces_report(sources)
    except SpecError as e:
        raise _fail(str(e), 2)
    except (KeyError, BadTrace, OSError) as e:
        raise _fail(message_of(e), 2)
    events = loaded.events
    for note in loaded.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    try:
        if prepare_only is not None:
            with open(prepare_only, "w") as fp:
                for line in prepare(name, events):
                    fp.write(json.dumps(line, sort_keys=True) + "\n")
            out.print(f"prepared trace for Trace{name}.tla -> {prepare_only}", highlight=False)
            return
        verdict = validate_with_tlc(spec, events, keep=keep)
    except ChainDecodeError as e:
        raise _fail(f"cannot prepare the trace: {e}", 2)
    except TLCUnavailable as e:
        raise _fail(str(e), 2)
    except SpecError as e:
        raise _fail(f"spec does not parse: {e}", 2)
    except TLCFailed as e:
        raise _fail(str(e), 2)
    if verdict.kept is not None:
        err.print(f"TLC's working directory (kept): {verdict.kept}", highlight=False, soft_wrap=True)
    if verdict.accepted:
        out.print(f"[bold]{verdict.report.split(':', 1)[0]}[/]: [green]{verdict.report.split(': ', 1)[1]}[/]", highlight=False)
        return
    truncated = loaded.truncation(verdict.event)
    sys.stdout.write(verdict.report + "\n")
    if truncated:
        out.print(f"[yellow]truncated[/]: {truncated}", highlight=False, soft_wrap=True)
        raise typer.Exit(TRUNCATED)
    raise typer.Exit(1)
