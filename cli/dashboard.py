"""The live view of ``delos-ref up`` (and the table of ``delos-ref status``).

:func:`render` turns one status document (:func:`delos_ref.ops.status_on`, with ``stats``)
into rich tables: the nodes with their roles, process state and network conditions
(``delos-ref net``), the chain's segments with
their ranges, kinds, loglets and seal marks (a cold segment: its store, files and bytes), the tail, the MetaStore version and the append
rate. :class:`Rate` derives appends/s from the sequencers' ``entries`` counters between two
refreshes. Rendering is a pure function of the document, so a frame can be recorded as text
(``Console(record=True)``; see ``docs/dashboard.txt``).
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text


def sequenced_entries(report: dict[str, Any]) -> int:
    """Entries every live sequencer role has taken so far (counters restart with a node)."""
    total = 0
    for info in (report.get("stats") or {}).values():
        seq = ((info or {}).get("roles") or {}).get("sequencer") or {}
        total += int(seq.get("entries", 0))
    return total


class Rate:
    """appends/s from successive status documents and their times."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None

    def update(self, now: float, report: dict[str, Any]) -> float | None:
        count = sequenced_entries(report)
        last, self._last = self._last, (now, count)
        if last is None or now <= last[0]:
            return None
        return max(0, count - last[1]) / (now - last[0])


def render(report: dict[str, Any], *, title: str, rate: float | None = None, footer: str | None = None) -> Group:
    """One frame of the dashboard for a status document."""
    parts: list[Any] = [_header(report, title, rate), _nodes(report), _chain(report)]
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)


def _header(report: dict[str, Any], title: str, rate: float | None) -> Text:
    ms = report.get("metastore") or {}
    tail = report.get("tail") or {}
    line = Text()
    line.append(f"{title}", style="bold")
    line.append(f"  cluster {report['cluster_id']} on {report['transport']}\n")
    line.append("MetaStore ")
    if ms.get("version") is not None:
        line.append(f"version {ms['version']}", style="green")
    else:
        line.append(f"unavailable ({ms.get('error', '?')})", style="red")
    line.append("   tail ")
    if tail.get("position") is not None:
        line.append(str(tail["position"]), style="bold")
        if tail.get("sealed"):
            line.append(" SEALED (the first client that meets the seal rolls forward)", style="yellow")
    else:
        line.append("unknown" + (f" ({tail['error']})" if tail.get("error") else ""), style="red")
    line.append("   appends/s ")
    line.append("-" if rate is None else f"{rate:,.0f}", style="bold")
    ns = report.get("netns")
    if ns:
        line.append(f"\nnetwork namespaces {ns['tag']}-* on bridge {ns['bridge']} ({ns['subnet']}); kernel rules: ")
        line.append("; ".join(ns["kernel"]) or "none", style="yellow" if ns["kernel"] else "green")
    return line


def _nodes(report: dict[str, Any]) -> Table:
    table = Table(title="nodes", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1))
    with_stats = "stats" in report
    for col in ("node", "address", "pid", "process", "ping", "roles") + (("entries sequenced", "network") if with_stats else ()):
        table.add_column(col, no_wrap=col in ("node", "address", "pid", "process", "ping"), overflow="fold", min_width=4)
    stats = report.get("stats") or {}
    for n in report["nodes"]:
        info = stats.get(n["id"]) or {}
        seq = (info.get("roles") or {}).get("sequencer")
        process = n.get("process", "")
        colour = {"running": "green", "paused": "yellow", "dead": "red"}.get(process, "red" if process.startswith("exited") else "white")
        row = [
            n["id"],
            n["address"],
            str(n["pid"] or "-"),
            f"[{colour}]{escape(process)}[/]",
            "[green]yes[/]" if n["alive"] else "[red]no[/]",
            escape(" ".join(r for r in (n["roles"] or n.get("configured_roles", [])) if r != "ping")),
        ]
        if with_stats:
            row.append(str(seq.get("entries", 0)) if seq else "")
            row.append(escape(network_cell(info)))
        table.add_row(*row)
    return table


def network_cell(info: dict[str, Any]) -> str:
    """What a node's link shaper does to what it sends (``delos-ref net``): ``perfect``,
    ``sends 5ms±1ms; to n2,n3: cut``; empty when the node did not say."""
    from delos_ref.netctl import summary
    from transports.shaper import NetConditions

    data = ((info.get("roles") or {}).get("net") or {}).get("conditions")
    if data is None:
        return ""
    lines = summary({"": NetConditions.from_data(data)})
    return lines[0].removeprefix(": ") if lines else "perfect"


def _chain(report: dict[str, Any]) -> Table:
    chain = report.get("chain")
    if chain:
        title = f"chain (version {chain['version']})"
    elif report.get("chain_error"):
        title = f"chain (unknown: {escape(report['chain_error'])})"
    else:
        title = "chain (unknown: no MetaStore quorum)"
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1))
    # On a narrow terminal the long cells fold (loglet ids, LogServer lists) and the short
    # ones keep their width, so no column is dropped at 80 columns.
    for col in ("#", "positions", "kind", "loglet", "sequencer", "LogServers", "sealed"):
        short = col in ("#", "positions", "kind", "sealed")
        table.add_column(col, no_wrap=short, overflow="fold", min_width=len(col) if short else 6)
    for i, seg in enumerate((chain or {}).get("segments", [])):
        params = seg.get("params") or {}
        stop = "" if seg["stop"] is None else str(seg["stop"])
        active = seg["stop"] is None
        sealed = seg["sealed"]
        mark = "[yellow]SEALED[/]" if sealed and active else ("yes" if sealed else ("[green]no (active)[/]" if sealed is False else "?"))
        table.add_row(
            str(i),
            f"[{seg['start']}, {stop or 'tail'})",
            seg["kind"],
            escape(str(params.get("loglet_id", "") or (params.get("inner") or {}).get("loglet_id", ""))),
            *_who(params, seg.get("cold")),
            mark,
        )
    return table


def _current(directory: str, cfg: Any) -> Any:
    """The cluster's config as ``cluster.json`` says now; ``cfg`` if it cannot be read."""
    from delos_ref import cluster

    try:
        return cluster.load(directory)
    except cluster.ClusterError:
        return cfg


def _who(params: dict[str, Any], cold: dict[str, Any] | None = None) -> tuple[str, str]:
    """The sequencer and LogServers cells of a segment; a striped one's per stripe, one a line;
    a cold one's store, files and bytes; a skip one's inner loglet, with its skipped count."""
    if cold is not None:
        return "(cold store)", escape(f"{cold['files']} file(s), {cold['bytes']} bytes in {cold['store']}")
    if "inner" in params:
        inner = params["inner"]
        first, second = _who(inner, {"store": inner.get("store"), **_cold_cells(inner)} if inner.get("kind") == "cold" else None)
        return first, second + f"\n{len(params.get('skipped') or [])} entry(ies) skipped"
    if "stripes" in params:
        cells = [_who(stripe) for stripe in params["stripes"]]
        return "\n".join(f"{j}: {c[0]}" for j, c in enumerate(cells)), "\n".join(f"{j}: {c[1]}" for j, c in enumerate(cells))
    return escape(str(params.get("sequencer", ""))), escape(", ".join(params.get("logservers") or [f"{a} (acceptor)" for a in params.get("acceptors", [])]))


def _cold_cells(params: dict[str, Any]) -> dict[str, Any]:
    files = params.get("files") or []
    return {"files": len(files), "bytes": sum(f.get("size", 0) for f in files)}


async def run_live(console: Any, node: Any, directory: str, cfg: Any, *, title: str, footer: str, period_s: float = 1.0) -> None:
    """Redraw the dashboard every ``period_s`` until cancelled (``node``: a client node)."""
    import trio
    from rich.live import Live

    from delos_ref import ops

    rate = Rate()

    async def frame() -> Group:
        # cluster.json as it is now: `restart` from another shell gives a node a new pid.
        report = await ops.status_on(node, directory, _current(directory, cfg), timeout_s=min(period_s, 0.5), want_stats=True)
        return render(report, title=title, rate=rate.update(trio.current_time(), report), footer=footer)

    with Live(await frame(), console=console, refresh_per_second=4, transient=False) as live:
        while True:
            await trio.sleep(period_s)
            live.update(await frame())
