"""The ``loglet`` workload: a NativeLoglet under appenders, a sealer and tail checkers, with faults.

Cast: three LogServers (``s1..s3``, crashed and restarted by the nemesis, at most one down at
a time: the loglet promises to tolerate a minority), one sequencer node (``q1``; a dead
sequencer is the VirtualLog's business, not this workload's), and client nodes: two
appenders with two append loops each, two tail checkers, and one sealer that seals the
loglet at a random moment while appends are in flight and then keeps checking the tail. The
links lose, duplicate and reorder messages; partitions come and go. When the appenders have
all been stopped by the seal, the network heals, every server comes back, and a fresh client
reads the whole sealed loglet.

Checks (docs/design.md §3.4 and §5), each a violation string when it fails:

1. **No acknowledged append lost or moved**: at the end, every acknowledged entry is read
   back at the position it was acknowledged at; no two LogServers store different entries at
   one position.
2. **The sealed tail is never below an acknowledged position**: every acknowledged position
   is below every sealed tail any check_tail returned.
3. **No append acknowledged after the seal took effect**: an append invoked after a seal()
   or a sealed check_tail had returned must fail. (An append already in flight may still be
   acknowledged, but then at a position below the sealed tail: check 2.)
4. **After repair, every position below the sealed tail is on a majority**: when a sealed
   check_tail returns T, at least a majority of LogServers durably hold ``[0, T)``.
5. **check_tail is linearizable and monotonic**: a check_tail invoked after an append of
   position p was acknowledged returns a tail above p; one invoked after another returned
   never returns less.

Bug switches (``--bug``), each caught by these checks: see
:data:`~delos_ref.loglet.native.NATIVE_BUGS`.

The clients' operations are also recorded as a history of invoke / ok / fail / info events
(``History.calls``; a process per append loop, ``a1@0``), which charts draw as client bars
(:mod:`delos_ref.viz.sources`); the checks above read the records, not this history.

Also here, for tests: :func:`start_native` puts a NativeLoglet on a simulation, and
:func:`native_sim_factory` is its factory for the loglet conformance suite.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import trio

from delos_ref.checker import History as OpHistory
from delos_ref.loglet import LogletUnavailable, SealedError
from delos_ref.loglet.native import (
    CLIENT_BUGS,
    LOGSERVER_BUGS,
    NATIVE_BUGS,
    SEQUENCER_BUGS,
    LogServerLimits,
    NativeLoglet,
    NativeLogletConfig,
    NativeOptions,
    SequencerLimits,
    add_logserver,
    add_sequencer,
)
from delos_ref.loglet.native import storage as layout
from delos_ref.loglet.native.roles import LOGSERVER_ROLE, SEQUENCER_ROLE
from delos_ref.sim.harness import RunConfig, RunResult, Workload, register
from delos_ref.sim.simulation import Nemesis, Simulation, link_for
from transports.memory import LinkModel

LOGSERVERS = ("s1", "s2", "s3")
SEQUENCER = "q1"
APPENDERS = ("a1", "a2")
LOOPS_PER_APPENDER = 2
APPENDS_PER_LOOP = 80
CHECKERS = ("k1", "k2")
SEALER = "x1"
#: Short deadlines so that faults turn into LogletUnavailable (and retries) quickly.
SIM_OPTIONS = NativeOptions(append_timeout_s=2.0, op_timeout_s=2.0, call_timeout_s=0.5)


# ----------------------------------------------------------------------- sim clusters


def start_native(
    sim: Simulation,
    *,
    loglet_id: str = "L1",
    logservers: tuple[str, ...] = LOGSERVERS,
    sequencer: str = SEQUENCER,
    bugs: frozenset[str] = frozenset(),
    logserver_limits: LogServerLimits = LogServerLimits(),
    sequencer_limits: SequencerLimits = SequencerLimits(),
) -> NativeLogletConfig:
    """Add LogServer nodes and a sequencer node to ``sim``; return the loglet's config."""
    cfg = NativeLogletConfig(loglet_id, sequencer, tuple(logservers))
    server_bugs = frozenset(bugs) & set(LOGSERVER_BUGS)
    sequencer_bugs = frozenset(bugs) & set(SEQUENCER_BUGS)

    def build(node: Any, storage_for: Any) -> None:
        if node.node_id in cfg.logservers:
            add_logserver(node, storage_for(LOGSERVER_ROLE), limits=logserver_limits, bugs=server_bugs)
        if node.node_id == cfg.sequencer:
            add_sequencer(node, storage_for(SEQUENCER_ROLE), limits=sequencer_limits, bugs=sequencer_bugs)

    for node_id in sorted(set(cfg.logservers) | {cfg.sequencer}):
        sim.add_node(node_id, build)
    return cfg


@dataclass
class SimNativeHarness:
    """Clients of one NativeLoglet in a simulation, one client node per name."""

    sim: Simulation
    config: NativeLogletConfig
    bugs: frozenset[str] = frozenset()
    options: NativeOptions = field(default_factory=lambda: SIM_OPTIONS)  # read when made: a sweep may swap SIM_OPTIONS
    clients: dict[str, NativeLoglet] = field(default_factory=dict)

    def client(self, name: str) -> NativeLoglet:
        if name not in self.clients:
            node = self.sim.client(name)
            self.clients[name] = NativeLoglet(node, self.config, options=self.options, bugs=self.bugs & set(CLIENT_BUGS))
        return self.clients[name]


@contextlib.asynccontextmanager
async def native_sim_factory(seed: int = 0, link: LinkModel = LinkModel(), **kw: Any) -> AsyncIterator[SimNativeHarness]:
    """A fresh simulated NativeLoglet (3 LogServers, a separate sequencer node)."""
    async with Simulation(seed, link=link).run() as sim:
        yield SimNativeHarness(sim, start_native(sim, **kw))


def durable_tail(sim: Simulation, server: str, loglet_id: str) -> int:
    """A LogServer's local tail as its (crash-surviving) storage holds it."""
    storage = sim.nodes[server].storages.get(LOGSERVER_ROLE)
    st = layout.recover_logserver(storage).get(loglet_id) if storage is not None else None
    return st.local_tail if st is not None else 0


# ------------------------------------------------------------------------- the history


@dataclass(slots=True)
class AppendRecord:
    client: str
    entry: bytes
    start: float
    end: float = 0.0
    pos: int | None = None  # set when acknowledged
    outcome: str = ""  # ok | sealed | unavailable


@dataclass(slots=True)
class TailRecord:
    client: str
    start: float
    end: float
    tail: int
    sealed: bool


@dataclass
class History:
    """What the clients did and saw; ``calls`` is the same as invoke/ok/fail/info events,
    for charts (an append that failed ``sealed`` did not happen: fail; ``unavailable`` may
    have: info)."""

    appends: list[AppendRecord] = field(default_factory=list)
    tails: list[TailRecord] = field(default_factory=list)
    seals_returned: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    calls: OpHistory = field(default_factory=OpHistory)


# ---------------------------------------------------------------------------- clients


async def _append_loop(h: SimNativeHarness, client: str, loop: int, hist: History) -> None:
    loglet = h.client(client)
    rng = h.sim.rng("appender", client, loop)
    for i in range(APPENDS_PER_LOOP):
        if not h.sim.op_kept(f"{client}@{loop}", i):
            continue  # left out by a schedule (sim --minimize)
        rec = AppendRecord(client, b"%s/%d/%d" % (client.encode(), loop, i), trio.current_time())
        hist.appends.append(rec)
        process = f"{client}@{loop}"
        hist.calls.invoke(process, "append", rec.entry)
        try:
            rec.pos = await loglet.append(rec.entry)
            rec.outcome = "ok"
            hist.calls.ok(process, rec.pos)
        except SealedError:
            rec.outcome = "sealed"
            hist.calls.fail(process)
        except LogletUnavailable:
            rec.outcome = "unavailable"
            hist.calls.info(process)
        rec.end = trio.current_time()
        if rec.outcome == "sealed":
            return  # the loglet is done; the VirtualLog would move on
        await trio.sleep(rng.uniform(0, 0.004))


#: Checks a sealed check_tail's result against the servers' durable state, at once.
HoldCheck = Callable[[Any, TailRecord, History], None]


async def _checked_tail(h: Any, client: str, hist: History, hold: HoldCheck) -> TailRecord | None:
    """One check_tail by ``client``, recorded; a sealed tail is checked at once by ``hold``
    (against durable storage: :func:`_check_majority_holds`, or the striped workload's)."""
    start = trio.current_time()
    hist.calls.invoke(client, "check_tail")
    try:
        tail, sealed = await h.client(client).check_tail()
    except LogletUnavailable:
        hist.calls.fail(client)  # a read: it changed nothing
        return None
    hist.calls.ok(client, f"tail {tail}" + (", sealed" if sealed else ""))
    rec = TailRecord(client, start, trio.current_time(), tail, sealed)
    hist.tails.append(rec)
    if sealed:
        hold(h, rec, hist)
    return rec


def _check_majority_holds(h: SimNativeHarness, rec: TailRecord, hist: History) -> None:
    """Check 4, at the moment a sealed check_tail returns, against durable storage."""
    holders = [s for s in h.config.logservers if durable_tail(h.sim, s, h.config.loglet_id) >= rec.tail]
    if len(holders) < h.config.majority:
        hist.violations.append(f"sealed tail {rec.tail} returned to {rec.client} at t={rec.end:.4f}, but only {holders} durably hold [0, {rec.tail})")


async def _tail_checker(h: Any, client: str, hist: History, stop: trio.Event, hold: HoldCheck = _check_majority_holds) -> None:
    rng = h.sim.rng("checker", client)
    i = 0
    while not stop.is_set():
        if h.sim.op_kept(client, i):  # a schedule may leave some out (sim --minimize)
            await _checked_tail(h, client, hist, hold)
        i += 1
        await trio.sleep(rng.uniform(0.001, 0.03))


async def _sealer(h: Any, hist: History, hold: HoldCheck = _check_majority_holds) -> None:
    rng = h.sim.rng("sealer")
    await trio.sleep(rng.uniform(0.05, 0.6))
    for _ in range(50):
        hist.calls.invoke(SEALER, "seal")
        try:
            await h.client(SEALER).seal()
        except LogletUnavailable:
            hist.calls.info(SEALER)  # some LogServers may be sealed already
            continue
        hist.calls.ok(SEALER)
        hist.seals_returned.append(trio.current_time())
        break
    for _ in range(5):
        await trio.sleep(rng.uniform(0.001, 0.02))
        await _checked_tail(h, SEALER, hist, hold)


# ----------------------------------------------------------------------------- checks


def check_history(hist: History) -> list[str]:
    """Checks 2, 3 and 5 over the recorded history (1 and 4 need storage: see run)."""
    out = []
    acked = [a for a in hist.appends if a.outcome == "ok"]
    sealed = [t for t in hist.tails if t.sealed]
    if sealed:
        low = min(sealed, key=lambda t: t.tail)
        for a in acked:
            if a.pos >= low.tail:
                out.append(f"append of {a.entry!r} acknowledged at {a.pos}, not below the sealed tail {low.tail} returned to {low.client}")
    sealed_at = min([t.end for t in sealed] + hist.seals_returned, default=None)
    if sealed_at is not None:
        for a in acked:
            if a.start > sealed_at:
                out.append(f"append of {a.entry!r} invoked at t={a.start:.4f}, after the seal took effect (t={sealed_at:.4f}), was acknowledged at {a.pos}")
    for t in hist.tails:
        for a in acked:
            if a.end < t.start and a.pos >= t.tail:
                out.append(f"check_tail by {t.client} at t={t.start:.4f} returned {t.tail}, after position {a.pos} was acknowledged")
                break
    for t in hist.tails:
        for u in hist.tails:
            if u.end < t.start and u.tail > t.tail:
                out.append(f"check_tail went back: {u.client} got {u.tail}, then {t.client} got {t.tail}")
                return out
    return out


async def _final_checks(h: SimNativeHarness, hist: History) -> list[str]:
    """Check 1: every acknowledged entry is read back in place; servers agree per position."""
    reader = h.client("reader")
    try:
        tail, sealed = await reader.check_tail()
        got = {}
        while len(got) < tail:
            got.update(await reader.read_next(len(got), tail))
    except LogletUnavailable as e:
        return [f"final read of the healed loglet failed: {e}"]
    out = [] if sealed else ["the loglet is not sealed at the end, although seal() returned"]
    for a in hist.appends:
        if a.outcome == "ok" and got.get(a.pos) != a.entry:
            out.append(f"acknowledged {a.entry!r} at {a.pos}, but position {a.pos} reads {got.get(a.pos)!r}")
    return out + _servers_agree(h)


def _servers_agree(h: SimNativeHarness) -> list[str]:
    values: dict[int, bytes] = {}
    out = []
    prefix = layout.loglet_prefix(h.config.loglet_id)
    for server in h.config.logservers:
        storage = h.sim.nodes[server].storages[LOGSERVER_ROLE]
        for key, value in storage.scan(layout.ENTRIES, prefix):
            if not key.startswith(prefix):
                break
            pos = layout.key_position(key)
            if values.setdefault(pos, value) != value:
                out.append(f"LogServers disagree at position {pos}")
    return out


# -------------------------------------------------------------------------------- run


async def run(cfg: RunConfig) -> RunResult:
    bugs = frozenset([cfg.bug]) if cfg.bug else frozenset()
    sim = Simulation(cfg.seed, link=link_for(cfg.faults), schedule=cfg.schedule)
    hist = History()
    async with sim.run():
        h = SimNativeHarness(sim, start_native(sim, bugs=bugs), bugs=bugs)
        everyone = list(LOGSERVERS) + [SEQUENCER, *APPENDERS, *CHECKERS, SEALER]
        nemesis = Nemesis(sim, faults=cfg.faults, crashable=list(LOGSERVERS), partitionable=everyone, max_down=1)
        with trio.fail_after(120):  # virtual seconds: a bound a healthy run never reaches
            async with trio.open_nursery() as faults:
                faults.start_soon(nemesis.run)
                await _clients(h, hist)
                faults.cancel_scope.cancel()
            nemesis.heal_all()
            await trio.sleep(0.5)  # let restarted servers come up
            violations = hist.violations + check_history(hist) + await _final_checks(h, hist)
        virtual_s = trio.current_time()
    trace = sim.trace.events
    stats = {"nemesis": nemesis.stats, "net": dict(sim.net.stats), "acked": sum(a.outcome == "ok" for a in hist.appends), "tails": len(hist.tails)}
    return RunResult(cfg.seed, violations, len(trace), sim.digest(), virtual_s, stats, trace if cfg.keep_trace else None, sim.recorder.schedule(cfg.faults))


async def _clients(h: SimNativeHarness, hist: History) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as checkers:
        for c in CHECKERS:
            checkers.start_soon(_tail_checker, h, c, hist, stop)
        async with trio.open_nursery() as workers:
            for a in APPENDERS:
                for loop in range(LOOPS_PER_APPENDER):
                    workers.start_soon(_append_loop, h, a, loop, hist)
            workers.start_soon(_sealer, h, hist)
        stop.set()


register(
    Workload(
        name="loglet",
        description="NativeLoglet: concurrent appenders, a sealer and tail checkers; LogServer crashes, partitions, lossy links",
        faults=("loss", "duplicate", "reorder", "partition", "crash"),
        bugs=dict(NATIVE_BUGS),
        run=run,
    )
)
