"""Charts and the explorer (issue 20), without a browser: what they draw and fold, and the CLI.

The browser test is tests/test_explorer_browser.py; the real cluster's chart is in
tests/test_trace_cluster.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from delos_ref.viz import sources
from delos_ref.viz.chart import render_svg
from delos_ref.viz.explore import render_html
from delos_ref.viz.model import Violation, send_rows
from delos_ref.viz.state import fold, state_at

CLI = [sys.executable, "-m", "cli.main"]


@pytest.fixture(scope="module")
def seal_run() -> sources.Run:
    """The loglet workload's seal on a minority: the NativeLoglet spec rejects a SealReturned."""
    return sources.simulated("loglet", 0, bug="seal_on_minority")


def test_the_spec_violation_points_at_the_seal_that_returned_too_early(seal_run: sources.Run) -> None:
    marked = [v for v in seal_run.violations if v.index is not None]
    assert marked and marked[0].by == "NativeLoglet spec", seal_run.violations
    event = seal_run.events[marked[0].index]
    assert (event["role"], event["event"]) == ("loglet", "SealReturned")
    assert len(event["tails"]) == 1  # one LogServer's seal bit: a minority
    assert seal_run.first_violation == marked[0].index


def test_the_chart_draws_messages_drops_faults_and_the_violation(seal_run: sources.Run) -> None:
    svg = render_svg(seal_run.events, title=seal_run.title, violation=seal_run.violations)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "VIOLATION (NativeLoglet spec): SealDone" in svg
    assert "Found by the checks after the run" in svg  # the workload's own findings
    assert "url(#arrow)" in svg  # delivered messages
    kinds = {(e["role"], e["event"]) for e in seal_run.events}
    if ("net", "lost") in kinds:
        assert " lost</text>" in svg
    if ("nemesis", "crash") in kinds:
        assert "CRASH " in svg
    assert "SEALED" in svg  # a LogServer's seal bit, annotated on its lane


def test_a_window_and_a_focus_draw_only_what_was_asked(seal_run: sources.Run) -> None:
    v = seal_run.first_violation
    svg = render_svg(seal_run.events, title="w", violation=seal_run.violations, window=(v - 5, v + 5), focus=["s1", "x1"])
    rows = [line for line in svg.split("<text") if "font-family=\"monospace\"" in line]
    assert len(rows) <= 11, len(rows)
    assert ">s1</text>" in svg and ">x1</text>" in svg and ">s3</text>" not in svg
    assert "lanes not drawn" in svg and "VIOLATION" in svg


def test_an_arrow_never_starts_after_its_delivery_nor_before_the_longest_delay(seal_run: sources.Run) -> None:
    events = seal_run.events
    starts = send_rows(events)
    assert starts
    for i, s in starts.items():
        assert s <= i
        assert float(events[i]["t"]) - float(events[s]["t"]) <= 0.04 + 1e-9 or events[i]["event"] != "deliver"


def test_the_state_fold_shows_the_seal_bit_and_the_sequencer_window(seal_run: sources.Run) -> None:
    diffs = fold(seal_run.events)
    assert len(diffs) == len(seal_run.events)
    v = seal_run.first_violation
    state = state_at(diffs, v)
    sealed = [k for k, text in state["logservers"].items() if "SEALED" in text]
    assert len(sealed) == 1, state["logservers"]  # only one LogServer sealed: the bug
    assert any(text.startswith("window [") for text in state["sequencers"].values())
    assert state_at(diffs, 0) != state


def test_history_and_chains_of_a_log_run() -> None:
    run = sources.simulated("metastore", 1, faults="none")
    clients = [e for e in run.events if e["role"] == "client"]
    assert clients and {e["event"] for e in clients} >= {"invoke", "ok"}
    state = state_at(fold(run.events), len(run.events) - 1)
    assert state["history"] and all("->" in text for text in state["history"].values())
    assert state["acceptors"], "no acceptor slot shown"


def test_the_explorer_page_embeds_everything_and_opens_at_the_violation(seal_run: sources.Run) -> None:
    page = render_html(seal_run.events, title=seal_run.title, violations=seal_run.violations)
    assert "http://" not in page.replace("http://www.w3.org/", "") and "https://" not in page  # no network
    data = json.loads(page.split("<script type='application/json' id='data'>")[1].split("</script>")[0])
    assert data["open"] == seal_run.first_violation
    assert len(data["labels"]) == len(data["diffs"]) == len(data["y"]) == len(seal_run.events)
    assert "id='cursor'" in page


def test_a_violation_can_be_given_by_hand() -> None:
    events = [{"t": 0.0, "node": "a", "role": "acceptor", "event": "Promise", "instance": 1, "ballot": [1, "p"], "promised": [1, "p"], "accepted_ballot": [0, ""]}]
    svg = render_svg(events, title="one", violation=Violation(0, "made up", "test"))
    assert "VIOLATION (test): made up" in svg and "Promise i1 b1.p" in svg


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_cli_chart_and_explore_write_their_files(tmp_path: Path) -> None:
    trace = tmp_path / "m.ndjson"
    rec = _cli("trace", "record", "--workload", "metastore", "--seed", "2", "--faults", "none", "--out", str(trace), cwd=tmp_path)
    assert rec.returncode == 0, rec.stderr
    r = _cli("chart", str(trace), "--out", str(tmp_path / "m.svg"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["events"] > 0 and (tmp_path / "m.svg").read_text().startswith("<svg")
    r = _cli("explore", "--workload", "metastore", "--seed", "2", "--faults", "none", "--out", str(tmp_path / "m.html"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "<script" in (tmp_path / "m.html").read_text()
    r = _cli("explore", str(trace), "--from-event", "3", "--to-event", "12", "--out", str(tmp_path / "w.html"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["window"] == [3, 12]
    page = (tmp_path / "w.html").read_text()
    assert page.count('font-family="monospace"') == 10  # ten rows drawn, the steps cover every event
    assert len(json.loads(page.split("id='data'>")[1].split("</script>")[0])["labels"]) == info["events"]


@pytest.mark.parametrize(
    "args, says",
    [
        (["chart", "--out", "x.svg"], "Give one source"),
        (["chart", "--workload", "log", "--out", "x.svg"], "needs --seed"),
        (["chart", "--workload", "nope", "--seed", "1", "--out", "x.svg"], "unknown workload"),
        (["chart", "--workload", "loglet", "--seed", "1", "--bug", "nope", "--out", "x.svg"], "has no bug"),
        (["chart", "missing.ndjson", "--out", "x.svg"], "No such file"),
        (["chart", "--workload", "rpc", "--seed", "1", "--out", "x.png"], "must end in .svg or .html"),
        (["explore", "--workload", "rpc", "--seed", "1", "--out", "x.svg"], "must end in .html"),
        (["chart", "--workload", "rpc", "--seed", "1", "--from-event", "5", "--to-event", "999999", "--out", "x.svg"], "not within"),
        (["chart", "--workload", "rpc", "--seed", "1", "--focus", "zz", "--out", "x.svg"], "no lane zz"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert says in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_real_cluster_trace_gets_the_messages_its_steps_imply_and_its_kills() -> None:
    """No network records (a real cluster's trace): arrows inferred from the steps' fields."""
    from delos_ref.viz.model import inferred_messages

    def ev(node: str, role: str, event: str, **f: object) -> dict:
        return {"t": 0.0, "node": node, "role": role, "event": event, **f}

    events = [
        ev("n1", "node", "Start"),
        ev("n1", "sequencer", "Append", loglet="L0", first=0, count=2, client="c"),
        ev("n2", "logserver", "Store", loglet="L0", lo=0, hi=2, local_tail=2),
        ev("n1", "sequencer", "Stored", loglet="L0", server="n2", local_tail=2, sealed=False),
        ev("n3", "metastore", "Propose", proposer="n3@abc", instance=2, ballot=[1, "n3@abc"]),
        ev("n2", "acceptor", "Promise", instance=2, ballot=[1, "n3@abc"], promised=[1, "n3@abc"], accepted_ballot=[0, ""]),
        ev("n2", "logserver", "Seal", loglet="L0", local_tail=2),
        ev("n3", "loglet", "SealReturned", loglet="L0", tails={"n2": 2}),
        ev("n1", "node", "Start"),
    ]
    arrows = inferred_messages(events)
    assert arrows[2][0] == "n1" and arrows[2][2] == "Append L0 [0,2)"
    assert arrows[3][0] == "n2" and arrows[3][1] == 2 and "Stored tail 2" in arrows[3][2]
    assert arrows[5][0] == "n3" and arrows[5][2].startswith("Prepare i2 b1.n3@abc")
    assert arrows[6][0] == "n3" and arrows[6][2] == "Seal L0"
    assert set(arrows) == {2, 3, 5, 6}
    svg = render_svg(events, title="cluster")
    assert "arrow-inferred" in svg and "n1 killed" in svg  # the second Start without a Stop
    assert "n1 killed" not in render_svg(events[:-1] + [ev("n1", "node", "Stop"), ev("n1", "node", "Start")], title="clean restart")


def test_a_chart_longer_than_the_bound_asks_for_a_window(monkeypatch: pytest.MonkeyPatch, seal_run: sources.Run) -> None:
    from delos_ref.viz import chart

    monkeypatch.setattr(chart, "MAX_ROWS", 100)
    with pytest.raises(chart.ChartTooLong, match="draw a window"):
        render_svg(seal_run.events, title="too long")
    assert render_svg(seal_run.events, title="a window", window=(0, 99))


def test_a_linearizability_failure_points_at_the_operation_the_checker_could_not_place() -> None:
    run = sources.simulated("metastore", 1, bug="ignore_accepted")
    found = [v for v in run.violations if "not linearizable" in v.what]
    assert found and found[0].index is not None, run.violations
    event = run.events[found[0].index]
    assert (event["role"], event["event"]) == ("client", "ok"), event
    stuck = found[0].what.split("Stuck:")[1].splitlines()[1].strip()
    assert stuck.startswith(f"{event['node']}: {event['f']}("), (stuck, event)  # the same operation


@pytest.mark.parametrize("workload", ["loglet", "striped"])
def test_the_loglet_workloads_clients_are_bars_one_column_per_append_loop(workload: str) -> None:
    """Appends, check_tails and the seal are client bars; a1's two append loops (a1@0, a1@1)
    run at once, so each has its own column of bars on a1's lane."""
    from delos_ref.viz.chart import bar_columns

    run = sources.simulated(workload, 3)
    clients = [e for e in run.events if e["role"] == "client"]
    processes = {e.get("process", e["node"]) for e in clients}
    assert {"a1@0", "a1@1", "a2@0", "a2@1", "k1", "k2", "x1"} <= processes, processes
    assert {e["node"] for e in clients} == {"a1", "a2", "k1", "k2", "x1"}  # lanes are nodes
    assert {e["f"] for e in clients} == {"append", "check_tail", "seal"}
    assert bar_columns(run.events)["a1@0"] != bar_columns(run.events)["a1@1"]
    outcomes = [e["event"] for e in clients if e["event"] != "invoke"]
    assert "ok" in outcomes and "fail" in outcomes  # appends after the seal fail
    svg = render_svg(run.events, title=run.title)
    for outcome in ("ok", "fail", "info"):
        assert svg.count(f'class="bar-{outcome}"') == outcomes.count(outcome), outcome
    state = state_at(fold(run.events), len(run.events) - 1)
    assert state["history"]["x1 #1"].startswith("seal() -> ")
    acked = [e for e in clients if e["event"] == "ok" and e["f"] == "append"]
    first = acked[0]
    shown = [text for key, text in state["history"].items() if key.startswith(first["process"] + " #")]
    assert any(text.startswith("append(") and text.endswith(f"-> ok {first['value']}") for text in shown), shown
    if workload == "striped":  # each acknowledged position is the one the loglet acknowledged
        assert "StripedAppend L1 pos " in svg and "StripedAck L1 pos " in svg  # key fields
        acks = {(e["node"], e["pos"]) for e in run.events if e.get("event") == "StripedAck"}
        assert all((e["node"], e["value"]) in acks for e in acked)


def test_the_explorer_shows_each_stripes_tail_and_seal_bits_and_the_striped_tail() -> None:
    """A StripedLoglet's state: each stripe's committed tail and seal bits, and the striped
    tail min_j(tail_j * N + j), sealed once every stripe is; at the end it is what the last
    sealed check_tail returned."""
    run = sources.simulated("striped", 3)
    state = state_at(fold(run.events), len(run.events) - 1)["striped"]
    n = next(e["stripes"] for e in run.events if e.get("event") == "StripedAck")
    stripes = [state[f"L1 stripe {j} (L1.{j})"] for j in range(n)]
    assert all(", SEALED (seal bits" in text for text in stripes), stripes
    tails = [int(text.split()[2].rstrip(",")) for text in stripes]
    last = [e for e in run.events if e.get("event") == "StripedCheckTail" and e["sealed"]][-1]
    assert last["tails"] == tails and state["L1"].startswith(f"tail {last['tail']} = min(")
    assert ", SEALED; acknowledged up to " in state["L1"] and "ABOVE A HOLE" not in state["L1"]
    diffs = fold(run.events)
    first_ack = next(i for i, e in enumerate(run.events) if e.get("event") == "StripedAck")
    assert "acknowledged" not in state_at(diffs, first_ack - 1)["striped"]["L1"]
    assert state_at(diffs, first_ack)["striped"]["L1"].endswith(f"acknowledged up to {run.events[first_ack]['pos']}")


def test_an_acknowledgement_above_a_hole_shows_in_the_striped_state() -> None:
    """Bug switch striped_acks_over_hole: at the StripedAck the spec rejects, the state shows
    the acknowledged position at or above the striped tail."""
    run = sources.simulated("striped", 1, bug="striped_acks_over_hole")
    at = run.first_violation
    assert at is not None and run.events[at]["event"] == "StripedAck", run.violations
    shown = state_at(fold(run.events), at)["striped"]["L1"]
    tail = int(shown.split()[1])
    assert run.events[at]["pos"] >= tail and shown.endswith(f"acknowledged up to {run.events[at]['pos']} (ABOVE A HOLE)"), shown
