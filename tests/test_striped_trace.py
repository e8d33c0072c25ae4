"""Trace checking of ``striped`` simulations against StripedLoglet.tla's Python transcription
(``delos_ref/tracecheck/striped.py``) and NativeLoglet.tla's (each stripe): clean traces are
accepted, and a trace where a bug switch acted is rejected, naming the spec's condition."""

from __future__ import annotations

import pytest

from delos_ref.loglet.striped import BUG_ACKS_OVER_HOLE, BUG_HALF_SEALED_TAIL, BUG_PARTIAL_SEAL
from delos_ref.sim import get_workload, sweep
from delos_ref.tracecheck import check_workload


def test_striped_traces_are_behaviours_of_the_specs():
    result = check_workload("striped", seeds=8)
    assert result["rejected"] == [] and result["crashed"] == [], result
    assert result["accepted"] == 8
    assert result["steps"].get("StripedLoglet.Ack", 0) > 0 and result["steps"].get("StripedLoglet.SealReturn", 0) > 0


@pytest.mark.parametrize("bug, condition", [(BUG_ACKS_OVER_HOLE, "NoAckAboveHole"), (BUG_PARTIAL_SEAL, "SealDone"), (BUG_HALF_SEALED_TAIL, "CheckTail")])
def test_each_bug_switch_is_rejected_by_the_striped_spec(bug, condition):
    """The first seed (of 40) where the simulator's checks catch the bug: its trace is rejected
    too, by the striped spec's condition for that rule."""
    workload = get_workload("striped")
    found = sweep(workload, seeds=40, faults=frozenset(workload.faults), bug=bug, stop_at_first=True)
    assert found["violations"], f"{bug}: 40 seeds found nothing"
    result = check_workload("striped", seeds=1, first_seed=found["violations"][0]["seed"], bug=bug)
    whys = [r["why"] for r in result["rejected"] if r["spec"] == "StripedLoglet"]
    assert whys and all(condition in w for w in whys), result["rejected"]
