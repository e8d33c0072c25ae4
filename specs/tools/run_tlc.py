"""``make tlc`` and ``make tlc-mutants``: run TLC on the routine models, or on every mutant.

    python specs/tools/run_tlc.py models [MODEL...]     # default: every routine model
    python specs/tools/run_tlc.py mutants [NAME...]     # default: every mutant in specs/mutants.py
    python specs/tools/run_tlc.py sany                  # every specs/*.tla through SANY

One line per model or mutant. Exit status: 0 when every model completes with no error
(every mutant is caught, every module parses), 1 otherwise, 2 when TLC is not available
(the message says how to get it). TLC_WORKERS (default 2) and TLC_TIMEOUT_S (default 600)
are passed on to TLC.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from delos_ref import tlc  # noqa: E402


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def models(tools: tlc.Tools, names: list[str], workers: str, timeout_s: float) -> int:
    print(f"{'model':<26} {'distinct states':>15} {'generated':>11} {'depth':>5} {'time':>7}  verdict")
    failed = 0
    for name in names or tlc.routine_models():
        r = tlc.run_model(tools, name, workers=workers, timeout_s=timeout_s)
        verdict = r.verdict if r.ok else f"{r.verdict.upper()} {r.invariant or ''} {r.message}".strip()
        print(f"{name:<26} {_n(r.distinct):>15} {_n(r.generated):>11} {_n(r.depth):>5} {r.seconds:>6.1f}s  {verdict}", flush=True)
        failed += not r.ok
    return 1 if failed else 0


def mutants(tools: tlc.Tools, names: list[str], workers: str, timeout_s: float) -> int:
    table = tlc.load_mutants()
    unknown = set(names) - {m.name for m in table}
    if unknown:
        print(f"unknown mutant(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    chosen = [m for m in table if not names or m.name in names]
    print(f"{'mutant':<30} {'model':<24} {'invariant violated':<24} {'cex':>4} {'time':>7}  verdict")
    survived = 0
    for m in chosen:
        o = tlc.run_mutant(tools, m, workers=workers, timeout_s=timeout_s)
        r = o.result
        print(f"{m.name:<30} {m.model:<24} {r.invariant or '-':<24} {_n(r.trace_length):>4} {r.seconds:>6.1f}s  {o.verdict}", flush=True)
        survived += not o.caught
    print(f"{len(chosen) - survived} of {len(chosen)} mutants caught")
    return 1 if survived else 0


def parse_all(tools: tlc.Tools) -> int:
    if not tools.has_sany:
        print("SANY needs TLA2TOOLS_JAR (a `tlc` command alone does not give it)", file=sys.stderr)
        return 2
    bad = 0
    for path in sorted(tlc.SPECS.glob("*.tla")):
        r = tlc.sany(tools, path)
        print(f"{path.name:<28} {'parses' if r.ok else 'FAILS'}")
        if not r.ok:
            print("    " + r.message.replace("\n", "\n    "))
            bad += 1
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("models", "mutants", "sany"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        tools = tlc.find_tools()
    except tlc.ToolsMissing as e:
        print(e, file=sys.stderr)
        return 2
    workers = os.environ.get("TLC_WORKERS", "2")
    timeout_s = float(os.environ.get("TLC_TIMEOUT_S", "600"))
    if argv[0] == "sany":
        return parse_all(tools)
    run = models if argv[0] == "models" else mutants
    return run(tools, argv[1:], workers, timeout_s)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
