"""Benchmarks behind ``delos-ref bench NAME``: one module ``delos_ref/bench/<name>.py`` each.

A benchmark module defines ``async def run(*, transport, loglet, seconds, progress,
placement) -> dict`` returning ``{"bench", "machine", "results": [{"case", "outstanding",
"p50_us", "p99_us", "ops_per_s"}], "baseline": [same shape]}``: every number is measured, and
the baseline is measured in the same run on the same machine, so the two are comparable. It
raises :class:`BadBenchArgument` for options it does not support, and :class:`BenchError`
when its run fails (its cluster did not start). Tests never assert on speed.

A benchmark that needs a cluster starts one with :func:`local_cluster`, where its
:class:`Placement` says (``bench --dir``, ``--base-port``): by default in a temporary
directory (removed afterwards), on the first free ports from :data:`DEFAULT_BASE_PORT`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

NAMES = ("transport", "metastore", "append", "virtuallog", "kv", "migrate")
#: Where a benchmark cluster's ports start by default (the first free range from here):
#: apart from ``up``'s 7101, so a benchmark does not collide with a cluster left running.
DEFAULT_BASE_PORT = 8101


class BadBenchArgument(ValueError):
    pass


class BenchError(Exception):
    """The benchmark could not run (its cluster did not start); the message is one line."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a benchmark's cluster lives. ``directory``: None for a temporary one (removed
    afterwards); a given one gets a fresh cluster (``up --fresh``) and keeps its data and
    node logs after the run. ``base_port``: None for the first free range from
    :data:`DEFAULT_BASE_PORT`; a given one must be free. ``net_delay_s``: once the cluster is
    up, every message between its nodes (and from a node to a client) is held this long by
    the nodes' link shapers (``delos-ref net delay``; a round trip between nodes takes twice
    it)."""

    directory: Path | None = None
    base_port: int | None = None
    net_delay_s: float = 0.0


def get_bench(name: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    if name not in NAMES:
        raise BadBenchArgument(f"unknown benchmark {name!r}; choose from: {', '.join(NAMES)}")
    try:
        module = importlib.import_module(f"delos_ref.bench.{name}")
    except ModuleNotFoundError:
        raise BadBenchArgument(f"benchmark {name!r} is not implemented yet") from None
    return module.run


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fp:
            for line in fp:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(), "cpu": cpu}


def row(case: str, outstanding: int, latencies: list[float], ops: int, elapsed_s: float) -> dict[str, Any]:
    """One result row: p50/p99 of ``latencies`` (seconds) in us, and ``ops`` per second."""
    latencies = sorted(latencies)

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e6, 1)

    return {"case": case, "outstanding": outstanding, "p50_us": pct(0.50), "p99_us": pct(0.99), "ops_per_s": round(ops / elapsed_s, 1) if elapsed_s > 0 else 0.0}


def cpu_seconds(pids: dict[str, int | None]) -> dict[str, float]:
    """CPU time (user + system, seconds) used so far by this process (``"client"``) and by
    each of ``pids`` (read from ``/proc``; a process without it -- another OS, or gone -- is
    left out)."""
    out = {"client": time.process_time()}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for name, pid in pids.items():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime, in ticks
    return out


def cpu_per_op(before: dict[str, float], after: dict[str, float], ops: int, elapsed_s: float) -> dict[str, float]:
    """CPU microseconds per operation of each process measured at both ends, their total, and
    how many cores that total kept busy on average (``cores_busy``)."""
    used = {k: after[k] - before[k] for k in before if k in after}
    if not ops or elapsed_s <= 0:
        return {}
    out = {k: round(v / ops * 1e6, 1) for k, v in sorted(used.items())}
    out["total"] = round(sum(used.values()) / ops * 1e6, 1)
    out["cores_busy"] = round(sum(used.values()) / elapsed_s, 2)
    return out


class Meter:
    """Progress of a benchmark of ``cases`` cases, each a warm-up plus ``seconds`` measured."""

    def __init__(self, callback: Callable[[float], None] | None, cases: int, seconds: float, warmup_s: float) -> None:
        self.callback, self.total, self.done = callback, cases * (seconds + warmup_s), 0.0

    def add(self, s: float) -> None:
        self.done += s
        if self.callback is not None:
            self.callback(min(1.0, self.done / self.total))


def check_options(bench: str, transport: str, seconds: float, transports: tuple[str, ...]) -> None:
    """The options every real-cluster benchmark checks the same way."""
    if transport not in transports:
        raise BadBenchArgument(f"bench {bench} runs on a real cluster: --transport must be one of {', '.join(transports)} (got {transport!r})")
    if not seconds > 0:
        raise BadBenchArgument(f"--seconds must be positive (got {seconds})")


@contextlib.contextmanager
def local_cluster(bench: str, transport: str, nodes: int, extra: tuple[str, ...] = (), placement: Placement = Placement(),
                  env: dict[str, str] | None = None) -> Iterator[Any]:
    """A ``delos-ref up --detach`` cluster of ``nodes`` where ``placement`` says, for one
    benchmark; always stopped (``down``, then SIGKILL of any survivor), and a temporary
    directory removed, whatever happens -- errors and Ctrl-C included. Yields its config.
    ``env``: the environment of ``up`` and so of its nodes (default: this process's)."""
    import trio

    from delos_ref import cluster

    cli = [sys.executable, "-m", "cli.main"]
    tmp = tempfile.TemporaryDirectory(prefix=f"delos-bench-{bench}-") if placement.directory is None else None
    directory = Path(tmp.name) / "cluster" if tmp is not None else placement.directory
    try:
        base = _base_port(bench, transport, nodes, placement.base_port)
        args = ["up", "--detach", "--fresh", "--dir", str(directory), "--nodes", str(nodes), "--transport", transport, "--base-port", str(base), *extra]
        up = subprocess.run([*cli, *args], capture_output=True, text=True, timeout=90, env=env)
        if up.returncode != 0:
            raise BenchError(f"bench {bench}: `delos-ref up` failed: {up.stderr.strip().removeprefix('error: ')}")
        if placement.net_delay_s > 0:
            delay = f"{placement.net_delay_s * 1e6:.0f}us"
            net = subprocess.run([*cli, "net", "delay", delay, "--dir", str(directory)], capture_output=True, text=True, timeout=60)
            if net.returncode != 0:
                raise BenchError(f"bench {bench}: `delos-ref net delay {delay}` failed: {net.stderr.strip().removeprefix('error: ')}")
        yield cluster.load(directory)
    finally:
        with trio.CancelScope(shield=True):
            stop_cluster(cli, directory)
            if tmp is not None:
                tmp.cleanup()


def stop_cluster(cli: list[str], directory: Path) -> None:
    """``down`` the cluster in ``directory``, then SIGKILL any node still there: ``down`` may
    fail or take longer than its 30 s (a machine loaded enough), and nothing is left behind."""
    from delos_ref import cluster

    if not cluster.config_path(directory).exists():
        return
    try:
        subprocess.run([*cli, "down", "--dir", str(directory)], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pass  # the nodes still running are killed below
    finally:
        for n in cluster.live_nodes(cluster.load(directory)):  # `down` failed: leave nothing behind
            cluster.signal_node(n, 9)


def _base_port(bench: str, transport: str, n: int, wanted: int | None) -> int:
    """``wanted`` if its ``n`` ports are free (else :class:`BenchError` naming them), or the
    first free range from :data:`DEFAULT_BASE_PORT`."""
    from delos_ref import cluster

    if wanted is None:
        return free_base_port(n)
    busy = [wanted + i for i in range(n) if not cluster.port_free("127.0.0.1", wanted + i, transport)]
    if busy:
        raise BenchError(f"bench {bench}: port in use ({transport}): {', '.join(f'127.0.0.1:{p}' for p in busy)}; choose another --base-port")
    return wanted


def free_base_port(n: int, start: int = DEFAULT_BASE_PORT) -> int:
    """The first ``n`` consecutive free ports (TCP and UDP) on 127.0.0.1 from ``start``,
    below the kernel's ephemeral range (32768+ on Linux), so no outgoing connection can take
    one between probe and bind."""
    from delos_ref import cluster

    for base in range(start, 32768 - n, n):
        if all(cluster.port_free("127.0.0.1", base + i, t) for i in range(n) for t in ("tcp", "udp")):
            return base
    raise BenchError(f"no {n} free consecutive ports from {start}: choose one with --base-port")
