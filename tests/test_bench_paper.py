"""``bench compare`` and ``bench paper``: the peers' drivers fail with a clear message, leave no
process behind, and the quick run of the paper's evaluation writes its report.

Shapes only: every figure has data and every ratio is finite. Speed is never asserted here
(it is measured by the benchmarks themselves)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from delos_ref.bench import compare, paper, peers, plots
from delos_ref.bench.peers import PeerError, PeerMissing, etcd, zookeeper

CLI = [sys.executable, "-m", "cli.main"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


# ------------------------------------------------------------------ the peers' failure paths


def test_zookeeper_without_its_jar_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zookeeper, "JAR", "/nonexistent/zookeeper.jar")
    with pytest.raises(PeerMissing, match=r"zookeeper: /nonexistent/zookeeper.jar not found; install it with `make peers`"):
        zookeeper.check()


def test_etcd_without_its_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PeerMissing, match=r"etcd: `etcd` not found; install it with `make peers`"):
        etcd.check()


@pytest.mark.skipif(not Path(zookeeper.JAR).exists(), reason="ZooKeeper is not installed (make peers)")
def test_zookeeper_version_is_the_packages() -> None:
    assert zookeeper.version()[0].isdigit()  # "3.8.0" on Debian 12, not the jar's bare name


def test_compare_leaves_out_a_missing_peer_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zookeeper, "JAR", "/nonexistent/zookeeper.jar")
    ok, missing = compare.available(["zookeeper"])
    assert ok == []
    assert "make peers" in missing["zookeeper"]


def test_a_failing_load_generator_is_one_line_with_its_cause() -> None:
    def argv_for(clients: int, seconds: float) -> list[str]:
        return ["sh", "-c", "echo 'setData: connection refused' >&2; exit 3"]

    with pytest.raises(PeerError, match=r"zk: the load generator failed \(3\): setData: connection refused"):
        trio.run(peers.run_load, argv_for, 4, 1, 0.1, [], "zk")


def test_a_chatty_load_generator_does_not_block_on_its_stderr() -> None:
    """ZooKeeper's client logs every session to stderr: 64 sessions wrote more than a pipe
    holds, and with nobody reading it the load generator blocked before saying ``ready``."""
    body = json.dumps({"ops": 2, "elapsed_s": 0.2, "cpu_s": 0.01, "lat_us": [100, 300]})

    def argv_for(clients: int, seconds: float) -> list[str]:
        return ["sh", "-c", f"head -c 300000 /dev/zero | tr '\\0' x >&2; echo ready; read start; echo '{body}'"]

    async def main() -> peers.Load:
        with trio.fail_after(30):
            return await peers.run_load(argv_for, 2, 1, 0.2, [], "chatty")

    load = trio.run(main)
    assert (load.ops, load.latencies_us) == (2, (100, 300))


def test_a_load_generator_is_killed_when_the_run_is_cancelled(tmp_path: Path) -> None:
    """Ctrl-C (here: a cancelled scope) while the load runs leaves no load process behind."""
    pid_file = tmp_path / "pid"

    def argv_for(clients: int, seconds: float) -> list[str]:
        return ["sh", "-c", f"echo $$ > {pid_file}; echo ready; exec sleep 600"]

    async def main() -> None:
        with trio.move_on_after(3):
            await peers.run_load(argv_for, 1, 1, 60.0, [], "x")

    trio.run(main)
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists(), "the load process is gone"


def test_servers_are_stopped_on_an_error_inside_the_ensemble(tmp_path: Path) -> None:
    commands = [(f"s{i}", ["sleep", "600"], tmp_path / f"s{i}.log") for i in range(3)]
    pids: list[int] = []
    with pytest.raises(RuntimeError):
        with peers.processes(commands) as procs:
            pids = [p.pid for p in procs]
            raise RuntimeError("the benchmark failed")
    assert len(pids) == 3
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


def test_a_server_that_exits_at_start_is_named_with_its_log(tmp_path: Path) -> None:
    commands = [("zookeeper server 1", ["sh", "-c", "echo 'Address already in use'; exit 1"], tmp_path / "s1.log")]

    async def main() -> None:
        with peers.processes(commands) as procs:
            await peers.wait_ready(lambda: False, procs, commands, "zookeeper", timeout_s=20)

    with pytest.raises(PeerError, match=r"zookeeper: zookeeper server 1 exited \(1\): Address already in use"):
        trio.run(main)


# ------------------------------------------------------------------------- ratios and medians


def _row(k: int, ops: float, p50: float, check: bool = False) -> dict:
    r = {"clients": k, "processes": 2 if check else 1, "ops_per_s": ops, "p50_us": p50, "p99_us": 2 * p50, "client_cpu_us_per_op": 10.0, "server_cpu_us_per_op": 100.0}
    return dict(r, check=True) if check else r


def test_ratios_are_per_round_and_their_median() -> None:
    rounds = [
        {"delos-ref": [_row(1, 100, 2000), _row(64, 3000, 9000)], "zookeeper": [_row(1, 400, 1000), _row(64, 6000, 9000), _row(64, 5000, 9500, check=True)]},
        {"delos-ref": [_row(1, 120, 2400), _row(64, 4000, 9000)], "zookeeper": [_row(1, 400, 800), _row(64, 5000, 9000), _row(64, 5500, 9500, check=True)]},
        {"delos-ref": [_row(1, 90, 1800), _row(64, 3500, 9000)], "zookeeper": [_row(1, 300, 1200), _row(64, 7000, 9000), _row(64, 7000, 9500, check=True)]},
    ]
    systems = ["delos-ref", "zookeeper"]
    r64 = next(r for r in compare.ratios(rounds, systems, (1, 64)) if r["clients"] == 64)
    assert r64["throughput"] == [0.5, 0.8, 0.5] and r64["throughput_median"] == 0.5
    r1 = next(r for r in compare.ratios(rounds, systems, (1, 64)) if r["clients"] == 1)
    assert r1["p50"] == [2.0, 3.0, 1.5] and r1["p50_median"] == 2.0
    med = {(m["system"], m["clients"]): m for m in compare.medians(rounds, systems, (1, 64))}
    assert med[("zookeeper", 64)]["ops_per_s"] == 6000  # the client check's rows are not in it
    checks = compare.client_checks(rounds, systems)
    assert checks == [{"system": "zookeeper", "two_over_one": [0.833, 1.1, 1.0], "median": 1.0}]


def test_a_round_without_a_peer_gives_no_ratio_for_it() -> None:
    rounds = [{"delos-ref": [_row(64, 3000, 9000)]}]
    assert compare.ratios(rounds, ["delos-ref", "etcd"], (64,)) == [{"peer": "etcd", "clients": 64, "throughput": [], "throughput_median": None, "p50": [], "p50_median": None}]


# ---------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "compare", "--with", "mysql"], "--with takes peers from: zookeeper, etcd"),
        (["bench", "compare", "--clients", "0,64"], "--clients: each must be 1..1024"),
        (["bench", "compare", "--clients", "x"], "--clients takes numbers"),
        (["bench", "compare", "--rounds", "0"], "--rounds must be at least 1"),
        (["bench", "compare", "--op", "scan"], "--op takes one of: put, get, append"),
        (["bench", "paper", "--quick"], "bench paper needs --out DIR"),
        (["bench", "paper", "--only", "8", "--out", "/tmp/x"], "--only takes experiment numbers 1..7"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    res = cli(*args)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and message in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_paper_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    res = cli("bench", "paper", "--quick", "--out", str(f))
    assert res.returncode == 2 and "not a directory" in res.stderr


def test_an_experiment_whose_cluster_fails_is_reported_and_the_rest_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from delos_ref.bench import BenchError

    async def broken(settings: paper.Settings, out: Path) -> dict:
        raise BenchError("bench paper: `delos-ref up` failed: port in use")

    async def fine(settings: paper.Settings, out: Path) -> dict:
        return paper._result(6, "p50 extend 1 ms", ["kind", "p50 ms"], [["extend", 1.0]], [], {"x": 1.0}, "a note")

    monkeypatch.setitem(paper.RUNNERS, 1, broken)
    monkeypatch.setitem(paper.RUNNERS, 6, fine)
    report = trio.run(lambda: paper.run(out=tmp_path, quick=True, only=[1, 6]))
    assert [e.get("error") for e in report["experiments"]] == ["bench paper: `delos-ref up` failed: port in use", None]
    text = (tmp_path / "report.md").read_text()
    assert "failed: bench paper: `delos-ref up` failed" in text and "| extend | 1 |" in text


def test_only_parses_a_list() -> None:
    assert paper.parse_only("7,1,1") == [1, 7]
    assert paper.parse_only(None) == [1, 2, 3, 4, 5, 6, 7]


# ------------------------------------------------------------------------------ the quick run


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@pytest.mark.cluster
@pytest.mark.paper
def test_paper_quick_writes_seven_experiments_with_data(tmp_path: Path) -> None:
    """`bench paper --quick`: the report exists, every experiment has rows, figures (with the
    plots extra) and finite ratios. ZooKeeper and etcd are compared where installed."""
    out = tmp_path / "paper"
    t0 = time.monotonic()
    res = cli("bench", "paper", "--quick", "--out", str(out), "--json", timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert [e["n"] for e in report["experiments"]] == [1, 2, 3, 4, 5, 6, 7]
    text = (out / "report.md").read_text()
    for e in report["experiments"]:
        assert e["rows"], f"experiment {e['n']} has data"
        assert f"## {e['n']}." in text
        assert e["ratios"] and all(_finite(v) for v in e["ratios"].values()), (e["n"], e["ratios"])
        if plots.available():
            assert {Path(f).suffix for f in e["figures"]} == {".png", ".svg"}
            assert all(Path(f).stat().st_size > 1000 for f in e["figures"])
    seven = report["experiments"][6]
    assert "delos-ref" in {r[0] for r in seven["rows"]}
    assert seven["compare"]["failed"] == {}, "an installed peer ran"
    for name in ("zookeeper", "etcd"):
        present = name not in seven["compare"]["missing"]
        assert (name in {r[0] for r in seven["rows"]}) == present
    assert json.loads((out / "results.json").read_text())["quick"] is True
    print(f"bench paper --quick took {time.monotonic() - t0:.0f} s")  # for the log; not asserted


# --------------------------------------------------------------------- a benchmark's cluster


def test_a_down_that_times_out_still_kills_the_nodes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """On a loaded machine `delos-ref down` took longer than its 30 s: the benchmark ended in
    a TimeoutExpired traceback. Now the nodes left are killed and the run goes on."""
    import delos_ref.bench as bench
    from delos_ref import cluster

    killed: list[str] = []

    def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess:
        if "down" in argv:
            raise subprocess.TimeoutExpired(argv, 30)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(bench.subprocess, "run", run)
    monkeypatch.setattr(cluster, "config_path", lambda d: tmp_path)  # exists
    monkeypatch.setattr(cluster, "load", lambda d: "cfg")
    monkeypatch.setattr(cluster, "live_nodes", lambda cfg: ["n1", "n2"])
    monkeypatch.setattr(cluster, "signal_node", lambda n, sig: killed.append(f"{n}:{sig}"))

    async def main() -> None:
        with bench.local_cluster("kv", "tcp", 3, placement=bench.Placement(directory=tmp_path / "c")):
            pass

    trio.run(main)
    assert killed == ["n1:9", "n2:9"]


def test_delos_ensemble_retries_an_up_that_missed_its_metastore(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Under load, `up` failed its first MetaStore write within 2 s and a whole `bench
    compare` run failed with it; the ensemble tries `up` once more."""
    import contextlib
    from types import SimpleNamespace

    import delos_ref.bench as bench
    from delos_ref.bench.peers import delos

    calls: list[int] = []

    @contextlib.contextmanager
    def flaky(*args: object, **kw: object):
        calls.append(1)
        if len(calls) == 1:
            raise bench.BenchError("bench compare: `delos-ref up` failed: its MetaStore did not answer")
        yield SimpleNamespace(nodes=[SimpleNamespace(id="n1", pid=1)])

    monkeypatch.setattr(bench, "local_cluster", flaky)

    async def main() -> str:
        async with delos.ensemble(tmp_path) as ens:
            return ens["connect"]

    assert trio.run(main) == "n1"
    assert len(calls) == 2


def test_delos_load_does_each_op_of_compare(tmp_path: Path) -> None:
    """``bench compare --op``: delos-ref's load process puts, gets (linearizable) and appends
    to the log, each counted in its window (one cluster for the three)."""
    from delos_ref.bench.peers import delos

    async def main() -> dict[str, int]:
        done = {}
        async with delos.ensemble(tmp_path) as ens:
            for op in compare.OPS:
                load = await peers.run_load(lambda k, s: ens["argv_for"](k, s, op), 2, 1, 0.5, ens["pids"], delos.NAME)
                done[op] = load.ops
        return done

    done = trio.run(main)
    assert set(done) == {"put", "get", "append"} and all(n > 0 for n in done.values()), done
