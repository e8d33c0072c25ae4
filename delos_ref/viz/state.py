"""Every node's protocol state after each event: the explorer's right-hand side.

:func:`fold` reads the events in order and keeps, as short text per key, what a student wants
to see at each step:

==============  ==========================  ==============================================
section         key                         value
==============  ==========================  ==============================================
``nodes``       node                        up, or down (crashed / killed)
``network``     ``partition``, ``cut a->b``   the partition's sides, a link cut one way
``acceptors``   node, register, instance    promised ballot, accepted ballot (Paxos slots)
``logservers``  node, loglet                local tail, and the seal bit
``sequencers``  node, loglet                its window ``[known tail, next position)``
``striped``     striped loglet, and each    per stripe: its committed tail and seal bits;
                of its stripes              the striped loglet: its tail (rule 4: the first
                                            unfilled position), sealed or not, the highest
                                            acknowledged position
``chains``      client                      the chain it holds (version and segments)
``metastore``   ``chain``                   the chain chosen with the highest version
``history``     client and op number        the operation, and its outcome when it has one
==============  ==========================  ==============================================

A StripedLoglet (``delos_ref/loglet/striped.py``) has no servers of its own: its state is its
stripes'. A stripe's *committed tail* is the highest one any event shows (its sequencer's
``Commit``, a ``check_tail`` of the stripe, a ``StripedAppend`` or ``StripedFill`` at ``l``:
``l + 1``); it is *sealed* once a majority of its LogServers have the seal bit. The striped
tail is ``min over j of (tail_j * N + j)``; an acknowledged position at or above it is above a
hole, which rule 2 forbids (bug switch ``striped_acks_over_hole``).

The state after event ``i`` is the first ``i + 1`` diffs applied in order; a diff is a list of
``[section, key, value]`` (``value`` None: the key is gone). The explorer replays them in the
page, so a 10,000-event run stays small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from delos_ref.loglet.striped import combine, stripe_id
from delos_ref.tracecheck.virtuallog import ChainDecodeError, decode_chain
from delos_ref.viz.model import ballot, fault_label, kind_of, mark_restarts, process_of

SECTIONS = ("nodes", "network", "acceptors", "logservers", "sequencers", "striped", "chains", "metastore", "history")
Diff = list[list[Any]]


@dataclass
class StripedView:
    """What the events show of one StripedLoglet (see the module docstring)."""

    loglet: str
    stripes: int
    tails: list[int] = field(default_factory=list)  # committed tail of each stripe
    servers: list[tuple[str, ...]] = field(default_factory=list)  # each stripe's LogServers
    acked: int | None = None  # the highest acknowledged position

    def __post_init__(self) -> None:
        self.tails = [0] * self.stripes
        self.servers = [()] * self.stripes


class Folder:
    """Turns each event into the diff it makes to the state (see the module docstring).

    ``striped``: the StripedLoglets of the run, id -> stripe count (:func:`striped_loglets`),
    so their stripes' events are read as such from the first one."""

    def __init__(self, striped: dict[str, int] | None = None) -> None:
        self.state: dict[str, dict[str, str]] = {s: {} for s in SECTIONS}
        self.op_count: dict[str, int] = {}
        self.metastore_version = -1
        self.striped = {sid: StripedView(sid, n) for sid, n in (striped or {}).items()}
        self.stripe_of = {stripe_id(v.loglet, j): (v, j) for v in self.striped.values() for j in range(v.stripes)}

    def step(self, e: dict[str, Any]) -> Diff:
        diff: Diff = []
        kind = kind_of(e)
        if kind == "fault":
            self._fault(e, diff)
        elif kind == "client":
            self._client(e, diff)
        elif kind == "step":
            handler = getattr(self, "_on_" + str(e.get("event")), None)
            if e.get("node") is not None:
                self._set(diff, "nodes", str(e["node"]), "up", only_new=True)
            if handler is not None:
                handler(e, diff)
            if self.striped:
                self._striped(e, diff)
        return diff

    def _set(self, diff: Diff, section: str, key: str, value: str | None, only_new: bool = False) -> None:
        table = self.state[section]
        if only_new and key in table:
            return
        if table.get(key) == value:
            return
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
        diff.append([section, key, value])

    # ------------------------------------------------------------------- faults and clients

    def _fault(self, e: dict[str, Any], diff: Diff) -> None:
        name = e["event"]
        if name == "crash":
            self._set(diff, "nodes", e["target"], "DOWN (crashed)")
        elif name == "restart":
            self._set(diff, "nodes", e["target"], f"up (incarnation {e.get('incarnation')})")
        elif name == "killed":
            self._set(diff, "nodes", e["node"], "up (restarted after a kill)")
        elif name == "partition":
            self._set(diff, "network", "partition", fault_label(e).removeprefix("partition "))
        elif name == "cut_link":
            self._set(diff, "network", f"cut {e['src']}->{e['dst']}", "messages dropped")
        elif name == "heal":
            for key in list(self.state["network"]):
                self._set(diff, "network", key, None)

    def _client(self, e: dict[str, Any], diff: Diff) -> None:
        process = process_of(e)
        if e["event"] == "invoke":
            self.op_count[process] = self.op_count.get(process, 0) + 1
        key = f"{process} #{self.op_count.get(process, 0)}"
        value = e.get("value")
        if e["event"] == "invoke":
            self._set(diff, "history", key, f"{e['f']}({'' if value is None else value}) ...")
        else:
            before = self.state["history"].get(key, e["f"]).removesuffix(" ...")
            outcome = {"ok": "ok", "fail": "FAILED", "info": "UNKNOWN outcome"}[e["event"]]
            self._set(diff, "history", key, f"{before} -> {outcome}" + ("" if value is None else f" {value}"))

    # ------------------------------------------------------------------------------ Paxos

    def _slot(self, e: dict[str, Any]) -> str:
        return f"{e['node']} {e.get('register') or 'chain'} v{e.get('instance')}"

    def _on_Promise(self, e: dict[str, Any], diff: Diff) -> None:
        accepted = e.get("accepted_ballot")
        self._set(diff, "acceptors", self._slot(e), f"promised {ballot(e.get('promised'))}, accepted {ballot(accepted) if accepted and accepted[0] else 'none'}")

    def _on_Accepted(self, e: dict[str, Any], diff: Diff) -> None:
        self._set(diff, "acceptors", self._slot(e), f"promised {ballot(e.get('promised'))}, accepted {ballot(e.get('accepted_ballot'))}")

    def _on_Chosen(self, e: dict[str, Any], diff: Diff) -> None:
        version = int(e.get("instance") or 0)
        value = e.get("value")
        text = chain_text(value.get("data") if isinstance(value, dict) else value)
        if text is not None:
            self._set(diff, "chains", str(e["node"]), f"v{version}: {text}")
            if version > self.metastore_version:
                self.metastore_version = version
                self._set(diff, "metastore", "chain", f"v{version}: {text}")

    def _on_ReadDone(self, e: dict[str, Any], diff: Diff) -> None:
        text = chain_text(e.get("value"))
        if text is not None:
            self._set(diff, "chains", str(e["node"]), f"v{e.get('version')}: {text}")

    # ---------------------------------------------------------------------------- loglets

    def _server(self, e: dict[str, Any]) -> str:
        return f"{e['node']} {e.get('loglet')}"

    def _logserver(self, e: dict[str, Any], diff: Diff, sealed: bool | None = None) -> None:
        key = self._server(e)
        was_sealed = "SEALED" in self.state["logservers"].get(key, "")
        sealed = was_sealed if sealed is None else sealed
        self._set(diff, "logservers", key, f"local tail {e.get('local_tail')}" + (", SEALED" if sealed else ""))

    def _on_Store(self, e: dict[str, Any], diff: Diff) -> None:
        if e.get("role") == "logserver":
            self._logserver(e, diff)

    def _on_Seal(self, e: dict[str, Any], diff: Diff) -> None:
        if e.get("role") == "logserver":
            self._logserver(e, diff, sealed=True)

    def _on_Repair(self, e: dict[str, Any], diff: Diff) -> None:
        if e.get("role") == "logserver" and "local_tail" in e:
            self._logserver(e, diff, sealed=e.get("sealed"))

    def _on_StoreRefused(self, e: dict[str, Any], diff: Diff) -> None:
        if e.get("reason") == "sealed" and "local_tail" in e:
            self._logserver(e, diff, sealed=True)

    def _window(self, e: dict[str, Any], diff: Diff, *, known: Any = None, nxt: Any = None, sealed: bool = False) -> None:
        key = self._server(e)
        old = self.state["sequencers"].get(key, "")
        k, n = _window_of(old)
        k = k if known is None else known
        n = n if nxt is None else nxt
        self._set(diff, "sequencers", key, f"window [{k}, {n})" + (", SEALED" if sealed or "SEALED" in old else ""))

    def _on_Activate(self, e: dict[str, Any], diff: Diff) -> None:
        if e.get("role") == "sequencer":
            self._window(e, diff, known=0, nxt=0)

    def _on_Append(self, e: dict[str, Any], diff: Diff) -> None:
        if e.get("role") == "sequencer" and "first" in e:
            self._window(e, diff, nxt=int(e["first"]) + int(e.get("count", 1)))

    def _on_Commit(self, e: dict[str, Any], diff: Diff) -> None:
        if e.get("role") == "sequencer":
            self._window(e, diff, known=e.get("known_tail"))

    def _on_SequencerSealed(self, e: dict[str, Any], diff: Diff) -> None:
        self._window(e, diff, known=e.get("known_tail"), nxt=e.get("next_pos"), sealed=True)


    # ---------------------------------------------------------------------- striped loglets

    def _striped(self, e: dict[str, Any], diff: Diff) -> None:
        """Update the StripedLoglet an event is about (one of its own, or a stripe's)."""
        loglet = str(e.get("loglet"))
        if loglet in self.striped:
            view = self.striped[loglet]
            name = e.get("event")
            if name in ("StripedAppend", "StripedFill"):
                self._stripe_tail(view, int(e["stripe"]), int(e["stripe_pos"]) + 1)
            elif name == "StripedCheckTail":
                for j, t in enumerate(e.get("tails") or []):
                    self._stripe_tail(view, j, int(t))
            elif name == "StripedAck":
                view.acked = max(int(e["pos"]), -1 if view.acked is None else view.acked)
        elif loglet in self.stripe_of:
            view, j = self.stripe_of[loglet]
            if e.get("logservers"):
                view.servers[j] = tuple(e["logservers"])
            name = e.get("event")
            if name in ("Commit", "SequencerSealed"):
                self._stripe_tail(view, j, int(e.get("known_tail") or 0))
            elif name == "CheckTail" and e.get("role") == "loglet":
                self._stripe_tail(view, j, int(e.get("tail") or 0))
        else:
            return
        self._show_striped(view, diff)

    def _stripe_tail(self, view: StripedView, j: int, tail: int) -> None:
        if 0 <= j < view.stripes:
            view.tails[j] = max(view.tails[j], tail)

    def _seal_bits(self, view: StripedView, j: int) -> list[str]:
        """The LogServers of stripe ``j`` whose seal bit is set."""
        sid = stripe_id(view.loglet, j)
        return sorted(key.rsplit(" ", 1)[0] for key, text in self.state["logservers"].items() if key.endswith(" " + sid) and "SEALED" in text)

    def _show_striped(self, view: StripedView, diff: Diff) -> None:
        sealed = []
        for j in range(view.stripes):
            bits, servers = self._seal_bits(view, j), view.servers[j]
            sealed.append(bool(servers) and len(bits) > len(servers) // 2)
            seal = f", SEALED (seal bits {','.join(bits)} of {','.join(servers)})" if sealed[j] else (f", seal bits {','.join(bits)}: no majority yet" if bits else "")
            self._set(diff, "striped", f"{view.loglet} stripe {j} ({stripe_id(view.loglet, j)})", f"committed tail {view.tails[j]}{seal}")
        tail = combine(view.tails)
        terms = ", ".join(f"{t}*{view.stripes}+{j}" for j, t in enumerate(view.tails))
        text = f"tail {tail} = min({terms})"
        text += ", SEALED" if all(sealed) else (f", sealing: stripes {[j for j, s in enumerate(sealed) if s]} sealed" if any(sealed) else "")
        if view.acked is not None:
            text += f"; acknowledged up to {view.acked}" + (" (ABOVE A HOLE)" if view.acked >= tail else "")
        self._set(diff, "striped", view.loglet, text)


def striped_loglets(events: list[dict[str, Any]]) -> dict[str, int]:
    """The StripedLoglets the events name (their ``Striped*`` events), id -> stripe count."""
    return {str(e["loglet"]): int(e["stripes"]) for e in events if e.get("role") == "loglet" and "stripes" in e and "loglet" in e}


def _window_of(text: str) -> tuple[Any, Any]:
    if not text.startswith("window ["):
        return 0, 0
    inner = text[len("window ["):].split(")")[0]
    k, n = inner.split(", ")
    return k, n


def chain_text(logged: Any) -> str | None:
    """A chain as ``L1 [0,9) | L2 [9,...) on s1,s2,s3``, or None if the value is no chain."""
    try:
        chain = decode_chain(logged)
    except (ChainDecodeError, ValueError):
        return None
    if chain is None:
        return None
    parts = []
    for seg in chain:
        stop = "..." if seg.stop is None else seg.stop
        on = f" on {','.join(seg.servers)}" if seg.servers and seg.stop is None else ""
        parts.append(f"{seg.loglet} [{seg.start},{stop}){on}")
    return " | ".join(parts)


def fold(events: list[dict[str, Any]]) -> list[Diff]:
    """The diff each event makes (see the module docstring)."""
    folder = Folder(striped_loglets(events))
    return [folder.step(e) for e in mark_restarts(events)]


def state_at(diffs: list[Diff], index: int) -> dict[str, dict[str, str]]:
    """The state after event ``index`` (what the page computes; tests use this)."""
    state: dict[str, dict[str, str]] = {s: {} for s in SECTIONS}
    for diff in diffs[: index + 1]:
        for section, key, value in diff:
            if value is None:
                state[section].pop(key, None)
            else:
                state[section][key] = value
    return state
