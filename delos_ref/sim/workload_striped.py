"""The ``striped`` workload: a StripedLoglet of NativeLoglets under appenders, a sealer and tail
checkers, with every fault (docs/design.md §6; ``delos_ref/loglet/striped.py``).

Cast: the seed picks the shape. *Rotating sequencer* (most seeds): two or three stripes over
the same LogServers ``s1..s3``, stripe j sequenced on ``s{j+1}``, so a crash of a LogServer
node is also the crash of a stripe's sequencer (after which that stripe takes no append:
the striped loglet stalls above its holes, which is what it must do, until the seal).
*Sharding*: two stripes over disjoint LogServer sets ``s1..s3`` and ``s4..s6``, each
sequenced on its first node. The nemesis crashes and restarts server nodes (one down at a
time), partitions everyone, and the links lose, duplicate and reorder messages. Clients: two
appender nodes with two append loops each (each node one StripedLoglet client, so the two
nodes place appends independently and leave holes for each other), two tail checkers, one
sealer that seals at a random moment and keeps checking the tail. When the appenders are
done, the network heals, every server comes back, and a fresh client reads the sealed log.

Checks -- the ``loglet`` workload's five (no acknowledged append lost or moved, sealed tails
above every acknowledged position, no acknowledgement after the seal took effect, positions
below a sealed tail on a majority, check_tail linearizable and monotonic), here with the
striped loglet's logical positions, and two of its own:

6. **Nothing above a hole is acknowledged**: every acknowledged position is below the final
   sealed tail (the first hole), and reads back in place.
7. **Below a sealed tail T every stripe j holds need(j, T) entries on a majority** of its
   LogServers, durably, when the sealed check_tail returns.

Bug switches: :data:`~delos_ref.loglet.striped.STRIPED_BUGS` (``striped_acks_over_hole``,
``striped_partial_seal``, ``striped_check_tail_half_sealed``); each must be caught within 200
seeds (each is within 40: ``tests/test_striped_loglet.py``).

Also here, for tests: :func:`start_striped` and :func:`striped_sim_factory` (the loglet
conformance suite's factory for striped NativeLoglets).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import trio

from delos_ref.loglet import LogletUnavailable
from delos_ref.loglet.native import NativeLoglet, NativeLogletConfig, add_logserver, add_sequencer
from delos_ref.loglet.native.roles import LOGSERVER_ROLE, SEQUENCER_ROLE
from delos_ref.loglet.striped import STRIPED_BUGS, StripedLoglet, StripedOptions, need, stripe_id
from delos_ref.sim import workload_loglet as base
from delos_ref.sim.harness import RunConfig, RunResult, Workload, register
from delos_ref.sim.simulation import Nemesis, Simulation, link_for
from transports.memory import LinkModel

APPENDERS = ("a1", "a2")
CHECKERS = ("k1", "k2")
SEALER = "x1"
SIM_STRIPED = StripedOptions(append_timeout_s=4.0, poll_s=0.005, fill_after_s=0.05)


def striped_configs(loglet_id: str, stripes: int, *, sharded: bool = False, width: int = 3) -> list[NativeLogletConfig]:
    """The stripes' NativeLoglet configs: rotating sequencers over ``s1..s{width}``, or
    disjoint LogServer sets ``s1..``, ``s{width+1}..`` (sharded), each sequenced on its first."""
    out = []
    for j in range(stripes):
        if sharded:
            servers = tuple(f"s{width * j + i + 1}" for i in range(width))
            out.append(NativeLogletConfig(stripe_id(loglet_id, j), servers[0], servers))
        else:
            servers = tuple(f"s{i + 1}" for i in range(width))
            out.append(NativeLogletConfig(stripe_id(loglet_id, j), servers[j % width], servers))
    return out


def start_striped(sim: Simulation, configs: list[NativeLogletConfig]) -> None:
    """Add every LogServer and sequencer node the stripes name (each node hosts both roles)."""
    nodes = sorted({n for cfg in configs for n in (*cfg.logservers, cfg.sequencer)})

    def build(node: Any, storage_for: Any) -> None:
        add_logserver(node, storage_for(LOGSERVER_ROLE))
        add_sequencer(node, storage_for(SEQUENCER_ROLE))

    for node_id in nodes:
        sim.add_node(node_id, build)


@dataclass
class SimStripedHarness:
    """StripedLoglet clients in a simulation, one client node (and stripe clients) per name."""

    sim: Simulation
    configs: list[NativeLogletConfig]
    bugs: frozenset[str] = frozenset()
    options: StripedOptions = SIM_STRIPED
    loglet_id: str = "L1"
    fills_holes: bool = True  # for the conformance suite: fillers may appear (rule 3)
    clients: dict[str, StripedLoglet] = field(default_factory=dict)

    def client(self, name: str) -> StripedLoglet:
        if name not in self.clients:
            node = self.sim.client(name)
            inner = [NativeLoglet(node, cfg, options=base.SIM_OPTIONS) for cfg in self.configs]
            emit = lambda event, **f: node.trace.emit(node.node_id, "loglet", event, **f)  # noqa: E731
            self.clients[name] = StripedLoglet(self.loglet_id, inner, options=self.options, bugs=self.bugs, emit=emit)
        return self.clients[name]


@contextlib.asynccontextmanager
async def striped_sim_factory(seed: int = 0, link: LinkModel = LinkModel(), stripes: int = 2, sharded: bool = False) -> AsyncIterator[SimStripedHarness]:
    """A fresh simulated StripedLoglet of NativeLoglets (rotating sequencer, or sharded)."""
    async with Simulation(seed, link=link).run() as sim:
        configs = striped_configs("L1", stripes, sharded=sharded)
        start_striped(sim, configs)
        yield SimStripedHarness(sim, configs)


# ----------------------------------------------------------------------------- checks


def _check_stripes_hold(h: SimStripedHarness, rec: base.TailRecord, hist: base.History) -> None:
    """Check 7, when a sealed check_tail returns: stripe j holds need(j, T) on a majority."""
    n = len(h.configs)
    for j, cfg in enumerate(h.configs):
        want = need(j, rec.tail, n)
        holders = [s for s in cfg.logservers if base.durable_tail(h.sim, s, cfg.loglet_id) >= want]
        if len(holders) < cfg.majority:
            hist.violations.append(f"sealed tail {rec.tail} returned to {rec.client}, but stripe {j} holds [0, {want}) only on {holders}")


async def _final_checks(h: SimStripedHarness, hist: base.History) -> list[str]:
    """Checks 1 and 6: every acknowledged entry reads back in place, below the sealed tail."""
    reader = h.client("reader")
    try:
        tail, sealed = await reader.check_tail()
        got: dict[int, bytes] = {}
        while len(got) < tail:
            chunk = await reader.read_next(len(got), tail)
            if not chunk:
                return [f"final read stuck at {len(got)} below the sealed tail {tail}"]
            got.update(chunk)
    except LogletUnavailable as e:
        return [f"final read of the healed striped loglet failed: {e}"]
    out = [] if sealed else ["the striped loglet is not sealed at the end, although seal() returned"]
    for a in hist.appends:
        if a.outcome != "ok":
            continue
        if a.pos >= tail:
            out.append(f"{a.entry!r} acknowledged at {a.pos}, at or above the final sealed tail {tail}: above a hole")
        elif got.get(a.pos) != a.entry:
            out.append(f"acknowledged {a.entry!r} at {a.pos}, but position {a.pos} reads {got.get(a.pos)!r}")
    return out


# -------------------------------------------------------------------------------- run


def _shape(sim: Simulation) -> tuple[int, bool]:
    """The seed's shape: (stripes, sharded). Rotating 2 or 3 stripes, or sharded 2."""
    rng = sim.rng("shape")
    choice = rng.random()
    return (2, True) if choice < 0.25 else ((3, False) if choice < 0.5 else (2, False))


async def run(cfg: RunConfig) -> RunResult:
    bugs = frozenset([cfg.bug]) if cfg.bug else frozenset()
    sim = Simulation(cfg.seed, link=link_for(cfg.faults), schedule=cfg.schedule)
    hist = base.History()
    stripes, sharded = _shape(sim)
    async with sim.run():
        configs = striped_configs("L1", stripes, sharded=sharded)
        start_striped(sim, configs)
        h = SimStripedHarness(sim, configs, bugs=bugs)
        servers = sorted({s for c in configs for s in c.logservers})
        everyone = servers + [*APPENDERS, *CHECKERS, SEALER]
        nemesis = Nemesis(sim, faults=cfg.faults, crashable=servers, partitionable=everyone, max_down=1)
        with trio.fail_after(120):  # virtual seconds: a bound a healthy run never reaches
            async with trio.open_nursery() as faults:
                faults.start_soon(nemesis.run)
                await _clients(h, hist)
                faults.cancel_scope.cancel()
            nemesis.heal_all()
            await trio.sleep(0.5)  # let restarted servers come up
            violations = hist.violations + base.check_history(hist) + await _final_checks(h, hist)
        virtual_s = trio.current_time()
    trace = sim.trace.events
    fillers = sum(c.stats["fillers"] for c in h.clients.values())
    stats = {"stripes": stripes, "sharded": sharded, "nemesis": nemesis.stats, "acked": sum(a.outcome == "ok" for a in hist.appends), "fillers": fillers}
    return RunResult(cfg.seed, violations, len(trace), sim.digest(), virtual_s, stats, trace if cfg.keep_trace else None, sim.recorder.schedule(cfg.faults))


async def _clients(h: SimStripedHarness, hist: base.History) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as checkers:
        for c in CHECKERS:
            checkers.start_soon(base._tail_checker, h, c, hist, stop, _check_stripes_hold)
        async with trio.open_nursery() as workers:
            for a in APPENDERS:
                for loop in range(base.LOOPS_PER_APPENDER):
                    workers.start_soon(base._append_loop, h, a, loop, hist)
            workers.start_soon(base._sealer, h, hist, _check_stripes_hold)
        stop.set()


register(
    Workload(
        name="striped",
        description="StripedLoglet of NativeLoglets (rotating sequencer or sharded): appenders, a sealer, "
        "tail checkers; server (and so sequencer) crashes, partitions, lossy links",
        faults=("loss", "duplicate", "reorder", "partition", "crash"),
        bugs=dict(STRIPED_BUGS),
        run=run,
    )
)
