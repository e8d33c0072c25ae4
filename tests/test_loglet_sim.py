"""The ``loglet`` simulation workload (delos_ref/sim/workload_loglet.py): a NativeLoglet under
appenders, a sealer and tail checkers, with LogServer crashes, partitions, loss, duplication
and reordering. No violations without bugs; each bug switch caught (docs/design.md §5, §3.4).

Every violation ever found without a bug switch is pinned in PINNED.
"""

from __future__ import annotations

import pytest

from delos_ref.sim import RunConfig, get_workload, run_seed, sweep
from tests.test_tracecheck import CORRECT_RUN_SEEDS

LOGLET = get_workload("loglet")
ALL = frozenset(LOGLET.faults)
#: Bug switch -> how many seeds (from 0) the search may use. Under all faults the first
#: catching seed is 0 for all but seal_on_minority (1); the budgets leave room for drift.
BUG_SEEDS = {
    "check_tail_neither_seals_nor_repairs": 10,
    "logserver_accepts_after_seal": 5,
    "seal_on_minority": 10,
    "sequencer_acks_before_majority": 10,
}


def test_loglet_workload_lists_every_bug_switch():
    assert sorted(LOGLET.bugs) == sorted(BUG_SEEDS)


def test_loglet_sweep_has_no_violations_under_all_faults():
    """80 seeds under all faults: seeds 0-29 are the traced runs of test_tracecheck.py (clean
    for the simulator and for the specs), this sweep runs seeds 30-79."""
    traced = CORRECT_RUN_SEEDS["loglet"]
    summary = sweep(LOGLET, seeds=80 - traced, first_seed=traced, faults=ALL)
    assert summary["runs"] == 80 - traced
    assert summary["violations"] == [], summary["violations"][:3]


def test_loglet_sweep_without_faults_acknowledges_and_seals():
    result = run_seed(LOGLET, RunConfig(4, frozenset()))
    assert result.violations == []
    assert result.stats["acked"] > 10 and result.stats["tails"] > 0
    assert result.stats["net"]["lost"] == 0


#: Seeds that once failed without a bug switch, each with what it found.
PINNED = {
    39: "a sealed server's tail, grown by repair, counted toward a commit: acks above a sealed tail",
}


@pytest.mark.parametrize("seed", sorted(PINNED))
def test_loglet_pinned_seed_stays_clean(seed):
    assert run_seed(LOGLET, RunConfig(seed, ALL)).violations == [], PINNED[seed]


def test_loglet_same_seed_same_trace_digest():
    a = run_seed(LOGLET, RunConfig(9, ALL))
    b = run_seed(LOGLET, RunConfig(9, ALL))
    assert a.digest == b.digest and a.events > 100


@pytest.mark.parametrize("bug", sorted(BUG_SEEDS))
def test_loglet_bug_switch_is_caught(bug):
    summary = sweep(LOGLET, seeds=BUG_SEEDS[bug], faults=ALL, bug=bug, stop_at_first=True)
    assert summary["violations"], f"bug {bug} was not caught in {BUG_SEEDS[bug]} seeds"
    assert f"--bug {bug}" in summary["violations"][0]["replay"]
