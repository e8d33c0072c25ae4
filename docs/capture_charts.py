"""Draw the figures of docs/charts.md (docs/figures/): charts and explorer screenshots.

Usage (Debian's chromium at /usr/bin/chromium, playwright installed by `make install`):

    python docs/capture_charts.py docs/figures [CLUSTER_DIR]

* ``chart-seal-on-minority.svg``: the loglet workload, seed 0, bug ``seal_on_minority``:
  the 30 events before the NativeLoglet spec's violation and 4 after;
* ``explorer-seal-on-minority.png``: its explorer page, opened at the violation;
* ``chart-stale-read.svg``: the kv workload, seed 1, bug ``stale_read_as_linearizable``,
  around the read the linearizability checker could not place;
* ``chart-metastore-race.svg``: the log workload, seed 1, bug
  ``metastore_write_without_version``, lanes s1-s3 and x1, around the chain the VirtualLog
  spec rejects;
* ``explorer-log-3.png``: the log workload, seed 3 (no bug), stepped to its first
  reconfiguration (a supervisor's ``Reconfigured``);
* ``explorer-striped-hole.png``: the striped workload, seed 0, bug ``striped_acks_over_hole``,
  opened at the acknowledgement the StripedLoglet spec rejects (the STRIPED state);
* with CLUSTER_DIR (a cluster run with ``up --trace`` through a ``kill -9`` of the sequencer's
  node and the restart, e.g. the one ``tests/test_trace_cluster.py`` drives):
  ``chart-cluster-kill.svg``, the events around the reconfiguration, and
  ``chart-cluster-kill.png``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from delos_ref.viz import sources
from delos_ref.viz.chart import render_chart_html, render_svg
from delos_ref.viz.explore import render_html

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def screenshot(page_html: str, out: Path, *, step: int | None = None, width: int = 1500, height: int = 950) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        path = Path(tmp) / "page.html"
        path.write_text(page_html)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(path.as_uri() + ("" if step is None else f"#{step}"), timeout=180_000)
        page.wait_for_timeout(300)
        page.screenshot(path=str(out))
        browser.close()


def main(figures: Path, cluster_dir: Path | None) -> None:
    figures.mkdir(parents=True, exist_ok=True)
    seal = sources.simulated("loglet", 0, bug="seal_on_minority")
    at = seal.first_violation
    assert at is not None
    (figures / "chart-seal-on-minority.svg").write_text(render_svg(seal.events, title=seal.title, violation=seal.violations, window=(at - 30, at + 4)))
    screenshot(render_html(seal.events, title=seal.title, violations=seal.violations, replay=seal.replay), figures / "explorer-seal-on-minority.png")
    stale = sources.simulated("kv", 1, bug="stale_read_as_linearizable")
    at = next(v.index for v in stale.violations if v.index is not None)
    (figures / "chart-stale-read.svg").write_text(render_svg(stale.events, title=stale.title, violation=stale.violations, window=(at - 34, at + 2)))
    race = sources.simulated("log", 1, bug="metastore_write_without_version")
    at = next(v.index for v in race.violations if v.index is not None)
    (figures / "chart-metastore-race.svg").write_text(render_svg(race.events, title=race.title, violation=race.violations, window=(at - 34, at + 2), focus=["s1", "s2", "s3", "x1"]))
    log = sources.simulated("log", 3)
    reconfigured = next(i for i, e in enumerate(log.events) if e.get("event") == "Reconfigured")
    screenshot(render_html(log.events, title=log.title, violations=log.violations, replay=log.replay), figures / "explorer-log-3.png", step=reconfigured)
    hole = sources.simulated("striped", 0, bug="striped_acks_over_hole")
    screenshot(render_html(hole.events, title=hole.title, violations=hole.violations, replay=hole.replay), figures / "explorer-striped-hole.png")
    if cluster_dir is not None:
        run, _ = sources.from_traces([cluster_dir])
        reconfigured = next(i for i, e in enumerate(run.events) if (e.get("role"), e.get("event")) == ("supervisor", "Reconfigured"))
        last_words = max(i for i, e in enumerate(run.events[:reconfigured]) if e.get("node") == "n1")  # killed after this
        window = (max(min(last_words - 2, reconfigured - 45), 0), min(reconfigured + 6, len(run.events) - 1))
        title = f"a real cluster: kill -9 of n1 (L0's sequencer), the supervisors reconfigure ({len(run.events)} events)"
        (figures / "chart-cluster-kill.svg").write_text(render_svg(run.events, title=title, violation=run.violations, window=window))
        screenshot(render_chart_html(run.events, title=title, violation=run.violations, window=window), figures / "chart-cluster-kill.png", height=1150)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
