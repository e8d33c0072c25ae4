"""Trace checking of ``striped`` simulations against StripedLoglet.tla's Python transcription
(``delos_ref/tracecheck/striped.py``) and NativeLoglet.tla's (each stripe): clean traces are
accepted, and a trace where a bug switch acted is rejected, naming the spec's condition."""

from __future__ import annotations

import pytest

from delos_ref.loglet.striped import BUG_ACKS_OVER_HOLE, BUG_PARTIAL_SEAL
from delos_ref.tracecheck import check_workload


def test_striped_traces_are_behaviours_of_the_specs():
    result = check_workload("striped", seeds=8)
    assert result["rejected"] == [] and result["crashed"] == [], result
    assert result["accepted"] == 8
    assert result["steps"].get("StripedLoglet.Ack", 0) > 0 and result["steps"].get("StripedLoglet.SealReturn", 0) > 0


@pytest.mark.parametrize("bug, condition", [(BUG_ACKS_OVER_HOLE, "NoAckAboveHole"), (BUG_PARTIAL_SEAL, "SealDone")])
def test_each_bug_switch_is_rejected_by_the_striped_spec(bug, condition):
    result = check_workload("striped", seeds=3, bug=bug)
    whys = [r["why"] for r in result["rejected"] if r["spec"] == "StripedLoglet"]
    assert whys and all(condition in w for w in whys), result["rejected"]
