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
* ``net probe``: which links carry a message, each direction on its own.

On an ``up --netns`` cluster (``delos_ref/netns.py``) partitions and losses are also written
into the kernel, as iptables rules in the nodes' namespaces; ``--via shaper|kernel|both``
chooses the layer (default: both there, the shaper elsewhere), so that ``net probe`` can show
the two layers cut the same links. Delay has no kernel layer (no ``netem`` here).

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
    "Every node's link shaper holds, drops or cuts what it sends; `down` and `restart` clear it. "
    "On an `up --netns` cluster partitions and losses also act in the kernel (iptables in the nodes' namespaces; --via chooses).\n\n"
    "Exit codes: 0 ok, 1 no cluster running or no node answered, 2 bad usage, 3 some nodes did not answer.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

TimeoutOpt = timeout_option(3.0, "Seconds to wait for each node's answer.")
SeedOpt = typer.Option(None, "--seed", help="Seed of the links' random draws (jitter, loss); the same seed, the same draws.")
NodesArg = typer.Argument(None, help="The nodes whose links change (every node if none).", show_default=False)
ViaOpt = typer.Option(None, "--via", metavar="LAYER", help="shaper (every node's link shaper), kernel (iptables in the nodes' namespaces: `up --netns` clusters only) or both. Default: both on a --netns cluster, shaper elsewhere.")
VIAS = ("shaper", "kernel", "both")

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


def _layers(directory: Path, via: Optional[str], in_kernel: bool) -> tuple[bool, Any]:
    """``--via``: (whether the shaper changes, the netns record if the kernel does too).
    ``in_kernel``: False for a condition the kernel layer cannot make (delay)."""
    from delos_ref import netns

    try:
        rec = netns.load_record(directory)
    except netns.NetnsError as e:
        raise fail(str(e))
    via = via or ("both" if rec is not None else "shaper")
    if via not in VIAS:
        raise fail(f"--via must be one of {', '.join(VIAS)} (got {via!r})", USAGE)
    if via != "shaper" and rec is None:
        raise fail(f"--via {via}: the cluster in {directory} is not on network namespaces (start one with `delos-ref up --netns`); only the shaper acts here", USAGE)
    if via == "kernel" and not in_kernel:
        raise fail("--via kernel: the kernel layer has no delay (this kernel has no netem); use --via shaper", USAGE)
    kernel = rec if via in ("kernel", "both") and in_kernel else None
    if kernel is not None:
        try:
            netns.check_usable()
        except netns.NetnsError as e:
            raise fail(str(e), USAGE)
    return via != "kernel", kernel


def _run(directory: Path, timeout_s: float, as_json: bool, plan: Optional[Callable[[dict[str, Any]], dict[str, Any]]], names: list[str] = (), via: Optional[str] = None, in_kernel: bool = True) -> None:
    """Read every node's conditions; with ``plan``, set the planned ones in the layers
    ``via`` names (the shaper, the kernel or both); print the result."""
    import trio

    from delos_ref import netns, ops

    try:
        cfg = cluster.load(directory)
        in_shaper, kernel = _layers(directory, via, in_kernel)  # usage errors first
        ops.require_running(str(directory), cfg)
    except (cluster.ClusterError, ops.OpError) as e:
        raise fail(str(e))
    _check_nodes(cfg, list(names))
    rec = netns.load_record(directory)
    try:
        kernel_plan = plan(kernel.kernel_conditions()) if plan is not None and kernel is not None else None
        states = trio.run(_apply, cfg, timeout_s, plan if in_shaper else None)
    except BaseException as e:
        known = sole_error(e, (ValueError,))
        if known is None:
            raise
        raise fail(str(known), USAGE) from None
    if kernel_plan is not None:
        try:
            netns.apply_kernel(directory, kernel, kernel_plan)
        except netns.NetnsError as e:
            raise fail(f"the kernel rules were not all written: {e}")
        rec = kernel
    _report(states, as_json, rec)


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


def _report(states: dict[str, Any], as_json: bool, rec: Any = None) -> None:
    """Print the shaper's conditions (and, on a ``--netns`` cluster, the kernel's: the
    conditions ``net`` set there and each namespace's rules, read back from iptables)."""
    from delos_ref import netns
    from delos_ref.netctl import summary
    from transports.shaper import NetConditions

    answered = {n: s for n, s in states.items() if s is not None}
    missing = [n for n, s in states.items() if s is None]
    rules = netns.show_rules(rec) if rec is not None else {}
    if as_json:
        doc: dict[str, Any] = {"nodes": {n: (None if s is None else {"conditions": s.conditions, "stats": s.stats}) for n, s in states.items()}, "missing": missing}
        if rec is not None:
            doc["kernel"] = {n: {"conditions": c.as_data(), "rules": rules[n]} for n, c in rec.kernel_conditions().items()}
        print_json(doc)
    else:
        lines = summary({n: NetConditions.from_data(s.conditions) for n, s in answered.items()})
        lines = lines or (["network: perfect (no delay, loss or partition)"] if answered else [])
        if rec is not None:
            kernel = summary(rec.kernel_conditions()) or ["no rule"]
            lines = ["shaper:", *(f"  {line}" for line in lines), f"kernel (iptables chain {netns.CHAIN} in each node's namespace):", *(f"  {line}" for line in kernel)]
        for line in lines:
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
    via: Optional[str] = typer.Option(None, "--via", metavar="LAYER", help="shaper or both (the same here: the kernel layer has no delay, this kernel has no netem); kernel is an error."),
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
    _run(directory, timeout_s, as_json, lambda cur: plan_delay(cur, d, j, nodes or (), seed), nodes or [], via, in_kernel=False)


@net_app.command(epilog="\b\nExamples:\n  delos-ref net loss 2%\n  delos-ref net loss 10% n3 --seed 7\n  delos-ref net loss 0%")
def loss(
    amount: str = typer.Argument(..., metavar="LOSS", help="Probability that a message is lost: 2% (0%: none)."),
    nodes: Optional[list[str]] = NodesArg,
    seed: Optional[str] = SeedOpt,
    via: Optional[str] = ViaOpt,
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Lose each message on the named nodes' links (all links if none is named) with
    probability LOSS. Prints the new conditions. In the kernel (--netns) a loss drops
    packets, not messages: TCP resends them, so there it costs time, not messages."""
    from delos_ref.netctl import plan_loss

    p = _parsed(parse_loss, amount)
    _run(directory, timeout_s, as_json, lambda cur: plan_loss(cur, p, nodes or (), seed), nodes or [], via)


@net_app.command(epilog="\b\nExamples:\n  delos-ref net partition n1 '|' n2,n3\n  delos-ref net partition n1 '>' n2   # n1's messages no longer reach n2\n  delos-ref net partition n1 '|' n2,n3 --via kernel   # iptables only (an `up --netns` cluster)")
def partition(
    groups: list[str] = typer.Argument(..., metavar="LEFT '|' RIGHT", help="Two groups of nodes (comma- or space-separated) around | (both ways) or > (LEFT's messages do not reach RIGHT)."),
    via: Optional[str] = ViaOpt,
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
) -> None:
    """Cut the links between two groups of nodes, both ways (|) or one way (>), in addition
    to the cuts already made. Clients are not cut. Prints the new conditions. In the kernel
    (--netns) on TCP, a one-way cut stops the other way too: one connection carries both
    directions, and its acknowledgements are cut."""
    from delos_ref.netctl import plan_partition

    left, right, one_way = _parsed(parse_partition, groups)
    if set(left) & set(right):
        raise fail(f"{', '.join(sorted(set(left) & set(right)))} on both sides of the partition", USAGE)
    _run(directory, timeout_s, as_json, lambda cur: plan_partition(cur, left, right, one_way=one_way), left + right, via)


@net_app.command(epilog="\b\nExample: delos-ref net heal")
def heal(via: Optional[str] = ViaOpt, directory: Path = DirOpt, as_json: bool = JsonOpt, timeout_s: float = TimeoutOpt) -> None:
    """A perfect network again: no partition, no delay, no loss (in the layers --via names)."""
    from delos_ref.netctl import plan_heal

    _run(directory, timeout_s, as_json, plan_heal, via=via)


@net_app.command(epilog="\b\nExample: delos-ref net show --json")
def show(directory: Path = DirOpt, as_json: bool = JsonOpt, timeout_s: float = TimeoutOpt) -> None:
    """Every node's network conditions (one line per node that is not on a perfect network)
    and, with --json, its shaper's counters:
    {"nodes": {ID: {"conditions": {"seed", "default", "links", "cut"}, "stats": {"held", "lost", "cut", ...}} | null}, "missing": [...]};
    on an `up --netns` cluster also the kernel layer, "kernel": {ID: {"conditions", "rules"}},
    the rules as `iptables -S -v` prints them in that node's namespace (with packet counters)."""
    _run(directory, timeout_s, as_json, None)


@net_app.command(epilog="\b\nExamples:\n  delos-ref net probe\n  delos-ref net probe --json | jq .cut")
def probe(
    directory: Path = DirOpt,
    as_json: bool = JsonOpt,
    timeout_s: float = TimeoutOpt,
    wait_s: float = typer.Option(1.0, "--wait", help="Seconds to let the marks arrive before each node is asked which it got.", metavar="SECONDS"),
) -> None:
    """Which links carry a message, one direction at a time: each node sends one mark to
    every other (through its shaper and, on a --netns cluster, its namespace's kernel), then
    each tells which marks it received. Prints the links that carried nothing.

    JSON: {"reaches": {FROM: {TO: true|false}}, "cut": [[FROM, TO], ...], "missing": [...]}.
    A mark is one message: under a loss below 100% a link may carry it or not."""
    import trio

    from delos_ref import ops

    if not 0 < wait_s <= 60:
        raise fail(f"--wait must be between 0 and 60 seconds (got {wait_s:g})", USAGE)
    try:
        cfg = cluster.load(directory)
        ops.require_running(str(directory), cfg)
    except (cluster.ClusterError, ops.OpError) as e:
        raise fail(str(e))
    reaches, missing = trio.run(_probe, cfg, timeout_s, wait_s)
    cut = [[a, b] for a, row in reaches.items() for b, ok in row.items() if not ok]
    if as_json:
        print_json({"reaches": reaches, "cut": cut, "missing": missing})
    else:
        for a, b in cut:
            out.print(f"{a} -> {b}: nothing arrived", highlight=False, markup=False)
        if not cut and not missing:
            out.print("every link carried its mark", highlight=False, markup=False)
    if missing:
        raise fail(f"{', '.join(missing)} did not answer: their links are not known", PARTIAL)


async def _probe(cfg: cluster.ClusterConfig, timeout_s: float, wait_s: float) -> tuple[dict[str, dict[str, bool]], list[str]]:
    """Ask every node to mark every other, wait, collect the marks (see :func:`probe`)."""
    import secrets

    import trio

    from delos_ref.netctl import NetMarksAsk, NetProbe
    from delos_ref.process import open_client
    from delos_ref.rpc import RESEND, DefiniteFailure, UnknownOutcome

    ids = [n.id for n in cfg.nodes]
    round_id = secrets.token_hex(4)
    answered: dict[str, Any] = {}
    async with open_client(cfg, "net") as client:

        async def ask(node_id: str, msg: Any, key: Any) -> None:
            try:
                answered[key] = await client.endpoint.call(node_id, msg, timeout_s=timeout_s, retry=RESEND)
            except (DefiniteFailure, UnknownOutcome):
                answered[key] = None

        async with trio.open_nursery() as nursery:
            for a in ids:
                for b in ids:
                    if a != b:
                        nursery.start_soon(ask, a, NetProbe(b, f"{round_id}:{a}>{b}"), (a, b))
        await trio.sleep(wait_s)
        async with trio.open_nursery() as nursery:
            for b in ids:
                nursery.start_soon(ask, b, NetMarksAsk(), b)
    missing = sorted({k if isinstance(k, str) else k[0] for k, v in answered.items() if v is None})
    got = {(src, b) for b in ids if answered.get(b) is not None for src, token in answered[b].marks if token == f"{round_id}:{src}>{b}"}
    reaches = {a: {b: (a, b) in got for b in ids if b != a} for a in ids if a not in missing}
    return reaches, missing
