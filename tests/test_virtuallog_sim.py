"""The ``log`` simulation workload (delos_ref/sim/workload_log.py): the VirtualLog under
appenders, readers and racing reconfigurers over NativeLoglets, StripedLoglets and memory
loglets, with
faults, and a supervisor (failure detection -> reconfiguration) on every server. No
violations without bugs; the bug switch of each of the seed's five requirements is caught
(docs/design.md §3-§5).
"""

from __future__ import annotations

import pytest

from delos_ref.sim import RunConfig, get_workload, run_seed, sweep
from tests.test_tracecheck import CORRECT_RUN_SEEDS

LOG = get_workload("log")
FAULTS = frozenset(LOG.faults)  # every fault, sequencer and MetaStore crashes included
#: Bug switch -> how many seeds (from 0) the search may use (see the issue notes for the
#: measured first catching seeds).
BUG_SEEDS = {
    "metastore_write_without_version": 15,  # requirement 1
    "reappend_unknown": 3,  # exactly-once appends (issue 17, item 1): caught by 18 of seeds 0-19
    "seal_on_minority": 5,  # 2
    "logserver_accepts_after_seal": 5,  # 3
    "check_tail_hides_seal": 5,  # 4
    "loglet_never_reports_failures": 3,  # 5
    # Cold storage (issue 19): first caught at seeds 9, 6 and 1 (faults include bitrot).
    "migrate_unsealed": 10,
    "migrate_before_verified": 7,
    "cold_read_unchecked": 2,
}


def test_log_workload_lists_every_bug_switch():
    assert sorted(LOG.bugs) == sorted(BUG_SEEDS)


def test_log_sweep_has_no_violations_under_all_faults():
    """40 seeds under all faults: seeds 0-29 are the traced runs of test_tracecheck.py (clean
    for the simulator and for the specs), this sweep runs seeds 30-39."""
    traced = CORRECT_RUN_SEEDS["log"]
    summary = sweep(LOG, seeds=40 - traced, first_seed=traced, faults=FAULTS)
    assert summary["runs"] == 40 - traced
    assert summary["violations"] == [], summary["violations"][:3]


def test_log_without_faults_appends_through_several_reconfigurations():
    result = run_seed(LOG, RunConfig(4, frozenset()))
    assert result.violations == []
    assert result.stats["acked"] > 40 and result.stats["versions"] > 3
    assert result.stats["net"]["lost"] == 0


def test_appends_resume_soon_after_the_sequencer_crashes():
    """Requirement 5: the supervisors notice the dead sequencer (heartbeats, ~1 s) and move the
    log onto a new NativeLoglet; the next append succeeds well inside the 10 s bound."""
    for seed in range(3):
        result = run_seed(LOG, RunConfig(seed, frozenset()))
        assert result.violations == []
        assert result.stats["resumed_after_s"] is not None and result.stats["resumed_after_s"] < 4.0, result.stats


def test_log_same_seed_same_trace_digest():
    a = run_seed(LOG, RunConfig(9, FAULTS))
    b = run_seed(LOG, RunConfig(9, FAULTS))
    assert a.digest == b.digest and a.events > 100


@pytest.mark.parametrize("bug", sorted(BUG_SEEDS))
def test_log_bug_switch_is_caught(bug):
    summary = sweep(LOG, seeds=BUG_SEEDS[bug], faults=FAULTS, bug=bug, stop_at_first=True)
    assert summary["violations"], f"bug {bug} was not caught in {BUG_SEEDS[bug]} seeds"
    assert f"--bug {bug}" in summary["violations"][0]["replay"]


def test_log_workload_hot_swaps_between_native_and_striped_loglets():
    """Issue 18: the reconfigurers move the log onto StripedLoglets and off them again, under
    every fault; striped segments take acknowledged appends (and fillers, when a stripe lags),
    and the run stays clean."""
    seen = {"StripedAck": 0, "StripedSeal": 0}
    for seed in range(3):
        result = run_seed(LOG, RunConfig(seed, FAULTS, keep_trace=True))
        assert result.violations == [], result.violations[:3]
        for e in result.trace:
            if e["event"] in seen:
                seen[e["event"]] += 1
    assert seen["StripedAck"] > 0 and seen["StripedSeal"] > 0, seen


def test_log_pinned_seed_92_a_cold_file_rotted_under_a_skip():
    """Found by the sweep: a cold segment later skipped (a skip loglet over the cold copy)
    had a file rotted at rest; the check allowing a rotted range to be unreadable did not
    look under the skip, and called the (correct) read failure a violation."""
    result = run_seed(LOG, RunConfig(92, FAULTS))
    assert result.violations == [] and result.stats["rotted"] >= 1 and result.stats["skips"] >= 1


def test_log_pinned_seed_119_a_filler_read_before_its_cold_file_rotted():
    """Found by the 2,000-seed sweep: a reader saw a StripedLoglet filler at 14; later the
    cold file holding 14 rotted at rest, so the final read could not read it and the filler
    had no stand-in operation in the history ("not linearizable": nobody appended
    '<filler at 14>'). A rotted position now gets the same stand-in as a filler."""
    result = run_seed(LOG, RunConfig(119, FAULTS))
    assert result.violations == [] and result.stats["rotted"] >= 1


def test_log_pinned_seed_1054_a_supervisor_installs_a_striped_successor_during_the_crash_check():
    """Found by the sweep: the sequencer-crash check extends the chain with a NativeLoglet,
    but a supervisor's striped successor won the race; the check then asked a
    StripedLogletConfig for its ``sequencer`` (AttributeError). It now retries the extend
    until the active segment is native."""
    result = run_seed(LOG, RunConfig(1054, FAULTS))
    assert result.violations == []


@pytest.mark.parametrize("workload, seeds", [("loglet", 12), ("log", 6), ("kv", 4), ("striped", 8)])
def test_sweeps_with_check_tail_probing_a_majority_first_are_clean(workload, seeds, monkeypatch):
    """``NativeOptions.probe_majority_first``, as the nodes run it (the simulator's default
    asks every LogServer, keeping the docs' pinned runs): every workload built on the
    NativeLoglet, under all its faults, with no violation. The default suite runs a few seeds
    of each; the issue notes give the long sweeps. It is on: fewer TailQuery requests than
    the same seed with it off."""
    import dataclasses

    from delos_ref.sim import workload_loglet

    wl = get_workload(workload)
    faults = frozenset(wl.faults)
    off = run_seed(wl, RunConfig(seeds, faults, keep_trace=True))
    monkeypatch.setattr(workload_loglet, "SIM_OPTIONS", dataclasses.replace(workload_loglet.SIM_OPTIONS, probe_majority_first=True))
    on = run_seed(wl, RunConfig(seeds, faults, keep_trace=True))

    def queries(run) -> int:
        return sum(1 for e in run.trace if e.get("event") == "deliver" and e.get("msg") == "TailQuery" and e.get("kind") == 1)

    assert on.violations == [] and queries(on) < queries(off), (on.violations[:3], queries(on), queries(off))
    summary = sweep(wl, seeds=seeds, faults=faults)
    assert summary["violations"] == [], summary["violations"][:3]
