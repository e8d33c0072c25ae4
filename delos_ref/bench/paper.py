"""``delos-ref bench paper``: the evaluation of the Delos paper (OSDI 2020, §6), rerun on local
clusters, as figures and tables in ``OUT/report.md`` next to the paper's numbers.

The seven experiments (``--only N,...`` picks some):

1. **Switchover** (paper Fig. 5): the chain starts on the bootstrap loglet (entries through the
   Paxos acceptors, our ZKLoglet); appenders run through the VirtualLog; mid-run one
   ``reconfig_extend`` moves the log onto a NativeLoglet. Append latency p50/p99 per 100 ms
   bucket, the switch marked; the headline is p99 before / p99 after (the paper: 10x).
2. **Disaggregation**: database puts at rising load on the converged layout (every node a
   replica and a LogServer) and the disaggregated one (``up --logservers 3``: LogServers on
   their own nodes); puts/s and p99 per load (the paper: up to 10x throughput under load, on
   machines where the database's CPU competed with the log's).
3. **Sequencer bottleneck**: ``bench append --loglet striped``: one NativeLoglet against a
   StripedLoglet whose stripes are sequenced on different nodes (rotating sequencer).
4. **Horizontal scaling**: ``bench append --loglet striped --sharded``: 1..N stripes, each on
   its own LogServers (on a machine with few cores this shows the CPU ceiling, not scaling).
5. **Virtualisation cost**: latency CDFs of ``append``, ``check_tail`` and ``read_next``
   through the VirtualLog against the same NativeLoglet directly, 1 outstanding, alternating
   rounds (the paper: +100-150 us p99 on append and check_tail, +6 us on read_next).
6. **Reconfiguration**: the latency of ``reconfig_extend``, ``reconfig_modify`` and
   ``reconfig_truncate``, and the client-visible append gap (the longest time between two
   completed appends of another client that overlaps the reconfiguration; its usual gap is
   the baseline) (the paper: tens of ms).
7. **ZooKeeper and etcd**: ``bench compare`` over a sweep of clients: puts/s against p99 for
   delos-ref's database, ZooKeeper ``setData`` and etcd ``put`` (the paper: ZooKeeper ~30K
   puts/s before its p99 passes 15 ms, Delos ~26K).

``--quick`` runs each for a short time (all seven in about 3-5 minutes), for CI and for
students; the full run is what ``docs/figures/paper/`` holds. Every experiment reuses the
benchmark modules (``bench append``, ``bench kv``'s loop, ``bench compare``); figures need the
``plots`` extra (matplotlib), without it the report has the tables only. Numbers measured on a
loaded machine are not benchmarks: the report names the machine and its load average.
"""

from __future__ import annotations

import math
import os
import secrets
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import trio

from delos_ref.bench import BadBenchArgument, BenchError, Meter, local_cluster, machine

EXPERIMENTS = {
    1: "Switchover: bootstrap loglet to NativeLoglet under load",
    2: "Disaggregation: converged vs disaggregated layout",
    3: "Sequencer bottleneck: NativeLoglet vs StripedLoglet (rotating sequencer)",
    4: "Horizontal scaling: sharded stripes",
    5: "Virtualisation cost: latency CDFs through the VirtualLog vs the loglet",
    6: "Reconfiguration latency and the client-visible append gap",
    7: "ZooKeeper and etcd: puts/s vs p99",
}
#: The paper's numbers (docs/paper-numbers.md), beside each experiment's headline.
PAPER = {
    1: "p99 10x lower after the switch from ZKLoglet to NativeLoglet (reads; 5x for multi-puts)",
    2: "disaggregated up to 10x the throughput of converged, under load",
    3: "the StripedLoglet's rotating sequencer removes the sequencer bottleneck (§4.2.2; no single number)",
    4: "throughput grows with shards (§4.2.2; no single number)",
    5: "+100-150 us p99 on append and checkTail, +6 us on readNext; no loss of peak throughput",
    6: "tens of milliseconds",
    7: "ZooKeeper ~30K puts/s before p99 > 15 ms; Delos ~26K (0.87x)",
}
ENTRY = b"\xa5" * 100


@dataclass(frozen=True)
class Settings:
    """How long each experiment runs; ``QUICK`` and ``FULL`` below."""

    seconds: float  # per measured case
    switch_s: float  # experiment 1: before and after the switch, each
    loads: tuple[int, ...]  # experiment 2: concurrent clients
    stripes: int  # experiment 3
    shards: int  # experiment 4
    samples: int  # experiment 5: operations per path and kind
    reconfigs: int  # experiment 6: of each kind
    compare_clients: tuple[int, ...]  # experiment 7
    compare_rounds: int
    compare_seconds: float


QUICK = Settings(0.6, 2.0, (1, 16, 64), 2, 2, 150, 5, (1, 64), 1, 1.5)
FULL = Settings(3.0, 5.0, (1, 4, 16, 64, 256), 3, 4, 2000, 30, (1, 4, 16, 64, 256), 3, 5.0)


def parse_only(text: str | None) -> list[int]:
    if text is None:
        return sorted(EXPERIMENTS)
    try:
        picked = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise BadBenchArgument(f"--only takes experiment numbers 1..7 separated by commas (got {text!r})") from None
    if not picked or not all(n in EXPERIMENTS for n in picked):
        raise BadBenchArgument(f"--only takes experiment numbers 1..7 separated by commas (got {text!r})")
    return picked


def _pct(xs: list[float], p: float) -> float | None:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else None


def _us(x: float | None) -> float | None:
    return None if x is None else round(x * 1e6, 1)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _result(n: int, headline: str, columns: list[str], rows: list[list[Any]], figures: list[Path], ratios: dict[str, float | None], note: str, **extra: Any) -> dict[str, Any]:
    return {"n": n, "title": EXPERIMENTS[n], "paper": PAPER[n], "headline": headline, "columns": columns, "rows": rows,
            "figures": [str(p) for p in figures], "ratios": ratios, "note": note, **extra}


# ------------------------------------------------------------------------------ 1. switchover


async def switchover(s: Settings, out: Path) -> dict[str, Any]:
    from delos_ref.loglet.native import NativeLogletConfig
    from delos_ref.process import open_client, virtuallog_on

    samples: list[tuple[float, float]] = []  # (completed at, latency), seconds from the start
    with local_cluster("paper", "tcp", 3, ("--loglet", "bootstrap")) as cfg:
        async with open_client(cfg, "paper") as client:
            vlog = virtuallog_on(cfg, client, deadline_s=5.0)
            switcher = virtuallog_on(cfg, client, deadline_s=5.0, user="switcher")
            await vlog.append(ENTRY)
            t0 = time.perf_counter()
            stop = trio.Event()

            async def appender() -> None:
                while not stop.is_set():
                    a = time.perf_counter()
                    await vlog.append(ENTRY)
                    b = time.perf_counter()
                    samples.append((b - t0, b - a))

            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(appender)
                await trio.sleep(s.switch_s)
                switch_at = time.perf_counter() - t0
                config = NativeLogletConfig(f"paper-{secrets.token_hex(4)}", cfg.with_role("sequencer")[0], tuple(cfg.with_role("logserver")))
                await switcher.reconfig_extend(config)
                switched_at = time.perf_counter() - t0
                await trio.sleep(s.switch_s)
                stop.set()
    before = [lat for at, lat in samples if at - lat < switch_at]
    after = [lat for at, lat in samples if at - lat >= switched_at]
    buckets: dict[int, list[float]] = {}
    for at, lat in samples:
        buckets.setdefault(int(at * 10), []).append(lat)
    rows = [[round(b / 10, 1), len(v), _us(_pct(v, 0.5)), _us(_pct(v, 0.99))] for b, v in sorted(buckets.items())]
    ratio = _ratio(_pct(before, 0.99), _pct(after, 0.99))
    figures = _plot_lines(out, "fig1_switchover", "Append latency per 100 ms, bootstrap -> NativeLoglet",
                          {"p50": [(r[0], r[2] / 1000) for r in rows], "p99": [(r[0], r[3] / 1000) for r in rows]},
                          "time (s)", "latency (ms)", logy=True, marks=[(switch_at, "switch")])
    return _result(1, f"p99 before / after = {ratio}x (p99 {_us(_pct(before, 0.99))} -> {_us(_pct(after, 0.99))} us)",
                   ["t (s)", "appends", "p50 us", "p99 us"], rows, figures,
                   {"p99_before_over_after": ratio, "p50_before_over_after": _ratio(_pct(before, 0.5), _pct(after, 0.5))},
                   f"4 appenders through the VirtualLog; reconfig_extend at {switch_at:.2f} s took {1000 * (switched_at - switch_at):.0f} ms. "
                   "The paper measured reads and multi-puts of a production database; here, appends.",
                   switch_s=round(switch_at, 3))


# -------------------------------------------------------------------------- 2. disaggregation


async def disaggregation(s: Settings, out: Path) -> dict[str, Any]:
    from delos_ref.bench.append import _loop
    from delos_ref.bench.kv import _put, _worker
    from delos_ref.db import ClientOptions, KvClient
    from delos_ref.process import open_client
    import itertools
    import random

    rows: list[list[Any]] = []
    series: dict[str, list[tuple[float, float]]] = {}
    for layout, extra in (("converged", ()), ("disaggregated", ("--logservers", "3"))):
        with local_cluster("paper", "tcp", 3, extra) as cfg:
            async with open_client(cfg, "paper") as client:
                ids = cfg.with_role("acceptor")  # the database replicas live on the core (acceptor) nodes
                tables = [KvClient(client.endpoint, ids[i % len(ids):] + ids[: i % len(ids)], f"{client.node_id}-{i}", options=ClientOptions(call_timeout_s=30.0)) for i in range(max(s.loads))]
                await tables[0].put("warm", "up")
                meter = Meter(None, len(s.loads), s.seconds, 0.3)
                for k in s.loads:
                    r = await _loop("put", _worker(_put, itertools.cycle(tables[:k]), random.Random(7)), k, k, s.seconds, meter)
                    rows.append([layout, k, r["ops_per_s"], r["p50_us"], r["p99_us"]])
                    series.setdefault(layout, []).append((r["ops_per_s"], (r["p99_us"] or 0) / 1000))
    best = {layout: max(x for x, _ in pts) for layout, pts in series.items()}
    ratio = _ratio(best.get("disaggregated"), best.get("converged"))
    figures = _plot_lines(out, "fig2_disaggregation", "Database puts: converged vs disaggregated", series, "puts/s", "p99 (ms)", logy=True)
    return _result(2, f"peak puts/s disaggregated / converged = {ratio}x", ["layout", "clients", "puts/s", "p50 us", "p99 us"], rows, figures,
                   {"disaggregated_over_converged": ratio},
                   "Both layouts on the same machine: on few cores the disaggregated layout's 3 extra processes share the "
                   "same CPUs, so it cannot show the paper's gain, which came from separate machines.")


# ------------------------------------------------------------------- 3. and 4. striped loglets


async def _striped(s: Settings, stripes: int, sharded: bool) -> dict[str, Any]:
    from delos_ref.bench import append

    return await append.run(transport="tcp", loglet="striped", seconds=s.seconds, stripes=stripes, sharded=sharded)


async def sequencer(s: Settings, out: Path) -> dict[str, Any]:
    res = await _striped(s, s.stripes, sharded=False)
    return _striped_result(3, res, out, "fig3_sequencer", "Appends: StripedLoglet, rotating sequencer")


async def scaling(s: Settings, out: Path) -> dict[str, Any]:
    res = await _striped(s, s.shards, sharded=True)
    return _striped_result(4, res, out, "fig4_scaling", "Appends: sharded stripes")


def _striped_result(n: int, res: dict[str, Any], out: Path, name: str, title: str) -> dict[str, Any]:
    rows = [[r["case"], r["outstanding"], r["ops_per_s"], r["p50_us"], r["p99_us"], r.get("cpu_us_per_op", {}).get("total")] for r in res["results"]]
    busiest = {(b["case"], b["outstanding"]): b for b in res.get("busiest", [])}
    for row in rows:
        b = busiest.get((row[0], row[1]))
        row += [b["busiest"] if b else None, b["vs_native"] if b else None]
    series: dict[str, list[tuple[float, float]]] = {}
    for r in res["results"]:
        series.setdefault(f"{r['outstanding']} outstanding", []).append((r["stripes"] if r["case"] != "native" else 0, r["ops_per_s"]))
    top = max(r["outstanding"] for r in res["results"])
    native = next(r["ops_per_s"] for r in res["results"] if r["case"] == "native" and r["outstanding"] == top)
    widest = max((r for r in res["results"] if r["case"] != "native" and r["outstanding"] == top), key=lambda r: r["stripes"])
    ratio = _ratio(widest["ops_per_s"], native)
    figures = _plot_lines(out, name, title, series, "stripes (0: one NativeLoglet)", "appends/s", integer_x=True)
    return _result(n, f"{widest['case']} / native at {top} outstanding = {ratio}x appends/s", ["case", "outstanding", "appends/s", "p50 us", "p99 us", "cpu us/append", "busiest", "busiest vs native"],
                   rows, figures, {f"{widest['case']}_over_native": ratio}, res["note"])


# ---------------------------------------------------------------------- 5. virtualisation cost


async def virtualisation(s: Settings, out: Path) -> dict[str, Any]:
    from delos_ref.loglet.native import NativeLoglet, NativeOptions
    from delos_ref.process import open_client, virtuallog_on

    lat: dict[tuple[str, str], list[float]] = {}
    with local_cluster("paper", "tcp", 3) as cfg:
        async with open_client(cfg, "paper") as client:
            vlog = virtuallog_on(cfg, client, deadline_s=5.0)
            chain = await vlog.refresh()
            direct = NativeLoglet(client, vlog.registry.config(chain.active), options=NativeOptions())
            for _ in range(20):
                await vlog.append(ENTRY)
            ops = {
                ("append", "virtuallog"): lambda: vlog.append(ENTRY), ("append", "loglet"): lambda: direct.append(ENTRY),
                ("check_tail", "virtuallog"): vlog.check_tail, ("check_tail", "loglet"): direct.check_tail,
                ("read_next", "virtuallog"): lambda: vlog.read_next(5, 6), ("read_next", "loglet"): lambda: direct.read_next(5, 6),
            }
            rounds = 5
            for _ in range(rounds):  # alternating: both paths see the same machine state
                for key, op in ops.items():
                    for _ in range(max(1, s.samples // rounds)):
                        a = time.perf_counter()
                        await op()
                        lat.setdefault(key, []).append(time.perf_counter() - a)
    rows, ratios = [], {}
    for kind in ("append", "check_tail", "read_next"):
        v, d = lat[(kind, "virtuallog")], lat[(kind, "loglet")]
        rows.append([kind, len(v), _us(_pct(d, 0.5)), _us(_pct(v, 0.5)), _us(_pct(d, 0.99)), _us(_pct(v, 0.99)), round((_pct(v, 0.99) - _pct(d, 0.99)) * 1e6, 1)])
        ratios[f"{kind}_p99_virtuallog_over_loglet"] = _ratio(_pct(v, 0.99), _pct(d, 0.99))
    figures = _plot_cdfs(out, "fig5_virtualisation", "Latency through the VirtualLog vs the loglet directly",
                         {kind: {"VirtualLog": [x * 1e6 for x in lat[(kind, "virtuallog")]], "NativeLoglet": [x * 1e6 for x in lat[(kind, "loglet")]]} for kind in ("append", "check_tail", "read_next")},
                         "latency (us)")
    head = ", ".join(f"{r[0]} {r[6]:+.0f} us" for r in rows)
    return _result(5, f"p99 added by the VirtualLog: {head}", ["operation", "samples", "loglet p50 us", "VirtualLog p50 us", "loglet p99 us", "VirtualLog p99 us", "p99 added us"],
                   rows, figures, ratios, "1 outstanding, 100-byte entries, alternating rounds of the six cases on one client.")


# ----------------------------------------------------------------------- 6. reconfiguration


async def reconfiguration(s: Settings, out: Path) -> dict[str, Any]:
    from delos_ref.loglet.native import NativeLogletConfig
    from delos_ref.process import open_client, virtuallog_on

    took: dict[str, list[float]] = {"extend": [], "modify": [], "truncate": []}
    windows: list[tuple[str, float, float]] = []
    done: list[float] = []
    with local_cluster("paper", "tcp", 3) as cfg:
        async with open_client(cfg, "paper") as client:
            vlog = virtuallog_on(cfg, client, deadline_s=5.0, user="reconfigurer")
            other = virtuallog_on(cfg, client, deadline_s=5.0, user="appender")
            await other.append(ENTRY)
            stop = trio.Event()

            async def appender() -> None:
                while not stop.is_set():
                    await other.append(ENTRY)
                    done.append(time.perf_counter())

            async def timed(kind: str, op: Callable[[], Any]) -> None:
                a = time.perf_counter()
                await op()
                b = time.perf_counter()
                took[kind].append(b - a)
                windows.append((kind, a, b))
                await trio.sleep(0.05)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(appender)
                await trio.sleep(0.3)
                nodes = cfg.with_role("sequencer")
                for i in range(s.reconfigs):
                    config = NativeLogletConfig(f"paper-{secrets.token_hex(4)}", nodes[i % len(nodes)], tuple(cfg.with_role("logserver")))
                    await timed("extend", lambda: vlog.reconfig_extend(config))
                    chain = await vlog.refresh()
                    sealed = len(chain.segments) - 2  # the segment the extend closed: point it at its own loglet again
                    await timed("modify", lambda: vlog.reconfig_modify(sealed, vlog.registry.config(chain.segments[sealed])))
                    await timed("truncate", lambda: _truncate_all(vlog))
                stop.set()
    gaps = [b - a for a, b in zip(done, done[1:])]
    usual = statistics.median(gaps) if gaps else None
    gap_of: dict[str, list[float]] = {k: [] for k in took}
    for kind, a, b in windows:
        overlapping = [y - x for x, y in zip(done, done[1:]) if y >= a and x <= b]
        if overlapping:
            gap_of[kind].append(max(overlapping))
    rows = [[k, len(v), _ms(_pct(v, 0.5)), _ms(_pct(v, 0.99)), _ms(max(v) if v else None), _ms(_pct(gap_of[k], 0.5)), _ms(max(gap_of[k]) if gap_of[k] else None)] for k, v in took.items()]
    figures = _plot_cdfs(out, "fig6_reconfiguration", "Reconfiguration latency and the append gap",
                         {"reconfiguration": {k: [x * 1000 for x in v] for k, v in took.items()}, "append gap during it": {k: [x * 1000 for x in v] for k, v in gap_of.items()}},
                         "ms")
    return _result(6, f"p50 extend {rows[0][2]} ms, modify {rows[1][2]} ms, truncate {rows[2][2]} ms; append gap p50 during extend {rows[0][5]} ms (usual {_ms(usual)} ms)",
                   ["kind", "n", "p50 ms", "p99 ms", "max ms", "append gap p50 ms", "append gap max ms"], rows, figures,
                   {"extend_gap_over_usual": _ratio(_pct(gap_of["extend"], 0.5), usual)},
                   "Another client appends with 1 outstanding throughout; its append gap is the longest time between two of its "
                   "completed appends that overlaps the reconfiguration. extend seals, so that client meets the seal and rolls "
                   "forward; modify (a sealed segment pointed at its own loglet again) and truncate (drop the sealed segments) "
                   "only write the chain.", usual_gap_ms=_ms(usual))


async def _truncate_all(vlog: Any) -> bool:
    """``reconfig_truncate`` of every sealed segment (the trim point: the active one's start)."""
    return await vlog.reconfig_truncate((await vlog.refresh()).active.start)


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 2)


# ------------------------------------------------------------------------ 7. ZooKeeper, etcd


async def peers_curves(s: Settings, out: Path) -> dict[str, Any]:
    from delos_ref.bench import compare

    res = await compare.run(with_peers=list(compare.PEERS), clients=s.compare_clients, rounds=s.compare_rounds, seconds=s.compare_seconds, client_check=s is FULL)
    rows = [[m["system"], m["clients"], m["ops_per_s"], m["p50_us"], m["p99_us"], m["client_cpu_us_per_op"], m["server_cpu_us_per_op"]] for m in res["medians"]]
    series = {sys: [(m["ops_per_s"], (m["p99_us"] or 0) / 1000) for m in res["medians"] if m["system"] == sys] for sys in res["systems"]}
    figures = _plot_lines(out, "fig7_zookeeper_etcd", "Puts: throughput vs p99 (3 servers, fsync, 100 B)", series, "puts/s", "p99 (ms)", logy=True,
                          hmarks=[(15.0, "the paper's 15 ms p99 bound")])
    peak = {sys: max((m["ops_per_s"] for m in res["medians"] if m["system"] == sys), default=None) for sys in res["systems"]}
    ratios = {f"delos_over_{p}_peak": _ratio(peak.get("delos-ref"), peak.get(p)) for p in res["systems"][1:]}
    head = ", ".join(f"{sys} {peak[sys]:.0f}" for sys in res["systems"]) + " peak puts/s"
    absent = {**res["missing"], **res["failed"]}
    missing = "; ".join(absent.values())
    return _result(7, head + (f" (not compared: {', '.join(absent)})" if absent else ""),
                   ["system", "clients", "puts/s", "p50 us", "p99 us", "client cpu us/put", "servers cpu us/put"], rows, figures, ratios,
                   res["note"] + (f" Not compared here: {missing}" if missing else ""), versions=res["versions"], compare=res)


# ------------------------------------------------------------------------------ the report


RUNNERS: dict[int, Callable[[Settings, Path], Any]] = {1: switchover, 2: disaggregation, 3: sequencer, 4: scaling, 5: virtualisation, 6: reconfiguration, 7: peers_curves}


def _plot_lines(out: Path, name: str, *args: Any, **kwargs: Any) -> list[Path]:
    from delos_ref.bench import plots

    return plots.lines(out, name, *args, **kwargs) if plots.available() else []


def _plot_cdfs(out: Path, name: str, *args: Any, **kwargs: Any) -> list[Path]:
    from delos_ref.bench import plots

    return plots.cdfs(out, name, *args, **kwargs) if plots.available() else []


async def run(*, out: Path, quick: bool = False, only: list[int] | None = None, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Run the experiments, write ``out/report.md`` and ``out/results.json``; return the results.
    An experiment whose cluster fails to start is reported as failed (``error``), and the rest
    run."""
    import json

    settings = QUICK if quick else FULL
    picked = only or sorted(EXPERIMENTS)
    out.mkdir(parents=True, exist_ok=True)
    results, started = [], time.time()
    load_before = os.getloadavg()
    for i, n in enumerate(picked):
        a = time.perf_counter()
        try:
            res = await RUNNERS[n](settings, out)
        except BenchError as e:  # its cluster did not start: the others may still run
            res = _result(n, f"failed: {e}", [], [], [], {}, str(e), error=str(e))
        res["seconds"] = round(time.perf_counter() - a, 1)
        results.append(res)
        if progress is not None:
            progress((i + 1) / len(picked))
    report = {
        "bench": "paper", "quick": quick, "machine": machine(), "date": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "load_average": [round(x, 2) for x in load_before], "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "experiments": results,
    }
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / "report.md").write_text(markdown(report, out))
    return report


def markdown(report: dict[str, Any], out: Path) -> str:
    m = report["machine"]
    lines = [
        "# The Delos paper's evaluation, rerun with delos-ref", "",
        f"`delos-ref bench paper{' --quick' if report['quick'] else ''}`, {report['date']}, on {m['cpus']} cores ({m['cpu']}), "
        f"Python {m['python']}, {m['platform']}; load average {report['load_average']} before, {report['load_average_after']} after. "
        "Every system ran on this one machine over loopback: these are not the paper's machines, and numbers taken "
        "on a loaded machine are not benchmarks.", "",
        "| # | experiment | the paper | delos-ref here | figure |", "|---|---|---|---|---|",
    ]
    for e in report["experiments"]:
        fig = next((Path(f).name for f in e["figures"] if f.endswith(".png")), None)
        lines.append(f"| {e['n']} | {e['title']} | {e['paper']} | {e['headline']} | {f'[{fig}]({fig})' if fig else '(no plots extra)'} |")
    for e in report["experiments"]:
        lines += ["", f"## {e['n']}. {e['title']}", "", f"**Paper:** {e['paper']}. **Here:** {e['headline']} ({e['seconds']} s).", ""]
        for f in e["figures"]:
            if f.endswith(".png"):
                lines += [f"![{e['title']}]({Path(f).name})", ""]
        if e.get("versions"):
            lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in e["versions"].items()), ""]
        if e["columns"]:
            lines += ["| " + " | ".join(e["columns"]) + " |", "|" + "---|" * len(e["columns"])]
            lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in e["rows"]]
        lines += ["", e["note"]]
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:g}"
    return str(v)


__all__ = ["EXPERIMENTS", "PAPER", "QUICK", "FULL", "parse_only", "run", "markdown"]
