"""Benchmarks behind ``delos-ref bench NAME``: one module ``delos_ref/bench/<name>.py`` each.

A benchmark module defines ``async def run(*, transport, loglet, seconds, progress) -> dict``
returning ``{"bench", "machine", "results": [{"case", "outstanding", "p50_us", "p99_us",
"ops_per_s"}], "baseline": [same shape]}``: every number is measured, and the baseline is
measured in the same run on the same machine, so the two are comparable. It raises
:class:`BadBenchArgument` for options it does not support. Tests never assert on speed.
"""

from __future__ import annotations

import importlib
import os
import platform
from typing import Any, Awaitable, Callable

NAMES = ("transport", "metastore", "append", "virtuallog", "kv")


class BadBenchArgument(ValueError):
    pass


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
