"""``delos-ref lab``: graded labs -- write one protocol rule yourself (``delos_ref/labs/``).

* ``lab list``: the labs, each with the rule it removes and the module it lives in;
* ``lab start NAME [--dir WORK]``: write the module to WORK with the rule replaced by a TODO;
* ``lab check NAME [--dir WORK]``: grade WORK's version (tables, sweep, linearizability,
  trace); exit 0 only on a full pass, 1 otherwise;
* ``lab solution NAME``: print the project's own code for the rule.

Exit 2 for bad usage: an unknown lab, a missing WORK (or its module), a module that does not
compile.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from cli.common import USAGE, fail, out, print_json

DEFAULT_WORK = Path("delos-lab")
WorkOpt = typer.Option(DEFAULT_WORK, "--dir", metavar="WORK", help="The lab's work directory (your version of the module, at its path in the project).")

lab_app = typer.Typer(
    help="Graded labs: write one protocol rule of delos-ref yourself; `check` grades it.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _lab(name: str) -> Any:
    from delos_ref import labs

    try:
        return labs.lab(name)
    except labs.LabUsageError as e:
        raise fail(str(e), USAGE)


@lab_app.command("list", epilog="Example: delos-ref lab list")
def list_labs(json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """The labs, in the order of a course: each removes one rule from the real code."""
    from delos_ref.labs import LABS

    rows = [{"name": lb.name, "rule": lb.title, "module": lb.path, "paper": lb.paper, "workload": lb.workload, "specs": list(lb.specs)} for lb in LABS]
    if json_out:
        print_json({"labs": rows})
        return
    for r in rows:
        out.print(f"{r['name']:<13} {r['rule']}  ({r['module']})", markup=False, highlight=False)


@lab_app.command(epilog="Example: delos-ref lab start acceptor --dir delos-lab")
def start(
    name: str = typer.Argument(..., help="The lab (see `delos-ref lab list`)."),
    work: Path = WorkOpt,
    force: bool = typer.Option(False, "--force", help="Start afresh over a module already started (your work in it is lost)."),
) -> None:
    """Write the lab's module to WORK with the rule replaced by a TODO that states it."""
    from delos_ref import labs

    lb = _lab(name)
    if work.exists() and not work.is_dir():
        raise fail(f"--dir {work}: not a directory", USAGE)
    try:
        path = labs.start(lb.name, work, force=force)
    except labs.LabStateError as e:
        raise fail(str(e))
    out.print(f"wrote {path}: write the rule at each '# TODO (lab {lb.name})'", markup=False, highlight=False)
    out.print(f"then: delos-ref lab check {lb.name} --dir {work}", markup=False, highlight=False)


@lab_app.command(epilog="Example: delos-ref lab check acceptor --dir delos-lab")
def check(
    name: str = typer.Argument(..., help="The lab (see `delos-ref lab list`)."),
    work: Path = WorkOpt,
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, max=10_000, help="Seeded simulations of the sweep, each graded for the sweep, linearizability and trace parts (default: 20; 8 for the labs on the log and kv workloads, whose runs are longer)."),
    tlc: bool = typer.Option(False, "--tlc", help="Also have TLC replay the first seed's trace against each spec (slow; needs TLA2TOOLS_JAR: see specs/README.md)."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Grade WORK's version of the rule, in order: table tests, a seeded sweep with every
    fault, linearizability, trace validation against the TLA+ spec. Exit 0 on a full pass."""
    from delos_ref import labs

    lb = _lab(name)
    try:
        grade = labs.check(lb.name, work, seeds=seeds, tlc=tlc)
    except labs.LabUsageError as e:
        raise fail(str(e), USAGE)
    except labs.LabStateError as e:
        raise fail(str(e))
    if json_out:
        print_json(dict(grade, passed=labs.passed(grade)))
    else:
        _print_grade(lb.name, grade)
    if not labs.passed(grade):
        raise typer.Exit(1)


def _print_grade(name: str, grade: dict[str, Any]) -> None:
    say = lambda text: out.print(text, markup=False, highlight=False)  # noqa: E731
    say(f"lab {name}: grading {grade['module_file']}")
    failing = []
    for p in grade["parts"]:
        if p["total"] == 0:
            say(f"  {p['part']:<16} -      ({p.get('note', 'nothing to grade')})")
            continue
        mark = "ok" if p["passed"] == p["total"] else "FAIL"
        say(f"  {p['part']:<16} {p['passed']}/{p['total']}  {mark}")
        if p["first_failure"]:
            failing.append(p)
    if not failing:
        say(f"lab {name}: PASS")
        return
    say(f"first failure ({failing[0]['part']}): {failing[0]['first_failure']}")
    seeded = next((p for p in failing if p["replay"]), None)
    if seeded is not None:
        if seeded is not failing[0]:
            say(f"first failing seed ({seeded['part']}): {seeded['first_failure']}")
        say(f"replay: {seeded['replay']}")
        chart = _chart_command(grade, seeded.get("seed"))
        if chart:
            say(f"chart:  {chart}")
    say(f"lab {name}: not yet")


def _chart_command(grade: dict[str, Any], seed: int | None) -> str | None:
    """The chart of the failing seed, when this build has ``delos-ref chart``."""
    from cli.main import app

    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    if "chart" not in names or seed is None:
        return None
    return f"DELOS_LAB={grade['work']} delos-ref chart --workload {grade['workload']} --seed {seed} --out {grade['workload']}-{seed}.svg"


@lab_app.command(epilog="Example: delos-ref lab solution acceptor")
def solution(name: str = typer.Argument(..., help="The lab (see `delos-ref lab list`).")) -> None:
    """Print the project's own code for the rule (what `start` removed)."""
    from delos_ref import labs

    lb = _lab(name)
    for i, text in enumerate(labs.solution_of(lb.name)):
        # Verbatim (never wrapped): it is code to read or paste.
        sys.stdout.write(f"# {lb.path}, region {i + 1} of lab {lb.name}:\n{text}\n")
