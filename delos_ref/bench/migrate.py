"""What cold storage costs: the migration's speed, its effect on appends, and cold reads.

What is measured
    The benchmark starts its own 3-node cluster (``delos-ref up --detach``, temporary
    directory, free ports). From one client node in this process it appends ``FILL`` 100-byte
    entries (64 outstanding) and seals them into one segment (``reconfig_extend``), twice:
    segment A is migrated, segment B stays on the LogServers (the read baseline). Then:

    * ``append_during_migration`` (result) and ``append_no_migration`` (baseline): appends
      with 16 outstanding while ``migrate_below`` moves segment A to ``DIR/cold/`` (copy,
      read-back verify, ``reconfig_modify``, LogServer trim), and for as long again with no
      migration. Latency per append. The migration runs in the same process as the appenders
      (one trio loop), as an operator's ``delos-ref migrate`` would run on a client machine.
    * ``migrate``: one row, the migration itself -- ``ops_per_s`` is entries/s; MB/s and the
      bytes written are in ``migration``.
    * ``read_cold`` (result) and ``read_logservers`` (baseline): ``read_next`` of 100 entries
      at random positions of segment A (from the cold files, through the VirtualLog; the
      files are cached verified after their first read) and of segment B (from the
      LogServers); ``read_cold_first`` reads with a fresh cold loglet each time: the file is
      loaded and its SHA-256 checked on every read (a reader's first touch of a file).
    * ``logservers``: the LogServers' LMDB entries and used pages before the migration and
      after its trim has been purged (LMDB files never shrink: ``file_bytes`` stays).

The cluster is always stopped and its directory removed, whatever happens. The result
records the load average before and after (``load_average``): on a machine shared with
other work the numbers are loaded numbers, not benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import time
from pathlib import Path
from typing import Any, Callable

import trio

from delos_ref import cluster
from delos_ref.bench import Placement, check_options, local_cluster, machine, row
from delos_ref.bench.append import ENTRY, NODES, TRANSPORTS

FILL = 20_000
OUTSTANDING_FILL = 64
OUTSTANDING = 16
READ_BATCH = 100


async def _appends(vlog: Any, count: int, outstanding: int) -> None:
    left = [count]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await vlog.append(ENTRY)

    async with trio.open_nursery() as nursery:
        for _ in range(outstanding):
            nursery.start_soon(worker)


async def _appending(vlog: Any, stop: trio.Event, latencies: list[float]) -> None:
    """Appends with OUTSTANDING in flight until ``stop``; each latency recorded."""

    async def worker() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await vlog.append(ENTRY)
            latencies.append(time.perf_counter() - t0)

    async with trio.open_nursery() as nursery:
        for _ in range(OUTSTANDING):
            nursery.start_soon(worker)


async def _reads(read: Callable[[int], Any], lo: int, hi: int, seconds: float) -> tuple[list[float], int, float]:
    rng = random.Random(7)
    latencies: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        pos = rng.randrange(lo, hi - READ_BATCH)
        t0 = time.perf_counter()
        got = await read(pos)
        assert got, "a read of a sealed segment returns entries"
        latencies.append(time.perf_counter() - t0)
    return latencies, len(latencies), time.perf_counter() - start


async def _measure(cfg: cluster.ClusterConfig, directory: Path, seconds: float, progress: Callable[[float], None] | None) -> dict[str, Any]:
    from delos_ref.loglet.cold import ColdLoglet, FileColdStore
    from delos_ref.loglet.native import NativeLogletConfig
    from delos_ref.migrate import migrate_below
    from delos_ref.process import open_client, virtuallog_on
    from delos_ref.storage_size import logserver_data_size

    def tick(f: float) -> None:
        if progress is not None:
            progress(min(1.0, f))

    servers = tuple(n.id for n in cfg.nodes)
    async with open_client(cfg, "bench") as client:
        vlog = virtuallog_on(cfg, client, deadline_s=10.0)
        await vlog.refresh()
        for _ in range(2):  # segment A, then segment B
            await _appends(vlog, FILL, OUTSTANDING_FILL)
            await vlog.reconfig_extend(NativeLogletConfig(f"bench-{secrets.token_hex(4)}", "n1", servers))
        chain = await vlog.refresh()
        a, b = chain.segments[-3], chain.segments[-2]
        tick(0.3)
        before = [logserver_data_size(directory / n) for n in servers]

        during: list[float] = []
        stop = trio.Event()
        moved: list[Any] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_appending, vlog, stop, during)
            t0 = time.perf_counter()
            moved = await migrate_below(vlog, FileColdStore(directory / "cold"), a.stop, lambda seg: f"bench-{seg.start}")
            migrate_s = time.perf_counter() - t0
            stop.set()
        tick(0.5)
        without: list[float] = []
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_appending, vlog, stop, without)
            await trio.sleep(max(migrate_s, seconds))
            stop.set()
        tick(0.7)

        cold_seg = next(s for s in (await vlog.refresh()).segments if s.kind == "cold")
        store = FileColdStore(directory / "cold")
        cold_read = await _reads(lambda p: vlog.read_next(p, p + READ_BATCH), a.start, a.stop, seconds)
        first_read = await _reads(lambda p: ColdLoglet(vlog.registry.config(cold_seg), store).read_next(p - a.start, p - a.start + READ_BATCH), a.start, a.stop, seconds)
        native_read = await _reads(lambda p: vlog.read_next(p, p + READ_BATCH), b.start, b.stop, seconds)
        tick(0.9)
        deadline = time.perf_counter() + 20
        after = [logserver_data_size(directory / n) for n in servers]
        while any(x["entries"] > y["entries"] - FILL // 2 for x, y in zip(after, before)) and time.perf_counter() < deadline:
            await trio.sleep(0.5)  # the LogServers purge a trimmed range in chunks
            after = [logserver_data_size(directory / n) for n in servers]
        size = sum(m.config.size for m in moved)
        entries = sum(m.stop - m.start for m in moved)
        results = [
            row("append_during_migration", OUTSTANDING, during, len(during), migrate_s),
            row("migrate", 1, [migrate_s], entries, migrate_s),
            row("read_cold", 1, *cold_read),
            row("read_cold_first", 1, *first_read),
        ]
        baseline = [row("append_no_migration", OUTSTANDING, without, len(without), max(migrate_s, seconds)), row("read_logservers", 1, *native_read)]
        migration = {"entries": entries, "bytes": size, "seconds": round(migrate_s, 3), "entries_per_s": round(entries / migrate_s, 1), "mb_per_s": round(size / migrate_s / 1e6, 2), "segments": len(moved)}
        return {"results": results, "baseline": baseline, "migration": migration, "logservers": {"before": before, "after": after}}


async def run(*, transport: str, seconds: float, progress: Callable[[float], None] | None = None, placement: Placement = Placement(), **_: object) -> dict[str, Any]:
    """``delos-ref bench migrate``: see the module docstring."""
    import tempfile

    check_options("migrate", transport, seconds, TRANSPORTS)
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        if placement.directory is None:  # a temporary one, but known here: the cold files go in it
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="delos-bench-migrate-"))
            placement = Placement(Path(tmp) / "cluster", placement.base_port)
        with local_cluster("migrate", transport, NODES, placement=placement) as cfg:
            measured = await _measure(cfg, Path(placement.directory), seconds, progress)
    load = [[round(x, 2) for x in load_before], [round(x, 2) for x in os.getloadavg()]]
    return {
        "bench": "migrate",
        "machine": machine(),
        "load_average": load,
        "transport": transport,
        "nodes": NODES,
        "entry_bytes": len(ENTRY),
        **measured,
        "note": (
            "append_during_migration vs append_no_migration: 16 outstanding 100-byte appends while migrate_below moves a "
            f"{FILL}-entry sealed segment to cold files, and for as long with no migration; migrate: entries/s (MB/s in "
            "migration); read_cold vs read_logservers: read_next of 100 entries from cold files (cached, verified) vs "
            "LogServers; read_cold_first: a fresh cold loglet per read (load + SHA-256). Load average (1, 5, 15 min) "
            f"{load[0]} before, {load[1]} after: on a loaded machine these are not benchmarks."
        ),
    }
