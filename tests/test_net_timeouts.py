"""Timeouts that fit the network (issue 24): the round-trip estimator (``delos_ref/rtt.py``),
the RPC layer's resends stretched to it, the failure detector's margin and the runtime's
timer floors -- on the simulated network under a mock clock, no processes."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from delos_ref.effects import SetTimer, TimerFired
from delos_ref.ping import Ping, PingCore
from delos_ref.rpc import RESEND, CallTimeout
from delos_ref.rtt import RttEstimator
from delos_ref.runtime import Node
from delos_ref.virtuallog.supervisor import FailureDetector, SupervisorOptions
from transports.memory import LinkModel, SimNetwork


def test_estimator_follows_jacobson_karels():
    e = RttEstimator()
    assert e.rto("n2") == 0 and e.stretch("n2", 0.05) == 0.05  # nothing measured: the constant
    e.sample("n2", 0.1)
    assert e.srtt("n2") == pytest.approx(0.1) and e.rto("n2") == pytest.approx(0.1 + 4 * 0.05)
    e.sample("n2", 0.2)
    # rttvar = 3/4 * 0.05 + 1/4 * |0.1 - 0.2| = 0.0625; srtt = 7/8 * 0.1 + 1/8 * 0.2 = 0.1125
    assert e.srtt("n2") == pytest.approx(0.1125) and e.rto("n2") == pytest.approx(0.1125 + 4 * 0.0625)
    for _ in range(200):
        e.sample("n2", 0.01)
    assert e.srtt("n2") == pytest.approx(0.01, rel=0.01) and e.rto("n2") < 0.012
    assert e.stretch("n2", 0.05) == 0.05  # a fast network keeps the loopback constant
    assert e.rto("n3") == 0 and e.max_rto() == e.rto("n2")


def test_max_rto_follows_every_sample_and_every_new_peer():
    """max_rto is kept between samples (clients read it per request); each sample, and a peer
    first heard of through a silence, can change it, and it follows at once."""
    e = RttEstimator()
    assert e.max_rto() == 0
    e.sample("n1", 0.01)
    first = e.max_rto()
    assert first == pytest.approx(e.rto("n1"))
    e.sample("n2", 0.5)  # a slower peer raises it
    assert e.max_rto() == pytest.approx(e.rto("n2")) and e.max_rto() > first
    for _ in range(100):
        e.sample("n2", 0.001)  # and lowers it again as that peer speeds up
    assert e.max_rto() == pytest.approx(max(e.rto("n1"), e.rto("n2"))) and e.max_rto() < 0.05
    e.unanswered("n4")
    for peer in ("n1", "n2"):
        e.unanswered(peer)
        e.unanswered(peer)
        e.unanswered(peer)  # backed off: the next answer is held until the one after
    e.sample("n1", 0.9)
    assert e.max_rto() == pytest.approx(max(e.rto(p) for p in ("n1", "n2", "n4"))) and e.max_rto() >= 0.9


def test_min_rtt_is_the_paths_delay_not_the_time_a_busy_node_took():
    """The pipelines size themselves by ``min_rtt``: on a loaded loopback cluster some replies
    wait behind a node's work and ``srtt`` reaches milliseconds, which would pipeline Stores
    where the path takes 0.2 ms; a path that really slowed is learnt within the window."""
    from delos_ref.loglet.native.sequencer import stores_in_flight
    from delos_ref.rtt import MIN_RTT_SAMPLES

    e = RttEstimator()
    assert e.min_rtt("n2") is None
    for r in (0.0002, 0.008, 0.012, 0.0003, 0.020):
        e.sample("n2", r)
    assert e.min_rtt("n2") == 0.0002 and e.srtt("n2") == pytest.approx(0.00447, rel=0.01)
    assert stores_in_flight(e.min_rtt("n2"), 1) == 1 and stores_in_flight(e.srtt("n2"), 1) == 2
    for _ in range(MIN_RTT_SAMPLES):
        e.sample("n2", 0.010)
    assert e.min_rtt("n2") == 0.010 and stores_in_flight(e.min_rtt("n2"), 1) == 5


def test_estimator_backs_off_on_silence_and_a_sample_resets_it():
    e = RttEstimator(max_backoff=8)
    e.sample("n2", 0.1)
    rto = e.rto("n2")
    assert e.timeout("n2", 0.05) == pytest.approx(rto)
    for expected in (2, 4, 8, 8):
        e.unanswered("n2")
        assert e.timeout("n2", 0.05) == pytest.approx(rto * expected)
        assert e.timeout("n2", 1.0) == pytest.approx(1.0 * expected)  # the base backs off too
    assert e.rto("n2") == pytest.approx(rto) and e.stretch("n2", 0.05) == pytest.approx(rto)  # margins and resends do not
    e.sample("n2", 0.1)  # the answer that ends the silence is held: still backed off
    assert e.timeout("n2", 0.05) == pytest.approx(rto * 8) and e.rto("n2") == pytest.approx(rto) and e.srtt("n2") == pytest.approx(0.1)
    e.sample("n2", 0.1)  # the next one confirms it: taken, and the back-off is over
    assert e.timeout("n2", 0.05) == pytest.approx(e.rto("n2"))
    # a peer whose one call went unanswered (a delay grown past a deadline): its deadline backs
    # off from the base, and the answer is taken as it is
    e.unanswered("n9")
    assert e.timeout("n9", 0.4) == pytest.approx(0.8) and e.rto("n9") == 0 and e.srtt("n9") is None
    e.sample("n9", 0.6)
    assert e.srtt("n9") == pytest.approx(0.6) and e.timeout("n9", 0.4) == pytest.approx(0.6 + 4 * 0.3)
    # ... but after two in a row (an outage), the answer that ends it is held until the next
    e.unanswered("n8")
    e.unanswered("n8")
    e.sample("n8", 0.6)  # held: not a sample yet, but the timeouts allow for it at once
    assert e.srtt("n8") is None and e.rto("n8") == pytest.approx(0.6) and e.timeout("n8", 0.4) == pytest.approx(2.4)
    e.sample("n8", 0.6)
    assert e.srtt("n8") == pytest.approx(0.6) and e.timeout("n8", 0.4) == pytest.approx(0.6 + 4 * 0.3)


def test_a_partitions_backlog_is_not_a_round_trip():
    """Over TCP, a ping sent into a partition is answered when it heals, seconds later. That
    one late answer ends a silence and is held; the next, fast one is the sample: the
    round-trip timeout stays a loopback one instead of 0.7 s for seconds after the heal."""
    e = RttEstimator()
    for _ in range(50):
        e.sample("n2", 0.0002)
    before = e.rto("n2")
    for _ in range(3):
        e.unanswered("n2")  # the partition
    e.sample("n2", 2.5)  # the backlog, answered after the heal: held (allowed for until the next)
    assert e.rto("n2") == pytest.approx(2.5) and e.srtt("n2") == pytest.approx(0.0002, rel=0.01)
    e.sample("n2", 0.0002)
    assert e.rto("n2") == pytest.approx(before, abs=0.001) and e.timeout("n2", 0.4) == pytest.approx(0.4)
    # the same late answer taken as a sample (the rule it replaces) inflates it for seconds
    plain = RttEstimator()
    for _ in range(50):
        plain.sample("n2", 0.0002)
    plain.sample("n2", 2.5)
    assert plain.rto("n2") > 0.5


def test_overall_deadlines_stretch_only_with_an_estimator():
    from delos_ref.rtt import OVERALL_ROUND_TRIPS, overall

    assert overall(None, 2.0) == 2.0  # the simulator: the constant exactly
    e = RttEstimator()
    assert overall(e, 2.0) == 2.0  # nothing measured yet
    e.sample("n2", 0.01)
    assert overall(e, 2.0) == 2.0  # a fast network keeps the loopback constant
    e.sample("n3", 0.3)  # a slow peer: its rto (0.3 + 4 * 0.15) sets the bound
    assert overall(e, 2.0) == pytest.approx(OVERALL_ROUND_TRIPS * 0.9)
    assert overall(e, 2.0, round_trips=2) == pytest.approx(2.0)


def _pair(delay_s: float, measure: bool, *, answer: bool = True):
    net = SimNetwork("1", link=LinkModel(delay_s, delay_s))
    client = Node("c", net.attach("c"), measure_rtt=measure)
    server = Node("s", net.attach("s"))
    if answer:
        server.add_role("ping", PingCore("s", 1, lambda want: ((), {})))
    return net, client, server


def _run(net, nodes, body):
    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            for n in nodes:
                await nursery.start(n.run)
            result = await body()
            nursery.cancel_scope.cancel()
        return result

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_pings_measure_the_round_trip_and_resends_wait_for_it():
    """A 2 x 150 ms round trip: measured by pings; then a call to a silent peer (the server,
    taken down) resends no sooner than the measured timeout -- RESEND alone would resend
    after 50 ms, that is six times before a reply could come back."""

    def run(measure: bool) -> tuple[float | None, int]:
        net, client, server = _pair(0.15, measure)

        async def body():
            for _ in range(5):
                await client.endpoint.call("s", Ping(), timeout_s=2, sample_rtt=True)  # one send each, like heartbeats
            resends = client.endpoint.stats["resends"]
            net.take_down("s")  # the server goes silent
            with pytest.raises(CallTimeout):
                await client.endpoint.call("s", Ping(), timeout_s=1.0, retry=RESEND)
            return client.endpoint.stats["resends"] - resends

        resends = _run(net, [client, server], body)
        return (client.endpoint.rtt.srtt("s") if measure else None), resends

    srtt, adaptive_resends = run(True)
    _, constant_resends = run(False)
    assert srtt == pytest.approx(0.3, abs=0.01)
    assert adaptive_resends <= 2 < 4 <= constant_resends, (adaptive_resends, constant_resends)


def test_a_call_that_times_out_backs_the_peer_off():
    net, client, server = _pair(0.05, True, answer=True)

    async def body():
        await client.endpoint.call("s", Ping(), timeout_s=1, sample_rtt=True)
        net.take_down("s")
        with pytest.raises(CallTimeout):
            await client.endpoint.call("s", Ping(), timeout_s=0.5, sample_rtt=True)
        return client.endpoint.rtt.timeout("s", 0.01) / client.endpoint.rtt.rto("s")

    assert _run(net, [client, server], body) == 2


def test_heartbeats_get_through_when_the_round_trip_jumps_past_their_deadline():
    """The supervisor's heartbeat loop in miniature: a 0.4 s deadline (suspect_s / 2), backed
    off while unanswered, on a link whose round trip is 0.6 s. Without the back-off no ping
    is ever answered in time, so no sample comes and a dead node could never be told apart
    from a slow network."""
    net, client, server = _pair(0.3, True)

    async def body():
        answered = 0
        for _ in range(6):
            try:
                await client.endpoint.call("s", Ping(), timeout_s=client.endpoint.rtt.timeout("s", 0.4), sample_rtt=True)
                answered += 1
            except CallTimeout:
                pass
        return answered

    assert _run(net, [client, server], body) >= 4
    assert client.endpoint.rtt.srtt("s") == pytest.approx(0.6, abs=0.01)


def test_the_failure_detector_adds_the_margin_to_suspect_s():
    options = SupervisorOptions()
    d = FailureDetector("n1", ("n2", "n3"), 0.0, options)
    d.heard("n2", 1.0)
    d.heard("n3", 1.0)
    d.margin["n2"] = 0.3
    t = 1.0 + options.suspect_s + 0.1
    assert d.alive("n2", t) and not d.alive("n3", t)
    assert not d.alive("n2", 1.0 + options.suspect_s + 0.31)
    assert d.hearing(t) == 1


class _TimerCore:
    """Sets timer "tick" for 50 ms on each input; records when it fires."""

    handles = (Ping,)

    def __init__(self) -> None:
        self.fired: list[float] = []

    def handle(self, item):
        if isinstance(item, TimerFired):
            self.fired.append(trio.current_time())
            return []
        return [SetTimer("tick", 0.05)]


@pytest.mark.parametrize("floor", [None, 0.2])
def test_a_timer_floor_makes_a_timer_wait_longer(floor):
    net = SimNetwork("1")
    node = Node("n", net.attach("n"))
    core = _TimerCore()
    node.add_role("t", core, timer_floors=None if floor is None else {"tick": lambda: floor})

    async def body():
        start = trio.current_time()
        node.roles["t"].submit_nowait(object())
        await trio.sleep(1)
        return [t - start for t in core.fired]

    fired = _run(net, [node], body)
    assert fired == [pytest.approx(0.05 if floor is None else 0.2)]


def test_a_client_keeps_more_coalesced_requests_in_flight_across_a_slow_network():
    """``NativeOptions.coalesce_requests`` stretches like the sequencer's Stores in flight: one
    request per 2 ms of measured round trip to the sequencer (10 ms: five), never shrunk;
    without an estimator (the simulator) it stays as configured."""
    from delos_ref.loglet.native import NativeLogletConfig, NativeOptions
    from delos_ref.loglet.native.client import NativeLoglet

    cfg = NativeLogletConfig("L", "s", ("s",))
    _, measured, _ = _pair(0.005, True)
    loglet = NativeLoglet(measured, cfg, options=NativeOptions(coalesce_requests=2))
    loglet._stretch_slots()
    assert loglet._slot_count == 2, "nothing measured yet: as configured"
    measured.endpoint.rtt.sample("s", 0.010)
    loglet._stretch_slots()
    assert loglet._slot_count == 5 and loglet._slots.value == 5
    for _ in range(50):
        measured.endpoint.rtt.sample("s", 0.0001)
    loglet._stretch_slots()
    assert loglet._slot_count == 5, "stretched, never shrunk"
    _, plain, _ = _pair(0.005, False)
    constant = NativeLoglet(plain, cfg, options=NativeOptions(coalesce_requests=2))
    constant._stretch_slots()
    assert constant._slot_count == 2 and constant._slots.value == 2
