"""The ``rpc`` workload: concurrent RPC clients under faults, checked against the network.

Three echo servers and three client nodes, each client running two concurrent call loops.
Every request carries a unique nonce; a tenth of them ask the server to refuse (a definite
failure). The nemesis crashes servers and partitions the network while the links lose,
duplicate and reorder messages.

Checks, per call, against what the simulated network recorded:

* **a definite reply answers its own request** -- the reply carries the request's nonce;
* **no reply is delivered twice** -- no nonce completes two different calls;
* **outcome classes are honest**: *ok* implies the server executed the request; a *definite
  failure* implies it did not; an *unknown outcome* implies the network or a crash actually
  interfered with that call (a copy lost, cut or sent to a down node, the server crashed, or
  the answer arrived after the deadline).

Bug switches (``--bug``): ``ignore_rid`` and ``timeout_as_failure`` (see :data:`RPC_BUGS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from delos_ref.effects import Emit, Fail, Incoming, Reply
from delos_ref.rpc import RPC_BUGS, DefiniteFailure, RetryPolicy, UnknownOutcome
from delos_ref.sim.harness import RunConfig, RunResult, Workload, register
from delos_ref.sim.simulation import Nemesis, Simulation, link_for
from transports.codec import KIND_ERROR, KIND_REPLY, message

SERVERS = ("s1", "s2", "s3")
CLIENTS = ("c1", "c2", "c3")
LOOPS_PER_CLIENT = 2
CALLS_PER_LOOP = 25
TIMEOUT_S = 0.3
RETRY = RetryPolicy(max_sends=4, first_s=0.04, max_s=0.1)


@message("sim.echo")
class Echo:
    nonce: int
    reject: bool


@message("sim.echo_reply")
class EchoReply:
    nonce: int
    server: str


class EchoCore:
    """Pure: executes (records) and echoes a request, or refuses it when asked to."""

    handles = (Echo,)

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id

    def handle(self, item: Any) -> list:
        if not isinstance(item, Incoming):
            return []
        msg = item.msg
        if msg.reject:
            return [Emit("Refused", {"nonce": msg.nonce}), Fail(item.src, item.rid, "refused", "asked to refuse")]
        return [Emit("Executed", {"nonce": msg.nonce}), Reply(item.src, item.rid, EchoReply(msg.nonce, self.node_id))]


@dataclass(slots=True)
class CallRecord:
    client: str
    server: str
    rid: int
    nonce: int
    reject: bool
    start: float
    deadline: float
    outcome: str = ""  # ok | fail | unknown
    reply_nonce: int | None = None


async def _client_loop(sim: Simulation, client: str, loop: int, records: list[CallRecord]) -> None:
    node = sim.node(client)
    rng = node.rng("loop", loop)
    for i in range(CALLS_PER_LOOP):
        if not sim.op_kept(f"{client}@{loop}", i):
            continue  # left out by a schedule (sim --minimize)
        server = rng.choice(SERVERS)
        nonce = rng.getrandbits(62)
        rec = CallRecord(client, server, node.endpoint.peek_next_rid(), nonce, rng.random() < 0.1, trio.current_time(), trio.current_time() + TIMEOUT_S)
        records.append(rec)
        try:
            reply = await node.endpoint.call(server, Echo(nonce, rec.reject), timeout_s=TIMEOUT_S, retry=RETRY)
            rec.outcome, rec.reply_nonce = "ok", reply.nonce
        except DefiniteFailure:
            rec.outcome = "fail"
        except UnknownOutcome:
            rec.outcome = "unknown"
        await trio.sleep(rng.uniform(0, 0.02))


def check(records: list[CallRecord], trace: list[dict[str, Any]]) -> list[str]:
    executed = {e["nonce"] for e in trace if e.get("event") == "Executed"}
    interference: dict[tuple[str, str, int], list[float]] = {}
    late_answers: dict[tuple[str, int], list[float]] = {}
    crashes: dict[str, list[float]] = {}
    for e in trace:
        ev = e.get("event")
        if ev in ("lost", "cut", "to_down", "overflow"):
            interference.setdefault((e["src"], e["dst"], e["rid"]), []).append(e["t"])
        elif ev == "deliver" and e["kind"] in (KIND_REPLY, KIND_ERROR):
            late_answers.setdefault((e["dst"], e["rid"]), []).append(e["t"])
        elif ev == "crash":
            crashes.setdefault(e["target"], []).append(e["t"])
    violations = []
    seen_replies: dict[int, CallRecord] = {}
    for r in records:
        where = f"{r.client}->{r.server} call nonce={r.nonce} rid={r.rid}"
        if r.outcome == "ok":
            if r.reply_nonce != r.nonce:
                violations.append(f"{where}: reply answers another request (nonce {r.reply_nonce})")
            elif r.nonce not in executed:
                violations.append(f"{where}: ok but the server never executed it")
            if r.reply_nonce in seen_replies:
                violations.append(f"{where}: reply {r.reply_nonce} delivered twice (also to {seen_replies[r.reply_nonce].client})")
            seen_replies[r.reply_nonce] = r
        elif r.outcome == "fail":
            if r.nonce in executed:
                violations.append(f"{where}: definite failure, but the server executed it")
        elif r.outcome == "unknown":
            hit = interference.get((r.client, r.server, r.rid), []) + interference.get((r.server, r.client, r.rid), [])
            crashed = [t for t in crashes.get(r.server, []) if r.start <= t <= r.deadline]
            late = [t for t in late_answers.get((r.client, r.rid), []) if t >= r.deadline]
            if not (hit or crashed or late):
                violations.append(f"{where}: unknown outcome, but the network delivered everything in time")
    return violations


async def run(cfg: RunConfig) -> RunResult:
    bugs = frozenset([cfg.bug]) if cfg.bug else frozenset()
    sim = Simulation(cfg.seed, link=link_for(cfg.faults), schedule=cfg.schedule)
    records: list[CallRecord] = []
    async with sim.run():
        for s in SERVERS:
            sim.add_node(s, lambda node, storage_for: node.add_role("echo", EchoCore(node.node_id)))
        for c in CLIENTS:
            sim.client(c).endpoint.bugs = bugs
        nemesis = Nemesis(sim, faults=cfg.faults, crashable=list(SERVERS), partitionable=list(SERVERS + CLIENTS), max_down=2)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(nemesis.run)
            with trio.fail_after(60):  # virtual seconds: a bound, never reached by a healthy run
                async with trio.open_nursery() as clients:
                    for c in CLIENTS:
                        for loop in range(LOOPS_PER_CLIENT):
                            clients.start_soon(_client_loop, sim, c, loop, records)
            nursery.cancel_scope.cancel()
        virtual_s = trio.current_time()
    trace = sim.trace.events
    return RunResult(cfg.seed, check(records, trace), len(trace), sim.digest(), virtual_s, {"nemesis": nemesis.stats, "net": dict(sim.net.stats)}, trace if cfg.keep_trace else None, sim.recorder.schedule(cfg.faults))


register(
    Workload(
        name="rpc",
        description="concurrent RPC clients against echo servers; outcome classes checked against the network",
        faults=("loss", "duplicate", "reorder", "partition", "crash"),
        bugs=dict(RPC_BUGS),
        run=run,
    )
)
