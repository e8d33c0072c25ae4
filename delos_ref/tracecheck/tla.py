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
* register values are decoded into chains of ``[start, stop, open, loglet, servers, config]`` records
  (``config``: the segment's kind and a digest of its params, so a config-only modify shows);
* ``migrate ColdVerified`` events (a verified cold copy) become ``ColdVerified`` lines
  (``copy`` is written ``loglet`` there).

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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delos_ref.tracecheck.base import canon
from delos_ref.tracecheck.loglet import NativeLogletChecker
from delos_ref.tracecheck.metastore import MetaStoreChecker
from delos_ref.tracecheck.virtuallog import decode_chain

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


def prepare(spec: str, events: list[dict[str, Any]], origin: list[dict[str, Any] | None] | None = None) -> list[dict[str, Any]]:
    """The trace as ``specs/Trace<spec>.tla`` reads it (see the module docstring).

    ``origin``, if given, receives for each prepared line the trace event it came from (None
    for the Config header and for steps the preparation makes explicit): a rejection at a
    prepared line is reported with the implementation's event.
    """
    sink: list[dict[str, Any] | None] = [] if origin is None else origin
    if spec == "MetaStorePaxos":
        return _prepare_metastore(events, sink)
    if spec == "NativeLoglet":
        return _prepare_loglet(events, sink)
    if spec == "VirtualLog":
        return _prepare_virtuallog(events, sink)
    raise KeyError(spec)


def _prepare_metastore(events: list[dict[str, Any]], origin: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
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
    origin.append(None)
    for e in events:
        key = (e.get("role"), e.get("event"))
        if key not in MetaStoreChecker.ACTIONS:
            continue
        origin.append(None if e.get("hidden") else e)
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


def _prepare_loglet(events: list[dict[str, Any]], origin: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
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
    origin.append(None)
    for e in events:
        if (e.get("role"), e.get("event")) not in NativeLogletChecker.ACTIONS:
            continue
        origin.append(e)
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


def _prepare_virtuallog(events: list[dict[str, Any]], origin: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"event": "Config"}]
    aliases: dict[str, str] = {}  # a wrapper config's name for a loglet -> the loglet (as the checker)
    origin.append(None)
    for e in events:
        role, name = e.get("role"), e.get("event")
        r: dict[str, Any] | None = None
        if (role, name) == ("metastore", "Chosen") or ((role, name) == ("metastore", "ReadDone") and int(e["version"]) > 0):
            logged = e["value"].get("data") if name == "Chosen" else e["value"]
            chain = decode_chain(logged) if logged is not None else None  # raises ChainDecodeError
            if chain is None:
                continue
            version = int(e["instance"] if name == "Chosen" else e["version"])
            aliases.update({s.alias: s.loglet for s in chain if s.alias})
            segs = [{"start": s.start, "stop": s.stop if s.stop is not None else 0, "open": s.stop is None, "loglet": s.loglet, "servers": list(s.servers), "config": s.config} for s in chain]
            r = {"event": "Reveal", "version": version, "chain": segs}
        elif (role, name) == ("virtuallog", "AppendAck"):
            r = {"event": "AppendAck", "vpos": int(e["vpos"]), "lpos": int(e["lpos"]), "start": int(e["start"]), "loglet": aliases.get(str(e["loglet"]), str(e["loglet"]))}
        elif (role, name) == ("logserver", "Seal") or (role, name) == ("logserver", "Repair"):
            r = {"event": "ServerSealed", "loglet": str(e["loglet"]), "node": e["node"]}
        elif (role, name) == ("sequencer", "Activate"):
            r = {"event": "Activate", "loglet": str(e["loglet"]), "logservers": list(e["logservers"])}
        elif (role, name) == ("loglet", "CheckTail") and e.get("sealed"):
            r = {"event": "SealedTail", "loglet": str(e["loglet"]), "tail": int(e["tail"])}
        elif (role, name) == ("migrate", "ColdVerified"):
            source = str(e.get("source", ""))
            r = {"event": "ColdVerified", "loglet": str(e["copy"]), "source": aliases.get(source, source), "start": int(e.get("start", -1)), "stop": int(e.get("stop", -1))}
        if r is not None:
            out.append(r)
            origin.append(e)
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


class SpecError(RuntimeError):
    """A tool error, not a verdict: the spec is missing or does not parse (SANY's message)."""


class TLCFailed(RuntimeError):
    """TLC stopped without a verdict on the trace (a Java error, an unreadable trace...)."""


#: TLC's exit code when SANY cannot parse the spec (tlc2.output.EC.ExitStatus.ERROR_SPEC_PARSE).
TLC_PARSE_ERROR = 150
#: Bounds of a rejection report: characters of one variable's value, variables shown.
REPORT_VALUE_CHARS = 240
REPORT_MAX_VARIABLES = 12


@dataclass
class Verdict:
    """TLC's verdict on one trace. ``report`` is bounded whatever the trace's length."""

    spec: str
    accepted: bool
    report: str
    states: int | None = None
    seconds: float = 0.0
    kept: Path | None = None  # the working directory, with TLC's whole output (``--keep``)
    event: dict[str, Any] | None = None  # a rejection: the trace event of the line it stopped at


def resolve_spec(text: str) -> tuple[str, Path, str]:
    """``(spec, directory, module)``: ``VirtualLog`` means ``specs/TraceVirtualLog.tla``; a path
    (``my/TraceVirtualLog.tla`` or ``my/VirtualLog.tla``) means the Trace module in that
    directory, with the modules next to it. Raises :class:`SpecError` for a missing file."""
    from delos_ref.tracecheck.run import spec_name

    spec = spec_name(text)  # KeyError: not one of the three
    if not (text.endswith(".tla") or "/" in text or os.sep in text):
        return spec, SPECS_DIR, f"Trace{spec}"
    path = Path(text)
    module = path.stem if path.stem.startswith("Trace") else f"Trace{spec}"
    directory = path.parent
    for needed in (directory / f"{module}.tla", directory / f"{module}.cfg"):
        if not needed.is_file():
            raise SpecError(f"{needed}: no such file (a Trace spec needs its .tla and .cfg side by side)")
    return spec, directory, module


def validate_with_tlc(spec_text: str, events: list[dict[str, Any]], *, keep: bool = False) -> Verdict:
    """Run TLC on the Trace module of ``spec_text`` (:func:`resolve_spec`) over ``events``.

    TLC runs in a fresh temporary directory (its own temporary files included), removed
    afterwards unless ``keep``. Raises :class:`SpecError` if the spec does not parse,
    :class:`TLCFailed` if TLC gives no verdict, :class:`TLCUnavailable` without TLC."""
    command = tlc_command()
    spec, directory, module = resolve_spec(spec_text)
    origin: list[dict[str, Any] | None] = []
    prepared = prepare(spec, events, origin)
    tmp = Path(tempfile.mkdtemp(prefix="delos-trace-"))
    try:
        verdict = _run_tlc(command, spec, directory, module, prepared, origin, events, tmp)
    except BaseException:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep:
        verdict.kept = tmp
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return verdict


def _run_tlc(command: list[str], spec: str, directory: Path, module: str, prepared: list[dict[str, Any]], origin: list[dict[str, Any] | None], events: list[dict[str, Any]], tmp: Path) -> Verdict:
    trace_file = tmp / "trace.ndjson"
    with open(trace_file, "w") as fp:
        for record in prepared:
            fp.write(json.dumps(record, sort_keys=True) + "\n")
    for f in directory.glob("*.tla"):
        shutil.copy(f, tmp / f.name)
    cfg = (directory / f"{module}.cfg").read_text().replace('"trace.ndjson"', json.dumps(str(trace_file)))
    (tmp / f"{module}.cfg").write_text(cfg)
    java_tmp = tmp / "java-tmp"
    java_tmp.mkdir()
    if command[0] == "java":  # TLC's own scratch files (/tmp/tlc-*) go under tmp too
        command = [command[0], f"-Djava.io.tmpdir={java_tmp}", *command[1:]]
    env = dict(os.environ, TLC_JAVA_OPTS=(os.environ.get("TLC_JAVA_OPTS", "") + f" -Djava.io.tmpdir={java_tmp}").strip())
    output = tmp / "tlc.out"
    started = time.perf_counter()
    with open(output, "w") as out:
        proc = subprocess.run(
            command + ["-metadir", str(tmp / "states"), "-config", f"{module}.cfg", f"{module}.tla"],
            cwd=tmp, stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    seconds = time.perf_counter() - started
    result = read_tlc_output(output)
    if proc.returncode == TLC_PARSE_ERROR or result.parse_error:
        raise SpecError(f"{directory / module}.tla (SANY's message follows)\n" + "\n".join(result.parse_error or result.tail))
    if result.completed and proc.returncode == 0:
        return Verdict(spec, True, f"{module}: TLC accepts the trace ({len(prepared) - 1} lines, {result.states} states, {seconds:.1f} s)", result.states, seconds)
    if result.error is None:
        raise TLCFailed(f"TLC ended (exit {proc.returncode}) without a verdict:\n" + "\n".join(result.tail))
    report, event = rejection_report(spec, module, result, prepared, origin, events)
    return Verdict(spec, False, report, result.states, seconds, event=event)


@dataclass
class TLCOutput:
    """What a rejection report needs from TLC's output, read in one pass (it may be huge)."""

    completed: bool = False
    states: int | None = None
    error: str | None = None  # "Deadlock reached.", "Invariant X is violated.", ...
    parse_error: list[str] = field(default_factory=list)
    last: dict[str, str] = field(default_factory=dict)  # the last state of the behaviour
    before: dict[str, str] = field(default_factory=dict)  # the state before it
    last_number: int = 0
    tail: list[str] = field(default_factory=list)  # TLC's last lines (for tool errors)


def read_tlc_output(path: Path) -> TLCOutput:
    """Scan TLC's output, keeping only the last two states of an error behaviour."""
    result = TLCOutput()
    current: dict[str, str] | None = None
    var: str | None = None
    in_parse_error = False
    tail: list[str] = []
    with open(path, errors="replace") as fp:
        for raw in fp:
            line = raw.rstrip("\n")
            tail.append(line)
            if len(tail) > 30:
                del tail[0]
            if line.startswith("***Parse Error***") or line.startswith("*** Errors:") or "Fatal errors while parsing" in line:
                in_parse_error = True
            if in_parse_error:
                if line.startswith("Starting...") or len(result.parse_error) >= 40:
                    in_parse_error = False
                elif line.strip():
                    result.parse_error.append(line)
                continue
            if line.startswith("Model checking completed. No error has been found."):
                result.completed = True
            elif line.startswith("Error: ") and result.error is None and not line.startswith("Error: The behavior"):
                result.error = line[len("Error: "):]
            elif line.startswith("State ") and ":" in line:
                if current is not None:
                    result.before = current
                current = {}
                result.last = current
                try:
                    result.last_number = int(line.split()[1].rstrip(":"))
                except ValueError:
                    pass
                var = None
            elif current is not None and line.startswith("/\\ ") and " = " in line:
                var, value = line[3:].split(" = ", 1)
                current[var] = value
            elif current is not None and var is not None and line.startswith("   "):
                if len(current[var]) < 4 * REPORT_VALUE_CHARS:
                    current[var] += " " + line.strip()
            elif current is not None and not line.strip():
                var = None
            elif "distinct states found" in line:
                try:
                    result.states = int(line.split(" distinct states found")[0].split(",")[-1].strip().split()[0])
                except (ValueError, IndexError):
                    pass
    result.tail = tail
    return result


def _short(text: str, limit: int = REPORT_VALUE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def rejection_report(spec: str, module: str, result: TLCOutput, prepared: list[dict[str, Any]], origin: list[dict[str, Any] | None], events: list[dict[str, Any]]) -> tuple[str, dict[str, Any] | None]:
    """A bounded account of a rejection: TLC's error, the trace line no action took (or after
    which an invariant failed), the action expected, the condition that failed, and the last
    matched state diffed against the one before. Never TLC's whole behaviour."""
    lines = [f"{module}: TLC rejects the trace: {result.error}"]
    # ``l`` is the next prepared line to take: a deadlock stops before line l; an invariant
    # fails in the state reached by taking line l - 1.
    try:
        l = int(result.last.get("l", "0"))
    except ValueError:
        l = 0
    deadlock = (result.error or "").startswith("Deadlock")
    at = l if deadlock else l - 1
    source: dict[str, Any] | None = None
    if 1 <= at <= len(prepared):
        record = prepared[at - 1]
        source = origin[at - 1] if at - 1 < len(origin) else None
        lines.append(f"  prepared line {at} of {len(prepared)}: {_short(json.dumps(record, sort_keys=True), 400)}")
        if source is not None:
            index = next((i for i, e in enumerate(events) if e is source), None)
            where = f"trace event {index + 1}" if index is not None else "trace event"
            lines.append(f"  {where}: {_short(json.dumps(source, sort_keys=True), 400)}")
        what = "no action of the spec takes it (TLC: deadlock)" if deadlock else "taking it breaks the invariant"
        lines.append(f"  expected action: the one for event {record.get('event')!r}; {what}")
    # TLC does not say which conjunct of an action failed; the Python transcription of the
    # same spec does, on the same events (the two agree on every trace tried so far).
    lines.append("  failed condition: " + _python_says(spec, events))
    if result.last:
        lines.append(f"  last matched state (state {result.last_number}) against the one before:")
        changed = [v for v in result.last if result.before.get(v) != result.last[v]]
        for v in changed[:REPORT_MAX_VARIABLES]:
            lines.append(f"    {v}: {_short(result.before.get(v, '(none)'))}")
            lines.append(f"    {' ' * len(v)}  -> {_short(result.last[v])}")
        if len(changed) > REPORT_MAX_VARIABLES:
            lines.append(f"    ... and {len(changed) - REPORT_MAX_VARIABLES} more changed variables")
        lines.append(f"    ({len(result.last) - len(changed)} variables unchanged; the whole behaviour is in tlc.out with --keep)")
    return "\n".join(lines), source


def _python_says(spec: str, events: list[dict[str, Any]]) -> str:
    from delos_ref.tracecheck.base import TraceViolation
    from delos_ref.tracecheck.run import check_events

    try:
        check_events(spec, events)
    except TraceViolation as v:
        return f"(from the Python transcription, delos_ref/tracecheck) {v.action}: {v.why} at trace event {v.index + 1}" if v.index >= 0 else f"(from the Python transcription) {v.action}: {v.why}"
    return "TLC does not name it, and the Python transcription accepts this trace: the two disagree (a bug in one of them; please report it)"
