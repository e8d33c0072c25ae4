"""The run explorer in a real browser: Debian's headless Chromium, driven by Playwright.

A failing seed (the loglet workload's ``seal_on_minority`` bug switch) is written as an
explorer page; the page must open at the violation, step back and forth, jump, and show the
state a student needs to see the bug: at the violating event only one LogServer has its seal
bit set, although seal() has returned. ``.ci/run`` installs ``chromium`` where it is missing;
the test skips (with the reason) only where there is no Chromium or no Playwright.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from delos_ref.viz import sources
from delos_ref.viz.explore import render_html

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium (apt-get install -y chromium; .ci/run does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _state(page, section: str) -> dict[str, str]:
    rows = page.locator(f"tr[data-section='{section}']")
    return {rows.nth(k).get_attribute("data-key"): rows.nth(k).locator("td.value").inner_text() for k in range(rows.count())}


def test_the_explorer_opens_at_the_violation_and_steps(browser, tmp_path: Path) -> None:
    run = sources.simulated("loglet", 0, bug="seal_on_minority")
    at = run.first_violation
    assert at is not None
    path = tmp_path / "seal.html"
    path.write_text(render_html(run.events, title=run.title, violations=run.violations, replay=run.replay))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(120_000)  # a machine shared with many jobs can be slow; each step is checked, not timed
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    assert page.locator("#step").inner_text() == str(at)  # a failing run opens at its violation
    assert "SealReturned" in page.locator("#event").inner_text()
    assert "VIOLATION (NativeLoglet spec)" in page.locator("#here").inner_text()
    sealed = {k: v for k, v in _state(page, "logservers").items() if "SEALED" in v}
    assert len(sealed) == 1, _state(page, "logservers")  # seal() returned after one seal bit
    # Step back and forward with the buttons and the keys; jump to the first event.
    page.click("#prev")
    assert page.locator("#step").inner_text() == str(at - 1)
    page.keyboard.press("ArrowDown")
    assert page.locator("#step").inner_text() == str(at)
    band_at_violation = page.locator("#cursor").get_attribute("data-y")
    page.fill("#jump", "0")
    page.click("#go")
    assert page.locator("#step").inner_text() == "0"
    assert page.locator("#cursor").get_attribute("data-y") != band_at_violation  # the band follows
    assert not any("SEALED" in v for v in _state(page, "logservers").values())  # nothing sealed yet
    # A click on a row of the chart goes to that event (here the fourth row: event 3).
    box = page.locator("#chart").bounding_box()
    row_y = page.evaluate("() => D.y[3] - document.getElementById('chart').scrollTop")
    page.mouse.click(box["x"] + 60, box["y"] + row_y)
    assert page.locator("#step").inner_text() == "3"
    page.click("#toviolation")
    assert page.locator("#step").inner_text() == str(at)
    # The chart's band sits on the violating event's row.
    band = float(page.locator("#cursor").get_attribute("data-y"))
    assert band > 0
    assert not errors, errors
    assert all(u.startswith("file://") for u in requests), requests  # nothing fetched
    page.close()


def test_the_explorer_shows_a_striped_loglets_stripes(browser, tmp_path: Path) -> None:
    """The striped workload's striped_acks_over_hole bug: at the violation the page shows each
    stripe's committed tail and the striped tail, below the position just acknowledged."""
    run = sources.simulated("striped", 1, bug="striped_acks_over_hole")
    at = run.first_violation
    assert at is not None
    path = tmp_path / "striped.html"
    path.write_text(render_html(run.events, title=run.title, violations=run.violations, replay=run.replay))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(120_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    assert page.locator("#step").inner_text() == str(at)
    assert "StripedAck" in page.locator("#event").inner_text()
    striped = _state(page, "striped")
    assert {"L1", "L1 stripe 0 (L1.0)", "L1 stripe 1 (L1.1)"} <= set(striped), striped
    assert striped["L1"].endswith(f"acknowledged up to {run.events[at]['pos']} (ABOVE A HOLE)"), striped
    assert all(v.startswith("committed tail ") for k, v in striped.items() if k != "L1")
    page.fill("#jump", "0")
    page.click("#go")
    assert "ABOVE A HOLE" not in "".join(_state(page, "striped").values())
    assert not errors, errors
    page.close()
