"""The ``kv`` workload: the database (replicated table over the VirtualLog) under faults.

Cast (docs/design.md §8): three server nodes ``s1..s3``, each hosting a Paxos acceptor, a
LogServer, a sequencer and a database :class:`~delos_ref.db.Replica` (its table in the
node's simulated disk, which loses unsynced writes on a crash). Around them:

* four *clients* ``c1..c4``, each a :class:`~delos_ref.db.KvClient` that starts at a
  different replica and moves on to the next one when a call fails or times out (the same
  ``(client, seq)`` again). They run random ``put``, ``delete``, ``cas``, ``txn``,
  linearizable ``get`` and ``scan`` on four keys, and some stale reads (not checked);
* a *reconfigurer* that moves the log onto a fresh NativeLoglet with a sequencer chosen by the
  seed (``reconfig_extend``) every 0.3-1.5 virtual seconds while the clients run (it also
  stands in for the failure detector: a crashed sequencer's loglet is soon replaced);
* a *trimmer* that, as often, asks a random replica to ``prefix_trim`` the log below every
  replica's applied position;
* a *migrator* that moves sealed segments below a point near the tail to cold storage
  (``delos_ref/migrate.py``: copy, verify, ``reconfig_modify``, trim the LogServers), so
  replicas that replay -- a wiped one -- read old entries from cold files;
* a *skipper* that appends *poison* entries (bytes no replica decodes as a command) and,
  once a reconfiguration has sealed their segment, skips them (``delos-ref skip``): every
  replica applies the marker, or the entry, as the same no-op (check 2 compares digests);
* a *wiper* (with the ``crash`` fault) that crashes a server, erases its replica's table and
  restarts it: the replica replays the log from 0, or, if the log has been trimmed, restores a
  peer's snapshot and catches up.

The nemesis crashes and restarts servers (one down at a time) and partitions the network;
links lose, duplicate and reorder messages.

Checks, each a violation string when it fails:

1. **Linearizable**: every put/delete/cas/txn (a write the client gave up on is ``info``: it
   may have taken effect) and every linearizable get and scan (a scan is a ``multi_get`` of
   the four keys), plus a final scan on the healed cluster, checked with the
   :class:`~delos_ref.checker.KVTable` model. Keys interact only through ``txn`` and
   ``scan``; the checker splits nothing, which four clients keep cheap.
2. **Replicas converge**: on the healed cluster every replica syncs to the tail; they then
   hold the same applied position and the same state digest.

Bug switches, each caught by check 1: ``stale_read_as_linearizable`` (a linearizable read
skips the sync) and ``no_dedup`` (a retried write is applied once per copy).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import trio

from delos_ref.checker import History, KVTable, check
from delos_ref.db import DB_BUGS, BUG_NO_DEDUP, BUG_STALE_READ, ClientOptions, KvClient, ReplicaOptions
from delos_ref.db.client import ReadFailed, TrimFailed, WriteFailed, WriteOutcomeUnknown
from delos_ref.db.batching import BatchOptions
from delos_ref.db.hosting import add_replica
from delos_ref.db.messages import KvStatus
from delos_ref.loglet import LogletError, LogletUnavailable
from delos_ref.loglet.native import NativeLogletConfig, add_logserver, add_sequencer
from delos_ref.loglet.native.roles import LOGSERVER_ROLE, SEQUENCER_ROLE
from delos_ref.rpc import RESEND, DefiniteFailure, RetryPolicy, UnknownOutcome
from delos_ref.runtime import Node
from delos_ref.sim.harness import RunConfig, RunResult, Workload, register
from delos_ref.sim.simulation import Nemesis, Simulation, link_for
from delos_ref.sim import workload_loglet
from delos_ref.storage import MemoryStorage
from delos_ref.virtuallog import VirtualLog, VirtualLogOptions, default_registry
from delos_ref.loglet.cold import ColdStores, MemoryColdStore
from delos_ref.migrate import MigrationError, SkipRefused, migrate_below, skip_entry
from delos_ref.virtuallog.client import VirtualLogError
from delos_ref.virtuallog.registry import native_kind
from paxos.acceptor import Acceptor
from paxos.register import ClientTimeouts, MetaStoreClient, MetaStoreError, MetaStoreUnavailable, WriteOutcomeUnknown as MetaWriteUnknown

SERVERS = ("s1", "s2", "s3")
CLIENTS = ("c1", "c2", "c3", "c4")
KEYS = ("k0", "k1", "k2", "k3")
OPS_PER_CLIENT = 25
RECONFIG_EVERY_S = (0.3, 1.5)
TRIM_EVERY_S = (0.3, 1.5)
WIPE_EVERY_S = (0.5, 2.0)
MIGRATE_EVERY_S = (0.5, 2.0)
SKIP_EVERY_S = (1.0, 3.0)
RUN_BOUND_S = 300.0  # virtual seconds: a bound on the client phase, never reached when live
DB_STORAGE = "db"
TIMEOUTS = ClientTimeouts(deadline_s=1.0, call_timeout_s=0.2)
VLOG_OPTIONS = VirtualLogOptions(attempts=8, roll_forward_s=0.5, poll_s=0.05, retry_unknown=True)
# One append in flight per replica (the default, spelled out so that the sweep keeps testing
# batches if the default changes): with only a few clients, batches form only this way.
REPLICA_OPTIONS = ReplicaOptions(poll_s=0.1, max_poll_s=1.0, retry_s=0.02, request_timeout_s=3.0, peer_timeout_s=0.5,
                                 batching=BatchOptions(max_in_flight=1))
CLIENT_OPTIONS = ClientOptions(call_timeout_s=1.0, attempts=6, retry=RetryPolicy(max_sends=4, first_s=0.1, max_s=0.3))
FINAL_CLIENT_OPTIONS = ClientOptions(call_timeout_s=5.0, attempts=12, retry=RESEND)


# ------------------------------------------------------------------------ the cluster


def _server_build(bug: str | None, cold: MemoryColdStore | None = None):
    """The servers' roles; their replicas read cold segments from ``cold`` (the run's store)."""
    bugs = frozenset([bug]) & {BUG_STALE_READ, BUG_NO_DEDUP}
    cold = cold if cold is not None else MemoryColdStore("sim-cold")

    def build(node: Node, storage_for: Any) -> None:
        paxos = storage_for("paxos")
        node.add_role("acceptor", Acceptor.recover(paxos), paxos)
        add_logserver(node, storage_for(LOGSERVER_ROLE))
        add_sequencer(node, storage_for(SEQUENCER_ROLE))
        # Unique per incarnation: a restarted node must never reuse its previous life's ballots.
        metastore = MetaStoreClient(node.endpoint, SERVERS, node.rng("metastore"), f"{node.node_id}@{node.seed}", timeouts=TIMEOUTS)
        registry = default_registry(cold=ColdStores(lambda location: cold))
        registry.add_kind(native_kind(node, workload_loglet.SIM_OPTIONS))
        add_replica(node, metastore, registry, storage_for(DB_STORAGE), SERVERS, vlog_options=VLOG_OPTIONS, options=REPLICA_OPTIONS, bugs=bugs)

    return build


@dataclass
class Cluster:
    sim: Simulation
    cold: MemoryColdStore = field(default_factory=lambda: MemoryColdStore("sim-cold"))
    hist: History = field(default_factory=History)
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("ok", "fail", "info", "wipes", "trims", "reconfigs", "migrated", "skips"), 0))

    def vlog(self, name: str) -> VirtualLog:
        node = self.sim.client(name)
        metastore = MetaStoreClient(node.endpoint, SERVERS, node.rng("metastore"), name, timeouts=TIMEOUTS)
        registry = default_registry(cold=ColdStores(lambda location: self.cold))
        registry.add_kind(native_kind(node, workload_loglet.SIM_OPTIONS))
        return VirtualLog(metastore, registry, name, options=VirtualLogOptions(attempts=64, roll_forward_s=0.5, poll_s=0.05))

    def client(self, name: str, first: int, options: ClientOptions = CLIENT_OPTIONS) -> KvClient:
        node = self.sim.client(name)
        order = SERVERS[first:] + SERVERS[:first]
        return KvClient(node.endpoint, order, name, options=options)


# ---------------------------------------------------------------------------- clients


def _random_op(rng: Any, name: str, i: int) -> tuple[str, tuple]:
    key = rng.choice(KEYS)
    value = f"{name}.{i}"
    kind = rng.choices(("put", "delete", "cas", "txn", "get", "scan", "stale"), weights=(5, 1, 3, 2, 6, 2, 1))[0]
    match kind:
        case "put":
            return "put", (key, value)
        case "delete":
            return "delete", (key,)
        case "cas":
            return "cas", (key, rng.choice((None, f"{rng.choice(CLIENTS)}.{rng.randrange(i + 1)}")), value)
        case "txn":
            other = rng.choice([k for k in KEYS if k != key])
            return "txn", (((key, rng.choice((None, value))),) if rng.random() < 0.5 else (), ((key, value), (other, rng.choice((None, value)))))
    return kind, (key,)


async def _client(c: Cluster, name: str, first: int) -> None:
    table = c.client(name, first)
    rng = c.sim.rng("client", name)
    for i in range(OPS_PER_CLIENT):
        if not c.sim.op_kept(name, i):
            continue  # left out by a schedule (sim --minimize)
        await trio.sleep(rng.uniform(0, 0.05))
        op, arg = _random_op(rng, name, i)
        await _one(c, table, name, op, arg)


async def _one(c: Cluster, table: KvClient, name: str, op: str, arg: tuple) -> None:
    if op == "stale":
        try:
            await table.get(arg[0], stale=True)  # not linearizable: not recorded
        except ReadFailed:
            pass
        return
    f, model_arg = _model_op(op, arg)
    c.hist.invoke(name, f, model_arg)
    try:
        result = await _call(table, op, arg)
    except (WriteFailed, ReadFailed):
        c.hist.fail(name)
        c.stats["fail"] += 1
        return
    except WriteOutcomeUnknown:
        c.hist.info(name)
        c.stats["info"] += 1
        return
    c.hist.ok(name, _model_result(op, result))
    c.stats["ok"] += 1


def _model_op(op: str, arg: tuple) -> tuple[str, Any]:
    match op:
        case "get" | "delete":
            return op, arg[0]
        case "scan":
            return "multi_get", KEYS
        case "txn":
            return "txn", arg
    return op, arg


def _model_result(op: str, result: Any) -> Any:
    if op == "scan":
        found = dict(result)
        return tuple(found.get(k) for k in KEYS)
    return result


async def _call(table: KvClient, op: str, arg: tuple) -> Any:
    match op:
        case "put":
            return await table.put(*arg)
        case "delete":
            return await table.delete(*arg)
        case "cas":
            return await table.cas(*arg)
        case "txn":
            return await table.txn(conditions=arg[0], writes=arg[1])
        case "get":
            return await table.get(arg[0])
        case "scan":
            return await table.scan(prefix="k", limit=len(KEYS))
    raise AssertionError(op)


async def _reconfigurer(c: Cluster) -> None:
    """Move the log to a fresh loglet every so often, until the clients are done. It also
    stands in for a failure detector: a crashed sequencer is replaced within a second or so."""
    vlog = c.vlog("x1")
    rng = c.sim.rng("reconfigurer")
    for i in itertools.count():
        await trio.sleep(rng.uniform(*RECONFIG_EVERY_S))
        try:
            await vlog.reconfig_extend(NativeLogletConfig(f"x1.{i}", rng.choice(SERVERS), SERVERS))
            c.stats["reconfigs"] += 1
        except (MetaStoreUnavailable, MetaWriteUnknown, LogletUnavailable):
            continue  # a fault: the next attempt (or a replica's roll-forward) moves on


async def _trimmer(c: Cluster) -> None:
    table = c.client("t1", 0)
    rng = c.sim.rng("trimmer")
    while True:
        await trio.sleep(rng.uniform(*TRIM_EVERY_S))
        try:
            await table.trim(rng.choice(SERVERS))
            c.stats["trims"] += 1
        except TrimFailed:
            pass  # a replica was unreachable: nothing trimmed


COLD_ERRORS = (MigrationError, SkipRefused, LogletError, VirtualLogError, MetaStoreError)


async def _migrator(c: Cluster) -> None:
    """Move the sealed segments below a point near the tail to the cold store, now and then."""
    vlog = c.vlog("m1")
    rng = c.sim.rng("migrator")
    for i in itertools.count():
        await trio.sleep(rng.uniform(*MIGRATE_EVERY_S))
        try:
            below = await vlog.check_tail() - rng.randrange(0, 10)
            done = await migrate_below(vlog, c.cold, below, lambda seg: f"m1.{i}.{seg.start}")
            c.stats["migrated"] += sum(m.installed for m in done)
        except COLD_ERRORS:
            continue  # a fault: the next round tries again


async def _skipper(c: Cluster) -> None:
    """Append a poison entry (no command in it), then skip it once its segment is sealed."""
    vlog = c.vlog("k1")
    rng = c.sim.rng("skipper")
    for i in itertools.count():
        await trio.sleep(rng.uniform(*SKIP_EVERY_S))
        try:
            pos = await vlog.append(b"poison/%d" % i)
        except COLD_ERRORS:
            continue
        for _ in range(10):
            await trio.sleep(rng.uniform(0.2, 0.8))
            try:
                await skip_entry(vlog, pos, f"poison at {pos}")
                c.stats["skips"] += 1
                break
            except COLD_ERRORS:
                continue  # not sealed yet, or a fault: try again


async def _wiper(c: Cluster) -> None:
    """Erase one replica's table (its node crashes; the log servers keep their data)."""
    rng = c.sim.rng("wiper")
    while True:
        await trio.sleep(rng.uniform(*WIPE_EVERY_S))
        if all(c.sim.is_up(s) for s in SERVERS):
            break
    victim = rng.choice(SERVERS)
    c.sim.crash(victim)
    c.sim.nodes[victim].storages[DB_STORAGE] = MemoryStorage()
    c.stats["wipes"] += 1
    await trio.sleep(rng.uniform(0.05, 0.3))
    c.sim.restart(victim)


# ----------------------------------------------------------------------------- checks


async def _final(c: Cluster) -> list[str]:
    """On the healed cluster: a final scan (into the history), every replica synced, digests.

    First the log moves to a fresh loglet (as the log workload's final read does): a
    sequencer that crashed after the reconfigurer stopped never serves its loglet again, and
    with no failure detector in this workload nothing else would replace it."""
    try:
        await c.vlog("final-x").reconfig_extend(NativeLogletConfig("final", SERVERS[0], SERVERS))
    except (MetaStoreUnavailable, MetaWriteUnknown, LogletUnavailable) as e:
        return [f"liveness: the final reconfiguration on a healed cluster failed: {e!r}"]
    table = c.client("final", 0, FINAL_CLIENT_OPTIONS)
    await _one(c, table, "final", "scan", ())
    statuses = []
    for s in SERVERS:
        try:
            await table._call(s, _sync_read())  # a linearizable read syncs the replica
            statuses.append(await table.endpoint.call(s, KvStatus(True), timeout_s=5.0, retry=RESEND))
        except (DefiniteFailure, UnknownOutcome) as e:
            return [f"liveness: replica {s} did not sync on the healed cluster: {e}"]
    c.stats["snapshots_restored"] = sum(st.snapshots_restored for st in statuses)
    if len({(st.applied, st.digest) for st in statuses}) != 1:
        return ["replicas diverge: " + ", ".join(f"{st.replica}@{st.applied}:{st.digest[:12]}" for st in statuses)]
    return []


def _sync_read() -> Any:
    from delos_ref.db.messages import KvRead

    return KvRead("get", (KEYS[0],))


def _linearizability(hist: History) -> list[str]:
    result = check(hist, KVTable())
    return [] if result.ok else [f"history {result.verdict}: {result.reason}"]


# -------------------------------------------------------------------------------- run


async def run(cfg: RunConfig) -> RunResult:
    sim = Simulation(cfg.seed, link=link_for(cfg.faults), schedule=cfg.schedule)
    violations: list[str] = []
    async with sim.run():
        c = Cluster(sim)
        for name in SERVERS:
            sim.add_node(name, _server_build(cfg.bug, c.cold))
        await c.vlog("boot").bootstrap(NativeLogletConfig("boot", SERVERS[0], SERVERS))
        nemesis = Nemesis(sim, faults=cfg.faults, crashable=list(SERVERS), partitionable=list(SERVERS) + list(CLIENTS), max_down=1)
        violations += await _faulty_phase(c, nemesis, "crash" in cfg.faults)
        nemesis.heal_all()
        await trio.sleep(1.0)  # let restarted servers come up and replicas catch up
        violations += await _final(c)
        virtual_s = trio.current_time()
    violations += _linearizability(c.hist)
    stats = {**c.stats, "nemesis": nemesis.stats, "ops": len(c.hist)}
    trace = sim.trace.events
    return RunResult(cfg.seed, violations, len(trace), sim.digest(), virtual_s, stats, trace if cfg.keep_trace else None, sim.recorder.schedule(cfg.faults))


async def _faulty_phase(c: Cluster, nemesis: Nemesis, wipe: bool) -> list[str]:
    violations: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(nemesis.run)
        nursery.start_soon(_reconfigurer, c)
        nursery.start_soon(_trimmer, c)
        nursery.start_soon(_migrator, c)
        nursery.start_soon(_skipper, c)
        if wipe:
            nursery.start_soon(_wiper, c)
        with trio.move_on_after(RUN_BOUND_S) as bound:
            async with trio.open_nursery() as clients:
                for i, name in enumerate(CLIENTS):
                    clients.start_soon(_client, c, name, i % len(SERVERS))
        nursery.cancel_scope.cancel()  # the clients are done: stop the faults and the helpers
    if bound.cancelled_caught:
        violations.append(f"liveness: the clients did not finish within {RUN_BOUND_S:g} virtual seconds")
    return violations


register(
    Workload(
        name="kv",
        description="database: clients on different replicas run put/get/delete/cas/txn/scan while the log is "
        "reconfigured and trimmed and replicas are wiped; linearizability (KVTable) and replica convergence checked",
        faults=("loss", "duplicate", "reorder", "partition", "crash"),
        bugs=dict(DB_BUGS),
        run=run,
    )
)
