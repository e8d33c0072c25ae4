"""A deterministic simulation of a delos-ref cluster in one trio run.

A :class:`Simulation` owns a :class:`~transports.memory.SimNetwork`, the simulated nodes
(each a real :class:`~delos_ref.runtime.Node` with real protocol roles), their simulated disks
(:class:`~delos_ref.storage.MemoryStorage`, which loses unsynced writes in a crash), and one
trace. Everything random is drawn from RNGs derived from the run's seed by name
(``seeded_rng(seed, "node", "n1", incarnation)``, ``seeded_rng(seed, "link", "n1", "n2")``,
``seeded_rng(seed, "nemesis")``), so a seed replays a run exactly, event for event; the trace
digest proves it.

Usage (under ``trio.testing.MockClock(autojump_threshold=0)``)::

    async with Simulation(seed=7).run() as sim:
        sim.add_node("n1", build=lambda node, storage_for: node.add_role(...))
        client = sim.client("c1")
        reply = await client.endpoint.call("n1", Ping(), timeout_s=1)
        sim.crash("n1"); sim.restart("n1")

A simulation may be given a :class:`~delos_ref.sim.schedule.Schedule`: then the
:class:`Nemesis` plays its listed faults instead of drawing them, and client loops ask
:meth:`Simulation.op_kept` which of their operations run. Either way the simulation records
what the run did as a schedule (``sim.recorder``), which is how ``sim --minimize`` starts.

Determinism rests on three things: time only from the mock clock; randomness only from named
RNGs; and an order of task wake-ups that does not vary between runs. The network's stepped
delivery handles message order; for tasks woken together (e.g. two timers due at the same
instant), trio's ``_ALLOW_DETERMINISTIC_SCHEDULING`` switch makes the scheduler order them by
creation instead of at random. It is a private knob, so ``tests/test_determinism.py`` keeps a
canary on it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import trio

from delos_ref.runtime import Node, seeded_rng
from delos_ref.sim.schedule import Action, BadSchedule, Schedule, ScheduleRecorder
from delos_ref.storage import MemoryStorage
from delos_ref.trace import MemorySink, TraceSink
from transports.memory import LinkModel, SimNetwork

NEMESIS = "~nemesis"
_STREAM = re.compile(r"[A-Za-z0-9_@]+\Z")

Build = Callable[[Node, Callable[[str], MemoryStorage]], Any]


@contextlib.contextmanager
def deterministic_scheduling(seed: str) -> Any:
    """Make trio order the tasks woken in one batch reproducibly.

    With ``_ALLOW_DETERMINISTIC_SCHEDULING`` trio sorts each batch by task creation and then
    shuffles it with its module RNG ``_r`` (the hook pytest-trio uses under Hypothesis); we seed
    that RNG from the run's seed, so the order is varied across seeds but fixed for one seed.
    """
    import trio._core._run as run_mod

    assert hasattr(run_mod, "_ALLOW_DETERMINISTIC_SCHEDULING") and hasattr(run_mod, "_r"), "trio's scheduling hooks moved: pin trio"
    old_flag, old_rng = run_mod._ALLOW_DETERMINISTIC_SCHEDULING, run_mod._r
    run_mod._ALLOW_DETERMINISTIC_SCHEDULING = True
    run_mod._r = seeded_rng(seed, "trio-scheduler")
    try:
        yield
    finally:
        run_mod._ALLOW_DETERMINISTIC_SCHEDULING, run_mod._r = old_flag, old_rng


@dataclass(slots=True)
class SimNode:
    node_id: str
    build: Build | None
    storages: dict[str, MemoryStorage] = field(default_factory=dict)
    incarnation: int = 0
    node: Node | None = None
    scope: trio.CancelScope | None = None
    up: bool = False


class Simulation:
    """A seeded, stepped simulation of a cluster. See the module docstring."""

    def __init__(
        self,
        seed: int | str = 0,
        *,
        link: LinkModel = LinkModel(),
        trace: TraceSink | None = None,
        codec_roundtrip: bool = True,
        schedule: Schedule | None = None,
    ) -> None:
        self.seed = str(seed)
        self.schedule = schedule  # None: the seed decides the nemesis's faults and every operation
        self.recorder = ScheduleRecorder()  # what this run did, as an explicit schedule
        self.trace = trace if trace is not None else MemorySink(trio.current_time)
        self.net = SimNetwork(self.seed, link=link, trace=self.trace, codec_roundtrip=codec_roundtrip)
        self.nodes: dict[str, SimNode] = {}
        self._nursery: trio.Nursery | None = None

    def rng(self, *path: object):
        return seeded_rng(self.seed, *path)

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator["Simulation"]:
        with deterministic_scheduling(self.seed):
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.net.run)
                try:
                    yield self
                finally:
                    nursery.cancel_scope.cancel()
                    self._nursery = None

    # ---------------------------------------------------------------------------- nodes

    def add_node(self, node_id: str, build: Build) -> Node:
        """A server node whose roles ``build(node, storage_for)`` adds; rebuilt on restart."""
        assert node_id not in self.nodes, f"Simulation: node {node_id} exists"
        sn = SimNode(node_id, build)
        self.nodes[node_id] = sn
        self._start(sn)
        return sn.node  # type: ignore[return-value]

    def client(self, node_id: str) -> Node:
        """A node with no roles, for client workflows (never crashed by the nemesis)."""
        assert node_id not in self.nodes, f"Simulation: node {node_id} exists"
        sn = SimNode(node_id, None)
        self.nodes[node_id] = sn
        self._start(sn)
        return sn.node  # type: ignore[return-value]

    def node(self, node_id: str) -> Node:
        node = self.nodes[node_id].node
        assert node is not None
        return node

    def is_up(self, node_id: str) -> bool:
        return self.nodes[node_id].up

    def _start(self, sn: SimNode) -> None:
        assert self._nursery is not None, "Simulation: use inside `async with sim.run()`"
        sn.incarnation += 1
        transport = self.net.attach(sn.node_id)
        node = Node(sn.node_id, transport, seed=f"{self.seed}/{sn.incarnation}", trace=self.trace)

        def storage_for(name: str) -> MemoryStorage:
            return sn.storages.setdefault(name, MemoryStorage())

        if sn.build is not None:
            sn.build(node, storage_for)
        sn.node = node
        sn.scope = trio.CancelScope()
        sn.up = True
        self._nursery.start_soon(self._run_node, node, sn.scope)

    @staticmethod
    async def _run_node(node: Node, scope: trio.CancelScope) -> None:
        with scope:
            await node.run()

    def crash(self, node_id: str) -> None:
        """Kill the node: its tasks stop, its messages in flight are lost, unsynced writes too."""
        sn = self.nodes[node_id]
        if not sn.up:
            return
        sn.up = False
        assert sn.scope is not None
        sn.scope.cancel()
        self.net.take_down(node_id)
        for storage in sn.storages.values():
            storage.crash()
        self.trace.emit(NEMESIS, "nemesis", "crash", target=node_id, incarnation=sn.incarnation)

    def restart(self, node_id: str) -> None:
        sn = self.nodes[node_id]
        if sn.up:
            return
        self._start(sn)
        self.trace.emit(NEMESIS, "nemesis", "restart", target=node_id, incarnation=sn.incarnation)

    # ----------------------------------------------------------------------- partitions

    def partition(self, *groups: list[str] | set[str]) -> None:
        self.net.partition(*groups)
        self.trace.emit(NEMESIS, "nemesis", "partition", groups=[sorted(g) for g in groups])

    def cut(self, src: str, dst: str) -> None:
        self.net.cut(src, dst)
        self.trace.emit(NEMESIS, "nemesis", "cut_link", src=src, dst=dst)

    def heal(self) -> None:
        self.net.heal()
        self.trace.emit(NEMESIS, "nemesis", "heal")

    # ----------------------------------------------------------------------- operations

    def op_kept(self, stream: str, index: int) -> bool:
        """Whether operation ``index`` of the client loop ``stream`` runs (see
        :mod:`delos_ref.sim.schedule`). Without a schedule every operation runs; the
        recorder notes each one asked about, so the minimizer knows what it can leave out."""
        assert _STREAM.match(stream), f"op stream {stream!r}: letters, digits, _ and @ only"
        self.recorder.ops.setdefault(stream, set()).add(index)
        return self.schedule is None or self.schedule.op_kept(stream, index)

    def digest(self) -> str:
        assert isinstance(self.trace, MemorySink), "digest needs a MemorySink trace"
        return self.trace.digest()


# ------------------------------------------------------------------------------ faults

#: Every fault kind the simulator can produce.
ALL_FAULTS = ("loss", "duplicate", "reorder", "partition", "crash", "bitrot")


def link_for(faults: frozenset[str] | set[str], *, loss: float = 0.05, duplicate: float = 0.03, spike: float = 0.05) -> LinkModel:
    """The link model for a set of enabled faults."""
    return LinkModel(
        loss=loss if "loss" in faults else 0.0,
        duplicate=duplicate if "duplicate" in faults else 0.0,
        spike=spike if "reorder" in faults else 0.0,
    )


class Nemesis:
    """Injects node and network faults at random times, within a bound.

    ``crashable`` nodes are crashed (and restarted later) with at most ``max_down`` down at
    once, so a workload that claims to tolerate a minority of failures is tested exactly at
    that bound; partitions isolate a random minority or cut one random link one way, and heal.

    Every fault it causes is recorded as an :class:`~delos_ref.sim.schedule.Action` in the
    simulation's recorder. When the simulation has a schedule, the nemesis draws nothing: it
    plays the schedule's actions at their times instead (still within ``max_down``).
    """

    def __init__(
        self,
        sim: Simulation,
        *,
        faults: frozenset[str] | set[str],
        crashable: list[str],
        partitionable: list[str] | None = None,
        max_down: int,
        interval_s: tuple[float, float] = (0.05, 0.5),
    ) -> None:
        self.sim = sim
        self.faults = frozenset(faults)
        self.crashable = sorted(crashable)
        self.partitionable = sorted(partitionable if partitionable is not None else crashable)
        self.max_down = max_down
        self.interval_s = interval_s
        self.rng = sim.rng("nemesis")
        self.stats = {"crashes": 0, "restarts": 0, "partitions": 0, "cuts": 0, "heals": 0}

    async def run(self) -> None:
        if self.sim.schedule is not None:
            await self._play(self.sim.schedule.nemesis)
            return
        actions = []
        if "crash" in self.faults and self.crashable and self.max_down > 0:
            actions += ["crash", "restart"]
        if "partition" in self.faults and len(self.partitionable) > 1:
            actions += ["partition", "cut", "heal"]
        if not actions:
            return
        while True:
            await trio.sleep(self.rng.uniform(*self.interval_s))
            getattr(self, "_" + self.rng.choice(actions))()

    # ------------------------------------------------------------ random faults (a seed)

    def _crash(self) -> None:
        up = [n for n in self.crashable if self.sim.is_up(n)]
        if up and len(self.crashable) - len(up) < self.max_down:
            self.do_crash(self.rng.choice(up))

    def _restart(self) -> None:
        down = [n for n in self.crashable if not self.sim.is_up(n)]
        if down:
            self.do_restart(self.rng.choice(down))

    def _partition(self) -> None:
        nodes = list(self.partitionable)
        self.rng.shuffle(nodes)
        k = self.rng.randint(1, max(1, (len(nodes) - 1) // 2))
        self.do_partition([nodes[:k], nodes[k:]])

    def _cut(self) -> None:
        a, b = self.rng.sample(self.partitionable, 2)
        self.do_cut(a, b)

    def _heal(self) -> None:
        self.do_heal()

    # ------------------------------------------------------- the faults, recorded as done

    def do_crash(self, node: str) -> None:
        """Crash ``node`` if it is up and fewer than ``max_down`` crashable nodes are down."""
        down = sum(not self.sim.is_up(n) for n in self.crashable)
        if self.sim.is_up(node) and down < self.max_down:
            self.sim.crash(node)
            self.stats["crashes"] += 1
            self._record("crash", node)

    def do_restart(self, node: str) -> None:
        if not self.sim.is_up(node):
            self.sim.restart(node)
            self.stats["restarts"] += 1
            self._record("restart", node)

    def do_partition(self, groups: list[list[str]]) -> None:
        self.sim.partition(*[set(g) for g in groups])
        self.stats["partitions"] += 1
        self._record("partition", *[tuple(sorted(g)) for g in groups])

    def do_cut(self, src: str, dst: str) -> None:
        self.sim.cut(src, dst)
        self.stats["cuts"] += 1
        self._record("cut", src, dst)

    def do_heal(self) -> None:
        self.sim.heal()
        self.stats["heals"] += 1
        self._record("heal")

    def _record(self, verb: str, *args: object) -> None:
        self.sim.recorder.nemesis.append(Action(trio.current_time(), verb, tuple(args)))

    # ---------------------------------------------------------- scheduled faults (replay)

    async def _play(self, actions: tuple[Action, ...]) -> None:
        """Play a schedule's actions at their virtual times (checked against this cast first)."""
        for a in actions:
            self._check(a)
        for a in actions:
            await trio.sleep_until(a.at)
            if a.verb == "partition":
                self.do_partition([list(g) for g in a.args])
            else:
                getattr(self, "do_" + a.verb)(*a.args)

    def _check(self, a: Action) -> None:
        allowed = self.crashable if a.verb in ("crash", "restart") else self.partitionable
        named = [n for g in a.args for n in (g if isinstance(g, tuple) else (g,))]
        unknown = sorted(set(named) - set(allowed))
        if unknown:
            raise BadSchedule(f"schedule: {a.verb} names {', '.join(unknown)}, not among the nodes it may hit here ({', '.join(allowed)})")
        if a.verb == "partition" and sorted(named) != sorted(set(named)):
            raise BadSchedule("schedule: a partition names a node twice")
        if a.verb == "cut" and a.args[0] == a.args[1]:
            raise BadSchedule("schedule: a cut needs two different nodes")

    def heal_all(self) -> None:
        """End of the faulty phase: heal the network and restart every crashed node."""
        self.sim.heal()
        for n in self.crashable:
            self.sim.restart(n)
