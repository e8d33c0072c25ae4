"""The operator commands of ``delos-ref``: talk to a running cluster and control its processes.

Log commands (through a VirtualLog client, see ``delos_ref/ops.py``): ``append``, ``read``,
``tail``, ``reconfigure``, ``seal``, ``trim``, ``migrate`` (to cold storage), ``skip``. Process commands (``delos_ref/cluster.py``):
``kill`` (SIGKILL), ``pause`` / ``resume`` (SIGSTOP / SIGCONT), ``restart``, ``logs``.

Every command takes ``--dir`` (or ``--cluster FILE``, a cluster across hosts: see
``cli/common.py``; the process commands and ``logs`` refuse it) and ``--json``; every failure is one line on stderr with the exit
codes of ``cli/common.py``: 1 for a failed operation (no cluster running, unknown node, a
position past the tail or trimmed, a stale or foreign directory, a quorum that does not answer
within ``--timeout``, naming the nodes missing), 2 for bad usage (a value out of range, options
that exclude each other), 130 for an ``append`` interrupted by Ctrl-C (it says what landed).

Entries are bytes. ``read`` prints them escaped, one per line, so that every entry is one
line whatever it holds (see :func:`escaped`); ``--format raw`` prints the bytes as they are.
"""

from __future__ import annotations

import base64
import binascii
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import typer

from cli.common import INTERRUPTED, USAGE, DirOpt, JsonOpt, fail, os_message, out, print_json, sole_error, timeout_option
from delos_ref import cluster, deploy

TimeoutOpt = timeout_option(5.0)


def _on_log(directory: Path, timeout_s: float, body: Callable[[Any], Awaitable[Any]], explain: Callable[[str], str] = str, interrupted: Optional[str] = None) -> Any:
    """Run ``body(session)`` on a VirtualLog client of the cluster in ``directory``; a
    failure is one line, ``explain(message)``. Ctrl-C: with ``interrupted``, that line and
    exit 130; without, KeyboardInterrupt for the command to handle."""
    import trio

    from delos_ref import ops

    async def main() -> Any:
        async with ops.session(str(directory), timeout_s=timeout_s) as s:
            return await body(s)

    try:
        return trio.run(main)
    except BaseException as e:
        known = sole_error(e, (ops.OpError, KeyboardInterrupt))
        if known is None:
            raise
        if isinstance(known, KeyboardInterrupt):
            if interrupted is not None:
                raise fail(f"interrupted: {interrupted}", INTERRUPTED) from None
            raise KeyboardInterrupt from None  # Ctrl-C: the commands that follow end quietly
        raise fail(explain(str(known))) from None


async def until_ctrl_c(fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
    """Run ``fn(*args)`` until it returns or SIGINT arrives; on SIGINT cancel it and raise
    KeyboardInterrupt here. For commands that run until Ctrl-C (``read --follow``): the signal
    comes in as a message that cancels the work, so the interrupt is never raised in the
    middle of some task. (Left to trio's own delivery, ``read --follow`` twice did not end
    after Ctrl-C in CI runs, with every task waiting.)"""
    import signal

    import trio

    interrupted = False
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def work() -> None:
                await fn(*args)
                nursery.cancel_scope.cancel()  # done: stop waiting for a signal

            nursery.start_soon(work)
            async for _ in signals:
                interrupted = True
                nursery.cancel_scope.cancel()
                break
    if interrupted:
        raise KeyboardInterrupt


#: What ``escaped`` writes for the characters that would make a line ambiguous.
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escaped(data: bytes) -> str:
    """An entry as one unambiguous line of text: UTF-8 text as it is, except a backslash
    (``\\\\``), newline (``\\n``), tab (``\\t``), carriage return (``\\r``), other control
    characters and bytes that are not UTF-8 (``\\xNN``) -- as Python's ``repr`` writes them,
    without the quotes. So ``read`` prints one entry per line, and equal lines mean equal entries."""
    parts = []
    for ch in data.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if ch in _ESCAPES:
            parts.append(_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, kept by surrogateescape
            parts.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or 0x7F <= code < 0xA0:
            parts.append(f"\\x{code:02x}")
        else:
            parts.append(ch)
    return "".join(parts)


# ------------------------------------------------------------------------------ append


def append(
    data: Optional[list[str]] = typer.Argument(None, metavar="DATA", help="Entries to append (UTF-8 text; base64 with --base64). None: one entry per line of stdin."),
    file: Optional[Path] = typer.Option(None, "--file", help="Append one entry: this file's bytes as they are, newlines and all ('-': all of stdin).", metavar="PATH"),
    b64: bool = typer.Option(False, "--base64", help="Each DATA argument (or stdin line) is base64: append the bytes it decodes to."),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Append entries to the shared log, in order; print their positions.

    Each entry is acknowledged only once it is durable on a majority of the active loglet's
    LogServers. From stdin, each line is one entry, without its line end (\\n or \\r\\n);
    --file appends a whole file (binary data too) as one entry. JSON: {"positions": [...]}.

    A failure says how many entries landed. Ctrl-C says what landed, then exits 130 (JSON:
    {"positions": [...], "interrupted": true}).
    """
    from delos_ref import ops

    entries = _entries(data, file, b64)
    landed: list[int] = []
    try:
        # A failure before the first append (no MetaStore quorum, say) must still say that
        # nothing landed: ops.append's own failures already count what did.
        _on_log(directory, timeout_s, lambda s: ops.append(s, entries, on_position=landed.append),
                explain=lambda message: message if " appended" in message else f"{message}; {_appended(landed, len(entries))}")
    except KeyboardInterrupt:
        if as_json:
            print_json({"positions": landed, "interrupted": True})
        in_flight = "; the entry in flight may have landed too" if len(landed) < len(entries) else ""
        raise fail(f"interrupted: {_appended(landed, len(entries))}{in_flight}", INTERRUPTED) from None
    if as_json:
        print_json({"positions": landed})
    elif len(landed) == 1:
        out.print(f"appended at position {landed[0]}", highlight=False, markup=False)
    else:
        out.print(f"appended {len(landed)} entries at positions {landed[0]}..{landed[-1]}", highlight=False, markup=False)


def _appended(positions: list[int], total: int) -> str:
    """``appended 779 of 1000 entries at positions 39..817`` (or ``appended nothing``)."""
    if not positions:
        return f"appended none of {total} entries"
    where = f"position {positions[0]}" if len(positions) == 1 else f"positions {positions[0]}..{positions[-1]}"
    return f"appended {len(positions)} of {total} entries at {where}"


def _entries(data: Optional[list[str]], file: Optional[Path], b64: bool) -> list[bytes]:
    """The entries ``append`` was given: DATA arguments, a --file, or stdin's lines."""
    if file is not None:
        if data:
            raise fail("give DATA arguments or --file, not both", USAGE)
        if b64:
            raise fail("--file appends the file's bytes as they are: drop --base64", USAGE)
        if str(file) == "-":
            return [_stdin().read()]
        try:
            return [file.read_bytes()]
        except OSError as e:  # a file named on the command line that cannot be read: usage, as click does
            raise fail(f"--file: {os_message(e)}", USAGE) from None
    if data:
        raw = [d.encode() for d in data]
    elif sys.stdin is None or sys.stdin.isatty():
        raise fail("nothing to append: give DATA arguments, --file PATH, or pipe lines on stdin", USAGE)
    else:
        try:
            raw = [_strip_line_end(line) for line in _stdin()]  # bytes: any entry, text or not
        except KeyboardInterrupt:
            raise fail("interrupted while reading stdin: appended nothing", INTERRUPTED) from None
        if not raw:
            raise fail("nothing to append: stdin was empty", USAGE)
    if not b64:
        return raw
    try:
        return [base64.b64decode(d, validate=True) for d in raw]
    except (binascii.Error, ValueError) as e:
        raise fail(f"--base64: an entry is not base64 ({e})", USAGE) from None


def _stdin() -> Any:
    return sys.stdin.buffer


def _strip_line_end(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(b"\n") else line


# -------------------------------------------------------------------------------- read


def read(
    start: int = typer.Option(0, "--from", help="First position to read."),
    stop: Optional[int] = typer.Option(None, "--to", help="Read below this position (default: the tail)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep reading new entries as they are appended (Ctrl-C stops)."),
    text_format: str = typer.Option("escaped", "--format", help="Text output: escaped (one line per entry: \\\\, \\n, \\t, \\r, \\xNN as in Python) or raw (the bytes as they are).", metavar="escaped|raw"),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Read entries [--from, --to) of the shared log, in position order.

    Text: one line per entry, position TAB entry, the entry escaped as in Python's repr
    without the quotes (a backslash, newline, tab, CR, other control characters and bytes
    that are not UTF-8 become \\\\, \\n, \\t, \\r, \\xNN), so every entry is one line;
    --format raw writes the bytes as they are.

    JSON: {"entries": [{"position", "data"}]} (``data_b64`` instead of ``data`` for an entry
    that is not UTF-8). With --follow, JSON is one {"position", "data"} object per line.
    """
    import json

    from delos_ref import ops

    if start < 0 or (stop is not None and stop < start):
        raise fail(f"bad position: need 0 <= --from <= --to (got --from {start}" + (f" --to {stop})" if stop is not None else ")"), USAGE)
    if follow and stop is not None:
        raise fail("--follow reads without an end: drop --to", USAGE)
    if text_format not in ("escaped", "raw"):
        raise fail(f"--format is escaped or raw (got {text_format!r})", USAGE)

    def show(pos: int, data: bytes) -> None:
        if as_json:
            sys.stdout.write(json.dumps(ops.entry_json(pos, data)) + "\n")
            sys.stdout.flush()
        elif text_format == "raw":
            sys.stdout.flush()
            sys.stdout.buffer.write(f"{pos}\t".encode() + data + b"\n")
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(f"{pos}\t{escaped(data)}\n")
            sys.stdout.flush()

    async def stream(s: Any) -> None:
        async for pos, data in ops.follow(s, start):
            show(pos, data)

    async def body(s: Any) -> list[dict[str, Any]]:
        if follow:
            await until_ctrl_c(stream, s)
        got = []
        async for pos, data in ops.read(s, start, stop):
            if as_json:
                got.append(ops.entry_json(pos, data))
            else:
                show(pos, data)
        return got

    try:
        entries = _on_log(directory, timeout_s, body)
    except KeyboardInterrupt:
        if follow:
            return  # Ctrl-C is how --follow ends
        raise fail("interrupted", INTERRUPTED) from None
    if as_json:
        print_json({"entries": entries})


# -------------------------------------------------------------------------------- tail


def tail(directory: Path = DirOpt, as_json: bool = JsonOpt, timeout_s: float = TimeoutOpt) -> None:
    """The tail: the first unwritten position of the log, and whether the active loglet is
    sealed (after `seal`, until a client that meets the seal rolls the chain forward).

    JSON: {"position", "sealed"}.
    """
    from delos_ref import ops

    result = _on_log(directory, timeout_s, ops.active_tail)
    if as_json:
        print_json(result)
    else:
        out.print(f"tail {result['position']}" + (" (active loglet sealed)" if result["sealed"] else ""), highlight=False, markup=False)


# ------------------------------------------------------------------- reconfigurations


def _loglet_nodes(segment: dict) -> str:
    """Who serves a segment's loglet, in one line: sequencer(s) and LogServers, or acceptors."""
    params = segment["params"]
    if segment["kind"] == "striped":
        return "; ".join(f"stripe {j}: sequencer {st.get('sequencer')}, LogServers {','.join(st.get('logservers', []))}" for j, st in enumerate(params.get("stripes", [])))
    if segment["kind"] == "native":
        return f"sequencer {params.get('sequencer')}, LogServers {','.join(params.get('logservers', []))}"
    if "acceptors" in params:
        return f"acceptors {','.join(params.get('acceptors', []))}"
    return ", ".join(f"{k} {v}" for k, v in params.items() if k != "loglet_id")  # a plugin's kind: its config


def reconfigure(
    loglet: str = typer.Option("native", "--loglet", help="Kind of the new segment's loglet: native, bootstrap, striped (a StripedLoglet of NativeLoglets), or the kind of one of the cluster's loglet plugins (`up --loglet-module`, `plugin add`)."),
    sequencer: Optional[str] = typer.Option(None, "--sequencer", help="Node that sequences the new loglet (default: the active one's)."),
    logservers: Optional[str] = typer.Option(None, "--logservers", help="Comma list of LogServer nodes (default: the active loglet's; striped: every LogServer node)."),
    stripes: int = typer.Option(2, "--stripes", help="With --loglet striped: the number of stripes (1..16)."),
    sharded: bool = typer.Option(False, "--sharded", help="With --loglet striped: split the LogServers into disjoint sets, one per stripe (default: every stripe on all of them, sequencers rotating)."),
    sequencers: Optional[str] = typer.Option(None, "--sequencers", help="With --loglet striped: comma list of the stripes' sequencer nodes, one per stripe (default: the sequencer nodes in turn)."),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = timeout_option(10.0, "Seconds to wait before giving up."),
) -> None:
    """Extend the chain onto a fresh loglet (reconfig_extend): seal the active loglet, learn
    its sealed tail, install a chain whose new segment starts there, fetch the chain. From a
    bootstrap loglet to a native one, this is the hot swap of the paper.

    JSON: {"installed", "loglet", "chain", "tail"}; installed is false if a racing
    reconfiguration won (the chain then shows the winner's segment).
    """
    from delos_ref import ops

    servers = [s.strip() for s in logservers.split(",") if s.strip()] if logservers is not None else None
    if servers is not None and not servers:
        raise fail("--logservers: give at least one node id", USAGE)
    seqs = [n.strip() for n in sequencers.split(",") if n.strip()] if sequencers is not None else None
    striping = {"stripes": stripes, "sharded": sharded, "sequencers": seqs} if loglet == "striped" else None
    if loglet != "striped" and (sharded or sequencers is not None):
        raise fail("--sharded and --sequencers go with --loglet striped", USAGE)
    result = _on_log(directory, timeout_s, lambda s: ops.reconfigure(s, loglet, sequencer, servers, striping),
                     interrupted="the reconfiguration may or may not have happened (see `delos-ref status`)")
    if as_json:
        print_json(result)
        return
    new = result["chain"]["segments"][-1]
    what = "installed" if result["installed"] else "lost a race; the chain now has"
    out.print(
        f"{what} segment {len(result['chain']['segments']) - 1} from position {new['start']}: {new['kind']} loglet "
        f"{new['params'].get('loglet_id')} ("
        + _loglet_nodes(new)
        + f"); chain version {result['chain']['version']}",
        highlight=False,
        markup=False,
    )


def seal(directory: Path = DirOpt, as_json: bool = JsonOpt, timeout_s: float = TimeoutOpt) -> None:
    """Seal the active loglet WITHOUT installing a new chain. The chain still names it as
    active, so the first client that meets the seal -- an append, a database replica's poll
    of the tail, a node's supervisor -- waits briefly for a successor, then rolls the chain
    forward onto a clone of the sealed loglet: watch it with `status`.

    JSON: {"segment_start", "loglet", "tail": {"position", "sealed"}}.
    """
    from delos_ref import ops

    result = _on_log(directory, timeout_s, ops.seal, interrupted="the loglet may or may not be sealed (see `delos-ref tail`)")
    if as_json:
        print_json(result)
    else:
        out.print(
            f"sealed loglet {result['loglet'].get('loglet_id')} at tail {result['tail']['position']}; the first client that meets the seal "
            "(an append, a replica's poll, a supervisor) rolls the chain forward: see `delos-ref status`",
            highlight=False,
        markup=False,
        )


def _non_negative_position(value: int) -> int:
    if value < 0:
        raise typer.BadParameter(f"bad position: the trim point must be >= 0 (got {value})")
    return value


def trim(
    position: int = typer.Argument(..., help="Trim point (>= 0): positions below it may be discarded.", callback=_non_negative_position),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Prefix-trim the log below POSITION (at most the tail), and drop the chain's segments
    that lie wholly below it (reconfig_truncate). Reads below POSITION then fail as trimmed.

    JSON: {"trim_point", "segments_dropped", "base"}.
    """
    from delos_ref import ops

    result = _on_log(directory, timeout_s, lambda s: ops.trim(s, position), interrupted=f"the trim below {position} may or may not have happened")
    if as_json:
        print_json(result)
    else:
        out.print(f"trimmed below {result['trim_point']}; {result['segments_dropped']} segment(s) dropped from the chain", highlight=False, markup=False)


# ------------------------------------------------------------------ cold storage, skip


ColdDirOpt = typer.Option(None, "--cold-dir", help="The cold store: a directory on any filesystem (default DIR/cold/; a shared or mounted one works too: the chain names it by its absolute path). Required with --cluster: a path every node's host mounts.")


def migrate(
    below: Optional[int] = typer.Option(None, "--below", help="Move every sealed segment that lies wholly below this position."),
    auto: bool = typer.Option(False, "--auto", help="Keep only the last --keep sealed segments on the LogServers (one round now; every node's supervisor then repeats it, see the README)."),
    keep: int = typer.Option(1, "--keep", help="With --auto: how many of the latest sealed segments stay on the LogServers (>= 0)."),
    cold_dir: Optional[Path] = ColdDirOpt,
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = timeout_option(60.0, "Seconds to wait before giving up (a migration copies every entry it moves)."),
) -> None:
    """Move sealed segments to cold storage: copy each one's entries into immutable,
    SHA-256-checked files, read every entry back and compare, then reconfig_modify the chain
    so the segment is read from the files; the LogServers then drop those entries. The
    active segment is never moved; a segment moved already is not moved twice.

    JSON: {"below", "cold_dir", "migrated": [{"start", "stop", "copy", "files", "bytes",
    "installed"}], "chain"}.
    """
    from delos_ref import ops

    if (below is None) == (not auto):
        raise fail("give --below POS or --auto --keep N (one of them)", USAGE)
    if keep < 0:
        raise fail(f"--keep must be >= 0 (got {keep})", USAGE)
    if deploy.is_cluster_file(directory):  # nodes on other hosts: no DIR to hold the store or the setting
        if auto:
            raise fail("--auto is a setting the nodes read in a local cluster's DIR: it needs --dir (with --cluster, run `migrate --below POS` when needed)", USAGE)
        if cold_dir is None:
            raise fail("with --cluster, give --cold-dir: a directory every node's host mounts at the same path (the nodes read the cold files)", USAGE)
    if auto:
        _write_auto(directory, keep, cold_dir)
    result = _on_log(directory, timeout_s, lambda s: _bounded(s, ops.migrate(s, below=below, keep=keep if auto else None, cold=ops.cold_dir(str(directory), None if cold_dir is None else str(cold_dir))), "migrate"),
                     interrupted="segments copied so far are either installed or unused (see `delos-ref status`)")
    if as_json:
        print_json(result)
        return
    moved = [m for m in result["migrated"] if m["installed"]]
    if not result["migrated"]:
        out.print(f"nothing to move: no sealed segment lies wholly below {result['below']} outside cold storage", highlight=False, markup=False)
    for m in result["migrated"]:
        what = "moved" if m["installed"] else "copied, but another reconfiguration moved or dropped"
        out.print(f"{what} [{m['start']}, {m['stop']}) -> {m['files']} file(s), {m['bytes']} bytes in {result['cold_dir']} (copy {m['copy']})", highlight=False, markup=False)
    if moved:
        out.print(f"{len(moved)} segment(s) now read from cold storage; chain version {result['chain']['version']}", highlight=False, markup=False)


def _write_auto(directory: Path, keep: int, cold_dir: Optional[Path]) -> None:
    """Record ``--auto --keep N`` for the supervisors (``DIR/cold-auto.json``)."""
    from delos_ref import cluster as _cluster
    from delos_ref.virtuallog.supervisor import write_auto_migrate

    try:
        _cluster.load(directory)
        write_auto_migrate(str(directory), keep, None if cold_dir is None else str(cold_dir.resolve()))
    except _cluster.ClusterError as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"cannot write the --auto setting in {directory}: {os_message(e)}") from None


async def _bounded(s: Any, work: Awaitable[Any], what: str) -> Any:
    import trio

    from delos_ref import ops

    with trio.move_on_after(s.timeout_s):
        return await work
    raise ops.OpError(f"{what} did not finish within {s.timeout_s:g}s (see `delos-ref status`: every step is either done or not visible)")


def _reason(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("give a reason (it is what every reader of the position sees)")
    if len(value.encode()) > 512:
        raise typer.BadParameter("a reason is at most 512 bytes")
    return value


def _skip_position(value: int) -> int:
    if value < 0:
        raise typer.BadParameter(f"bad position: a position is >= 0 (got {value})")
    return value


def skip(
    position: int = typer.Argument(..., help="The position whose entry is skipped (in a sealed segment).", callback=_skip_position),
    reason: str = typer.Option(..., "--reason", help="Why (every reader of the position sees it).", callback=_reason),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Skip a poison entry: from now on the entry at POSITION reads as a "skipped" marker
    with the reason, and every database replica applies it as the same no-op (the paper's
    removal of a poison entry by editing VirtualLog metadata: reconfig_modify of the sealed
    segment holding it). Only a position in a sealed segment can be skipped: seal the active
    one first with `delos-ref reconfigure`.

    JSON: {"pos", "segment": {"start", "stop", "kind"}, "reason", "version"}.
    """
    from delos_ref import ops

    result = _on_log(directory, timeout_s, lambda s: _bounded(s, ops.skip(s, position, reason), f"skip {position}"), interrupted=f"the skip of {position} may or may not have happened")
    if as_json:
        print_json(result)
    else:
        seg = result["segment"]
        out.print(f"position {position} now reads as skipped ({reason}); segment [{seg['start']}, {seg['stop']}), chain version {result['version']}", highlight=False, markup=False)


# ------------------------------------------------------------------------- processes


def _process_cmd(directory: Path, node_id: str, action: Callable[[cluster.ClusterConfig, str], cluster.NodeSpec], as_json: bool, verb: str) -> None:
    from delos_ref import ops

    try:
        cfg = cluster.load(directory)
        cfg.node(node_id)
        ops.require_running(str(directory), cfg)
        node = action(cfg, node_id)
    except (cluster.ClusterError, ops.OpError) as e:
        raise fail(str(e))
    state = cluster.process_state(node)
    if as_json:
        print_json({"node": node.id, "pid": node.pid, "process": state})
    else:
        out.print(f"{verb} {node.id} (pid {node.pid}): now {state}", highlight=False, markup=False)


def kill(node: str = typer.Argument(..., help="Node id (see `delos-ref status`)."), directory: Path = DirOpt, as_json: bool = JsonOpt) -> None:
    """SIGKILL one node's process: a crash, no clean shutdown (what it synced survives).

    JSON: {"node", "pid", "process"}.
    """
    _process_cmd(directory, node, cluster.kill_node, as_json, "killed")


def pause(node: str = typer.Argument(..., help="Node id."), directory: Path = DirOpt, as_json: bool = JsonOpt) -> None:
    """SIGSTOP one node's process: alive but silent, like a very slow or cut-off node.

    JSON: {"node", "pid", "process"}.
    """
    _process_cmd(directory, node, cluster.pause_node, as_json, "paused")


def resume(node: str = typer.Argument(..., help="Node id."), directory: Path = DirOpt, as_json: bool = JsonOpt) -> None:
    """SIGCONT a paused node.

    JSON: {"node", "pid", "process"}.
    """
    _process_cmd(directory, node, cluster.resume_node, as_json, "resumed")


def restart(
    node: str = typer.Argument(..., help="Node id."),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = timeout_option(20.0, "Seconds to wait for the new process to answer a ping."),
) -> None:
    """Stop one node if it runs (SIGTERM, then SIGKILL), start a new process on its data and
    address, and wait until it answers. Its roles recover their state from LMDB.

    JSON: {"node", "pid", "process"}.
    """
    import trio

    from delos_ref import ops
    from delos_ref.process import open_client, ping

    try:
        cfg = cluster.load(directory)
        cfg.node(node)
        ops.require_running(str(directory), cfg)
        spec = cluster.restart_node(directory, cfg, node)
    except (cluster.ClusterError, ops.OpError) as e:
        raise fail(str(e))

    async def answers() -> bool:
        async with open_client(cfg) as client:
            with trio.move_on_after(timeout_s):
                while await ping(client, node, timeout_s=0.5) is None:
                    if not cluster.pid_alive(spec.pid):
                        return False
                return True
        return False

    if not trio.run(answers):
        _, lines = cluster.log_tail(directory, node, 1)
        raise fail(f"{node} was restarted (pid {spec.pid}) but did not answer within {timeout_s:g}s: {lines[-1] if lines else 'no output'}")
    _process_cmd(directory, node, lambda c, n: c.node(n), as_json, "restarted")


def logs(
    node: str = typer.Argument(..., help="Node id."),
    lines: int = typer.Option(40, "--lines", "-n", help="How many of the last lines (0: all)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (Ctrl-C stops)."),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print the end of one node's log (DIR/<node>/node.log).

    JSON: {"node", "path", "lines": [...]}.
    """
    try:
        cfg = cluster.load(directory)
        cfg.node(node)
        path, text = cluster.log_tail(directory, node, lines)
    except cluster.ClusterError as e:
        raise fail(str(e))
    if as_json:
        print_json({"node": node, "path": str(path), "lines": text})
        return
    for line in text:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if not follow:
        return
    try:
        with open(path, errors="replace") as fp:
            fp.seek(0, 2)
            while True:
                line = fp.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.2)
    except KeyboardInterrupt:
        return


COMMANDS: list[tuple[Callable[..., None], str]] = [  # (command, its --help example)
    (append, "delos-ref append hello world --json     # or: seq 1000 | delos-ref append;  delos-ref append --file photo.jpg"),
    (read, "delos-ref read --from 0 --to 10 --json   # or: delos-ref read --follow"),
    (tail, "delos-ref tail --json"),
    (reconfigure, "delos-ref reconfigure --loglet native --sequencer n2 --logservers n1,n2,n3\n\n  delos-ref reconfigure --loglet striped --stripes 2 --sequencers n1,n2"),
    (seal, "delos-ref seal && delos-ref append x && delos-ref status   # roll-forward finishes the seal"),
    (trim, "delos-ref trim 100"),
    (migrate, "delos-ref migrate --below 100000"),
    (skip, "delos-ref skip 1234 --reason 'crashes every replica (ticket 42)'"),
    (kill, "delos-ref kill n1"),
    (pause, "delos-ref pause n2 && sleep 5 && delos-ref resume n2"),
    (resume, "delos-ref resume n2"),
    (restart, "delos-ref restart n1"),
    (logs, "delos-ref logs n1 --lines 20"),
]


def register(app: typer.Typer) -> None:
    """Add the operator commands to the ``delos-ref`` app."""
    for fn, example in COMMANDS:
        # trim, skip: "-5" is a (refused) position, not an unknown option
        settings = {"ignore_unknown_options": True} if fn in (trim, skip) else None
        # \b: click keeps the example's line as it is (no rewrapping mid-command)
        app.command(epilog=f"\b\nExample: {example}", context_settings=settings)(fn)
