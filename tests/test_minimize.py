"""Minimal counterexamples (issue 20): ``sim --minimize``, ``--schedule``, ddmin.

* ddmin on synthetic predicates: it finds the needed items, is 1-minimal, and a spent
  budget returns the smallest interesting list so far;
* schedules: the text encoding round-trips, bad text is refused in one line (exit 2);
* a recorded schedule (nemesis actions included) replays to the same failure;
* a real bug switch, minimized, still fails the same check with fewer events, and the
  printed replay command reproduces it when run as it is.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from delos_ref.sim.harness import RunConfig, get_workload, run_seed, scheduled_config
from delos_ref.sim.minimize import OutOfRuns, check_name, ddmin, minimize
from delos_ref.sim.schedule import Action, BadSchedule, Schedule, decode

DELOS_REF = str(Path(sys.executable).with_name("delos-ref"))


# ------------------------------------------------------------------------------- ddmin


def test_ddmin_finds_the_two_items_a_failure_needs():
    calls = []

    def fails(items):
        calls.append(list(items))
        return 3 in items and 17 in items

    assert ddmin(list(range(40)), fails) == [3, 17]
    assert len(calls) == len({tuple(c) for c in calls})  # no subset is tested twice


def test_ddmin_result_is_one_minimal():
    """A failure that needs any two of {5, 6, 7} together with 20: no single item of the
    result can go, though the result is not the unique smallest."""

    def fails(items):
        return 20 in items and len({5, 6, 7} & set(items)) >= 2

    got = ddmin(list(range(30)), fails)
    assert fails(got)
    for x in got:
        assert not fails([y for y in got if y != x])


def test_ddmin_returns_nothing_when_nothing_is_needed():
    assert ddmin(list(range(10)), lambda items: True) == []


def test_ddmin_out_of_runs_keeps_the_best_so_far():
    budget = [6]

    def fails(items):
        if budget[0] == 0:
            raise OutOfRuns()
        budget[0] -= 1
        return 1 in items and 2 in items

    got = ddmin(list(range(64)), fails)
    assert 1 in got and 2 in got and len(got) < 64


def test_check_name_blanks_the_variable_parts():
    a = check_name("acknowledged b'a1/3' at 7, but the final log holds None there")
    b = check_name("acknowledged b'a2/19' at 12, but the final log holds b'x1/0' there")
    assert a == b == "acknowledged _ at _ but the final log"
    assert check_name("liveness: no append succeeded within 10 virtual seconds") != check_name("liveness: the final read on a healed cluster failed")


# --------------------------------------------------------------------------- schedules


def test_schedule_encoding_round_trips():
    s = Schedule(
        frozenset({"loss", "crash"}),
        (
            Action(0.292464043, "crash", ("s2",)),
            Action(0.5, "restart", ("s2",)),
            Action(0.97, "partition", (("a1", "s1"), ("s2", "s3"))),
            Action(1.0000000000000002, "cut", ("s1", "s3")),
            Action(12.0, "heal"),
        ),
        {"a1": frozenset({0, 1, 2, 3, 4, 7}), "c1@0": frozenset(), "k1": frozenset({9})},
    )
    text = s.encode()
    assert text == "f=crash+loss/n=0.292464043:crash:s2,0.5:restart:s2,0.97:partition:a1.s1+s2.s3,1.0000000000000002:cut:s1.s3,12.0:heal/o=a1:0-4.7,c1@0:,k1:9"
    assert decode(text) == s  # times exactly, to the last bit of the float
    assert shlex.quote(text) == text  # one shell word: the replay command pastes as it is
    assert decode("f=/n=") == Schedule(frozenset(), (), None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x=1",
        "f=loss",
        "f=/n=/n=",
        "f=/n=abc:crash:s1",
        "f=/n=12:explode:s1",
        "f=/n=12:crash",
        "f=/n=12:crash:s1.s2",
        "f=/n=-1.5:heal",
        "f=/n=nan:heal",
        "f=/n=12:heal:s1",
        "f=/n=12:partition:s1",
        "f=/n=20:heal,10:heal",
        "f=/n=/o=a1",
        "f=/n=/o=a1:3-1",
        "f=/n=/o=a1:x",
        "f=/n=/o=a1:1,a1:2",
    ],
)
def test_bad_schedule_text_is_refused(text):
    with pytest.raises(BadSchedule):
        decode(text)


def _cli(*args: str):
    return CliRunner().invoke(app, ["sim", *args])


@pytest.mark.parametrize(
    "args, says",
    [
        (["--schedule", "f=/n=12:crash"], "bad nemesis action"),
        (["--schedule", "f=bogus/n="], "does not support faults"),
        (["--schedule", "f=/n=5:crash:zz"], "crash names zz"),  # a node this workload lacks
        (["--schedule", "f=/n=", "--faults", "loss"], "leave out --faults"),
        (["--minimize", "--schedule", "f=/n="], "not both"),
        (["--minimize", "--max-runs", "1"], "--max-runs"),
        (["--chart-out", "x.svg"], "goes with --minimize"),
        (["--minimize", "--chart-out", "x.png"], "must end in .svg or .html"),
    ],
)
def test_bad_sim_input_is_one_line_exit_2(args, says):
    result = _cli("--workload", "rpc", *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_minimize_of_a_passing_seed_says_so():
    result = _cli("--workload", "rpc", "--seed", "0", "--minimize")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["error: seed 0 of workload rpc passes: nothing to minimize"]


# ------------------------------------------------------------------------------ replay


def test_the_recorded_schedule_replays_the_run_event_for_event():
    """metastore forget_promise, seed 0: the seed's run and the run of its recorded schedule
    (the nemesis's crashes and partitions, at their exact times) have the same trace."""
    wl = get_workload("metastore")
    first = run_seed(wl, RunConfig(0, frozenset(wl.faults), "forget_promise"))
    assert first.violations and first.schedule is not None and len(first.schedule.nemesis) >= 5
    again = run_seed(wl, scheduled_config(0, decode(first.schedule.encode()), "forget_promise"))
    assert (again.digest, again.events, again.violations) == (first.digest, first.events, first.violations)


def test_a_schedule_leaves_out_operations_and_faults():
    wl = get_workload("rpc")
    full = run_seed(wl, RunConfig(1, frozenset(wl.faults)))
    none = Schedule(frozenset(), (), {s: frozenset() for s in full.schedule.ops})
    bare = run_seed(wl, scheduled_config(1, none, None))
    assert bare.events == 0 and bare.violations == []


def test_minimized_bug_switch_fails_the_same_check_and_its_replay_reproduces_it():
    """rpc ignore_rid, seed 0: shrink it (a small budget), rerun the printed command."""
    wl = get_workload("rpc")
    report = minimize(wl, 0, frozenset(wl.faults), "ignore_rid", max_runs=30)
    assert report["check"] == "_ call _ _ reply answers another request"
    assert report["events_after"] < report["events_before"]
    assert report["ops_after"] < report["ops_before"] and report["faults_after"] <= report["faults_before"]
    assert report["runs"] <= 30 and len(report["history"]) == report["events_after"]
    again = run_seed(wl, scheduled_config(0, decode(report["schedule"]), "ignore_rid"))
    assert report["check"] in {check_name(v) for v in again.violations}
    argv = shlex.split(report["replay"])
    assert argv[0] == "delos-ref" and "--schedule" in argv
    proc = subprocess.run([DELOS_REF, *argv[1:]], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    replayed = json.loads(proc.stdout)
    assert report["check"] in {check_name(v["what"]) for v in replayed["violations"]}


def test_minimize_cli_json_has_the_promised_fields():
    result = _cli("--workload", "rpc", "--seed", "0", "--bug", "ignore_rid", "--minimize", "--max-runs", "12", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("events_before", "events_after", "faults_before", "faults_after", "ops_before", "ops_after", "check", "replay", "history"):
        assert key in report
    assert report["runs"] == 12 and report["exhausted"]


def test_minimize_writes_the_chart_of_the_minimal_run(tmp_path):
    """``--chart-out``: the minimal run drawn, titled as minimized, its violation marked (issue 20)."""
    out = tmp_path / "min.svg"
    result = _cli("--workload", "rpc", "--seed", "0", "--bug", "ignore_rid", "--minimize", "--max-runs", "20", "--chart-out", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    svg = out.read_text()
    assert "<svg" in svg and "rpc seed 0 (minimized)" in svg
    assert 'fill="#d62728"' in svg and "answers another request" in svg, "the violation is marked in red, explained"
    assert report["events_after"] < report["events_before"]


def test_chart_out_without_the_drawing_library_is_one_line_exit_2(monkeypatch):
    """Where drawsvg is missing, --chart-out says so before any run (no NameError, no traceback)."""
    import cli.main

    monkeypatch.setattr(cli.main, "charts_available", lambda: False)
    result = _cli("--workload", "rpc", "--seed", "0", "--bug", "ignore_rid", "--minimize", "--chart-out", "x.svg")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "charts are not available in this build" in lines[0], result.stderr
