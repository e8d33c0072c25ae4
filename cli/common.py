"""What every ``delos-ref`` command shares: the consoles, one-line errors, the exit codes, JSON
output, the shared options and their validation, and the top-level error handler.

**Exit codes** (the table in the README):

====  =====================================================================================
0     the operation succeeded
1     the operation failed: no cluster running, an unknown node, a position past the tail,
      a quorum that did not answer, a cluster directory that cannot be used, an absent key
2     bad usage: the command line is wrong whatever the cluster's state (an unknown option,
      a value out of range, options that exclude each other, an input file that cannot be read)
3     partial: some nodes (or replicas) answered and some did not (``status``, ``kv status``)
130   interrupted by Ctrl-C in the middle of an operation (what was done is reported)
====  =====================================================================================

Every error is one line on stderr, ``error: ...``, never a traceback: commands raise
:func:`fail`, and :class:`Group` (the app's click group) turns usage errors and the OS errors
that a command line can cause (a file that is not a directory, a read-only directory, a file
that is not text) into that one line.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from delos_ref import cluster

OK, FAILED, USAGE, PARTIAL, INTERRUPTED = 0, 1, 2, 3, 130


def _console(stderr: bool = False) -> Console:
    """A terminal gets rich's usual console (tables fit its width); a pipe or a file gets
    text that is never wrapped or cut (``soft_wrap``, no width limit), so that a replay
    command, a path or a benchmark's case name can be copied as it is."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, soft_wrap=True, width=100_000)


out = _console()
err = _console(stderr=True)

# ------------------------------------------------------------- where the cluster is: --dir or --cluster

#: The commands that act on local node processes (signals, pids, DIR/<id>/): they need a
#: ``--dir`` cluster and refuse ``--cluster FILE``, whose nodes run on other hosts.
LOCAL_ONLY = {"up": "starts local node processes", "down": "stops local node processes", "kill": "signals a local node process",
              "pause": "signals a local node process", "resume": "signals a local node process", "restart": "restarts a local node process",
              "logs": "reads DIR/<id>/node.log",
              # `plugin add`: on a deployed cluster, add the module to loglet_modules in the
              # cluster file on every host and restart each node there (docs/deployment.md)
              "add": "records a loglet plugin and restarts local node processes"}
#: Where :meth:`Group.parse_args` notes which of the two flags the command line used.
_FLAG = "delos_ref.cluster_flag"


def cluster_source(ctx: typer.Context, value: Path) -> Path:
    """The callback of ``--dir DIR`` / ``--cluster FILE`` (one option, two names): the path
    every command hands to ``cluster.load``, which reads a directory's ``cluster.json`` or a
    cluster file (``delos_ref/deploy.py``). A directory given to ``--cluster`` and ``--cluster``
    given to a command of :data:`LOCAL_ONLY` are usage errors (exit 2); a file given to
    ``--dir`` is a cluster directory that cannot be used (exit 1)."""
    flag = ctx.meta.get(_FLAG)
    if flag == "--cluster":
        if ctx.info_name in LOCAL_ONLY:
            raise typer.BadParameter(f"`{ctx.info_name}` {LOCAL_ONLY[ctx.info_name]}: it needs a local --dir cluster (on a deployed cluster, act on the node's host, e.g. with systemctl)", param_hint="--cluster")
        if not value.exists():
            raise typer.BadParameter(f"{value}: no such file (write a cluster file with `delos-ref init`)", param_hint="--cluster")
        if value.is_dir():
            raise typer.BadParameter(f"{value} is a directory; --cluster takes a cluster file (from `delos-ref init`), --dir a cluster directory", param_hint="--cluster")
    elif value.is_file():  # a cluster directory that cannot be used: exit 1, as before --cluster existed
        raise fail(f"--dir {value} is a file, not a cluster directory (for a cluster file from `delos-ref init`, use --cluster {value})")
    return value


DirOpt = typer.Option(
    cluster.DEFAULT_DIR, "--dir", "--cluster", metavar="DIR|FILE", callback=cluster_source,
    help="Where the cluster is: --dir DIR, a local cluster's directory (holds cluster.json and each node's data), or --cluster FILE, a cluster file from `delos-ref init` (nodes on any hosts).",
)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")


def fail(message: str, code: int = FAILED) -> typer.Exit:
    """Print ``error: message`` as one line on stderr; the exit to raise (``raise fail(...)``)."""
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(_one_line(message))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _one_line(message: str) -> str:
    return " ".join(message.split()) if "\n" in message else message


def message_of(e: BaseException) -> str:
    """An exception's message as one line, whole: a KeyError's own text (``str`` of a
    KeyError adds quotes), every other exception's ``str``, never with a quote cut off."""
    if isinstance(e, KeyError) and len(e.args) == 1:
        return str(e.args[0])
    return str(e)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def sole_error(e: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The one exception of ``kinds`` inside ``e``, unwrapping the single-member exception
    groups trio's nurseries wrap errors in; None if ``e`` is something else."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e if isinstance(e, kinds) else None


def run_or_fail(fn: Any, kinds: tuple[type[BaseException], ...]) -> Any:
    """``trio.run(fn)``; an error of ``kinds`` (even inside trio's one-member exception
    groups) becomes the command's one-line failure (exit 1), anything else propagates."""
    import trio

    try:
        return trio.run(fn)
    except BaseException as e:
        known = sole_error(e, kinds)
        if known is None:
            raise
        raise fail(str(known)) from None


# ------------------------------------------------------------------------- option types


def positive_seconds(value: float | None) -> float | None:
    """The callback of every ``--timeout``-like option: a finite number of seconds above 0
    (0, negative numbers, ``nan`` and ``inf`` are a usage error, exit 2)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a positive number of seconds, got {value:g}")
    return value


def timeout_option(default: float, help: str = "Seconds to wait for each operation before giving up (saying which nodes are missing).") -> Any:
    """A ``--timeout SECONDS`` option, validated by :func:`positive_seconds`."""
    return typer.Option(default, "--timeout", help=help, callback=positive_seconds, metavar="SECONDS")


# ------------------------------------------------------------------ the error handler


class Group(TyperGroup):
    """The ``delos-ref`` app's click group: runs a command and turns what escapes it into one
    line on stderr with the exit code of the table above (see the module docstring)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        from typer import _click

        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else OK
        except _click.exceptions.NoArgsIsHelpError:
            code = USAGE  # the help was printed
        except _click.exceptions.UsageError as e:
            hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            code = _report(e.format_message() + hint, e.exit_code)
        except _click.exceptions.ClickException as e:
            code = _report(e.format_message(), e.exit_code)
        except typer.Abort:
            code = _report("aborted", INTERRUPTED)
        except KeyboardInterrupt:
            code = _report("interrupted", INTERRUPTED)
        except UnicodeDecodeError as e:
            code = _report(f"the input is not UTF-8 text ({e.reason} at byte {e.start}); give a text file", FAILED)
        except OSError as e:
            code = _report(os_message(e), FAILED)
        if not standalone_mode:
            return code
        sys.exit(code)


    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Note which of ``--dir`` and ``--cluster`` the command line gives (they name one
        option, see :func:`cluster_source`); both together are a usage error."""
        given = {a.split("=", 1)[0] for a in args[: args.index("--") if "--" in args else len(args)]} & {"--dir", "--cluster"}
        if len(given) == 2:
            from typer import _click

            raise _click.exceptions.UsageError("give --dir DIR (a local cluster) or --cluster FILE (a cluster file), not both", ctx)
        ctx.meta[_FLAG] = given.pop() if given else None
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        """Run the command; Ctrl-C that the command does not handle itself is one line too
        (typer would exit 130 silently)."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise fail("interrupted", INTERRUPTED) from None


def _report(message: str, code: int) -> int:
    fail(message, code)
    return code


def os_message(e: OSError) -> str:
    """``strerror: 'path'`` (with both quotes) for an OSError about a file."""
    what = e.strerror or type(e).__name__
    if e.filename is not None:
        return f"{what}: '{e.filename}'" + (f" -> '{e.filename2}'" if e.filename2 is not None else "")
    return what
