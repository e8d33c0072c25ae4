"""The link shaper's pure model (``transports/shaper.py``), its I/O wrapper on a fake transport
under a mock clock, the ``net`` role, the operator's plans (``delos_ref/netctl.py``) and the
command line's parsers (``cli/net.py``). No processes."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from cli.net import parse_duration, parse_loss, parse_partition
from delos_ref.effects import Fail, Incoming, Reply
from delos_ref.netctl import NetControlCore, NetSet, NetShow, NetState, plan_delay, plan_heal, plan_loss, plan_partition, summary
from delos_ref.runtime import seeded_rng
from transports.base import Transport, TransportStatistics
from transports.codec import KIND_ONEWAY, Envelope, FrameCodec
from transports.memory import SimNetwork
from transports.shaper import PERFECT, LinkModel, LinkShaper, NetConditions, ShapedTransport, link_fate

# ------------------------------------------------------------------------- link_fate


def test_link_fate_draws_loss_then_duplication_then_delay_and_spike_per_copy():
    link = LinkModel(0.004, 0.006, loss=0.3, duplicate=0.2, spike=0.1, spike_factor=10)
    a, b = random.Random(5), random.Random(5)
    for _ in range(2000):
        fate = link_fate(link, a)
        # the same draws, written out in the order the simulator has always made them
        if b.random() < link.loss:
            assert fate == ()
            continue
        copies = 2 if b.random() < link.duplicate else 1
        expected = []
        for _ in range(copies):
            d = b.uniform(link.delay_min_s, link.delay_max_s)
            expected.append(d * link.spike_factor if b.random() < link.spike else d)
        assert fate == tuple(expected)


def test_link_fate_loses_at_the_configured_rate_and_delays_within_the_range():
    rng = random.Random(1)
    link = LinkModel.shaped(0.005, 0.001, loss=0.02)
    fates = [link_fate(link, rng) for _ in range(20_000)]
    lost = sum(1 for f in fates if not f)
    assert 300 <= lost <= 500  # 2% of 20,000 = 400; +-5 standard deviations is about +-100
    delays = [f[0] for f in fates if f]
    assert min(delays) >= 0.004 and max(delays) <= 0.006
    assert max(delays) - min(delays) > 0.0018  # the jitter is used, not a constant


def test_shaped_link_never_goes_below_zero_and_perfect_means_nothing_happens():
    assert LinkModel.shaped(0.001, 0.002).delay_min_s == 0.0
    assert PERFECT.perfect and not LinkModel.shaped(0.001).perfect and not LinkModel.shaped(0, 0, 0.5).perfect
    assert NetConditions().perfect and not NetConditions(cut=frozenset({"n2"})).perfect


def test_the_simulator_decides_with_link_fate(monkeypatch):
    """SimNetwork's fates come from the shared model: replace it and the simulator follows."""
    import transports.memory as memory

    calls = []

    def spy(link, rng):
        calls.append(link)
        return ()  # lose everything

    monkeypatch.setattr(memory, "link_fate", spy)

    async def main():
        net = SimNetwork("7", link=LinkModel(0.001, 0.002))
        a, b = net.attach("a"), net.attach("b")
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            await a.send(Envelope("a", "b", KIND_ONEWAY, 0, NetShow()))
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        return net.stats

    stats = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(calls) == 1 and stats["lost"] == 1 and stats["delivered"] == 0


# ------------------------------------------------------------------------ LinkShaper


def test_shaper_cuts_loses_and_holds_per_peer():
    s = LinkShaper("n1")
    assert not s.active and s.fate("n2", 10.0) == (10.0,)
    s.set(NetConditions(default=LinkModel.shaped(0.005), links={"n3": LinkModel.shaped(0, 0, 1.0)}, cut=frozenset({"n2"})))
    assert s.active
    assert s.fate("n2", 10.0) is None  # cut
    assert s.fate("n3", 10.0) == ()  # lost (loss 100%)
    assert s.fate("cli-1", 10.0) == pytest.approx((10.005,))  # the default link, clients too
    assert s.stats == {"held": 1, "lost": 1, "cut": 1, "duplicated": 0}
    assert s.fate("n1", 10.0) == (10.0,)  # to itself: no network, no delay


def test_shaper_draws_from_the_simulators_seed_tree():
    link = LinkModel.shaped(0.005, 0.002, loss=0.1)
    s = LinkShaper("n1")
    s.set(NetConditions(seed="42", default=link))
    mine = [s.fate("n2", 0.0) for _ in range(200)]
    rng = seeded_rng("42", "link", "n1", "n2")  # the stream SimNetwork("42") gives link n1->n2
    assert mine == [link_fate(link, rng) for _ in range(200)]
    s.set(NetConditions(seed="43", default=link))  # a new seed restarts the streams
    assert [s.fate("n2", 0.0) for _ in range(200)] != mine


def test_fifo_shaper_never_releases_a_message_before_an_earlier_one():
    s = LinkShaper("n1", fifo=True)
    s.set(NetConditions(default=LinkModel.shaped(0.005, 0.005)))
    releases = [s.fate("n2", i * 0.0001)[0] for i in range(500)]
    assert releases == sorted(releases)
    loose = LinkShaper("n1")
    loose.set(NetConditions(default=LinkModel.shaped(0.005, 0.005)))
    unordered = [loose.fate("n2", i * 0.0001)[0] for i in range(500)]
    assert unordered != sorted(unordered)  # without fifo, jitter reorders (as on UDP)


def test_conditions_survive_the_wire_and_bad_data_is_refused():
    c = NetConditions("9", LinkModel.shaped(0.005, 0.001, 0.02), {"n2": LinkModel.shaped(0.01)}, frozenset({"n3"}))
    assert NetConditions.from_data(c.as_data()) == c
    codec = FrameCodec()
    env = codec.decode(codec.encode(Envelope("a", "b", KIND_ONEWAY, 0, NetSet(c.as_data()))))
    assert NetConditions.from_data(env.payload.conditions) == c
    with pytest.raises(ValueError):
        NetConditions.from_data({"default": {"delay_min_s": 0.5, "delay_max_s": 0.1}})
    with pytest.raises(ValueError):
        NetConditions.from_data({"links": ["n2"]})


# -------------------------------------------------------------------- ShapedTransport


class FakeTransport(Transport):
    """Records what is sent, with the (mock) time it was sent at."""

    def __init__(self, reliable: bool) -> None:
        self.node_id = "n1"
        self.reliable = reliable
        self.sent: list[tuple[float, str, int]] = []

    async def send(self, env: Envelope, *, wait: bool = True) -> None:
        self.sent.append((trio.current_time(), env.dst, env.rid))

    async def receive(self) -> Envelope:
        await trio.sleep_forever()

    def statistics(self) -> TransportStatistics:
        return TransportStatistics(sent=len(self.sent))

    async def aclose(self) -> None:
        pass


def _run_shaped(reliable: bool, conditions: NetConditions, script) -> tuple[FakeTransport, ShapedTransport]:
    inner = FakeTransport(reliable)
    shaped = ShapedTransport(inner)

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(shaped.run)
            shaped.set_conditions(conditions)
            await script(shaped)
            await trio.sleep(1)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return inner, shaped


def test_shaped_transport_holds_each_message_for_its_delay():
    async def script(t):
        start = trio.current_time()
        for rid in range(50):
            await t.send(Envelope("n1", "n2", KIND_ONEWAY, rid, None))
        t.start = start

    inner, shaped = _run_shaped(True, NetConditions(default=LinkModel.shaped(0.005, 0.001)), script)
    assert [rid for _, _, rid in inner.sent] == list(range(50))  # TCP: order kept
    waits = [t - shaped.start for t, _, _ in inner.sent]
    assert min(waits) >= 0.004 - 1e-9 and max(waits) <= 0.006 + 1e-9
    assert shaped.statistics().extra["shaper_held"] == 50 and shaped.statistics().sent == 50


class StuckPeerTransport(FakeTransport):
    """Like a TCP transport whose queue to ``n2`` is full: a send to it waits forever, unless
    ``wait=False`` (then it is dropped, as a full queue drops it)."""

    async def send(self, env: Envelope, *, wait: bool = True) -> None:
        if env.dst == "n2":
            if wait:
                await trio.sleep_forever()
            return
        await super().send(env)


def test_a_peer_that_does_not_read_does_not_hold_the_release_of_the_others():
    inner = StuckPeerTransport(True)
    shaped = ShapedTransport(inner)

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(shaped.run)
            shaped.set_conditions(NetConditions(default=LinkModel.shaped(0.005)))
            for rid in range(10):
                await shaped.send(Envelope("n1", "n2" if rid % 2 else "n3", KIND_ONEWAY, rid, None))
            await trio.sleep(1)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert [(dst, rid) for _, dst, rid in inner.sent] == [("n3", rid) for rid in range(0, 10, 2)]


def test_a_cut_made_while_a_message_is_held_drops_it():
    async def script(t):
        await t.send(Envelope("n1", "n2", KIND_ONEWAY, 1, None))
        await t.send(Envelope("n1", "n3", KIND_ONEWAY, 2, None))
        t.set_conditions(NetConditions(default=LinkModel.shaped(0.1), cut=frozenset({"n2"})))

    inner, shaped = _run_shaped(False, NetConditions(default=LinkModel.shaped(0.1)), script)
    assert [(dst, rid) for _, dst, rid in inner.sent] == [("n3", 2)]
    assert shaped.shaper.stats["cut"] == 1


def test_a_perfect_network_sends_at_once():
    async def script(t):
        t.set_conditions(NetConditions())
        await t.send(Envelope("n1", "n2", KIND_ONEWAY, 1, None))
        t.at = trio.current_time()

    inner, shaped = _run_shaped(False, NetConditions(), script)
    assert inner.sent == [(shaped.at, "n2", 1)]


# ----------------------------------------------------------------------- the net role


def test_net_role_applies_and_reports_conditions():
    applied = []
    state = {"c": NetConditions()}

    def apply(c):
        applied.append(c)
        state["c"] = c

    core = NetControlCore("n1", apply, lambda: (state["c"], {"held": 3}))
    c = NetConditions(cut=frozenset({"n2"}))
    [reply] = core.handle(Incoming("cli-1", 7, NetSet(c.as_data())))
    assert isinstance(reply, Reply) and reply.rid == 7 and applied == [c]
    assert reply.msg == NetState("n1", c.as_data(), {"held": 3})
    [reply] = core.handle(Incoming("cli-1", 8, NetShow()))
    assert reply.msg.conditions == c.as_data() and applied == [c]
    [refused] = core.handle(Incoming("cli-1", 9, NetSet({"cut": 5})))
    assert isinstance(refused, Fail) and refused.code == "bad_conditions" and applied == [c]  # garbage: nothing applied
    assert core.statistics() == {"sets": 1, "conditions": c.as_data()}


# ------------------------------------------------------------------------------ plans

NODES = {n: NetConditions() for n in ("n1", "n2", "n3")}


def test_delay_on_every_link_or_on_the_named_nodes_links():
    every = plan_delay(NODES, 0.005, 0.001)
    assert all(c.default == LinkModel.shaped(0.005, 0.001) and not c.links for c in every.values())
    named = plan_delay(NODES, 0.02, 0.0, ["n1"])
    assert named["n1"].default == LinkModel.shaped(0.02)
    assert named["n2"].default == PERFECT and named["n2"].link("n1") == LinkModel.shaped(0.02) and named["n2"].link("n3") == PERFECT
    with pytest.raises(ValueError):
        plan_delay(NODES, 0.001, 0.002)


def test_loss_keeps_the_delay_and_the_seed_is_set_everywhere():
    plan = plan_loss(plan_delay(NODES, 0.005), 0.02, seed="7")
    assert all(c.default == LinkModel.shaped(0.005, 0, 0.02) and c.seed == "7" for c in plan.values())
    with pytest.raises(ValueError):
        plan_loss(NODES, 1.5)


def test_partitions_both_ways_one_way_and_heal():
    split = plan_partition(NODES, ["n1"], ["n2", "n3"])
    assert split["n1"].cut == {"n2", "n3"} and split["n2"].cut == {"n1"} and split["n3"].cut == {"n1"}
    one_way = plan_partition(NODES, ["n1"], ["n2"], one_way=True)
    assert one_way["n1"].cut == {"n2"} and not one_way["n2"].cut and not one_way["n3"].cut
    both = plan_partition(one_way, ["n3"], ["n2"], one_way=True)  # cuts add up
    assert both["n1"].cut == {"n2"} and both["n3"].cut == {"n2"}
    assert summary(both) == ["n1: to n2: cut", "n3: to n2: cut"]
    healed = plan_heal(plan_delay(both, 0.005, seed="3"))
    assert all(c == NetConditions(seed="3") for c in healed.values()) and summary(healed) == []
    with pytest.raises(ValueError):
        plan_partition(NODES, ["n1"], ["n1", "n2"])


# ---------------------------------------------------------------------------- parsers


def test_the_command_lines_values():
    assert parse_duration("5ms") == pytest.approx(0.005) and parse_duration("500us") == pytest.approx(0.0005)
    assert parse_duration("0.2s") == pytest.approx(0.2) and parse_duration("0") == 0
    for bad in ("5", "5x", "-1ms", "ms", "2m"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_loss("2%") == pytest.approx(0.02) and parse_loss("2") == pytest.approx(0.02) and parse_loss("0%") == 0
    for bad in ("101%", "-2%", "x"):
        with pytest.raises(ValueError):
            parse_loss(bad)
    assert parse_partition(["n1", "|", "n2,n3"]) == (["n1"], ["n2", "n3"], False)
    assert parse_partition(["n1>n2"]) == (["n1"], ["n2"], True)
    assert parse_partition(["n1", "n2", "|", "n3"]) == (["n1", "n2"], ["n3"], False)
    for bad in (["n1", "n2"], ["n1", "|", "n2", "|", "n3"], ["|", "n2"]):
        with pytest.raises(ValueError):
            parse_partition(bad)


# ------------------------------------------------------------------ dashboard and CLI


def test_the_dashboard_shows_each_nodes_network():
    from rich.console import Console

    from cli import dashboard

    cut = NetConditions(default=LinkModel.shaped(0.005, 0.001), cut=frozenset({"n2", "n3"}))
    report = {
        "cluster_id": "c0ffee", "transport": "tcp", "metastore": {"version": 1}, "chain": None, "tail": {},
        "nodes": [{"id": n, "address": "127.0.0.1:1", "pid": 1, "alive": True, "roles": ["ping"], "process": "running"} for n in ("n1", "n2", "n3")],
        "stats": {"n1": {"roles": {"net": {"conditions": cut.as_data()}}}, "n2": {"roles": {"net": {"conditions": NetConditions().as_data()}}}, "n3": None},
    }
    console = Console(record=True, width=200, file=open("/dev/null", "w"))
    console.print(dashboard.render(report, title="T"))
    text = console.export_text()
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip().startswith("n")}
    assert "network" in text
    assert "sends 5ms±1ms; to n2,n3: cut" in lines["n1"] and "perfect" in lines["n2"] and "perfect" not in lines["n3"]


def test_net_without_a_cluster_is_one_line_and_exit_1(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "cli.main", "net", "show", "--dir", str(tmp_path / "none")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    bad = subprocess.run([sys.executable, "-m", "cli.main", "net", "loss", "200%", "--dir", str(tmp_path / "none")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr, bad.stderr
