"""``delos-ref kv``: the database from the command line (put, get, delete, cas, scan, txn).

Each command connects to the cluster in ``--dir`` as a fresh client, talks to replica
``--node`` first (then the other replicas if it does not answer), prints the result, and
exits 0. Exit codes as every command (``cli/common.py``): 1 for a failed operation (no cluster
running, an unknown node, no replica answering within ``--timeout``, an absent key for
``get``, a compare that did not hold for ``cas``/``txn``; a write whose outcome is unknown
says so), 2 for bad usage (a key or value over its size limit, a bad range), 3 for ``kv
status`` when some replicas do not answer.

Size limits: a key is 1 to 1,024 bytes of UTF-8, a value at most 65,536 bytes (64 KiB).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import typer

from cli.common import INTERRUPTED, PARTIAL, USAGE, DirOpt, fail, os_message, sole_error, timeout_option
from delos_ref import cluster
from delos_ref.db.table import MAX_KEY_BYTES, MAX_VALUE_BYTES

kv_app = typer.Typer(
    help="The replicated key-value table (the Delos database) of a running cluster.\n\n"
    f"Keys are 1 to {MAX_KEY_BYTES:,} bytes of UTF-8, values at most {MAX_VALUE_BYTES:,} bytes (64 KiB).\n\n"
    "Example: delos-ref kv put greeting hello && delos-ref kv get greeting",
    rich_markup_mode=None,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

NodeOpt = typer.Option(None, "--node", help="Replica to ask first (default: the first replica).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
StaleOpt = typer.Option(False, "--stale", help="Read this replica's table as it is, without syncing with the log (may miss recent writes).")
TimeoutOpt = timeout_option(10.0, "Seconds the whole command may take; each replica it tries gets at most a third of it.")
KeyArg = typer.Argument(..., help=f"The key: 1 to {MAX_KEY_BYTES:,} bytes of UTF-8.")


def _plain(message: str) -> str:
    """An RPC error without the transport's accounting: no send counts, and no "outcome
    unknown" (this module says that itself, of writes only)."""
    return re.sub(r" \(\d+ send\(s\)\)|: outcome unknown", "", message)


def _session(directory: Path, node: Optional[str]) -> tuple[cluster.ClusterConfig, list[str]]:
    """The cluster's config and the replicas to try, ``node`` first; exit 1 if no cluster
    runs in ``directory`` or ``node`` is not one of its replicas."""
    from delos_ref import ops

    try:
        cfg = cluster.load(directory)
        ops.require_running(str(directory), cfg)
        if node is not None:
            cfg.node(node)
    except (cluster.ClusterError, ops.OpError) as e:
        raise fail(str(e)) from None
    replicas = ops.replica_nodes(cfg)
    if not replicas:
        raise fail(f"no node of the cluster in {directory} hosts a database replica")
    if node is not None and node not in replicas:
        raise fail(f"node {node} hosts no database replica; choose among {', '.join(replicas)}")
    first = node or replicas[0]
    return cfg, [first] + [r for r in replicas if r != first]


def _run(directory: Path, node: Optional[str], timeout_s: float, op: Callable[[Any], Awaitable[Any]], *, write: bool = False) -> Any:
    """Run ``op(client)`` on a fresh :class:`~delos_ref.db.client.KvClient`, bounded by
    ``timeout_s``; every failure is one line and an exit code."""
    import secrets

    import trio

    from delos_ref.db.client import BadRequest, ClientOptions, KvClient, KvError, WriteOutcomeUnknown
    from delos_ref.process import open_client
    from delos_ref.rpc import NO_RETRY, RESEND

    cfg, order = _session(directory, node)
    options = ClientOptions(call_timeout_s=timeout_s / 3, retry=RESEND if cfg.transport == "udp" else NO_RETRY)

    async def main() -> Any:
        async with open_client(cfg, "kv") as client_node:
            client = KvClient(client_node.endpoint, order, f"{client_node.node_id}-{secrets.token_hex(4)}", options=options)
            with trio.move_on_after(timeout_s):
                return True, await op(client)
            return False, await _not_answering(client_node, cfg)

    try:
        done, result = trio.run(main)
    except BaseException as group:
        e = sole_error(group, (KvError, KeyboardInterrupt))
        if e is None:
            raise
        if isinstance(e, KeyboardInterrupt):
            raise fail("interrupted: " + ("the write's outcome is unknown (it may take effect, once)" if write else "nothing was changed"), INTERRUPTED) from None
        if isinstance(e, BadRequest):
            raise fail(str(e), USAGE) from None
        if isinstance(e, WriteOutcomeUnknown):
            raise fail(f"outcome unknown (the write may take effect, once): {_plain(str(e))}") from None
        raise fail(_plain(str(e))) from None
    if not done:
        down = f"; not answering now: {', '.join(result)}" if result else "; every node answers a ping (overloaded? try a larger --timeout)"
        if write:
            raise fail(f"outcome unknown (the write may take effect, once): no replica acknowledged it within {timeout_s:g}s (tried {', '.join(order)}){down}")
        raise fail(f"no replica answered within {timeout_s:g}s (tried {', '.join(order)}){down}")
    return result


async def _not_answering(client_node: Any, cfg: cluster.ClusterConfig) -> list[str]:
    """The nodes that do not answer a ping now (replicas, or the LogServers they need)."""
    from delos_ref.process import ping_all

    answers = await ping_all(client_node, cfg, timeout_s=1.0)
    return [n for n, a in answers.items() if a is None]


def _check_sizes(key: str, value: Optional[str] = None) -> None:
    """Refuse a key or value over its limit before connecting (bad usage, exit 2)."""
    k = len(key.encode())
    if not 1 <= k <= MAX_KEY_BYTES:
        raise fail(f"a key is 1 to {MAX_KEY_BYTES:,} bytes of UTF-8; this one has {k:,}", USAGE)
    if value is not None and len(value.encode()) > MAX_VALUE_BYTES:
        raise fail(f"a value is at most {MAX_VALUE_BYTES:,} bytes (64 KiB); this one has {len(value.encode()):,}", USAGE)


def _show(as_json: bool, data: dict[str, Any], text: str) -> None:
    sys.stdout.write((json.dumps(data) if as_json else text) + "\n")


@kv_app.command(epilog="\b\nExamples:\n  delos-ref kv put user/1 alice --node n2\n  delos-ref kv put photo/1 --value-file photo.b64\n  echo -n hello | delos-ref kv put greeting --value-file -")
def put(
    key: str = KeyArg,
    value: Optional[str] = typer.Argument(None, help=f"The value: at most {MAX_VALUE_BYTES:,} bytes (64 KiB) of UTF-8. Or --value-file."),
    value_file: Optional[Path] = typer.Option(None, "--value-file", help="Take the value from this file ('-': stdin), as it is (UTF-8 text).", metavar="PATH"),
    directory: Path = DirOpt,
    node: Optional[str] = NodeOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Set KEY to VALUE (acknowledged once durable in the log and applied by the replica)."""
    value = _value(value, value_file)
    _check_sizes(key, value)
    _run(directory, node, timeout_s, lambda t: t.put(key, value), write=True)
    _show(as_json, {"key": key, "value": value, "ok": True}, "ok")


def _value(value: Optional[str], value_file: Optional[Path]) -> str:
    """The value of ``put``: the argument, or the file's (stdin's) text."""
    if (value is None) == (value_file is None):
        raise fail("give VALUE or --value-file PATH (one of them)", USAGE)
    if value is not None:
        return value
    try:
        data = sys.stdin.buffer.read() if str(value_file) == "-" else value_file.read_bytes()  # type: ignore[union-attr]
    except OSError as e:
        raise fail(f"--value-file: {os_message(e)}", USAGE) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise fail(f"--value-file: a value is UTF-8 text, and {value_file} is not (base64-encode binary data)", USAGE) from None


@kv_app.command(epilog="\b\nExamples:\n  delos-ref kv get user/1\n  delos-ref kv get user/1 --stale --node n3 --json")
def get(key: str = KeyArg, directory: Path = DirOpt, node: Optional[str] = NodeOpt, stale: bool = StaleOpt, as_json: bool = JsonOpt, timeout_s: float = TimeoutOpt) -> None:
    """Print KEY's value (linearizable unless --stale); exit 1 if the key is absent."""
    _check_sizes(key)
    value = _run(directory, node, timeout_s, lambda t: t.get(key, stale=stale))
    _show(as_json, {"key": key, "value": value}, "(absent)" if value is None else value)
    if value is None:
        raise typer.Exit(1)


@kv_app.command(epilog="\b\nExample: delos-ref kv delete user/1")
def delete(key: str = KeyArg, directory: Path = DirOpt, node: Optional[str] = NodeOpt, as_json: bool = JsonOpt, timeout_s: float = TimeoutOpt) -> None:
    """Remove KEY (no error if it is absent)."""
    _check_sizes(key)
    _run(directory, node, timeout_s, lambda t: t.delete(key), write=True)
    _show(as_json, {"key": key, "ok": True}, "ok")


@kv_app.command(epilog="\b\nExamples:\n  delos-ref kv cas lock '' me --absent   # take the lock if nobody holds it\n  delos-ref kv cas counter 1 2")
def cas(
    key: str = KeyArg,
    expected: str = typer.Argument(..., help="The value KEY must hold (ignored with --absent)."),
    new: str = typer.Argument(..., help="The value to set (at most 64 KiB)."),
    absent: bool = typer.Option(False, "--absent", help="Expect KEY to be absent instead of EXPECTED."),
    directory: Path = DirOpt,
    node: Optional[str] = NodeOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Set KEY to NEW iff it holds EXPECTED; prints true/false; exit 1 when it did not."""
    _check_sizes(key, new)
    done = _run(directory, node, timeout_s, lambda t: t.cas(key, None if absent else expected, new), write=True)
    _show(as_json, {"key": key, "swapped": done}, "true" if done else "false")
    if not done:
        raise typer.Exit(1)


@kv_app.command(epilog="\b\nExamples:\n  delos-ref kv scan --prefix user/\n  delos-ref kv scan --start a --end m --limit 10 --json")
def scan(
    prefix: Optional[str] = typer.Option(None, "--prefix", help="Keys starting with this."),
    start: Optional[str] = typer.Option(None, "--start", help="First key (inclusive)."),
    end: Optional[str] = typer.Option(None, "--end", help="Last key (exclusive); after --start."),
    limit: int = typer.Option(100, "--limit", help="At most this many pairs (1..1000)."),
    directory: Path = DirOpt,
    node: Optional[str] = NodeOpt,
    stale: bool = StaleOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Print the pairs with --prefix, or with --start <= key < --end, in key order."""
    if prefix is not None and (start is not None or end is not None):
        raise fail("give --prefix or --start/--end, not both", USAGE)
    if start is not None and end is not None and end < start:
        raise fail(f"empty range: --end {end!r} sorts before --start {start!r}", USAGE)
    if not 1 <= limit <= 1000:
        raise fail(f"--limit is 1..1000, got {limit}", USAGE)
    pairs = _run(directory, node, timeout_s, lambda t: t.scan(prefix=prefix, start=start, end=end, limit=limit, stale=stale))
    _show(as_json, {"pairs": [list(p) for p in pairs]}, "\n".join(f"{k}\t{v}" for k, v in pairs) or "(none)")


@kv_app.command(epilog="\b\nExample: delos-ref kv txn --if balance/a=10 --put balance/a=5 --put balance/b=5 --if-absent lock --delete tmp")
def txn(
    conditions: list[str] = typer.Option([], "--if", help="KEY=VALUE that must hold (repeatable)."),
    absent: list[str] = typer.Option([], "--if-absent", help="KEY that must be absent (repeatable)."),
    puts: list[str] = typer.Option([], "--put", help="KEY=VALUE to set (repeatable)."),
    deletes: list[str] = typer.Option([], "--delete", help="KEY to remove (repeatable)."),
    directory: Path = DirOpt,
    node: Optional[str] = NodeOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """All or nothing: if every condition holds, apply every write; prints true/false; exit 1
    when a condition did not hold (then nothing was written)."""
    try:
        conds = [tuple(c.split("=", 1)) for c in conditions] + [(k, None) for k in absent]
        writes = [tuple(p.split("=", 1)) for p in puts] + [(k, None) for k in deletes]
        if any(len(x) != 2 for x in conds + writes):
            raise ValueError
    except ValueError:
        raise fail("--if and --put take KEY=VALUE", USAGE) from None
    if not writes:
        raise fail("a txn needs at least one --put or --delete", USAGE)
    for k, v in conds + writes:
        _check_sizes(k, v)
    done = _run(directory, node, timeout_s, lambda t: t.txn(conditions=conds, writes=writes), write=True)
    _show(as_json, {"committed": done}, "true" if done else "false")
    if not done:
        raise typer.Exit(1)


@kv_app.command(epilog="\b\nExample: delos-ref kv status --json")
def status(directory: Path = DirOpt, as_json: bool = JsonOpt, timeout_s: float = timeout_option(2.0, "Seconds to wait for each replica's answer.")) -> None:
    """Each replica's applied log position and state digest (equal digests at an equal
    position: the replicas hold the same table). Only nodes that host a replica are listed
    (in the disaggregated layout, not the LogServer-only nodes ls1..). Exit 3 when some
    replicas do not answer, 1 when none does."""
    _, replicas = _session(directory, None)

    async def ask(table: Any) -> list[dict[str, Any]]:
        import trio

        from delos_ref.rpc import DefiniteFailure, UnknownOutcome

        rows: list[dict[str, Any]] = [{"replica": n} for n in replicas]

        async def one(row: dict[str, Any]) -> None:
            try:
                st = await table.status(row["replica"], digest=True)
                row.update(applied=st.applied, digest=st.digest, snapshots_restored=st.snapshots_restored)
            except (DefiniteFailure, UnknownOutcome) as e:
                row["error"] = _plain(str(e))

        async with trio.open_nursery() as nursery:  # all at once: a dead replica costs one timeout
            for row in rows:
                nursery.start_soon(one, row)
        return rows

    # Each replica gets the whole --timeout (they are asked in parallel); the bound is wider.
    rows = _run(directory, None, 3 * timeout_s, ask)
    text = "\n".join(f"{r['replica']}\t" + (f"applied {r['applied']}\t{r['digest'][:16]}" if "digest" in r else f"error: {r['error']}") for r in rows)
    _show(as_json, {"replicas": rows}, text)
    answered = sum(1 for r in rows if "error" not in r)
    if answered == 0:
        raise fail("no replica answered")
    if answered < len(rows):
        raise typer.Exit(PARTIAL)


@kv_app.command(epilog="\b\nExample: delos-ref kv trim --node n1")
def trim(directory: Path = DirOpt, node: Optional[str] = NodeOpt, as_json: bool = JsonOpt, timeout_s: float = TimeoutOpt) -> None:
    """prefix_trim the log below every replica's durably applied position. Refused, and
    nothing is trimmed, if some replica does not report its position."""
    from delos_ref.db.client import TrimFailed

    async def trim_op(table: Any) -> int:
        try:
            return await table.trim()
        except TrimFailed as e:
            # The replica checks every peer's position before it trims: a refusal then means
            # nothing was trimmed; a replica that did not answer may or may not have trimmed.
            refused = "nothing trimmed" in str(e)
            raise TrimFailed(("nothing was trimmed: " if refused else "trim failed (it may or may not have happened): ") + str(e)) from None

    point = _run(directory, node, timeout_s, trim_op)
    _show(as_json, {"trim_point": point}, f"trimmed below {point}")
