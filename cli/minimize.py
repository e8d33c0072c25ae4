"""``delos-ref sim --minimize``: print (and chart) a minimal failing run.

The shrinking itself is :mod:`delos_ref.sim.minimize` (pure of output: it reports progress
through a callback); this module shows its progress on stderr, prints the result and writes
the chart. ``--json`` prints ``{"events_before", "events_after", "faults_before",
"faults_after", "ops_before", "ops_after", "check", "replay", "history", ...}``.

**The chart hook.** Charts are drawn by the renderer in ``delos_ref/viz/`` (issue 20's chart
work), which this build may not have. :func:`charts_available` and :func:`write_chart` are the
two places that connect it: until they do, ``--chart-out`` says "charts are not available in
this build" and exits 2, before any run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from rich.markup import escape

from cli.common import FAILED, OK, err, fail, out, print_json

#: The ``--max-runs`` default: simulated runs one minimization may spend.
DEFAULT_MAX_RUNS = 150

CHARTS_UNAVAILABLE = "charts are not available in this build (the drawsvg package is missing: make install)"


def charts_available() -> bool:
    """Whether :func:`write_chart` can draw (``delos_ref.viz`` and its drawing library)."""
    try:
        import delos_ref.viz.chart  # noqa: F401
    except ImportError:
        return False
    return True


def write_chart(report: dict[str, Any], path: Path) -> None:
    """Write the chart of the minimal run in ``report`` (its ``history`` holds the run's trace
    events) to ``path``: SVG, or HTML wrapping it. The violation is marked where a spec
    checker rejects the trace, else as a finding of the whole run (the workload's check)."""
    from delos_ref.viz.chart import render_chart_html, render_svg
    from delos_ref.viz.model import Violation
    from delos_ref.viz.sources import spec_violations

    events = report["history"]
    render = render_svg if path.suffix.lower() == ".svg" else render_chart_html
    title = f"{report['workload']} seed {report['seed']} (minimized): {report['check']}"
    violations = spec_violations(events) or [Violation(None, report["violation"], report["check"])]
    try:
        path.write_text(render(events, title=title, violation=violations))
    except OSError as e:
        raise fail(f"--chart-out {path}: {e.strerror or e}", FAILED) from None


def run_minimize(wl: Any, seed: int, faults: frozenset[str], bug: Optional[str], max_runs: int, chart_out: Optional[Path], as_json: bool) -> int:
    """Minimize seed ``seed``'s failing run, print it; the exit code (0 printed, 1 nothing to minimize)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from delos_ref.sim.minimize import NotFailing, minimize

    try:
        if as_json or not err.is_terminal:
            report = minimize(wl, seed, faults, bug, max_runs=max_runs)
        else:
            with Progress(TextColumn("minimize {task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"), console=err, transient=True) as progress:
                task = progress.add_task("the seed", total=max_runs)
                report = minimize(
                    wl, seed, faults, bug, max_runs=max_runs,
                    progress=lambda phase, runs, total: progress.update(task, completed=runs, description=phase),
                )
    except NotFailing as e:
        raise fail(str(e), FAILED)
    if chart_out is not None:
        write_chart(report, chart_out)
    if as_json:
        print_json(report)
    else:
        _print_report(report)
    return OK


def _print_report(r: dict[str, Any]) -> None:
    out.print(
        f"[bold]{escape(r['workload'])}[/] seed {r['seed']}" + (f", bug {escape(r['bug'])}" if r["bug"] else "")
        + f": the check [red]{escape(r['check'])}[/] still fails in a run of "
        f"[bold]{r['events_after']}[/] events (was {r['events_before']}), "
        f"{r['faults_after']} faults (was {r['faults_before']}), {r['ops_after']} client operations (was {r['ops_before']})",
        highlight=False,
    )
    budget = " (the run budget ran out: --max-runs may shrink it further)" if r["exhausted"] else ""
    out.print(f"  {r['runs']} runs, {r['wall_s']:.1f} s{budget}", highlight=False, markup=False)
    out.print(f"  violation: {r['violation']}", highlight=False, markup=False)
    out.print(f"  replay: {r['replay']}", highlight=False, markup=False)
    out.print(f"  history ({len(r['history'])} events):", highlight=False, markup=False)
    for event in r["history"]:
        out.print("    " + format_event(event), highlight=False, markup=False)


def format_event(event: dict[str, Any]) -> str:
    """One trace event as one line: ``0.105495  s3 logserver Store loglet=L1 lo=6 hi=8``."""
    e = dict(event)
    head = f"{e.pop('t', 0.0):10.6f}  {e.pop('node', '?')} {e.pop('role', '')} {e.pop('event', '')}"
    if "src" in e and "dst" in e:
        head += f" {e.pop('src')}->{e.pop('dst')}"
    return head + "".join(f" {k}={v}" for k, v in e.items())
