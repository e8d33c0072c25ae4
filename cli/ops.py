"""The operator commands of ``delos-ref``: talk to a running cluster and control its processes.

Log commands (through a VirtualLog client, see ``delos_ref/ops.py``): ``append``, ``read``,
``tail``, ``reconfigure``, ``seal``, ``trim``. Process commands (``delos_ref/cluster.py``):
``kill`` (SIGKILL), ``pause`` / ``resume`` (SIGSTOP / SIGCONT), ``restart``, ``logs``.

Every command takes ``--dir`` and ``--json``; every failure is one line on stderr with exit
code 1 (2 for bad usage): no cluster running, unknown node, bad position, a stale or foreign
directory, a quorum that does not answer within ``--timeout`` (naming the nodes missing).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import typer

from cli.common import DirOpt, JsonOpt, fail, out, print_json, sole_error
from delos_ref import cluster

TimeoutOpt = typer.Option(5.0, "--timeout", help="Seconds to wait for each operation before giving up (saying which nodes are missing).")


def _on_log(directory: Path, timeout_s: float, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``body(session)`` on a VirtualLog client of the cluster in ``directory``."""
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
            raise KeyboardInterrupt from None  # Ctrl-C: the commands that follow end quietly
        raise fail(str(known)) from None


def _data_text(entry: dict[str, Any]) -> str:
    return entry["data"] if "data" in entry else f"(binary, base64) {entry['data_b64']}"


# ------------------------------------------------------------------------------ append


def append(
    data: Optional[list[str]] = typer.Argument(None, help="Entries to append (UTF-8 text). None: one entry per line of stdin (raw bytes)."),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Append entries to the shared log, in order; print their positions.

    Each entry is acknowledged only once it is durable on a majority of the active loglet's
    LogServers. JSON: {"positions": [...]}.
    """
    from delos_ref import ops

    if data:
        entries = [d.encode() for d in data]
    elif sys.stdin is None or sys.stdin.isatty():
        raise fail("nothing to append: give DATA arguments or pipe lines on stdin", 2)
    else:
        entries = [line.rstrip(b"\n") for line in sys.stdin.buffer]  # bytes: any entry, text or not
    if not entries:
        raise fail("nothing to append: stdin was empty", 2)
    positions = _on_log(directory, timeout_s, lambda s: ops.append(s, entries))
    if as_json:
        print_json({"positions": positions})
    elif len(positions) == 1:
        out.print(f"appended at position {positions[0]}", highlight=False)
    else:
        out.print(f"appended {len(positions)} entries at positions {positions[0]}..{positions[-1]}", highlight=False)


# -------------------------------------------------------------------------------- read


def read(
    start: int = typer.Option(0, "--from", help="First position to read."),
    stop: Optional[int] = typer.Option(None, "--to", help="Read below this position (default: the tail)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep reading new entries as they are appended (Ctrl-C stops)."),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Read entries [--from, --to) of the shared log, in position order.

    JSON: {"entries": [{"position", "data"}]} (``data_b64`` instead of ``data`` for an entry
    that is not UTF-8). With --follow, JSON is one {"position", "data"} object per line.
    """
    import json

    import trio

    from delos_ref import ops

    if start < 0 or (stop is not None and stop < start):
        raise fail(f"bad position: need 0 <= --from <= --to (got --from {start}" + (f" --to {stop})" if stop is not None else ")"), 2)
    if follow and stop is not None:
        raise fail("--follow reads without an end: drop --to", 2)

    def show(pos: int, data: bytes) -> None:
        entry = ops.entry_json(pos, data)
        if as_json:
            sys.stdout.write(json.dumps(entry) + "\n")
            sys.stdout.flush()
        else:
            sys.stdout.write(f"{pos}\t{_data_text(entry)}\n")
            sys.stdout.flush()

    async def body(s: Any) -> list[dict[str, Any]]:
        if follow:
            async for pos, data in ops.follow(s, start):
                show(pos, data)
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
        return
    if as_json:
        print_json({"entries": entries})


# -------------------------------------------------------------------------------- tail


def tail(directory: Path = DirOpt, as_json: bool = JsonOpt, timeout_s: float = TimeoutOpt) -> None:
    """The tail: the first unwritten position of the log, and whether the active loglet is
    sealed (after `seal`: the next append rolls the chain forward).

    JSON: {"position", "sealed"}.
    """
    from delos_ref import ops

    result = _on_log(directory, timeout_s, ops.active_tail)
    if as_json:
        print_json(result)
    else:
        out.print(f"tail {result['position']}" + (" (active loglet sealed)" if result["sealed"] else ""), highlight=False)


# ------------------------------------------------------------------- reconfigurations


def _loglet_nodes(segment: dict) -> str:
    """Who serves a segment's loglet, in one line: sequencer(s) and LogServers, or acceptors."""
    params = segment["params"]
    if segment["kind"] == "striped":
        return "; ".join(f"stripe {j}: sequencer {st.get('sequencer')}, LogServers {','.join(st.get('logservers', []))}" for j, st in enumerate(params.get("stripes", [])))
    if segment["kind"] == "native":
        return f"sequencer {params.get('sequencer')}, LogServers {','.join(params.get('logservers', []))}"
    return f"acceptors {','.join(params.get('acceptors', []))}"


def reconfigure(
    loglet: str = typer.Option("native", "--loglet", help="Kind of the new segment's loglet: native, bootstrap or striped (a StripedLoglet of NativeLoglets)."),
    sequencer: Optional[str] = typer.Option(None, "--sequencer", help="Node that sequences the new loglet (default: the active one's)."),
    logservers: Optional[str] = typer.Option(None, "--logservers", help="Comma list of LogServer nodes (default: the active loglet's; striped: every LogServer node)."),
    stripes: int = typer.Option(2, "--stripes", help="With --loglet striped: the number of stripes (1..16)."),
    sharded: bool = typer.Option(False, "--sharded", help="With --loglet striped: split the LogServers into disjoint sets, one per stripe (default: every stripe on all of them, sequencers rotating)."),
    sequencers: Optional[str] = typer.Option(None, "--sequencers", help="With --loglet striped: comma list of the stripes' sequencer nodes, one per stripe (default: the sequencer nodes in turn)."),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = typer.Option(10.0, "--timeout", help="Seconds to wait before giving up."),
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
        raise fail("--logservers: give at least one node id", 2)
    seqs = [n.strip() for n in sequencers.split(",") if n.strip()] if sequencers is not None else None
    striping = {"stripes": stripes, "sharded": sharded, "sequencers": seqs} if loglet == "striped" else None
    if loglet != "striped" and (sharded or sequencers is not None):
        raise fail("--sharded and --sequencers go with --loglet striped", 2)
    result = _on_log(directory, timeout_s, lambda s: ops.reconfigure(s, loglet, sequencer, servers, striping))
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
    )


def seal(directory: Path = DirOpt, as_json: bool = JsonOpt, timeout_s: float = TimeoutOpt) -> None:
    """Seal the active loglet WITHOUT installing a new chain. The chain still names it as
    active, so the next append meets a sealed error and, after a short wait for a successor,
    rolls the chain forward onto a clone of the sealed loglet: watch it with `status`.

    JSON: {"segment_start", "loglet", "tail": {"position", "sealed"}}.
    """
    from delos_ref import ops

    result = _on_log(directory, timeout_s, ops.seal)
    if as_json:
        print_json(result)
    else:
        out.print(f"sealed loglet {result['loglet'].get('loglet_id')} at tail {result['tail']['position']}; the next append rolls the chain forward", highlight=False)


def trim(
    position: int = typer.Argument(..., help="Trim point: positions below it may be discarded."),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Prefix-trim the log below POSITION (at most the tail), and drop the chain's segments
    that lie wholly below it (reconfig_truncate). Reads below POSITION then fail as trimmed.

    JSON: {"trim_point", "segments_dropped", "base"}.
    """
    from delos_ref import ops

    if position < 0:
        raise fail(f"bad position: the trim point must be >= 0 (got {position})", 2)
    result = _on_log(directory, timeout_s, lambda s: ops.trim(s, position))
    if as_json:
        print_json(result)
    else:
        out.print(f"trimmed below {result['trim_point']}; {result['segments_dropped']} segment(s) dropped from the chain", highlight=False)


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
        out.print(f"{verb} {node.id} (pid {node.pid}): now {state}", highlight=False)


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
    timeout_s: float = typer.Option(20.0, "--timeout", help="Seconds to wait for the new process to answer a ping."),
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


COMMANDS: list[tuple[Callable[..., None], str]] = [
    (append, "delos-ref append hello world --json     # or: seq 1000 | delos-ref append"),
    (read, "delos-ref read --from 0 --to 10 --json   # or: delos-ref read --follow"),
    (tail, "delos-ref tail --json"),
    (reconfigure, "delos-ref reconfigure --loglet native --sequencer n2 --logservers n1,n2,n3\n\n  delos-ref reconfigure --loglet striped --stripes 2 --sequencers n1,n2"),
    (seal, "delos-ref seal && delos-ref append x && delos-ref status   # roll-forward finishes the seal"),
    (trim, "delos-ref trim 100"),
    (kill, "delos-ref kill n1"),
    (pause, "delos-ref pause n2 && sleep 5 && delos-ref resume n2"),
    (resume, "delos-ref resume n2"),
    (restart, "delos-ref restart n1"),
    (logs, "delos-ref logs n1 --lines 20"),
]


def register(app: typer.Typer) -> None:
    """Add the operator commands to the ``delos-ref`` app."""
    for fn, example in COMMANDS:
        app.command(epilog=f"Example: {example}")(fn)
