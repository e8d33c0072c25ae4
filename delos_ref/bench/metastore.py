"""How fast the MetaStore is on a real local cluster, next to a ping and a synced LMDB put.

What is measured
    The benchmark starts its own 3-node cluster (``delos-ref up --detach`` in a temporary
    directory, the requested transport, free ports): three node processes, each with a durable
    LMDB acceptor. From this process one client (its own ``cli-<hex>`` node and proposer id,
    on a register of its own, ``bench/metastore``: the chain register belongs to the VirtualLog)
    runs, each for ``seconds`` after a short unmeasured warm-up, with one operation outstanding:

    * ``write_if``: a sequential writer, ``write_if(v, 100 bytes) -> Written(v + 1)`` then the
      next from ``v + 1``. Canonical single-slot Paxos: phase 1 (Prepare/Promise) and phase 2
      (Accept/Accepted) to all three acceptors, each waiting for a majority; every acceptor
      syncs its LMDB before it answers each phase. So one write is two quorum round trips and
      two fsyncs on the critical path (the acceptors' fsyncs run in parallel).
    * ``read``: ``read()``; on a quiet register a majority reports the same ballot at the top
      instance, so a read is one quorum round trip and writes nothing.

    Baseline, measured in the same run on the same machine:

    * ``ping_rpc``: an RPC ping from the same client to node ``n1`` over the same transport
      and codec (one node round trip, no storage): the floor for one protocol round trip;
    * ``lmdb_put_synced``: one 100-byte put in an in-process ``LmdbStorage`` synced before it
      returns (the write path of an acceptor's Promise or Accepted, without the network).

    Roughly, ``write_if`` ~ 2 x (quorum round trip + fsync), ``read`` ~ 1 x quorum round trip.

How to read the numbers
    Client and the three nodes are four processes sharing this machine's cores, over loopback:
    the numbers include their scheduling but no real network. Latencies are
    ``time.perf_counter`` differences around each awaited operation.

The cluster is always stopped (``delos-ref down``) and its directory removed, whatever
happens -- errors and Ctrl-C included.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import trio

from delos_ref import cluster
from delos_ref.bench import Meter, Placement, check_options, local_cluster, machine, row

TRANSPORTS = ("tcp", "udp")
NODES = 3
WARMUP_S = 0.2
VALUE = b"\xa5" * 100


async def _loop(case: str, op: Callable[[], Awaitable[None]], seconds: float, meter: Meter) -> dict[str, Any]:
    """Run ``op`` back to back (one outstanding): a warm-up, then ``seconds`` measured."""
    end = time.perf_counter() + WARMUP_S
    while time.perf_counter() < end:
        await op()
    meter.add(WARMUP_S)
    latencies: list[float] = []
    start = time.perf_counter()
    end = start + seconds
    while (t0 := time.perf_counter()) < end:
        await op()
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    meter.add(seconds)
    return row(case, 1, latencies, len(latencies), elapsed)


async def _measure_cluster(cfg: cluster.ClusterConfig, seconds: float, meter: Meter) -> tuple[list[dict], list[dict], dict[str, Any]]:
    from delos_ref.ping import Ping
    from delos_ref.process import open_client, ping
    from delos_ref.rpc import RESEND
    from paxos.register import MetaStoreClient, Written

    async with open_client(cfg, "bench") as client:
        # A register of its own on the cluster's acceptors: the chain register is the VirtualLog's.
        store = MetaStoreClient(client.endpoint, [n.id for n in cfg.nodes], client.rng("paxos"), client.node_id, register="bench/metastore")
        version, _ = await store.read()
        state = {"version": version}

        async def write() -> None:
            result = await store.write_if(state["version"], VALUE)
            if type(result) is not Written:  # nobody else writes: this would be a bug
                raise RuntimeError(f"bench metastore: sequential write_if lost: {result!r}")
            state["version"] = result.version

        async def read() -> None:
            await store.read()

        async def ping_n1() -> None:
            await client.endpoint.call("n1", Ping(False), timeout_s=1.0, retry=RESEND)

        if await ping(client, "n1") is None:
            raise RuntimeError("bench metastore: n1 does not answer a ping")
        results = [await _loop("write_if", write, seconds, meter), await _loop("read", read, seconds, meter)]
        baseline = [await _loop("ping_rpc", ping_n1, seconds, meter)]
        return results, baseline, store.statistics()


async def _measure_lmdb(seconds: float, meter: Meter) -> dict[str, Any]:
    from delos_ref.effects import Write
    from delos_ref.storage import LmdbStorage

    with tempfile.TemporaryDirectory(prefix="delos-bench-lmdb-") as tmp:
        storage = LmdbStorage(Path(tmp) / "db", ["bench"])
        try:
            counter = iter(range(1 << 62))

            async def put() -> None:
                storage.write([Write("bench", next(counter).to_bytes(8, "big"), VALUE)], sync=True)
                await trio.lowlevel.checkpoint()

            return await _loop("lmdb_put_synced", put, seconds, meter)
        finally:
            storage.close()


async def run(*, transport: str, seconds: float, progress: Callable[[float], None] | None = None, placement: Placement = Placement(), **_: object) -> dict[str, Any]:
    """``delos-ref bench metastore``: see the module docstring."""
    check_options("metastore", transport, seconds, TRANSPORTS)
    meter = Meter(progress, cases=4, seconds=seconds, warmup_s=WARMUP_S)
    with local_cluster("metastore", transport, NODES, placement=placement) as cfg:
        results, baseline, stats = await _measure_cluster(cfg, seconds, meter)
        baseline.append(await _measure_lmdb(seconds, meter))
    return {
        "bench": "metastore",
        "machine": machine(),
        "transport": transport,
        "nodes": NODES,
        "results": results,
        "baseline": baseline,
        "note": (
            "write_if = canonical single-slot Paxos (Prepare + Accept, each to a majority of 3 LMDB acceptors that "
            "fsync before answering), 1 outstanding, sequential writer of 100-byte values; read = linearizable read "
            "(one quorum round trip when settled). Baseline in the same run: ping_rpc = RPC ping to one node over the "
            "same transport (one round trip, no storage); lmdb_put_synced = one synced 100-byte LmdbStorage put in-process."
        ),
        "client_stats": stats,
    }
