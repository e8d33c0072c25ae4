"""The ``log`` workload: the VirtualLog under appenders, readers and reconfigurers, with faults.

Cast (docs/design.md §3-§5, §7): three server nodes ``s1..s3``, each hosting a Paxos acceptor
(the MetaStore), a LogServer and a sequencer role; the nemesis crashes and restarts them (one
down at a time: the MetaStore and the NativeLoglet tolerate a minority) and partitions the
network, while the links lose, duplicate and reorder messages. Client nodes, each with its
own :class:`~delos_ref.virtuallog.VirtualLog`:

* two *appenders*, each appending unique entries in a loop;
* two *readers*, each checking the tail and reading a range below it;
* two *reconfigurers*, each running ``reconfig_extend`` at random moments onto a fresh
  loglet: a NativeLoglet on the three LogServers with a sequencer chosen by the seed, a
  StripedLoglet of two or three such NativeLoglets with rotating sequencers, or now and then
  a memory loglet (so kinds are hot-swapped under load, native to striped and back). Racing
  reconfigurations are the point: the conditional write must serialize them. A striped
  segment may hold *fillers* (empty entries in holes no append filled): the checks count
  them as appends by no one, of unknown outcome.

A crashed sequencer node never serves its old loglets again, so appends there stall until a
reconfigurer moves the log on; appends give up after a bounded number of attempts (recorded
as failed or unknown). An attempt whose outcome is unknown is resolved before the append is
retried (the VirtualLog looks for the entry in the sealed segment, ``VirtualLog._resolve``),
so an acknowledged entry is in the log exactly once and the history is exact.

Checks, each a violation string when it fails:

1. **Linearizable as a log**: appends (position returned), check_tails and reads (the first
   entry of each ``read_next``), with the final full read, go through the checker with the
   :class:`~delos_ref.checker.Log` model. Failed appends are ``fail``, unknown ones ``info``.
2. **No acknowledged entry lost, moved or duplicated**: after the run, on a healed cluster, a
   fresh client reads the whole log; each acknowledged entry is at its acknowledged position
   and nowhere else (no acknowledged entry at two positions), and no entry appears twice.
3. **Readers agree**: every position any reader saw holds the same entry in the final log.
4. **Chain invariants hold in every version**: every chain any client fetched is well formed
   (the codec refuses others); one version, one chain; and each version seen next to its
   predecessor is a legal successor: closed segments keep their ``[start, stop)``, and the
   previous active segment is still there (open, or closed at or after its start).

Bug switches (``--bug``), one per requirement on the components (seed slide "Requirements
for components"), each caught by the checks above:

* ``metastore_write_without_version`` (1): reconfigurations install chains blindly;
* ``reappend_unknown``: an append whose outcome is unknown is sent again without looking for
  it first, so an entry that landed as the last one of a sealed segment lands twice (check 2);
* ``seal_on_minority`` (2): a seal that is not fault-tolerant (one LogServer);
* ``logserver_accepts_after_seal`` (3): LogServers that accept appends after sealing;
* ``check_tail_hides_seal`` (4): check_tail that does not report the seal bit;
* ``loglet_never_reports_failures`` (5): loglets whose ``diagnose`` never reports a failure,
  so no supervisor reconfigures away from a dead sequencer. Caught by check 5.

5. **Appends resume after a sequencer crash** (liveness, requirement 5): every server node runs
   a :class:`~delos_ref.virtuallog.supervisor.Supervisor` (heartbeats, failure detector,
   ``diagnose``, reconfiguration). After the faulty phase, with the reconfigurers done, the
   active segment's sequencer node is crashed; an append must succeed again within
   ``RESUME_BOUND_S`` virtual seconds.

Two NativeLoglet bugs this workload found (fixed; seeds pinned in the tests): an append
answered ``unavailable`` after a sequencer restart was reported as certainly not landed (crash,
seed 10), and a delayed copy of an append refused ``unknown_loglet`` was sequenced after its
resend (reorder, seed 23).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from delos_ref.checker import History, Log, check
from delos_ref.loglet import LogletError, LogletUnavailable, TrimmedError
from delos_ref.loglet.native import NativeLogletConfig, add_logserver, add_sequencer
from delos_ref.loglet.native.client import BUG_HIDE_SEAL, BUG_NO_FAILURE_REPORTS, BUG_SEAL_MINORITY, CONTRACT_BUGS
from delos_ref.loglet.native.logserver import LOGSERVER_BUGS
from delos_ref.loglet.native.roles import LOGSERVER_ROLE, SEQUENCER_ROLE
from delos_ref.loglet.striped import FILLER, stripe_id
from delos_ref.ping import PingCore
from delos_ref.runtime import Node
from delos_ref.sim.harness import RunConfig, RunResult, Workload, register
from delos_ref.sim.simulation import Nemesis, Simulation, link_for
from delos_ref.sim import workload_loglet
from delos_ref.sim.workload_striped import SIM_STRIPED
from delos_ref.virtuallog import (
    VIRTUALLOG_BUGS,
    AppendFailed,
    AppendOutcomeUnknown,
    Chain,
    LogletContractBroken,
    MemoryLogletConfig,
    MemoryLogletStore,
    VirtualLog,
    VirtualLogOptions,
    VirtualLogUnavailable,
)
from delos_ref.loglet.cold import COLD_BUGS, ColdStores
from delos_ref.loglet.skip import skipped_reason
from delos_ref.migrate import MIGRATE_BUGS, MigrationError, SkipRefused, migrate_below, skip_entry
from delos_ref.sim.coldstore import FaultyColdStore
from delos_ref.virtuallog.registry import LogletRegistry, cold_kind, memory_kind, native_kind, skip_kind, striped_config, striped_kind
from delos_ref.virtuallog.supervisor import SUPERVISOR_BUGS, Supervisor, SupervisorOptions
from paxos.acceptor import Acceptor
from transports.codec import decode_value
from paxos.register import ClientTimeouts, MetaStoreClient, MetaStoreError, MetaStoreUnavailable, WriteOutcomeUnknown

SERVERS = ("s1", "s2", "s3")
APPENDERS = ("a1", "a2")
READERS = ("r1", "r2")
RECONFIGURERS = ("x1", "x2")
MIGRATOR = "m1"
SKIPPER = "k1"
MIGRATIONS = 4
SKIPS = 2
APPENDS_PER_APPENDER = 30
READS_PER_READER = 12
RECONFIGS_PER_RECONFIGURER = 3
RUN_BOUND_S = 200.0  # virtual seconds: a bound on the client phase, never reached when live
RESUME_BOUND_S = 10.0  # virtual seconds from a sequencer crash to the next successful append
SUPERVISOR = SupervisorOptions(interval_s=0.2, suspect_s=1.0, stable_s=2.0, check_s=0.25, jitter_s=0.2, quiet_s=1.0)
TIMEOUTS = ClientTimeouts(deadline_s=1.0, call_timeout_s=0.2)
OPTIONS = VirtualLogOptions(attempts=8, roll_forward_s=0.5, poll_s=0.05)
FINAL_OPTIONS = VirtualLogOptions(attempts=64, roll_forward_s=0.5, poll_s=0.05)

LOG_BUGS = {
    **VIRTUALLOG_BUGS,
    BUG_SEAL_MINORITY: "seal returns after one LogServer set its seal bit: not fault-tolerant",
    "logserver_accepts_after_seal": LOGSERVER_BUGS["logserver_accepts_after_seal"],
    **CONTRACT_BUGS,
    **MIGRATE_BUGS,
    **COLD_BUGS,
}
NATIVE_CLIENT_BUGS = {BUG_SEAL_MINORITY, BUG_HIDE_SEAL, BUG_NO_FAILURE_REPORTS}


# ------------------------------------------------------------------------ the cluster


def _server_build(c: "Cluster"):
    server_bugs = frozenset([c.bug]) & set(LOGSERVER_BUGS)

    def build(node: Node, storage_for: Any) -> None:
        paxos = storage_for("paxos")
        node.add_role("ping", PingCore(node.node_id, 0, lambda want_stats: (tuple(sorted(node.roles)), {})))
        node.add_role("acceptor", Acceptor.recover(paxos), paxos)
        add_logserver(node, storage_for(LOGSERVER_ROLE), bugs=server_bugs)
        add_sequencer(node, storage_for(SEQUENCER_ROLE))
        # Failure detection -> reconfiguration (requirement 5), with this incarnation's client.
        vlog = c.vlog_on(node, f"{node.node_id}@{node.seed}", OPTIONS)
        supervisor = Supervisor(node, vlog, SERVERS, SERVERS, options=SUPERVISOR, bugs=frozenset([c.bug]) & set(SUPERVISOR_BUGS))
        node.add_service("supervisor", supervisor.run, supervisor.statistics)

    return build


@dataclass
class ChainMonitor:
    """Check 4: every (version, chain) any client learned."""

    chains: dict[int, Chain] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def observe(self, version: int, chain: Chain) -> None:
        known = self.chains.setdefault(version, chain)
        if known != chain:
            self._violate(f"chain agreement: two chains at version {version}")
        for v, before, after in ((version, self.chains.get(version - 1), chain), (version + 1, chain, self.chains.get(version + 1))):
            if before is not None and after is not None:
                for why in successor_violations(before, after):
                    self._violate(f"chain succession from version {v - 1} to {v}: {why}")

    def _violate(self, what: str) -> None:
        if what not in self.violations:  # many clients learn the same chain: report once
            self.violations.append(what)


def successor_violations(old: Chain, new: Chain) -> list[str]:
    """Why ``new`` cannot follow ``old`` by one extend, truncate or modify."""
    out = []
    closed_new = {(s.start, s.stop) for s in new.segments[:-1]}
    for s in old.segments[:-1]:
        dropped = s.stop <= new.base and s.start < new.base or s.start == s.stop == new.base  # by truncate
        if not dropped and (s.start, s.stop) not in closed_new:
            out.append(f"closed segment [{s.start}, {s.stop}) changed or vanished")
    act = old.active
    if not any(s.start == act.start and s.kind == act.kind and s.params == act.params for s in new.segments):
        out.append(f"the active segment at {act.start} vanished")
    return out


class MonitoredVirtualLog(VirtualLog):
    """A VirtualLog that reports each chain it learns to the monitor."""

    monitor: ChainMonitor

    def _learn(self, version: int, value: bytes | None) -> None:
        super()._learn(version, value)
        if self.chain is not None and version == self.version:
            self.monitor.observe(version, self.chain)


@dataclass
class Cluster:
    sim: Simulation
    bug: str | None
    monitor: ChainMonitor = field(default_factory=ChainMonitor)
    memory: MemoryLogletStore = field(default_factory=MemoryLogletStore)
    resumed_after_s: float | None = None
    cold: FaultyColdStore = field(default_factory=FaultyColdStore)
    poison: dict[int, bytes] = field(default_factory=dict)  # position -> the poison entry there
    skipping: set[int] = field(default_factory=set)  # positions a skip was tried for
    unreadable: set[int] = field(default_factory=set)  # rotted positions the final read could not read

    def client(self, name: str, options: VirtualLogOptions = OPTIONS) -> VirtualLog:
        return self.vlog_on(self.sim.client(name), name, options)

    def vlog_on(self, node: Node, name: str, options: VirtualLogOptions) -> VirtualLog:
        """A (monitored) VirtualLog client on ``node``; ``name`` is unique per incarnation."""
        metastore = MetaStoreClient(node.endpoint, SERVERS, node.rng("metastore"), name, timeouts=TIMEOUTS, trace=node.trace)
        registry = LogletRegistry((memory_kind(self.memory), native_kind(node, workload_loglet.SIM_OPTIONS, frozenset([self.bug]) & NATIVE_CLIENT_BUGS)))
        registry.add_kind(striped_kind(registry, node, SIM_STRIPED))
        registry.add_kind(cold_kind(ColdStores(lambda location: self.cold), None, frozenset([self.bug])))
        registry.add_kind(skip_kind(registry))
        vlog = MonitoredVirtualLog(metastore, registry, name, options=options, bugs=frozenset([self.bug]) & set(VIRTUALLOG_BUGS))
        vlog.monitor = self.monitor
        return vlog


# ---------------------------------------------------------------------------- clients


async def _appender(c: Cluster, name: str, hist: History, acked: dict[bytes, int]) -> None:
    vlog = c.client(name)
    rng = c.sim.rng("appender", name)
    for i in range(APPENDS_PER_APPENDER):
        if not c.sim.op_kept(name, i):
            continue  # left out by a schedule (sim --minimize)
        entry = f"{name}/{i}"
        hist.invoke(name, "append", entry)
        try:
            pos = await vlog.append(entry.encode())
        except AppendOutcomeUnknown:
            hist.info(name)
        except AppendFailed:
            hist.fail(name)
        else:
            hist.ok(name, pos)
            acked[entry.encode()] = pos
        await trio.sleep(rng.uniform(0, 0.02))


async def _reader(c: Cluster, name: str, hist: History, seen: dict[int, tuple[str, bytes]]) -> None:
    vlog = c.client(name)
    rng = c.sim.rng("reader", name)
    for i in range(READS_PER_READER):
        if not c.sim.op_kept(name, i):
            continue
        await trio.sleep(rng.uniform(0.01, 0.1))
        hist.invoke(name, "check_tail")
        try:
            tail = await vlog.check_tail()
        except (VirtualLogUnavailable, MetaStoreUnavailable):
            hist.fail(name)
            continue
        hist.ok(name, tail)
        if tail > 0:
            await _read_one(vlog, name, rng.randrange(tail), tail, hist, seen)


async def _read_one(vlog: VirtualLog, name: str, lo: int, hi: int, hist: History, seen: dict[int, tuple[str, bytes]]) -> None:
    hist.invoke(name, "read", lo)
    try:
        got = await vlog.read_next(lo, hi)
    except (VirtualLogUnavailable, MetaStoreUnavailable, TrimmedError):
        hist.fail(name)
        return
    if not got or got[0][1].startswith(b"poison/") or skipped_reason(got[0][1]) is not None:
        # Nothing found (unavailable copy) says nothing; a poison entry may be skipped later
        # (checked apart, by _check_skips). Neither goes into the history.
        hist.fail(name)
    else:
        hist.ok(name, _as_read(*got[0]))
    for pos, entry in got:
        seen.setdefault(pos, (name, entry))


async def _reconfigurer(c: Cluster, name: str, broken: list[str]) -> None:
    vlog = c.client(name)
    rng = c.sim.rng("reconfigurer", name)
    for i in range(RECONFIGS_PER_RECONFIGURER):
        if not c.sim.op_kept(name, i):
            continue
        await trio.sleep(rng.uniform(0.05, 0.4))
        cfg = _next_loglet(vlog, rng, f"{name}.{i}")
        try:
            await vlog.reconfig_extend(cfg)
        except (LogletUnavailable, MetaStoreUnavailable, WriteOutcomeUnknown):
            continue  # a fault: the next attempt (or someone's roll-forward) moves on
        except LogletContractBroken as e:
            broken.append(f"{name}: {e}")  # the VirtualLog caught a loglet breaking §3.4


def _next_loglet(vlog: VirtualLog, rng: Any, loglet_id: str) -> Any:
    """The loglet a reconfigurer moves the log onto, chosen by the seed: now and then a memory
    loglet, often a StripedLoglet of two or three NativeLoglets over the same LogServers with
    rotating sequencers (a hot swap between native and striped, both ways), else a
    NativeLoglet with a sequencer chosen by the seed."""
    r = rng.random()
    if r < 0.2:
        return MemoryLogletConfig(loglet_id)
    if r < 0.45:
        first = rng.randrange(len(SERVERS))
        stripes = [NativeLogletConfig(stripe_id(loglet_id, j), SERVERS[(first + j) % len(SERVERS)], SERVERS) for j in range(rng.choice((2, 3)))]
        return striped_config(vlog.registry, loglet_id, stripes)
    return NativeLogletConfig(loglet_id, rng.choice(SERVERS), SERVERS)


MIGRATE_ERRORS = (MigrationError, LogletError, VirtualLogUnavailable, MetaStoreError, LogletContractBroken)


async def _migrator(c: Cluster, name: str) -> None:
    """Moves sealed segments below a random point near the tail to the cold store, racing
    the reconfigurers (``delos_ref/migrate.py``); a failed attempt is retried later."""
    node = c.sim.client(name)
    vlog = c.vlog_on(node, name, OPTIONS)
    rng = c.sim.rng("migrator", name)
    emit = lambda event, **f: node.trace.emit(name, "migrate", event, **f)  # noqa: E731
    bugs = frozenset([c.bug]) & set(MIGRATE_BUGS)
    for i in range(MIGRATIONS):
        await trio.sleep(rng.uniform(0.2, 0.6))
        try:
            below = await vlog.check_tail() - rng.randrange(0, 20)
            await migrate_below(vlog, c.cold, below, lambda seg: f"{name}.{i}.{seg.start}", bugs=bugs, emit=emit)
        except MIGRATE_ERRORS:
            continue


async def _skipper(c: Cluster, name: str, hist: History) -> None:
    """Appends a *poison* entry, then skips it once a reconfiguration has sealed its segment
    (a skip of the active segment is refused: it tries again later)."""
    vlog = c.client(name)
    rng = c.sim.rng("skipper", name)
    for i in range(SKIPS):
        entry = f"poison/{i}"
        hist.invoke(name, "append", entry)
        try:
            pos = await vlog.append(entry.encode())
        except AppendOutcomeUnknown:
            hist.info(name)
            continue
        except AppendFailed:
            hist.fail(name)
            continue
        hist.ok(name, pos)
        c.poison[pos] = entry.encode()
        for _ in range(10):
            await trio.sleep(rng.uniform(0.1, 0.5))
            c.skipping.add(pos)
            try:
                await skip_entry(vlog, pos, f"poison at {pos}")
                break
            except (SkipRefused, *MIGRATE_ERRORS):
                continue


async def _rotter(c: Cluster) -> None:
    """Fault ``bitrot``: now and then one byte of an installed cold file changes at rest."""
    rng = c.sim.rng("rotter")
    while True:
        await trio.sleep(rng.uniform(1.0, 3.0))
        chain = c.monitor.chains.get(max(c.monitor.chains, default=0))
        if chain is not None:
            c.cold.rot(_installed_files(chain, c))


def _cold_files(seg: Any) -> tuple[Any, ...]:
    """The cold files a segment reads from: a cold one's, or those under a skip of one."""
    config = decode_value(seg.params)
    if seg.kind == "skip" and config.inner_kind == "cold":
        config = decode_value(config.inner_params)
    elif seg.kind != "cold":
        return ()
    return config.files


def _installed_files(chain: Chain, c: Cluster) -> set[str]:
    return {f.name for seg in chain.segments for f in _cold_files(seg)}


def _rotted_positions(chain: Chain, c: Cluster) -> set[int]:
    """The virtual positions held by files rotted at rest: allowed to be unreadable."""
    out: set[int] = set()
    for seg in chain.segments:
        for f in _cold_files(seg):
            if f.name in c.cold.rotted:
                out.update(range(seg.start + f.lo, seg.start + f.hi))
    return out


async def _guarded(violations: list[str], client: Any, c: Cluster, name: str, *args: Any) -> None:
    """Run one client; a loglet caught breaking its contract (during a roll-forward) ends it
    and is a violation."""
    try:
        await client(c, name, *args)
    except LogletContractBroken as e:
        violations.append(f"{name}: {e}")


# ----------------------------------------------------------------------------- checks


async def _resume_after_sequencer_crash(c: Cluster, hist: History, acked: dict[bytes, int]) -> list[str]:
    """Check 5: crash the active sequencer's node; appends must resume within the bound."""
    vlog = c.client("resume", OPTIONS)
    try:
        chain = await vlog.refresh()
        for attempt in range(5):  # a supervisor may install another (striped) successor meanwhile
            if chain.active.kind == "native":
                break
            await vlog.reconfig_extend(NativeLogletConfig(f"resume.{attempt}", SERVERS[0], SERVERS))
            chain = await vlog.refresh()
        else:
            return ["liveness: the sequencer-crash check could not move the log onto a NativeLoglet in 5 tries"]
    except (MetaStoreUnavailable, WriteOutcomeUnknown, LogletUnavailable, LogletContractBroken, VirtualLogUnavailable) as e:
        return [f"liveness: could not set up the sequencer-crash check on a healed cluster: {e!r}"]
    sequencer = vlog.registry.config(chain.active).sequencer
    await trio.sleep(3.0)  # every supervisor's view is stable again after the faulty phase
    c.sim.crash(sequencer)
    crashed_at = trio.current_time()
    i = 0
    pending = False
    with trio.move_on_after(RESUME_BOUND_S):
        while c.resumed_after_s is None:
            entry = f"resume/{i}"
            i += 1
            hist.invoke("resume", "append", entry)
            pending = True
            try:
                pos = await vlog.append(entry.encode())
            except LogletContractBroken as e:  # the VirtualLog caught a loglet breaking §3.4
                hist.info("resume")
                c.sim.restart(sequencer)
                return [f"resume: {e}"]
            except AppendOutcomeUnknown:
                pending = False
                hist.info("resume")
                continue
            except AppendFailed:
                pending = False
                hist.fail("resume")
                await trio.sleep(0.05)
                continue
            pending = False
            hist.ok("resume", pos)
            acked[entry.encode()] = pos
            c.resumed_after_s = trio.current_time() - crashed_at
    if pending:
        hist.info("resume")  # the bound cut an append off: its outcome is unknown
    c.sim.restart(sequencer)
    if c.resumed_after_s is None:
        return [f"liveness: no append succeeded within {RESUME_BOUND_S:g} virtual seconds after the sequencer {sequencer} crashed"]
    return []


async def _final_read(c: Cluster, hist: History) -> tuple[dict[int, bytes], list[str]]:
    vlog = c.client("final", FINAL_OPTIONS)
    try:
        await vlog.refresh()
        await vlog.reconfig_extend(NativeLogletConfig("final", SERVERS[0], SERVERS))
        tail = await vlog.check_tail()
        rotted = _rotted_positions(vlog.chain, c)
        log: dict[int, bytes] = {}
        pos = 0
        while pos < tail:
            # Read up to the next rotted position, and rotted positions one at a time.
            hi = pos + 1 if pos in rotted else min([tail] + [p for p in rotted if p > pos])
            try:
                got = await vlog.read_next(pos, hi)
            except VirtualLogUnavailable:
                if pos not in rotted:
                    raise
                pos += 1  # a file rotted at rest: its range may be unreadable, never different
                continue
            if not got:
                return log, [f"final read stuck at {pos} below the tail {tail}"]
            log.update(got)
            pos = got[-1][0] + 1
    except (VirtualLogUnavailable, MetaStoreUnavailable, WriteOutcomeUnknown, LogletUnavailable, LogletContractBroken) as e:
        return {}, [f"liveness: the final read on a healed cluster failed: {e!r}"]
    for pos in sorted(log):
        hist.invoke("final", "read", pos)
        hist.ok("final", _as_read(pos, _as_appended(c, pos, log[pos])))
    c.unreadable = set(range(tail)) - set(log)
    return log, []


def _as_appended(c: Cluster, pos: int, entry: bytes) -> bytes:
    """What the history records for a read of ``entry`` at ``pos``: a skip marker stands
    for the poison entry it replaced (checked apart, by ``_check_skips``)."""
    if skipped_reason(entry) is not None and pos in c.poison:
        return c.poison[pos]
    return entry


def _check_log(log: dict[int, bytes], acked: dict[bytes, int], seen: dict[int, tuple[str, bytes]], unreadable: set[int] = frozenset()) -> list[str]:
    out = []
    held: dict[bytes, list[int]] = {}  # every entry (unique per append here): where the log holds it
    for pos in sorted(log):
        held.setdefault(log[pos], []).append(pos)
    for entry, pos in sorted(acked.items(), key=lambda kv: kv[1]):
        if pos in unreadable:
            continue  # its cold file rotted at rest, and the read failed (never returned it wrong)
        if log.get(pos) != entry:
            out.append(f"acknowledged {entry!r} at {pos}, but the final log holds {log.get(pos)!r} there")
        if len(held.get(entry, [])) > 1:
            out.append(f"acknowledged entry {entry!r} at two positions: acknowledged at {pos}, the log holds it at {held[entry]}")
    where: dict[bytes, int] = {}
    for pos in sorted(log):
        if log[pos] == FILLER:
            continue  # a StripedLoglet's filler for a hole (docs/design.md §6): no one's append
        if where.setdefault(log[pos], pos) != pos:
            out.append(f"{log[pos]!r} is in the log twice, at {where[log[pos]]} and {pos}")
    for pos, (reader, entry) in sorted(seen.items()):
        if pos in log and log[pos] != entry and not _skipped_then(log[pos], entry):
            out.append(f"reader {reader} saw {entry!r} at {pos}, the final log holds {log[pos]!r}")
    return out


def _skipped_then(final: bytes, seen: bytes) -> bool:
    """A reader saw the poison entry, and the final log holds the marker that replaced it."""
    return seen.startswith(b"poison/") and skipped_reason(final) is not None


def _check_skips(c: Cluster, log: dict[int, bytes]) -> list[str]:
    """6. **Skips replace only what was skipped**: a marker stands at a position only if a
    skip was tried there, and says so; every other position holds what was appended."""
    out = []
    for pos in sorted(log):
        reason = skipped_reason(log[pos])
        if reason is not None and (pos not in c.skipping or reason != f"poison at {pos}"):
            out.append(f"position {pos} reads as skipped ({reason!r}), but no skip was made there")
    return out


def _as_read(pos: int, entry: bytes) -> str:
    """How the history records a read of ``entry`` at ``pos``. A StripedLoglet's filler (the
    empty entry it puts into a hole, docs/design.md §6) is named by its position, so that each
    filler is a unique entry the checker can pin, like every client's."""
    return f"<filler at {pos}>" if entry == FILLER else entry.decode()


def _client_positions(acked: dict[bytes, int], seen: dict[int, tuple[str, bytes]]) -> set[int]:
    """The positions known to hold a client's entry: acknowledged there, or read there."""
    return set(acked.values()) | {pos for pos, (_, entry) in seen.items() if entry != FILLER}


def _linearizability(hist: History, log: dict[int, bytes], unreadable: set[int] = frozenset(), client_positions: set[int] = frozenset()) -> list[str]:
    """Check 1. Each filler in the final log was appended by no client, at a time no one saw:
    an append of unknown outcome, invoked before everything (so it may take effect anywhere).

    A position that rotted at rest (``unreadable``) may have held a filler too, which a client
    may have read before the rot: it gets the same stand-in, unless it is known to hold a
    client's entry (``client_positions``: acknowledged there, or read there), whose own append
    is in the history. (A stand-in for every rotted position would be sound too, but each one
    multiplies the orders the search must try: seeds 408, 734 and 1369 ran out of states.)"""
    fillers = History()
    maybe_fillers = set(unreadable) - set(client_positions)
    for pos in sorted({p for p, entry in log.items() if entry == FILLER} | maybe_fillers):
        fillers.invoke("filler", "append", _as_read(pos, FILLER))
        fillers.info("filler")
    result = check(History([*fillers.events, *hist.events]), Log())
    if result.ok:
        return []
    return [f"history {result.verdict}: {result.reason}"]


# -------------------------------------------------------------------------------- run


async def run(cfg: RunConfig) -> RunResult:
    sim = Simulation(cfg.seed, link=link_for(cfg.faults), schedule=cfg.schedule)
    hist = History()
    acked: dict[bytes, int] = {}
    seen: dict[int, tuple[str, bytes]] = {}
    violations: list[str] = []
    async with sim.run():
        c = Cluster(sim, cfg.bug, cold=FaultyColdStore("sim-cold", rng=sim.rng("coldstore"), faulty="bitrot" in cfg.faults))
        for name in SERVERS:
            sim.add_node(name, _server_build(c))
        boot = c.client("boot", FINAL_OPTIONS)
        await boot.bootstrap(NativeLogletConfig("boot", SERVERS[0], SERVERS))
        everyone = list(SERVERS) + [*APPENDERS, *READERS, *RECONFIGURERS, MIGRATOR, SKIPPER]
        nemesis = Nemesis(sim, faults=cfg.faults, crashable=list(SERVERS), partitionable=everyone, max_down=1)
        violations += await _faulty_phase(c, nemesis, hist, acked, seen)
        nemesis.heal_all()
        await trio.sleep(0.5)  # let restarted servers come up
        violations += await _resume_after_sequencer_crash(c, hist, acked)
        log, final = await _final_read(c, hist)
        violations += final
        virtual_s = trio.current_time()
    if not final:
        violations += _check_log(log, acked, seen, c.unreadable) + _check_skips(c, log)
    violations = c.monitor.violations + violations + _linearizability(hist, log, c.unreadable, _client_positions(acked, seen))
    trace = sim.trace.events
    stats = {
        "acked": len(acked),
        "versions": len(c.monitor.chains),
        "log": len(log),
        "resumed_after_s": c.resumed_after_s,
        "cold_segments": sum(s.kind == "cold" for s in c.monitor.chains.get(max(c.monitor.chains, default=0), Chain.initial("x", b"")).segments),
        "skips": len(c.skipping),
        "rotted": len(c.cold.rotted),
        "bad_writes": len(c.cold.bad_writes),
        "nemesis": nemesis.stats,
        "net": dict(sim.net.stats),
    }
    return RunResult(cfg.seed, violations, len(trace), sim.digest(), virtual_s, stats, trace if cfg.keep_trace else None, sim.recorder.schedule(cfg.faults))


async def _faulty_phase(c: Cluster, nemesis: Nemesis, hist: History, acked: dict[bytes, int], seen: dict[int, tuple[str, bytes]]) -> list[str]:
    violations: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(nemesis.run)
        with trio.move_on_after(RUN_BOUND_S) as bound:
            async with trio.open_nursery() as clients:
                for name in APPENDERS:
                    clients.start_soon(_guarded, violations, _appender, c, name, hist, acked)
                for name in READERS:
                    clients.start_soon(_guarded, violations, _reader, c, name, hist, seen)
                for name in RECONFIGURERS:
                    clients.start_soon(_reconfigurer, c, name, violations)
                clients.start_soon(_guarded, violations, _migrator, c, MIGRATOR)
                clients.start_soon(_guarded, violations, _skipper, c, SKIPPER, hist)
                if c.cold.faulty:
                    nursery.start_soon(_rotter, c)
        nursery.cancel_scope.cancel()
    if bound.cancelled_caught:
        violations.append(f"liveness: the clients did not finish within {RUN_BOUND_S:g} virtual seconds")
    return violations


register(
    Workload(
        name="log",
        description="VirtualLog: appenders, readers and racing reconfigurers over NativeLoglets and memory "
        "loglets; server crashes, partitions, lossy links; linearizability and chain invariants checked",
        faults=("loss", "duplicate", "reorder", "partition", "crash", "bitrot"),
        bugs=dict(LOG_BUGS),
        run=run,
    )
)
