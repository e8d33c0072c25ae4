"""Table tests of the labs whose rule is asynchronous (it waits on other nodes): each case is
a short scripted scenario on the simulator, in virtual time, with no random faults.

The rules of ``register``, ``check_tail``, ``reconfigure``, ``roll_forward`` and ``sync_read``
live in trio code that calls other nodes, so a case cannot feed one message and read the
effects as :mod:`.tables` does. Instead it builds the few nodes the rule needs (three
acceptors; three LogServers and a sequencer; a VirtualLog over memory loglets; a database of
three replicas), drives them through one situation the rule must handle, and asserts the
outcome the paper promises. Each runs under a mock clock with a bound of
:data:`CASE_BOUND_S` virtual seconds, so a version that hangs fails instead of blocking.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Awaitable, Callable

import trio
import trio.testing

#: Virtual seconds a scenario may take before it counts as hung.
CASE_BOUND_S = 60.0
SERVERS = ("s1", "s2", "s3")


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        with trio.fail_after(CASE_BOUND_S):
            await scenario()

    try:
        trio.run(bounded, clock=trio.testing.MockClock(autojump_threshold=0))
    except trio.TooSlowError:
        raise AssertionError(f"the scenario did not finish within {CASE_BOUND_S:g} virtual seconds (hung?)") from None


# ------------------------------------------------------------------------------ register


@contextlib.asynccontextmanager
async def _metastore() -> AsyncIterator[Callable[[str], Any]]:
    from delos_ref.sim import Simulation
    from paxos.acceptor import Acceptor
    from paxos.register import ClientTimeouts, MetaStoreClient

    def build(node: Any, storage_for: Any) -> None:
        storage = storage_for("paxos")
        node.add_role("acceptor", Acceptor.recover(storage), storage)

    async with Simulation(0).run() as sim:
        for name in SERVERS:
            sim.add_node(name, build)

        def client(name: str) -> Any:
            node = sim.client(name)
            return MetaStoreClient(node.endpoint, SERVERS, node.rng("metastore"), name, timeouts=ClientTimeouts(deadline_s=2.0, call_timeout_s=0.2))

        yield client


def register_writes_the_next_version_and_another_client_reads_it() -> None:
    """write_if(v, x) at version v writes version v + 1: Written(v + 1), read by every client."""
    from paxos.register import Written

    async def scenario() -> None:
        async with _metastore() as client:
            c1, c2 = client("c1"), client("c2")
            got = await c1.write_if(0, b"a")
            assert got == Written(1), f"write_if(0, a) on an empty register must be Written(1), got {got!r}"
            read = await c2.read()
            assert read == (1, b"a"), f"another client must then read (1, a), read {read!r}"
            got = await c2.write_if(1, b"b")
            assert got == Written(2), f"write_if(1, b) at version 1 must be Written(2), got {got!r}"

    _run(scenario)


def register_refuses_a_stale_version() -> None:
    """write_if with a version the register has passed is a Conflict carrying the current
    (version, value): never a write, never a success."""
    from paxos.register import Conflict

    async def scenario() -> None:
        async with _metastore() as client:
            c1, c2 = client("c1"), client("c2")
            await c1.write_if(0, b"a")
            await c1.write_if(1, b"b")
            for expected in (0, 1):
                got = await c2.write_if(expected, b"late")
                assert got == Conflict(2, b"b"), f"write_if({expected}, late) at version 2 must be Conflict(2, b), got {got!r}"
            read = await c1.read()
            assert read == (2, b"b"), f"a refused write must change nothing: read {read!r}"

    _run(scenario)


def register_refuses_a_version_from_the_future() -> None:
    """Versions are gapless: write_if(5, x) on a register at version 1 is a Conflict(1, ...)."""
    from paxos.register import Conflict

    async def scenario() -> None:
        async with _metastore() as client:
            await client("c1").write_if(0, b"a")
            got = await client("c2").write_if(5, b"far")
            assert got == Conflict(1, b"a"), f"write_if(5, far) at version 1 must be Conflict(1, a), got {got!r}"

    _run(scenario)


def register_racing_writers_win_once() -> None:
    """Two write_if(0, ...) at once: exactly one is Written(1); the other a Conflict with it."""
    from paxos.register import Conflict, Written

    async def scenario() -> None:
        async with _metastore() as client:
            results: dict[str, Any] = {}

            async def write(name: str) -> None:
                results[name] = await client(name).write_if(0, name.encode())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(write, "c1")
                nursery.start_soon(write, "c2")
            won = [n for n, r in results.items() if r == Written(1)]
            assert len(won) == 1, f"exactly one racer must win version 1, got {results!r}"
            lost = next(n for n in results if n not in won)
            assert results[lost] == Conflict(1, won[0].encode()), f"the loser must see the winner's value, got {results!r}"

    _run(scenario)


# ---------------------------------------------------------------------------- check_tail


@contextlib.asynccontextmanager
async def _native() -> AsyncIterator[tuple[Any, Any]]:
    from delos_ref.sim import Simulation
    from delos_ref.sim.workload_loglet import SimNativeHarness, start_native

    async with Simulation(3).run() as sim:
        yield sim, SimNativeHarness(sim, start_native(sim))


async def _append_n(loglet: Any, n: int) -> None:
    for i in range(n):
        await loglet.append(b"e%d" % i)


def check_tail_of_a_sealed_loglet_reports_its_tail_sealed() -> None:
    """After seal, check_tail returns the sealed tail with sealed=True."""
    from delos_ref.loglet import Tail

    async def scenario() -> None:
        async with _native() as (sim, h):
            c = h.client("c1")
            await _append_n(c, 3)
            await c.seal()
            got = await c.check_tail()
            assert got == Tail(3, True), f"3 entries, then seal: check_tail must be Tail(3, sealed=True), got {got!r}"

    _run(scenario)


def check_tail_repairs_the_tail_onto_a_majority() -> None:
    """A sealed tail is returned only once a majority holds every entry below it (repair):
    s2 missed the appends, s3 then crashed; check_tail must copy them onto s2."""
    from delos_ref.loglet import Tail
    from delos_ref.sim.workload_loglet import durable_tail

    async def scenario() -> None:
        async with _native() as (sim, h):
            sim.cut("q1", "s2")  # s2 never hears from the sequencer
            c = h.client("c1")
            await _append_n(c, 5)
            await c.seal()
            sim.crash("s3")  # the majority left: s1 (tail 5) and s2 (tail 0)
            got = await c.check_tail()
            assert got == Tail(5, True), f"check_tail must return Tail(5, sealed=True), got {got!r}"
            held = durable_tail(sim, "s2", h.config.loglet_id)
            assert held == 5, f"check_tail returned before repairing: s2 holds [0, {held}), a majority must hold [0, 5)"

    _run(scenario)


def check_tail_finishes_a_partial_seal() -> None:
    """A probe that sees some LogServers sealed finishes the seal on a majority first."""
    from delos_ref.loglet import SealedError, Tail
    from delos_ref.loglet.native import storage as layout
    from delos_ref.loglet.native.messages import Seal
    from delos_ref.loglet.native.roles import LOGSERVER_ROLE

    async def scenario() -> None:
        async with _native() as (sim, h):
            c = h.client("c1")
            await _append_n(c, 3)
            await c.node.endpoint.call("s1", Seal(h.config.loglet_id, 0), timeout_s=1)  # one server sealed
            sim.crash("s2")  # every probe majority includes the sealed s1
            got = await c.check_tail()
            assert got == Tail(3, True), f"check_tail must return Tail(3, sealed=True), got {got!r}"
            sealed = [s for s in h.config.logservers if s != "s2" and layout.recover_logserver(sim.nodes[s].storages[LOGSERVER_ROLE])[h.config.loglet_id].sealed]
            assert len(sealed) >= h.config.majority, f"only {sealed} are sealed: a majority must be before check_tail returns"
            try:
                await c.append(b"late")
            except SealedError:
                return
            raise AssertionError("an append after check_tail finished the seal must fail with SealedError")

    _run(scenario)


# --------------------------------------------------------------- reconfigure, roll_forward

ROLL_FORWARD_S = 0.5


@contextlib.asynccontextmanager
async def _virtuallog() -> AsyncIterator[tuple[Any, Callable[[str], Any]]]:
    from delos_ref.sim import Simulation
    from delos_ref.sim.workload_loglet import SIM_OPTIONS
    from delos_ref.virtuallog import MemoryLogletStore, VirtualLog, VirtualLogOptions, default_registry
    from paxos.acceptor import Acceptor
    from paxos.register import ClientTimeouts, MetaStoreClient

    def build(node: Any, storage_for: Any) -> None:
        paxos = storage_for("paxos")
        node.add_role("acceptor", Acceptor.recover(paxos), paxos)

    memory = MemoryLogletStore()
    async with Simulation(0).run() as sim:
        for name in SERVERS:
            sim.add_node(name, build)

        def client(name: str) -> Any:
            node = sim.client(name)
            metastore = MetaStoreClient(node.endpoint, SERVERS, node.rng("metastore"), name, timeouts=ClientTimeouts(deadline_s=2.0, call_timeout_s=0.2))
            registry = default_registry(memory=memory, node=node, native_options=SIM_OPTIONS)
            return VirtualLog(metastore, registry, name, options=VirtualLogOptions(roll_forward_s=ROLL_FORWARD_S, poll_s=0.02))

        yield memory, client


async def _appended(vlog: Any, n: int, tag: str) -> list[int]:
    return [await vlog.append(f"{tag}{i}".encode()) for i in range(n)]


def reconfigure_moves_the_log_to_the_new_loglet_at_the_sealed_tail() -> None:
    """reconfig_extend: the sealed tail of the old loglet becomes the old segment's stop and
    the new segment's start; positions stay gapless across it."""
    from delos_ref.virtuallog import MemoryLogletConfig

    async def scenario() -> None:
        async with _virtuallog() as (memory, client):
            v = client("c1")
            await v.bootstrap(MemoryLogletConfig("m0"))
            first = await _appended(v, 5, "a")
            won = await v.reconfig_extend(MemoryLogletConfig("m1"))
            assert won is True, f"an uncontested reconfig_extend must install its chain, returned {won!r}"
            segments = [(s.start, s.stop) for s in v.chain.segments]
            assert segments == [(0, 5), (5, None)], f"the chain must be [0, 5) then [5, ...), is {segments}"
            second = await _appended(v, 3, "b")
            assert first + second == list(range(8)), f"appends must stay gapless: {first + second}"

    _run(scenario)


def reconfigure_seals_the_old_loglet() -> None:
    """Step 1, seal: after reconfig_extend nothing more can land on the old loglet."""
    from delos_ref.loglet import SealedError
    from delos_ref.virtuallog import MemoryLogletConfig

    async def scenario() -> None:
        async with _virtuallog() as (memory, client):
            v = client("c1")
            await v.bootstrap(MemoryLogletConfig("m0"))
            await _appended(v, 2, "a")
            await v.reconfig_extend(MemoryLogletConfig("m1"))
            try:
                await memory.get("m0").append(b"zombie")
            except SealedError:
                return
            raise AssertionError("the old loglet accepted an append after reconfig_extend: it was never sealed")

    _run(scenario)


def reconfigure_racers_install_one_chain() -> None:
    """Step 3, the conditional write: of two racing reconfig_extend, exactly one installs its
    chain; both then route with it."""
    from delos_ref.virtuallog import MemoryLogletConfig

    async def scenario() -> None:
        async with _virtuallog() as (memory, client):
            a, b = client("c1"), client("c2")
            await a.bootstrap(MemoryLogletConfig("m0"))
            await _appended(a, 3, "a")
            results: dict[str, Any] = {}

            async def extend(v: Any, cfg: Any) -> None:
                results[v.client_id] = await v.reconfig_extend(cfg)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(extend, a, MemoryLogletConfig("ma"))
                nursery.start_soon(extend, b, MemoryLogletConfig("mb"))
            assert sorted(results.values()) == [False, True], f"exactly one racer must win, got {results!r}"
            assert a.version == b.version == 2 and a.chain == b.chain, f"both must learn the winner's chain: versions {a.version}, {b.version}"
            assert a.chain.segments[0].stop == 3, f"the old segment must stop at the sealed tail 3, stops at {a.chain.segments[0].stop}"

    _run(scenario)


def roll_forward_after_a_reconfigurer_dies_after_sealing() -> None:
    """A sealed loglet with no newer chain after roll_forward_s: a client extends the chain
    itself with a clone of the sealed segment, and its append lands there."""
    from delos_ref.virtuallog import MemoryLogletConfig

    async def scenario() -> None:
        async with _virtuallog() as (memory, client):
            a, b = client("c1"), client("c2")
            await a.bootstrap(MemoryLogletConfig("m0"))
            await _appended(a, 4, "a")
            await a.registry.loglet(a.chain.active).seal()  # step 1 of a reconfiguration; then a "dies"
            start = trio.current_time()
            got = await b.append(b"late")
            assert got == 4, f"the append must land at 4 on the rolled-forward chain, landed at {got}"
            waited = trio.current_time() - start
            assert waited >= ROLL_FORWARD_S, f"rolled forward after {waited:.2f}s: a live reconfigurer gets roll_forward_s ({ROLL_FORWARD_S}s) to finish"
            assert b.version == 2 and b.stats["roll_forwards"] == 1, f"one roll-forward must install version 2: version {b.version}, {b.stats['roll_forwards']} roll-forwards"
            segments = [(s.start, s.stop) for s in b.chain.segments]
            assert segments == [(0, 4), (4, None)], f"the chain must be [0, 4) then [4, ...), is {segments}"

    _run(scenario)


def roll_forward_waits_for_a_live_reconfigurer() -> None:
    """A client that meets a sealed loglet whose successor is installed meanwhile follows the
    new chain: no roll-forward of its own."""
    from delos_ref.virtuallog import MemoryLogletConfig

    async def scenario() -> None:
        async with _virtuallog() as (memory, client):
            a, b = client("c1"), client("c2")
            await a.bootstrap(MemoryLogletConfig("m0"))
            await _appended(b, 2, "b")  # b caches version 1
            await a.registry.loglet(a.chain.active).seal()

            async def finish_later() -> None:
                await trio.sleep(ROLL_FORWARD_S / 4)
                await a.reconfig_extend(MemoryLogletConfig("m1"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(finish_later)
                got = await b.append(b"after")
            assert got == 2, f"the append must land at 2 on the reconfigurer's chain, landed at {got}"
            assert b.stats["roll_forwards"] == 0, "b rolled forward while the reconfigurer was finishing"
            assert b.version == 2, f"b must follow the reconfigurer's chain (version 2), is at {b.version}"

    _run(scenario)


# ------------------------------------------------------------------------------ sync_read


def sync_read_sees_a_write_acknowledged_through_another_replica() -> None:
    """A linearizable get at s1 sees a put acknowledged through s2: the read syncs (check_tail,
    then play to that tail) before it reads the table."""
    from delos_ref.loglet.native import NativeLogletConfig
    from delos_ref.sim.simulation import Simulation
    from delos_ref.sim.workload_kv import FINAL_CLIENT_OPTIONS, Cluster, _server_build

    async def scenario() -> None:
        sim = Simulation(1)
        async with sim.run():
            for name in SERVERS:
                sim.add_node(name, _server_build(None))
            c = Cluster(sim)
            await c.vlog("boot").bootstrap(NativeLogletConfig("boot", "s1", SERVERS))
            reader = c.client("reader", 0, FINAL_CLIENT_OPTIONS)  # reads at s1
            writer = c.client("writer", 1, FINAL_CLIENT_OPTIONS)  # writes through s2
            for i in range(5):
                await writer.put("k", f"v{i}")
                got = await reader.get("k")
                assert got == f"v{i}", f"put k=v{i} was acknowledged (through s2), then a linearizable get at s1 read {got!r}"

    _run(scenario)


def sync_read_counts_its_sync_rounds() -> None:
    """Each sync round is counted (stats["syncs"]): a linearizable read makes one."""
    from delos_ref.loglet.native import NativeLogletConfig
    from delos_ref.sim.simulation import Simulation
    from delos_ref.sim.workload_kv import FINAL_CLIENT_OPTIONS, Cluster, _server_build

    async def scenario() -> None:
        sim = Simulation(2)
        async with sim.run():
            for name in SERVERS:
                sim.add_node(name, _server_build(None))
            c = Cluster(sim)
            await c.vlog("boot").bootstrap(NativeLogletConfig("boot", "s1", SERVERS))
            replica = sim.node("s1").roles["replica"]
            before = replica.stats["syncs"]
            await c.client("reader", 0, FINAL_CLIENT_OPTIONS).get("k")
            assert replica.stats["syncs"] - before >= 1, "a linearizable read at s1 made no sync round"

    _run(scenario)


CASES: dict[str, list[Callable[[], None]]] = {
    "register": [
        register_writes_the_next_version_and_another_client_reads_it,
        register_refuses_a_stale_version,
        register_refuses_a_version_from_the_future,
        register_racing_writers_win_once,
    ],
    "check_tail": [
        check_tail_of_a_sealed_loglet_reports_its_tail_sealed,
        check_tail_repairs_the_tail_onto_a_majority,
        check_tail_finishes_a_partial_seal,
    ],
    "reconfigure": [
        reconfigure_moves_the_log_to_the_new_loglet_at_the_sealed_tail,
        reconfigure_seals_the_old_loglet,
        reconfigure_racers_install_one_chain,
    ],
    "roll_forward": [
        roll_forward_after_a_reconfigurer_dies_after_sealing,
        roll_forward_waits_for_a_live_reconfigurer,
    ],
    "sync_read": [
        sync_read_sees_a_write_acknowledged_through_another_replica,
        sync_read_counts_its_sync_rounds,
    ],
}
