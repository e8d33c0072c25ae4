"""Trace checker for ``specs/StripedLoglet.tla``: appends, acknowledgements and seals of
StripedLoglets, against what their stripes committed and sealed.

One spec instance per striped loglet id ``L`` (its ``N`` from the events' ``stripes``); its
stripes are the NativeLoglets ``L.0 .. L.N-1`` (``delos_ref/loglet/striped.py``,
``stripe_id``), whose own events give the spec's per-stripe state:

================  =========================================================================
spec variable     here
================  =========================================================================
committed[k]      the greatest ``known_tail`` of the sequencer's ``Commit`` events of loglet
                  ``L.k`` (a sequencer logs Commit before it answers any append)
sealed[k]         a client's ``SealReturned`` of ``L.k``, or a sealed ``CheckTail`` of it
                  (a majority of its LogServers then holds the seal bit)
acked             the positions of ``StripedAck`` events
sealRet           a ``StripedSeal`` event
================  =========================================================================

Events and actions (role ``loglet``): ``StripedAppend`` -> :meth:`Land` (with the stripe's
commit: the stripe answered), ``StripedFill`` -> :meth:`Fill`, ``StripedAck`` -> :meth:`Ack`,
``StripedSeal`` -> :meth:`SealReturn`, ``StripedCheckTail`` -> :meth:`CheckTail`. The inner
events (sequencer ``Commit``, loglet ``SealReturned`` / ``CheckTail``) are observed, not steps.

Checked: Land and Fill report a position the stripe committed (``l*N + k`` for the logical
one); Ack's guard (every earlier logical position committed: NoAckAboveHole) and
UniquePositions; SealReturn's guard SealDone (every stripe sealed); a sealed CheckTail is
returned only once every stripe is sealed, equals the first hole of the stripes' tails, and
lies above every acknowledged position, now and later (AckedInPlace's sealed part).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from delos_ref.loglet.striped import combine, need, stripe_id
from delos_ref.tracecheck.base import Checker


@dataclass
class StripedSpecState:
    """The variables of one StripedLoglet instance that the trace shows."""

    n: int
    acked: set[int] = field(default_factory=set)
    sealed_tails: list[int] = field(default_factory=list)
    seal_returned: bool = False


class StripedLogletChecker(Checker):
    SPEC = "StripedLoglet"
    ACTIONS = {
        ("loglet", "StripedAppend"): "Land",
        ("loglet", "StripedFill"): "Fill",
        ("loglet", "StripedAck"): "Ack",
        ("loglet", "StripedSeal"): "SealReturn",
        ("loglet", "StripedCheckTail"): "CheckTail",
    }

    def __init__(self) -> None:
        super().__init__()
        self.committed: dict[str, int] = {}  # inner loglet id -> committed prefix
        self.sealed: set[str] = set()  # inner loglet ids known sealed
        self.loglets: dict[str, StripedSpecState] = {}

    def observe(self, event: dict[str, Any]) -> None:
        role, name, loglet = event.get("role"), event.get("event"), event.get("loglet")
        if role == "sequencer" and name == "Commit":
            self.committed[loglet] = max(self.committed.get(loglet, 0), int(event["known_tail"]))
        elif role == "loglet" and (name == "SealReturned" or (name == "CheckTail" and event.get("sealed"))):
            self.sealed.add(loglet)

    def _state(self, e: dict[str, Any]) -> StripedSpecState:
        st = self.loglets.setdefault(e["loglet"], StripedSpecState(int(e["stripes"])))
        self.require(st.n == int(e["stripes"]), f"stripes: {e['loglet']} had {st.n} stripes, the event says {e['stripes']}")
        return st

    def _committed(self, loglet: str, j: int) -> int:
        return self.committed.get(stripe_id(loglet, j), 0)

    # ---------------------------------------------------------------------- actions

    def Land(self, e: dict[str, Any]) -> None:
        st = self._state(e)
        k, l, pos = int(e["stripe"]), int(e["stripe_pos"]), int(e["pos"])
        self.require(pos == l * st.n + k, f"Land: logical position {pos} is not {l}*{st.n}+{k}")
        self.require(self._committed(e["loglet"], k) > l, f"Land: stripe {k} answered position {l} before committing it (committed {self._committed(e['loglet'], k)})")

    def Fill(self, e: dict[str, Any]) -> None:
        self._state(e)
        k, l = int(e["stripe"]), int(e["stripe_pos"])
        self.require(self._committed(e["loglet"], k) > l, f"Fill: stripe {k} answered the filler at {l} before committing it")

    def Ack(self, e: dict[str, Any]) -> None:
        st = self._state(e)
        pos = int(e["pos"])
        holes = [j for j in range(st.n) if self._committed(e["loglet"], j) < need(j, pos, st.n)]
        self.require(not holes, f"Ack: position {pos} acknowledged while stripe(s) {holes} left an earlier position empty (NoAckAboveHole)")
        self.require(pos not in st.acked, f"Ack: position {pos} acknowledged twice (UniquePositions)")
        st.acked.add(pos)
        self.require(all(pos < t for t in st.sealed_tails), f"Ack: position {pos} acknowledged at or above a sealed tail {min(st.sealed_tails, default=None)} (AckedInPlace)")

    def SealReturn(self, e: dict[str, Any]) -> None:
        st = self._state(e)
        unsealed = [j for j in range(st.n) if stripe_id(e["loglet"], j) not in self.sealed]
        self.require(not unsealed, f"SealReturn: seal() returned while stripe(s) {unsealed} were not sealed (SealDone)")
        st.seal_returned = True

    def CheckTail(self, e: dict[str, Any]) -> None:
        st = self._state(e)
        tails, tail = [int(t) for t in e["tails"]], int(e["tail"])
        self.require(len(tails) == st.n and tail == combine(tails), f"CheckTail: {tail} is not the first hole of the stripes' tails {tails}")
        if not e["sealed"]:
            return
        unsealed = [j for j in range(st.n) if stripe_id(e["loglet"], j) not in self.sealed]
        self.require(not unsealed, f"CheckTail: a sealed tail while stripe(s) {unsealed} were not sealed")
        above = sorted(p for p in st.acked if p >= tail)
        self.require(not above, f"CheckTail: sealed tail {tail} below acknowledged position(s) {above[:5]} (AckedInPlace)")
        st.sealed_tails.append(tail)
