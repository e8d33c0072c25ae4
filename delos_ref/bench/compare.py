"""``delos-ref bench compare``: delos-ref's database puts side by side with ZooKeeper and etcd,
on the same machine, in interleaved rounds.

What is measured
    Each round starts, measures and stops each system in turn (delos-ref first, then the
    peers named by ``--with``), so only one runs at a time and the rounds see the same machine
    state in turn. Every system is 3 servers on loopback with fsync on, and a load generator in
    its own process with k clients (``--clients``), each with one 100-byte write in flight:

    * **delos-ref**: ``bench kv``'s cluster and its ``put`` (``delos_ref/bench/peers/delos.py``);
    * **zookeeper**: ``setData`` through ZooKeeper's Java client (``peers/zookeeper.py``);
    * **etcd**: ``put`` through etcd's HTTP/JSON gateway (``peers/etcd.py`` says why that client).

    ``--op`` (``op``) picks what delos-ref's clients do, and so what the peers' do:

    * ``put`` (the default): as above.
    * ``get``: delos-ref's linearizable ``get`` (the replica syncs with the log's tail, then
      reads); ZooKeeper's ``getData``, which the session's server answers from its memory
      without a quorum -- **not linearizable** (it may miss a write another client has seen
      acknowledged) -- and etcd's ``range``, linearizable by default (its leader confirms
      its leadership with a quorum). Each client reads its own key (ZooKeeper, etcd) or keys
      drawn as puts draw them (delos-ref).
    * ``append``: delos-ref's clients append 100-byte entries straight to the cluster's
      NativeLoglet (``bench append``'s case: durable on a majority of LogServers); the peers
      have no separate log to append to, so they do their write (``setData``, ``put``).

    A row is operations/s over a measured window of ``seconds`` after a warm-up, p50/p99 of the puts
    in it, and the CPU microseconds per put of the load generator (``client_cpu_us_per_op``)
    and of the 3 servers together (``server_cpu_us_per_op``).

    The *client check* (on by default): at the largest k, the same k clients split over 2 load
    processes. If the client were the limit, 2 processes would raise puts/s; a ratio
    ``two_processes / one_process`` near 1 or below says it is not (on a machine with few
    cores, the second process takes CPU from the servers).

How to read the ratios
    Per round and k, ``throughput`` = delos-ref puts/s / the peer's (above 1: delos-ref does
    more) and ``p50`` = delos-ref p50 / the peer's (below 1: delos-ref is faster); the medians
    over rounds are the figures to quote. A peer whose programs are missing is named in
    ``missing`` with how to install it, and left out; one whose ensemble or load generator
    fails is named in ``failed`` with the cause, and left out (the command then exits 1).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any, Callable

from delos_ref.bench import BadBenchArgument, BenchError, machine
from delos_ref.bench import peers
from delos_ref.bench.peers import PeerError, PeerMissing
from delos_ref.bench.peers import delos, etcd, zookeeper

PEERS = {"zookeeper": zookeeper, "etcd": etcd}
DEFAULT_CLIENTS = (1, 64)
MAX_CLIENTS = 1024


def parse_peers(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in PEERS]
    if bad or not names:
        raise BadBenchArgument(f"--with takes peers from: {', '.join(PEERS)} (got {text!r})")
    return list(dict.fromkeys(names))


def parse_clients(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(t) for t in text.split(",") if t.strip()}))
    except ValueError:
        raise BadBenchArgument(f"--clients takes numbers separated by commas (got {text!r})") from None
    if not ks or not all(1 <= k <= MAX_CLIENTS for k in ks):
        raise BadBenchArgument(f"--clients: each must be 1..{MAX_CLIENTS} (got {text!r})")
    return ks


def available(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """The peers that can run here, and for each other one why not (with how to install it)."""
    ok, missing = [], {}
    for name in names:
        try:
            PEERS[name].check()
            ok.append(name)
        except PeerMissing as e:
            missing[name] = str(e)
    return ok, missing


OPS = delos.OPS
#: What each system does per operation, for the rows' note (``--op``).
OP_NAMES = {
    "put": {"delos-ref": "put", "zookeeper": "setData", "etcd": "put"},
    "get": {"delos-ref": "linearizable get", "zookeeper": "getData (not linearizable)", "etcd": "range (linearizable)"},
    "append": {"delos-ref": "NativeLoglet append", "zookeeper": "setData", "etcd": "put"},
}


def parse_op(text: str) -> str:
    if text not in OPS:
        raise BadBenchArgument(f"--op takes one of: {', '.join(OPS)} (got {text!r})")
    return text


async def _measure(module: Any, clients: tuple[int, ...], seconds: float, client_check: bool, tick: Callable[[], None], op: str = "put") -> list[dict]:
    """Start ``module``'s ensemble, one row per k (plus the client check), stop it."""
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"delos-compare-{module.NAME}-") as tmp:
        async with module.ensemble(Path(tmp)) as ens:

            def argv_for(k: int, s: float) -> list[str]:
                return ens["argv_for"](k, s, op)

            for k in clients:
                rows.append(peers.summary(await peers.run_load(argv_for, k, 1, seconds, ens["pids"], module.NAME), k))
                tick()
            if client_check and max(clients) > 1:
                k = max(clients)
                rows.append(dict(peers.summary(await peers.run_load(argv_for, k, 2, seconds, ens["pids"], module.NAME), k), check=True))
                tick()
            gone = ens["check"]()
            if gone:
                raise PeerError(f"{module.NAME}: a server exited during the run: {gone}")
    return rows


def _median(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return round(statistics.median(vs), 3) if vs else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def ratios(rounds: list[dict[str, list[dict]]], systems: list[str], clients: tuple[int, ...]) -> list[dict]:
    """Per peer and k: delos-ref / peer for puts/s and for p50, each round's and their median."""
    out = []
    for peer in systems[1:]:
        for k in clients:
            per_round = []
            for r in rounds:
                ours = next((x for x in r.get(delos.NAME, []) if x["clients"] == k and not x.get("check")), None)
                theirs = next((x for x in r.get(peer, []) if x["clients"] == k and not x.get("check")), None)
                if ours and theirs:
                    per_round.append((_ratio(ours["ops_per_s"], theirs["ops_per_s"]), _ratio(ours["p50_us"], theirs["p50_us"])))
            out.append({
                "peer": peer, "clients": k,
                "throughput": [t for t, _ in per_round], "throughput_median": _median([t for t, _ in per_round]),
                "p50": [p for _, p in per_round], "p50_median": _median([p for _, p in per_round]),
            })
    return out


def medians(rounds: list[dict[str, list[dict]]], systems: list[str], clients: tuple[int, ...]) -> list[dict]:
    """Per system and k: the median over rounds of each column."""
    cols = ("ops_per_s", "p50_us", "p99_us", "client_cpu_us_per_op", "server_cpu_us_per_op")
    out = []
    for s in systems:
        for k in clients:
            rows = [x for r in rounds for x in r.get(s, []) if x["clients"] == k and not x.get("check")]
            if rows:
                out.append({"system": s, "clients": k, **{c: _median([x[c] for x in rows]) for c in cols}})
    return out


def client_checks(rounds: list[dict[str, list[dict]]], systems: list[str]) -> list[dict]:
    """Per system: puts/s with 2 load processes / with 1, at the largest k, each round."""
    out = []
    for s in systems:
        per_round = []
        for r in rounds:
            rows = r.get(s, [])
            two = next((x for x in rows if x.get("check")), None)
            one = next((x for x in rows if two and x["clients"] == two["clients"] and not x.get("check")), None)
            if one and two:
                per_round.append(_ratio(two["ops_per_s"], one["ops_per_s"]))
        if per_round:
            out.append({"system": s, "two_over_one": per_round, "median": _median(per_round)})
    return out


async def run(*, with_peers: list[str], clients: tuple[int, ...] = DEFAULT_CLIENTS, rounds: int = 3, seconds: float = 3.0,
              client_check: bool = True, progress: Callable[[float], None] | None = None, op: str = "put") -> dict[str, Any]:
    """``delos-ref bench compare``: see the module docstring."""
    parse_op(op)
    if rounds < 1:
        raise BadBenchArgument(f"--rounds must be at least 1 (got {rounds})")
    if not seconds > 0:
        raise BadBenchArgument(f"--seconds must be positive (got {seconds})")
    ok, missing = available(with_peers)
    systems = [delos.NAME, *ok]
    steps = rounds * len(systems) * (len(clients) + (1 if client_check and max(clients) > 1 else 0))
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(min(1.0, done[0] / steps))

    results: list[dict[str, list[dict]]] = []
    failed: dict[str, str] = {}
    for _ in range(rounds):
        one: dict[str, list[dict]] = {}
        for s in systems:
            if s in failed:
                continue
            module = delos if s == delos.NAME else PEERS[s]
            try:
                one[s] = await _measure(module, clients, seconds, client_check, tick, op)
            except (PeerError, PeerMissing) as e:
                if s == delos.NAME:
                    raise BenchError(str(e)) from None
                failed[s] = str(e)  # a peer that fails is reported and left out of later rounds
        results.append(one)
    systems = [s for s in systems if s not in failed]
    return {
        "bench": "compare",
        "machine": machine(),
        "versions": {s: (delos if s == delos.NAME else PEERS[s]).version() for s in systems},
        "systems": systems,
        "op": op,
        "operations": {sys_: OP_NAMES[op][sys_] for sys_ in systems},
        "clients": list(clients),
        "seconds": seconds,
        "value_bytes": peers.VALUE_BYTES,
        "rounds": results,
        "medians": medians(results, systems, clients),
        "ratios": ratios(results, systems, clients),
        "client_check": client_checks(results, systems),
        "missing": missing,
        "failed": failed,
        "note": (
            ("" if op == "put" else f"op {op}: " + "; ".join(f"{k}: {v}" for k, v in OP_NAMES[op].items()) + " (ops/s and p50 are of these; "
             "ZooKeeper's getData is served by one server from memory, not linearizable). ")
            + "3 servers each on loopback, fsync on, 100-byte values, k clients each with one write in flight, "
            "one system at a time, rounds interleaved. throughput ratio = delos-ref puts/s / peer's (>1: delos-ref more); "
            "p50 ratio = delos-ref p50 / peer's (<1: delos-ref faster). client_check: puts/s with the same clients over "
            "2 load processes / over 1 (near 1 or below: the client is not the limit). etcd is driven through its "
            "HTTP/JSON gateway (Debian ships no Go benchmark client): its servers' CPU includes the gateway's translation."
        ),
    }


def plot(result: dict[str, Any], out: Path, name: str = "compare") -> list[Path]:
    """Medians per system: puts/s and p50 per k, as grouped bars (needs the ``plots`` extra)."""
    from delos_ref.bench import plots

    if not plots.available():
        return []
    groups = [f"{k} client{'s' if k > 1 else ''}" for k in result["clients"]]

    def col(c: str, scale: float = 1.0) -> dict[str, list[float | None]]:
        return {
            s: [next((m[c] / scale for m in result["medians"] if m["system"] == s and m["clients"] == k and m[c] is not None), None) for k in result["clients"]]
            for s in result["systems"]
        }

    unit = "puts/s" if result.get("op", "put") == "put" else f"{result['op']}s/s"
    return plots.bars(out, name if result.get("op", "put") == "put" else f"{name}-{result['op']}", f"{unit} (median of rounds)", groups, col("ops_per_s"), unit,
                      panels={"p50 latency (median of rounds)": (col("p50_us", 1000.0), "ms"), "p99 latency (median of rounds)": (col("p99_us", 1000.0), "ms")})
