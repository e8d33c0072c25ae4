"""Seeded simulation of the MetaStore under every fault: a sweep that must stay clean, the
bug switches it must catch, determinism, and the invariant monitor's own rules."""

from __future__ import annotations

from delos_ref.sim import ALL_FAULTS, RunConfig, get_workload, run_seed, sweep
from delos_ref.sim.workload_metastore import METASTORE_BUGS, ChoiceMonitor
from tests.test_tracecheck import CORRECT_RUN_SEEDS

FAULTS = frozenset(ALL_FAULTS) - {"bitrot"}  # bitrot: a cold-storage fault, for workloads with a cold store
SWEEP_SEEDS = 200
#: Seeds 0-99 run clean (same faults) in tests/test_tracecheck.py, which checks each trace
#: against the specs too: the sweep here runs the other 100 of the 200.
TRACED_SEEDS = CORRECT_RUN_SEEDS["metastore"]
#: A bug switch must be caught within this many consecutive seeds (from seed 0). Measured:
#: both are caught at the first seed (see each test).
CATCH_WITHIN = 5


def test_metastore_sweep_of_200_seeds_with_all_faults_is_clean():
    """Loss, duplication, reordering, partitions and minority crashes, 3 or 5 acceptors:
    no two values chosen for a version, no gap, every history linearizable, and the healed
    cluster answers. Seeds 0 .. TRACED_SEEDS - 1 are the traced runs of test_tracecheck.py;
    this sweep runs the rest of 0-199."""
    assert set(get_workload("metastore").faults) == FAULTS, "the traced runs use every fault of the workload: these"
    summary = sweep(get_workload("metastore"), seeds=SWEEP_SEEDS - TRACED_SEEDS, first_seed=TRACED_SEEDS, faults=FAULTS)
    assert summary["runs"] == SWEEP_SEEDS - TRACED_SEEDS
    assert summary["violations"] == []


def test_bug_forget_promise_is_caught():
    """Acceptors that persist nothing forget what they accepted when they restart: the
    rolling restart at the end of each run leaves a majority that remembers no chosen
    version, and the final read goes back in time (or, mid-run, a second value is chosen)."""
    summary = sweep(get_workload("metastore"), seeds=CATCH_WITHIN, faults=FAULTS, bug="forget_promise", stop_at_first=True)
    assert summary["violations"], f"forget_promise not caught within {CATCH_WITHIN} seeds"
    assert summary["runs"] == 1  # caught at the first seed
    assert "--bug forget_promise" in summary["violations"][0]["replay"]


def test_bug_ignore_accepted_is_caught_as_two_values_chosen():
    """Proposers that skip P2c choose a second value in an instance whose value was already
    chosen; the monitor sees it as it happens."""
    summary = sweep(get_workload("metastore"), seeds=CATCH_WITHIN, faults=FAULTS, bug="ignore_accepted", stop_at_first=True)
    assert summary["runs"] == 1  # caught at the first seed
    assert any("two values chosen" in v["what"] for v in summary["violations"])


def test_workload_lists_its_bugs_and_faults():
    workload = get_workload("metastore")
    assert set(workload.bugs) == set(METASTORE_BUGS) == {"forget_promise", "ignore_accepted"}
    assert set(workload.faults) == FAULTS


def test_a_seed_replays_exactly():
    """Same seed, same run: the trace digests match (no hidden time or randomness)."""
    workload = get_workload("metastore")
    for seed in (3, 4):  # one run with 5 acceptors, one with 3
        first = run_seed(workload, RunConfig(seed, FAULTS))
        again = run_seed(workload, RunConfig(seed, FAULTS))
        assert first.digest == again.digest and first.events == again.events
        assert first.stats["acceptors"] == (5 if seed % 2 else 3)


# --------------------------------------------------------------------------- monitor


def accepted(node: str, instance: int, ballot: tuple, value: tuple, t: float = 0.0) -> dict:
    writer, seq, data = value
    return {
        "t": t,
        "node": node,
        "role": "acceptor",
        "event": "Accepted",
        "instance": instance,
        "ballot": list(ballot),
        "accepted_value": {"writer": writer, "seq": seq, "data": data},
    }


X, Y = ("c1", 1, "x"), ("c2", 1, "y")


def test_monitor_chooses_on_a_majority_of_accepts_at_one_ballot():
    m = ChoiceMonitor(quorum=2)
    m.observe(accepted("a1", 1, (1, "c1"), X))
    m.observe(accepted("a2", 1, (2, "c2"), X))  # another ballot: no majority at either yet
    assert m.chosen == {}
    m.observe(accepted("a3", 1, (1, "c1"), X))
    assert m.chosen == {1: X} and m.violations == []


def test_monitor_flags_two_values_chosen_for_one_version():
    m = ChoiceMonitor(quorum=2)
    for node in ("a1", "a2"):
        m.observe(accepted(node, 1, (1, "c1"), X))
    for node in ("a2", "a3"):
        m.observe(accepted(node, 1, (2, "c2"), Y))
    assert len(m.violations) == 1 and "two values chosen" in m.violations[0]


def test_monitor_flags_a_version_chosen_before_its_predecessor():
    m = ChoiceMonitor(quorum=2)
    for node in ("a1", "a2"):
        m.observe(accepted(node, 2, (1, "c1"), X))
    assert len(m.violations) == 1 and "gap" in m.violations[0]


def test_monitor_flags_a_written_report_that_was_not_chosen():
    m = ChoiceMonitor(quorum=2)
    for node in ("a1", "a2"):
        m.observe(accepted(node, 1, (1, "c1"), X))
    m.observe({"t": 1.0, "node": "c2", "role": "metastore", "event": "WriteDone", "proposer": "c2", "seq": 1, "outcome": ["written", 1]})
    m.observe({"t": 1.0, "node": "c1", "role": "metastore", "event": "WriteDone", "proposer": "c1", "seq": 1, "outcome": ["written", 1]})
    assert len(m.violations) == 1 and "c2 reported Written(1)" in m.violations[0]
