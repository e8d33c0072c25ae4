"""The CPU accounting that the real-cluster benchmarks add to their rows (delos_ref/bench)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from delos_ref.bench import cpu_per_op, cpu_seconds


def test_cpu_per_op_divides_each_process_time_by_the_operations():
    before = {"client": 1.0, "n1": 10.0, "n2": 5.0}
    after = {"client": 1.5, "n1": 12.0, "n2": 5.5}  # 0.5 + 2.0 + 0.5 = 3 s of CPU
    got = cpu_per_op(before, after, ops=1000, elapsed_s=2.0)
    assert got == {"client": 500.0, "n1": 2000.0, "n2": 500.0, "total": 3000.0, "cores_busy": 1.5}


def test_a_process_measured_at_one_end_only_is_left_out_and_no_operations_give_nothing():
    assert cpu_per_op({"client": 0.0, "n1": 1.0}, {"client": 1.0}, ops=10, elapsed_s=1.0) == {"client": 100000.0, "total": 100000.0, "cores_busy": 1.0}
    assert cpu_per_op({"client": 0.0}, {"client": 1.0}, ops=0, elapsed_s=1.0) == {}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_seconds_reads_a_process_that_works():
    pid = os.getpid()
    first = cpu_seconds({"me": pid, "gone": 2**22 + 12345})
    assert set(first) == {"client", "me"}  # a pid without /proc entry is left out
    give_up = time.monotonic() + 10.0
    while cpu_seconds({"me": pid})["me"] < first["me"] + 0.05:  # /proc counts in clock ticks
        assert time.monotonic() < give_up, "10 s of busy work never showed in /proc"
        sum(range(10_000))
    assert cpu_seconds({})["client"] > first["client"]
