"""Trace checking (issue 8): simulator traces against the transcriptions of the TLA+ specs.

* traces of correct seeded runs under every fault are accepted, for every spec their
  workload exercises (the >= 500-seed sweeps are ``slow``; the report quotes
  ``delos-ref trace check --workload W --seeds 500``);
* traces of every bug switch are rejected: every seed the simulator's own checks flag is
  rejected too, by the spec that the bug breaks;
* hand-made traces exercise single rules (an enabling condition, a logged-state mismatch);
* the prepared traces use exactly the event names the ``specs/Trace*.tla`` modules match.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from delos_ref.sim.harness import RunConfig, get_workload, parse_faults, run_seed
from delos_ref.tracecheck import SPEC_OF_WORKLOAD, TraceViolation, check_events
from delos_ref.tracecheck.tla import HOW_TO_GET_TLC, prepare, tlc_command

SPECS = Path(__file__).resolve().parent.parent / "specs"


def _run(workload: str, seed: int, bug: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    wl = get_workload(workload)
    result = run_seed(wl, RunConfig(seed, parse_faults(wl, None), bug, keep_trace=True))
    assert result.trace is not None
    return result.trace, result.violations


def _rejected_by(trace: list[dict[str, Any]], workload: str) -> str | None:
    for spec in SPEC_OF_WORKLOAD[workload]:
        try:
            check_events(spec, trace)
        except TraceViolation:
            return spec
    return None


# ---------------------------------------------------------------- correct runs


#: Workload -> the seeds (0 .. n-1, every fault) whose traces the default suite checks. Each run
#: must also be clean for the simulator's own checks, so the sweeps of test_metastore_sim.py,
#: test_loglet_sim.py and test_virtuallog_sim.py start at these seeds rather than run them twice.
CORRECT_RUN_SEEDS = {"metastore": 60, "loglet": 30, "log": 20}  # `make test-slow` runs 500 of each


@pytest.mark.parametrize(("workload", "seeds"), sorted(CORRECT_RUN_SEEDS.items()))
def test_correct_runs_are_behaviours_of_the_specs(workload: str, seeds: int) -> None:
    steps: dict[str, int] = {}
    for seed in range(seeds):
        trace, violations = _run(workload, seed)
        assert violations == [], f"seed {seed}: the simulator itself found {violations[:1]}"
        for spec in SPEC_OF_WORKLOAD[workload]:
            for action, n in check_events(spec, trace).items():  # raises TraceViolation
                steps[f"{spec}.{action}"] = steps.get(f"{spec}.{action}", 0) + n
    # The traces exercised the protocol, not just idle time: the main actions all ran.
    expected = {
        "metastore": ["Phase1b", "Phase2a", "Phase2b", "Learn", "WriteStep", "ReadStep", "RejectPrepare", "RejectAccept"],
        "loglet": ["Assign", "StoreAt", "ReceiveStored", "ReceiveRefused", "Commit", "SealServer", "SealDone", "CTWaitDone", "RepairDone", "RepairServer", "Crash"],
        "log": ["AppendEntry", "RevealChosen", "RevealRead"],
    }[workload]
    spec = SPEC_OF_WORKLOAD[workload][-1]
    for action in expected:
        assert steps.get(f"{spec}.{action}", 0) > 0, f"no {action} step in {seeds} {workload} traces: {steps}"


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["metastore", "loglet", "log"])
def test_500_correct_runs(workload: str) -> None:
    for seed in range(500):
        trace, _ = _run(workload, seed)
        assert _rejected_by(trace, workload) is None, f"seed {seed} rejected"


# ------------------------------------------------------------------ bug switches

BUGS = [
    ("metastore", "ignore_accepted", "MetaStorePaxos"),
    ("metastore", "forget_promise", "MetaStorePaxos"),
    ("loglet", "check_tail_neither_seals_nor_repairs", "NativeLoglet"),
    ("loglet", "logserver_accepts_after_seal", "NativeLoglet"),
    ("loglet", "seal_on_minority", "NativeLoglet"),
    ("loglet", "sequencer_acks_before_majority", "NativeLoglet"),
    ("log", "metastore_write_without_version", "VirtualLog"),
    ("log", "seal_on_minority", "NativeLoglet"),
    ("log", "logserver_accepts_after_seal", "NativeLoglet"),
    ("log", "migrate_before_verified", "VirtualLog"),  # Modify before ColdVerified (issue 19)
]


@pytest.mark.parametrize(("workload", "bug", "spec"), BUGS, ids=[f"{w}-{b}" for w, b, _ in BUGS])
def test_bug_switch_traces_are_rejected(workload: str, bug: str, spec: str) -> None:
    assert bug in get_workload(workload).bugs
    rejected = 0
    for seed in range(6):
        trace, violations = _run(workload, seed, bug)
        by = _rejected_by(trace, workload)
        if violations:
            assert by is not None, f"seed {seed}: the simulator caught {bug}, the trace checker did not"
        if by is not None:
            assert by == spec, f"seed {seed}: {bug} rejected by {by}, expected {spec}"
            rejected += 1
    assert rejected >= 1, f"no trace of {bug} rejected in 6 seeds"


# ------------------------------------------------------------ hand-made traces


def _acc(event: str, node: str, instance: int, ballot: list, promised: list, accepted: list, value: Any = None) -> dict[str, Any]:
    return {"role": "acceptor", "event": event, "node": node, "instance": instance, "ballot": ballot, "promised": promised, "accepted_ballot": accepted, "accepted_value": value}


Z = [0, ""]
V1 = {"writer": "c1", "seq": 1, "data": "x"}
V2 = {"writer": "c2", "seq": 1, "data": "y"}
CONFIG = [{"role": "net", "event": "deliver", "node": "~net", "dst": a, "msg": "Prepare"} for a in ("a1", "a2", "a3")]


def _chosen_v1() -> list[dict[str, Any]]:
    return CONFIG + [
        _acc("Promise", "a1", 1, [1, "c1"], [1, "c1"], Z),
        _acc("Promise", "a2", 1, [1, "c1"], [1, "c1"], Z),
        {"role": "metastore", "event": "Propose", "node": "c1", "proposer": "c1", "instance": 1, "ballot": [1, "c1"], "value": V1, "adopted": False},
        _acc("Accepted", "a1", 1, [1, "c1"], [1, "c1"], [1, "c1"], V1),
        _acc("Accepted", "a2", 1, [1, "c1"], [1, "c1"], [1, "c1"], V1),
        {"role": "metastore", "event": "Chosen", "node": "c1", "proposer": "c1", "instance": 1, "ballot": [1, "c1"], "value": V1},
        {"role": "metastore", "event": "WriteDone", "node": "c1", "proposer": "c1", "expected_version": 0, "seq": 1, "outcome": ["written", 1]},
    ]


def test_metastore_accepts_a_choice() -> None:
    steps = check_events("MetaStorePaxos", _chosen_v1())
    assert steps == {"Learn": 1, "Phase1b": 2, "Phase2a": 1, "Phase2b": 2, "WriteStep": 1}


def test_metastore_rejects_p2c_violation_and_promise_below_promise() -> None:
    # c2 gets promises from a2, a3 at a higher ballot; a2 reports V1 accepted: P2c forces V1.
    tail = [
        _acc("Promise", "a2", 1, [2, "c2"], [2, "c2"], [1, "c1"], V1),
        _acc("Promise", "a3", 1, [2, "c2"], [2, "c2"], Z),
        {"role": "metastore", "event": "Propose", "node": "c2", "proposer": "c2", "instance": 1, "ballot": [2, "c2"], "value": V2, "adopted": False},
    ]
    with pytest.raises(TraceViolation, match="P2c"):
        check_events("MetaStorePaxos", _chosen_v1() + tail)
    forgot = [_acc("Promise", "a1", 1, [1, "c0"], [1, "c0"], Z)]  # below its promise [1, "c1"]
    with pytest.raises(TraceViolation, match="below its promise"):
        check_events("MetaStorePaxos", _chosen_v1() + forgot)


def _loglet(event: str, role: str, node: str, **fields: Any) -> dict[str, Any]:
    return {"role": role, "event": event, "node": node, "loglet": "L", **fields}


def test_loglet_rejects_commit_before_majority_and_store_after_seal() -> None:
    base = [
        _loglet("Activate", "sequencer", "q", logservers=["s1", "s2", "s3"]),
        _loglet("Append", "sequencer", "q", first=0, count=2, client="a"),
        _loglet("Store", "logserver", "s1", lo=0, hi=2, local_tail=2),
        _loglet("Stored", "sequencer", "q", server="s1", local_tail=2, sealed=False),
    ]
    with pytest.raises(TraceViolation, match="majority"):
        check_events("NativeLoglet", base + [_loglet("Commit", "sequencer", "q", known_tail=2)])
    ok = base + [
        _loglet("Store", "logserver", "s2", lo=0, hi=1, local_tail=1),
        _loglet("Stored", "sequencer", "q", server="s2", local_tail=1, sealed=False),
        _loglet("Commit", "sequencer", "q", known_tail=1),
        _loglet("Seal", "logserver", "s2", local_tail=1),
    ]
    assert check_events("NativeLoglet", ok)["Commit"] == 1
    with pytest.raises(TraceViolation, match="after its seal bit"):
        check_events("NativeLoglet", ok + [_loglet("Store", "logserver", "s2", lo=1, hi=2, local_tail=2)])


# A trim (NativeLoglet's TrimHeld): s3 missed both entries, the loglet is sealed, and the
# migration's drop trims it past them; s3 then counts them as held (its local tail is 2).
_TRIM_BASE = [
    _loglet("Activate", "sequencer", "q", logservers=["s1", "s2", "s3"]),
    _loglet("Append", "sequencer", "q", first=0, count=2, client="a"),
    _loglet("Store", "logserver", "s1", lo=0, hi=2, local_tail=2),
]
_TRIM_OK = _TRIM_BASE + [
    _loglet("Store", "logserver", "s2", lo=0, hi=2, local_tail=2),
    _loglet("Stored", "sequencer", "q", server="s1", local_tail=2, sealed=False),
    _loglet("Stored", "sequencer", "q", server="s2", local_tail=2, sealed=False),
    _loglet("Commit", "sequencer", "q", known_tail=2),
    _loglet("Seal", "logserver", "s3", local_tail=0),
    _loglet("Trim", "logserver", "s3", trim_point=2, local_tail=2),
    _loglet("Seal", "logserver", "s1", local_tail=2),
]
# Only s1 holds the entries: a trim of s3 past them drops what is not committed.
_TRIM_BAD = _TRIM_BASE + [_loglet("Trim", "logserver", "s3", trim_point=2, local_tail=2)]


def test_loglet_trims_only_below_what_is_committed() -> None:
    assert check_events("NativeLoglet", _TRIM_OK)["TrimHeld"] == 1
    with pytest.raises(TraceViolation, match="above what a majority holds"):
        check_events("NativeLoglet", _TRIM_BAD)


def test_tlc_trims_only_below_what_is_committed() -> None:
    """TraceNativeLoglet.tla maps a LogServer's Trim to TrimHeld (before, it had no action for
    it and rejected every trace with a trim, which the Python checker accepted)."""
    from delos_ref.tracecheck.tla import tlc_command, validate_with_tlc

    try:
        tlc_command()
    except Exception:
        pytest.skip("TLC is not available (TLA2TOOLS_JAR / TLA_COMMUNITY_JAR, or tlc on PATH)")
    ok = validate_with_tlc("NativeLoglet", _TRIM_OK)
    assert ok.accepted, ok.report
    bad = validate_with_tlc("NativeLoglet", _TRIM_BAD)
    assert not bad.accepted and bad.event is not None and bad.event["event"] == "Trim", bad.report


# ------------------------------------------------------------- TLA+ trace specs


@pytest.mark.parametrize("spec", ["MetaStorePaxos", "NativeLoglet", "VirtualLog"])
def test_prepared_trace_matches_the_trace_spec(spec: str) -> None:
    """Every event name of a prepared trace is one the Trace spec matches (Ev.event = "...")."""
    workload = {"MetaStorePaxos": "metastore", "NativeLoglet": "loglet", "VirtualLog": "log"}[spec]
    trace, _ = _run(workload, 3)
    prepared = prepare(spec, trace)
    assert prepared[0]["event"] == "Config"
    text = (SPECS / f"Trace{spec}.tla").read_text()
    matched = set(re.findall(r'Ev\.event = "([A-Za-z_]+)"', text))
    names = {line["event"] for line in prepared[1:]}
    assert names and names <= matched, f"events the Trace spec cannot match: {names - matched}"
    json.dumps(prepared)  # plain JSON, as ndJsonDeserialize reads it


def test_cli_check_and_validate(tmp_path: Path) -> None:
    from cli.main import app

    runner = CliRunner()
    path = tmp_path / "t.ndjson"
    result = runner.invoke(app, ["trace", "record", "--workload", "loglet", "--seed", "2", "--out", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["trace", "check", "--spec", "NativeLoglet", str(path)])
    assert result.exit_code == 0 and "accepted" in result.output, result.output
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"role": "x"}\nnot json\n')
    result = runner.invoke(app, ["trace", "check", str(bad)])
    assert result.exit_code == 2 and "bad.ndjson:1" in result.output
    result = runner.invoke(app, ["trace", "check", "--workload", "loglet", "--seeds", "2", "--bug", "seal_on_minority"])
    assert result.exit_code == 1 and "2 rejected" in result.output, result.output
    try:
        tlc_command()
    except Exception:
        result = runner.invoke(app, ["trace", "validate", "NativeLoglet", str(path)])
        assert result.exit_code == 2 and "TLA2TOOLS_JAR" in result.output
        assert "TLA2TOOLS_JAR" in HOW_TO_GET_TLC


def test_real_cluster_trace_files_are_checked(tmp_path: Path) -> None:
    """``up --trace``: each node's trace.ndjson and the ``up`` client's (``clients/``), merged
    by wall-clock time, are a behaviour of MetaStorePaxos (the chain ``up`` installs: the
    client's own Propose is in its file, so no Phase2a is hidden)."""
    from cluster_fixture import running_cluster

    from delos_ref.tracecheck.metastore import MetaStoreChecker
    from delos_ref.tracecheck.ndjson import load_traces

    with running_cluster(tmp_path / "c", extra=("--trace",)):
        pass
    events = load_traces([tmp_path / "c"])
    nodes = {e["node"] for e in events}
    assert {n for n in nodes if not n.startswith("up-")} == {"n1", "n2", "n3"} and nodes != {"n1", "n2", "n3"}, nodes
    assert not any(e.get("hidden") for e in MetaStoreChecker.preprocess(events))
    steps = check_events("MetaStorePaxos", events)
    # One value is proposed afresh: the chain `up` installs, by its client. A node's supervisor
    # or replica that reads the register while that write is in flight may finish the instance
    # itself (phase 1 at a higher ballot finds the value accepted and proposes it again,
    # `adopted`): a second Phase2a of the same value, which the spec allows and checks.
    proposes = [e for e in events if e.get("role") == "metastore" and e["event"] == "Propose"]
    fresh = [e for e in proposes if not e.get("adopted")]
    assert len(fresh) == 1 and fresh[0]["node"].startswith("up-"), fresh
    assert all(e["value"] == fresh[0]["value"] and e["instance"] == fresh[0]["instance"] for e in proposes), proposes
    assert steps["Phase2b"] >= 2 and steps["Phase2a"] == len(proposes), steps


# ------------------------------------------------------- chains in every entry point


def _log_trace(tmp_path: Path, seed: int = 1) -> Path:
    path = tmp_path / f"log-{seed}.ndjson"
    with open(path, "w") as fp:
        for event in _run("log", seed)[0]:
            fp.write(json.dumps(event, sort_keys=True) + "\n")
    return path


def test_chains_decode_in_a_process_that_never_imported_the_virtuallog(tmp_path: Path) -> None:
    """``trace check`` / ``trace validate`` import only ``delos_ref.tracecheck``: the chain's
    codec tags must be registered by the checker itself, or every reveal is silently skipped."""
    import subprocess
    import sys

    path = _log_trace(tmp_path)
    script = (
        "import json, sys\n"
        "from delos_ref.tracecheck.virtuallog import decode_chain\n"
        "from delos_ref.tracecheck.tla import prepare\n"
        "events = [json.loads(line) for line in open(sys.argv[1])]\n"
        "chosen = [e for e in events if e['event'] == 'Chosen' and e['role'] == 'metastore']\n"
        "decoded = sum(decode_chain(e['value']['data']) is not None for e in chosen)\n"
        "reveals = sum(line['event'] == 'Reveal' for line in prepare('VirtualLog', events))\n"
        "print(json.dumps([len(chosen), decoded, reveals]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    chosen, decoded, reveals = json.loads(proc.stdout)
    assert chosen > 0 and decoded == chosen and reveals >= chosen, (chosen, decoded, reveals)


def test_a_chain_that_does_not_decode_is_a_violation_not_a_skip(tmp_path: Path) -> None:
    import base64

    trace, _ = _run("log", 1)
    assert check_events("VirtualLog", trace)["RevealChosen"] > 0
    broken = []
    for e in trace:
        if (e["role"], e["event"]) == ("metastore", "Chosen"):
            data = base64.b64decode(e["value"]["data"]["b64"]).replace(b"loglet.native.config", b"loglet.nat1ve.config")
            e = {**e, "value": {**e["value"], "data": {"b64": base64.b64encode(data).decode()}}}
        broken.append(e)
    with pytest.raises(TraceViolation, match="does not decode"):
        check_events("VirtualLog", broken)
    # Appends acknowledged with no chain anywhere (the register's events left out, and the
    # migrations', which name chains too): refused.
    no_chain = [e for e in trace if e["role"] not in ("metastore", "migrate")]
    with pytest.raises(TraceViolation, match="no chain revealed"):
        check_events("VirtualLog", no_chain)


# ------------------------------------------------------------- trace validate (TLC)


def _tlc_or_skip() -> None:
    try:
        tlc_command()
    except Exception:
        pytest.skip("TLC is not available (TLA2TOOLS_JAR / TLA_COMMUNITY_JAR, or tlc on PATH)")


def _record(tmp_path: Path, workload: str, seed: int, bug: str | None = None) -> Path:
    path = tmp_path / f"{workload}-{seed}-{bug or 'ok'}.ndjson"
    with open(path, "w") as fp:
        for event in _run(workload, seed, bug)[0]:
            fp.write(json.dumps(event, sort_keys=True) + "\n")
    return path


def test_validate_a_spec_that_does_not_parse_is_a_tool_error_and_a_spec_path_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import app

    _tlc_or_skip()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    trace = _record(tmp_path, "loglet", 2)
    specs = tmp_path / "specs"
    specs.mkdir()
    for f in list(SPECS.glob("*.tla")) + list(SPECS.glob("*.cfg")):
        (specs / f.name).write_text(f.read_text())
    text = (specs / "TraceNativeLoglet.tla").read_text().replace("Next == TraceNext \\/ TraceDone", "Next == TraceNext \\/ TraceDone \\/")
    (specs / "TraceNativeLoglet.tla").write_text(text)
    result = CliRunner().invoke(app, ["trace", "validate", str(specs / "TraceNativeLoglet.tla"), str(trace)])
    assert result.exit_code == 2, result.output
    assert "spec does not parse" in result.output and "Parse Error" in result.output and "rejects" not in result.output
    # The same trace against the repository's spec (by name) is accepted.
    result = CliRunner().invoke(app, ["trace", "validate", "NativeLoglet", str(trace)])
    assert result.exit_code == 0 and "TLC accepts the trace" in result.output, result.output
    result = CliRunner().invoke(app, ["trace", "validate", str(tmp_path / "elsewhere" / "TraceNativeLoglet.tla"), str(trace)])
    assert result.exit_code == 2 and "no such file" in result.output, result.output
    assert list((tmp_path / "tmp").iterdir()) == [], "validate left files behind"


def test_validate_rejection_is_a_bounded_report_and_leaves_nothing_unless_keep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import app

    _tlc_or_skip()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    trace = _record(tmp_path, "loglet", 0, "sequencer_acks_before_majority")
    result = CliRunner().invoke(app, ["trace", "validate", "NativeLoglet", str(trace)])
    assert result.exit_code == 1, result.output
    report = result.output
    assert "TLC rejects the trace: Deadlock reached" in report
    assert '"event": "Commit"' in report and "trace event" in report and "expected action" in report
    assert "failed condition" in report and "majority" in report
    assert "last matched state" in report and "->" in report
    assert len(report.splitlines()) < 40 and "State 1:" not in report  # never TLC's behaviour
    assert list(scratch.iterdir()) == []
    result = CliRunner().invoke(app, ["trace", "validate", "NativeLoglet", str(trace), "--keep"])
    assert result.exit_code == 1
    kept = list(scratch.iterdir())
    assert len(kept) == 1 and (kept[0] / "tlc.out").is_file() and "State 1:" in (kept[0] / "tlc.out").read_text()
    assert str(kept[0]) in result.output


# ------------------------------------------------------------------ crash cuts


def _write(path: Path, events: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + tail)
    return path


def _timed(events: list[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    return [{**e, "t": t0 + i} for i, e in enumerate(events)]


def test_a_check_stopped_after_a_crash_cut_is_truncated_and_one_before_it_is_a_violation(tmp_path: Path) -> None:
    from cli.main import app

    start = {"role": "node", "event": "Start", "node": "s2"}
    seq = _timed([
        _loglet("Activate", "sequencer", "q", logservers=["s1", "s2", "s3"]),
        _loglet("Append", "sequencer", "q", first=0, count=1, client="a"),
    ], 0)
    # s2 stores, seals, is killed (its next step durable but unlogged), restarts, and stores
    # again at a place the trace cannot explain: truncated, since s2's state after the cut
    # may hold the lost step.
    s2 = _timed([start, _loglet("Store", "logserver", "s2", lo=0, hi=1, local_tail=1), _loglet("Seal", "logserver", "s2", local_tail=1)], 10)
    s2 += _timed([start, _loglet("Store", "logserver", "s2", lo=1, hi=2, local_tail=2)], 20)
    files = [str(_write(tmp_path / "q.ndjson", seq)), str(_write(tmp_path / "s2.ndjson", s2))]
    result = CliRunner().invoke(app, ["trace", "check", "--spec", "NativeLoglet", *files])
    assert result.exit_code == 3 and "truncated" in result.output and "node s2 crashed and restarted" in result.output, result.output
    assert "after its seal bit" in result.output  # what the checker stopped at is still shown
    # The same violation with no restart in s2's file: a violation.
    files[1] = str(_write(tmp_path / "s2-no-crash.ndjson", s2[:3] + s2[4:]))
    result = CliRunner().invoke(app, ["trace", "check", "--spec", "NativeLoglet", *files])
    assert result.exit_code == 1 and "rejected" in result.output and "truncated" not in result.output, result.output
    # A violation before the cut stays a violation, cut or not.
    early = _timed([start, _loglet("Seal", "logserver", "s2", local_tail=0), _loglet("Store", "logserver", "s2", lo=0, hi=1, local_tail=1)], 10)
    files[1] = str(_write(tmp_path / "s2-early.ndjson", early + _timed([start], 30)))
    result = CliRunner().invoke(app, ["trace", "check", "--spec", "NativeLoglet", *files])
    assert result.exit_code == 1 and "rejected" in result.output, result.output


def test_lines_cut_by_a_crash_are_left_out_and_noted_and_other_bad_lines_are_errors(tmp_path: Path) -> None:
    from delos_ref.tracecheck.ndjson import BadTrace, load_traces_report

    start = {"role": "node", "event": "Start", "node": "n1", "t": 1.0}
    ok = {"role": "x", "event": "y", "node": "n1", "t": 2.0}
    path = _write(tmp_path / "a.ndjson", [start, ok], tail='{"role": "x", "ev')
    loaded = load_traces_report([path])
    assert loaded.events == [start, ok] and "cut in the middle" in loaded.notes[0] and loaded.cuts == {}
    path.write_text(json.dumps(start) + "\n" + '{"role": "x", "ev' + "\n" + json.dumps({**start, "t": 3.0}) + "\n")
    loaded = load_traces_report([path])
    assert len(loaded.events) == 2 and loaded.cuts == {"n1": 3.0} and "a line cut by a crash" in loaded.notes[0]
    path.write_text(json.dumps(start) + "\n" + '{"role": "x", "ev' + "\n" + json.dumps(ok) + "\n")
    with pytest.raises(BadTrace, match="a.ndjson:2"):
        load_traces_report([path])
