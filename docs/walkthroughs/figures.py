"""Draw the walkthroughs' charts into docs/figures/ (``walkthrough-*.svg``), or check them.

Each walkthrough follows a deterministic run (a seed of a ``delos-ref sim`` workload, or a
scenario of ``scenarios.py``); its chart is that run's message-sequence chart
(``delos_ref/viz/chart.py``, read as ``docs/charts.md`` explains), drawn over the stretch of
virtual time the walkthrough quotes and only the lanes it follows (messages from the others
come from an ``(others)`` lane). The same run draws the same chart, byte for byte::

    python docs/walkthroughs/figures.py docs/figures           # (re)draw them all
    python docs/walkthroughs/figures.py docs/figures --check   # exit 1 if one differs

``tests/test_docs.py`` runs the check, so a checked-in chart always shows what the current
code does; after a change to a workload or a protocol, draw them again.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
import trio.testing

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import scenarios  # noqa: E402 - the walkthroughs' scripted runs, next to this file

from delos_ref.viz import sources  # noqa: E402
from delos_ref.viz.chart import render_svg  # noqa: E402


@dataclass(frozen=True)
class Figure:
    """One walkthrough's chart: the run, the stretch of virtual time, the lanes."""

    name: str  # docs/figures/walkthrough-<name>.svg
    what: str  # the chart's title
    run: tuple[str, str, int]  # ("sim", workload, seed) with no faults, or ("scenario", name, seed)
    since: float
    until: float
    focus: tuple[str, ...]


FIGURES = (
    Figure("append", "one append: k1's entry, from the sequencer to the acknowledgement", ("sim", "log", 0), 0.0100, 0.0150, ("s1", "s2", "s3", "k1")),
    Figure("reconfiguration", "x2 and x1 both reconfigure; x1's conditional write loses", ("sim", "log", 4), 0.1915, 0.2115, ("s1", "s2", "s3", "x1", "x2")),
    Figure("roll-forward", "a1 rolls the sealed L0 forward onto a clone", ("scenario", "roll-forward", 1), 0.5540, 0.5690, ("s1", "s2", "s3", "a1")),
    Figure("hot-swap", "the bootstrap loglet's seal races a1's append in Paxos instance 52", ("scenario", "hot-swap", 1), 0.2340, 0.2500, ("s1", "s2", "s3", "a1", "op")),
    Figure("database", "c1's write through the replica on s1", ("sim", "kv", 0), 0.0129, 0.0271, ("c1", "s1", "s2", "s3")),
    Figure("striped", "striped appends, acknowledged in logical order", ("sim", "striped", 0), 0.0040, 0.0112, ("s1", "s2", "s3", "s4", "s5", "s6", "a1", "a2")),
    Figure("cold-migration", "m1 copies [0,5) to the cold store, verifies, installs, trims; r1 follows", ("scenario", "cold-migration", 1), 0.0775, 0.1030, ("s1", "s2", "s3", "m1", "r1")),
)


def events_of(run: tuple[str, str, int]) -> list[dict[str, Any]]:
    """The run's trace (with a simulated workload's client operations)."""
    kind, name, seed = run
    if kind == "sim":
        return sources.simulated(name, seed, faults="none").events
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.ndjson"
        with open(path, "w") as out, _quiet():
            rc = trio.run(scenarios.run, name, seed, out, clock=trio.testing.MockClock(autojump_threshold=0))
        assert rc == 0, f"scenario {name} seed {seed} failed its own check"
        run_, _notes = sources.from_traces([path])
        return run_.events


class _quiet:
    """The scenarios print what the client saw; a figure does not need it."""

    def __enter__(self) -> None:
        self.saved, sys.stdout = sys.stdout, io.StringIO()

    def __exit__(self, *exc: object) -> None:
        sys.stdout = self.saved


def draw(fig: Figure, cache: dict[tuple[str, str, int], list[dict[str, Any]]]) -> str:
    """The figure's SVG text."""
    if fig.run not in cache:
        cache[fig.run] = events_of(fig.run)
    events = cache[fig.run]
    times = [float(e.get("t", 0.0)) for e in events]
    first = next(i for i, t in enumerate(times) if t >= fig.since)
    last = max(i for i, t in enumerate(times) if t <= fig.until)
    kind, name, seed = fig.run
    source = f"{name} seed {seed}" + (", no faults" if kind == "sim" else " (scenarios.py)")
    title = f"{fig.what} ({source}, t={fig.since}-{fig.until} s, events {first}-{last})"
    return render_svg(events, title=title, window=(first, last), focus=fig.focus)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("figures", type=Path, help="the folder of the figures (docs/figures)")
    p.add_argument("--check", action="store_true", help="compare instead of writing: exit 1 if a figure differs")
    args = p.parse_args(argv)
    cache: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    stale = []
    for fig in FIGURES:
        path = args.figures / f"walkthrough-{fig.name}.svg"
        svg = draw(fig, cache)
        if args.check:
            if not path.exists() or path.read_text() != svg:
                stale.append(path.name)
        else:
            path.write_text(svg)
            print(f"{path}: {len(svg):,} bytes")
    if stale:
        print(f"differs from what the run draws now: {', '.join(stale)}; draw again with python docs/walkthroughs/figures.py docs/figures", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
