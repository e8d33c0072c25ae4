"""Bounded copies of one write (issue 17, item 4): during a LogServer outage one ``kv put``
reported "outcome unknown" and occupied positions 4..24 of the log. The table stayed right
(it deduplicates by (client, seq)), but the log grew with every retry.

Now a write takes at most one position per client attempt: the VirtualLog stores each append
at most once (it resolves an unknown outcome before retrying, ``VirtualLog._resolve``), and a
replica does not append a command again while a copy of it is in flight there
(``db/batching.py``). Simulated: the sequencer's node loses its links to the other two
LogServers for a while, so its appends cannot commit; the client's put times out, retries on
the other replicas, and gives up; then the links come back.
"""

from __future__ import annotations

import trio
import trio.testing

from delos_ref.db import ClientOptions
from delos_ref.db.client import WriteFailed, WriteOutcomeUnknown
from delos_ref.db.table import decode_entry
from delos_ref.loglet.native import NativeLogletConfig
from delos_ref.rpc import NO_RETRY, RetryPolicy
from delos_ref.sim.simulation import Simulation
from delos_ref.sim.workload_kv import FINAL_CLIENT_OPTIONS, SERVERS, Cluster, _server_build

ATTEMPTS = 6


async def _copies_of_a_put_during_an_outage(seed: int) -> tuple[int, str]:
    """How many log positions hold the put made during the outage, and its outcome."""
    sim = Simulation(seed)
    async with sim.run():
        for name in SERVERS:
            sim.add_node(name, _server_build(None))
        c = Cluster(sim)
        await c.vlog("boot").bootstrap(NativeLogletConfig("boot", "s1", SERVERS))
        options = ClientOptions(call_timeout_s=1.0, attempts=ATTEMPTS, retry=RetryPolicy(max_sends=4, first_s=0.1, max_s=0.3))
        writer = c.client("writer", 0, options)
        await writer.put("k", "before")
        for other in ("s2", "s3"):  # s1, the sequencer, loses both other LogServers
            sim.cut("s1", other)
            sim.cut(other, "s1")
        try:
            await writer.put("k", "during")
            outcome = "ok"
        except WriteOutcomeUnknown:
            outcome = "unknown"
        except WriteFailed:
            outcome = "failed"
        await trio.sleep(5.0)  # the outage lasts a while after the client gave up
        sim.heal()
        await trio.sleep(10.0)  # what was held back may now commit
        reader = c.vlog("reader")
        tail = await reader.check_tail()
        log: list[bytes] = []
        while len(log) < tail:
            got = await reader.read_next(len(log), tail)
            assert got, f"read stuck at {len(log)} below {tail}"
            log += [e for _, e in got]
        await c.client("check", 1, FINAL_CLIENT_OPTIONS).get("k")  # the cluster works again
    copies = sum(1 for entry in log for cmd in (decode_entry(entry) or []) if (cmd.client, cmd.seq) == ("writer", 1))
    return copies, outcome


def test_a_put_during_a_logserver_outage_takes_at_most_one_position_per_attempt():
    for seed in range(3):
        copies, outcome = trio.run(_copies_of_a_put_during_an_outage, seed, clock=trio.testing.MockClock(autojump_threshold=0))
        print(f"seed {seed}: {copies} copies, outcome {outcome}")
        assert copies <= ATTEMPTS, f"seed {seed}: one put occupies {copies} positions (outcome {outcome})"
        assert outcome != "ok" or copies >= 1


async def _failover_with_one_send(seed: int) -> tuple[float, dict[str, int], str | None]:
    """A client with one send per call (TCP's policy: its attempts watch in their own task,
    no nursery) whose first replica is cut off from it: how long the put took, the client's
    stats, and what the key then reads."""
    sim = Simulation(seed)
    async with sim.run():
        for name in SERVERS:
            sim.add_node(name, _server_build(None))
        c = Cluster(sim)
        await c.vlog("boot").bootstrap(NativeLogletConfig("boot", "s1", SERVERS))
        options = ClientOptions(call_timeout_s=5.0, attempts=ATTEMPTS, retry=NO_RETRY, probe_after_s=0.5, probe_s=0.3)
        writer = c.client("writer", 0, options)  # s1 first
        await writer.put("k", "before")
        assert writer.stats["probes"] == 0, "an answered put is not watched with pings"
        sim.cut("writer", "s1")
        sim.cut("s1", "writer")
        started = trio.current_time()
        await writer.put("k", "after")
        took = trio.current_time() - started
        value = await writer.get("k")
    return took, dict(writer.stats), value


def test_a_one_send_attempt_gives_up_on_a_silent_replica_and_moves_on():
    """The task-free watch (``RpcEndpoint.call(watch=...)``): the put to the cut-off replica
    pings it after probe_after_s, gives up once the ping goes unanswered for probe_s, and
    lands on the next replica -- long before call_timeout_s (5 s)."""
    took, stats, value = trio.run(_failover_with_one_send, 11, clock=trio.testing.MockClock(autojump_threshold=0))
    assert value == "after"
    assert stats["silent"] == 1 and stats["attempts"] >= 3, stats  # before, the cut attempt, the retry (and the get)
    assert 0.8 <= took < 2.0, f"the put took {took:.2f} s: one probe_after_s + probe_s, then the next replica"
