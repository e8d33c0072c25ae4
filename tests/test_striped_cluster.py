"""The StripedLoglet on a real 3-process TCP cluster, under load, through a crash (issue 18).

One client appends with 64 appends outstanding through its own VirtualLog while the operator
(the CLI, as a user would) hot-swaps the log from the NativeLoglet to a StripedLoglet of two
NativeLoglets over the same three LogServers with rotating sequencers (n1, n2), then
``kill -9`` s n2, the sequencer of stripe 1. No operator acts then: the nodes' supervisors
must notice (heartbeats), have the striped loglet diagnose itself, and replace the striped
segment with one whose stripe 1 has another sequencer. Appends resume; the operator hot-swaps
back to a NativeLoglet. Then every acknowledged entry must read back at its position, no
position was acknowledged twice, and no entry is in the log twice (the appender does not
retry an append whose outcome is unknown, so the log is exact; a striped loglet's filler
entries, ``b""``, are the only other entries allowed).
"""

from __future__ import annotations

import pytest
import trio

from cluster_fixture import cli, running_cluster
from delos_ref.process import open_virtuallog
from delos_ref.virtuallog import AppendFailed, AppendOutcomeUnknown, Segment, VirtualLogOptions
from paxos.register import MetaStoreError

OUTSTANDING = 64
PHASE_S = 1.5
RECOVERY_BOUND_S = 40.0  # from the kill to a striped segment without n2 taking appends

pytestmark = pytest.mark.cluster


def _sequencers(vlog, seg: Segment) -> list[str]:
    cfg = vlog.registry.config(seg)
    return [vlog.registry.config(Segment(0, None, s.kind, s.params)).sequencer for s in cfg.stripes]


async def test_striped_hot_swap_and_sequencer_crash_under_load(tmp_path):
    directory = tmp_path / "cluster"
    with running_cluster(directory, nodes=3, transport="tcp") as cfg:
        with trio.fail_after(150):
            # Generous MetaStore deadlines: on a loaded machine a read right after kill -9 can
            # take seconds (the bound on recovery is RECOVERY_BOUND_S, not these).
            async with open_virtuallog(cfg, "admin", deadline_s=10.0) as admin, open_virtuallog(cfg, "app") as app:
                app.options = VirtualLogOptions(retry_unknown=False)
                acked: list[tuple[int, bytes, float]] = []
                unsure: list[bytes] = []
                stop = trio.Event()

                async def appender(task: int) -> None:
                    i = 0
                    while not stop.is_set():
                        entry = b"t%d-%d" % (task, i)
                        i += 1
                        try:
                            pos = await app.append(entry)
                        except (AppendFailed, AppendOutcomeUnknown):
                            unsure.append(entry)
                            await trio.sleep(0.05)
                            continue
                        acked.append((pos, entry, trio.current_time()))

                async def operator() -> tuple[float, float]:
                    await trio.sleep(PHASE_S)
                    done = await trio.to_thread.run_sync(lambda: cli("reconfigure", "--dir", str(directory), "--loglet", "striped", "--stripes", "2", "--sequencers", "n1,n2", "--json"))
                    assert done.returncode == 0, done.stderr
                    await trio.sleep(PHASE_S)
                    killed = await trio.to_thread.run_sync(lambda: cli("kill", "--dir", str(directory), "n2"))
                    assert killed.returncode == 0, killed.stderr
                    killed_at = trio.current_time()
                    recovered_at = await _await_recovery(admin, acked, killed_at)
                    await trio.sleep(PHASE_S)
                    back = await trio.to_thread.run_sync(lambda: cli("reconfigure", "--dir", str(directory), "--loglet", "native", "--sequencer", "n1", "--json"))
                    assert back.returncode == 0, back.stderr
                    await trio.sleep(PHASE_S)
                    return killed_at, recovered_at

                result: dict = {}
                async with trio.open_nursery() as nursery:
                    for t in range(OUTSTANDING):
                        nursery.start_soon(appender, t)

                    async def run_operator() -> None:
                        result["times"] = await operator()
                        stop.set()

                    nursery.start_soon(run_operator)

                chain = await admin.refresh()
                tail = await admin.check_tail()
                log: dict[int, bytes] = {}
                while len(log) < tail:
                    batch = await admin.read_next(len(log), tail)
                    assert batch, f"read_next({len(log)}, {tail}) returned nothing below the tail"
                    log.update(batch)

    kinds = [s.kind for s in chain.segments]
    assert kinds[0] == "native" and kinds[-1] == "native" and kinds.count("striped") >= 2, kinds
    killed_at, recovered_at = result["times"]
    lost = [(p, e) for p, e, _ in acked if log.get(p) != e]
    assert not lost, f"{len(lost)} acknowledged entries not read back in place, e.g. {lost[:3]}"
    assert len({p for p, _, _ in acked}) == len(acked), "two appends acknowledged at one position"
    seen: dict[bytes, int] = {}
    for p in sorted(log):
        if log[p] != b"":
            assert seen.setdefault(log[p], p) == p, f"{log[p]!r} is in the log twice, at {seen[log[p]]} and {p}"
    after_recovery = [p for p, _, t in acked if t > recovered_at]
    assert after_recovery, "appends were acknowledged after the recovery"
    fillers = sum(1 for e in log.values() if e == b"")
    print(f"\nstriped cluster: {len(acked)} acknowledged, {len(unsure)} failed or unknown, {fillers} fillers, "
          f"recovered {recovered_at - killed_at:.1f} s after kill -9 of n2; chain {kinds}")


async def _await_recovery(admin, acked: list, killed_at: float) -> float:
    """When a striped segment whose sequencers exclude n2 is active and has taken appends."""
    with trio.fail_after(RECOVERY_BOUND_S):
        while True:
            await trio.sleep(0.25)
            try:
                chain = await admin.refresh()
            except MetaStoreError:
                continue  # not answered yet: look again (the bound above still holds)
            active = chain.active
            if active.kind == "striped" and "n2" not in _sequencers(admin, active):
                if any(active.start <= p and t > killed_at for p, _, t in acked):
                    return trio.current_time()


def test_up_on_a_striped_loglet_and_the_operator_view(tmp_path):
    """``up --loglet striped --stripes 2`` starts on S0 (sequencers n1, n2, every stripe on
    n1..n3); ``status --json`` lists the stripes; bad layouts are one-line errors."""
    import json

    directory = tmp_path / "cluster"
    with running_cluster(directory, nodes=3, transport="tcp", extra=("--loglet", "striped", "--stripes", "2")):
        d = str(directory)
        appended = cli("append", "a", "b", "c", "--dir", d, "--json", check=True)
        assert json.loads(appended.stdout) == {"positions": [0, 1, 2]}
        (seg,) = json.loads(cli("status", "--dir", d, "--json", check=True).stdout)["chain"]["segments"]
        assert seg["kind"] == "striped" and seg["params"]["loglet_id"] == "S0"
        assert [(s["sequencer"], s["logservers"]) for s in seg["params"]["stripes"]] == [("n1", ["n1", "n2", "n3"]), ("n2", ["n1", "n2", "n3"])]
        read = json.loads(cli("read", "--dir", d, "--json", check=True).stdout)
        assert [e["data"] for e in read["entries"]] == ["a", "b", "c"]
        bad = cli("reconfigure", "--loglet", "striped", "--stripes", "4", "--sharded", "--dir", d)
        assert bad.returncode == 1 and "cannot make 4 disjoint sets" in bad.stderr and "Traceback" not in bad.stderr
        bad = cli("reconfigure", "--loglet", "striped", "--sequencers", "n1", "--dir", d)
        assert bad.returncode == 1 and "one per stripe" in bad.stderr
        bad = cli("reconfigure", "--loglet", "native", "--sharded", "--dir", d)
        assert bad.returncode == 2 and "--sharded" in bad.stderr
