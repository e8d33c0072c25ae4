"""The link shaper: a network with delay, jitter, loss and partitions, on any transport.

The simulator's network (:mod:`transports.memory`) decides the fate of every message with
random draws from a per-link RNG. This module holds that decision model, pure, so that the
simulator and a real cluster's nodes share it:

* :class:`LinkModel` -- how one directed link treats a message (delay range, loss,
  duplication, delay spikes);
* :func:`link_fate` -- the draws for one message: lost, or the delay of each copy;
* :class:`NetConditions` -- what one node applies to what it *sends*: a link model for every
  peer (``default``) and per peer (``links``), and the peers it is cut off from (``cut``);
* :class:`LinkShaper` -- one node's decisions: given a message's destination and the time, when
  each copy may leave (or that it is cut or lost). No I/O, no clock, no randomness of its own:
  the time is handed in, and each link's RNG is ``seeded_rng(seed, "link", src, dst)`` -- the
  simulator's seed tree -- so a seed's draws are the same on a real cluster.

:class:`ShapedTransport` is the I/O around it: it wraps a node's UDP or TCP transport, holds
each message until its release time, drops the lost and the cut ones, and passes the rest
to the real transport. With no conditions set it adds one attribute test per send.

Shaping happens on the sender's side only (egress, like ``tc qdisc ... netem`` on an
interface): a delay of 5 ms between two nodes makes their round trip 10 ms, a partition
``n1 | n2`` is n1 cutting its sends to n2 and n2 its sends to n1, and a one-way cut
``n1 > n2`` is only the first of the two. A cut is checked again when a held message is
released, as the simulator checks it at delivery: a partition made while a message is in
flight drops it.

On a transport that never reorders (``reliable``: TCP), the shaper keeps each link's order:
a message is never released before one sent earlier to the same peer, so jitter delays
without reordering, as it does on a real TCP connection. Loss on such a link is a message
lost with a broken connection, which the RPC layer resends (``RetryPolicy.reliable_first_s``).
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from transports.base import Transport, TransportError, TransportStatistics
from transports.codec import Envelope, MessageTooLarge


@dataclass(frozen=True, slots=True)
class LinkModel:
    """How one directed link treats a message. Delays are uniform in [min, max], except that
    with probability ``spike`` a copy is delayed ``spike_factor`` times more (which is what
    reorders messages across a wide window)."""

    delay_min_s: float = 0.0002
    delay_max_s: float = 0.002
    loss: float = 0.0
    duplicate: float = 0.0
    spike: float = 0.0
    spike_factor: float = 20.0

    def __post_init__(self) -> None:
        assert 0 <= self.delay_min_s <= self.delay_max_s, "LinkModel: 0 <= delay_min <= delay_max"
        for p in (self.loss, self.duplicate, self.spike):
            assert 0 <= p <= 1, "LinkModel: probabilities in [0, 1]"

    @classmethod
    def shaped(cls, delay_s: float = 0.0, jitter_s: float = 0.0, loss: float = 0.0) -> "LinkModel":
        """The link ``net delay DELAY --jitter JITTER`` and ``net loss LOSS`` describe: delays
        uniform in [delay - jitter, delay + jitter] (never below 0), a loss probability."""
        return cls(max(0.0, delay_s - jitter_s), delay_s + jitter_s, loss)

    @property
    def perfect(self) -> bool:
        """Nothing held, nothing lost, nothing duplicated."""
        return self.delay_max_s == 0 and self.loss == 0 and self.duplicate == 0


#: A real link with no conditions: every message leaves at once.
PERFECT = LinkModel(0.0, 0.0)


def link_fate(link: LinkModel, rng: random.Random) -> tuple[float, ...]:
    """The fate of one message on ``link``: ``()`` if it is lost, else the delay of each copy
    (two copies when it is duplicated). The draws, in order: loss, duplication, then per copy
    its delay and its spike. The simulator makes exactly these draws, so a seed means the same
    fates in both."""
    if rng.random() < link.loss:
        return ()
    copies = 2 if rng.random() < link.duplicate else 1
    delays = []
    for _ in range(copies):
        delay = rng.uniform(link.delay_min_s, link.delay_max_s)
        if rng.random() < link.spike:
            delay *= link.spike_factor
        delays.append(delay)
    return tuple(delays)


@dataclass(frozen=True, slots=True)
class NetConditions:
    """What one node does to the messages it sends. ``default``: the link to every peer not in
    ``links`` (clients included); ``links``: per-peer links; ``cut``: peers this node's
    messages never reach (a partition, or one way of it); ``seed``: the root of the links' RNGs."""

    seed: str = "0"
    default: LinkModel = PERFECT
    links: dict[str, LinkModel] = field(default_factory=dict)
    cut: frozenset[str] = frozenset()

    def link(self, dst: str) -> LinkModel:
        return self.links.get(dst, self.default)

    @property
    def perfect(self) -> bool:
        return not self.cut and self.default.perfect and all(m.perfect for m in self.links.values())

    def as_data(self) -> dict[str, Any]:
        """Plain data (for the wire, ``net show`` and the dashboard)."""
        return {
            "seed": self.seed,
            "default": _link_data(self.default),
            "links": {peer: _link_data(m) for peer, m in sorted(self.links.items())},
            "cut": sorted(self.cut),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "NetConditions":
        """The inverse of :meth:`as_data`; ``ValueError`` for data that is not conditions."""
        try:
            return cls(
                str(data.get("seed", "0")),
                _link_from(data.get("default", {})),
                {str(peer): _link_from(m) for peer, m in dict(data.get("links", {})).items()},
                frozenset(str(p) for p in data.get("cut", ())),
            )
        except (AssertionError, TypeError, AttributeError) as e:
            raise ValueError(f"not network conditions: {e}") from None


def _link_data(m: LinkModel) -> dict[str, float]:
    return {"delay_min_s": m.delay_min_s, "delay_max_s": m.delay_max_s, "loss": m.loss}


def _link_from(d: dict[str, Any]) -> LinkModel:
    return LinkModel(float(d.get("delay_min_s", 0.0)), float(d.get("delay_max_s", 0.0)), float(d.get("loss", 0.0)))


def describe_link(m: LinkModel) -> str:
    """``5ms±1ms 2% loss``, ``perfect``: one link for people."""
    parts = []
    if m.delay_max_s > 0:
        mid, half = (m.delay_min_s + m.delay_max_s) / 2, (m.delay_max_s - m.delay_min_s) / 2
        parts.append(f"{mid * 1000:g}ms" + (f"±{half * 1000:g}ms" if half > 0 else ""))
    if m.loss > 0:
        parts.append(f"{m.loss * 100:g}% loss")
    return " ".join(parts) or "perfect"


class LinkShaper:
    """One node's shaping decisions (pure). :meth:`fate` says, for a message to ``dst`` sent at
    ``now``, when each of its copies may leave: ``None`` when the link is cut, ``()`` when the
    message is lost. With ``fifo``, no copy leaves before one sent earlier to the same peer."""

    def __init__(self, node_id: str, *, fifo: bool = False) -> None:
        self.node_id = node_id
        self.fifo = fifo
        self.conditions = NetConditions()
        self._rngs: dict[str, random.Random] = {}
        self._last_release: dict[str, float] = {}
        self.stats = {"held": 0, "lost": 0, "cut": 0, "duplicated": 0}

    @property
    def active(self) -> bool:
        return not self.conditions.perfect

    def set(self, conditions: NetConditions) -> None:
        """New conditions. A new seed restarts the links' RNG streams."""
        if conditions.seed != self.conditions.seed:
            self._rngs.clear()
        self.conditions = conditions

    def is_cut(self, dst: str) -> bool:
        return dst in self.conditions.cut

    def fate(self, dst: str, now: float) -> tuple[float, ...] | None:
        if dst == self.node_id:
            return (now,)  # a node's messages to itself cross no network
        if dst in self.conditions.cut:
            self.stats["cut"] += 1
            return None
        link = self.conditions.link(dst)
        if link.perfect:
            return (now,)
        rng = self._rngs.get(dst)
        if rng is None:
            from delos_ref.runtime import seeded_rng  # runtime imports transports; import late

            rng = self._rngs[dst] = seeded_rng(self.conditions.seed, "link", self.node_id, dst)
        delays = link_fate(link, rng)
        if not delays:
            self.stats["lost"] += 1
            return ()
        self.stats["held"] += 1
        self.stats["duplicated"] += len(delays) - 1
        releases = []
        for d in delays:
            t = now + d
            if self.fifo:
                t = max(t, self._last_release.get(dst, t))
                self._last_release[dst] = t
            releases.append(t)
        return tuple(releases)


class ShapedTransport(Transport):
    """A node's transport behind a :class:`LinkShaper`: held messages wait in one queue, ordered
    by release time, for the one task that sends them. Everything else passes through."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.node_id = inner.node_id
        self.reliable = inner.reliable
        self.shaper = LinkShaper(inner.node_id, fifo=inner.reliable)
        self._heap: list[tuple[float, int, Envelope]] = []
        self._order = itertools.count()
        self._wakeup = trio.Event()

    # on_rejected is set by the node on the outer transport; the inner one reports.
    @property  # type: ignore[override]
    def on_rejected(self):  # noqa: D401
        return self.inner.on_rejected

    @on_rejected.setter
    def on_rejected(self, value) -> None:
        self.inner.on_rejected = value

    def set_conditions(self, conditions: NetConditions) -> None:
        self.shaper.set(conditions)

    @property
    def queued(self) -> int:
        """Messages held now, waiting for their release time."""
        return len(self._heap)

    async def send(self, env: Envelope, *, wait: bool = True) -> None:
        if not self.shaper.active:
            return await self.inner.send(env, wait=wait)
        releases = self.shaper.fate(env.dst, trio.current_time())
        if releases is None or not releases:
            await trio.lowlevel.checkpoint()
            return  # cut or lost: the network ate it
        for t in releases:
            heapq.heappush(self._heap, (t, next(self._order), env))
        self._wakeup.set()
        await trio.lowlevel.checkpoint()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Release held messages when their time comes (until cancelled)."""
        task_status.started()
        while True:
            if not self._heap:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            t = self._heap[0][0]
            if t > trio.current_time():
                self._wakeup = trio.Event()
                with trio.move_on_at(t):
                    await self._wakeup.wait()
                continue
            _, _, env = heapq.heappop(self._heap)
            if self.shaper.is_cut(env.dst):  # cut while it was held
                self.shaper.stats["cut"] += 1
                continue
            try:  # one task releases for every peer: a peer that does not read must not hold it
                await self.inner.send(env, wait=False)
            except (TransportError, MessageTooLarge):  # a held message meets what any lost one does
                self.shaper.stats["send_errors"] = self.shaper.stats.get("send_errors", 0) + 1

    async def receive(self) -> Envelope:
        return await self.inner.receive()

    def statistics(self) -> TransportStatistics:
        s = self.inner.statistics()
        extra = dict(s.extra)
        extra.update({f"shaper_{k}": v for k, v in self.shaper.stats.items()})
        extra["shaper_queued"] = self.queued
        return replace(s, extra=extra)

    async def aclose(self) -> None:
        await self.inner.aclose()
