"""``bench kv --profile DIR`` (issue 23): every process of the run -- the client and each node --
writes its own profile of every measured case; and ``bench kv`` ends in one line when its
baseline loglet is sealed under it. Speed is not checked here (benchmarks measure it)."""

from __future__ import annotations

import json
import pstats

import pytest

from delos_ref import profiling
from tests.cluster_fixture import cli

pytestmark = pytest.mark.cluster

CASES = ("put-1", "put-64", "get_linearizable-1", "get_linearizable-64", "get_stale-1", "get_stale-64", "ping_rpc-1", "log_append-1", "log_append-64")


def test_bench_kv_profile_writes_one_profile_per_process_and_case(tmp_path):
    out = tmp_path / "prof"
    result = cli("bench", "kv", "--seconds", "0.2", "--profile", str(out), "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["profile"] == str(out.resolve())
    for case in CASES:
        for process in ("client", "n1", "n2", "n3"):
            stats = pstats.Stats(str(out / case / f"{process}.prof"))
            assert stats.total_calls > 0, f"{case}/{process}: an empty profile"
            text = (out / case / f"{process}.txt").read_text()
            assert f"# {process}, case {case}" in text and "by cumulative" in text and "by tottime" in text
    # Each node profiled only what the benchmark measured: its put cases saw the replica.
    assert "replica" in (out / "put-1" / "n1.txt").read_text()


def test_profile_is_only_for_bench_kv():
    result = cli("bench", "append", "--profile", "/tmp/never-written")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --profile is for bench kv (not append)"


def test_a_process_profile_names_its_case_and_writes_both_files(tmp_path):
    (tmp_path / profiling.CASE_FILE).write_text("put-64\n")
    profile = profiling.ProcessProfile(tmp_path, "n2")
    profile.start(profiling.case_name(tmp_path))
    sum(range(1000))
    path = profile.stop()
    assert path == tmp_path / "put-64" / "n2.prof"
    assert pstats.Stats(str(path)).total_calls > 0
    assert (tmp_path / "put-64" / "n2.txt").read_text().startswith("# n2, case put-64\n")


def test_a_case_name_that_is_not_a_plain_name_is_not_used_as_a_path(tmp_path):
    assert profiling.case_name(tmp_path) == "unnamed"  # no case file
    (tmp_path / profiling.CASE_FILE).write_text("../elsewhere")
    assert profiling.case_name(tmp_path) == "unnamed"


async def test_a_sealed_baseline_loglet_ends_bench_kv_with_one_line():
    """Under load the nodes may move the chain off L0 while ``bench kv`` appends to it
    directly (its log_append baseline): a BenchError (one line, exit 1), not a traceback."""
    from delos_ref.bench import BenchError, Meter
    from delos_ref.bench.kv import _log_append_rows
    from delos_ref.loglet.api import SealedError

    class SealedLoglet:
        async def append(self, entry):
            raise SealedError("L0 is sealed")

    with pytest.raises(BenchError, match=r"^bench kv: the log_append baseline failed, the nodes reconfigured away from L0 during the run \(L0 is sealed\)"):
        await _log_append_rows(SealedLoglet(), 0.05, Meter(None, cases=2, seconds=0.05, warmup_s=0.3))


def test_a_profile_directory_that_cannot_be_made_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = cli("bench", "kv", "--seconds", "0.2", "--profile", str(blocker / "prof"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --profile {blocker / 'prof'}: cannot create that directory: Not a directory"


def test_the_summary_sums_the_cpu_by_layer():
    import cProfile

    from delos_ref.sim.workload_rpc import Echo
    from transports.codec import KIND_REQUEST, Envelope, FrameCodec

    codec = FrameCodec(secret=b"k" * 32)
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(200):
        codec.encode(Envelope("a", "b", KIND_REQUEST, i + 1, Echo(i, False)))
        sorted(range(100))
    profiler.disable()
    layers = profiling.by_layer(pstats.Stats(profiler))
    assert set(layers) <= {label for label, _ in profiling.LAYERS} | {"other"}
    assert layers["codec (cbor2, HMAC)"] > 0  # encoding frames
    assert layers["other"] > 0  # sorted() is a built-in of no layer
    text = profiling.summary(profiler, "test")
    assert text.index("## by layer") < text.index("## top 30 by cumulative") < text.index("## top 30 by tottime")
    assert "codec (cbor2, HMAC)" in text.split("## top")[0]
