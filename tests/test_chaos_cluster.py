"""Real failures on real clusters: separate node processes, real sockets, LMDB on disk.

* The sequencer's node is killed (kill -9): the other nodes' supervisors notice (heartbeats),
  reconfigure the VirtualLog onto a NativeLoglet with another sequencer, and appends resume.
* The chaos test: a writer appends continuously while a nemesis kill -9s, SIGSTOPs and
  restarts random nodes (the sequencer's included), on a 3-node TCP cluster and a 5-node UDP
  cluster. Afterwards every acknowledged entry is readable at exactly the position it was
  acknowledged at, reading from each node's LogServer first, and every node reads the same
  log. The test prints the availability gaps (the longest time without a successful append).
"""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from delos_ref import cluster
from delos_ref.loglet.native import NativeOptions
from delos_ref.process import metastore_client, open_client, open_virtuallog
from delos_ref.virtuallog import AppendFailed, AppendOutcomeUnknown, LogletRegistry, VirtualLog, VirtualLogError
from delos_ref.virtuallog.registry import native_kind
from paxos.register import MetaStoreError
from tests.cluster_fixture import running_cluster, wait_answers

pytestmark = pytest.mark.cluster


def restart(directory: Path, node_id: str) -> None:
    cluster.restart_node(directory, cluster.load(directory), node_id)


async def read_all(cfg: cluster.ClusterConfig, read_first: str, tail_hint: int) -> list[bytes]:
    """The whole log read by a VirtualLog client that reads from ``read_first``'s LogServer
    first (the others only for what it lacks)."""
    async with open_client(cfg, f"read-{read_first}") as node:
        registry = LogletRegistry((native_kind(node, NativeOptions(read_first=read_first)),))
        vlog = VirtualLog(metastore_client(cfg, node, deadline_s=5.0), registry, node.node_id)
        tail = await vlog.check_tail()
        assert tail >= tail_hint
        out: list[bytes] = []
        while len(out) < tail:
            got = await vlog.read_next(len(out), tail)
            assert got, f"read from {read_first} stuck at {len(out)} below the tail {tail}"
            out += [e for _, e in got]
        return out


# ---------------------------------------------------------------------------- failover


def test_killing_the_sequencer_node_moves_the_log_to_another_sequencer(tmp_path):
    d = tmp_path / "c"
    with running_cluster(d, nodes=3, transport="tcp") as cfg:

        async def main() -> tuple[float, list, list[bytes], list[bytes]]:
            async with open_virtuallog(cfg, "app") as vlog:
                first = [await vlog.append(f"a{i}".encode()) for i in range(100)]
                killed = time.monotonic()
                assert cluster.signal_node(cfg.node("n1"), signal.SIGKILL)
                resumed = None
                later = []
                for i in range(100):
                    later.append(await vlog.append(f"b{i}".encode()))
                    resumed = resumed or time.monotonic() - killed
                chain = await vlog.refresh()
                segments = [(s.start, s.stop, vlog.registry.config(s).sequencer) for s in chain.segments]
                restart(d, "n1")
                await wait_answers(cfg, "n1")
                later += [await vlog.append(f"c{i}".encode()) for i in range(50)]
                assert first + later == list(range(250))
            logs = [await read_all(cfg, n.id, 250) for n in cfg.nodes]
            return resumed, segments, logs[0], logs[1:]

        resumed, segments, log, others = trio.run(main)
        print(f"\nkill -9 of the sequencer's node -> next successful append: {resumed:.2f} s; chain {segments}")
        assert resumed < 10.0
        assert segments[0][2] == "n1" and segments[0][1] == 100, "the first segment was sealed at 100"
        assert segments[-1][2] != "n1" and segments[-1][1] is None, "the active segment has another sequencer"
        expected = [f"a{i}".encode() for i in range(100)] + [f"b{i}".encode() for i in range(100)] + [f"c{i}".encode() for i in range(50)]
        assert log == expected
        assert all(o == log for o in others), "every node reads the same log"


# ------------------------------------------------------------------------------- chaos


@dataclass
class Chaos:
    acked: dict[int, bytes] = field(default_factory=dict)  # position -> entry
    times: list[float] = field(default_factory=list)  # when each append was acknowledged
    failed: int = 0
    unknown: int = 0
    kills: int = 0
    pauses: int = 0
    restarts: int = 0
    stop: bool = False


async def writer(cfg: cluster.ClusterConfig, run: Chaos) -> None:
    async with open_virtuallog(cfg, "writer", deadline_s=2.0) as vlog:
        i = 0
        while not run.stop:
            entry = f"w{i}".encode()
            i += 1
            try:
                pos = await vlog.append(entry)
            except AppendOutcomeUnknown:
                run.unknown += 1
                continue
            except (AppendFailed, VirtualLogError, MetaStoreError):
                run.failed += 1
                await trio.sleep(0.05)
                continue
            assert pos not in run.acked, f"position {pos} acknowledged twice"
            run.acked[pos] = entry
            run.times.append(time.monotonic())


async def nemesis(directory: Path, cfg: cluster.ClusterConfig, run: Chaos, rng: random.Random, max_down: int, seconds: float) -> None:
    """Every 2-4 s: kill -9 or SIGSTOP a random live node (at most ``max_down`` out at once),
    or bring one back (restart a killed node, SIGCONT a paused one)."""
    killed: set[str] = set()
    paused: set[str] = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await trio.sleep(rng.uniform(2.0, 4.0))
        out = killed | paused
        up = [n.id for n in cfg.nodes if n.id not in out]
        if out and (len(out) >= max_down or rng.random() < 0.4):
            victim = rng.choice(sorted(out))
            if victim in killed:
                restart(directory, victim)
                killed.discard(victim)
                run.restarts += 1
            else:
                cluster.signal_node(cluster.load(directory).node(victim), signal.SIGCONT)
                paused.discard(victim)
            continue
        victim = rng.choice(up)
        spec = cluster.load(directory).node(victim)
        if rng.random() < 0.6:
            assert cluster.signal_node(spec, signal.SIGKILL)
            killed.add(victim)
            run.kills += 1
        else:
            assert cluster.signal_node(spec, signal.SIGSTOP)
            paused.add(victim)
            run.pauses += 1
    for victim in paused:
        cluster.signal_node(cluster.load(directory).node(victim), signal.SIGCONT)
    for victim in killed:
        restart(directory, victim)
        run.restarts += 1


def chaos_run(tmp_path: Path, *, nodes: int, transport: str, max_down: int, seconds: float, seed: int) -> None:
    d = tmp_path / "c"
    run = Chaos()
    with running_cluster(d, nodes=nodes, transport=transport) as cfg:

        async def main() -> list[list[bytes]]:
            started = time.monotonic()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer, cfg, run)
                await nemesis(d, cfg, run, random.Random(seed), max_down, seconds)
                for n in cfg.nodes:
                    await wait_answers(cfg, n.id)
                await trio.sleep(3.0)  # appends flow again after the last restart
                run.stop = True
            run.times.insert(0, started)
            tail_hint = max(run.acked) + 1 if run.acked else 0
            return [await read_all(cfg, n.id, tail_hint) for n in cfg.nodes]

        logs = trio.run(main)
    gaps = sorted((b - a for a, b in zip(run.times, run.times[1:])), reverse=True)
    lost = [(p, e) for p, e in sorted(run.acked.items()) if p >= len(logs[0]) or logs[0][p] != e]
    print(
        f"\nchaos {nodes} nodes {transport}: {seconds:g} s, kills {run.kills}, pauses {run.pauses}, restarts {run.restarts}, "
        f"acknowledged {len(run.acked)}, failed {run.failed}, unknown {run.unknown}, lost {len(lost)}, "
        f"log {len(logs[0])}, longest gaps {[round(g, 2) for g in gaps[:3]]} s"
    )
    assert run.kills + run.pauses >= 3, "the nemesis did its job"
    assert len(run.acked) > 100
    assert not lost, f"acknowledged entries lost or moved: {lost[:5]}"
    assert all(log == logs[0] for log in logs[1:]), "every node reads the same log"


def test_chaos_3_nodes_tcp(tmp_path):
    chaos_run(tmp_path, nodes=3, transport="tcp", max_down=1, seconds=25, seed=1)


def test_chaos_5_nodes_udp(tmp_path):
    chaos_run(tmp_path, nodes=5, transport="udp", max_down=2, seconds=25, seed=2)
