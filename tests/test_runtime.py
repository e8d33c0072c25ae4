"""The runtime's rules (delos_ref/runtime.py): persist before send, group commit, timers,
storage that loses exactly the unsynced writes in a crash (delos_ref/storage.py), and the RPC
resend schedule on lossy and reliable transports (delos_ref/rpc.py)."""

from __future__ import annotations


import pytest
import trio

from delos_ref.effects import CancelTimer, Emit, Incoming, Persist, Send, SetTimer, TimerFired, Write
from delos_ref.rpc import CallTimeout, RetryPolicy, RpcEndpoint
from delos_ref.runtime import Node, seeded_rng
from delos_ref.storage import DataDirInUse, LmdbStorage, MemoryStorage
from delos_ref.sim.workload_rpc import Echo
from transports.base import Transport, TransportStatistics


class RecordingStorage(MemoryStorage):
    def __init__(self, log):
        super().__init__()
        self.log = log

    def write(self, writes, sync=True):
        self.log.append(("persist", len(list(writes)), sync))
        super().write(writes, sync)


class RecordingTransport:
    def __init__(self, node_id, log):
        self.node_id = node_id
        self.log = log

    async def send(self, env, *, wait=True):
        self.log.append(("send", env.dst))

    async def receive(self):
        await trio.sleep_forever()

    def statistics(self):
        from transports.base import TransportStatistics

        return TransportStatistics()


class SendThenPersist:
    """Returns its effects in the *wrong* order on purpose: a send listed before a persist."""

    handles = (Echo,)

    def handle(self, item):
        if isinstance(item, TimerFired):
            return [Send("peer", Echo(99, False))]
        return [Send("peer", Echo(item.msg.nonce, False)), Persist((Write("t", b"k%d" % item.msg.nonce, b"v"),)), SetTimer("t1", 1.0), SetTimer("t2", 2.0), CancelTimer("t2")]


async def test_every_persist_of_a_batch_is_synced_before_any_send(autojump_clock):
    log = []
    node = Node("n", RecordingTransport("n", log))
    storage = RecordingStorage(log)
    runner = node.add_role("r", SendThenPersist(), storage)
    for i in range(5):
        runner.submit_nowait(Incoming("peer", 0, Echo(i, False)))
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await trio.sleep(0.01)
        first_send = next(i for i, e in enumerate(log) if e[0] == "send")
        assert log[0] == ("persist", 5, True), "one synced write for the whole batch (group commit)"
        assert first_send > 0
        assert storage.syncs == 1
        nursery.cancel_scope.cancel()


class SendThenEmit:
    """Returns a send listed before the trace event of the same step (on purpose)."""

    handles = (Echo,)

    def handle(self, item):
        return [Send("peer", Echo(item.msg.nonce, False)), Emit("Echoed", {"nonce": item.msg.nonce})]


class FileCheckingTransport(RecordingTransport):
    """At each send, records how many trace lines the node's file holds (what a kill -9 keeps)."""

    def __init__(self, node_id, log, path):
        super().__init__(node_id, log)
        self.path = path

    async def send(self, env, *, wait=True):
        with open(self.path) as fp:
            self.log.append(("send", fp.read().count("\n")))


async def test_a_steps_trace_events_reach_the_file_before_its_messages_leave(autojump_clock, tmp_path):
    """Log before send: a node killed right after sending has every event of the step in its
    trace file (the kernel has it; no user-space buffer to lose)."""
    from delos_ref.trace import FileSink

    path = tmp_path / "trace.ndjson"
    log = []
    sink = FileSink(lambda: 0.0, str(path))
    node = Node("n", FileCheckingTransport("n", log, path), trace=sink)
    runner = node.add_role("r", SendThenEmit())
    for i in range(3):
        runner.submit_nowait(Incoming("peer", 0, Echo(i, False)))
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert log == [("send", 3)] * 3, "every send of the batch found the batch's 3 events already written"
    sink.close()


async def test_timers_fire_once_and_cancel_works(autojump_clock):
    log = []
    node = Node("n", RecordingTransport("n", log))
    runner = node.add_role("r", SendThenPersist(), RecordingStorage([]))
    runner.submit_nowait(Incoming("peer", 0, Echo(1, False)))
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await trio.sleep(0.5)
        assert log.count(("send", "peer")) == 1
        await trio.sleep(1.0)  # t1 fired (one extra send); t2 was cancelled
        assert log.count(("send", "peer")) == 2
        await trio.sleep(5.0)
        assert log.count(("send", "peer")) == 2
        nursery.cancel_scope.cancel()


def test_memory_storage_crash_loses_only_unsynced_writes():
    s = MemoryStorage()
    s.write([Write("t", b"a", b"1")], sync=True)
    s.write([Write("t", b"b", b"2")], sync=False)
    assert s.get("t", b"b") == b"2"
    s.crash()
    assert s.get("t", b"a") == b"1" and s.get("t", b"b") is None
    assert s.scan("t") == [(b"a", b"1")]


def test_lmdb_storage_survives_reopen_and_locks_its_directory(tmp_path):
    s = LmdbStorage(tmp_path / "db", ["t"])
    s.write([Write("t", b"\x00\x01", b"x"), Write("t", b"\x00\x02", b"y")])
    with pytest.raises(DataDirInUse):
        LmdbStorage(tmp_path / "db", ["t"])
    s.close()
    again = LmdbStorage(tmp_path / "db", ["t"])
    assert again.scan("t") == [(b"\x00\x01", b"x"), (b"\x00\x02", b"y")]
    assert again.last("t") == (b"\x00\x02", b"y")
    again.write([Write("t", b"\x00\x01", None)])
    assert again.get("t", b"\x00\x01") is None
    again.close()


def test_seeded_rng_is_independent_of_hash_randomization():
    assert seeded_rng("7", "node", "n1").random() == seeded_rng("7", "node", "n1").random()
    assert seeded_rng("7", "node", "n1").random() != seeded_rng("7", "node", "n2").random()




class FlushAfterInputs:
    """Records what it sees; an input arms a zero-delay "flush" timer unless armed, as the sequencer does."""

    handles = (Echo,)

    def __init__(self):
        self.seen = []
        self.armed = False

    def handle(self, item):
        if isinstance(item, TimerFired):
            self.seen.append(item.name)
            self.armed = False
            return []
        self.seen.append(item.msg.nonce)
        if item.msg.nonce == 3:
            return [SetTimer("flush", 0.0), CancelTimer("flush")]  # set and cancelled: never fires
        if self.armed:
            return []
        self.armed = True
        return [SetTimer("flush", 0.0)]


async def test_zero_delay_timer_fires_once_after_the_inputs_already_queued(autojump_clock):
    core = FlushAfterInputs()
    node = Node("n", RecordingTransport("n", []))
    runner = node.add_role("r", core, max_batch=2)
    for i in range(3):
        runner.submit_nowait(Incoming("peer", 0, Echo(i, False)))
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await trio.sleep(0.01)
        # Batch [0, 1] arms flush; it fires after input 2, which was already queued.
        assert core.seen == [0, 1, 2, "flush"]
        runner.submit_nowait(Incoming("peer", 0, Echo(3, False)))
        await trio.sleep(0.01)
        assert core.seen == [0, 1, 2, "flush", 3], "a cancelled zero-delay timer does not fire"
        runner.submit_nowait(Incoming("peer", 0, Echo(4, False)))
        await trio.sleep(1.0)
        assert core.seen == [0, 1, 2, "flush", 3, 4, "flush"]
        nursery.cancel_scope.cancel()


class SilentTransport(Transport):
    """Records when requests leave; never answers."""

    def __init__(self, reliable: bool):
        self.node_id = "n"
        self.reliable = reliable
        self.sent_at = []

    async def send(self, env, *, wait=True):
        self.sent_at.append(trio.current_time())

    async def receive(self):
        await trio.sleep_forever()

    def statistics(self):
        return TransportStatistics()

    async def aclose(self):
        pass


@pytest.mark.parametrize("reliable", [False, True])
async def test_rpc_resends_later_on_a_reliable_transport(autojump_clock, reliable):
    policy = RetryPolicy(max_sends=16, first_s=0.02, max_s=0.25, reliable_first_s=0.5)
    transport = SilentTransport(reliable)
    endpoint = RpcEndpoint(transport, seeded_rng("test"))
    with pytest.raises(CallTimeout):
        await endpoint.call("peer", Echo(1, True), timeout_s=2.0, retry=policy)
    gaps = [b - a for a, b in zip(transport.sent_at, transport.sent_at[1:])]
    if reliable:  # no resend before 0.5 s (less 20% jitter); later ones no sooner either
        assert len(transport.sent_at) >= 2 and min(gaps) >= 0.4
    else:  # the lossy schedule: 20 ms, then doubling up to 250 ms
        assert gaps[0] <= 0.025 and max(gaps) <= 0.3 and len(transport.sent_at) >= 8


class _CountingWatch:
    """A :class:`~delos_ref.rpc.Watch` that records when it checks, and gives up at ``give_up_at``
    checks (by raising), or answers the call during its check (``answer``)."""

    def __init__(self, first_s: float, every_s: float, give_up_at: int = 0, answer=None):
        self.first_s, self.every_s = first_s, every_s
        self.give_up_at, self.answer = give_up_at, answer
        self.checks = []

    async def check(self):
        from delos_ref.rpc import UnknownOutcome

        self.checks.append(trio.current_time())
        await trio.sleep(0.1)  # a ping's round trip
        if self.answer is not None:
            self.answer()
        if len(self.checks) == self.give_up_at:
            raise UnknownOutcome("watch gave up")


async def test_a_watched_call_checks_on_schedule_and_keeps_its_deadline(autojump_clock):
    """One send; checks after first_s, then every every_s; the deadline bounds it all."""
    transport = SilentTransport(True)
    endpoint = RpcEndpoint(transport, seeded_rng("test"))
    watch = _CountingWatch(first_s=0.5, every_s=0.5)
    start = trio.current_time()
    with pytest.raises(CallTimeout):
        await endpoint.call("peer", Echo(1, True), timeout_s=2.0, watch=watch)
    assert len(transport.sent_at) == 1 and trio.current_time() - start == pytest.approx(2.0)
    assert [round(t - start, 3) for t in watch.checks] == [0.5, 1.1, 1.7]  # each after a 0.1 s check
    assert endpoint.statistics()["pending"] == 0


async def test_a_watched_call_is_given_up_by_its_watch_unless_the_answer_came(autojump_clock):
    from delos_ref.rpc import KIND_REPLY, UnknownOutcome
    from transports.codec import Envelope

    endpoint = RpcEndpoint(SilentTransport(True), seeded_rng("test"))
    with pytest.raises(UnknownOutcome, match="watch gave up"):  # checks at once, gives up at the 2nd
        await endpoint.call("peer", Echo(1, True), timeout_s=5.0, watch=_CountingWatch(0.0, 0.3, give_up_at=2))
    assert trio.current_time() == pytest.approx(0.1 + 0.3 + 0.1)
    rid = endpoint.peek_next_rid()

    def reply():
        endpoint.deliver_reply(Envelope("peer", "n", KIND_REPLY, rid, "pong"))

    # the reply arrives while the watch checks, and the watch gives up: the reply wins
    assert await endpoint.call("peer", Echo(2, True), timeout_s=5.0, watch=_CountingWatch(0.2, 0.3, give_up_at=1, answer=reply)) == "pong"


# ------------------------------------------------- roles on the same node (issue 23)


async def test_a_call_to_a_role_on_the_same_node_is_handed_over_in_process(autojump_clock):
    from delos_ref.rpc import RemoteError
    from delos_ref.sim.workload_rpc import EchoCore, EchoReply

    log = []
    node = Node("n", RecordingTransport("n", log), in_process=True)
    node.add_role("echo", EchoCore("n"))
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        assert await node.endpoint.call("n", Echo(7, False), timeout_s=1.0) == EchoReply(7, "n")
        with pytest.raises(RemoteError):
            await node.endpoint.call("n", Echo(8, True), timeout_s=1.0)
        assert log == [], "neither the requests nor the replies went through the transport"
        assert node.endpoint.stats["local"] == 4  # two requests, a reply and a refusal
        nursery.cancel_scope.cancel()


async def test_a_full_inbox_sends_by_the_transport_instead_of_blocking_the_sender(autojump_clock):
    log = []
    node = Node("n", RecordingTransport("n", log), in_process=True)
    node.add_role("echo", FlushAfterInputs(), inbox_size=1)  # not running: its inbox fills up
    await node.endpoint.cast("n", Echo(1, False))
    assert log == [], "the first fits in the inbox"
    with trio.fail_after(1.0):
        await node.endpoint.cast("n", Echo(2, False))
    assert log == [("send", "n")], "the second, with the inbox full, left by the transport"


async def test_without_in_process_a_message_to_the_same_node_uses_the_transport(autojump_clock):
    log = []
    node = Node("n", RecordingTransport("n", log))  # the simulator's nodes: every message is a network event
    node.add_role("echo", FlushAfterInputs())
    await node.endpoint.cast("n", Echo(1, False))
    assert log == [("send", "n")]
