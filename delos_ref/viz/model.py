"""What a trace event is on a chart: the vocabulary shared by the chart and the explorer.

A trace (:mod:`delos_ref.trace`) is a list of events ``{"t", "node", "role", "event", ...}``.
The chart draws each one as one of five things (:func:`kind_of`):

* ``message`` -- the simulated network delivered a message (``~net deliver``): an arrow from
  the sender's lane to the receiver's;
* ``drop`` -- the network lost one (``lost``), a partition cut it (``cut``), its receiver was
  down (``to_down``) or its inbox full (``overflow``): an arrow that ends in a cross;
* ``fault`` -- the nemesis crashed or restarted a node, partitioned the network, cut a link or
  healed it; on a real cluster, a node process started again after it was killed;
* ``client`` -- a client invoked an operation or got its outcome (``ok``, ``fail``, ``info``:
  unknown); the simulator's workloads record these (:mod:`.sources`), traces of a real
  cluster have none. One node may run several operations at once, one per ``process``
  (:func:`process_of`);
* ``step`` -- a protocol step at a node (``Promise``, ``Store``, ``Seal``, ``Commit``,
  ``ReadDone``, ...): a dot on that node's lane, labelled with its key fields.

The simulator records deliveries, not sends: an arrow starts at the sender's last step before
the delivery (for a reply: where the request was delivered), or ``MAX_DELAY_S`` before the
delivery if that is later: the earliest moment the sender can have sent it (see
:func:`send_rows`).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any, Iterable

from transports.memory import LinkModel

NET = "~net"
NEMESIS = "~nemesis"
#: How the network's record of a message's fate reads, for the ones that never arrived.
DROPS = {"lost": "lost", "cut": "cut (partition)", "to_down": "receiver down", "overflow": "inbox full"}
FAULTS = {"crash", "restart", "partition", "cut_link", "heal", "killed", "started"}
CLIENT_EVENTS = {"invoke", "ok", "fail", "info"}
#: Roles that only servers play: a lane with one of these is a server's, drawn first.
SERVER_ROLES = {"acceptor", "logserver", "sequencer", "supervisor", "ping", "node"}
#: Message kinds (transports: Envelope.kind).
REPLY_KIND = 2
#: The simulated network's longest delay (a delay spike on the slowest link): a message
#: delivered at t was sent at t - MAX_DELAY_S or later.
MAX_DELAY_S = LinkModel().delay_max_s * LinkModel().spike_factor


@dataclass(frozen=True, slots=True)
class Violation:
    """A checker's finding: ``index`` is the event it points at (None: found after the run,
    by a check over the whole history), ``what`` its explanation, ``by`` the checker."""

    index: int | None
    what: str
    by: str = "check"


def kind_of(event: dict[str, Any]) -> str:
    """``message``, ``drop``, ``fault``, ``client`` or ``step`` (see the module docstring)."""
    role, name = event.get("role"), event.get("event")
    if role == "net":
        return "message" if name == "deliver" else "drop"
    if role == "nemesis" or (role == "node" and name in FAULTS):
        return "fault"
    if role == "client" and name in CLIENT_EVENTS:
        return "client"
    return "step"


def process_of(e: dict[str, Any]) -> str:
    """The client process of a client event: its ``process`` (``a1@0``: loop 0 of node a1),
    else its node. A process has one operation at a time; a node may have several."""
    return str(e.get("process") or e["node"])


def lanes_of(events: Iterable[dict[str, Any]]) -> list[str]:
    """The lanes, left to right: server nodes (natural order), then clients by first appearance."""
    first: dict[str, int] = {}
    servers: set[str] = set()
    for i, e in enumerate(events):
        for node in touched(e):
            first.setdefault(node, i)
        if e.get("role") in SERVER_ROLES and e.get("node") not in (NET, NEMESIS):
            servers.add(e["node"])
    return sorted(servers, key=natural) + sorted((n for n in first if n not in servers), key=first.__getitem__)


def touched(e: dict[str, Any]) -> list[str]:
    """The lanes an event is drawn on."""
    role = e.get("role")
    if role == "net":
        return [e["src"], e["dst"]]
    if role == "nemesis":
        if e.get("event") in ("crash", "restart"):
            return [e["target"]]
        if e.get("event") == "cut_link":
            return [e["src"], e["dst"]]
        return []
    node = e.get("node")
    return [] if node in (None, NET, NEMESIS) else [str(node)]


def natural(name: str) -> tuple:
    """``s2`` before ``s10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


_HEX = re.compile(r"[0-9a-f]{12,}")


def ballot(b: Any) -> str:
    """A Paxos ballot ``[n, proposer]`` as ``n.proposer`` (a long hex id in the proposer's
    name shortened to its first 6 digits)."""
    if isinstance(b, list) and len(b) == 2:
        return f"{b[0]}.{_HEX.sub(lambda m: m.group(0)[:6], str(b[1]))}" if b[1] else str(b[0])
    return str(b)


def key_fields(e: dict[str, Any]) -> str:
    """The few fields that say what a protocol step did (ballot, positions, seal, version)."""
    name, f = e.get("event"), e
    if name in ("Promise", "RejectPrepare", "Accepted", "RejectAccept"):
        extra = f" promised {ballot(f.get('promised'))}" if name.startswith("Reject") else ""
        return f"i{f.get('instance')} b{ballot(f.get('ballot'))}{extra}"
    if name in ("Propose", "Chosen"):
        return f"v{f.get('instance')} b{ballot(f.get('ballot'))}"
    if name == "ReadDone":
        return f"chain v{f.get('version')}"
    if name == "WriteDone":
        outcome = f.get("outcome")
        shown = "/".join(map(str, outcome)) if isinstance(outcome, list) else outcome
        return f"if v{f.get('expected_version')}: {shown}"
    if name == "Query":
        return f"top v{f.get('top')}"
    if name == "Append" and "first" in f:
        return f"{f.get('loglet')} [{f.get('first')},{f.get('first', 0) + f.get('count', 1)})"
    if name in ("Store", "Repair") and "lo" in f:
        return f"{f.get('loglet')} [{f.get('lo')},{f.get('hi')}) tail {f.get('local_tail', f.get('tail'))}"
    if name == "Stored":
        return f"{f.get('loglet')} {f.get('server')} tail {f.get('local_tail')}" + (" SEALED" if f.get("sealed") else "")
    if name == "Commit":
        return f"{f.get('loglet')} known tail {f.get('known_tail')}"
    if name == "Seal":
        return f"{f.get('loglet')} SEALED tail {f.get('local_tail')}"
    if name == "StoreRefused":
        return f"{f.get('loglet')} refused: {f.get('reason')}"
    if name == "SequencerSealed":
        return f"{f.get('loglet')} known tail {f.get('known_tail')}"
    if name == "SealReturned":
        return f"{f.get('loglet')} seal from {sorted(f.get('tails') or {})}"
    if name == "CheckTail":
        return f"{f.get('loglet')} tail {f.get('tail')}" + (" sealed" if f.get("sealed") else "")
    if name == "AppendAck":
        return f"vpos {f.get('vpos')} on {f.get('loglet')}"
    if name == "Reconfigured":
        return f"chain v{f.get('version')}" + (" won" if f.get("won") else " lost")
    if name == "Activate":
        return str(f.get("loglet"))
    if name == "StripedAppend":  # logical position = stripe position * N + stripe
        return f"{f.get('loglet')} pos {f.get('pos')} = {f.get('stripe_pos')}*{f.get('stripes')}+{f.get('stripe')}"
    if name == "StripedFill":
        return f"{f.get('loglet')} filler at stripe {f.get('stripe')} pos {f.get('stripe_pos')}"
    if name == "StripedAck":
        return f"{f.get('loglet')} pos {f.get('pos')}"
    if name == "StripedCheckTail":
        return f"{f.get('loglet')} tails {f.get('tails')} -> tail {f.get('tail')}" + (" sealed" if f.get("sealed") else "")
    if name == "StripedSeal":
        return f"{f.get('loglet')}" + (" (one stripe only: bug)" if f.get("partial") else "")
    skip = {"t", "node", "role", "event", "logservers", "register", "proposer", "client"}
    parts = [f"{k}={v}" for k, v in f.items() if k not in skip and isinstance(v, (int, float, str, bool)) and v is not None]
    return " ".join(parts[:3])[:60]


#: Steps that change protocol state a reader should see (drawn bold on the lane).
STATE_CHANGES = {
    "Promise", "Accepted", "Chosen", "ReadDone", "Store", "Seal", "Repair", "Commit", "Activate",
    "SequencerSealed", "SealReturned", "CheckTail", "Reconfigured", "StripedSeal", "StripedAck",
}


def label_of(e: dict[str, Any]) -> str:
    """One line for any event (the explorer's step line, a chart's tooltip)."""
    kind = kind_of(e)
    if kind in ("message", "drop"):
        fate = "" if kind == "message" else f" {DROPS.get(e['event'], e['event'])}"
        return f"{e['src']} -> {e['dst']}: {e.get('msg')}{fate}"
    if kind == "fault":
        return fault_label(e)
    if kind == "client":
        value = e.get("value")
        return f"{process_of(e)}: {e['event']} {e.get('f')}" + ("" if value is None else f" {value}")
    return f"{e.get('node')} {e.get('role')}: {e.get('event')} {key_fields(e)}".rstrip()


def fault_label(e: dict[str, Any]) -> str:
    name = e.get("event")
    if name in ("crash", "restart"):
        return f"{name} {e.get('target')}"
    if name == "partition":
        return "partition " + " | ".join("{" + ",".join(g) + "}" for g in e.get("groups", []))
    if name == "cut_link":
        return f"cut link {e.get('src')} -> {e.get('dst')}"
    if name == "killed":
        return f"{e.get('node')} killed (its process died; restarted here)"
    if name == "started":
        return f"{e.get('node')} started"
    return str(name)


def send_rows(events: list[dict[str, Any]]) -> dict[int, int]:
    """For each delivery or drop: the row its arrow starts at (see the module docstring).

    A reply starts where its request was delivered (its handler ran then); any other message
    at the sender's last event before it; either way no earlier than the network's longest
    delay before the delivery. A loss starts at its own row: the network records losses when
    the message is sent.
    """
    times = [float(e.get("t", 0.0)) for e in events]
    last_at: dict[str, int] = {}
    request_at: dict[tuple, int] = {}
    out: dict[int, int] = {}
    for i, e in enumerate(events):
        kind = kind_of(e)
        if kind == "message":
            src, dst = e["src"], e["dst"]
            earliest = bisect.bisect_left(times, times[i] - MAX_DELAY_S, 0, i + 1)
            if e.get("kind") == REPLY_KIND and (dst, src, e.get("rid")) in request_at:
                out[i] = max(request_at[(dst, src, e.get("rid"))], earliest)
            else:
                out[i] = max(last_at.get(src, i), earliest)
            if e.get("kind") != REPLY_KIND:
                request_at[(src, dst, e.get("rid"))] = i
        elif kind == "drop":
            out[i] = i if e.get("event") == "lost" else last_at.get(e["src"], i)
        for node in touched(e):
            last_at[node] = i
    return out


def duplicates(events: list[dict[str, Any]]) -> set[int]:
    """Deliveries of a message delivered before (same sender, receiver, type and request id):
    a copy the network duplicated, or a client's resend of the same request."""
    seen: set[tuple] = set()
    out = set()
    for i, e in enumerate(events):
        if kind_of(e) == "message" and e.get("rid"):
            key = (e["src"], e["dst"], e.get("kind"), e.get("rid"), e.get("msg"))
            if key in seen:
                out.add(i)
            seen.add(key)
    return out


def triggered(events: list[dict[str, Any]], i: int, horizon: int = 8) -> dict[str, Any] | None:
    """The protocol step a delivery caused: the receiver's next step at the same instant."""
    e = events[i]
    for j in range(i + 1, min(len(events), i + 1 + horizon)):
        nxt = events[j]
        if nxt.get("t") != e.get("t"):
            return None
        if nxt.get("node") == e["dst"] and kind_of(nxt) == "step":
            return nxt
    return None


def mark_restarts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Real-cluster traces: a node ``Start`` after a Start with no ``Stop`` between is a
    restart after a kill; relabel it ``killed`` (a fault) so the chart shows the death. The
    list is copied, the events are not."""
    out = []
    started: dict[str, bool] = {}
    for e in events:
        if e.get("role") == "node" and e.get("event") == "Start":
            node = e.get("node")
            if started.get(node):
                e = {**e, "event": "killed"}
            started[node] = True
        elif e.get("role") == "node" and e.get("event") == "Stop":
            started[e.get("node")] = False
        out.append(e)
    return out


def inferred_messages(events: list[dict[str, Any]]) -> dict[int, tuple[str, int, str]]:
    """For a trace without the network's records (a real cluster's): the messages that must
    have arrived for some steps to happen, as ``{index: (sender, start_row, label)}``.

    Only where the steps' fields name the sender: a LogServer's ``Store`` came from the
    sequencer whose latest ``Append`` covered its positions; a sequencer's ``Stored`` from that
    LogServer's last ``Store`` of the loglet; an acceptor's ``Promise``/``Accepted`` (and their
    rejections) from the proposer named in the ballot; a LogServer's ``Seal`` from the first
    client whose ``SealReturned`` lists that LogServer (another sealer's copy may have come
    first: seals are idempotent). The arrow starts at the sender's last step before it.
    """
    proposer_node = {e["proposer"]: str(e["node"]) for e in events if e.get("role") == "metastore" and "proposer" in e}
    sealer_of = _sealers(events)
    last_at: dict[str, int] = {}
    appends: dict[str, list[tuple[int, int, str]]] = {}  # loglet -> (first, end, sequencer node)
    last_store: dict[tuple[str, str], int] = {}  # (logserver node, loglet) -> row
    out: dict[int, tuple[str, int, str]] = {}
    for i, e in enumerate(events):
        role, name, node = e.get("role"), e.get("event"), str(e.get("node"))
        sender: tuple[str, int, str] | None = None
        if role == "sequencer" and name == "Append" and "first" in e:
            appends.setdefault(str(e.get("loglet")), []).append((int(e["first"]), int(e["first"]) + int(e.get("count", 1)), node))
        elif role == "logserver" and name in ("Store", "StoreRefused") and "lo" in e:
            for first, end, seq in reversed(appends.get(str(e.get("loglet")), [])):
                if first <= int(e["lo"]) < end:
                    sender = (seq, last_at.get(seq, i), f"Append {e.get('loglet')} [{e['lo']},{e.get('hi')})")
                    break
        elif role == "sequencer" and name == "Stored" and (e.get("server"), e.get("loglet")) in last_store:
            server = str(e["server"])
            sender = (server, last_store[(server, str(e.get("loglet")))], f"Stored tail {e.get('local_tail')}")
        elif role == "acceptor" and name in ("Promise", "RejectPrepare", "Accepted", "RejectAccept"):
            b = e.get("ballot")
            proposer = proposer_node.get(b[1]) if isinstance(b, list) and len(b) == 2 else None
            if proposer is not None and proposer != node:
                phase = "Prepare" if name in ("Promise", "RejectPrepare") else "Accept"
                sender = (proposer, last_at.get(proposer, i), f"{phase} i{e.get('instance')} b{ballot(b)}")
        elif role == "logserver" and name == "Seal" and i in sealer_of:
            sealer = sealer_of[i]
            sender = (sealer, last_at.get(sealer, i), f"Seal {e.get('loglet')}")
        if role == "logserver" and name in ("Store", "StoreRefused", "Seal", "Repair"):
            last_store[(node, str(e.get("loglet")))] = i
        if sender is not None and sender[0] != node:
            out[i] = sender
        for n in touched(e):
            last_at[n] = i
    return out


def _sealers(events: list[dict[str, Any]]) -> dict[int, str]:
    """Each LogServer ``Seal`` event -> the client whose next ``SealReturned`` names it."""
    out: dict[int, str] = {}
    pending: dict[tuple[str, str], list[int]] = {}  # (logserver, loglet) -> Seal rows not yet claimed
    for i, e in enumerate(events):
        if e.get("role") == "logserver" and e.get("event") == "Seal":
            pending.setdefault((str(e["node"]), str(e.get("loglet"))), []).append(i)
        elif e.get("role") == "loglet" and e.get("event") == "SealReturned":
            for server in e.get("tails") or {}:
                for row in pending.pop((server, str(e.get("loglet"))), []):
                    out[row] = str(e["node"])
    return out
