"""Draw the chart of every minimized counterexample in docs/minimize.md, or check them.

``docs/minimize.md`` lists, for each bug switch of each workload, the replay command of its
minimal failing run (``delos-ref sim ... --schedule TEXT --bug B``). This script reruns each
under its schedule and draws its message-sequence chart (``delos_ref/viz/chart.py``) into
``docs/figures/minimized/<workload>-<bug>.svg``: the whole minimal run, the violation marked
where a spec checker rejects the trace (else listed as the workload's finding). A schedule
replays its run event for event, so the same code draws the same chart, byte for byte::

    python docs/minimized_charts.py docs/figures/minimized           # (re)draw them all
    python docs/minimized_charts.py docs/figures/minimized --check   # exit 1 if one differs

``tests/test_docs.py`` checks that every replay of the page has its chart; after a change to
a workload, measure the page again (``sim --minimize``) and draw these again.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE / "minimize.md"
REPLAY = re.compile(r"^- (\w+) `(\w+)`: `(delos-ref sim [^`]+)`$", re.M)


def replays(page: str) -> list[tuple[str, str, int, str]]:
    """(workload, bug, seed, schedule) of each replay command listed on the page."""
    out = []
    for workload, bug, command in REPLAY.findall(page):
        args = shlex.split(command)
        seed = int(args[args.index("--seed") + 1])
        schedule = args[args.index("--schedule") + 1]
        assert args[args.index("--workload") + 1] == workload and args[args.index("--bug") + 1] == bug, command
        out.append((workload, bug, seed, schedule))
    return out


def draw(workload: str, bug: str, seed: int, schedule: str) -> str:
    from delos_ref.viz import sources
    from delos_ref.viz.chart import render_svg

    run = sources.simulated(workload, seed, bug=bug, schedule=schedule)
    assert run.violations, f"{workload} {bug}: the minimized run no longer fails"
    return render_svg(run.events, title=run.title, violation=run.violations)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if a checked-in chart differs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    differ = []
    for workload, bug, seed, schedule in replays(PAGE.read_text()):
        path = args.out / f"{workload}-{bug}.svg"
        svg = draw(workload, bug, seed, schedule)
        if args.check:
            if not path.exists() or path.read_text() != svg:
                differ.append(path.name)
        else:
            path.write_text(svg)
    if differ:
        print(f"charts differ from what the code draws: {', '.join(differ)} (redraw: python docs/minimized_charts.py {args.out})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
