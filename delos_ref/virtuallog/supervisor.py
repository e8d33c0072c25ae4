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
3. **The supervisor loop.** It looks at the detector's view (free) when a peer's silence
   turns ``suspect_s`` old, when a silent peer answers again, every ``check_s`` while
   something is wrong, and at least every ``diagnose_s``. It fetches the chain and asks the
   active segment's loglet :meth:`~delos_ref.loglet.api.Loglet.diagnose` with that view when
   the view changed, every ``trouble_s`` while the last diagnosis found something wrong, and
   at least every ``diagnose_s`` (a sequencer that restarted within ``suspect_s``, or a
   half-done seal, shows only in a diagnosis).
   So a death is acted on as it is detected, but an idle, healthy cluster costs a wakeup
   per heartbeat and one chain fetch and one sequencer query per node per ``diagnose_s``:
   idle means idle (issue 17 item 5).
   The loglet decides whether it is failing and names its successor (only a NativeLoglet
   knows that a dead sequencer is fatal and a dead LogServer is not); the supervisor then
   runs ``reconfig_extend`` onto that successor: seal, check_tail, conditional write, fetch.

4. **Fresh evidence before acting** (:func:`decide`, pure: a table of rules over what the
   supervisor observed). Silence is evidence only if this node could have heard an answer.
   A node whose own loop stalled (SIGSTOP, a swapped-out process: its clock jumped between
   two ticks) has heard nothing while it was frozen, and a node cut off from the others (it
   hears fewer than a majority of the cluster) cannot tell a dead peer from its own
   isolation. Both wait. A node that suspects a silent peer, awake and in touch with a
   majority, still asks before it acts: it pings the suspects *now* and asks the peers it
   hears whether they hear them now (:class:`HearsQuery`). It reconfigures only when no
   suspect answers and no peer vouches for one. A peer vouches from fresh evidence too: an
   answer of the suspect within ``probe_s``, or else a ping it sends the suspect itself.
   (Its heartbeat view would not do: heartbeats to one peer are ``interval_s`` apart and
   out of phase across nodes, so a peer may still count a node alive that died 0.7 s ago,
   and the asker waited one or two more ``trouble_s`` for nothing -- a kill of the sequencer
   cost the clients over 2 s instead of about 1.) Without this rule (bug switch
   ``suspect_on_stale_evidence``) a node back from a 5 s SIGSTOP or a partition found the
   healthy sequencer "dead" and moved the chain off it, a needless gap for every client.

5. **Timeouts that fit the network.** On a real cluster (``Node(measure_rtt=True)``) each
   heartbeat's round trip is a sample for the node's :class:`~delos_ref.rtt.RttEstimator`
   (Jacobson/Karels). A heartbeat and a probe wait at least the peer's round-trip timeout,
   and a peer is suspected after ``suspect_s`` *plus* that timeout
   (:attr:`FailureDetector.margin`): a 100 ms round trip is not a silence, and a dead node
   is still noticed ``suspect_s`` and a few round trips after its last answer. On loopback
   the margin is a millisecond; in the simulator there is none (its constants stay exact).

Racing supervisors are fine -- every node may notice the same failure at once -- because the
conditional write lets exactly one chain win; the others find the chain moved and stand
down. To make the race rare rather than merely harmless, each waits a random jitter (from its
seeded RNG) before acting and checks the chain again. After a reconfiguration it initiated,
a supervisor stays quiet for ``quiet_s`` (more damping).

Nothing here blocks appends: clients keep appending on the cached chain; after the seal they
get a sealed error, fetch the new chain and retry there (``client.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from dataclasses import dataclass, field
from typing import Any

import trio

from delos_ref.loglet.api import Diagnosis, LogletError, Membership
from delos_ref.ping import Ping
from delos_ref.rpc import NO_RETRY, RpcError
from delos_ref.rtt import overall
from delos_ref.runtime import Node
from delos_ref.virtuallog.client import VirtualLog, VirtualLogError
from paxos.register import MetaStoreError
from transports.base import TransportError
from transports.codec import DecodeError, message

log = logging.getLogger(__name__)

#: Bug switch: act on silence that is no evidence (a stalled or cut-off node's view), without
#: asking the suspects and the peers first. Caught by ``tests/test_supervisor.py`` (a node
#: isolated and healed three times moves the chain) and the chaos cluster test.
BUG_STALE_EVIDENCE = "suspect_on_stale_evidence"
SUPERVISOR_BUGS = {BUG_STALE_EVIDENCE: "reconfigure on silence heard while stalled or cut off, without re-probing the suspects"}

#: How many peers' questions (:class:`HearsQuery`) a node answers at once.
QUESTIONS = 16


@dataclass(frozen=True, slots=True)
class SupervisorOptions:
    """Timing of failure detection. Defaults suit a loopback cluster."""

    interval_s: float = 0.4  # between heartbeats to one peer (two within suspect_s)
    suspect_s: float = 0.8  # silence after which a peer counts as dead
    stable_s: float = 3.0  # uninterrupted answers before a returning peer counts again
    check_s: float = 0.1  # the shortest wait between two looks at the view (see _next_look_in)
    jitter_s: float = 0.2  # random wait before acting (spreads racing supervisors)
    quiet_s: float = 2.0  # after a reconfiguration this supervisor initiated
    diagnose_s: float = 2.0  # a healthy, unchanged view is re-diagnosed this often
    trouble_s: float = 0.25  # ... and one whose last diagnosis found something wrong, this often
    probe_s: float = 0.2  # deadline of the fresh pings and peer questions before acting
    diagnosis_s: float = 0.3  # a diagnosis that takes longer is no verdict (see _diagnose)
    stall_s: float = 0.5  # a tick this much later than asked means this node's loop stalled

    def __post_init__(self) -> None:
        assert 0 < self.interval_s < self.suspect_s <= self.stable_s, "SupervisorOptions: interval < suspect <= stable"
        assert 0 < self.check_s <= self.trouble_s <= self.diagnose_s and self.jitter_s >= 0 and self.quiet_s >= 0, "SupervisorOptions: positive periods"
        assert self.probe_s > 0 and self.diagnosis_s > 0 and self.stall_s > 0, "SupervisorOptions: positive probe, diagnosis and stall bounds"


@message("supervisor.hears")
class HearsQuery:
    """"Do you hear ``peer`` now?" -- a supervisor asks its peers before acting on a suspicion."""

    peer: str


@message("supervisor.hears_reply")
class HearsReply:
    peer: str
    heard: bool  # the peer answered the replier just now (within probe_s, or a fresh ping)


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
    #: Per peer, time added to ``suspect_s`` (an input: the supervisor sets it to the peer's
    #: measured round-trip timeout, ``delos_ref/rtt.py``, so that a slow network is not a
    #: silence). Empty -- the simulator's case -- is the plain ``suspect_s``.
    margin: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.last_heard = dict.fromkeys(self.peers, self.started)
        self.alive_since = dict.fromkeys(self.peers, self.started)
        self.margin = {}

    def suspect_after(self, peer: str) -> float:
        """The silence after which ``peer`` counts as dead."""
        return self.options.suspect_s + self.margin.get(peer, 0.0)

    def heard(self, peer: str, now: float) -> None:
        """``peer`` answered a heartbeat at ``now``."""
        if now - self.last_heard[peer] > self.suspect_after(peer):
            self.alive_since[peer] = now  # it was dead: a new run of answers starts here
        self.last_heard[peer] = max(self.last_heard[peer], now)

    def alive(self, peer: str, now: float) -> bool:
        return peer == self.self_id or now - self.last_heard[peer] <= self.suspect_after(peer)

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

    def hearing(self, now: float) -> int:
        """How many peers answered within ``suspect_s``."""
        return sum(1 for p in self.peers if self.alive(p, now))


# ------------------------------------------------------------------ the decision (pure)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a supervisor knows when a diagnosis names a successor. ``suspects``: the nodes
    its view counts dead (empty when the diagnosis rests on an answer, e.g. "the sequencer
    restarted"). ``answered`` and ``vouched`` are None until the suspects were probed: the
    suspects that answered a ping just now, and the peers that hear a suspect now."""

    now: float
    quiet_until: float
    awake_since: float  # the end of this node's last stall (or its start)
    hearing: int  # peers heard within suspect_s
    peers: int  # peers in the cluster (this node excluded)
    suspects: tuple[str, ...] = ()
    answered: tuple[str, ...] | None = None
    vouched: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str  # ACT, PROBE or WAIT
    reason: str


ACT, PROBE, WAIT = "act", "probe", "wait"


def decide(e: Evidence, options: SupervisorOptions, bugs: frozenset[str] = frozenset()) -> Verdict:
    """Whether to reconfigure now, on evidence ``e``; the rules in order, first match wins.

    1. Quiet after a reconfiguration this node made (damping).
    2. A diagnosis that rests on an answer (no suspects) is fresh evidence: act.
    3. Stalled: this node's loop did not run until ``awake_since``; silence it "heard" while
       frozen is no evidence, so wait until it has been awake for ``suspect_s``.
    4. Cut off: it hears fewer than a majority of the cluster (itself included); it cannot
       tell a dead peer from its own isolation, and a minority cannot reconfigure anyway.
    5. Not probed yet: ping the suspects and ask the peers it hears (fresh evidence).
    6. A suspect answered, or a peer still hears one: the silence was this node's alone.
    7. Otherwise the suspects really do not answer now: act.
    """
    if e.now < e.quiet_until:
        return Verdict(WAIT, f"quiet for {e.quiet_until - e.now:.2f} s after its own reconfiguration")
    if not e.suspects or BUG_STALE_EVIDENCE in bugs:
        return Verdict(ACT, "fresh answer" if not e.suspects else "silence (bug: evidence not checked)")
    if e.now - e.awake_since < options.suspect_s:
        return Verdict(WAIT, f"own loop stalled until {e.now - e.awake_since:.2f} s ago: silence heard while frozen is no evidence")
    if 2 * (e.hearing + 1) <= e.peers + 1:
        return Verdict(WAIT, f"cut off: hears {e.hearing} of {e.peers} peers, not a majority")
    if e.answered is None or e.vouched is None:
        return Verdict(PROBE, f"suspects {', '.join(e.suspects)}: ask them and the peers before acting")
    if e.answered:
        return Verdict(WAIT, f"{', '.join(e.answered)} answered just now")
    if e.vouched:
        return Verdict(WAIT, f"peer(s) {', '.join(e.vouched)} hear a suspect now")
    return Verdict(ACT, f"{', '.join(e.suspects)} silent, confirmed by a fresh probe and the peers")


# ------------------------------------------------------------------------- the service


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
        bugs: frozenset[str] = frozenset(),
    ) -> None:
        self.node = node
        self.vlog = vlog
        self.peers = tuple(p for p in peers if p != node.node_id)
        self.candidates = tuple(candidates)  # may host LogServers
        self.sequencers = tuple(sequencers)  # may host sequencers (default: the candidates)
        self.options = options
        self.bugs = frozenset(bugs) & set(SUPERVISOR_BUGS)
        self.detector: FailureDetector | None = None
        self._rng: random.Random = node.rng("supervisor")
        self._quiet_until = 0.0
        self._awake_since = 0.0
        self._questions: trio.MemorySendChannel[tuple[str, int, str]] | None = None  # (asker, rid, peer)
        self._peer_returned = trio.Event()
        self._last_look: tuple[frozenset[str], float] | None = None  # (alive, when) at the last diagnose
        self.stats = dict.fromkeys(("checks", "skipped", "diagnoses", "stalls", "probes", "stood_down", "reconfigurations", "won", "lost", "errors"), 0)
        self.last_diagnosis: str | None = None
        node.router.register(HearsQuery, self._on_hears_query)

    async def run(self) -> None:
        """Heartbeats, answers to peers' questions and the check loop, until cancelled."""
        self.detector = FailureDetector(self.node.node_id, self.peers, trio.current_time(), self.options)
        self._awake_since = trio.current_time()
        send, receive = trio.open_memory_channel[tuple[str, int, str]](QUESTIONS)
        self._questions = send
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._answer_questions, receive)
            for peer in self.peers:
                nursery.start_soon(self._heartbeats, peer)
            while True:
                asked = trio.current_time()
                delay = self._next_look_in(asked)
                with trio.move_on_after(delay) as slept:
                    await self._peer_returned.wait()
                self._peer_returned = trio.Event()
                if slept.cancelled_caught:
                    self._note_stall(asked, trio.current_time(), delay)
                await self.check()

    def _next_look_in(self, now: float) -> float:
        """How long the check loop may sleep: ``check_s`` while something is wrong; otherwise
        until the view can next change by silence (a peer's last answer turns ``suspect_s``
        old) or a diagnosis is due, whichever comes first. (A peer coming back wakes it at
        once.) An idle, healthy node so wakes about once per heartbeat, not every ``check_s``."""
        assert self.detector is not None
        if self._last_look is None or self.last_diagnosis is not None:
            return self.options.check_s
        d = self.detector
        silence_due = min((d.last_heard[p] + d.suspect_after(p) for p in self.peers if d.alive(p, now)), default=math.inf)
        due = min(silence_due + 0.01, self._last_look[1] + self.options.diagnose_s)
        return min(max(due - now, self.options.check_s), self.options.diagnose_s)

    def _note_stall(self, asked: float, woke: float, delay: float) -> None:
        """A sleep of ``delay`` that took ``stall_s`` longer: this process did not run (it was
        stopped, or starved of CPU). What its detector saw meanwhile is no evidence."""
        late = woke - asked - delay
        if late > self.options.stall_s:
            self._awake_since = woke
            self.stats["stalls"] += 1
            log.info("%s: own loop stalled %.2f s; suspicions wait for fresh heartbeats", self.node.node_id, late)

    def _deadline(self, peer: str, base_s: float) -> float:
        """``base_s``, stretched to ``peer``'s measured round-trip timeout (if measured)."""
        rtt = self.node.endpoint.rtt
        return base_s if rtt is None else rtt.stretch(peer, base_s)

    async def _heartbeats(self, peer: str) -> None:
        assert self.detector is not None
        rtt = self.node.endpoint.rtt
        while True:
            sent = trio.current_time()
            try:
                # Wait at most half the suspicion time (a lost ping must not look like a
                # silence), or a round-trip timeout where the network is slower than that,
                # backed off while unanswered. Each answer is a round-trip sample.
                deadline = self.options.suspect_s / 2 if rtt is None else rtt.timeout(peer, self.options.suspect_s / 2)
                await self.node.endpoint.call(peer, Ping(), timeout_s=deadline, retry=NO_RETRY, sample_rtt=True)
            except RpcError:
                pass  # silence: the detector notices by the absence of answers
            else:
                if rtt is not None:
                    self.detector.margin[peer] = rtt.rto(peer)
                self._heard(peer)
            await trio.sleep(max(0.0, sent + self.options.interval_s - trio.current_time()))

    async def _on_hears_query(self, env: Any) -> None:
        """Router handler: queue "do you hear X now?" for :meth:`_answer_questions`, without
        blocking the router (when the queue is full the asker times out, which only makes it
        wait)."""
        if self.detector is None or self._questions is None or env.payload.peer not in self.detector.last_heard:
            return  # not running yet, or a node it does not watch: no evidence either way
        try:
            self._questions.send_nowait((env.src, env.rid, env.payload.peer))
        except trio.WouldBlock:
            pass

    async def _answer_questions(self, receive: trio.MemoryReceiveChannel[tuple[str, int, str]]) -> None:
        """Answer the queued questions, at most ``QUESTIONS`` at a time (each may ping)."""
        limiter = trio.CapacityLimiter(QUESTIONS)
        async with trio.open_nursery() as nursery:
            async for to, rid, peer in receive:
                token = object()  # one borrower per question (a duplicated message repeats its rid)
                await limiter.acquire_on_behalf_of(token)
                nursery.start_soon(self._answer, to, rid, peer, limiter, token)

    async def _answer(self, to: str, rid: int, peer: str, limiter: trio.CapacityLimiter, token: object) -> None:
        try:
            reply = HearsReply(peer, await self._hears_now(peer))
            await self.node.endpoint.reply(to, rid, reply)
        except TransportError:
            pass  # a lost reply is a silence the asker tolerates
        finally:
            limiter.release_on_behalf_of(token)

    async def _hears_now(self, peer: str) -> bool:
        """Whether ``peer`` answers this node now: it answered within ``probe_s``, or it
        answers a fresh ping within ``probe_s`` (see the module docstring, rule 4)."""
        assert self.detector is not None
        if trio.current_time() - self.detector.last_heard[peer] <= self.options.probe_s:
            return True
        try:
            await self.node.endpoint.call(peer, Ping(), timeout_s=self._deadline(peer, self.options.probe_s), retry=NO_RETRY)
        except RpcError:
            return False
        self._heard(peer)
        return True

    def _heard(self, peer: str) -> None:
        """``peer`` answered just now: tell the detector; wake the check loop if it was silent."""
        assert self.detector is not None
        now = trio.current_time()
        returned = not self.detector.alive(peer, now)
        self.detector.heard(peer, now)
        if returned:
            self._peer_returned.set()  # the view changed: look now

    async def check(self) -> bool:
        """One diagnosis of the active loglet; True if this call installed a new chain."""
        assert self.detector is not None, "Supervisor.check: run() first"
        self.stats["checks"] += 1
        successor = None  # set once a reconfiguration starts
        now = trio.current_time()
        view = self.detector.view(now, self.candidates, self.sequencers)
        if not self._worth_a_look(view, now):
            self.stats["skipped"] += 1
            return False
        self._last_look = (view.alive, now)
        try:
            chain = await self.vlog.refresh()
            seg = chain.active
            diagnosis = await self._diagnose(seg, view)
            if diagnosis is None:
                self.last_diagnosis = None
                return False
            self.stats["diagnoses"] += 1
            self.last_diagnosis = diagnosis.reason
            self._emit("Diagnosis", reason=diagnosis.reason, segment=seg.start, successor=diagnosis.successor is not None)
            if diagnosis.successor is None or not await self._should_act(diagnosis, view):
                return False
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
            self._last_look = None  # look again at the next check
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

    async def _diagnose(self, seg: Any, view: Membership) -> Diagnosis | None:
        """The active loglet's diagnosis, or no verdict if it takes longer than
        ``diagnosis_s`` (stretched to the measured round trips). A diagnosis asks the loglet's
        nodes (a NativeLoglet queries its sequencer); if one of them stopped just now, its
        answer never comes, and the check loop must not sit out the loglet's whole call
        timeout while the heartbeats already tell who is dead (a SIGSTOP of the sequencer
        during a query cost the clients a second more). A slow answer is no evidence either
        way: the next check, ``trouble_s`` later, looks again."""
        bound = overall(self.node.endpoint.rtt, self.options.diagnosis_s, round_trips=4)
        with trio.move_on_after(bound):
            return await self.vlog.registry.loglet(seg).diagnose(view, self.vlog.fresh_loglet_id())
        return Diagnosis(f"the diagnosis of the loglet at {seg.start} took over {bound:g} s (no verdict)", None)

    def _worth_a_look(self, view: Membership, now: float) -> bool:
        """Diagnose now? Yes if the view changed, or ``diagnose_s`` passed since the last
        diagnosis (``trouble_s`` if it found something wrong; see the module docstring)."""
        if self._last_look is None:
            return True
        alive, when = self._last_look
        every = self.options.trouble_s if self.last_diagnosis is not None else self.options.diagnose_s
        return view.alive != alive or now - when >= every

    async def _should_act(self, diagnosis: Diagnosis, view: Membership) -> bool:
        """Apply :func:`decide`: gather fresh evidence when it asks for it, and wait out the
        jitter (which the probe's time counts toward)."""
        assert self.detector is not None
        started = trio.current_time()
        evidence = Evidence(
            now=started,
            quiet_until=self._quiet_until,
            awake_since=self._awake_since,
            hearing=self.detector.hearing(started),
            peers=len(self.peers),
            suspects=tuple(sorted(n for n in dict.fromkeys(self.candidates + self.sequencers) if not view.is_alive(n))),
        )
        verdict = decide(evidence, self.options, self.bugs)
        if verdict.action == PROBE:
            self.stats["probes"] += 1
            answered, vouched = await self._probe(evidence.suspects)
            evidence = dataclasses.replace(evidence, answered=answered, vouched=vouched)
            verdict = decide(evidence, self.options, self.bugs)
        if verdict.action != ACT:
            self.stats["stood_down"] += 1
            log.info("%s: suspicion (%s) not acted on: %s", self.node.node_id, diagnosis.reason, verdict.reason)
            self._emit("StoodDown", reason=diagnosis.reason, why=verdict.reason)
            return False
        log.info("%s: suspicion (%s) confirmed: %s", self.node.node_id, diagnosis.reason, verdict.reason)
        await trio.sleep(max(0.0, started + self._rng.uniform(0, self.options.jitter_s) - trio.current_time()))
        return True

    async def _probe(self, suspects: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Ping every suspect and ask every peer this node hears whether it hears a suspect,
        all at once, each with ``probe_s``; returns (suspects that answered, peers that vouch)."""
        assert self.detector is not None
        answered: set[str] = set()
        vouched: set[str] = set()
        now = trio.current_time()
        witnesses = [p for p in self.peers if p not in suspects and self.detector.alive(p, now)]

        async def ping(suspect: str) -> None:
            try:
                await self.node.endpoint.call(suspect, Ping(), timeout_s=self._deadline(suspect, self.options.probe_s), retry=NO_RETRY)
            except RpcError:
                return
            answered.add(suspect)
            self._heard(suspect)

        async def ask(witness: str, suspect: str) -> None:
            try:
                # A round trip to the witness, and the witness may ping the suspect first.
                deadline = self._deadline(witness, self.options.probe_s) + self._deadline(suspect, self.options.probe_s)
                reply = await self.node.endpoint.call(witness, HearsQuery(suspect), timeout_s=deadline, retry=NO_RETRY)
            except RpcError:
                return
            if isinstance(reply, HearsReply) and reply.heard:
                vouched.add(witness)

        async with trio.open_nursery() as nursery:
            for suspect in suspects:
                nursery.start_soon(ping, suspect)
                for witness in witnesses:
                    nursery.start_soon(ask, witness, suspect)
        return tuple(sorted(answered)), tuple(sorted(vouched))

    def _emit(self, event: str, **fields: Any) -> None:
        self.node.trace.emit(self.node.node_id, "supervisor", event, **fields)

    def statistics(self) -> dict[str, Any]:
        return dict(self.stats, last_diagnosis=self.last_diagnosis)



# ------------------------------------------------------- automatic migration to cold storage
#
# ``delos-ref migrate --auto --keep N`` writes ``DIR/cold-auto.json``; every node's
# :class:`AutoMigrator` reads it each round, and the one node that :func:`decide_migration`
# names (the first live node of the cluster, so normally one) moves the sealed segments all
# but the last N to cold storage (``delos_ref/migrate.py``). Racing migrators would be
# harmless (the conditional write lets one copy win), only wasteful, hence the one node.

AUTO_FILE = "cold-auto.json"


def decide_migration(chain: Any, keep: int, me: str, alive: list[str]) -> int | None:
    """Pure: the ``--below`` position this node should migrate now, or None. Only the first
    live node migrates; only when a sealed segment beyond the last ``keep`` is not cold yet."""
    from delos_ref.migrate import candidates, keep_last

    if not alive or min(alive) != me:
        return None
    below = keep_last(chain, keep)
    return below if candidates(chain, below) else None


def write_auto_migrate(directory: str, keep: int, cold_dir: str | None) -> None:
    """Record the ``--auto`` setting for the cluster in ``directory`` (atomically)."""
    import json
    import os

    path = os.path.join(directory, AUTO_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump({"keep": keep, "cold_dir": cold_dir}, f)
    os.replace(path + ".tmp", path)


def read_auto_migrate(directory: str) -> tuple[int, str] | None:
    """``(keep, cold_dir)`` if ``--auto`` is on for the cluster in ``directory``."""
    import json
    import os

    try:
        with open(os.path.join(directory, AUTO_FILE)) as f:
            setting = json.load(f)
        return int(setting["keep"]), setting.get("cold_dir") or os.path.join(os.path.abspath(directory), "cold")
    except (OSError, ValueError, KeyError, TypeError):
        return None


class AutoMigrator:
    """One node's automatic migration: every ``period_s``, :func:`decide_migration`, then
    :func:`~delos_ref.migrate.migrate_below` if it says so. Failures are logged and retried."""

    def __init__(self, node: Node, vlog: VirtualLog, directory: str, nodes: tuple[str, ...], alive: Any, *, period_s: float = 5.0) -> None:
        self.node, self.vlog, self.directory, self.nodes = node, vlog, directory, nodes
        self._alive = alive  # () -> the node ids this node's failure detector believes alive
        self.period_s = period_s
        self.stats = {"rounds": 0, "migrated": 0, "errors": 0}

    async def run(self) -> None:
        while True:
            await trio.sleep(self.period_s)
            await self.round()

    async def round(self) -> None:
        from delos_ref.loglet.cold import FileColdStore
        from delos_ref.migrate import MigrationError, migrate_below

        setting = read_auto_migrate(self.directory)
        if setting is None:
            return
        keep, cold_dir = setting
        self.stats["rounds"] += 1
        try:
            below = decide_migration(await self.vlog.refresh(), keep, self.node.node_id, sorted(self._alive()))
            if below is None:
                return
            prefix = f"auto-{self.node.node_id}-v{self.vlog.version}"
            done = await migrate_below(self.vlog, FileColdStore(cold_dir), below, lambda seg: f"{prefix}-{seg.start}")
            self.stats["migrated"] += sum(m.installed for m in done)
            log.info("%s: auto-migrated %d segment(s) below %d to %s", self.node.node_id, len(done), below, cold_dir)
        except (MigrationError, LogletError, VirtualLogError, MetaStoreError, OSError) as e:
            self.stats["errors"] += 1
            log.warning("%s: auto-migration failed: %s", self.node.node_id, e)

    def statistics(self) -> dict[str, int]:
        return dict(self.stats)
