"""The peers of ``delos-ref bench compare``: ZooKeeper and etcd ensembles, and delos-ref's own
database, each driven by a load generator in its own process.

Every system is measured the same way, so that the figures can stand side by side:

* an **ensemble** of 3 servers on loopback, with fsync on (each system's default), in its own
  temporary directory on free ports, started for one measurement and stopped after it
  (SIGTERM to its process group, SIGKILL after 5 s) whatever happens -- errors and Ctrl-C
  included -- so no server is ever left behind;
* a **load generator**: a separate process with k clients, each with one 100-byte write in
  flight at a time, spread over the 3 servers; it counts the writes that complete in a
  measured window that starts at the same wall-clock instant in every load process (after a
  warm-up: connections, a JIT), and reports their latencies and its own CPU time in that
  window as one JSON line (:func:`run_load`). Its CPU per write is the client's cost, printed
  beside the result; the same writes split over more load processes (the *client check*)
  should not raise the figure if the client is not the limit.

A system whose programs are missing raises :class:`PeerMissing`, whose message says how to
install them (``make peers``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import trio

#: The writes each client keeps in flight, and their size (the issue's setting).
VALUE_BYTES = 100
#: ``bench compare --op``: what delos-ref does -> what a peer's load generator does for it.
#: A log append has no peer counterpart: the peers write (their write is their log append
#: and more). ZooKeeper's ``read`` (getData) is not linearizable; etcd's is (see the .java).
PEER_OPS = {"put": "write", "get": "read", "append": "write"}
#: The warm-up: from when every load process is ready to the measured window.
WARMUP_S = 1.5
#: How long a load process may take to connect its clients.
READY_TIMEOUT_S = 120.0
INSTALL_HINT = "install it with `make peers` (Debian: apt-get install zookeeper etcd-server etcd-client)"


class PeerMissing(Exception):
    """A peer system cannot run here; the message names what is missing and how to get it."""


class PeerError(Exception):
    """A peer's ensemble or load generator failed; the message is one line, with the cause."""


@dataclass(frozen=True, slots=True)
class Load:
    """What one measured window gave: the writes counted, their latencies (us), the window's
    length, and the CPU seconds the load processes used in it (``client_cpu_s``) and the
    servers (``server_cpu_s``, from ``/proc``)."""

    ops: int
    latencies_us: tuple[int, ...]
    elapsed_s: float
    client_cpu_s: float
    server_cpu_s: float
    processes: int


def need(program: str, what: str) -> str:
    """The path of ``program``, or :class:`PeerMissing` naming ``what`` needs it."""
    path = shutil.which(program) if os.sep not in program else (program if os.access(program, os.X_OK) else None)
    if path is None:
        raise PeerMissing(f"{what}: `{program}` not found; {INSTALL_HINT}")
    return path


def need_file(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise PeerMissing(f"{what}: {path} not found; {INSTALL_HINT}")
    return path


def free_ports(n: int, start: int) -> list[int]:
    """``n`` consecutive free ports on 127.0.0.1 from ``start`` (see ``bench.free_base_port``)."""
    from delos_ref.bench import BenchError, free_base_port

    try:
        base = free_base_port(n, start)
    except BenchError as e:
        raise PeerError(str(e)) from None
    return list(range(base, base + n))


@contextlib.contextmanager
def processes(commands: Sequence[tuple[str, list[str], Path]], env: dict[str, str] | None = None) -> Iterator[list[subprocess.Popen]]:
    """Start each ``(name, argv, log_path)`` in its own session (so that it and its children
    form one process group), its output to ``log_path``; yield them; stop them all on the way
    out: SIGTERM to each group, SIGKILL to any still there after 5 s."""
    started: list[subprocess.Popen] = []
    try:
        for _, argv, log in commands:
            with open(log, "wb") as out:
                started.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env))
        yield started
    finally:
        stop_all(started)  # blocking, no checkpoint: a cancellation cannot cut it short


def stop_all(procs: list[subprocess.Popen], grace_s: float = 5.0) -> None:
    """SIGTERM every process group, wait up to ``grace_s``, SIGKILL what is left; reap all."""
    for p in procs:
        _signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        _signal_group(p, signal.SIGKILL)  # the group: a server's children too
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, sig)


def exited(procs: list[subprocess.Popen], commands: Sequence[tuple[str, list[str], Path]]) -> str | None:
    """A line naming the first server that has exited and the end of its log; None if all run."""
    for p, (name, _, log) in zip(procs, commands):
        if p.poll() is not None:
            return f"{name} exited ({p.returncode}): {log_tail(log)}"
    return None


def log_tail(path: Path, lines: int = 2) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip()[:200] for line in text[-lines:]) or "(empty log)"


def cpu_of(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids`` and their reaped children."""
    from delos_ref.bench import cpu_seconds

    used = cpu_seconds({str(p): p for p in pids})
    return sum(v for k, v in used.items() if k != "client")


async def run_load(argv_for: Callable[[int, float], list[str]], clients: int, processes_n: int, seconds: float, server_pids: Sequence[int], what: str) -> Load:
    """Run ``processes_n`` load processes at once, ``clients`` split between them
    (``argv_for(clients_i, seconds)`` gives one's command line). Each prints ``ready`` once its
    clients run; when all have, the measured window is set to start :data:`WARMUP_S` later in
    all of them (one line on their stdin: its start, epoch ms). Merges their JSON lines into one
    :class:`Load`; the servers' CPU is read at the window's ends. A load process still running
    when this returns or fails is killed."""
    shares = [clients // processes_n + (1 if i < clients % processes_n else 0) for i in range(processes_n)]
    shares = [s for s in shares if s > 0]
    procs: list[trio.Process] = []
    # stderr to files, not pipes: a chatty client (ZooKeeper's logs each session) would fill a
    # pipe that nobody reads during the run, and block.
    errors = [tempfile.TemporaryFile() for _ in shares]
    try:
        for share, err in zip(shares, errors):
            procs.append(await trio.lowlevel.open_process(argv_for(share, seconds), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err))
        with trio.fail_after(READY_TIMEOUT_S):
            for p in procs:
                if (await _line(p)) != b"ready":
                    raise PeerError(f"{what}: the load generator failed ({await p.wait()}): {_last_error(errors[procs.index(p)])}")
        start_at = time.time() + WARMUP_S
        for p in procs:
            await p.stdin.send_all(f"{int(start_at * 1000)}\n".encode())
        await trio.sleep(max(0.0, start_at - time.time()))
        before = cpu_of(server_pids)
        await trio.sleep(seconds)
        server_cpu = cpu_of(server_pids) - before
        outputs = []
        with trio.fail_after(60):
            for p in procs:
                line = await _line(p)
                if await p.wait() != 0 or not line.startswith(b"{"):
                    raise PeerError(f"{what}: the load generator failed ({p.returncode}): {_last_error(errors[procs.index(p)])}")
                outputs.append(json.loads(line))
    except trio.TooSlowError:
        raise PeerError(f"{what}: the load generator did not answer in time; its last words: {_last_error(errors[0])}") from None
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
        with trio.CancelScope(shield=True):
            for p in procs:
                await p.wait()
                for stream in (p.stdin, p.stdout):
                    await stream.aclose()
        for err in errors:
            err.close()
    latencies = tuple(sorted(x for o in outputs for x in o["lat_us"]))
    return Load(sum(o["ops"] for o in outputs), latencies, max(o["elapsed_s"] for o in outputs), sum(o["cpu_s"] for o in outputs), server_cpu, len(procs))


async def _line(p: trio.Process) -> bytes:
    """The next line of ``p``'s stdout, without its newline (b"" at its end). The
    load generators write two lines in all, so byte by byte is cheap enough."""
    out = bytearray()
    while True:
        b = await p.stdout.receive_some(1)
        if not b or b == b"\n":
            return bytes(out)
        out += b


def _last_error(err: Any) -> str:
    """The last line of a load process's stderr file (its error, or its last log line)."""
    err.seek(0)
    lines = err.read().decode(errors="replace").strip().splitlines()
    return lines[-1].strip()[:300] if lines else "no message"


def summary(load: Load, clients: int) -> dict[str, Any]:
    """One result row: puts/s, p50/p99 (us), CPU us per put of the client and the servers."""
    lat = load.latencies_us

    def pct(p: float) -> float | None:
        return float(lat[min(len(lat) - 1, int(p * len(lat)))]) if lat else None

    per_op = (lambda s: round(s / load.ops * 1e6, 1)) if load.ops else (lambda s: None)
    return {
        "clients": clients,
        "processes": load.processes,
        "ops_per_s": round(load.ops / load.elapsed_s, 1) if load.elapsed_s > 0 else 0.0,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "client_cpu_us_per_op": per_op(load.client_cpu_s),
        "server_cpu_us_per_op": per_op(load.server_cpu_s),
    }


async def wait_ready(check: Callable[[], bool], procs: list[subprocess.Popen], commands: Sequence[tuple[str, list[str], Path]], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``check()`` (blocking; run in a thread) until it is true; :class:`PeerError` if a
    server exits first (with its log's tail) or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        gone = exited(procs, commands)
        if gone is not None:
            raise PeerError(f"{what}: {gone}")
        if await trio.to_thread.run_sync(check):
            return
        await trio.sleep(0.2)
    raise PeerError(f"{what}: not ready after {timeout_s:.0f} s; last log lines: {log_tail(commands[0][2])}")


def javac(sources: Sequence[Path], classpath: str, out: Path, what: str) -> None:
    """Compile ``sources`` into ``out``; :class:`PeerMissing` without a JDK."""
    compiler = need("javac", f"{what} (its load generator is Java, compiled at run time)")
    res = subprocess.run([compiler, "-nowarn", "-d", str(out), "-cp", classpath, *map(str, sources)], capture_output=True, text=True, timeout=180)
    if res.returncode != 0:
        first = (res.stderr.strip().splitlines() or ["no message"])[0]
        raise PeerError(f"{what}: javac failed: {first}")


HERE = Path(__file__).resolve().parent
