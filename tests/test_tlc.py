"""TLC on the specs (issue 16): every routine model completes with no error, and mutants of
the specs are caught.

The TLC runs need java and TLA2TOOLS_JAR / TLA_COMMUNITY_JAR (or a ``tlc`` command on PATH);
CI sets them (``.ci/run``), elsewhere those tests skip with the reason. The tests of the
runner itself (reading TLC's report, applying mutants) need no TLC.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from delos_ref import tlc

try:
    TOOLS: tlc.Tools | None = tlc.find_tools()
    MISSING = ""
except tlc.ToolsMissing as e:
    TOOLS, MISSING = None, str(e)

needs_tlc = pytest.mark.skipif(TOOLS is None, reason=MISSING)

# Generous: the routine models take about a minute each on two idle cores; CI machines may be
# busier. A model that needs more than this is too big for the default suite.
TIMEOUT_S = float(os.environ.get("TLC_TIMEOUT_S", "900"))
WORKERS = os.environ.get("TLC_WORKERS", "2")

# A few mutants, one per spec, that TLC catches within seconds; `make tlc-mutants` runs all.
FAST_MUTANTS = ["accept_below_promise", "seal_returns_after_one", "extend_without_seal"]


# ------------------------------------------------------------------ TLC on the models


def test_routine_models_are_the_mc_cfgs_but_deep() -> None:
    models = tlc.routine_models()
    assert {"MCMetaStorePaxos", "MCNativeLoglet", "MCVirtualLog"} <= set(models)
    assert not [m for m in models if m.endswith("Deep")]


@needs_tlc
@pytest.mark.parametrize("model", tlc.routine_models())
def test_routine_model_completes_with_no_error(model: str) -> None:
    assert TOOLS is not None
    r = tlc.run_model(TOOLS, model, workers=WORKERS, timeout_s=TIMEOUT_S)
    assert r.verdict == tlc.OK, f"{model}: {r.verdict} {r.invariant or ''} {r.message}"
    assert r.distinct and r.distinct > 1 and r.depth and r.depth > 1, f"{model}: {r}"


@needs_tlc
@pytest.mark.parametrize("name", FAST_MUTANTS)
def test_mutant_is_caught(name: str) -> None:
    assert TOOLS is not None
    (mutant,) = [m for m in tlc.load_mutants() if m.name == name]
    outcome = tlc.run_mutant(TOOLS, mutant, workers=WORKERS, timeout_s=TIMEOUT_S)
    assert outcome.caught, f"{name}: {outcome.verdict}"
    assert outcome.result.trace_length and outcome.result.trace_length >= 2


# ------------------------------------------------------------------ the runner itself


def test_every_mutant_applies_to_the_current_specs(tmp_path: Path) -> None:
    """A mutant whose text is gone from its spec would silently test the unchanged spec."""
    table = tlc.load_mutants()
    specs = {"MetaStorePaxos.tla", "NativeLoglet.tla", "VirtualLog.tla"}
    assert specs <= {m.spec for m in table}, "at least one mutant per protocol spec"
    for m in table:
        work = tmp_path / m.name
        work.mkdir()
        (work / m.spec).write_text((tlc.SPECS / m.spec).read_text(encoding="utf-8"), encoding="utf-8")
        tlc.apply_mutant(m, work)
        assert (work / m.spec).read_text(encoding="utf-8") != (tlc.SPECS / m.spec).read_text(encoding="utf-8")
        assert (tlc.SPECS / f"{m.model}.cfg").exists() and m.model in tlc.routine_models(), f"{m.name}: model {m.model}"
        cfg = (tlc.SPECS / f"{m.model}.cfg").read_text(encoding="utf-8")
        assert all(inv in cfg for inv in m.expect), f"{m.name}: {m.model}.cfg does not check {m.expect}"
    for fast in FAST_MUTANTS:
        assert fast in {m.name for m in table}


def test_a_rotten_mutant_fails_loudly(tmp_path: Path) -> None:
    spec = tmp_path / "Spec.tla"
    spec.write_text("Next == x' = x + 1\n", encoding="utf-8")
    fine = tlc.Mutant(name="fine", spec="Spec.tla", model="MCSpec", rule="-", edits=(("x + 1", "x + 3"),), expect=("Inv",))
    tlc.apply_mutant(fine, tmp_path)
    assert spec.read_text(encoding="utf-8") == "Next == x' = x + 3\n"
    rotten = tlc.Mutant(name="gone", spec="Spec.tla", model="MCSpec", rule="-", edits=(("x + 3", "x"), ("x + 1", "x + 2")), expect=("Inv",))
    with pytest.raises(tlc.MutantRotten, match="0 times"):
        tlc.apply_mutant(rotten, tmp_path)


def test_find_tools_says_how_to_get_tlc() -> None:
    with pytest.raises(tlc.ToolsMissing, match="tla2tools.jar"):
        tlc.find_tools({"PATH": "/nonexistent"})
    with pytest.raises(tlc.ToolsMissing, match="not a file"):
        tlc.find_tools({"PATH": os.environ.get("PATH", ""), "TLA2TOOLS_JAR": "/nonexistent/tla2tools.jar"})


COMPLETED = """\
Model checking completed. No error has been found.
  Estimates of the probability that TLC did not check all reachable states
351414 states generated, 41887 distinct states found, 0 states left on queue.
The depth of the complete state graph search is 31.
"""

VIOLATED = """\
Error: Invariant SealedAfterSeal is violated.
Error: The behavior up to this point is:
State 1: <Initial predicate>
/\\ x = 0
State 2: <StartSeal(c1) line 200, col 3 to line 204, col 80 of module NativeLoglet>
/\\ x = 1
State 3: <SealServer(c1,s1) line 210, col 3 to line 214, col 80 of module NativeLoglet>
/\\ x = 2
1234 states generated, 321 distinct states found, 17 states left on queue.
"""


def test_parse_output() -> None:
    ok = tlc.parse_output("MCNativeLoglet", COMPLETED, 33.0)
    assert (ok.verdict, ok.generated, ok.distinct, ok.depth) == (tlc.OK, 351414, 41887, 31)
    bad = tlc.parse_output("MCNativeLoglet", VIOLATED, 2.0)
    assert (bad.verdict, bad.invariant, bad.trace_length, bad.distinct) == (tlc.VIOLATED, "SealedAfterSeal", 3, 321)
    progress = (
        "Progress(8) at 2026-12-06 22:37:23: 2,368 states generated (2,368 s/min), 531 distinct states found (531 ds/min), 327 states left on queue.\n"
        "Progress(14) at 2026-12-06 22:38:23: 271,220 states generated (268,852 s/min), 42,816 distinct states found (42,285 ds/min), 20,964 states left on queue.\n"
    )
    slow = tlc.parse_output("M", progress, 120.0, timed_out=True)
    assert (slow.verdict, slow.generated, slow.distinct) == (tlc.TIMEOUT, 271220, 42816)
    err = tlc.parse_output("M", "*** Errors: 1\nUnknown operator: `Foo'.\n", 1.0)
    assert err.verdict == tlc.ERROR and "Errors" in err.message


# ------------------------------------------- what seal() promises, in the Python transcription


def _loglet(event: str, role: str, node: str, **fields: object) -> dict[str, object]:
    return {"role": role, "event": event, "node": node, "loglet": "L", **fields}


SEALED_L = [
    _loglet("Activate", "sequencer", "q", logservers=["s1", "s2", "s3"]),
    _loglet("Seal", "logserver", "s1", local_tail=0),
    _loglet("Seal", "logserver", "s2", local_tail=0),
    _loglet("SealReturned", "loglet", "c", tails={"s1": 0, "s2": 0}),
]


def test_python_checker_rejects_a_check_tail_that_hides_the_seal() -> None:
    """NativeLoglet: all_sealed / some_sealed end in RepairDone, which returns sealed."""
    from delos_ref.tracecheck.base import TraceViolation
    from delos_ref.tracecheck.run import check_events

    told = _loglet("CheckTail", "loglet", "c", case="all_sealed", tail=0, sealed=True, probes={"s1": 0, "s2": 0})
    assert check_events("NativeLoglet", [*SEALED_L, told])["RepairDone"] == 1
    hidden = {**told, "sealed": False}
    with pytest.raises(TraceViolation, match="seal bit goes unreported"):
        check_events("NativeLoglet", [*SEALED_L, hidden])
    with pytest.raises(TraceViolation, match="2 needed"):  # seal() after one LogServer
        check_events("NativeLoglet", [*SEALED_L[:2], _loglet("SealReturned", "loglet", "c", tails={"s1": 0})])


def test_check_tail_hides_seal_traces_are_rejected() -> None:
    """The simulator's check_tail_hides_seal bug switch (requirement 4): the CheckTail event
    logs the seal bit check_tail returns, and the NativeLoglet checker rejects the trace."""
    from delos_ref.tracecheck.run import check_workload

    report = check_workload("log", seeds=1, bug="check_tail_hides_seal")
    assert report["sim_violations"] == 1, report
    assert [r["spec"] for r in report["rejected"]] == ["NativeLoglet"], report
    assert "seal bit goes unreported" in report["rejected"][0]["why"]
