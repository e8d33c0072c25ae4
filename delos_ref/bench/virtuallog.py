"""What virtualization costs: appends through the VirtualLog vs straight to its NativeLoglet,
reconfiguration latency, and the time from a sequencer crash to the next append.

What is measured
    The benchmark starts its own 3-node cluster (``delos-ref up --detach``, temporary
    directory, free ports; every node hosts an acceptor, an LMDB LogServer, a sequencer and a
    supervisor). The cluster's chain starts on the NativeLoglet ``L0`` (sequencer n1). From
    one client node in this process:

    * ``virtuallog_append`` (result) and ``native_append`` (baseline): 100-byte durable
      appends with 1 outstanding, through a :class:`~delos_ref.virtuallog.VirtualLog` client
      and straight to the active segment's NativeLoglet with the same options, in alternating
      rounds so that both see the same machine state. The difference is the virtualization
      overhead (routing by the cached chain, the position mapping, the chain watch).
    * ``reconfigure``: ``reconfig_extend`` onto a fresh NativeLoglet (sequencer alternating
      n1/n2): seal + check_tail + conditional write + fetch, one after another, while nothing
      else runs. Latency per reconfiguration.
    * ``kill_to_append`` (last, once): kill -9 of the active sequencer's node, then appends in
      a loop; the time from the kill to the first successful append (the supervisors'
      detection time, about ``suspect_s`` = 1 s, plus the reconfiguration). One sample: p50 =
      p99 = that time.

The cluster is always stopped and its directory removed, whatever happens.
"""

from __future__ import annotations

import secrets
import signal
import time
from typing import Any, Callable


from delos_ref import cluster
from delos_ref.bench import Placement, check_options, local_cluster, machine, row
from delos_ref.bench.append import ENTRY, NODES, TRANSPORTS, WARMUP_S

ROUNDS = 4  # alternating rounds of the two append cases
RECONFIGS = 30


async def _timed(op: Callable[[], Any], seconds: float) -> tuple[list[float], int, float]:
    """Run ``op`` back to back for ``seconds``: (latencies, count, elapsed)."""
    latencies: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        await op()
        latencies.append(time.perf_counter() - t0)
    return latencies, len(latencies), time.perf_counter() - start


async def _measure(cfg: cluster.ClusterConfig, seconds: float, progress: Callable[[float], None] | None) -> tuple[list, list, dict]:
    from delos_ref.loglet.native import NativeLoglet, NativeLogletConfig, NativeOptions
    from delos_ref.process import open_client, ping, virtuallog_on
    from delos_ref.virtuallog import VirtualLogOptions

    def tick(fraction: float) -> None:
        if progress is not None:
            progress(min(1.0, fraction))

    async with open_client(cfg, "bench") as client:
        for n in cfg.nodes:
            if await ping(client, n.id, timeout_s=2.0) is None:
                raise RuntimeError(f"bench virtuallog: {n.id} does not answer a ping")
        vlog = virtuallog_on(cfg, client, deadline_s=5.0, options=VirtualLogOptions())
        chain = await vlog.refresh()
        direct = NativeLoglet(client, vlog.registry.config(chain.active), options=NativeOptions())

        async def via_vlog() -> None:
            await vlog.append(ENTRY)

        async def straight() -> None:
            await direct.append(ENTRY)

        await _timed(via_vlog, WARMUP_S)
        await _timed(straight, WARMUP_S)
        samples: dict[str, tuple[list[float], int, float]] = {"virtuallog_append": ([], 0, 0.0), "native_append": ([], 0, 0.0)}
        for r in range(ROUNDS):
            for case, op in (("native_append", straight), ("virtuallog_append", via_vlog)):
                lat, count, elapsed = await _timed(op, seconds / ROUNDS)
                old = samples[case]
                samples[case] = (old[0] + lat, old[1] + count, old[2] + elapsed)
            tick(0.6 * (r + 1) / ROUNDS)
        results = [row("virtuallog_append", 1, *samples["virtuallog_append"])]
        baseline = [row("native_append", 1, *samples["native_append"])]

        reconfigs: list[float] = []
        for i in range(RECONFIGS):
            config = NativeLogletConfig(f"bench-{secrets.token_hex(4)}", ("n1", "n2")[i % 2], tuple(n.id for n in cfg.nodes))
            t0 = time.perf_counter()
            await vlog.reconfig_extend(config)
            reconfigs.append(time.perf_counter() - t0)
            await vlog.append(ENTRY)  # activate the new loglet before the next seal
        results.append(row("reconfigure", 1, reconfigs, len(reconfigs), sum(reconfigs)))
        tick(0.8)

        chain = await vlog.refresh()
        victim = vlog.registry.config(chain.active).sequencer
        killed = time.perf_counter()
        if not cluster.signal_node(cfg.node(victim), signal.SIGKILL):
            raise RuntimeError(f"bench virtuallog: could not kill {victim}")
        await vlog.append(ENTRY)
        recovery = time.perf_counter() - killed
        results.append(row("kill_to_append", 1, [recovery], 1, recovery))
        tick(1.0)
        stats = {"virtuallog": vlog.statistics(), "killed": victim, "segments": len((await vlog.refresh()).segments)}
        return results, baseline, stats


async def run(*, transport: str, seconds: float, progress: Callable[[float], None] | None = None, placement: Placement = Placement(), **_: object) -> dict[str, Any]:
    """``delos-ref bench virtuallog``: see the module docstring."""
    check_options("virtuallog", transport, seconds, TRANSPORTS)
    with local_cluster("virtuallog", transport, NODES, placement=placement) as cfg:
        results, baseline, stats = await _measure(cfg, seconds, progress)
    v, n = results[0]["p50_us"], baseline[0]["p50_us"]
    return {
        "bench": "virtuallog",
        "machine": machine(),
        "transport": transport,
        "nodes": NODES,
        "entry_bytes": len(ENTRY),
        "results": results,
        "baseline": baseline,
        "overhead_p50_pct": round(100.0 * (v - n) / n, 1) if v and n else None,
        "note": (
            "virtuallog_append vs native_append: 1 outstanding 100-byte durable append through the VirtualLog vs straight "
            "to the same NativeLoglet, alternating rounds; reconfigure = reconfig_extend (seal + check_tail + install + "
            "fetch); kill_to_append = kill -9 of the sequencer's node to the first successful append (one sample)."
        ),
        "stats": stats,
    }
