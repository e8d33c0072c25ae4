"""``delos-ref net``: network conditions on a running cluster (delay, jitter, loss, partitions).

Every node sends through a link shaper (``transports/shaper.py``); these commands set what
it does, through each node's ``net`` role over the cluster's transport
(``delos_ref/netctl.py``): read every node's conditions, plan the new ones, send them.

* ``net delay 5ms [--jitter 1ms] [NODE...]``: each message on the named nodes' links (all
  links without a NODE) waits 5 ms +- 1 ms before it is sent. A round trip between two
  delayed nodes so takes twice the delay.
* ``net loss 2% [NODE...]``: each message on those links is lost with probability 2%.
* ``net partition n1 '|' n2,n3``: nothing crosses between the groups; ``n1 '>' n2``: nothing
  from n1 reaches n2 (one way). Quote ``|`` and ``>`` for the shell.
* ``net heal``: a perfect network again. ``net show``: the conditions of every node.

Loss and jitter draw from seeded RNGs (``--seed``, the simulator's seed tree per link).
Conditions live in the nodes' memory: ``down`` and a ``restart`` clear them. Exit codes
(``cli/common.py``): 1 no cluster running or no node answered, 2 bad usage (a bad duration,
loss or partition, an unknown node), 3 partial (some nodes did not answer: they keep their
old conditions; the JSON names them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from cli.common import PARTIAL, USAGE, DirOpt, JsonOpt, fail, out, print_json, sole_error, timeout_option
from delos_ref import cluster

net_app = typer.Typer(
    help="Network conditions on a running cluster: delay, jitter, loss, partitions (one-way too).\n\n"
    "Every node's link shaper holds, drops or cuts what it sends; `down` and `restart` clear it.\n\n"
    "Exit codes: 0 ok, 1 no cluster running or no node answered, 2 bad usage, 3 some nodes did not answer.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

TimeoutOpt = timeout_option(3.0, "Seconds to wait for each node's answer.")
SeedOpt = typer.Option(None, "--seed", help="Seed of the links' random draws (jitter, loss); the same seed, the same draws.")
NodesArg = typer.Argument(None, help="The nodes whose links change (every node if none).", show_default=False)

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_duration(text: str) -> float:
    """``5ms``, ``500us``, ``0.2s``, ``0`` -> seconds; ``ValueError`` otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(us|µs|ms|s)?\s*", text)
    if m is None or (m.group(2) is None and float(m.group(1)) != 0):
        raise ValueError(f"not a duration: {text!r} (write it like 5ms, 500us or 0.2s)")
    seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if seconds > 60:
        raise ValueError(f"a delay of {text} is over a minute")
    return seconds


def parse_loss(text: str) -> float:
    """``2%`` or ``2`` -> 0.02; ``ValueError`` outside 0..100%."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*%?\s*", text)
    if m is None or not 0 <= float(m.group(1)) <= 100:
        raise ValueError(f"not a loss: {text!r} (a percentage from 0% to 100%, like 2%)")
    return float(m.group(1)) / 100


def parse_partition(words: list[str]) -> tuple[list[str], list[str], bool]:
    """``n1 | n2,n3`` or ``n1 > n2`` (words as the shell split them) -> (left, right, one_way)."""
    text = " ".join(words)
    parts = re.split(r"([|>])", text)
    if len(parts) != 3:
        raise ValueError(f"a partition is `LEFT '|' RIGHT` or `LEFT '>' RIGHT` (one separator), not {text!r}")

    def group(side: str) -> list[str]:
        return [n for n in re.split(r"[,\s]+", side.strip()) if n]

    left, right = group(parts[0]), group(parts[2])
    if not left or not right:
        raise ValueError(f"a partition needs a node on each side of {parts[1]!r}")
    return left, right, parts[1] == ">"


def _check_nodes(cfg: cluster.ClusterConfig, names: list[str]) -> None:
    known = [n.id for n in cfg.nodes]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise fail(f"unknown node {', '.join(unknown)} (the cluster's nodes: {', '.join(known)})", USAGE)


def _run(directory: Path, timeout_s: float, as_json: bool, plan: Optional[Callable[[dict[str, Any]], dict[str, Any]]], names: list[str] = ()) -> None:
    """Read every node's conditions; with ``plan``, set the planned ones; print the result."""
    import trio

    from delos_ref import ops

    try:
        cfg = cluster.load(directory)
        ops.require_running(str(directory), cfg)
    except (cluster.ClusterError, ops.OpError) as e:
        raise fail(str(e))
    _check_nodes(cfg, list(names))
    try:
        states = trio.run(_apply, cfg, timeout_s, plan)
    except BaseException as e:
        known = sole_error(e, (ValueError,))
        if known is None:
            raise
        raise fail(str(known), USAGE) from None
    _report(states, as_json)


async def _apply(cfg: cluster.ClusterConfig, timeout_s: float, plan: Any) -> dict[str, Any]:
    import trio

    from delos_ref.netctl import NetSet, NetShow
    from delos_ref.process import open_client
    from delos_ref.rpc import RESEND, DefiniteFailure, UnknownOutcome
    from transports.shaper import NetConditions

    async with open_client(cfg, "net") as client:

        async def ask(node_id: str, msg: Any) -> Any:
            try:
                return await client.endpoint.call(node_id, msg, timeout_s=timeout_s, retry=RESEND)
            except (DefiniteFailure, UnknownOutcome):
                return None

        async def ask_all(msgs: dict[str, Any]) -> dict[str, Any]:
            answers: dict[str, Any] = {}

            async def one(node_id: str) -> None:
                answers[node_id] = await ask(node_id, msgs[node_id])

            async with trio.open_nursery() as nursery:
                for node_id in msgs:
                    nursery.start_soon(one, node_id)
            return {n: answers[n] for n in msgs}

        states = await ask_all({n.id: NetShow() for n in cfg.nodes})
        if plan is not None:
            current = {n: NetConditions.from_data(s.conditions) for n, s in states.items() if s is not None}
            if current:
                new = plan(current)
                answered = await ask_all({n: NetSet(c.as_data()) for n, c in new.items()})
                states.update(answered)
        return states


def _report(states: dict[str, Any], as_json: bool) -> None:
    from delos_ref.netctl import summary
    from transports.shaper import NetConditions

    answered = {n: s for n, s in states.items() if s is not None}
    missing = [n for n, s in states.items() if s is None]
    if as_json:
        print_json({"nodes": {n: (None if s is None else {"conditions": s.conditions, "stats": s.stats}) for n, s in states.items()}, "missing": missing})
    else:
        lines = summary({n: NetConditions.from_data(s.conditions) for n, s in answered.items()})
        for line in lines or (["network: perfect (no delay, loss or partition)"] if answered else []):
            out.print(line, highlight=False, markup=False)
    if not answered:
        raise fail(f"no node answered within the timeout ({', '.join(missing)})")
    if missing:
        raise fail(f"{', '.join(missing)} did not answer: their conditions are unchanged", PARTIAL)


def _parsed(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except ValueError as e:
        raise fail(str(e), USAGE) from None


@net_app.command(epilog="\b\nExamples:\n  delos-ref net delay 5ms --jitter 1ms\n  delos-ref net delay 20ms n1   # n1's links only\n  delos-ref net delay 0         # no delay")
def delay(
    amount: str = typer.Argument(..., metavar="DELAY", help="Hold each message this long: 5ms, 500us, 0.2s (0: no delay)."),
    nodes: Optional[list[str]] = NodesArg,
    jitter: str = typer.Option("0", "--jitter", help="Each delay is drawn uniformly in DELAY +- JITTER (at most DELAY)."),
    seed: Optional[str] = SeedOpt,
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Delay every message on the named nodes' links (all links if none is named), one way:
    a round trip between two such nodes takes twice DELAY. Prints the new conditions."""
    from delos_ref.netctl import plan_delay

    d, j = _parsed(parse_duration, amount), _parsed(parse_duration, jitter)
    if j > d:
        raise fail(f"the jitter ({jitter}) is larger than the delay ({amount})", USAGE)
    _run(directory, timeout_s, as_json, lambda cur: plan_delay(cur, d, j, nodes or (), seed), nodes or [])


@net_app.command(epilog="\b\nExamples:\n  delos-ref net loss 2%\n  delos-ref net loss 10% n3 --seed 7\n  delos-ref net loss 0%")
def loss(
    amount: str = typer.Argument(..., metavar="LOSS", help="Probability that a message is lost: 2% (0%: none)."),
    nodes: Optional[list[str]] = NodesArg,
    seed: Optional[str] = SeedOpt,
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Lose each message on the named nodes' links (all links if none is named) with
    probability LOSS. Prints the new conditions."""
    from delos_ref.netctl import plan_loss

    p = _parsed(parse_loss, amount)
    _run(directory, timeout_s, as_json, lambda cur: plan_loss(cur, p, nodes or (), seed), nodes or [])


@net_app.command(epilog="\b\nExamples:\n  delos-ref net partition n1 '|' n2,n3\n  delos-ref net partition n1 '>' n2   # n1's messages no longer reach n2")
def partition(
    groups: list[str] = typer.Argument(..., metavar="LEFT '|' RIGHT", help="Two groups of nodes (comma- or space-separated) around | (both ways) or > (LEFT's messages do not reach RIGHT)."),
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Cut the links between two groups of nodes, both ways (|) or one way (>), in addition
    to the cuts already made. Clients are not cut. Prints the new conditions."""
    from delos_ref.netctl import plan_partition

    left, right, one_way = _parsed(parse_partition, groups)
    if set(left) & set(right):
        raise fail(f"{', '.join(sorted(set(left) & set(right)))} on both sides of the partition", USAGE)
    _run(directory, timeout_s, as_json, lambda cur: plan_partition(cur, left, right, one_way=one_way), left + right)


@net_app.command(epilog="\b\nExample: delos-ref net heal")
def heal(directory: Path = DirOpt, as_json: bool = JsonOpt, timeout_s: float = TimeoutOpt) -> None:
    """A perfect network again: no partition, no delay, no loss."""
    from delos_ref.netctl import plan_heal

    _run(directory, timeout_s, as_json, plan_heal)


@net_app.command(epilog="\b\nExample: delos-ref net show --json")
def show(directory: Path = DirOpt, as_json: bool = JsonOpt, timeout_s: float = TimeoutOpt) -> None:
    """Every node's network conditions (one line per node that is not on a perfect network)
    and, with --json, its shaper's counters:
    {"nodes": {ID: {"conditions": {"seed", "default", "links", "cut"}, "stats": {"held", "lost", "cut", ...}} | null}, "missing": [...]}."""
    _run(directory, timeout_s, as_json, None)
