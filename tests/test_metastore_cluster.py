"""The MetaStore across real acceptor processes over TCP, with a node killed and restarted.

Three writers (each a client of its own, ``cli-<hex>``, hence its own proposer id) loop
``read -> write_if(v, value)`` against a 3-node cluster while the test kills ``n1`` with
SIGKILL, restarts it from its LMDB data, then kills ``n2``: from then on every write needs the
restarted ``n1`` in its quorum (``{n1, n3}`` is the only majority left).

**The check: a hash chain.** Every value a writer proposes names the version it is meant to
become and the hash of its predecessor -- the value the writer saw at the version it expects
(from a read, a ``Conflict`` or its own previous ``Written``)::

    value(v) = "<writer>|<seq>|<v>|<hash of value(v - 1)>"     (hash of version 0 = "genesis")

A ``write_if(e, x)`` can only be chosen as version ``e + 1`` while the register is at ``e``,
whose value is unique, so the chosen value at every version points at the chosen value of the
version before. Starting from the final read's value and following predecessor hashes through
the set of every value any writer proposed therefore reconstructs the *whole* history, one
value per version, down to ``genesis`` -- no gaps (the embedded versions must step down by
exactly one), no foreign values. Then:

* every acknowledged ``Written(v)`` for value ``x`` has ``history[v] == x``: an acknowledged
  write is never lost, overwritten or forked, even across the kill -9 and the restart;
* no two acknowledged writes share a version (implied by the above, also checked directly);
* the final read's version is at least the highest acknowledged one (reads are not stale).

Finally ``delos-ref status`` must report the register's version (the final read's) while
``{n1, n3}`` answer, and ``null`` with an error once ``n3`` is killed too.

Writes whose outcome is unknown (``WriteOutcomeUnknown``) may or may not be in the chain;
either is allowed.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time

import pytest
import trio

from delos_ref import cluster
from delos_ref.process import open_client
from paxos.register import ClientTimeouts, Conflict, MetaStoreClient, MetaStoreError, Written
from tests.cluster_fixture import cli, running_cluster, status, wait_answers

pytestmark = pytest.mark.cluster

GENESIS = "genesis"
#: The writers use a register of their own on the cluster's acceptors: the MetaStore's chain
#: register belongs to the VirtualLog (and its supervisors write it when n1 is killed).
REGISTER = "test/history"
WRITERS = 3
PHASE_S = 1.5  # writing time in each phase (all up, n1 down, n1 back, n2 down)
TIMEOUTS = ClientTimeouts(deadline_s=2.0, call_timeout_s=0.3)


def digest(value: bytes | None) -> str:
    return GENESIS if value is None else hashlib.sha256(value).hexdigest()[:24]


def parse(value: bytes) -> tuple[int, str]:
    """(version it was proposed for, predecessor hash)."""
    _, _, version, prev = value.decode().split("|")
    return int(version), prev


class Run:
    def __init__(self) -> None:
        self.proposed: dict[str, bytes] = {}  # hash -> value, every value any writer proposed
        self.acked: list[tuple[int, bytes, float]] = []  # (version, value, time acknowledged)
        self.errors: list[str] = []
        self.stop = False


async def writer(cfg: cluster.ClusterConfig, name: str, run: Run) -> None:
    async with open_client(cfg, name) as client:
        store = MetaStoreClient(client.endpoint, [n.id for n in cfg.nodes], client.rng("paxos"), client.node_id, timeouts=TIMEOUTS, register=REGISTER)
        seq = 0
        known: tuple[int, bytes | None] | None = None
        while not run.stop:
            try:
                if known is None:
                    known = await store.read()
                version, current = known
                seq += 1
                value = f"{client.node_id}|{seq}|{version + 1}|{digest(current)}".encode()
                run.proposed[digest(value)] = value
                result = await store.write_if(version, value)
            except MetaStoreError as e:
                run.errors.append(f"{name}: {type(e).__name__}")
                known = None
                continue
            if type(result) is Written:
                assert result.version == version + 1
                run.acked.append((result.version, value, time.monotonic()))
                known = (result.version, value)
            else:
                assert type(result) is Conflict and result.version > version
                known = (result.version, result.value)


def test_acknowledged_writes_survive_kill_and_restart_of_acceptors(tmp_path):
    d = tmp_path / "c"
    run = Run()
    marks: dict[str, float] = {}
    with running_cluster(d, nodes=3, transport="tcp") as cfg:

        async def main() -> tuple[int, bytes | None]:
            async with trio.open_nursery() as nursery:
                for i in range(WRITERS):
                    nursery.start_soon(writer, cfg, f"w{i}", run)
                await trio.sleep(PHASE_S)
                assert cluster.signal_node(cfg.node("n1"), signal.SIGKILL)
                marks["n1_killed"] = time.monotonic()
                await trio.sleep(PHASE_S)
                pid = cluster.spawn_node(d, "n1")
                saved = cluster.load(d)
                saved.node("n1").pid = pid
                cluster.save(d, saved)
                await wait_answers(cfg, "n1")
                marks["n1_back"] = time.monotonic()
                await trio.sleep(PHASE_S)
                assert cluster.signal_node(cfg.node("n2"), signal.SIGKILL)
                marks["n2_killed"] = time.monotonic()
                await trio.sleep(PHASE_S)
                marks["end"] = time.monotonic()
                run.stop = True
            async with open_client(cfg, "final") as client:
                store = MetaStoreClient(client.endpoint, [n.id for n in cfg.nodes], client.rng("paxos"), client.node_id, timeouts=TIMEOUTS, register=REGISTER)
                return await store.read()

        final_version, final_value = trio.run(main)

        # `status` reads the register linearizably: n2 is dead, {n1, n3} still answer.
        # (Its register is the chain's, which the supervisors moved on when n1, the sequencer, died.)
        chain_register = status(d)["metastore"]
        assert type(chain_register["version"]) is int and chain_register["version"] >= 2, chain_register
        # With n3 dead too, no majority: the version is null with the reason, not a failure.
        assert cluster.signal_node(cfg.node("n3"), signal.SIGKILL)
        proc = cli("status", "--dir", str(d), "--json", "--timeout", "0.5")
        assert proc.returncode == 3  # some nodes answer, some do not
        ms = json.loads(proc.stdout)["metastore"]
        assert ms["version"] is None and "no majority" in ms["error"], ms

    # Writes went on in every phase, including with n2 dead (quorum {n1, n3}: n1 restarted).
    def acked_between(a: float, b: float) -> int:
        return sum(1 for _, _, t in run.acked if a < t <= b)

    assert acked_between(0, marks["n1_killed"]) > 0
    assert acked_between(marks["n1_killed"] + 0.5, marks["n1_back"]) > 0, "writes continue with n1 dead"
    assert acked_between(marks["n1_back"], marks["n2_killed"]) > 0
    assert acked_between(marks["n2_killed"] + 0.5, marks["end"] + 10) > 0, "writes continue on the quorum {restarted n1, n3}"

    # No fork: one acknowledged write per version.
    versions = [v for v, _, _ in run.acked]
    assert len(versions) == len(set(versions)), "two acknowledged writes share a version"
    assert final_version >= max(versions)

    # Rebuild the history from the final value by predecessor hashes.
    history: dict[int, bytes] = {}
    cur = final_value
    expected_version = final_version
    while cur is not None:
        h = digest(cur)
        assert run.proposed.get(h) == cur, f"version {expected_version} holds a value no writer proposed: {cur!r}"
        version, prev = parse(cur)
        assert version == expected_version, f"chain gap: value for version {version} found at {expected_version}"
        history[version] = cur
        expected_version -= 1
        if prev == GENESIS:
            cur = None
        else:
            assert prev in run.proposed, f"version {version} points at an unknown predecessor {prev}"
            cur = run.proposed[prev]
    assert expected_version == 0, f"chain ends at version {expected_version + 1}, not 1"
    lost = [(v, x) for v, x, _ in run.acked if history.get(v) != x]
    assert not lost, f"acknowledged writes not in the history: {lost[:5]}"
