"""Trace checker for ``specs/MetaStorePaxos.tla``: Paxos acceptors and register clients.

The state is the spec's, restricted to what the trace shows:

================  =========================================================================
spec variable     here
================  =========================================================================
promised[a][i]    ``promised[(a, i)]``: a ballot ``(round, proposer)``, ``Zero = (0, "")``
accepted[a][i]    ``accepted[(a, i)]``: ``(ballot, value)``, value ``None`` before any accept
msgs (1a)         not kept: the Prepare of a ballot is not logged (StartAttempt has no event);
                  an acceptor's answer to it shows it was sent
msgs (1b)         ``promises[(i, b)][a]``: the ``(mbal, mval)`` that acceptor ``a`` reported
msgs (2a)         ``proposals[(i, b)]``: the value proposed at ballot ``b`` (one per ballot)
msgs (2b)         ``votes[(i, b, v)]``: the acceptors that accepted ``v`` at ``b``
known[p]          ``known[p]``: the highest instance proposer ``p`` learned (Learn)
lastResult[p]     ``results``: every completed read / write_if (kept for the whole trace)
================  =========================================================================

Events and actions (in the order of ``Next``): metastore ``Propose`` -> :meth:`Phase2a`,
``Chosen`` -> :meth:`Learn`, ``WriteDone`` -> :meth:`WriteStep` (its outcome branch),
``ReadDone`` -> :meth:`ReadStep`; acceptor ``Promise`` -> :meth:`Phase1b`,
``RejectPrepare`` -> :meth:`RejectPrepare`, ``Accepted`` -> :meth:`Phase2b`,
``RejectAccept`` -> :meth:`RejectAccept`. The client-side steps the trace does not show
(BeginWrite, BeginRead, StartAttempt, Abandon, NothingAccepted) only change the proposer's
local control state, which this checker does not track: it checks every logged step against
the shared state (acceptors and messages), which is where Paxos's safety lives.

Invariants, checked after the step that could break them (the message sets only grow, so
"chosen" is stable and an invariant about a chosen value, once true, stays true):
``AcceptedBelowPromise``, ``OneValuePerInstance``, ``GaplessVersions`` (at each Phase2a),
``KnownIsChosen`` (at each Learn), ``WriteAckOnlyIfChosen`` (written: at the report;
conflict: at the report and at every later choice), ``ReadReturnsChosen``.

Acceptor crashes are stuttering steps in the spec (an acceptor's state is durable), so after
a restart the acceptor must still hold its promises: the ``forget_promise`` bug shows up as a
Promise or Accepted below an earlier promise, or a logged state that differs from the spec's.
``ignore_accepted`` shows up as a Phase2a whose value no quorum of promises allows (P2c).
"""

from __future__ import annotations

import itertools
from typing import Any

from delos_ref.tracecheck.base import Checker, canon

Ballot = tuple[int, str]
ZERO: Ballot = (0, "")


def ballot(logged: Any) -> Ballot:
    """A logged ballot ``[round, proposer]`` as a comparable tuple (Less / LessEq)."""
    r, p = logged
    return (int(r), str(p))


class MetaStoreChecker(Checker):
    SPEC = "MetaStorePaxos"
    ACTIONS = {
        ("metastore", "Propose"): "Phase2a",
        ("metastore", "Chosen"): "Learn",
        ("metastore", "WriteDone"): "WriteStep",
        ("metastore", "ReadDone"): "ReadStep",
        ("acceptor", "Promise"): "Phase1b",
        ("acceptor", "RejectPrepare"): "RejectPrepare",
        ("acceptor", "Accepted"): "Phase2b",
        ("acceptor", "RejectAccept"): "RejectAccept",
        ("acceptor", "Query"): "QueryStatus",
    }

    def __init__(self, acceptors: set[str] | None = None) -> None:
        super().__init__()
        # Constant Acceptors: given, or learnt from the acceptors' events and the messages
        # proposers sent them (every proposer sends each phase to every acceptor).
        self.acceptors: set[str] = set(acceptors or ())
        self._fixed = acceptors is not None
        self.promised: dict[tuple[str, int], Ballot] = {}
        self.accepted: dict[tuple[str, int], tuple[Ballot, str | None]] = {}
        self.promises: dict[tuple[int, Ballot], dict[str, set[tuple[Ballot, str | None]]]] = {}
        self.proposals: dict[tuple[int, Ballot], str] = {}
        self.votes: dict[tuple[int, Ballot, str], set[str]] = {}
        self.chosen: dict[int, set[str]] = {}  # ChosenValues(i)
        self.known: dict[str, int] = {}
        self.conflicts: list[tuple[int, str]] = []  # (expected + 1, update) reported conflict
        self.results = 0

    # ------------------------------------------------------------------ constants

    @classmethod
    def preprocess(cls, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Phase2a of proposers that log nothing (a register client without a trace sink,
        e.g. the one ``delos-ref up`` bootstraps the chain with) is a hidden step: a
        ``Propose`` marked ``hidden`` is inserted before the first acceptor event that
        answers its Accept, with the value the acceptor logs. Phase2a's conditions (P2c over
        the logged promises, GaplessVersions) are then checked as for any proposal."""
        # The spec is one register: the MetaStore's chain register (""). Acceptors also hold
        # other named registers (bootstrap loglets, tests); their events are another run of
        # the same protocol on independent instances, and are left out here.
        events = [e for e in events if not (e.get("role") in ("acceptor", "metastore") and e.get("register", ""))]
        logging = {e["proposer"] for e in events if e.get("role") == "metastore" and "proposer" in e}
        out: list[dict[str, Any]] = []
        seen: set[tuple[int, tuple[int, str]]] = set()
        for e in events:
            if e.get("role") == "acceptor" and e.get("event") in ("Accepted", "RejectAccept"):
                b = ballot(e["ballot"])
                key = (int(e["instance"]), b)
                if b[1] not in logging and key not in seen and e["event"] == "Accepted":
                    seen.add(key)
                    out.append({"role": "metastore", "event": "Propose", "node": b[1], "proposer": b[1], "instance": key[0],
                                "ballot": list(b), "value": e["accepted_value"], "adopted": None, "hidden": True})
            out.append(e)
        return out

    def observe(self, event: dict[str, Any]) -> None:
        if self._fixed:
            return
        if event.get("role") == "acceptor":
            self.acceptors.add(event["node"])
        elif event.get("role") == "net" and event.get("msg") in ("Prepare", "Accept", "Query"):
            self.acceptors.add(event["dst"])

    def majority(self) -> int:
        return len(self.acceptors) // 2 + 1

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def value(logged: Any) -> str | None:
        return None if logged is None else canon(logged)

    def slot(self, a: str, i: int) -> tuple[Ballot, Ballot, str | None]:
        bal, val = self.accepted.get((a, i), (ZERO, None))
        return self.promised.get((a, i), ZERO), bal, val

    def is_chosen(self, i: int, v: str) -> bool:
        return v in self.chosen.get(i, set())

    def logged_slot_matches(self, e: dict[str, Any], a: str, i: int) -> None:
        """The acceptor's logged slot after the step equals the spec's promised/accepted."""
        promised, bal, val = self.slot(a, i)
        self.require(ballot(e["promised"]) == promised, f"acceptor {a} logs promised {e['promised']} in instance {i}, the spec has {list(promised)}")
        self.require(
            ballot(e["accepted_ballot"]) == bal and self.value(e["accepted_value"]) == val,
            f"acceptor {a} logs accepted {e['accepted_ballot']} in instance {i}, the spec has {list(bal)} "
            "(an acceptor forgot what it accepted?)",
        )

    # ------------------------------------------------------------------ acceptors

    def Phase1b(self, e: dict[str, Any]) -> None:
        a, i, b = e["node"], int(e["instance"]), ballot(e["ballot"])
        promised, bal, val = self.slot(a, i)
        self.require(promised <= b, f"acceptor {a} promises {list(b)} in instance {i} below its promise {list(promised)} (LessEq(promised[a][i], m.bal))")
        self.promised[(a, i)] = b
        self.logged_slot_matches(e, a, i)
        self.promises.setdefault((i, b), {}).setdefault(a, set()).add((bal, val))

    def RejectPrepare(self, e: dict[str, Any]) -> None:
        a, i, b = e["node"], int(e["instance"]), ballot(e["ballot"])
        promised, _, _ = self.slot(a, i)
        self.require(b < promised, f"acceptor {a} refuses {list(b)} in instance {i} though its promise is only {list(promised)}")
        self.logged_slot_matches(e, a, i)

    def Phase2b(self, e: dict[str, Any]) -> None:
        a, i, b = e["node"], int(e["instance"]), ballot(e["ballot"])
        v = self.value(e["accepted_value"])
        self.require((i, b) in self.proposals, f"acceptor {a} accepts ballot {list(b)} in instance {i}, which nobody proposed (no 2a message)")
        self.require(self.proposals[(i, b)] == v, f"acceptor {a} accepts in instance {i} at {list(b)} a value other than the one proposed")
        promised, _, _ = self.slot(a, i)
        self.require(promised <= b, f"acceptor {a} accepts {list(b)} in instance {i} below its promise {list(promised)}")
        self.promised[(a, i)] = b
        self.accepted[(a, i)] = (b, v)
        self.logged_slot_matches(e, a, i)
        voters = self.votes.setdefault((i, b, v), set())
        voters.add(a)
        if len(voters) >= self.majority() and v not in self.chosen.get(i, set()):
            self.chosen.setdefault(i, set()).add(v)
            for inst, update in self.conflicts:
                self.require(not (inst == i and update == v), f"a write_if reported conflict but its value is now chosen in instance {i} (WriteAckOnlyIfChosen)")

    def RejectAccept(self, e: dict[str, Any]) -> None:
        a, i, b = e["node"], int(e["instance"]), ballot(e["ballot"])
        self.require((i, b) in self.proposals, f"acceptor {a} refuses ballot {list(b)} in instance {i}, which nobody proposed (no 2a message)")
        promised, _, _ = self.slot(a, i)
        self.require(b < promised, f"acceptor {a} refuses {list(b)} in instance {i} though its promise is only {list(promised)}")
        self.logged_slot_matches(e, a, i)

    def QueryStatus(self, e: dict[str, Any]) -> None:
        """A read's Query (the fast read path, not in MetaStorePaxos.tla): a stuttering step
        that reports ``top``, the acceptor's highest instance holding an accepted value, and
        what it accepted there; both must match the spec's accepted[a]."""
        a = e["node"]
        top = max((i for (acc, i), (_, v) in self.accepted.items() if acc == a and v is not None), default=0)
        self.require(int(e["top"]) == top, f"acceptor {a} reports top {e['top']}, but the spec has it holding a value in instance {top} (an acceptor forgot what it accepted?)")
        if top:
            bal, val = self.accepted[(a, top)]
            self.require(
                ballot(e["accepted_ballot"]) == bal and self.value(e["accepted_value"]) == val,
                f"acceptor {a} reports accepted {e['accepted_ballot']} at top {top}, the spec has {list(bal)}",
            )

    # ------------------------------------------------------------------ proposers

    def Phase2a(self, e: dict[str, Any]) -> None:
        p, i, b, v = e["proposer"], int(e["instance"]), ballot(e["ballot"]), canon(e["value"])
        self.require(b[1] == p, f"proposer {p} proposes with ballot {list(b)}, not its own (BallotOf(p))")
        self.require((i, b) not in self.proposals, f"ballot {list(b)} proposes twice in instance {i}")
        self.require(i == 1 or bool(self.chosen.get(i - 1)), f"proposal in instance {i} before instance {i - 1} is chosen (GaplessVersions)")
        own = e["value"].get("writer") == p if isinstance(e["value"], dict) else False
        self.require(self.p2c_allows(i, b, v, own), f"no majority of promises for {list(b)} in instance {i} lets {p} propose this value (P2c: the value of the highest accepted ballot, else its own)")
        self.proposals[(i, b)] = v

    def p2c_allows(self, i: int, b: Ballot, v: str, own: bool) -> bool:
        """\\E Q \\in Quorums : QuorumPromised(p, Q) /\\ v is the value Phase2a picks from
        Promises(p, Q): the value of the highest accepted ballot among them, else p's own."""
        reports = self.promises.get((i, b), {})
        for quorum in itertools.combinations(sorted(reports), self.majority()):
            with_val = [(mbal, mval) for a in quorum for mbal, mval in reports[a] if mval is not None]
            if not with_val:
                if own:
                    return True
                continue
            top = max(mbal for mbal, _ in with_val)
            if any(mbal == top and mval == v for mbal, mval in with_val):
                return True
        return False

    def Learn(self, e: dict[str, Any]) -> None:
        p, i, b, v = e["proposer"], int(e["instance"]), ballot(e["ballot"]), canon(e["value"])
        self.require(self.proposals.get((i, b)) == v, f"proposer {p} learns a value it did not propose at {list(b)} in instance {i}")
        self.require(len(self.votes.get((i, b, v), ())) >= self.majority(), f"proposer {p} learns instance {i} before a majority accepted {list(b)}")
        self.known[p] = max(self.known.get(p, 0), i)

    def WriteStep(self, e: dict[str, Any]) -> None:
        p, expected, seq = e["proposer"], int(e["expected_version"]), int(e["seq"])
        kind, version = e["outcome"]
        mine = [v for v in self.chosen.get(expected + 1, set()) if _is_update(v, p, seq)]
        self.results += 1
        if kind == "written":
            self.require(version == expected + 1, f"write_if({expected}) reports written at version {version}")
            self.require(bool(mine), f"write_if({expected}) by {p} (seq {seq}) reports written, but its value is not chosen in instance {expected + 1} (WriteAckOnlyIfChosen)")
        else:
            self.require(not mine, f"write_if({expected}) by {p} (seq {seq}) reports conflict, but its value is chosen in instance {expected + 1}")
            update = self.proposed_update(expected + 1, p, seq)
            if update is not None:
                self.conflicts.append((expected + 1, update))

    def proposed_update(self, i: int, p: str, seq: int) -> str | None:
        for (inst, _), v in self.proposals.items():
            if inst == i and _is_update(v, p, seq):
                return v
        return None

    def ReadStep(self, e: dict[str, Any]) -> None:
        version = int(e["version"])
        self.results += 1
        if version == 0:
            return
        data = canon(e["value"])
        values = self.chosen.get(version, set())
        self.require(any(canon(_decode(v)["data"]) == data for v in values), f"a read returns version {version}, whose value is not chosen (ReadReturnsChosen)")

    # ------------------------------------------------------------------ invariants

    def invariants(self) -> None:
        if self.action in ("Phase1b", "Phase2b"):
            e = self.event
            assert e is not None
            promised, bal, _ = self.slot(e["node"], int(e["instance"]))
            self.require(bal <= promised, "AcceptedBelowPromise")
        if self.action == "Phase2b":
            i = int(self.event["instance"])  # type: ignore[index]
            self.require(len(self.chosen.get(i, ())) <= 1, f"two values chosen in instance {i} (OneValuePerInstance: two chains for version {i})")


def _decode(v: str) -> dict[str, Any]:
    import json

    return json.loads(v)


def _is_update(v: str, writer: str, seq: int) -> bool:
    d = _decode(v)
    return d.get("writer") == writer and d.get("seq") == seq
