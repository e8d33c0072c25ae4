"""Network conditions on a real cluster: the ``net`` role and the operator's plans.

Every node sends through a :class:`~transports.shaper.ShapedTransport`; the ``net`` role
(:class:`NetControlCore`) is how an operator sets what its shaper does. It answers two
requests over the cluster's own transport -- the path ``status`` pings take:

* :class:`NetSet` -- replace this node's :class:`~transports.shaper.NetConditions`;
* :class:`NetShow` -- tell them (with the shaper's counters).

Both are answered with a :class:`NetState`. Conditions live in the node's memory only: a
restarted node starts on a perfect network, and ``down`` ends them all.

Three more messages let ``delos-ref net probe`` see which links carry messages, one direction
at a time (a round trip cannot tell a one-way cut from a two-way one):

* :class:`NetProbe` -- send one :class:`NetMark` with this token to that peer (through this
  node's shaper and, on an ``up --netns`` cluster, its namespace's kernel);
* :class:`NetMark` -- one-way, no answer: the receiver remembers ``(sender, token)``;
* :class:`NetMarksAsk` -- tell the marks received (answered with :class:`NetMarks`).

The rest of this module is pure planning for ``delos-ref net`` (``cli/net.py``): from every
node's current conditions, the new ones a command asks for (:func:`plan_delay`,
:func:`plan_loss`, :func:`plan_partition`, :func:`plan_heal`). Shaping is done by the
sender, so a delay on n1's links is n1 delaying what it sends to everyone *and* every other
node delaying what it sends to n1; a partition ``n1 | n2,n3`` is n1 cutting its sends to n2
and n3 and both of them cutting theirs to n1; a one-way ``n1 > n2`` cuts only n1's sends.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

from delos_ref.effects import Effect, Fail, Incoming, Reply, Send
from transports.codec import message
from transports.shaper import LinkModel, NetConditions


@message("net.set")
class NetSet:
    conditions: dict[str, Any]  # NetConditions.as_data()


@message("net.show")
class NetShow:
    pass


@message("net.probe")
class NetProbe:
    peer: str
    token: str


@message("net.mark")
class NetMark:
    token: str


@message("net.marks_ask")
class NetMarksAsk:
    pass


@message("net.marks")
class NetMarks:
    node_id: str
    marks: tuple[tuple[str, str], ...]  # (sender, token), oldest first


@message("net.state")
class NetState:
    node_id: str
    conditions: dict[str, Any]
    stats: dict[str, Any]


class NetControlCore:
    """Pure: applies and reports this node's network conditions. ``apply`` hands new
    conditions to the node's shaper; ``current`` returns ``(conditions, counters)``."""

    handles = (NetSet, NetShow, NetProbe, NetMark, NetMarksAsk)
    #: How many received marks a node remembers (the newest).
    MAX_MARKS = 256

    def __init__(self, node_id: str, apply: Callable[[NetConditions], None], current: Callable[[], tuple[NetConditions, dict[str, Any]]]) -> None:
        self.node_id = node_id
        self._apply = apply
        self._current = current
        self.sets = 0
        self.marks: list[tuple[str, str]] = []

    def handle(self, item: Any) -> list[Effect]:
        if not isinstance(item, Incoming):
            return []
        if isinstance(item.msg, NetMark):
            self.marks = [*self.marks, (item.src, item.msg.token)][-self.MAX_MARKS :]
            return []
        if not item.wants_reply:
            return []
        if isinstance(item.msg, NetMarksAsk):
            return [Reply(item.src, item.rid, NetMarks(self.node_id, tuple(self.marks)))]
        probe: list[Effect] = []
        if isinstance(item.msg, NetProbe):
            if item.msg.peer == self.node_id:
                return [Fail(item.src, item.rid, "bad_probe", "a node does not probe itself")]
            probe = [Send(item.msg.peer, NetMark(item.msg.token))]
        if isinstance(item.msg, NetSet):
            try:
                conditions = NetConditions.from_data(item.msg.conditions)
            except ValueError as e:
                return [Fail(item.src, item.rid, "bad_conditions", str(e))]  # nothing applied
            self._apply(conditions)
            self.sets += 1
        conditions, stats = self._current()
        return [*probe, Reply(item.src, item.rid, NetState(self.node_id, conditions.as_data(), stats))]

    def statistics(self) -> dict[str, Any]:
        conditions, _ = self._current()
        return {"sets": self.sets, "conditions": conditions.as_data()}


# ------------------------------------------------------------------------------ plans

Plan = dict[str, NetConditions]


def _with_link(m: LinkModel, *, delay: tuple[float, float] | None = None, loss: float | None = None) -> LinkModel:
    if delay is not None:
        m = dataclasses.replace(m, delay_min_s=delay[0], delay_max_s=delay[1])
    if loss is not None:
        m = dataclasses.replace(m, loss=loss)
    return m


def _change_links(current: Plan, named: Iterable[str], seed: str | None, **change: Any) -> Plan:
    """Change the links that touch a named node: a named node's sends to everyone (its
    default and every per-peer link), and every other node's sends to the named ones."""
    named = set(named) or set(current)
    plan = {}
    for node, c in current.items():
        if node in named:
            links = {peer: _with_link(m, **change) for peer, m in c.links.items()}
            new = dataclasses.replace(c, default=_with_link(c.default, **change), links=links)
        else:
            links = dict(c.links)
            for peer in sorted(named):
                links[peer] = _with_link(c.link(peer), **change)
            new = dataclasses.replace(c, links=links)
        plan[node] = new if seed is None else dataclasses.replace(new, seed=seed)
    return plan


def plan_delay(current: Plan, delay_s: float, jitter_s: float = 0.0, nodes: Iterable[str] = (), seed: str | None = None) -> Plan:
    """``net delay``: every message on a named node's links (all nodes if none is named) is
    held ``delay_s`` +- ``jitter_s`` (uniform) before it is sent."""
    if delay_s < 0 or jitter_s < 0 or jitter_s > delay_s:
        raise ValueError("delay and jitter must be >= 0, and the jitter at most the delay")
    return _change_links(current, nodes, seed, delay=(delay_s - jitter_s, delay_s + jitter_s))


def plan_loss(current: Plan, loss: float, nodes: Iterable[str] = (), seed: str | None = None) -> Plan:
    """``net loss``: every message on a named node's links is lost with probability ``loss``."""
    if not 0 <= loss <= 1:
        raise ValueError("a loss is between 0% and 100%")
    return _change_links(current, nodes, seed, loss=loss)


def plan_partition(current: Plan, left: Iterable[str], right: Iterable[str], *, one_way: bool = False) -> Plan:
    """``net partition LEFT | RIGHT``: nothing crosses between the groups (added to the cuts
    already made); ``one_way`` (``LEFT > RIGHT``): nothing from LEFT reaches RIGHT."""
    left, right = set(left), set(right)
    if not left or not right:
        raise ValueError("a partition needs a node on each side")
    if left & right:
        raise ValueError(f"{', '.join(sorted(left & right))} on both sides of the partition")
    plan = {}
    for node, c in current.items():
        cut = set(c.cut)
        if node in left:
            cut |= right
        if node in right and not one_way:
            cut |= left
        plan[node] = dataclasses.replace(c, cut=frozenset(cut))
    return plan


def plan_heal(current: Plan) -> Plan:
    """``net heal``: a perfect network again (no cut, no delay, no loss; seeds kept)."""
    return {node: NetConditions(seed=c.seed) for node, c in current.items()}


def summary(conditions: dict[str, NetConditions]) -> list[str]:
    """One line per node that is not on a perfect network, for ``net show`` and the
    dashboard: ``n1: sends 5ms±1ms 2% loss; to n2: cut``."""
    from transports.shaper import describe_link

    lines = []
    for node, c in conditions.items():
        if c.perfect:
            continue
        parts = [f"sends {describe_link(c.default)}"] if not c.default.perfect else []
        by_text: dict[str, list[str]] = {}
        for peer, m in sorted(c.links.items()):
            if peer not in c.cut and m != c.default:
                by_text.setdefault(describe_link(m), []).append(peer)
        if c.cut:
            by_text.setdefault("cut", []).extend(sorted(c.cut))
        parts += [f"to {','.join(peers)}: {text}" for text, peers in by_text.items()]
        lines.append(f"{node}: " + "; ".join(parts))
    return lines
