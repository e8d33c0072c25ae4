"""The ``metastore`` workload: concurrent register clients against Paxos acceptors, under faults.

Three or five acceptors (the seed decides) and three client nodes, each client node running
two concurrent processes that share one :class:`~paxos.register.MetaStoreClient`. A process
loops over a random mix of operations: reads; read-then-``write_if`` at the version it last
saw (the VirtualLog's reconfiguration pattern, docs/design.md §4); and ``write_if`` at a stale or
future version, to exercise conflicts and the gapless-versions guard. Every value written is
unique. The nemesis crashes and restarts acceptors (at most a minority down at once) and
partitions the network while the links lose, duplicate and reorder messages. When the
clients are done, the network heals, every acceptor comes back, the acceptors go through a
rolling restart (one at a time, as in a deploy; only when crashes are enabled), and one last
read must succeed -- and, being linearizable, see the last version.

Checks:

* **as it runs**, from the acceptors' trace events (:class:`ChoiceMonitor`): a value is
  *chosen* in an instance once a majority of acceptors accepted it at one ballot (Lamport's
  definition, counted over the whole run, restarts included). At most one value may be
  chosen per instance; instance ``v`` may only be chosen once ``v - 1`` is (versions are
  gapless); and a write reported as ``Written(v)`` must be the value chosen in ``v``.
* **after the run**, the recorded history (Jepsen style: invoke, then ok / fail / info) goes
  through the linearizability checker with the :class:`~delos_ref.checker.VersionedRegister`
  model. A definite failure (:class:`~paxos.register.MetaStoreUnavailable`) is recorded as
  ``fail``; an unknown outcome (:class:`~paxos.register.WriteOutcomeUnknown`) as ``info``.
* **liveness**: the final read, on a healed cluster, must answer.

Bug switches (``--bug``), each of which these checks must catch: ``forget_promise`` (the
acceptors persist nothing, so a crash forgets their promises and acceptances) and
``ignore_accepted`` (the clients' proposers skip P2c and propose their own value).
"""

from __future__ import annotations

from typing import Any, Callable

import trio

from delos_ref.checker import History, VersionedRegister, check
from delos_ref.rpc import RetryPolicy
from delos_ref.runtime import Node
from delos_ref.sim.harness import RunConfig, RunResult, Workload, register
from delos_ref.sim.simulation import Nemesis, Simulation, link_for
from delos_ref.trace import MemorySink
from paxos.acceptor import Acceptor
from paxos.register import (
    ClientTimeouts,
    Conflict,
    MetaStoreClient,
    MetaStoreUnavailable,
    WriteOutcomeUnknown,
    Written,
)

CLIENTS = ("c1", "c2", "c3")
PROCESSES_PER_CLIENT = 2
OPS_PER_PROCESS = 5
THINK_S = (0.0, 0.01)
NEMESIS_INTERVAL_S = (0.005, 0.06)
RUN_BOUND_S = 120.0  # virtual seconds: a bound on the client phase, never reached when live
# Deadlines shorter than the nemesis's partitions, so that some operations do time out and
# the checker sees definite failures and unknown outcomes, not only successes.
TIMEOUTS = ClientTimeouts(
    deadline_s=0.3,
    call_timeout_s=0.15,
    retry=RetryPolicy(max_sends=3, first_s=0.03, max_s=0.08),
    backoff_first_s=0.002,
    backoff_max_s=0.1,
)
FINAL_TIMEOUTS = ClientTimeouts(deadline_s=10.0, call_timeout_s=0.3)
ROLLING_RESTART_DOWN_S = 0.01

METASTORE_BUGS = {
    "forget_promise": "acceptors never persist: a restarted acceptor forgets its promises and accepted values",
    "ignore_accepted": "proposers ignore values accepted in phase 1 and propose their own (breaks P2c)",
}


# -------------------------------------------------------------------------- monitor


class ChoiceMonitor:
    """Which value each instance chose, computed from acceptor ``Accepted`` events as they
    happen; records the first breach of each invariant (see the module docstring)."""

    def __init__(self, quorum: int) -> None:
        assert quorum >= 1, "ChoiceMonitor: a quorum of at least one"
        self.quorum = quorum
        self._voters: dict[tuple[int, tuple], set[str]] = {}
        self._value: dict[tuple[int, tuple], tuple] = {}
        self.chosen: dict[int, tuple] = {}  # instance -> (writer, seq, data)
        self.violations: list[str] = []
        self._reported: set[tuple[str, int]] = set()  # (invariant, version): report each once

    def observe(self, record: dict[str, Any]) -> None:
        if record["role"] == "acceptor" and record["event"] == "Accepted":
            self._on_accepted(record)
        elif record["role"] == "metastore" and record["event"] == "WriteDone":
            self._on_write_done(record)

    def _on_accepted(self, r: dict[str, Any]) -> None:
        instance, ballot = r["instance"], tuple(r["ballot"])
        v = r["accepted_value"]
        value = (v["writer"], v["seq"], v["data"])
        key = (instance, ballot)
        if self._value.setdefault(key, value) != value:
            self._violate("ballot", instance, f"instance {instance}: ballot {list(ballot)} carries two values")
        voters = self._voters.setdefault(key, set())
        voters.add(r["node"])
        if len(voters) == self.quorum:  # chosen, just now
            self._on_chosen(instance, value, r["t"])

    def _on_chosen(self, instance: int, value: tuple, t: float) -> None:
        earlier = self.chosen.get(instance)
        if earlier is not None and earlier != value:
            self._violate("agreement", instance, f"instance {instance}: two values chosen, {earlier} and then {value} (t={t})")
            return
        if instance > 1 and instance - 1 not in self.chosen:
            self._violate("gapless", instance, f"version {instance} chosen before version {instance - 1} (t={t}): a gap")
        self.chosen.setdefault(instance, value)

    def _on_write_done(self, r: dict[str, Any]) -> None:
        outcome = r["outcome"]
        if outcome[0] != "written":
            return
        version = outcome[1]
        chosen = self.chosen.get(version)
        if chosen is None or chosen[:2] != (r["proposer"], r["seq"]):
            what = f"{r['proposer']} reported Written({version}) but the value chosen there is {chosen}"
            self._violate("written", version, what)

    def _violate(self, invariant: str, version: int, what: str) -> None:
        if (invariant, version) not in self._reported:
            self._reported.add((invariant, version))
            self.violations.append(what)


class MonitoredSink(MemorySink):
    """The run's trace, feeding each event to the monitor as it is written."""

    def __init__(self, clock: Callable[[], float], monitor: ChoiceMonitor) -> None:
        super().__init__(clock)
        self.monitor = monitor

    def write(self, record: dict[str, Any]) -> None:
        self.monitor.observe(record)
        super().write(record)


# ---------------------------------------------------------------------------- clients


async def _process(sim: Simulation, client: MetaStoreClient, name: str, rng: Any, history: History, stats: dict[str, int]) -> None:
    """One client process: a random mix of reads and conditional writes, all recorded."""
    seen = 0  # the last version this process saw
    for i in range(OPS_PER_PROCESS):
        if not sim.op_kept(name.replace("/", "@"), i):
            continue  # left out by a schedule (sim --minimize)
        await trio.sleep(rng.uniform(*THINK_S))
        roll = rng.random()
        if roll < 0.3:
            seen = await _read(client, name, history, stats, seen)
            continue
        expected = seen if roll < 0.85 else max(0, seen + rng.randint(-2, 2))
        seen = await _write(client, name, history, stats, expected, f"{name}#{i}")


async def _read(client: MetaStoreClient, name: str, history: History, stats: dict[str, int], seen: int) -> int:
    history.invoke(name, "read")
    try:
        version, value = await client.read()
    except MetaStoreUnavailable:
        history.fail(name)  # a read that did not answer changed nothing
        stats["unavailable"] += 1
        return seen
    history.ok(name, (version, _text(value)))
    return version


async def _write(client: MetaStoreClient, name: str, history: History, stats: dict[str, int], expected: int, value: str) -> int:
    history.invoke(name, "write_if", (expected, value))
    try:
        result = await client.write_if(expected, value.encode())
    except WriteOutcomeUnknown:
        history.info(name)
        stats["unknown"] += 1
        return expected
    except MetaStoreUnavailable:
        history.fail(name)
        stats["unavailable"] += 1
        return expected
    if type(result) is Written:
        history.ok(name, ("written", result.version))
        stats["written"] += 1
        return result.version
    assert type(result) is Conflict, "write_if returns Written or Conflict"
    history.ok(name, ("conflict", result.version, _text(result.value)))
    stats["conflicts"] += 1
    return result.version


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


# -------------------------------------------------------------------------------- run


def _acceptor_build(bug: str | None) -> Callable[[Node, Any], None]:
    def build(node: Node, storage_for: Any) -> None:
        storage = storage_for("paxos")
        core = Acceptor.recover(storage, forget_promise=bug == "forget_promise")
        node.add_role("acceptor", core, storage)

    return build


def _client(sim: Simulation, name: str, acceptors: list[str], bug: str | None, timeouts: ClientTimeouts) -> MetaStoreClient:
    node = sim.client(name)
    return MetaStoreClient(
        node.endpoint,
        acceptors,
        node.rng("metastore"),
        name,  # client nodes are never crashed, so one incarnation each: a unique proposer id
        timeouts=timeouts,
        trace=sim.trace,
        ignore_accepted=bug == "ignore_accepted",
    )


async def run(cfg: RunConfig) -> RunResult:
    n = seeded_choice(cfg.seed)
    acceptors = [f"a{i}" for i in range(1, n + 1)]
    monitor = ChoiceMonitor(n // 2 + 1)
    sim = Simulation(cfg.seed, link=link_for(cfg.faults), schedule=cfg.schedule, trace=MonitoredSink(trio.current_time, monitor))
    history = History()
    stats = {"written": 0, "conflicts": 0, "unknown": 0, "unavailable": 0}
    async with sim.run():
        for name in acceptors:
            sim.add_node(name, _acceptor_build(cfg.bug))
        clients = [_client(sim, c, acceptors, cfg.bug, TIMEOUTS) for c in CLIENTS]
        nemesis = Nemesis(
            sim,
            faults=cfg.faults,
            crashable=acceptors,
            partitionable=acceptors + list(CLIENTS),
            max_down=n // 2,  # a minority: what Paxos promises to tolerate
            interval_s=NEMESIS_INTERVAL_S,
        )
        violations = await _faulty_phase(sim, nemesis, clients, history, stats)
        nemesis.heal_all()
        if "crash" in cfg.faults:
            await _rolling_restart(sim, acceptors)
        violations += await _final_read(_client(sim, "final", acceptors, None, FINAL_TIMEOUTS), history)
        virtual_s = trio.current_time()
    violations = monitor.violations + violations + _linearizability(history)
    trace = sim.trace.events
    run_stats = {"acceptors": n, "chosen": len(monitor.chosen), "ops": stats}
    run_stats.update(nemesis=nemesis.stats, net=dict(sim.net.stats))
    return RunResult(cfg.seed, violations, len(trace), sim.digest(), virtual_s, run_stats, trace if cfg.keep_trace else None, sim.recorder.schedule(cfg.faults))


async def _faulty_phase(sim: Simulation, nemesis: Nemesis, clients: list[MetaStoreClient], history: History, stats: dict[str, int]) -> list[str]:
    """Every client process runs to completion while the nemesis strikes."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(nemesis.run)
        with trio.move_on_after(RUN_BOUND_S) as bound:
            async with trio.open_nursery() as procs:
                for client in clients:
                    for p in range(PROCESSES_PER_CLIENT):
                        name = f"{client.proposer_id}/{p}"
                        procs.start_soon(_process, sim, client, name, sim.rng("workload", client.proposer_id, p), history, stats)
        nursery.cancel_scope.cancel()
    if bound.cancelled_caught:
        return [f"liveness: the clients did not finish within {RUN_BOUND_S:g} virtual seconds"]
    return []


def seeded_choice(seed: int) -> int:
    """Three or five acceptors, by seed (odd seeds five): both sizes in every sweep."""
    return 5 if seed % 2 else 3


async def _rolling_restart(sim: Simulation, acceptors: list[str]) -> None:
    """Restart every acceptor, one at a time (a deploy): a majority stays up throughout, and
    durable acceptors lose nothing, so the final read must still see the last version."""
    for name in acceptors:
        sim.crash(name)
        await trio.sleep(ROLLING_RESTART_DOWN_S)
        sim.restart(name)


async def _final_read(client: MetaStoreClient, history: History) -> list[str]:
    history.invoke("final", "read")
    try:
        version, value = await client.read()
    except MetaStoreUnavailable:
        history.fail("final")
        return ["liveness: the final read on a healed cluster found no majority"]
    history.ok("final", (version, _text(value)))
    return []


def _linearizability(history: History) -> list[str]:
    result = check(history, VersionedRegister())
    if result.ok:
        return []
    return [f"history {result.verdict}: {result.reason}"]


register(
    Workload(
        name="metastore",
        description="concurrent MetaStore clients (read, write_if) against 3 or 5 Paxos acceptors; "
        "chosen values and linearizability checked",
        faults=("loss", "duplicate", "reorder", "partition", "crash"),
        bugs=dict(METASTORE_BUGS),
        run=run,
    )
)
