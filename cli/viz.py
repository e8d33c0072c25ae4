"""``delos-ref chart`` and ``delos-ref explore``: pictures of a run (``delos_ref/viz``).

Both take the run the same way -- a seed of a simulator workload (re-run deterministically),
trace files, or a cluster directory started with ``up --trace`` -- and write one file: a
chart (``.svg``, or ``.html`` wrapping it), or the explorer page (``.html``). Exit codes: 0
written (also for a run with violations: the picture shows them), 2 bad usage (no or two
sources, an unknown workload or bug, an unreadable trace, a window outside the run or longer
than a chart holds, an output name that is not .svg/.html).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from cli.common import USAGE, fail, message_of, out, print_json

SOURCE_HELP = "Give one source: --workload W --seed S [--bug B], trace FILE(s), or --dir DIR."


def _load(workload: Optional[str], seed: Optional[int], faults: Optional[str], bug: Optional[str], files: list[Path], directory: Optional[Path]) -> Any:
    """The run to draw, from exactly one source; a usage error otherwise."""
    from delos_ref.sim import harness
    from delos_ref.tracecheck.ndjson import BadTrace
    from delos_ref.viz import sources

    given = [bool(workload), bool(files), directory is not None]
    if sum(given) != 1:
        raise fail(SOURCE_HELP, USAGE)
    if workload is not None:
        if seed is None:
            raise fail("--workload needs --seed S (the seed to re-run)", USAGE)
        try:
            return sources.simulated(workload, seed, faults=faults, bug=bug)
        except (harness.UnknownWorkload, harness.BadSimArgument) as e:
            raise fail(message_of(e), USAGE)
    if seed is not None or bug is not None or faults is not None:
        raise fail("--seed, --bug and --faults go with --workload", USAGE)
    try:
        return sources.from_traces(files if files else [directory])[0]
    except (BadTrace, OSError, ValueError) as e:
        raise fail(message_of(e), USAGE)


def _focus(values: Optional[list[str]], run: Any) -> Optional[list[str]]:
    if not values:
        return None
    from delos_ref.viz.model import lanes_of

    wanted = [n for v in values for n in v.split(",") if n]
    known = set(lanes_of(run.events))
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise fail(f"--focus: no lane {', '.join(unknown)} in this run; lanes: {', '.join(lanes_of(run.events))}", USAGE)
    return wanted


def _window(start: Optional[int], stop: Optional[int], n: int) -> Optional[tuple[int, int]]:
    if start is None and stop is None:
        return None
    lo, hi = start if start is not None else 0, stop if stop is not None else n - 1
    if not (0 <= lo <= hi < n):
        raise fail(f"the window --from-event {lo} --to-event {hi} is not within the run's events 0..{n - 1}", USAGE)
    return lo, hi


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as e:
        raise fail(f"cannot write {path}: {e.strerror or e}", USAGE)


def _summary(path: Path, run: Any, started: float, as_json: bool, extra: dict[str, Any]) -> None:
    info = {
        "out": str(path),
        "events": len(run.events),
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 3),
        "violations": [{"event": v.index, "by": v.by, "what": v.what} for v in run.violations],
        **({"replay": run.replay} if run.replay else {}),
        **extra,
    }
    if as_json:
        print_json(info)
        return
    out.print(f"{info['events']} events -> {path} ({info['bytes']:,} bytes, {info['seconds']:.1f} s)", highlight=False)
    for v in run.violations[:10]:
        where = f"event {v.index}" if v.index is not None else "after the run"
        out.print(f"  violation ({v.by}, {where}): {v.what}", highlight=False, markup=False)
    if len(run.violations) > 10:
        out.print(f"  ... and {len(run.violations) - 10} more", highlight=False)


WorkloadOpt = typer.Option(None, "--workload", "-w", help="Re-run a seed of this simulator workload (see `delos-ref sim --list-workloads`).")
SeedOpt = typer.Option(None, "--seed", help="With --workload: the seed to re-run.")
FaultsOpt = typer.Option(None, "--faults", help="With --workload: comma list of faults, or 'none' (default: all the workload supports, as `sim`).")
BugOpt = typer.Option(None, "--bug", help="With --workload: a teaching bug switch (see `delos-ref sim --workload W --list-bugs`).")
FilesArg = typer.Argument(None, metavar="FILE", help="NDJSON trace files (several are merged by time).", show_default=False)
TraceDirOpt = typer.Option(None, "--dir", metavar="DIR", help="A cluster directory started with `up --trace`: its nodes' and clients' traces.")
JsonFlag = typer.Option(False, "--json", help="Print a JSON summary (out, events, bytes, seconds, violations).")


def chart(
    files: Optional[list[Path]] = FilesArg,
    workload: Optional[str] = WorkloadOpt,
    seed: Optional[int] = SeedOpt,
    faults: Optional[str] = FaultsOpt,
    bug: Optional[str] = BugOpt,
    directory: Optional[Path] = TraceDirOpt,
    from_event: Optional[int] = typer.Option(None, "--from-event", metavar="A", help="Draw from this event number (as the chart's gutter and the explorer number them)."),
    to_event: Optional[int] = typer.Option(None, "--to-event", metavar="B", help="Draw up to this event number (inclusive)."),
    focus: Optional[list[str]] = typer.Option(None, "--focus", metavar="NODE[,NODE...]", help="Draw only these nodes' lanes (repeat, or a comma list); their messages with others come from an '(others)' lane."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The file to write: NAME.svg (the chart) or NAME.html (the chart in a page)."),
    as_json: bool = JsonFlag,
) -> None:
    """Draw a message-sequence chart of a run: lanes per node and client, time downwards.

    Arrows are messages (a cross: never delivered), dots protocol steps with their key fields,
    bars client operations coloured by outcome; crashes, restarts and partitions are drawn,
    and the event where a checker found a violation is marked red. See docs/charts.md.
    """
    from delos_ref.viz.chart import ChartTooLong, render_chart_html, render_svg

    suffix = out_path.suffix.lower()
    if suffix not in (".svg", ".html", ".htm"):
        raise fail(f"--out {out_path}: the name must end in .svg or .html", USAGE)
    started = time.perf_counter()
    run = _load(workload, seed, faults, bug, list(files or []), directory)
    window = _window(from_event, to_event, len(run.events))
    lanes = _focus(focus, run)
    render = render_svg if suffix == ".svg" else render_chart_html
    try:
        text = render(run.events, title=run.title, violation=run.violations, focus=lanes, window=window)
    except ChartTooLong as e:
        raise fail(str(e), USAGE)
    _write(out_path, text)
    _summary(out_path, run, started, as_json, {"window": list(window) if window else None, "focus": lanes})


def explore(
    files: Optional[list[Path]] = FilesArg,
    workload: Optional[str] = WorkloadOpt,
    seed: Optional[int] = SeedOpt,
    faults: Optional[str] = FaultsOpt,
    bug: Optional[str] = BugOpt,
    directory: Optional[Path] = TraceDirOpt,
    from_event: Optional[int] = typer.Option(None, "--from-event", metavar="A", help="Draw the chart from this event number (the steps still cover the whole run): a long run's page is smaller."),
    to_event: Optional[int] = typer.Option(None, "--to-event", metavar="B", help="Draw the chart up to this event number (inclusive)."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The page to write (NAME.html): open it in a browser, no server needed."),
    as_json: bool = JsonFlag,
) -> None:
    """Write the run explorer: one self-contained HTML page to step through a run.

    Step forward and back (buttons or arrow keys) or jump to an event; at each step the page
    shows the event, every node's protocol state, the chain each client holds, the MetaStore's
    chain and the client history so far, beside the chart. A failing run opens at the violation.
    """
    from delos_ref.viz.chart import ChartTooLong
    from delos_ref.viz.explore import render_html

    if out_path.suffix.lower() not in (".html", ".htm"):
        raise fail(f"--out {out_path}: the explorer is a page; the name must end in .html", USAGE)
    started = time.perf_counter()
    run = _load(workload, seed, faults, bug, list(files or []), directory)
    window = _window(from_event, to_event, len(run.events))
    try:
        text = render_html(run.events, title=run.title, violations=run.violations, notes=run.notes, replay=run.replay, window=window)
    except ChartTooLong as e:
        raise fail(str(e), USAGE)
    _write(out_path, text)
    _summary(out_path, run, started, as_json, {"opens_at": run.first_violation, "window": list(window) if window else None})


def register(app: typer.Typer) -> None:
    app.command(
        epilog="\b\nExamples:\n"
        "  delos-ref chart --workload loglet --seed 0 --bug seal_on_minority --out seal.svg\n"
        "  delos-ref chart --workload log --seed 3 --from-event 800 --to-event 900 --focus s1,s2,s3 --out run.html\n"
        "  delos-ref chart /tmp/loglet-7.ndjson --out loglet-7.svg     (from `delos-ref trace record`)\n"
        "  delos-ref chart --dir .delos-ref --out cluster.html          (a cluster started with up --trace)"
    )(chart)
    app.command(
        epilog="\b\nExamples:\n"
        "  delos-ref explore --workload loglet --seed 0 --bug seal_on_minority --out seal.html\n"
        "  delos-ref explore --workload log --seed 3 --out log-3.html\n"
        "  delos-ref explore --workload log --seed 3 --bug seal_on_minority --from-event 700 --to-event 1000 --out seal.html\n"
        "  delos-ref explore --dir .delos-ref --out cluster.html        (a cluster started with up --trace)"
    )(explore)
