"""What every ``delos-ref`` command shares: the consoles, one-line errors, JSON output, the
``--dir``/``--json`` options."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

from delos_ref import cluster

out = Console()
err = Console(stderr=True)

DirOpt = typer.Option(cluster.DEFAULT_DIR, "--dir", help="Cluster directory (holds cluster.json and each node's data).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` as one line on stderr; the exit to raise (``raise fail(...)``)."""
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def sole_error(e: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The one exception of ``kinds`` inside ``e``, unwrapping the single-member exception
    groups trio's nurseries wrap errors in; None if ``e`` is something else."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e if isinstance(e, kinds) else None
