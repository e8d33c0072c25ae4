"""How fast durable NativeLoglet appends are on a real local cluster, next to synced LMDB puts.

(``--loglet bootstrap`` measures the bootstrap loglet instead: append with 1 and 16
outstanding and ``append_many`` of 16, each entry a Paxos write; same baselines.)

What is measured
    The benchmark starts its own 3-node cluster (``delos-ref up --detach`` in a temporary
    directory, the requested transport, free ports): three node processes, each hosting an
    LMDB LogServer; the default loglet of the cluster (``loglet/native/cluster.py``:
    sequencer on n1, LogServers on n1, n2, n3). From this process one client node appends
    100-byte entries; an append is acknowledged once a majority of LogServers synced it (and
    every earlier position). Each case runs ``seconds`` after a short unmeasured warm-up:

    * ``append`` with k outstanding (k = 1, 16, 256, 1024): k tasks, each ``append(entry)`` in a
      loop, on a client with ``NativeOptions(coalesce_requests=2)``: at most 2 requests in
      flight, the appends made meanwhile leave together as one request (client-side group
      commit; with 1 outstanding every append is its own request). Latency is per append.
    * ``append_uncoalesced`` with k outstanding (k = 16, 256): the same without coalescing,
      so k single-entry requests are in flight.
    * ``append_many`` with k outstanding (k = 16, 256): one task, ``append_many`` of k entries
      in a loop (one request per batch; the client-side batching a VirtualLog would do).
      Latency is per batch; ``ops_per_s`` counts entries.

    Baseline, measured in the same run on the same machine:

    * ``ping_rpc``: an RPC ping from the same client to n1 over the same transport (one round
      trip, no storage); an append with 1 outstanding is two round trips (client ->
      sequencer, sequencer -> LogServers) plus a LogServer's fsync, the floor of its latency.

    The storage limit:

    * ``lmdb_put_synced`` with batch b (b = 1, 16, 256): b 100-byte puts in one ``LmdbStorage``
      transaction, synced, in this process; latency per batch, ``ops_per_s`` counts entries.
      A LogServer does the same (one synced transaction per batch it receives).

How to read the numbers
    Client and the three nodes are four processes sharing this machine's cores over loopback;
    each LogServer syncs its own LMDB (the three share one disk). ``outstanding`` is entries
    in flight. Latencies are ``time.perf_counter`` differences around each awaited call.

``--loglet striped --stripes N [--sharded]``: the StripedLoglet (docs/design.md §6), each row
next to the single NativeLoglet measured in the same run on the same cluster. Every case is
``append`` with k outstanding (k tasks; the NativeLoglets inside coalesce as above, the n
stripes sharing the same budget of requests in flight: ``coalesce_requests = max(1, 2 // n)``
each, so batches stay as large as the single NativeLoglet's), with the
CPU microseconds per append of every process (``cpu_us_per_op``: the client, n1, n2, ...;
read from ``/proc``) and the cores they kept busy:

* **rotating** (default): a 3-node cluster; the NativeLoglet ``native`` (sequencer n1,
  LogServers n1..n3), then ``striped1`` .. ``stripedN``: 1..N NativeLoglets over the *same*
  LogServers n1..n3, stripe j sequenced on n(j+1) (wrapping), at 1, 64 and 256
  outstanding. With the rotating sequencer the busiest process should be the one that
  gains: each sequencer orders 1/n of the appends (see ``delos_ref/loglet/striped.py``).
* **sharded**: a 3N-node cluster; ``native`` on n1..n3 as above, then ``sharded1`` ..
  ``shardedN``: n stripes, stripe j on its own LogServers n(3j+1)..n(3j+3), sequenced on
  n(3j+1), at 64 and 256 outstanding. On a machine with fewer cores than busy processes this
  shows the CPU ceiling, not scaling.

How the CPU figures project to C cores: with c_i the CPU microseconds per append of process
i (all in ``cpu_us_per_op``), throughput is bounded by the busiest process, 1e6 / max_i c_i
appends/s (one process uses at most one core: trio runs one thread), and by the cores,
C * 1e6 / sum_i c_i. The run prints the core count (``machine.cpus``); on C cores the
ceiling is min(1e6 / max_i c_i, C * 1e6 / sum_i c_i) -- on 2 cores the second term rules.

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
from delos_ref.bench import BadBenchArgument, Meter, Placement, check_options, cpu_per_op, cpu_seconds, local_cluster, machine, row

TRANSPORTS = ("tcp", "udp")
LOGLETS = ("native", "bootstrap", "striped")
#: ``--loglet bootstrap``: the bootstrap loglet ``B0`` (entries through the nodes' Paxos
#: acceptors, ``delos_ref/loglet/bootstrap.py``) on the same cluster; its cases.
BOOTSTRAP_CONCURRENT = (1, 16)
BOOTSTRAP_BATCHED = (16,)
NODES = 3
WARMUP_S = 0.3
ENTRY = b"\xa5" * 100
CONCURRENT = (1, 16, 256, 1024)  # 1024: a window past a 5 ms network's bandwidth-delay product
BATCHED = (16, 256)
UNCOALESCED = (16, 256)
COALESCE = 2  # NativeOptions.coalesce_requests of the "append" cases
LMDB_BATCHES = (1, 16, 256)
#: ``--loglet striped``: outstanding appends of the rotating and the sharded cases.
STRIPED_OUTSTANDING = (1, 64, 256)
SHARDED_OUTSTANDING = (64, 256)
SHARD_WIDTH = 3  # LogServers per stripe when sharded
MAX_BENCH_STRIPES = 4


async def _loop(case: str, op: Callable[[], Awaitable[int]], tasks: int, outstanding: int, seconds: float, meter: Meter,
                cpu: Callable[[], dict[str, float]] | None = None, profile: Any = None) -> dict[str, Any]:
    """``tasks`` tasks run ``op`` (returning how many entries it did) back to back: a warm-up,
    then ``seconds`` measured; operations still in flight at the end are not counted. With
    ``cpu`` (cumulative CPU seconds per process, see ``cpu_seconds``), the row also has
    ``cpu_us_per_op``: what each process spent per counted operation in the measured part.
    With ``profile`` (a :class:`~delos_ref.profiling.ClusterProfiler`), every process is
    profiled during the measured part, as case ``<case>-<outstanding>``."""
    latencies: list[float] = []
    counted = [0]
    phase = {"measure": False, "stop": False}

    async def worker() -> None:
        while not phase["stop"]:
            t0 = time.perf_counter()
            n = await op()
            if phase["measure"] and not phase["stop"]:
                latencies.append(time.perf_counter() - t0)
                counted[0] += n

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)
        await trio.sleep(WARMUP_S)
        meter.add(WARMUP_S)
        phase["measure"] = True
        if profile is not None:
            profile.start(f"{case}-{outstanding}")
        cpu_before = cpu() if cpu else {}
        start = time.perf_counter()
        await trio.sleep(seconds)
        phase["stop"] = True
        elapsed = time.perf_counter() - start
        cpu_after = cpu() if cpu else {}
        if profile is not None:
            await profile.stop()
    meter.add(seconds)
    result = row(case, outstanding, latencies, counted[0], elapsed)
    if cpu:
        result["cpu_us_per_op"] = cpu_per_op(cpu_before, cpu_after, counted[0], elapsed)
    return result


async def _all_answer(client: Any, cfg: cluster.ClusterConfig) -> None:
    from delos_ref.process import ping

    for n in cfg.nodes:
        if await ping(client, n.id, timeout_s=2.0) is None:
            raise RuntimeError(f"bench append: {n.id} does not answer a ping")


async def _append_cases(case: str, loglet: Any, concurrent: tuple[int, ...], batched: tuple[int, ...], seconds: float, meter: Meter) -> list[dict]:
    """``case`` with k concurrent ``append`` calls (k in ``concurrent``), then ``append_many``
    of k entries from one task (k in ``batched``); latency per call, ops_per_s in entries."""

    async def one() -> int:
        await loglet.append(ENTRY)
        return 1

    rows = [await _loop(case, one, k, k, seconds, meter) for k in concurrent]
    for k in batched:
        batch = (ENTRY,) * k

        async def many(batch: tuple[bytes, ...] = batch) -> int:
            await loglet.append_many(batch)
            return len(batch)

        rows.append(await _loop("append_many", many, 1, k, seconds, meter))
    return rows


async def _ping_baseline(client: Any, seconds: float, meter: Meter) -> dict:
    """``ping_rpc``: one RPC round trip from the client to n1, no storage."""
    from delos_ref.ping import Ping
    from delos_ref.rpc import RESEND

    async def ping_n1() -> int:
        await client.endpoint.call("n1", Ping(False), timeout_s=1.0, retry=RESEND)
        return 1

    return await _loop("ping_rpc", ping_n1, 1, 1, seconds, meter)


async def _measure_cluster(cfg: cluster.ClusterConfig, seconds: float, meter: Meter) -> tuple[list[dict], list[dict], dict[str, Any]]:
    from delos_ref.loglet.native import NativeLoglet, NativeOptions, default_config
    from delos_ref.process import open_client, ping

    async with open_client(cfg, "bench") as client:
        await _all_answer(client, cfg)
        loglet = NativeLoglet(client, default_config(cfg), options=NativeOptions(append_timeout_s=30.0, coalesce_requests=COALESCE))
        plain = NativeLoglet(client, default_config(cfg), options=NativeOptions(append_timeout_s=30.0))
        results = await _append_cases("append", loglet, CONCURRENT, (), seconds, meter)
        results += await _append_cases("append_uncoalesced", plain, UNCOALESCED, (), seconds, meter)
        results += await _append_cases("append", loglet, (), BATCHED, seconds, meter)
        baseline = [await _ping_baseline(client, seconds, meter)]
        stats = {"client": loglet.statistics(), "client_uncoalesced": plain.statistics()}
        for n in cfg.nodes:
            pong = await ping(client, n.id, timeout_s=2.0, want_stats=True)
            if pong is not None:
                roles = pong.info.get("roles", {})
                stats[n.id] = {r: roles[r] for r in ("logserver", "sequencer") if r in roles}
        return results, baseline, stats


async def _measure_bootstrap(cfg: cluster.ClusterConfig, seconds: float, meter: Meter) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """The same cases on the bootstrap loglet: every append is a Paxos write (phase 1 and
    phase 2 to a majority); concurrent appenders duel for each version; ``append_many``
    appends one entry after another."""
    from delos_ref.loglet.bootstrap import BootstrapLoglet, BootstrapOptions
    from delos_ref.process import initial_loglet, open_client

    async with open_client(cfg, "bench") as client:
        await _all_answer(client, cfg)
        loglet = BootstrapLoglet(client, initial_loglet(cfg, "bootstrap"), options=BootstrapOptions(op_timeout_s=30.0))
        results = await _append_cases("append", loglet, BOOTSTRAP_CONCURRENT, BOOTSTRAP_BATCHED, seconds, meter)
        baseline = [await _ping_baseline(client, seconds, meter)]
        return results, baseline, {"client": loglet.statistics()}


async def _measure_striped(cfg: cluster.ClusterConfig, seconds: float, meter: Meter, stripes: int, sharded: bool) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """``native`` and ``striped1..N`` (or ``sharded1..N``): see the module docstring."""
    from delos_ref.loglet.native import NativeLoglet, NativeLogletConfig, NativeOptions
    from delos_ref.loglet.striped import StripedLoglet, StripedOptions
    from delos_ref.loglet.striped_cluster import striped_natives
    from delos_ref.process import open_client

    ids = [n.id for n in cfg.nodes]
    pids = {n.id: n.pid for n in cfg.nodes}
    outstanding = SHARDED_OUTSTANDING if sharded else STRIPED_OUTSTANDING
    options = NativeOptions(append_timeout_s=30.0, coalesce_requests=COALESCE)

    def cpu() -> dict[str, float]:
        return cpu_seconds(pids)

    async def rows(case: str, loglet: Any, n: int) -> list[dict]:
        async def one() -> int:
            await loglet.append(ENTRY)
            return 1

        out = [await _loop(case, one, k, k, seconds, meter, cpu=cpu) for k in outstanding]
        return [dict(r, stripes=n, sharded=sharded) for r in out]

    async with open_client(cfg, "bench") as client:
        await _all_answer(client, cfg)
        native = NativeLoglet(client, NativeLogletConfig("bench-native", ids[0], tuple(ids[:SHARD_WIDTH])), options=options)
        results = await rows("native", native, 1)
        stats: dict[str, Any] = {"native": native.statistics()}
        for n in range(1, stripes + 1):
            name = f"{'sharded' if sharded else 'striped'}{n}"
            servers = ids[: SHARD_WIDTH * n] if sharded else ids[:SHARD_WIDTH]
            sequencers = [servers[SHARD_WIDTH * j] for j in range(n)] if sharded else [ids[j % len(ids)] for j in range(n)]
            inner = striped_natives(f"bench-{name}", n, sequencer_nodes=ids, logserver_nodes=servers, sharded=sharded, sequencers=sequencers)
            # The stripes share the native case's budget of requests in flight (COALESCE), so
            # batches are as large as its own: the comparison is of the layouts, not of depth.
            budget = NativeOptions(append_timeout_s=30.0, coalesce_requests=max(1, COALESCE // n))
            striped = StripedLoglet(f"bench-{name}", [NativeLoglet(client, c, options=budget) for c in inner], options=StripedOptions(append_timeout_s=30.0))
            results += await rows(name, striped, n)
            stats[name] = dict(striped.statistics(), inner=[s.statistics() for s in striped.stripes])
        return results, [], stats


def _busiest(results: list[dict]) -> list[dict[str, Any]]:
    """Per row: the busiest process and its CPU us per append, and the ratio to ``native``'s
    busiest process at the same outstanding (the rotating sequencer's target: <= 0.6 at 2)."""
    base = {}
    out = []
    for r in results:
        cpu = {k: v for k, v in r.get("cpu_us_per_op", {}).items() if k not in ("total", "cores_busy")}
        if not cpu:
            continue
        who = max(cpu, key=cpu.get)
        if r["case"] == "native":
            base[r["outstanding"]] = cpu[who]
        ratio = round(cpu[who] / base[r["outstanding"]], 2) if base.get(r["outstanding"]) else None
        out.append({"case": r["case"], "outstanding": r["outstanding"], "busiest": who, "cpu_us_per_op": cpu[who], "vs_native": ratio, "ops_per_s": r["ops_per_s"]})
    return out


async def _measure_lmdb(seconds: float, meter: Meter) -> list[dict[str, Any]]:
    from delos_ref.effects import Write
    from delos_ref.storage import LmdbStorage

    rows = []
    with tempfile.TemporaryDirectory(prefix="delos-bench-lmdb-") as tmp:
        storage = LmdbStorage(Path(tmp) / "db", ["bench"])
        try:
            counter = iter(range(1 << 62))
            for b in LMDB_BATCHES:

                async def put(b: int = b) -> int:
                    storage.write([Write("bench", next(counter).to_bytes(8, "big"), ENTRY) for _ in range(b)], sync=True)
                    await trio.lowlevel.checkpoint()
                    return b

                rows.append(await _loop("lmdb_put_synced", put, 1, b, seconds, meter))
        finally:
            storage.close()
    return rows


async def run(
    *, transport: str, loglet: str = "native", seconds: float, progress: Callable[[float], None] | None = None,
    placement: Placement = Placement(), trace: bool = False, stripes: int = 2, sharded: bool = False, **_: object,
) -> dict[str, Any]:
    """``delos-ref bench append``: see the module docstring."""
    if loglet not in LOGLETS:
        raise BadBenchArgument(f"bench append measures the NativeLoglet on a real cluster: --loglet must be one of {', '.join(LOGLETS)} (got {loglet!r})")
    check_options("append", transport, seconds, TRANSPORTS)
    if loglet == "striped":
        return await _run_striped(transport, seconds, progress, stripes, sharded, placement)
    if sharded:
        raise BadBenchArgument("--sharded goes with --loglet striped")
    if loglet == "bootstrap":
        cases = len(BOOTSTRAP_CONCURRENT) + len(BOOTSTRAP_BATCHED) + 1 + len(LMDB_BATCHES)
    else:
        cases = len(CONCURRENT) + len(UNCOALESCED) + len(BATCHED) + 1 + len(LMDB_BATCHES)
    meter = Meter(progress, cases=cases, seconds=seconds, warmup_s=WARMUP_S)
    with local_cluster("append", transport, NODES, ("--trace",) if trace else (), placement=placement) as cfg:  # --trace: nodes log every step
        measure = _measure_bootstrap if loglet == "bootstrap" else _measure_cluster
        results, baseline, stats = await measure(cfg, seconds, meter)
        baseline += await _measure_lmdb(seconds, meter)
    return {
        "bench": "append",
        "machine": machine(),
        "transport": transport,
        "trace": trace,
        "loglet": loglet,
        "nodes": NODES,
        "entry_bytes": len(ENTRY),
        "results": results,
        "baseline": baseline,
        "note": (
            "append = durable NativeLoglet append of a 100-byte entry (sequencer n1, 3 LMDB LogServers in separate "
            "processes, acknowledged once a majority synced it); outstanding = entries in flight: k concurrent "
            "append calls, or one append_many of k entries (latency per batch). Baseline in the same run: "
            "ping_rpc = one RPC round trip client -> n1, no storage; lmdb_put_synced = one LmdbStorage transaction of b 100-byte puts + sync, in-process (the storage limit)."
            + (
                " With --loglet bootstrap the appends go to the bootstrap loglet B0 instead: each is a Paxos write"
                " (phase 1 + phase 2 to a majority of the nodes' acceptors, each synced); concurrent appenders duel."
                if loglet == "bootstrap"
                else ""
            )
        ),
        "stats": stats,
    }


async def _run_striped(transport: str, seconds: float, progress: Callable[[float], None] | None, stripes: int, sharded: bool, placement: Placement) -> dict[str, Any]:
    """``--loglet striped``: the rotating or the sharded cases (module docstring)."""
    if not 1 <= stripes <= MAX_BENCH_STRIPES:
        raise BadBenchArgument(f"--stripes must be 1..{MAX_BENCH_STRIPES} for bench append (got {stripes})")
    outstanding = SHARDED_OUTSTANDING if sharded else STRIPED_OUTSTANDING
    meter = Meter(progress, cases=(stripes + 1) * len(outstanding), seconds=seconds, warmup_s=WARMUP_S)
    nodes = SHARD_WIDTH * stripes if sharded else NODES
    with local_cluster("append", transport, nodes, placement=placement) as cfg:
        results, baseline, stats = await _measure_striped(cfg, seconds, meter, stripes, sharded)
    layout = (
        f"sharded: stripe j on its own 3 LogServers n(3j+1)..n(3j+3), sequenced on n(3j+1); {nodes} node processes"
        if sharded
        else "rotating sequencer: every stripe on LogServers n1..n3, stripe j sequenced on n(j+1)"
    )
    return {
        "bench": "append",
        "machine": machine(),
        "transport": transport,
        "loglet": "striped",
        "stripes": stripes,
        "sharded": sharded,
        "nodes": nodes,
        "entry_bytes": len(ENTRY),
        "results": results,
        "baseline": baseline,
        "busiest": _busiest(results),
        "note": (
            f"append = durable append of a 100-byte entry with k outstanding; native = one NativeLoglet (sequencer n1, "
            f"LogServers n1..n3), measured in the same run; striped/sharded n = a StripedLoglet of n NativeLoglets ({layout}). "
            "cpu_us_per_op = CPU microseconds per append of each process; on C cores throughput <= "
            f"min(1e6 / max_i c_i, C * 1e6 / sum_i c_i); this machine has {machine().get('cpus', '?')} cores."
        ),
        "stats": stats,
    }
