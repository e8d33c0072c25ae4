"""How fast the database is on a real local cluster: puts and linearizable gets.

What is measured
    The benchmark starts its own 3-node cluster (``delos-ref up --detach`` in a temporary
    directory, the requested transport, free ports): three node processes, each hosting a
    Paxos acceptor, an LMDB LogServer, a sequencer role and a database replica (its table in
    its own LMDB). The log is the cluster's first NativeLoglet (sequencer on n1). From this
    process, k clients (k = 1, 64), each a :class:`~delos_ref.db.KvClient` with its own client
    id, client i talking to replica ``n(i mod 3 + 1)``, run one operation after another:

    * ``put``: a 100-byte value under one of 10,000 keys. The replica appends the command to
      the VirtualLog (durable on a majority of LogServers; commands that arrive while its
      earlier appends are in flight share one batch entry), plays the log up to it (its LMDB
      table updated with the applied position) and answers. ``stats`` reports, per replica,
      ``writes`` and ``batches_appended`` (their ratio is the mean batch size).
    * ``get_linearizable``: the replica syncs (``check_tail``; concurrent reads share one)
      and plays up to that tail, then reads its table.
    * ``get_stale``: the replica reads its table as it is (no log access): the RPC floor.

    Baseline, measured in the same run on the same machine:

    * ``ping_rpc``: one RPC round trip from the same client to n1 (no storage).
    * ``log_append``: the same client appending 100-byte entries straight to the NativeLoglet
      with k outstanding (coalesced like the replicas' appends): the log's own limit, which a
      put adds a replica hop and an apply to.

How to read the numbers
    Client and the three nodes are four processes sharing this machine's cores over loopback;
    each replica and LogServer syncs its own LMDB. Latency is per operation
    (``time.perf_counter`` around each awaited call); ``outstanding`` is concurrent clients.
    Each put and get row also has ``cpu_us_per_op``: the CPU time (user + system, from
    ``/proc``) each process -- ``client`` is this one, the clients' side -- spent per counted
    operation while it was measured, their ``total``, and ``cores_busy`` (that total per
    second of wall time). On a machine with c cores, ``c / total`` bounds the throughput that
    this much work per operation allows.

Profiles (``--profile DIR``)
    Every process -- the client and each node -- profiles itself (cProfile) while each case
    is measured, into ``DIR/<case>-<outstanding>/<process>.prof`` with a text summary
    ``<process>.txt`` beside it (top 30 functions by cumulative and by own time); see
    ``delos_ref/profiling.py``. Profiling slows call-heavy code down about twofold: a
    profiled run's throughput and CPU figures are not the benchmark's, only the shares inside
    each profile are.

The cluster is always stopped (``delos-ref down``) and its directory removed.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any, Callable


from delos_ref import cluster
from delos_ref.bench import BadBenchArgument, BenchError, Meter, Placement, check_options, cpu_seconds, local_cluster, machine
from delos_ref.bench.append import WARMUP_S, _loop

TRANSPORTS = ("tcp", "udp")
NODES = 3
CLIENTS = (1, 64)
KEYS = 10_000
VALUE = "v" * 100


async def _measure(cfg: cluster.ClusterConfig, seconds: float, meter: Meter, profile: Path | None = None) -> tuple[list[dict], list[dict], dict[str, Any]]:
    from delos_ref.db import ClientOptions, KvClient
    from delos_ref.loglet.native import NativeLoglet, NativeOptions, default_config
    from delos_ref.ping import Ping
    from delos_ref.process import open_client, ping
    from delos_ref.profiling import ClusterProfiler
    from delos_ref.rpc import NO_RETRY, RESEND

    ids = [n.id for n in cfg.nodes]
    pids = {n.id: n.pid for n in cfg.nodes}

    def cpu() -> dict[str, float]:
        return cpu_seconds(pids)

    profiler = ClusterProfiler(profile, pids) if profile is not None else None

    rng = random.Random(7)  # which keys: not a protocol choice, any fixed sequence will do
    options = ClientOptions(call_timeout_s=30.0, retry=RESEND if cfg.transport == "udp" else NO_RETRY)
    async with open_client(cfg, "bench") as client:
        for n in ids:
            if await ping(client, n, timeout_s=2.0) is None:
                raise RuntimeError(f"bench kv: {n} does not answer a ping")
        tables = [KvClient(client.endpoint, ids[i % NODES:] + ids[: i % NODES], f"{client.node_id}-{i}", options=options) for i in range(max(CLIENTS))]
        await tables[0].put("warm", "up")  # the replicas have found the log
        results = []
        for case, op in (("put", _put), ("get_linearizable", _get), ("get_stale", _get_stale)):
            for k in CLIENTS:
                pool = itertools.cycle(tables[:k])  # each call takes the next client, round robin
                results.append(await _loop(case, _worker(op, pool, rng), k, k, seconds, meter, cpu=cpu, profile=profiler))
        loglet = NativeLoglet(client, default_config(cfg), options=NativeOptions(append_timeout_s=30.0, coalesce_requests=2))

        async def ping_n1() -> int:
            await client.endpoint.call(ids[0], Ping(False), timeout_s=1.0, retry=RESEND)
            return 1

        baseline = [await _loop("ping_rpc", ping_n1, 1, 1, seconds, meter, profile=profiler)]
        baseline += await _log_append_rows(loglet, seconds, meter, profiler)
        stats: dict[str, Any] = {}
        for n in ids:
            pong = await ping(client, n, timeout_s=2.0, want_stats=True)
            if pong is not None:
                stats[n] = pong.info.get("roles", {}).get("replica", {})
        return results, baseline, stats


async def _log_append_rows(loglet: Any, seconds: float, meter: Meter, profiler: Any = None) -> list[dict]:
    """The ``log_append`` baseline rows. L0 is appended to directly, under the VirtualLog's
    feet: if the nodes moved the chain off it meanwhile (a node suspected on a loaded
    machine), it is sealed, and the run ends with one line saying so."""
    from delos_ref.loglet.api import LogletError

    async def append() -> int:
        await loglet.append(VALUE.encode())
        return 1

    try:
        return [await _loop("log_append", append, k, k, seconds, meter, profile=profiler) for k in CLIENTS]
    except BaseExceptionGroup as group:
        first = _first(group, LogletError)
        if first is None:
            raise
        raise BenchError(f"bench kv: the log_append baseline failed, the nodes reconfigured away from L0 during the run ({first}); run it again on a less loaded machine") from None


def _first(group: BaseException, kind: type) -> BaseException | None:
    """The first exception of ``kind`` inside ``group`` (nested exception groups included)."""
    if isinstance(group, kind):
        return group
    for e in getattr(group, "exceptions", ()):
        found = _first(e, kind)
        if found is not None:
            return found
    return None


def _worker(op: Callable, pool: Any, rng: random.Random) -> Callable:
    """An operation for ``_loop``: each call takes the next client of the pool (with k tasks
    and k clients, each client has at most one operation in flight)."""
    async def one() -> int:
        table = next(pool)
        await op(table, f"key{rng.randrange(KEYS)}")
        return 1

    return one


async def _put(table: Any, key: str) -> None:
    await table.put(key, VALUE)


async def _get(table: Any, key: str) -> None:
    await table.get(key)


async def _get_stale(table: Any, key: str) -> None:
    await table.get(key, stale=True)


async def run(*, transport: str, seconds: float, progress: Callable[[float], None] | None = None, placement: Placement = Placement(),
              profile: Path | None = None, **_: object) -> dict[str, Any]:
    """``delos-ref bench kv``: see the module docstring. ``profile``: the directory of the
    profiles of every process (None: no profiling)."""
    from delos_ref.profiling import ENV_VAR, env_for

    check_options("kv", transport, seconds, TRANSPORTS)
    if profile is not None:
        try:
            Path(profile).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadBenchArgument(f"--profile {profile}: cannot create that directory: {e.strerror or e}") from None
    meter = Meter(progress, cases=3 * len(CLIENTS) + 1 + len(CLIENTS), seconds=seconds, warmup_s=WARMUP_S)
    env = env_for(profile) if profile is not None else None
    with local_cluster("kv", transport, NODES, placement=placement, env=env) as cfg:
        results, baseline, stats = await _measure(cfg, seconds, meter, Path(env[ENV_VAR]) if env else None)
    return {
        "bench": "kv",
        "machine": machine(),
        "transport": transport,
        "nodes": NODES,
        "value_bytes": len(VALUE),
        "results": results,
        "baseline": baseline,
        "note": (
            "put = durable write through the VirtualLog, answered once the replica applied it (3 replicas, each "
            "with its own LMDB, plus 3 LMDB LogServers, in 3 processes); get_linearizable = check_tail sync then "
            "local read; get_stale = local read; outstanding = concurrent clients spread over the 3 replicas. "
            "Baseline in the same run: ping_rpc = one RPC round trip; log_append = NativeLoglet appends from the client, k outstanding."
        ),
        "stats": stats,
        **({"profile": env[ENV_VAR]} if env else {}),
    }
