"""Trace checker for ``specs/NativeLoglet.tla``: LogServers, the sequencer, seal and check_tail.

One spec instance per loglet id (a ``log`` workload trace holds many loglets); its constant
``Servers`` comes from the sequencer's ``Activate`` event or a client event's ``logservers``
(before either, from the LogServers seen in the loglet's events). The state is the spec's, restricted to what the trace shows:

================  =========================================================================
spec variable     here (per loglet)
================  =========================================================================
ltail, sealed     ``ltail[s]``, ``sealed[s]``: from Store / Repair / Seal (LogServer ``s``)
up                ``up[s]``: nemesis ``crash`` / ``restart`` of node ``s``
nextPos           ``next_pos``: Append ``first + count``
seqTails          ``seq_tails[s]``: Stored (unsealed) ``local_tail``
sealedBy          ``sealed_by``: Stored (sealed)
seqSealed         ``seq_sealed``
seqKnown          ``seq_known``
ackedTail         ``acked_tail[s]``: the local tail of s's latest Store
ctRes             ``sealed_results`` / ``unsealed_results``: every check_tail result
================  =========================================================================

Events and actions: sequencer ``Append`` -> :meth:`Assign` (``count`` times), LogServer
``Store`` -> :meth:`StoreAt` (``hi - lo`` times), ``StoreRefused`` -> :meth:`StoreRefused`,
sequencer ``Stored`` -> :meth:`ReceiveStored` or :meth:`ReceiveRefused` (its ``sealed``
field), ``Commit`` -> :meth:`Commit` (the commit half of ReceiveStored: the logged
known_tail must be the spec's seqKnown), ``SequencerSealed`` -> :meth:`SequencerSealed`
(the seal-off half of ReceiveRefused), nemesis ``crash`` / ``restart`` -> :meth:`Crash` /
:meth:`Restart`, LogServer ``Seal`` -> :meth:`SealServer`, LogServer ``Repair`` ->
:meth:`RepairServer`, client ``SealReturned`` -> :meth:`SealDone`, client ``CheckTail`` ->
:meth:`CTWaitDone` (none_sealed) or :meth:`RepairDone` (all_sealed, some_sealed). The
client's control steps (StartSeal, ProbeServer, CTDecide, LearnKnownTail, ...) are not
logged; their effect on what the client returns is checked at SealDone / CTWaitDone /
RepairDone against the servers' state.

Two mappings are looser than the spec's actions, both sound: a ``Stored`` reply may carry
any local tail the server acknowledged earlier (``seq_tails[s] < t <= acked_tail[s]``, a
reply overtaken by later Stores), not only the latest; and a Store batch is several StoreAt
steps at once. Reads are not modelled. A trim changes what a server reports: "positions
below the trim point count as held" (``logserver.py``), so a server that missed some
positions of a sealed segment and is then trimmed past them (the migration to cold storage
drops the whole segment, ``delos_ref/migrate.py``) reports a local tail it never stored.
LogServer ``Trim`` -> :meth:`TrimHeld`, the spec's ``TrimHeld``: it is allowed only below
what a majority holds (``CommittedOf(ltail)``) or the sequencer committed -- those
positions are durable elsewhere -- and then the server counts as holding them, as it says.
(The spec also tracks which entries a server really holds, to check that a trim drops only
committed ones; the trace does not log entries, so this transcription checks the guard.)

Invariants after every step: NoAckLost, AckedTailDurable, KnownTailBound,
SealedTailCoversAcked (against every sealed check_tail result so far), RepairedOnMajority
and UnsealedTailCommitted (at the result; ltail and seqKnown only grow), SequencerSealSound;
SealReturnedOnMajority is SealDone's own check (a majority of sealed servers in ``tails``;
a seal bit is never cleared). What seal() promises to check_tail (SealedAfterSeal,
NoAckAfterSeal) needs the moment a check_tail *began*, which the trace does not log; what it
shows is checked at the result: a check_tail that found the loglet sealed (all_sealed /
some_sealed) returns sealed=True -- in the spec only RepairDone ends those cases -- so a
result that hides the seal bit (the ``check_tail_hides_seal`` bug switch) is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from delos_ref.tracecheck.base import Checker


@dataclass
class LogletSpecState:
    """The variables of one NativeLoglet instance."""

    servers: tuple[str, ...] = ()
    activated: bool = False
    ltail: dict[str, int] = field(default_factory=dict)
    sealed: dict[str, bool] = field(default_factory=dict)
    next_pos: int = 0
    seq_tails: dict[str, int] = field(default_factory=dict)
    sealed_by: set[str] = field(default_factory=set)
    seq_sealed: bool = False
    seq_known: int = 0
    acked_tail: dict[str, int] = field(default_factory=dict)
    stored_tails: dict[str, set[int]] = field(default_factory=dict)  # every Store's hi, per server
    sealed_results: list[int] = field(default_factory=list)
    unsealed_results: int = 0

    def add_server(self, s: str) -> None:
        if s not in self.servers:
            self.servers += (s,)

    @property
    def maj(self) -> int:
        return len(self.servers) // 2 + 1

    def majority_tail(self) -> int:
        """The largest k such that a majority has ltail >= k (CommittedOf(ltail))."""
        tails = sorted((self.ltail.get(s, 0) for s in self.servers), reverse=True)
        return tails[self.maj - 1] if len(tails) >= self.maj else 0

    def committed_of(self, tails: dict[str, int]) -> int:
        ranked = sorted((tails.get(s, 0) for s in self.servers), reverse=True)
        return ranked[self.maj - 1] if len(ranked) >= self.maj else 0


class NativeLogletChecker(Checker):
    SPEC = "NativeLoglet"
    ACTIONS = {
        ("sequencer", "Activate"): "Activate",
        ("sequencer", "Append"): "Assign",
        ("logserver", "Store"): "StoreAt",
        ("logserver", "StoreRefused"): "StoreRefused",
        ("sequencer", "Stored"): "ReceiveStoredOrRefused",
        ("sequencer", "Commit"): "Commit",
        ("sequencer", "SequencerSealed"): "SequencerSealed",
        ("nemesis", "crash"): "Crash",
        ("nemesis", "restart"): "Restart",
        ("logserver", "Seal"): "SealServer",
        ("logserver", "Repair"): "RepairServer",
        ("logserver", "Trim"): "TrimHeld",
        ("loglet", "SealReturned"): "SealDone",
        ("loglet", "CheckTail"): "CheckTailDone",
    }

    def __init__(self) -> None:
        super().__init__()
        self.loglets: dict[str, LogletSpecState] = {}
        self.down: set[str] = set()  # up[s] = FALSE, for every loglet s serves
        self.current: LogletSpecState | None = None

    def lg(self, e: dict[str, Any]) -> LogletSpecState:
        st = self.loglets.setdefault(str(e["loglet"]), LogletSpecState())
        if not st.activated and "logservers" in e:
            # A client event names the loglet's config: as good as the sequencer's Activate.
            self.require(set(st.servers) <= set(e["logservers"]), f"loglet {e['loglet']}: LogServers {sorted(set(st.servers) - set(e['logservers']))} acted but are not in its config")
            st.servers, st.activated = tuple(e["logservers"]), True
        self.current = st
        return st

    # ------------------------------------------------------------------ sequencer

    def Activate(self, e: dict[str, Any]) -> None:
        """Init of the instance: Servers is the loglet's config."""
        st = self.lg(e)
        servers = tuple(e["logservers"])
        self.require(not st.activated or st.servers == servers, f"loglet {e['loglet']} activated twice with different LogServers")
        self.require(set(st.servers) <= set(servers), f"loglet {e['loglet']}: LogServers {sorted(set(st.servers) - set(servers))} acted before activation but are not in its config")
        st.servers, st.activated = servers, True

    def Assign(self, e: dict[str, Any]) -> None:
        st = self.lg(e)
        first, count = int(e["first"]), int(e["count"])
        self.require(not st.seq_sealed, f"the sequencer assigns positions of {e['loglet']} after sealing off")
        self.require(first == st.next_pos, f"the sequencer assigns position {first} of {e['loglet']}, the spec's nextPos is {st.next_pos}")
        st.next_pos += count

    def ReceiveStoredOrRefused(self, e: dict[str, Any]) -> None:
        if e["sealed"]:
            self.action = "ReceiveRefused"
            self.ReceiveRefused(e)
        else:
            self.action = "ReceiveStored"
            self.ReceiveStored(e)

    def ReceiveStored(self, e: dict[str, Any]) -> None:
        st, s, t = self.lg(e), e["server"], int(e["local_tail"])
        self.require(not st.seq_sealed, "the sequencer counts a Stored after sealing off")
        self.require(t <= st.acked_tail.get(s, 0), f"Stored from {s} reports local tail {t} of {e['loglet']}, but {s} acknowledged only {st.acked_tail.get(s, 0)} while unsealed (ackedTail)")
        self.require(t == 0 or t in st.stored_tails.get(s, set()), f"Stored from {s} reports local tail {t}, which no Store of {s} produced")
        if t > st.seq_tails.get(s, 0):
            st.seq_tails[s] = t
            st.seq_known = max(st.seq_known, st.committed_of(st.seq_tails))

    def ReceiveRefused(self, e: dict[str, Any]) -> None:
        st, s = self.lg(e), e["server"]
        self.require(not st.seq_sealed, "the sequencer counts a refusal after sealing off")
        self.require(st.sealed.get(s, False), f"the sequencer hears {s} refuse (sealed) but {s} is not sealed")
        st.sealed_by.add(s)
        st.seq_sealed = len(st.sealed_by) >= st.maj

    def Commit(self, e: dict[str, Any]) -> None:
        """The commit half of ReceiveStored: seqKnown' = Max(seqKnown, CommittedOf(seqTails'))."""
        st, k = self.lg(e), int(e["known_tail"])
        self.require(k == st.seq_known, f"the sequencer commits {e['loglet']} up to {k}, but only {st.seq_known} is stored on a majority (CommittedOf(seqTails))")

    def SequencerSealed(self, e: dict[str, Any]) -> None:
        """The seal-off half of ReceiveRefused: a majority refused."""
        st = self.lg(e)
        self.require(st.seq_sealed, f"the sequencer seals off {e['loglet']} after {len(st.sealed_by)} refusals, {st.maj} needed")
        self.require(int(e["known_tail"]) == st.seq_known and int(e["next_pos"]) == st.next_pos, "the sequencer's logged known_tail / next_pos differ from the spec's")

    # ------------------------------------------------------------------ LogServers

    def server_up(self, st: LogletSpecState, s: str) -> None:
        if not st.activated:
            st.add_server(s)
        self.require(s not in self.down, f"LogServer {s} acts while crashed (up[s] = FALSE)")

    def StoreAt(self, e: dict[str, Any]) -> None:
        st, s = self.lg(e), e["node"]
        lo, hi = int(e["lo"]), int(e["hi"])
        self.server_up(st, s)
        self.require(not st.sealed.get(s, False), f"LogServer {s} stores positions {lo}..{hi} of {e['loglet']} after its seal bit is set")
        self.require(lo == st.ltail.get(s, 0), f"LogServer {s} extends {e['loglet']} from {lo}, the spec's ltail is {st.ltail.get(s, 0)}")
        self.require(hi <= st.next_pos, f"LogServer {s} stores up to {hi}, but only {st.next_pos} positions are assigned")
        st.ltail[s] = hi
        st.acked_tail[s] = hi
        st.stored_tails.setdefault(s, set()).add(hi)

    def TrimHeld(self, e: dict[str, Any]) -> None:
        """The spec's TrimHeld (see the module docstring): a trim below the majority's tail
        or the sequencer's committed tail makes the server count the trimmed positions as held."""
        st, s = self.lg(e), e["node"]
        t, local = int(e["trim_point"]), int(e["local_tail"])
        self.server_up(st, s)
        self.require(t <= max(st.majority_tail(), st.seq_known), f"LogServer {s} trims {e['loglet']} to {t}, above what a majority holds ({st.majority_tail()}) or the sequencer committed ({st.seq_known})")
        if local > st.ltail.get(s, 0):
            st.ltail[s] = local
            if not st.sealed.get(s, False):
                st.acked_tail[s] = local
            st.stored_tails.setdefault(s, set()).add(local)

    def StoreRefused(self, e: dict[str, Any]) -> None:
        st, s = self.lg(e), e["node"]
        self.server_up(st, s)
        self.require(st.sealed.get(s, False), f"LogServer {s} refuses a Store as sealed, but it is not sealed")
        self.require(int(e["local_tail"]) == st.ltail.get(s, 0), f"LogServer {s} logs local tail {e['local_tail']}, the spec's ltail is {st.ltail.get(s, 0)}")

    def Crash(self, e: dict[str, Any]) -> None:
        self.down.add(e["target"])

    def Restart(self, e: dict[str, Any]) -> None:
        self.down.discard(e["target"])

    def SealServer(self, e: dict[str, Any]) -> None:
        st, s = self.lg(e), e["node"]
        self.server_up(st, s)
        self.require(int(e["local_tail"]) == st.ltail.get(s, 0), f"LogServer {s} seals {e['loglet']} at local tail {e['local_tail']}, the spec's ltail is {st.ltail.get(s, 0)} (lost entries?)")
        st.sealed[s] = True

    def RepairServer(self, e: dict[str, Any]) -> None:
        st, s = self.lg(e), e["node"]
        lo, hi = int(e["lo"]), int(e["hi"])
        self.server_up(st, s)
        self.require(lo == st.ltail.get(s, 0), f"LogServer {s} repairs {e['loglet']} from {lo}, the spec's ltail is {st.ltail.get(s, 0)}")
        holder = max((st.ltail.get(h, 0) for h in st.servers if h != s), default=0)
        self.require(hi <= holder, f"LogServer {s} is repaired up to {hi}, but no other LogServer holds more than {holder}")
        self.require(bool(e["sealed"]) and st.sealed.get(s, False), f"a repaired LogServer {s} is a sealed one")
        st.ltail[s] = max(st.ltail.get(s, 0), hi)

    # ------------------------------------------------------------------ clients

    def SealDone(self, e: dict[str, Any]) -> None:
        st, tails = self.lg(e), e["tails"]
        for s in tails:
            if not st.activated:
                st.add_server(s)
        self.require(len(tails) >= st.maj, f"seal of {e['loglet']} returns after {len(tails)} LogServers set the bit, {st.maj} needed (Cardinality(Got(c)) >= Maj)")
        for s, t in tails.items():
            self.require(st.sealed.get(s, False), f"seal of {e['loglet']} counts {s}, which is not sealed")
            self.require(int(t) <= st.ltail.get(s, 0), f"seal of {e['loglet']} got tail {t} from {s}, above its ltail")

    def CheckTailDone(self, e: dict[str, Any]) -> None:
        if e["sealed"]:
            self.action = "RepairDone"
            self.RepairDone(e)
        elif e["case"] != "none_sealed":
            self.action = "RepairDone"
            self.require(False, f"check_tail of {e['loglet']} found it sealed ({e['case']}) but returns sealed=False: the seal bit goes unreported (RepairDone returns sealed; SealedAfterSeal)")
        else:
            self.action = "CTWaitDone"
            self.CTWaitDone(e)

    def CTWaitDone(self, e: dict[str, Any]) -> None:
        st, t = self.lg(e), int(e["tail"])
        self.require(e["case"] == "none_sealed", "an unsealed check_tail result comes from the none_sealed case")
        self.require(t <= st.seq_known, f"check_tail of {e['loglet']} returns unsealed tail {t}, but only {st.seq_known} is committed (cKnown[c] >= ctTail[c], cKnown <= seqKnown)")
        st.unsealed_results += 1

    def RepairDone(self, e: dict[str, Any]) -> None:
        st, t, probes = self.lg(e), int(e["tail"]), {s: int(v) for s, v in e["probes"].items()}
        for s in probes:
            if not st.activated:
                st.add_server(s)
        self.require(e["case"] in ("all_sealed", "some_sealed"), f"a sealed check_tail result from case {e['case']!r}")
        self.require(len(probes) >= st.maj, f"check_tail of {e['loglet']} decides on {len(probes)} probes, {st.maj} needed")
        self.require(t == max(probes.values()), f"check_tail of {e['loglet']} returns {t}, not the greatest probed tail {max(probes.values())} (ProbeTail)")
        for s, v in probes.items():
            self.require(st.sealed.get(s, False), f"check_tail of {e['loglet']} ({e['case']}) counts a probe of {s}, which is not sealed (some_sealed must seal a majority first)")
            self.require(v <= st.ltail.get(s, 0), f"check_tail probed {s} at {v}, above its ltail")
        holders = sum(1 for s in st.servers if st.ltail.get(s, 0) >= t)
        self.require(holders >= st.maj, f"check_tail of {e['loglet']} returns sealed tail {t}, but only {holders} LogServers hold it, {st.maj} needed (RepairedOnMajority)")
        st.sealed_results.append(t)

    # ------------------------------------------------------------------ invariants

    def invariants(self) -> None:
        st = self.current
        if st is None:
            return
        self.require(st.seq_known <= st.majority_tail() or not st.servers, f"NoAckLost: positions below {st.seq_known} are acknowledged, but only {st.majority_tail()} are on a majority")
        for s in st.servers:
            self.require(st.seq_tails.get(s, 0) <= st.acked_tail.get(s, 0) <= st.ltail.get(s, 0), f"AckedTailDurable at {s}")
        self.require(st.seq_known <= st.next_pos, "KnownTailBound: seqKnown <= nextPos")
        for t in st.sealed_results:
            self.require(st.seq_known <= t, f"SealedTailCoversAcked: position {st.seq_known - 1} is acknowledged, at or past a sealed check_tail's tail {t}")
        if st.seq_sealed:
            sealed = sum(1 for s in st.servers if st.sealed.get(s, False))
            self.require(sealed >= st.maj, f"SequencerSealSound: the sequencer sealed off with {sealed} sealed LogServers")
