"""Record one frame of the `delos-ref up` dashboard as text (docs/dashboard.txt).

Usage, with a cluster running in DIR (e.g. `delos-ref up --detach --dir DIR`):

    python docs/capture_dashboard.py DIR docs/dashboard.txt

It takes two status documents a second apart (so appends/s is measured, as the live view
does) and renders the second with rich's ``Console(record=True)``.
"""

from __future__ import annotations

import sys

import trio
from rich.console import Console

from cli import dashboard
from delos_ref import cluster, ops
from delos_ref.process import open_client


async def capture(directory: str) -> object:
    cfg = cluster.load(directory)
    async with open_client(cfg, "capture") as node:
        rate = dashboard.Rate()
        first = await ops.status_on(node, directory, cfg, timeout_s=0.5, want_stats=True)
        rate.update(trio.current_time(), first)
        await trio.sleep(1.0)
        report = await ops.status_on(node, directory, cfg, timeout_s=0.5, want_stats=True)
        footer = f"{directory}: Ctrl-C stops the cluster; from another shell: delos-ref append/read/kill/... --dir {directory}"
        return dashboard.render(report, title="delos-ref: cluster up", rate=rate.update(trio.current_time(), report), footer=footer)


def main() -> None:
    directory, target = sys.argv[1], sys.argv[2]
    frame = trio.run(capture, directory)
    console = Console(record=True, width=100, file=open("/dev/null", "w"))
    console.print(frame)
    with open(target, "w") as fp:
        fp.write(console.export_text())


if __name__ == "__main__":
    main()
