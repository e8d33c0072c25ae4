"""delos-ref's database for ``bench compare``: the cluster of ``bench kv`` (3 nodes on
loopback, each an acceptor, an LMDB LogServer, a sequencer role and a database replica, every
write synced) and a load generator in its own process, as the peers have.

The load generator (``python -m delos_ref.bench.peers.delos``, the protocol of ``Cpu.java``:
``ready``, then the window's start on stdin, then one JSON line) runs k
:class:`~delos_ref.db.KvClient` s, each with one 100-byte ``put`` in flight, client i on
replica n(i mod 3 + 1), keys drawn as ``bench kv`` draws them -- ``bench kv``'s ``put`` case in
a process of its own, so that its CPU is counted as the peers' clients' is. With op ``get``
each client does linearizable gets instead (``bench kv``'s ``get_linearizable``); with op
``append``, k appenders each append one 100-byte entry at a time straight to the cluster's
NativeLoglet (``bench kv``'s ``log_append`` baseline, ``bench append``'s case).
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from pathlib import Path
from typing import AsyncIterator

import trio

NAME = "delos-ref"
#: ``up`` attempts before the round fails (see ``ensemble``).
START_ATTEMPTS = 2


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as v

    try:
        return v("delos-ref")
    except PackageNotFoundError:
        return "?"


@contextlib.asynccontextmanager
async def ensemble(workdir: Path) -> AsyncIterator[dict]:
    """``bench kv``'s cluster (``local_cluster``, stopped on the way out), as the peers' are."""
    from delos_ref.bench import BenchError, Placement, local_cluster

    directory = workdir / "cluster"
    with contextlib.ExitStack() as stack:
        for attempt in range(START_ATTEMPTS):
            try:
                cfg = stack.enter_context(local_cluster("compare", "tcp", 3, placement=Placement(directory=directory)))
                break
            except BenchError:
                if attempt == START_ATTEMPTS - 1:
                    raise
                # On a machine loaded enough, `up` can miss its 2 s for the first MetaStore
                # write; the peers' ensembles wait up to a minute, so try once more.

        def argv_for(clients: int, seconds: float, op: str = "put") -> list[str]:
            return [sys.executable, "-m", "delos_ref.bench.peers.delos", str(directory), str(clients), str(seconds), op]

        yield {"connect": ",".join(n.id for n in cfg.nodes), "pids": [n.pid for n in cfg.nodes], "argv_for": argv_for, "check": lambda: None}


OPS = ("put", "get", "append")


async def _load(directory: Path, clients: int, seconds: float, op: str = "put") -> dict:
    """The load process: see the module docstring."""
    from delos_ref import cluster
    from delos_ref.bench.kv import KEYS, VALUE
    from delos_ref.db import ClientOptions, KvClient
    from delos_ref.loglet.native import NativeLoglet, NativeOptions, default_config
    from delos_ref.process import open_client
    from delos_ref.rpc import NO_RETRY

    assert op in OPS, f"op is one of {OPS}"

    cfg = cluster.load(directory)
    ids = cfg.with_role("acceptor")  # the database replicas live on the core (acceptor) nodes
    window = {"start": float("inf"), "end": float("inf")}
    latencies: list[int] = []
    rng = random.Random(7)  # which keys: any fixed sequence will do
    async with open_client(cfg, "compare") as client:
        tables = [KvClient(client.endpoint, ids[i % len(ids):] + ids[: i % len(ids)], f"{client.node_id}-{i}", options=ClientOptions(call_timeout_s=30.0, retry=NO_RETRY)) for i in range(clients)]
        await tables[0].put("warm", "up")
        loglet = NativeLoglet(client, default_config(cfg), options=NativeOptions(append_timeout_s=30.0, coalesce_requests=2))

        async def one(table: KvClient) -> None:
            if op == "put":
                await table.put(f"key{rng.randrange(KEYS)}", VALUE)
            elif op == "get":
                await table.get(f"key{rng.randrange(KEYS)}")  # linearizable
            else:
                await loglet.append(VALUE.encode())

        async def worker(table: KvClient) -> None:
            while True:
                t0 = time.perf_counter()
                await one(table)
                now = time.time()
                if window["start"] <= now < window["end"]:
                    latencies.append(int((time.perf_counter() - t0) * 1e6))
                if now >= window["end"]:
                    return

        async with trio.open_nursery() as nursery:
            for t in tables:
                nursery.start_soon(worker, t)
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            line = await trio.to_thread.run_sync(sys.stdin.readline)
            start = int(line) / 1000
            window.update(start=start, end=start + seconds)
            await trio.sleep(max(0.0, start - time.time()))
            cpu0 = time.process_time()
            await trio.sleep(max(0.0, window["end"] - time.time()))
            cpu1 = time.process_time()
    return {"ops": len(latencies), "elapsed_s": seconds, "cpu_s": cpu1 - cpu0, "lat_us": latencies}


def _leaf(e: BaseException) -> BaseException:
    """The first exception inside nested exception groups (what went wrong, not the nursery)."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


def main() -> None:
    """The load process's entry point. Its stdout is the protocol with ``run_load`` (``ready``,
    then one JSON line), not output for a person; an error is one line on stderr, exit 1."""
    directory, clients, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    op = sys.argv[4] if len(sys.argv) > 4 else "put"
    try:
        result = trio.run(_load, directory, clients, seconds, op)
    except Exception as e:  # noqa: BLE001 -- reported to run_load as one line, whatever it is
        leaf = _leaf(e)
        sys.stderr.write(f"{type(leaf).__name__}: {leaf}\n")
        sys.exit(1)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
