"""Round-trip times measured per peer, and the timeouts they call for (Jacobson/Karels).

On loopback a round trip takes about 60 us; across machines, or under ``delos-ref net
delay``, it takes milliseconds to seconds. A constant resend interval or heartbeat deadline
tuned for one is wrong for the other: too short, and every request is resent and every peer
suspected; too long, and a lost message or a dead node costs more than it must. So each node
measures its round trips and lets them stretch its constants (never shrink them).

:class:`RttEstimator` is TCP's retransmission timer (Jacobson 1988, Karels; RFC 6298), kept
per peer. It is pure: it is handed each sample and never reads a clock.

* a sample ``r`` (the time from a request's *only* send to its reply -- Karn's rule: the
  reply to a resent request cannot say which send it answers) updates::

      rttvar = 3/4 rttvar + 1/4 |srtt - r|        (first sample: srtt = r, rttvar = r/2)
      srtt   = 7/8 srtt   + 1/8 r

* :meth:`rto` is ``srtt + 4 rttvar`` (at least ``granularity_s``): how long a reply may
  take before its absence means something.
* :meth:`stretch` is what the users call: ``max(base, rto)``, a loopback constant kept as
  it is when the network is fast. :meth:`timeout` is that times the back-off, for the calls
  that measure (heartbeats): each one that went unanswered doubles it (up to
  ``max_backoff``), the next sample resets it -- so when a link's delay jumps past the
  deadline, a heartbeat still gets through within a few tries and the estimate follows.
* **The first answer after a silence is held, not taken.** While a peer is backed off at
  least twice (two heartbeats in a row went unanswered: an outage, not a delay that grew
  past one deadline), the answer that ends the silence may be a backlog: over TCP, a ping sent into a partition
  waits in the kernel and is answered when the partition heals, seconds later. Taken as a
  sample, that one late answer made ``rto`` (``srtt + 4 rttvar``) about 0.7 s for several
  seconds on a loopback link, and every probe of that peer waited that long. So the answer
  that ends a silence is held; the next one decides, and the smaller of the two is the
  sample (the back-off stays until then). Meanwhile ``rto`` is at least the held answer, so
  a link that really became slow is allowed for at once (and learnt when it answers slowly
  again), while a healed partition, answering fast the second time, leaves no trace.

Where a node uses it (``delos_ref/runtime.py`` turns it on for real nodes and clients only;
the simulator keeps its constants, so every seed runs as before): the RPC layer's resend
intervals (:mod:`delos_ref.rpc`), the supervisor's heartbeat deadlines, fresh probes and
silence threshold (:mod:`delos_ref.virtuallog.supervisor`), and the NativeLoglet sequencer's
retry tick (:func:`delos_ref.loglet.native.roles.add_sequencer`).

**Overall deadlines.** An operation of several round trips -- a MetaStore read or write (two
Paxos phases, maybe a retry), a NativeLoglet seal or append (client, sequencer, LogServers),
a database write (a replica's append) -- has a deadline of its own, a loopback constant
such as 2 s. At hundreds of milliseconds per round trip that constant is a handful of
round trips, and an attempt gives up before a reply could have come. :func:`overall`
stretches it to :data:`OVERALL_ROUND_TRIPS` times the largest ``rto`` measured: the
MetaStore client (``paxos/register.py``), the NativeLoglet and bootstrap loglet clients, the
database client's patience, and the operator commands' ``--timeout`` (``delos_ref/ops.py``)
use it. A client measures before it relies on it: :func:`delos_ref.process.open_client`
pings the cluster's nodes first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Peer:
    srtt: float
    rttvar: float
    backoff: int = 1
    held: float | None = None  # the answer that ended a silence, until the next one (see above)
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=MIN_RTT_SAMPLES))  # for min_rtt
    min_rtt: float = 0.0  # min(recent), kept at each sample: read once per Store, sampled per heartbeat


#: The back-off (two unanswered heartbeats in a row) from which the answer that ends a
#: silence is held (see above). One unanswered call is a delay grown past one deadline: its
#: answer is taken at once, so a slower link is learnt without waiting a heartbeat more
#: (holding it cost ``tests/test_net_deadlines.py`` a kv attempt under CPU load).
HOLD_AFTER_BACKOFF = 4

#: :meth:`RttEstimator.min_rtt` is the least of this many latest samples (heartbeats: about 6 s).
MIN_RTT_SAMPLES = 16

#: The round trips an overall deadline allows at least (see "Overall deadlines" above).
OVERALL_ROUND_TRIPS = 8


def overall(rtt: "RttEstimator | None", base_s: float, round_trips: int = OVERALL_ROUND_TRIPS) -> float:
    """An overall deadline: ``base_s``, or ``round_trips`` times the largest ``rto`` that
    ``rtt`` measured, if longer. Without an estimator (the simulator): ``base_s`` exactly."""
    if rtt is None:
        return base_s
    return max(base_s, round_trips * rtt.max_rto())


class RttEstimator:
    """Smoothed round-trip time and variation per peer; see the module docstring."""

    ALPHA = 1 / 8
    BETA = 1 / 4
    K = 4

    def __init__(self, *, granularity_s: float = 0.001, max_backoff: int = 8) -> None:
        self.granularity_s = granularity_s
        self.max_backoff = max_backoff
        self._peers: dict[str, _Peer] = {}
        self._max_rto: float | None = None  # max_rto, until the next sample (read per call)
        self.samples = 0

    def sample(self, peer: str, rtt_s: float) -> None:
        """A reply came ``rtt_s`` after the request's only send. The first one after a
        silence (the peer is backed off) is held until the next (see the module docstring)."""
        self.samples += 1
        self._max_rto = None
        p = self._peers.get(peer)
        if p is not None and p.backoff >= HOLD_AFTER_BACKOFF and p.held is None:
            p.held = rtt_s
            return
        if p is not None and p.held is not None:
            rtt_s, p.held = min(rtt_s, p.held), None
        if p is None or p.srtt == 0:
            p = self._peers[peer] = _Peer(rtt_s, rtt_s / 2)
            self._remember(p, rtt_s)
            return
        self._remember(p, rtt_s)
        p.rttvar = (1 - self.BETA) * p.rttvar + self.BETA * abs(p.srtt - rtt_s)
        p.srtt = (1 - self.ALPHA) * p.srtt + self.ALPHA * rtt_s
        p.backoff = 1

    @staticmethod
    def _remember(p: _Peer, rtt_s: float) -> None:
        p.recent.append(rtt_s)
        p.min_rtt = min(p.recent)

    def unanswered(self, peer: str) -> None:
        """A call to ``peer`` got no reply within its deadline: back off (Karn)."""
        p = self._peers.get(peer)
        if p is None:  # no sample yet: the first reply is still to come
            p = self._peers[peer] = _Peer(0.0, 0.0)
            self._max_rto = None
        p.backoff = min(p.backoff * 2, self.max_backoff)

    def srtt(self, peer: str) -> float | None:
        p = self._peers.get(peer)
        return None if p is None or p.srtt == 0 else p.srtt

    def min_rtt(self, peer: str) -> float | None:
        """The least of the latest :data:`MIN_RTT_SAMPLES` samples (None before the first): the
        path's own delay, without the time a reply waited behind a busy node's work, which
        ``srtt`` averages in. What the pipelines size themselves by (BBR's ``min_rtt``): on a
        loaded loopback cluster ``srtt`` reaches milliseconds while the path takes 0.1 ms."""
        p = self._peers.get(peer)
        return p.min_rtt if p is not None and p.recent else None

    def rto(self, peer: str) -> float:
        """``srtt + 4 rttvar`` without back-off (0 before the first sample), and at least an
        answer held until the next one decides (see the module docstring)."""
        p = self._peers.get(peer)
        if p is None:
            return 0.0
        measured = 0.0 if p.srtt == 0 else max(self.granularity_s, p.srtt + self.K * p.rttvar)
        return measured if p.held is None else max(measured, p.held)

    def stretch(self, peer: str, base_s: float) -> float:
        """``base_s``, or the peer's :meth:`rto` if that is longer."""
        return max(base_s, self.rto(peer))

    def timeout(self, peer: str, base_s: float) -> float:
        """:meth:`stretch` times the current back-off: the deadline of a call that measures
        (a heartbeat). Each one unanswered doubles the next, so a link whose delay jumps past
        the deadline gets a call through, and a sample, within a few tries."""
        p = self._peers.get(peer)
        return self.stretch(peer, base_s) * (1 if p is None else p.backoff)

    def max_rto(self) -> float:
        """The largest :meth:`rto` over every peer measured (0 before any sample). Kept until
        the next sample changes it: a client reads it a few times per request (every overall
        deadline), and over every peer each time it was a tenth of a kv client's CPU."""
        if self._max_rto is None:
            self._max_rto = max((self.rto(p) for p in self._peers), default=0.0)
        return self._max_rto

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Per peer: ``srtt_ms``, ``min_rtt_ms``, ``rto_ms`` and ``backoff`` (for statistics)."""
        return {peer: {"srtt_ms": round(p.srtt * 1000, 3), "min_rtt_ms": round((self.min_rtt(peer) or 0.0) * 1000, 3), "rto_ms": round(self.rto(peer) * 1000, 3), "backoff": p.backoff} for peer, p in sorted(self._peers.items())}
