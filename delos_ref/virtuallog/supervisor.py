"""Failure-driven reconfiguration: heartbeats, a damped failure detector, and a supervisor.

The seed's fifth requirement: "Loglets need to detect failures and initiate the VirtualLog
reconfiguration process." Delos used in-band timeouts plus a gossip failure detector
(docs/design.md §4); failure detection takes seconds, the reconfiguration itself tens of ms.
Here every cluster node runs one :class:`Supervisor`, built from three small parts:

1. **Heartbeats.** The node pings every peer every ``interval_s`` over the cluster's transport
   (the same ``Ping`` that ``delos-ref status`` uses); each answer is reported to the detector.
2. **The failure detector** (:class:`FailureDetector`, pure: it is handed the time). A peer is
   *alive* while its last answer is at most ``suspect_s`` old, and *stable* once it has been
   alive without a gap for ``stable_s``. The two thresholds are the damping: a death is
   noticed after ``suspect_s``, but a node that comes back is taken in as a new member (a
   spare LogServer) only after ``stable_s`` of uninterrupted answers, so a flapping node does
   not cause a reconfiguration on every beat. Damping never hides a node that answers: it
   still counts toward the majority a seal needs and may become a sequencer.
3. **The supervisor loop.** Every ``check_s`` it fetches the chain and asks the active
   segment's loglet :meth:`~delos_ref.loglet.api.Loglet.diagnose` with the detector's view.
   The loglet decides whether it is failing and names its successor (only a NativeLoglet
   knows that a dead sequencer is fatal and a dead LogServer is not); the supervisor then
   runs ``reconfig_extend`` onto that successor: seal, check_tail, conditional write, fetch.

Racing supervisors are fine -- every node may notice the same failure at once -- because the
conditional write lets exactly one chain win; the others find the chain moved and stand
down. To make the race rare rather than merely harmless, each waits a random jitter (from its
seeded RNG) before acting and checks the chain again. After a reconfiguration it initiated,
a supervisor stays quiet for ``quiet_s`` (more damping).

Nothing here blocks appends: clients keep appending on the cached chain; after the seal they
get a sealed error, fetch the new chain and retry there (``client.py``).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

import trio

from delos_ref.loglet.api import LogletError, Membership
from delos_ref.ping import Ping
from delos_ref.rpc import NO_RETRY, RpcError
from delos_ref.runtime import Node
from delos_ref.virtuallog.client import VirtualLog, VirtualLogError
from paxos.register import MetaStoreError
from transports.codec import DecodeError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SupervisorOptions:
    """Timing of failure detection. Defaults suit a loopback cluster."""

    interval_s: float = 0.1  # between heartbeats to one peer
    suspect_s: float = 1.0  # silence after which a peer counts as dead
    stable_s: float = 3.0  # uninterrupted answers before a returning peer counts again
    check_s: float = 0.25  # between two diagnoses of the active loglet
    jitter_s: float = 0.2  # random wait before acting (spreads racing supervisors)
    quiet_s: float = 2.0  # after a reconfiguration this supervisor initiated

    def __post_init__(self) -> None:
        assert 0 < self.interval_s < self.suspect_s <= self.stable_s, "SupervisorOptions: interval < suspect <= stable"
        assert self.check_s > 0 and self.jitter_s >= 0 and self.quiet_s >= 0, "SupervisorOptions: positive periods"


@dataclass
class FailureDetector:
    """Which peers answer heartbeats; pure (every method is handed ``now``).

    Every peer starts with the benefit of the doubt (heard at ``started``): a node that just
    booted does not declare the whole cluster dead before the first round of answers.
    """

    self_id: str
    peers: tuple[str, ...]
    started: float
    options: SupervisorOptions = SupervisorOptions()
    last_heard: dict[str, float] = field(init=False)
    alive_since: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.last_heard = dict.fromkeys(self.peers, self.started)
        self.alive_since = dict.fromkeys(self.peers, self.started)

    def heard(self, peer: str, now: float) -> None:
        """``peer`` answered a heartbeat at ``now``."""
        if now - self.last_heard[peer] > self.options.suspect_s:
            self.alive_since[peer] = now  # it was dead: a new run of answers starts here
        self.last_heard[peer] = max(self.last_heard[peer], now)

    def alive(self, peer: str, now: float) -> bool:
        return peer == self.self_id or now - self.last_heard[peer] <= self.options.suspect_s

    def stable(self, peer: str, now: float) -> bool:
        return peer == self.self_id or (self.alive(peer, now) and now - self.alive_since[peer] >= self.options.stable_s)

    def view(self, now: float, candidates: tuple[str, ...], sequencers: tuple[str, ...] = ()) -> Membership:
        """The :class:`Membership` a loglet diagnoses itself with. ``alive``: the nodes that
        answer now. ``stable``: those of them that have answered without a gap for
        ``stable_s`` (or never left since the start): only these may join a loglet as new
        members, so a flapping node is not taken in. ``sequencers``: the nodes that may
        sequence (default: the candidates)."""
        nodes = dict.fromkeys(candidates + sequencers)
        alive = frozenset(n for n in nodes if self.alive(n, now))
        stable = frozenset(n for n in alive if self.stable(n, now) or self.alive_since.get(n) == self.started)
        return Membership(alive, candidates, sequencers, stable)


class Supervisor:
    """One node's failure detection and reconfiguration; see the module docstring."""

    def __init__(
        self,
        node: Node,
        vlog: VirtualLog,
        peers: tuple[str, ...],
        candidates: tuple[str, ...],
        *,
        sequencers: tuple[str, ...] = (),
        options: SupervisorOptions = SupervisorOptions(),
    ) -> None:
        self.node = node
        self.vlog = vlog
        self.peers = tuple(p for p in peers if p != node.node_id)
        self.candidates = tuple(candidates)  # may host LogServers
        self.sequencers = tuple(sequencers)  # may host sequencers (default: the candidates)
        self.options = options
        self.detector: FailureDetector | None = None
        self._rng: random.Random = node.rng("supervisor")
        self._quiet_until = 0.0
        self.stats = dict.fromkeys(("checks", "diagnoses", "reconfigurations", "won", "lost", "errors"), 0)
        self.last_diagnosis: str | None = None

    async def run(self) -> None:
        """Heartbeats and the check loop, until cancelled."""
        self.detector = FailureDetector(self.node.node_id, self.peers, trio.current_time(), self.options)
        async with trio.open_nursery() as nursery:
            for peer in self.peers:
                nursery.start_soon(self._heartbeats, peer)
            while True:
                await trio.sleep(self.options.check_s)
                await self.check()

    async def _heartbeats(self, peer: str) -> None:
        assert self.detector is not None
        while True:
            sent = trio.current_time()
            try:
                # Wait at most half the suspicion time: a lost ping must not look like a silence.
                await self.node.endpoint.call(peer, Ping(), timeout_s=self.options.suspect_s / 2, retry=NO_RETRY)
            except RpcError:
                pass  # silence: the detector notices by the absence of answers
            else:
                self.detector.heard(peer, trio.current_time())
            await trio.sleep(max(0.0, sent + self.options.interval_s - trio.current_time()))

    async def check(self) -> bool:
        """One diagnosis of the active loglet; True if this call installed a new chain."""
        assert self.detector is not None, "Supervisor.check: run() first"
        self.stats["checks"] += 1
        successor = None  # set once a reconfiguration starts
        try:
            chain = await self.vlog.refresh()
            seg = chain.active
            view = self.detector.view(trio.current_time(), self.candidates, self.sequencers)
            diagnosis = await self.vlog.registry.loglet(seg).diagnose(view, self.vlog.fresh_loglet_id())
            if diagnosis is None:
                self.last_diagnosis = None
                return False
            self.stats["diagnoses"] += 1
            self.last_diagnosis = diagnosis.reason
            self._emit("Diagnosis", reason=diagnosis.reason, segment=seg.start, successor=diagnosis.successor is not None)
            if diagnosis.successor is None or trio.current_time() < self._quiet_until:
                return False
            await trio.sleep(self._rng.uniform(0, self.options.jitter_s))
            if not (await self.vlog.refresh()).active.same_loglet(seg):
                return False  # another supervisor (or an operator) moved the chain on
            self.stats["reconfigurations"] += 1
            successor = getattr(diagnosis.successor, "loglet_id", diagnosis.successor)
            log.warning("reconfiguration started: %s; sealing the segment from %d, successor %s", diagnosis.reason, seg.start, successor)
            won = await self.vlog.reconfig_extend(diagnosis.successor)
        except (LogletError, MetaStoreError, VirtualLogError, DecodeError) as e:
            # The loglet could not be sealed yet, no MetaStore quorum, no chain yet, or the
            # register holds something that is not a chain: report it, try again next check.
            self.stats["errors"] += 1
            self._emit("SupervisorError", error=repr(e)[:200])
            if successor is not None:
                log.warning("reconfiguration onto %s failed (the next check tries again): %r", successor, e)
            return False
        self._quiet_until = trio.current_time() + self.options.quiet_s
        self.stats["won" if won else "lost"] += 1
        if won:
            log.warning("reconfiguration won: chain version %s, active loglet %s", self.vlog.version, successor)
        else:
            log.info("reconfiguration lost: another writer moved the chain first (version %s)", self.vlog.version)
        self._emit("Reconfigured", won=won, reason=diagnosis.reason, version=self.vlog.version)
        return won

    def _emit(self, event: str, **fields: Any) -> None:
        self.node.trace.emit(self.node.node_id, "supervisor", event, **fields)

    def statistics(self) -> dict[str, Any]:
        return dict(self.stats, last_diagnosis=self.last_diagnosis)
