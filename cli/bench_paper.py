"""``delos-ref bench compare`` and ``delos-ref bench paper``: the side by side with ZooKeeper
and etcd, and the paper's evaluation (``delos_ref/bench/compare.py``, ``paper.py``). Called by
``bench`` in ``cli/main.py``; only this module prints their results."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rich.table import Table

from cli.common import err, fail, out, print_json, sole_error

DEFAULT_COMPARE_OUT = Path("bench-compare")


def run_bench(make: Callable[[Callable[[float], None] | None], Any], label: str, as_json: bool) -> Any:
    """Run the benchmark coroutine ``make(progress)`` in trio, with a progress bar unless
    JSON; one-line errors: bad usage exits 2, a failed run 1."""
    import trio
    from rich.progress import Progress

    from delos_ref.bench import BadBenchArgument, BenchError

    try:
        if as_json:
            return trio.run(lambda: make(None))
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task(label, total=1.0)
            return trio.run(lambda: make(lambda f: progress.update(task, completed=f)))
    except BadBenchArgument as e:
        raise fail(str(e), 2)
    except BaseException as e:
        known = sole_error(e, (BenchError,))
        if known is None:
            raise
        raise fail(str(known)) from None


def compare(with_peers: str, clients: str, rounds: int, seconds: float, out_dir: Path | None, as_json: bool, op: str = "put") -> None:
    from delos_ref.bench import BadBenchArgument, compare as bench

    try:
        names, ks = bench.parse_peers(with_peers), bench.parse_clients(clients)
        bench.parse_op(op)
        if rounds < 1:
            raise BadBenchArgument(f"--rounds must be at least 1 (got {rounds})")
    except BadBenchArgument as e:
        raise fail(str(e), 2)
    _, missing = bench.available(names)
    for why in missing.values():
        err.print(f"warning: {why}; comparing without it", markup=False, highlight=False)
    result = run_bench(lambda progress: bench.run(with_peers=names, clients=ks, rounds=rounds, seconds=seconds, progress=progress, op=op), "bench compare", as_json)
    target = out_dir or DEFAULT_COMPARE_OUT
    result["plot"] = [str(p) for p in bench.plot(result, target)]
    if as_json:
        print_json(result)
    else:
        _print_compare(result)
    if result["failed"]:
        raise fail("; ".join(result["failed"].values()))


def _print_compare(result: dict[str, Any]) -> None:
    m = result["machine"]
    op = result.get("op", "put")
    unit = "puts" if op == "put" else "ops"
    table = Table(title=f"bench compare --op {op} on {m.get('cpu', '?')} ({m.get('cpus', '?')} cpus): every round", title_justify="left")
    for col in ("round", "system", "clients", "procs", f"{unit}/s", "p50 us", "p99 us", f"client cpu us/{unit[:-1]}", f"servers cpu us/{unit[:-1]}"):
        table.add_column(col)
    for i, rnd in enumerate(result["rounds"], 1):
        for system, rows in rnd.items():
            for r in rows:
                table.add_row(str(i), system, str(r["clients"]), str(r["processes"]), _num(r["ops_per_s"]), _num(r["p50_us"]), _num(r["p99_us"]), _num(r["client_cpu_us_per_op"]), _num(r["server_cpu_us_per_op"]))
    out.print(table)
    ratios = Table(title="delos-ref / peer: each round, and the median", title_justify="left")
    for col in ("peer", "clients", f"{unit}/s ratio", "median", "p50 ratio", "median"):
        ratios.add_column(col)
    for r in result["ratios"]:
        ratios.add_row(r["peer"], str(r["clients"]), " / ".join(_num(x, 2) for x in r["throughput"]), _num(r["throughput_median"], 2), " / ".join(_num(x, 2) for x in r["p50"]), _num(r["p50_median"], 2))
    out.print(ratios)
    if op != "put":
        out.print("operations: " + "; ".join(f"{k}: {v}" for k, v in result["operations"].items()), markup=False, highlight=False)
    for c in result["client_check"]:
        out.print(f"client check, {c['system']}: {unit}/s with 2 load processes / 1 = {' / '.join(_num(x, 2) for x in c['two_over_one'])} (median {_num(c['median'], 2)})", markup=False, highlight=False)
    for why in [*result["missing"].values(), *result["failed"].values()]:
        out.print(f"not compared: {why}", markup=False, highlight=False)
    out.print("versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()), markup=False, highlight=False)
    out.print("plot: " + (", ".join(result["plot"]) or "none (install the plots extra: pip install -e '.[plots]')"), markup=False, highlight=False)


def paper(quick: bool, only: str | None, out_dir: Path | None, as_json: bool) -> None:
    from delos_ref.bench import BadBenchArgument, paper as bench, plots

    try:
        picked = bench.parse_only(only)
        if out_dir is None:
            raise BadBenchArgument("bench paper needs --out DIR (where report.md and the figures go)")
        if out_dir.exists() and not out_dir.is_dir():
            raise BadBenchArgument(f"--out {out_dir}: not a directory")
    except BadBenchArgument as e:
        raise fail(str(e), 2)
    if not plots.available():
        err.print("warning: matplotlib is not installed (the plots extra): the report has tables only", markup=False, highlight=False)
    result = run_bench(lambda progress: bench.run(out=out_dir, quick=quick, only=picked, progress=progress), "bench paper", as_json)
    failed = [f"experiment {e['n']}: {e['error']}" for e in result["experiments"] if e.get("error")]
    if as_json:
        print_json(result)
    else:
        _print_paper(result, quick, out_dir)
    if failed:
        raise fail("; ".join(failed))


def _print_paper(result: dict[str, Any], quick: bool, out_dir: Path) -> None:
    table = Table(title=f"bench paper{' --quick' if quick else ''}: {out_dir / 'report.md'}", title_justify="left")
    for col in ("#", "experiment", "paper", "here", "s"):
        table.add_column(col)
    for e in result["experiments"]:
        table.add_row(str(e["n"]), e["title"], e["paper"], e["headline"], str(e["seconds"]))
    out.print(table)


def _num(x: Any, digits: int = 0) -> str:
    return "-" if x is None else f"{x:.{digits}f}"
