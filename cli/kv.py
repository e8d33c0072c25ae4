"""``delos-ref kv``: the database from the command line (put, get, delete, cas, scan, txn).

Each command connects to the cluster in ``--dir`` as a fresh client, talks to replica
``--node`` first (then the others if it does not answer), prints the result, and exits 0; a
failed operation is one line on stderr and exit 1 (a write whose outcome is unknown says so),
bad usage exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import typer
from rich.console import Console

from delos_ref import cluster

kv_app = typer.Typer(
    help="The replicated key-value table (the Delos database) of a running cluster.\n\n"
    "Example: delos-ref kv put greeting hello && delos-ref kv get greeting",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True)

DirOpt = typer.Option(cluster.DEFAULT_DIR, "--dir", help="Cluster directory (holds cluster.json).")
NodeOpt = typer.Option(None, "--node", help="Replica to ask first (default: the first node).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
StaleOpt = typer.Option(False, "--stale", help="Read this replica's table as it is, without syncing with the log (may miss recent writes).")


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _run(directory: Path, node: Optional[str], op: Callable[[Any], Awaitable[Any]]) -> Any:
    import trio

    from delos_ref.db import connect
    from delos_ref.db.client import BadRequest, KvError, WriteOutcomeUnknown

    async def main() -> Any:
        async with connect(str(directory), node=node) as table:
            return await op(table)

    try:
        return trio.run(main)
    except cluster.ClusterError as e:
        raise _fail(str(e), 2)
    except BadRequest as e:
        raise _fail(str(e), 2)
    except WriteOutcomeUnknown as e:
        raise _fail(f"outcome unknown (the write may take effect, once): {e}")
    except KvError as e:
        raise _fail(str(e))


def _show(as_json: bool, data: dict[str, Any], text: str) -> None:
    sys.stdout.write((json.dumps(data) if as_json else text) + "\n")


@kv_app.command(epilog="Example: delos-ref kv put user/1 alice --node n2")
def put(key: str, value: str, directory: Path = DirOpt, node: Optional[str] = NodeOpt, as_json: bool = JsonOpt) -> None:
    """Set KEY to VALUE (acknowledged once durable in the log and applied by the replica)."""
    _run(directory, node, lambda t: t.put(key, value))
    _show(as_json, {"key": key, "value": value, "ok": True}, "ok")


@kv_app.command(epilog="Examples:\n\n  delos-ref kv get user/1\n\n  delos-ref kv get user/1 --stale --node n3 --json")
def get(key: str, directory: Path = DirOpt, node: Optional[str] = NodeOpt, stale: bool = StaleOpt, as_json: bool = JsonOpt) -> None:
    """Print KEY's value (linearizable unless --stale); exit 1 if the key is absent."""
    value = _run(directory, node, lambda t: t.get(key, stale=stale))
    _show(as_json, {"key": key, "value": value}, "(absent)" if value is None else value)
    if value is None:
        raise typer.Exit(1)


@kv_app.command(epilog="Example: delos-ref kv delete user/1")
def delete(key: str, directory: Path = DirOpt, node: Optional[str] = NodeOpt, as_json: bool = JsonOpt) -> None:
    """Remove KEY (no error if it is absent)."""
    _run(directory, node, lambda t: t.delete(key))
    _show(as_json, {"key": key, "ok": True}, "ok")


@kv_app.command(epilog="Examples:\n\n  delos-ref kv cas lock '' me --absent   # take the lock if nobody holds it\n\n  delos-ref kv cas counter 1 2")
def cas(
    key: str,
    expected: str = typer.Argument(..., help="The value KEY must hold (ignored with --absent)."),
    new: str = typer.Argument(..., help="The value to set."),
    absent: bool = typer.Option(False, "--absent", help="Expect KEY to be absent instead of EXPECTED."),
    directory: Path = DirOpt,
    node: Optional[str] = NodeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Set KEY to NEW iff it holds EXPECTED; prints true/false; exit 1 when it did not."""
    done = _run(directory, node, lambda t: t.cas(key, None if absent else expected, new))
    _show(as_json, {"key": key, "swapped": done}, "true" if done else "false")
    if not done:
        raise typer.Exit(1)


@kv_app.command(epilog="Examples:\n\n  delos-ref kv scan --prefix user/\n\n  delos-ref kv scan --start a --end m --limit 10 --json")
def scan(
    prefix: Optional[str] = typer.Option(None, "--prefix", help="Keys starting with this."),
    start: Optional[str] = typer.Option(None, "--start", help="First key (inclusive)."),
    end: Optional[str] = typer.Option(None, "--end", help="Last key (exclusive)."),
    limit: int = typer.Option(100, "--limit", help="At most this many pairs (1..1000)."),
    directory: Path = DirOpt,
    node: Optional[str] = NodeOpt,
    stale: bool = StaleOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print the pairs with --prefix, or with --start <= key < --end, in key order."""
    if prefix is not None and (start is not None or end is not None):
        raise _fail("give --prefix or --start/--end, not both", 2)
    pairs = _run(directory, node, lambda t: t.scan(prefix=prefix, start=start, end=end, limit=limit, stale=stale))
    _show(as_json, {"pairs": [list(p) for p in pairs]}, "\n".join(f"{k}\t{v}" for k, v in pairs) or "(none)")


@kv_app.command(epilog="Example: delos-ref kv txn --if balance/a=10 --put balance/a=5 --put balance/b=5 --if-absent lock --delete tmp")
def txn(
    conditions: list[str] = typer.Option([], "--if", help="KEY=VALUE that must hold (repeatable)."),
    absent: list[str] = typer.Option([], "--if-absent", help="KEY that must be absent (repeatable)."),
    puts: list[str] = typer.Option([], "--put", help="KEY=VALUE to set (repeatable)."),
    deletes: list[str] = typer.Option([], "--delete", help="KEY to remove (repeatable)."),
    directory: Path = DirOpt,
    node: Optional[str] = NodeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """All or nothing: if every condition holds, apply every write; prints true/false; exit 1
    when a condition did not hold (then nothing was written)."""
    try:
        conds = [tuple(c.split("=", 1)) for c in conditions] + [(k, None) for k in absent]
        writes = [tuple(p.split("=", 1)) for p in puts] + [(k, None) for k in deletes]
        if any(len(x) != 2 for x in conds + writes):
            raise ValueError
    except ValueError:
        raise _fail("--if and --put take KEY=VALUE", 2) from None
    if not writes:
        raise _fail("a txn needs at least one --put or --delete", 2)
    done = _run(directory, node, lambda t: t.txn(conditions=conds, writes=writes))
    _show(as_json, {"committed": done}, "true" if done else "false")
    if not done:
        raise typer.Exit(1)


@kv_app.command(epilog="Example: delos-ref kv status --json")
def status(directory: Path = DirOpt, as_json: bool = JsonOpt) -> None:
    """Each replica's applied log position and state digest (equal digests at an equal
    position: the replicas hold the same table)."""
    cfg_nodes = [n.id for n in cluster.load(directory).nodes] if cluster.config_path(directory).exists() else []
    if not cfg_nodes:
        raise _fail(f"no cluster in {directory}", 2)

    async def ask(table: Any) -> list[dict[str, Any]]:
        from delos_ref.rpc import DefiniteFailure, UnknownOutcome

        rows = []
        for n in cfg_nodes:
            try:
                st = await table.status(n, digest=True)
                rows.append({"replica": n, "applied": st.applied, "digest": st.digest, "snapshots_restored": st.snapshots_restored})
            except (DefiniteFailure, UnknownOutcome) as e:
                rows.append({"replica": n, "error": str(e)})
        return rows

    rows = _run(directory, None, ask)
    text = "\n".join(f"{r['replica']}\t" + (f"applied {r['applied']}\t{r['digest'][:16]}" if "digest" in r else f"error: {r['error']}") for r in rows)
    _show(as_json, {"replicas": rows}, text)
    if any("error" in r for r in rows):
        raise typer.Exit(3)


@kv_app.command(epilog="Example: delos-ref kv trim --node n1")
def trim(directory: Path = DirOpt, node: Optional[str] = NodeOpt, as_json: bool = JsonOpt) -> None:
    """prefix_trim the log below every replica's durably applied position (refused if some
    replica does not answer)."""
    point = _run(directory, node, lambda t: t.trim())
    _show(as_json, {"trim_point": point}, f"trimmed below {point}")
