"""Profiles of every process of a benchmark: ``delos-ref bench kv --profile DIR``.

Where the CPU of a put goes is spread over four processes (the client and three nodes), so
one profile is not enough: each process profiles itself, and only while a case is measured
(not while the cluster starts, warms up or idles between cases).

How the processes agree on when to profile:

* A node process started with the environment variable :data:`ENV_VAR` set to a directory
  (the benchmark passes it to ``up``, whose nodes inherit it) runs :func:`serve_signals`:
  ``SIGUSR1`` starts its profiler, ``SIGUSR2`` stops it and writes the profile. Without the
  variable a node installs no handler (and the signals keep their default meaning).
* The benchmark (:class:`ClusterProfiler`) writes the case's name to ``DIR/CASE_FILE``, sends
  ``SIGUSR1`` to every node, profiles itself while the case is measured, then sends
  ``SIGUSR2`` and waits until every node has written its profile.

Each process writes, for a case named C, ``DIR/C/<process>.prof`` (``python -m pstats``,
snakeviz...) and ``DIR/C/<process>.txt``: the CPU summed by layer (:data:`LAYERS`: trio, the
codec, the transport, LMDB, the database, the loglets...), then the top :data:`TOP` functions
by cumulative time and by own time (``tottime``). The process of the benchmark itself is
``client``.

The profiles count CPU time (``time.process_time``: user + system, as the benchmark's CPU
columns do), not wall time: a process waiting for the disk or the network is not charged for
the wait, and an fsync costs what the kernel spends on it for this process. Profiling costs
CPU (cProfile roughly doubles the time of call-heavy code): the numbers of a profiled run are
not benchmark figures, only the shares within each profile are.
"""

from __future__ import annotations

import cProfile
import io
import logging
import os
import pstats
import signal
import time
from pathlib import Path
from typing import Any

import trio

#: The environment variable that turns a node's profiling on: the profiles' directory.
ENV_VAR = "DELOS_PROFILE_DIR"
#: The file (in the profiles' directory) that names the case being measured.
CASE_FILE = "CASE"
#: How many functions each text summary lists, per ordering.
TOP = 30

_log = logging.getLogger(__name__)


class ProcessProfile:
    """cProfile of this process between :meth:`start` and :meth:`stop`."""

    def __init__(self, directory: str | os.PathLike, name: str) -> None:
        self.directory, self.name = Path(directory), name
        self._profiler: cProfile.Profile | None = None
        self._case = ""

    def start(self, case: str) -> None:
        assert self._profiler is None, "ProcessProfile: start after start without stop"
        self._case = case
        self._profiler = cProfile.Profile(time.process_time)  # CPU, not wall time (see above)
        self._profiler.enable()

    def stop(self) -> Path:
        """Stop and write ``DIR/<case>/<name>.prof`` and ``.txt``; the ``.prof`` path."""
        assert self._profiler is not None, "ProcessProfile: stop without start"
        profiler, self._profiler = self._profiler, None
        profiler.disable()
        folder = self.directory / self._case
        folder.mkdir(parents=True, exist_ok=True)
        prof = folder / f"{self.name}.prof"
        profiler.dump_stats(str(prof))
        (folder / f"{self.name}.txt").write_text(summary(profiler, f"{self.name}, case {self._case}"))
        return prof


#: The layers a profile's own time is summed into, each with what names its functions (a
#: path fragment of their file, or a fragment of a built-in's name), first match wins.
LAYERS = (
    ("trio (scheduler, tasks, cancel scopes, channels)", ("/trio/", "/outcome/", "contextlib", "_contextvars", "'send' of 'generator'")),
    ("codec (cbor2, HMAC)", ("transports/codec", "cbor2", "HMAC", "_hashlib", "/hmac.py")),
    ("transport (TCP/UDP, syscalls, epoll)", ("transports/", "_socket", "select.epoll")),
    ("LMDB (fsync included)", ("delos_ref/storage", "'Environment'", "'Transaction'", "'Cursor'")),
    ("database (replica, table, batching, client)", ("delos_ref/db/",)),
    ("loglets (sequencer, LogServer, clients)", ("delos_ref/loglet/",)),
    ("VirtualLog", ("delos_ref/virtuallog/",)),
    ("Paxos", ("paxos/",)),
    ("runtime and RPC", ("delos_ref/runtime", "delos_ref/rpc", "delos_ref/effects")),
)


def by_layer(stats: pstats.Stats) -> dict[str, float]:
    """Own (``tottime``) CPU seconds summed per layer of :data:`LAYERS`; the rest is
    ``other`` (Python built-ins called from everywhere, the benchmark's loop...)."""
    out: dict[str, float] = {}
    for (path, _line, name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{path} {name}"
        layer = next((label for label, marks in LAYERS if any(m in where for m in marks)), "other")
        out[layer] = out.get(layer, 0.0) + own
    return out


def summary(profiler: cProfile.Profile, title: str) -> str:
    """The CPU per layer, then the top :data:`TOP` functions by cumulative and by own time."""
    text = io.StringIO()
    text.write(f"# {title}\n\n## by layer (own CPU time)\n")
    layers = by_layer(pstats.Stats(profiler))
    total = sum(layers.values()) or 1.0
    for label, seconds in sorted(layers.items(), key=lambda kv: -kv[1]):
        text.write(f"{seconds / total * 100:5.1f}%  {seconds:8.3f} s  {label}\n")
    for order in ("cumulative", "tottime"):
        text.write(f"\n## top {TOP} by {order}\n")
        pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(TOP)
    return text.getvalue()


def case_name(directory: str | os.PathLike) -> str:
    """The case the benchmark named in ``DIR/CASE_FILE`` (``unnamed`` if there is none)."""
    try:
        name = (Path(directory) / CASE_FILE).read_text().strip()
    except OSError:
        return "unnamed"
    return name if name and "/" not in name and not name.startswith(".") else "unnamed"


async def serve_signals(directory: str | os.PathLike, name: str) -> None:
    """A node's side: ``SIGUSR1`` starts profiling the case named in ``DIR/CASE_FILE``,
    ``SIGUSR2`` stops and writes it. Runs until cancelled."""
    profile = ProcessProfile(directory, name)
    running = False
    with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2) as signals:
        async for signum in signals:
            if signum == signal.SIGUSR1 and not running:
                profile.start(case_name(directory))
                running = True
            elif signum == signal.SIGUSR2 and running:
                path = profile.stop()
                running = False
                _log.info("profile written: %s", path)


class ClusterProfiler:
    """The benchmark's side: profiles itself (``client``) and the nodes ``pids`` (started
    with :data:`ENV_VAR` set to ``directory``) around each measured case."""

    def __init__(self, directory: str | os.PathLike, pids: dict[str, int | None], wait_s: float = 30.0) -> None:
        self.directory, self.pids, self.wait_s = Path(directory), pids, wait_s
        self._own = ProcessProfile(directory, "client")
        self._case = ""

    def start(self, case: str) -> None:
        self._case = case
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / CASE_FILE).write_text(case)
        self._signal(signal.SIGUSR1)
        self._own.start(case)

    async def stop(self) -> None:
        """Stop every profile; wait (at most ``wait_s``) until each node has written its own."""
        self._own.stop()
        self._signal(signal.SIGUSR2)
        wanted = [self.directory / self._case / f"{n}.txt" for n in self.pids]
        give_up = time.monotonic() + self.wait_s
        while not all(p.exists() for p in wanted):
            if time.monotonic() > give_up:
                missing = ", ".join(p.stem for p in wanted if not p.exists())
                raise RuntimeError(f"profile of case {self._case}: no profile from {missing} within {self.wait_s:.0f} s")
            await trio.sleep(0.05)

    def _signal(self, signum: int) -> None:
        for pid in self.pids.values():
            if pid is not None:
                os.kill(pid, signum)


def env_for(directory: str | os.PathLike) -> dict[str, Any]:
    """The environment that starts nodes profiling into ``directory``."""
    return {**os.environ, ENV_VAR: str(Path(directory).resolve())}
