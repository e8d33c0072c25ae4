"""Three scripted runs of the simulator for the walkthroughs: roll-forward, the hot swap and a
cold migration.

The ``delos-ref sim`` workloads race many clients at random; these scenarios stage one
event each, on the same simulated cluster (three servers ``s1..s3``, each a Paxos acceptor, a
LogServer and a sequencer role, over the simulated network, seeded), and write the run's trace
as NDJSON, which ``excerpt.py`` reads::

    python docs/walkthroughs/scenarios.py roll-forward --seed 1 --out roll-forward.ndjson
    python docs/walkthroughs/scenarios.py hot-swap --seed 1 --out hot-swap.ndjson
    python docs/walkthroughs/scenarios.py cold-migration --seed 1 --out cold-migration.ndjson

* ``roll-forward``: ``a1`` appends three entries on the NativeLoglet ``L0``; the reconfigurer
  ``x1`` seals ``L0`` and dies before installing a successor (step 1 of 4 done); ``a1``'s
  next append meets the seal, waits ``roll_forward_s`` for a new chain, and rolls forward
  itself onto a clone of ``L0`` (``VirtualLog._await_successor``).
* ``hot-swap``: the log starts on the bootstrap loglet ``B0`` (entries stored as versions of a
  Paxos register on the acceptors); ``a1`` appends without pause while ``op`` runs
  ``reconfig_extend`` onto the NativeLoglet ``N1``.
* ``cold-migration``: ``a1`` appends five entries on ``L0``; ``op`` moves the log onto ``L1``
  (so ``[0,5)`` is a sealed segment) and ``a1`` appends two more; the reader ``r1`` reads
  position 0 (and so caches the chain); the migrator ``m1`` copies ``[0,5)`` into the cold
  store, reads the copy back, installs it with ``reconfig_modify`` and trims ``L0``
  (``delos_ref/migrate.py``); ``r1`` reads position 0 again with its old chain.

All three print what the client saw and check it: every acknowledged entry is read back at its
position (exit 1 otherwise). The same seed gives the same trace.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import trio
import trio.testing

from delos_ref.loglet.bootstrap import BootstrapLogletConfig
from delos_ref.loglet.cold import ColdStores, MemoryColdStore
from delos_ref.migrate import migrate_below
from delos_ref.loglet.native import NativeLogletConfig, add_logserver, add_sequencer
from delos_ref.loglet.native.roles import LOGSERVER_ROLE, SEQUENCER_ROLE
from delos_ref.runtime import Node
from delos_ref.sim import Simulation
from delos_ref.sim.workload_loglet import SIM_OPTIONS
from delos_ref.virtuallog import VirtualLog, VirtualLogOptions, default_registry
from paxos.acceptor import Acceptor
from paxos.register import ClientTimeouts, MetaStoreClient

SERVERS = ("s1", "s2", "s3")
OPTIONS = VirtualLogOptions(roll_forward_s=0.5, poll_s=0.02)


def build_server(node: Node, storage_for: Any) -> None:
    paxos = storage_for("paxos")
    node.add_role("acceptor", Acceptor.recover(paxos), paxos)
    add_logserver(node, storage_for(LOGSERVER_ROLE))
    add_sequencer(node, storage_for(SEQUENCER_ROLE))


#: The cold store of the cold-migration scenario (object storage, in memory), shared by all.
COLD = MemoryColdStore("cold")


def client(sim: Simulation, name: str) -> VirtualLog:
    node = sim.client(name)
    timeouts = ClientTimeouts(deadline_s=2.0, call_timeout_s=0.2)
    metastore = MetaStoreClient(node.endpoint, SERVERS, node.rng("metastore"), name, timeouts=timeouts, trace=node.trace)
    registry = default_registry(node=node, native_options=SIM_OPTIONS, cold=ColdStores(lambda location: COLD))
    return VirtualLog(metastore, registry, name, options=OPTIONS)


async def read_all(vlog: VirtualLog) -> dict[int, bytes]:
    tail, got = await vlog.check_tail(), {}
    while len(got) < tail:
        got.update(await vlog.read_next(len(got), tail))
    return got


async def roll_forward(sim: Simulation) -> dict[int, bytes]:
    a1, x1 = client(sim, "a1"), client(sim, "x1")
    await a1.bootstrap(NativeLogletConfig("L0", "s1", SERVERS))
    acked = {await a1.append(b"e%d" % i): b"e%d" % i for i in range(3)}
    chain = await x1.refresh()
    await x1.registry.loglet(chain.active).seal()  # step 1 of reconfig_extend; then x1 dies
    print(f"x1 sealed L0 at t={trio.current_time():.4f} and stopped")
    start = trio.current_time()
    pos = await a1.append(b"after-the-seal")
    acked[pos] = b"after-the-seal"
    print(f"a1's append after the seal: position {pos}, {trio.current_time() - start:.3f} s later, roll-forwards={a1.stats['roll_forwards']}")
    return acked


async def hot_swap(sim: Simulation) -> dict[int, bytes]:
    op, a1 = client(sim, "op"), client(sim, "a1")
    await op.bootstrap(BootstrapLogletConfig("B0", SERVERS))
    acked: dict[int, bytes] = {}
    done = trio.Event()

    async def appender() -> None:
        i = 0
        while not done.is_set():
            entry = b"e%d" % i
            acked[await a1.append(entry)] = entry  # any failure ends the run with a traceback
            i += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(appender)
        await trio.sleep(0.2)
        won = await op.reconfig_extend(NativeLogletConfig("N1", "s1", SERVERS))
        print(f"op: reconfig_extend onto N1 at t={trio.current_time():.4f}: won={won}")
        await trio.sleep(0.1)
        done.set()
    return acked


async def cold_migration(sim: Simulation) -> dict[int, bytes]:
    COLD.blobs.clear()  # a fresh store for each run
    op, a1, r1 = client(sim, "op"), client(sim, "a1"), client(sim, "r1")
    await op.bootstrap(NativeLogletConfig("L0", "s1", SERVERS))
    acked = {await a1.append(b"e%d" % i): b"e%d" % i for i in range(5)}
    await op.reconfig_extend(NativeLogletConfig("L1", "s2", SERVERS))  # [0,5) is sealed now
    acked.update({await a1.append(b"e%d" % i): b"e%d" % i for i in range(5, 7)})
    print(f"r1 reads position 0 from {dict(await r1.read_next(0, 1))[0]!r}: chain version {r1.version}")
    m1 = client(sim, "m1")
    trace = sim.node("m1").trace
    emit = lambda event, **f: trace.emit("m1", "migrate", event, **f)  # noqa: E731
    moved = await migrate_below(m1, COLD, await m1.check_tail(), lambda seg: f"m1.{seg.start}", emit=emit)
    print("m1 moved " + ", ".join(f"[{m.start},{m.stop}) to {m.config.loglet_id}" for m in moved) + f" (chain version {m1.version})")
    again = dict(await r1.read_next(0, 1))[0]
    print(f"r1 reads position 0 again: {again!r}, chain version {r1.version}")
    return acked


SCENARIOS = {"roll-forward": roll_forward, "hot-swap": hot_swap, "cold-migration": cold_migration}


async def run(name: str, seed: int, out: TextIO) -> int:
    async with Simulation(seed).run() as sim:
        for server in SERVERS:
            sim.add_node(server, build_server)
        acked = await SCENARIOS[name](sim)
        reader = client(sim, "reader")
        got = await read_all(reader)
        chain = await reader.refresh()
        for seg in chain.segments:
            stop = ".." if seg.stop is None else seg.stop
            print(f"segment [{seg.start},{stop}) {seg.kind} {reader.registry.config(seg).loglet_id}")
        sim.trace.dump(out)
    wrong = {p: e for p, e in acked.items() if got.get(p) != e}
    print(f"{len(acked)} appends acknowledged, {len(got)} entries read back, {len(wrong)} misplaced")
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="where to write the NDJSON trace")
    args = p.parse_args(argv)
    try:
        out = open(args.out, "w")
    except OSError as e:
        print(f"error: {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    with out:
        return trio.run(run, args.scenario, args.seed, out, clock=trio.testing.MockClock(autojump_threshold=0))


if __name__ == "__main__":
    sys.exit(main())
