"""Operator operations on a running cluster: what ``delos-ref status/append/read/...`` do.

Each operation is an async function over an :class:`OpsSession` -- a client node of the
cluster with a :class:`~delos_ref.virtuallog.VirtualLog` on it -- and returns plain data (the
``--json`` shapes of the CLI). Nothing here prints; ``cli/ops.py`` renders and reports. Every
failure an operator can cause or meet is an :class:`OpError` whose message is one line that
says what is wrong and, for an unreachable quorum, which nodes did not answer.

What each command does to the protocol (docs/design.md §2-§5):

* ``append`` / ``read`` / ``trim`` -- the VirtualLog's ``append``, ``read_next`` and
  ``prefix_trim`` (then ``reconfig_truncate``, which drops segments wholly below the trim
  point from the chain);
* ``tail`` -- ``check_tail`` of the *active segment's loglet*, mapped to a virtual position,
  together with its seal bit. Unlike the VirtualLog's own ``check_tail`` it does not react to
  a sealed loglet (it would roll forward): an operator sees the sealed state as it is;
* ``seal`` -- ``seal()`` on the active loglet and nothing else: the chain still names it as
  active, so the next client that appends gets a sealed error, waits ``roll_forward_s`` for a
  successor chain and then *rolls forward* itself (installs a clone of the sealed segment's
  config) -- the recovery path of §3.2, made visible;
* ``migrate`` -- sealed segments to cold storage (``delos_ref/migrate.py``: copy, verify,
  ``reconfig_modify``, drop from the LogServers); ``skip`` -- ``reconfig_modify`` of one
  sealed segment onto a skip loglet (``delos_ref/loglet/skip.py``);
* ``reconfigure`` -- ``reconfig_extend``: seal, learn the sealed tail, install a chain with a
  new segment on a fresh loglet (never-used id ``op-<hex>``), fetch the chain. From a
  bootstrap loglet to a NativeLoglet, this is the paper's hot swap.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import secrets
from dataclasses import dataclass
from typing import Any, AsyncIterator

import trio

from delos_ref import cluster, deploy
from delos_ref.loglet.api import MAX_READ_ENTRIES, LogletError, LogletUnavailable, SealedError, TrimmedError
from delos_ref.process import open_client, ping, ping_all, virtuallog_on
from delos_ref.rtt import overall
from delos_ref.runtime import Node
from delos_ref.virtuallog import VirtualLog
from delos_ref.virtuallog.chain import Segment
from delos_ref.virtuallog.client import AppendFailed, AppendOutcomeUnknown, NotBootstrapped, VirtualLogError
from delos_ref.virtuallog.registry import UnknownKind
from paxos.register import MetaStoreError
from transports.codec import DecodeError

#: Loglet kinds ``reconfigure`` can install (and those of the cluster's loglet plugins).
RECONFIGURE_KINDS = ("native", "bootstrap", "striped")


def reconfigure_kinds(cfg: cluster.ClusterConfig) -> tuple[str, ...]:
    """The kinds ``reconfigure --loglet`` takes on this cluster: the built-in ones and its
    loglet plugins' (``delos_ref/plugins.py``)."""
    from delos_ref import plugins

    return RECONFIGURE_KINDS + tuple(plugins.by_kind(cfg.loglet_modules))


class OpError(Exception):
    """An operator-facing failure: the message is the one line the CLI prints."""


@dataclass
class OpsSession:
    """A client of the cluster in ``directory``: a node with an RPC endpoint and a VirtualLog."""

    directory: str
    cfg: cluster.ClusterConfig
    node: Node
    vlog: VirtualLog
    timeout_s: float


def configured_roles(spec: cluster.NodeSpec) -> list[str]:
    """Every role a node of ``delos-ref up`` runs, from its config (``delos_ref/process.py``):
    the protocol roles it hosts, a database replica on every acceptor (core) node, and on
    every node a supervisor, the ping responder and the ``net`` role (its link shaper's
    controls, ``delos_ref/netctl.py``). A node that answers lists the same
    roles in ``roles``."""
    roles = list(spec.hosted_roles)
    if "acceptor" in roles:
        roles.append("replica")
    return roles + ["supervisor", "ping", "net"]


def replica_nodes(cfg: cluster.ClusterConfig) -> list[str]:
    """The nodes that host a database replica (the acceptor nodes)."""
    return [n.id for n in cfg.nodes if "replica" in configured_roles(n)]


def require_running(directory: str, cfg: cluster.ClusterConfig) -> None:
    """Refuse a directory none of whose node processes runs (stopped or stale). A cluster
    file (``--cluster FILE``: nodes on other hosts, no local pids) passes: only the nodes'
    answers say whether it runs."""
    if deploy.is_cluster_file(directory):
        return
    if not cluster.live_nodes(cfg):
        raise OpError(f"no cluster running in {directory}: none of its node processes is alive (start it with `delos-ref up --dir {directory}`)")


@contextlib.asynccontextmanager
async def session(directory: str, *, timeout_s: float = 5.0, name: str = "ops", need_chain: bool = True) -> AsyncIterator[OpsSession]:
    """Open a client of the running cluster in ``directory``; with ``need_chain``, fetch the
    chain first (bounded by ``timeout_s``; a missing MetaStore quorum is named). ``timeout_s``
    stretches to the round trips the client measured (``delos_ref/rtt.py``: at hundreds of
    milliseconds per round trip, a few seconds are only a few round trips)."""
    try:
        cfg = cluster.load(directory)
    except cluster.ClusterError as e:
        raise OpError(str(e)) from None
    require_running(directory, cfg)
    trace_dir = None if deploy.is_cluster_file(directory) else directory
    async with open_client(cfg, name, trace_dir=trace_dir) as node:  # logs into DIR/clients/ under up --trace
        timeout_s = overall(node.endpoint.rtt, timeout_s)  # --timeout, stretched on a slow network
        vlog = virtuallog_on(cfg, node, deadline_s=timeout_s)
        ops = OpsSession(directory, cfg, node, vlog, timeout_s)
        if need_chain:
            await fetch_chain(ops)
        yield ops


async def fetch_chain(ops: OpsSession) -> None:
    try:
        await ops.vlog.refresh()
    except MetaStoreError:
        raise OpError(await missing_quorum(ops, "the MetaStore", ops.cfg.with_role("acceptor"))) from None
    except NotBootstrapped:
        raise OpError(f"the cluster in {ops.directory} has no chain yet: its MetaStore is empty (was it started with `delos-ref up`?)") from None
    except DecodeError as e:
        raise NotAChain(f"the MetaStore register does not hold a chain ({e}): something other than the VirtualLog wrote it") from None
    check_kinds_known(ops)


class UnknownLogletKind(OpError):
    """The chain names a loglet kind (or config) that no module this process loaded registers."""


def check_kinds_known(ops: OpsSession) -> None:
    """Refuse a chain with a segment this process cannot build: a loglet kind (or config)
    of a plugin module that the cluster does not name (``delos_ref/plugins.py``)."""
    for seg in ops.vlog.chain.segments:
        try:
            config_params(ops.vlog, seg)
        except (UnknownKind, DecodeError) as e:
            modules = ", ".join(ops.cfg.loglet_modules) or "none"
            raise UnknownLogletKind(
                f"the chain's segment at {seg.start} is of loglet kind {seg.kind!r}, which this cluster's loglet modules ({modules}) do not register ({e}); "
                f"add the module that defines it: `delos-ref plugin add MODULE --dir {ops.directory}`"
            ) from None


class NotAChain(OpError):
    """The MetaStore answered, but its register holds something that is not a chain."""


async def missing_quorum(ops: OpsSession, what: str, members: list[str]) -> str:
    """One line naming the members of ``what`` that do not answer a ping now."""
    answers = await ping_all(ops.node, ops.cfg, timeout_s=min(ops.timeout_s, 1.0))
    down = [m for m in members if answers.get(m) is None]
    need = len(members) // 2 + 1
    if len(members) - len(down) >= need:
        return f"{what} did not answer within {ops.timeout_s:g}s although a majority of {', '.join(members)} answers pings (overloaded? try a larger --timeout)"
    verb = "does" if len(down) == 1 else "do"
    return f"{what} cannot reach a quorum, no majority answers: {', '.join(down)} {verb} not answer ({len(members) - len(down)} of {len(members)} alive, need {need})"


# ------------------------------------------------------------------------------ status


def config_params(vlog: VirtualLog, seg: Segment) -> dict[str, Any]:
    """A segment's loglet config as a JSON-friendly dict (its dataclass fields)."""
    config = vlog.registry.config(seg)
    params = {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if seg.kind == "striped":  # each stripe as its own params, with its kind
        params["stripes"] = [dict(kind=s.kind, **config_params(vlog, Segment(0, None, s.kind, s.params))) for s in config.stripes]
    if seg.kind == "skip":  # the loglet under the skips, as its own params
        params["inner"] = dict(kind=config.inner_kind, **config_params(vlog, Segment(0, None, config.inner_kind, config.inner_params)))
    return params


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def loglet_servers(params: dict[str, Any]) -> list[str]:
    """The nodes whose majority a loglet needs: a NativeLoglet's LogServers, a bootstrap
    loglet's acceptors."""
    if "stripes" in params:  # a striped loglet needs every stripe's
        return sorted({n for stripe in params["stripes"] for n in loglet_servers(stripe)})
    return list(params.get("logservers") or params.get("acceptors") or [])


async def active_tail(ops: OpsSession) -> dict[str, Any]:
    """``{"position", "sealed"}`` of the active segment's loglet (see the module docstring);
    raises :class:`OpError` if its LogServers do not answer in time."""
    seg = ops.vlog.chain.active
    with trio.move_on_after(ops.timeout_s):
        try:
            tail, sealed = await ops.vlog.registry.loglet(seg).check_tail()
        except LogletUnavailable:
            pass
        else:
            return {"position": seg.to_virtual(tail), "sealed": sealed}
    params = config_params(ops.vlog, seg)
    raise OpError(await missing_quorum(ops, f"the active loglet {params.get('loglet_id', '?')}", loglet_servers(params)))


async def check_ready(ops: OpsSession) -> None:
    """Whether the cluster can take appends now (without appending): the active loglet's
    servers answer a check_tail and, for a NativeLoglet, its sequencer answers a ping."""
    await active_tail(ops)
    params = config_params(ops.vlog, ops.vlog.chain.active)
    sequencer = params.get("sequencer")
    if sequencer is not None and await ping(ops.node, sequencer, timeout_s=ops.timeout_s) is None:
        raise OpError(f"the sequencer {sequencer} of the active loglet {params.get('loglet_id')} does not answer")


async def chain_report(ops: OpsSession) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(chain, tail)`` of the status JSON. Closed segments are sealed; the active one's
    seal bit and tail come from its loglet (``None`` with an ``error`` if it does not answer)."""
    vlog = ops.vlog
    try:
        tail: dict[str, Any] = await active_tail(ops)
    except OpError as e:
        tail = {"position": None, "sealed": None, "error": str(e)}
    segments = [
        {"start": s.start, "stop": s.stop, "kind": s.kind, "sealed": True if s.stop is not None else tail["sealed"], "params": config_params(vlog, s)}
        for s in vlog.chain.segments
    ]
    for seg in segments:
        if seg["kind"] == "cold":  # kind, files, bytes: what the cold store holds for it
            seg["cold"] = cold_summary(seg["params"])
    return {"version": vlog.version, "segments": segments}, tail


async def status_report(directory: str, *, timeout_s: float = 1.0, want_stats: bool = False) -> dict[str, Any]:
    """The ``status --json`` document (see :func:`status_on`), from a fresh client."""
    try:
        cfg = cluster.load(directory)
    except cluster.ClusterError as e:
        raise OpError(str(e)) from None
    async with open_client(cfg, "status") as node:
        return await status_on(node, directory, cfg, timeout_s=timeout_s, want_stats=want_stats)


async def status_on(node: Node, directory: str, cfg: cluster.ClusterConfig, *, timeout_s: float = 1.0, want_stats: bool = False) -> dict[str, Any]:
    """The ``status --json`` document, asked from the client ``node``: each node's ping, the
    chain with its segments, the tail. Works without a MetaStore quorum too: then
    ``metastore`` carries the error and ``chain``/``tail`` are null. ``want_stats`` adds
    ``stats``: each node's counters (null if it did not answer)."""
    vlog = virtuallog_on(cfg, node, deadline_s=timeout_s)
    ops = OpsSession(directory, cfg, node, vlog, timeout_s)
    answers = await ping_all(node, cfg, timeout_s=timeout_s, want_stats=want_stats)
    remote = deploy.is_cluster_file(directory)  # no local pids: a node's process is on its host
    report: dict[str, Any] = {
        "cluster_id": cfg.cluster_id,
        "transport": cfg.transport,
        "nodes": [
            {
                "id": n.id,
                "address": n.address,
                "pid": n.pid,
                "alive": answers[n.id] is not None,
                "roles": list(answers[n.id].roles) if answers[n.id] else [],
                "process": "remote" if remote else cluster.process_state(n, directory),
                "configured_roles": configured_roles(n),
            }
            for n in cfg.nodes
        ],
        "chain": None,
        "tail": None,
    }
    if want_stats:
        report["stats"] = {k: (v.info if v else None) for k, v in answers.items()}
    netns_report = _netns_report(directory)
    if netns_report is not None:
        report["netns"] = netns_report
    if not any(answers.values()):
        report["metastore"] = {"version": None, "error": "no node answered"}
        return report
    try:
        await fetch_chain(ops)
    except NotAChain as e:
        # The register answers (its version is real) but holds no chain: say so beside it.
        report["metastore"] = {"version": None, "error": str(e)}
        with contextlib.suppress(MetaStoreError):
            report["metastore"] = {"version": (await vlog.metastore.read())[0]}
        report["chain_error"] = str(e)
        return report
    except UnknownLogletKind as e:  # the MetaStore answered: its chain needs a loglet module
        report["metastore"] = {"version": vlog.version}
        report["chain_error"] = str(e)
        return report
    except OpError as e:
        report["metastore"] = {"version": None, "error": str(e)}
        return report
    report["metastore"] = {"version": vlog.version}
    report["chain"], report["tail"] = await chain_report(ops)
    return report


def _netns_report(directory: str) -> dict[str, Any] | None:
    """An ``up --netns`` cluster's namespaces and the kernel conditions ``net`` set (from
    ``DIR/netns.json``; ``net show`` reads the rules themselves); None for other clusters."""
    from delos_ref import netctl, netns

    try:
        rec = netns.load_record(directory)
    except netns.NetnsError as e:
        return {"tag": "?", "bridge": "?", "subnet": "?", "namespaces": {}, "kernel": [str(e)]}
    if rec is None:
        return None
    return {
        "tag": rec.tag,
        "bridge": rec.bridge,
        "subnet": f"{netns.SUBNET_PREFIX}.{rec.subnet}.0/24",
        "namespaces": {node: n.netns for node, n in rec.nodes.items()},
        "kernel": netctl.summary(rec.kernel_conditions()),
    }


# ---------------------------------------------------------------------- the log itself


def entry_json(pos: int, data: bytes) -> dict[str, Any]:
    """``{"position", "data"}`` when ``data`` is UTF-8 text, else ``{"position", "data_b64"}``."""
    try:
        return {"position": pos, "data": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"position": pos, "data_b64": base64.b64encode(data).decode()}


async def append(ops: OpsSession, entries: list[bytes], *, on_position: Any = None) -> list[int]:
    """Append ``entries`` in order, one after the other (so positions rise in argument
    order); each bounded by ``timeout_s``. On failure the message says how many landed."""
    positions: list[int] = []
    for entry in entries:
        landed = f"{len(positions)} of {len(entries)} appended" + (f" (positions {positions[0]}..{positions[-1]})" if positions else "")
        failure = None
        with trio.move_on_after(ops.timeout_s) as scope:
            try:
                pos = await ops.vlog.append(entry)
            except (ValueError, TypeError) as e:  # refused locally (e.g. too large): nothing sent
                failure = f"entry {len(positions)} refused: {e}"
            except AppendFailed as e:
                failure = f"append failed ({_cause(e)}); the entry is not in the log"
            except AppendOutcomeUnknown as e:
                failure = f"append failed ({_cause(e)}); the entry may have landed"
            except (VirtualLogError, MetaStoreError, LogletError, UnknownKind) as e:  # e.g. no MetaStore quorum for a roll-forward
                failure = f"append failed ({type(e).__name__}: {e}); the entry may have landed"
        if scope.cancelled_caught:
            failure = f"append did not finish within {ops.timeout_s:g}s; the entry may have landed"
        if failure is not None:
            raise OpError(f"{failure}; {landed}; {await _active_diagnosis(ops)}")
        positions.append(pos)
        if on_position is not None:
            on_position(pos)
    return positions


def _cause(e: BaseException) -> str:
    cause = e.__cause__ or e
    return f"{type(cause).__name__}: {cause}"


async def _active_diagnosis(ops: OpsSession) -> str:
    """Which nodes of the active segment's loglet do not answer (sequencer, LogServers)."""
    try:
        seg = ops.vlog.chain.active
        params = config_params(ops.vlog, seg)
    except Exception:  # noqa: BLE001 - a diagnosis must not hide the error it explains
        return "the chain is unknown"
    answers = await ping_all(ops.node, ops.cfg, timeout_s=min(ops.timeout_s, 1.0))
    parts = []
    for j, seq in ([(None, params.get("sequencer"))] + [(j, st.get("sequencer")) for j, st in enumerate(params.get("stripes", []))]):
        if seq is not None:
            parts.append(("sequencer" if j is None else f"stripe {j} sequencer") + f" {seq} " + ("answers" if answers.get(seq) else "does not answer"))
    servers = loglet_servers(params)
    down = [s for s in servers if answers.get(s) is None]
    what = "LogServers" if "logservers" in params or "stripes" in params else "acceptors"
    if servers:
        parts.append(f"{what} down: {', '.join(down)}" if down else f"all {what} answer")
    return f"active loglet {params.get('loglet_id', seg.kind)}: " + ", ".join(parts)


async def read(ops: OpsSession, lo: int, hi: int | None) -> AsyncIterator[tuple[int, bytes]]:
    """``(position, entry)`` from ``lo`` up to ``hi`` (exclusive; None: the tail when the read
    started). Positions below the chain's base or above the tail are an :class:`OpError`."""
    tail = (await active_tail(ops))["position"]
    end = tail if hi is None else hi
    if lo > tail:
        raise OpError(f"bad position: --from {lo} is past the tail {tail} (positions 0..{tail - 1} exist)")
    if lo < 0 or end < lo:
        raise OpError(f"bad range: need 0 <= --from <= --to, got --from {lo} --to {end}")
    if end > tail:
        raise OpError(f"bad position: --to {end} is past the tail {tail} (positions 0..{tail - 1} exist)")
    pos = lo
    while pos < end:
        batch = await _read_batch(ops, pos, min(end, pos + MAX_READ_ENTRIES))
        if not batch:
            raise OpError(f"read stopped at {pos} below the tail {tail}: the entry is not readable yet (a gap being repaired?); try again")
        for p, data in batch:
            yield p, data
        pos += len(batch)


async def _read_batch(ops: OpsSession, lo: int, hi: int) -> list[tuple[int, bytes]]:
    with trio.move_on_after(ops.timeout_s):
        try:
            return await ops.vlog.read_next(lo, hi)
        except TrimmedError as e:
            start = await _readable_start(ops, e.trim_point)
            raise OpError(f"bad position: {lo} is trimmed (the log now starts at {start}; read from there)") from None
        except VirtualLogError as e:
            raise OpError(f"read at {lo} failed: {e}; {await _active_diagnosis(ops)}") from None
    raise OpError(f"read at {lo} did not finish within {ops.timeout_s:g}s; {await _active_diagnosis(ops)}")


async def _readable_start(ops: OpsSession, at_least: int) -> int:
    """The first position that is not trimmed. A TrimmedError's ``trim_point`` is a lower
    bound only: below the chain's first segment it is that segment's start (the chain's
    base), while the trim point itself may lie inside the segment (``trim 10`` drops the
    segment [0, 4) and leaves [4, ...) trimmed up to 10). So ask again from there."""
    pos = at_least
    for _ in range(8):  # each step moves to a loglet's own trim point: a few at most
        try:
            await ops.vlog.read_next(pos, pos + 1)
            return pos
        except TrimmedError as e:
            if e.trim_point <= pos:
                return pos
            pos = e.trim_point
        except VirtualLogError:
            return pos
    return pos


async def follow(ops: OpsSession, lo: int, *, poll_s: float = 0.2) -> AsyncIterator[tuple[int, bytes]]:
    """Entries from ``lo`` on, forever: read up to the active loglet's tail, then poll it. A
    sealed active loglet (the chain is moving on) or one that does not answer for now makes
    it fetch the chain again; it keeps going until cancelled."""
    pos = lo
    while True:
        try:
            tail: dict[str, Any] | None = await active_tail(ops)
        except OpError:
            tail = None  # the active loglet does not answer now (a failover under way?)
        if tail is not None and pos < tail["position"]:
            batch = await _read_batch(ops, pos, min(tail["position"], pos + MAX_READ_ENTRIES))
            for p, data in batch:
                yield p, data
            pos += len(batch)
            if batch:
                continue
        await trio.sleep(poll_s)
        if tail is None or tail["sealed"]:
            with contextlib.suppress(MetaStoreError):
                await ops.vlog.refresh()


# ------------------------------------------------------------------- reconfigurations


async def seal(ops: OpsSession) -> dict[str, Any]:
    """Seal the active loglet (and install nothing): see the module docstring."""
    seg = ops.vlog.chain.active
    with trio.move_on_after(ops.timeout_s):
        try:
            await ops.vlog.registry.loglet(seg).seal()
        except LogletUnavailable:
            pass
        else:
            tail = await active_tail(ops)
            return {"segment_start": seg.start, "loglet": config_params(ops.vlog, seg), "tail": tail}
    params = config_params(ops.vlog, seg)
    raise OpError("seal: " + await missing_quorum(ops, f"the active loglet {params.get('loglet_id', '?')}", loglet_servers(params)))


def fresh_loglet_id() -> str:
    """A loglet id that was never used (an id, once sealed, is sealed forever)."""
    return f"op-{secrets.token_hex(4)}"


def new_loglet_config(
    ops: OpsSession, kind: str, sequencer: str | None, logservers: list[str] | None, striping: dict[str, Any] | None = None
) -> Any:
    """The config of the new segment's loglet, under a fresh id. For ``native``, unnamed parts
    come from the active segment (if it is native too) or from the cluster's roles; a
    ``bootstrap`` loglet lives on the MetaStore's acceptors."""
    from delos_ref.loglet.bootstrap import BootstrapLogletConfig
    from delos_ref.loglet.native import NativeLogletConfig

    kinds = reconfigure_kinds(ops.cfg)
    if kind not in kinds:
        raise OpError(f"unknown loglet kind {kind!r} for reconfigure (choose from {', '.join(kinds)}; a plugin's kind needs `delos-ref plugin add MODULE`)")
    if kind not in RECONFIGURE_KINDS:
        return _plugin_config(ops, kind, sequencer, logservers, striping)
    cfg = ops.cfg
    if kind == "striped":
        return _striped_config(ops, sequencer, logservers, striping or {})
    if kind == "bootstrap":
        if sequencer or logservers:
            raise OpError("a bootstrap loglet has no sequencer or LogServers (it lives on the MetaStore's acceptors): drop --sequencer/--logservers")
        return BootstrapLogletConfig(fresh_loglet_id(), tuple(cfg.with_role("acceptor")))
    active = config_params(ops.vlog, ops.vlog.chain.active) if ops.vlog.chain.active.kind == kind else {}
    seq = sequencer or active.get("sequencer") or cfg.with_role("sequencer")[0]
    servers = logservers or list(active.get("logservers") or cfg.with_role("logserver"))
    for node_id, role in [(seq, "sequencer")] + [(s, "logserver") for s in servers]:
        try:
            spec = cfg.node(node_id)
        except cluster.ClusterError as e:
            raise OpError(str(e)) from None
        if role not in spec.hosted_roles:
            raise OpError(f"node {node_id} does not host the {role} role (it hosts {', '.join(spec.hosted_roles)}); choose among {', '.join(cfg.with_role(role))}")
    if len(set(servers)) != len(servers):
        raise OpError(f"--logservers names a node twice: {','.join(servers)}")
    return NativeLogletConfig(fresh_loglet_id(), seq, tuple(servers))


def _plugin_config(ops: OpsSession, kind: str, sequencer: str | None, logservers: list[str] | None, striping: dict[str, Any] | None) -> Any:
    """A fresh loglet of a plugin's kind: its module's ``new_config(ops, loglet_id)``."""
    from delos_ref import plugins

    if sequencer or logservers or striping:
        raise OpError(f"a {kind} loglet is configured by its module: drop --sequencer/--logservers/--stripes")
    plugin = plugins.by_kind(ops.cfg.loglet_modules)[kind]
    try:
        return plugin.new_config(ops, fresh_loglet_id())
    except (ValueError, OSError) as e:
        raise OpError(f"{plugin.module}.new_config: {e}") from None


def _striped_config(ops: OpsSession, sequencer: str | None, logservers: list[str] | None, striping: dict[str, Any]) -> Any:
    """A StripedLoglet of NativeLoglets (``striping``: ``stripes``, ``sharded``,
    ``sequencers``): see :mod:`delos_ref.loglet.striped_cluster`."""
    from delos_ref.loglet.striped_cluster import striped_native_config, striped_natives

    if sequencer:
        raise OpError("a striped loglet has one sequencer per stripe: use --sequencers n1,n2,...")
    sequencers = striping.get("sequencers")
    for node_id, role in [(n, "sequencer") for n in sequencers or []] + [(n, "logserver") for n in logservers or []]:
        try:
            spec = ops.cfg.node(node_id)
        except cluster.ClusterError as e:
            raise OpError(str(e)) from None
        if role not in spec.hosted_roles:
            raise OpError(f"node {node_id} does not host the {role} role (it hosts {', '.join(spec.hosted_roles)}); choose among {', '.join(ops.cfg.with_role(role))}")
    loglet_id = fresh_loglet_id()
    try:
        natives = striped_natives(
            loglet_id, striping.get("stripes", 2), sequencer_nodes=ops.cfg.with_role("sequencer"), logserver_nodes=ops.cfg.with_role("logserver"),
            sharded=striping.get("sharded", False), sequencers=sequencers, logservers=logservers,
        )
    except ValueError as e:
        raise OpError(str(e)) from None
    return striped_native_config(loglet_id, natives)


async def reconfigure(
    ops: OpsSession, kind: str, sequencer: str | None = None, logservers: list[str] | None = None, striping: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``reconfig_extend`` onto a fresh loglet; ``{"installed", "loglet", "chain", "tail"}``.
    ``striping`` (kind ``striped``): ``{"stripes": N, "sharded": bool, "sequencers": [...]}``."""
    config = new_loglet_config(ops, kind, sequencer, logservers, striping)
    failure = None
    with trio.move_on_after(ops.timeout_s) as scope:
        try:
            installed = await ops.vlog.reconfig_extend(config)
        except (LogletUnavailable, SealedError) as e:
            failure = f"could not seal the active loglet ({e})"
        except (MetaStoreError, VirtualLogError) as e:
            failure = f"{type(e).__name__}: {e}"
    if scope.cancelled_caught:
        failure = f"did not finish within {ops.timeout_s:g}s"
    if failure is not None:
        raise OpError(f"reconfigure {failure}; {await _active_diagnosis(ops)}")
    chain, tail = await chain_report(ops)
    return {"installed": installed, "loglet": chain["segments"][-1]["params"] if installed else {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}, "chain": chain, "tail": tail}


async def trim(ops: OpsSession, pos: int) -> dict[str, Any]:
    """``prefix_trim(pos)``, then drop the segments wholly below ``pos`` from the chain."""
    tail = (await active_tail(ops))["position"]
    if not 0 <= pos <= tail:
        raise OpError(f"bad position: trim point {pos} must be between 0 and the tail {tail}")
    before = len(ops.vlog.chain.segments)
    with trio.move_on_after(ops.timeout_s):
        try:
            await ops.vlog.prefix_trim(pos)
            await ops.vlog.reconfig_truncate(pos)
        except (VirtualLogError, MetaStoreError) as e:
            raise OpError(f"trim {pos} failed: {e}") from None
        return {"trim_point": pos, "segments_dropped": before - len(ops.vlog.chain.segments), "base": ops.vlog.chain.base}
    raise OpError(f"trim {pos} did not finish within {ops.timeout_s:g}s; {await _active_diagnosis(ops)}")


# ------------------------------------------------------------------ cold storage, skip


def cold_dir(directory: str, given: str | None = None) -> str:
    """The cold store of the cluster in ``directory``: ``--cold-dir`` if given, else
    ``DIR/cold/`` (a shared or mounted directory works as well: a chain names it by path)."""
    return os.path.abspath(given if given is not None else os.path.join(directory, "cold"))


async def migrate(ops: OpsSession, *, below: int | None, keep: int | None, cold: str, drop: bool = True) -> dict[str, Any]:
    """``delos-ref migrate``: move every sealed segment wholly below ``below`` (or all but
    the last ``keep`` sealed ones) to the cold store in ``cold`` (``delos_ref/migrate.py``:
    copy, verify by reading back, ``reconfig_modify``, then the LogServers drop the range)."""
    from delos_ref.loglet.cold import FileColdStore
    from delos_ref.migrate import MigrationError, keep_last, migrate_below

    chain = ops.vlog.chain
    if below is None:
        assert keep is not None, "migrate: --below or --keep"
        below = keep_last(chain, keep)
    if below < 0:
        raise OpError(f"bad position: --below {below} must be >= 0")
    prefix = f"cold-{secrets.token_hex(4)}"
    try:
        done = await migrate_below(ops.vlog, FileColdStore(cold), below, lambda seg: f"{prefix}-{seg.start}", drop=drop)
    except (MigrationError, LogletError, VirtualLogError, MetaStoreError) as e:
        raise OpError(f"migrate below {below} stopped: {e}") from None
    except OSError as e:
        raise OpError(f"cold store {cold}: {e.strerror or e}") from None
    moved = [{"start": m.start, "stop": m.stop, "copy": m.config.loglet_id, "files": len(m.config.files), "bytes": m.config.size, "installed": m.installed} for m in done]
    chain_json, _tail = await chain_report(ops)
    return {"below": below, "cold_dir": cold, "migrated": moved, "chain": chain_json}


async def skip(ops: OpsSession, pos: int, reason: str) -> dict[str, Any]:
    """``delos-ref skip POS --reason TEXT``: the entry at ``pos`` reads as skipped from now on
    (``delos_ref/loglet/skip.py``); refused for a position not in a sealed segment."""
    from delos_ref.migrate import MigrationError, SkipRefused, skip_entry

    try:
        return await skip_entry(ops.vlog, pos, reason)
    except SkipRefused as e:
        raise OpError(f"cannot skip {pos}: {e}") from None
    except (MigrationError, VirtualLogError, MetaStoreError) as e:
        raise OpError(f"skip {pos} failed: {e}") from None


def cold_summary(params: dict[str, Any]) -> dict[str, Any]:
    """``{"store", "files", "bytes", "entries"}`` of a cold segment's params (for status)."""
    files = params.get("files") or []
    return {"store": params.get("store"), "files": len(files), "bytes": sum(f.get("size", 0) for f in files), "entries": files[-1]["hi"] if files else 0}


# ------------------------------------------------------------------------ loglet plugins

#: Kind names a cluster's registry always has: a plugin may not take one of them.
BUILTIN_KINDS = ("native", "bootstrap", "striped", "cold", "skip", "memory")


def check_new_module(modules: list[str], module: str) -> Any:
    """The plugin ``module`` adds to a cluster whose loglet modules are ``modules``; a
    :class:`~delos_ref.plugins.PluginError` if it does not import, is no plugin, or takes a
    kind name that is built in or already some module's."""
    from delos_ref import plugins

    plugin = plugins.load(module)
    if plugin.kind in BUILTIN_KINDS:
        raise plugins.PluginError(f"loglet module {module} registers the kind {plugin.kind!r}, which is built in: give it another name")
    plugins.load_all([m for m in modules if m != module] + [module])
    return plugin


async def add_loglet_module(directory: str, module: str, *, timeout_s: float = 20.0, on_step: Any = None) -> dict[str, Any]:
    """``delos-ref plugin add MODULE``: record ``module`` in ``cluster.json``, then restart
    the running nodes one at a time so that each imports it, waiting for each to answer before
    the next (a majority of every quorum stays up, so appends go on). A node that sequences
    the active NativeLoglet first hands the log to a loglet sequenced elsewhere (a
    ``reconfigure``), so that its restart does not stall appends until the supervisors notice.
    ``on_step(text)`` hears each step. A module that cannot be used raises ``PluginError``
    before anything changes."""
    try:
        cfg = cluster.load(directory)
    except cluster.ClusterError as e:
        raise OpError(str(e)) from None
    plugin = check_new_module(cfg.loglet_modules, module)
    require_running(directory, cfg)
    report: dict[str, Any] = {"module": module, "kind": plugin.kind, "added": module not in cfg.loglet_modules, "moved": [], "restarted": []}
    if not report["added"]:
        return report
    cfg.loglet_modules.append(module)
    cluster.save(directory, cfg)
    step = on_step or (lambda text: None)
    for spec in cluster.live_nodes(cfg):
        async with session(directory, timeout_s=timeout_s, name="plugin") as s:
            moved = await _move_sequencer_off(s, spec.id)
        if moved is not None:
            report["moved"].append(moved)
            step(f"moved the log off {spec.id}'s sequencer onto {moved['loglet_id']} (sequencer {moved['sequencer']})")
        await trio.to_thread.run_sync(cluster.restart_node, directory, cfg, spec.id)
        await _wait_answers(cfg, spec, timeout_s)
        report["restarted"].append({"node": spec.id, "pid": spec.pid})
        step(f"restarted {spec.id} (pid {spec.pid}) with {module}")
    return report


async def _move_sequencer_off(ops: OpsSession, node_id: str) -> dict[str, Any] | None:
    """If ``node_id`` sequences the active NativeLoglet, reconfigure onto a fresh one on the
    same LogServers sequenced by another live sequencer node; its config (None: no move)."""
    active = ops.vlog.chain.active
    if active.kind != "native" or config_params(ops.vlog, active).get("sequencer") != node_id:
        return None
    live = {n.id for n in cluster.live_nodes(ops.cfg)}
    others = [n for n in ops.cfg.with_role("sequencer") if n != node_id and n in live]
    if not others:
        return None  # a one-sequencer cluster: the supervisors move it after the restart
    result = await reconfigure(ops, "native", sequencer=others[0])
    return {"loglet_id": result["loglet"]["loglet_id"], "sequencer": result["loglet"]["sequencer"]}


async def _wait_answers(cfg: cluster.ClusterConfig, spec: cluster.NodeSpec, timeout_s: float) -> None:
    async with open_client(cfg, "plugin") as client:
        with trio.move_on_after(timeout_s):
            while await ping(client, spec.id, timeout_s=0.5) is None:
                if not cluster.pid_alive(spec.pid):
                    break
            else:
                return
    raise OpError(f"{spec.id} was restarted (pid {spec.pid}) but did not answer within {timeout_s:g}s (see `delos-ref logs {spec.id}`); the module is recorded, the other nodes were not restarted")
