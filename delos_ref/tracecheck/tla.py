"""TLA+ trace validation with TLC: ``delos-ref trace validate SPEC TRACE``.

``specs/Trace<Spec>.tla`` reads an NDJSON trace with ``ndJsonDeserialize`` (TLA+'s ``Json``
module) and replays it line by line (``TraceNext``); TLC accepts the trace when it reaches
the last line with every invariant holding, and reports a *deadlock* at the first line no
action of the spec explains. TLA+ has no order on strings and cannot decode the register's
CBOR chains, so the trace is first *prepared* here (the CCF and etcd-raft validators prepare
their logs the same way):

* only the events the spec maps are kept (line 1 is a ``Config`` header with the constants
  the trace determines: the acceptors, each loglet's LogServers);
* ballots ``[round, proposer]`` become ``[round, rank]``, ranks ordering the proposer ids as
  :class:`paxos.ballot.Ballot` does; values become canonical JSON strings, ``null`` ``""``;
* register values are decoded into chains of ``[start, stop, open, loglet]`` records.

The Python checkers (:mod:`delos_ref.tracecheck`) read the raw trace; the preparation only
changes how the same events are written down. TLC runs when ``TLA2TOOLS_JAR`` names ``tla2tools.jar``
(with ``java`` on PATH) or a ``tlc`` command is on PATH; the Json module ships with the
TLA+ CommunityModules (``CommunityModules-deps.jar``, ``TLA_COMMUNITY_JAR``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from delos_ref.tracecheck.base import canon
from delos_ref.tracecheck.loglet import NativeLogletChecker
from delos_ref.tracecheck.metastore import MetaStoreChecker
from delos_ref.tracecheck.virtuallog import VirtualLogChecker, decode_chain

SPECS_DIR = Path(__file__).resolve().parent.parent.parent / "specs"

HOW_TO_GET_TLC = (
    "TLC is not available: set TLA2TOOLS_JAR to tla2tools.jar "
    "(https://github.com/tlaplus/tlaplus/releases, needs Java 11+) and TLA_COMMUNITY_JAR to "
    "CommunityModules-deps.jar (https://github.com/tlaplus/CommunityModules/releases, for the Json "
    "module), or put a `tlc` command on PATH. Meanwhile `delos-ref trace check` runs the Python "
    "transcription of the same spec on the same trace."
)


class TLCUnavailable(RuntimeError):
    pass


def _val(v: Any) -> str:
    return "" if v is None else canon(v)


def prepare(spec: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trace as ``specs/Trace<spec>.tla`` reads it (see the module docstring)."""
    if spec == "MetaStorePaxos":
        return _prepare_metastore(events)
    if spec == "NativeLoglet":
        return _prepare_loglet(events)
    if spec == "VirtualLog":
        return _prepare_virtuallog(events)
    raise KeyError(spec)


def _prepare_metastore(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = MetaStoreChecker.preprocess(events)
    probe = MetaStoreChecker()
    proposers: set[str] = {""}
    for e in events:
        probe.observe(e)
        for key in ("ballot", "promised", "accepted_ballot"):
            if isinstance(e.get(key), list):
                proposers.add(str(e[key][1]))
    rank = {p: n for n, p in enumerate(sorted(proposers))}  # "" (ZERO) ranks 0

    def bal(x: Any) -> list[int]:
        return [int(x[0]), rank[str(x[1])]]

    out: list[dict[str, Any]] = [{"event": "Config", "acceptors": sorted(probe.acceptors)}]
    for e in events:
        key = (e.get("role"), e.get("event"))
        if key not in MetaStoreChecker.ACTIONS:
            continue
        r: dict[str, Any] = {"event": e["event"], "node": e["node"]}
        if e["role"] == "acceptor":
            if e["event"] == "Query":
                r.update(top=int(e["top"]), accepted_ballot=bal(e["accepted_ballot"]), accepted_value=_val(e["accepted_value"]))
            else:
                r.update(instance=int(e["instance"]), ballot=bal(e["ballot"]), promised=bal(e["promised"]), accepted_ballot=bal(e["accepted_ballot"]), accepted_value=_val(e["accepted_value"]))
        elif e["event"] in ("Propose", "Chosen"):
            value = e["value"]
            r.update(proposer=e["proposer"], proposer_rank=rank.get(e["proposer"], -1), instance=int(e["instance"]), ballot=bal(e["ballot"]), value=_val(value))
            r.update(writer=str(value.get("writer")), seq=int(value.get("seq", -1)), data=_val(value.get("data")))
            r["own"] = value.get("writer") == e["proposer"]
        elif e["event"] == "WriteDone":
            r.update(proposer=e["proposer"], expected=int(e["expected_version"]), seq=int(e["seq"]), outcome=e["outcome"][0], version=int(e["outcome"][1]))
        elif e["event"] == "ReadDone":
            r.update(version=int(e["version"]), data=_val(e["value"]))
        out.append(r)
    return out


def _prepare_loglet(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    servers: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    for e in events:
        if (e.get("role"), e.get("event")) == ("sequencer", "Activate") or (e.get("role") == "loglet" and "logservers" in e):
            servers.setdefault(str(e["loglet"]), list(e["logservers"]))
        elif e.get("role") == "logserver" and "loglet" in e:
            seen.setdefault(str(e["loglet"]), set()).add(e["node"])
        elif e.get("event") in ("SealReturned",):
            seen.setdefault(str(e["loglet"]), set()).update(e["tails"])
        elif e.get("event") == "CheckTail" and "probes" in e:
            seen.setdefault(str(e["loglet"]), set()).update(e["probes"])
    for loglet, nodes in seen.items():
        servers.setdefault(loglet, sorted(nodes))
    out: list[dict[str, Any]] = [{"event": "Config", "loglets": sorted(servers), "servers": [servers[k] for k in sorted(servers)]}]
    for e in events:
        if (e.get("role"), e.get("event")) not in NativeLogletChecker.ACTIONS:
            continue
        r = {k: v for k, v in e.items() if k not in ("t", "role")}
        if e.get("event") == "Stored":
            r["event"] = "StoredRefused" if e["sealed"] else "Stored"
        if e.get("event") == "CheckTail":
            r["event"] = "CheckTailSealed" if e["sealed"] else "CheckTailUnsealed"
            r.setdefault("probes", {})
            r["probed"] = sorted(r["probes"])
            r["probe_tails"] = [int(r["probes"][s]) for s in r["probed"]]
            del r["probes"]
        if e.get("event") == "SealReturned":
            r["sealers"] = sorted(e["tails"])
            r["seal_tails"] = [int(e["tails"][s]) for s in r["sealers"]]
            del r["tails"]
        if "loglet" in r:
            r["loglet"] = str(r["loglet"])
        out.append(r)
    return out


def _prepare_virtuallog(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"event": "Config"}]
    for e in events:
        role, name = e.get("role"), e.get("event")
        if (role, name) == ("metastore", "Chosen") or ((role, name) == ("metastore", "ReadDone") and int(e["version"]) > 0):
            logged = e["value"].get("data") if name == "Chosen" else e["value"]
            chain = decode_chain(logged) if logged is not None else None
            if chain is None:
                continue
            version = int(e["instance"] if name == "Chosen" else e["version"])
            segs = [{"start": s.start, "stop": s.stop if s.stop is not None else 0, "open": s.stop is None, "loglet": s.loglet, "servers": list(s.servers)} for s in chain]
            out.append({"event": "Reveal", "version": version, "chain": segs})
        elif (role, name) == ("virtuallog", "AppendAck"):
            out.append({"event": "AppendAck", "vpos": int(e["vpos"]), "lpos": int(e["lpos"]), "start": int(e["start"]), "loglet": str(e["loglet"])})
        elif (role, name) == ("logserver", "Seal") or (role, name) == ("logserver", "Repair"):
            out.append({"event": "ServerSealed", "loglet": str(e["loglet"]), "node": e["node"]})
        elif (role, name) == ("sequencer", "Activate"):
            out.append({"event": "Activate", "loglet": str(e["loglet"]), "logservers": list(e["logservers"])})
        elif (role, name) == ("loglet", "CheckTail") and e.get("sealed"):
            out.append({"event": "SealedTail", "loglet": str(e["loglet"]), "tail": int(e["tail"])})
    return out


# ---------------------------------------------------------------------------- TLC


def tlc_command() -> list[str]:
    """How to start TLC here; raises :class:`TLCUnavailable` (with how to get it) otherwise."""
    jar = os.environ.get("TLA2TOOLS_JAR")
    if jar and Path(jar).is_file() and shutil.which("java"):
        classpath = jar
        community = os.environ.get("TLA_COMMUNITY_JAR")
        if community:
            classpath += os.pathsep + community
        return ["java", "-XX:+UseParallelGC", "-cp", classpath, "tlc2.TLC"]
    if shutil.which("tlc"):
        return ["tlc"]
    raise TLCUnavailable(HOW_TO_GET_TLC)


def validate_with_tlc(spec: str, events: list[dict[str, Any]], *, workdir: str | None = None) -> tuple[bool, str]:
    """Run TLC on ``specs/Trace<spec>.tla`` over ``events``; (accepted, TLC's output)."""
    command = tlc_command()
    tmp = Path(workdir or tempfile.mkdtemp(prefix="delos-trace-"))
    trace_file = tmp / "trace.ndjson"
    with open(trace_file, "w") as fp:
        for record in prepare(spec, events):
            fp.write(json.dumps(record, sort_keys=True) + "\n")
    module = f"Trace{spec}"
    for f in SPECS_DIR.glob("*.tla"):
        shutil.copy(f, tmp / f.name)
    cfg = (SPECS_DIR / f"{module}.cfg").read_text().replace('"trace.ndjson"', json.dumps(str(trace_file)))
    (tmp / f"{module}.cfg").write_text(cfg)
    proc = subprocess.run(command + ["-config", f"{module}.cfg", f"{module}.tla"], cwd=tmp, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    return proc.returncode == 0 and "Error" not in output, output
