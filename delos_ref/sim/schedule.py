"""A run's faults and client operations, made explicit: the :class:`Schedule`.

A seed decides everything in a simulated run, including *which* faults strike and *which*
operations the clients run. To shrink a failing run (``delos-ref sim --minimize``,
:mod:`delos_ref.sim.minimize`) we need to replay the same run with some faults or some
operations left out, so those two choices are pulled out of the seed into a schedule:

* ``faults``: the fault kinds that stay on (``loss``, ``duplicate``, ``reorder`` shape each
  message on the links; ``crash`` also lets a workload's own helpers crash nodes, like the kv
  workload's replica wiper);
* ``nemesis``: the nemesis's node and network faults, each an :class:`Action` at a virtual
  time (crash s2 at 0.41 s, heal at 0.97 s, ...). With a schedule the nemesis plays exactly
  this list instead of drawing from its RNG;
* ``ops``: per client *stream* (one client loop, e.g. ``a1`` or ``c1@0``), the indices of the
  operations that run; a stream not listed runs all of its operations.

Without a schedule a run is exactly what its seed says (the recorder below only watches).
With one, the run is still deterministic: seed + schedule -> the same events, every time.

The text form is one shell-safe word (sections split by ``/``, items by ``,``)::

    f=loss+crash/n=0.412:crash:s2,0.97:heal,1.203:partition:s1.a1+s2.s3/o=a1:0-4.7,a2:

``n=`` times are virtual seconds, written exactly (Python's shortest round-trip form of the
float, so a replay acts at the very instant the recorded run did); ``partition:`` groups are ``+``-separated lists of
``.``-separated nodes; ``cut:a.b`` cuts the link from a to b; ``o=`` indices are ``.``-separated
numbers or ``lo-hi`` ranges, and an empty list keeps no operation of that stream.
:func:`decode` refuses anything else with a one-line :class:`BadSchedule`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: The nemesis's verbs (methods of :class:`~delos_ref.sim.simulation.Simulation`).
VERBS = ("crash", "restart", "partition", "cut", "heal")

_NAME = re.compile(r"[A-Za-z0-9_@]+\Z")
_TIME = re.compile(r"\d+(\.\d+)?(e-?\d+)?\Z")  # a float's repr (never negative, inf or nan)


class BadSchedule(ValueError):
    """A schedule text that cannot be parsed, or that names nodes or kinds the run lacks."""


@dataclass(frozen=True, slots=True)
class Action:
    """One nemesis fault: at virtual time ``at`` (seconds), ``verb`` with ``args``.

    ``args``: crash/restart ``(node,)``; cut ``(src, dst)``; heal ``()``; partition: one
    tuple of nodes per group, e.g. ``(("s1", "a1"), ("s2", "s3"))``.
    """

    at: float
    verb: str
    args: tuple = ()

    def encode(self) -> str:
        if self.verb == "heal":
            return f"{self.at!r}:heal"
        if self.verb == "partition":
            return f"{self.at!r}:partition:" + "+".join(".".join(g) for g in self.args)
        return f"{self.at!r}:{self.verb}:" + ".".join(self.args)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Fault kinds, nemesis actions and kept operations of one run (see the module doc)."""

    faults: frozenset[str]
    nemesis: tuple[Action, ...] = ()
    ops: dict[str, frozenset[int]] | None = None  # None: every stream runs every operation

    def op_kept(self, stream: str, index: int) -> bool:
        if self.ops is None or stream not in self.ops:
            return True
        return index in self.ops[stream]

    def encode(self) -> str:
        parts = ["f=" + "+".join(sorted(self.faults)), "n=" + ",".join(a.encode() for a in self.nemesis)]
        if self.ops is not None:
            parts.append("o=" + ",".join(f"{s}:{_encode_indices(self.ops[s])}" for s in sorted(self.ops)))
        return "/".join(parts)

    def size(self) -> tuple[int, int]:
        """(faults, operations) this schedule lets happen; operations only counts listed streams."""
        ops = sum(len(v) for v in (self.ops or {}).values())
        return len(self.faults) + len(self.nemesis), ops


def _encode_indices(indices: frozenset[int]) -> str:
    """``{0,1,2,3,4,7}`` -> ``0-4.7``."""
    out: list[str] = []
    ordered = sorted(indices)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ".".join(out)


def decode(text: str) -> Schedule:
    """The schedule that ``text`` encodes; :class:`BadSchedule` (one line) if it is malformed."""
    sections: dict[str, str] = {}
    for part in text.strip().split("/"):
        key, eq, value = part.partition("=")
        if not eq or key not in ("f", "n", "o"):
            raise BadSchedule(f"bad schedule section {part[:40]!r}: expected f=..., n=... or o=...")
        if key in sections:
            raise BadSchedule(f"schedule section {key}= given twice")
        sections[key] = value
    if "f" not in sections or "n" not in sections:
        raise BadSchedule("a schedule needs an f= (fault kinds) and an n= (nemesis actions) section")
    faults = frozenset(k for k in sections["f"].split("+") if k)
    nemesis = tuple(_decode_action(a) for a in sections["n"].split(",") if a)
    if any(b.at < a.at for a, b in zip(nemesis, nemesis[1:])):
        raise BadSchedule("schedule: nemesis actions must be in time order")
    ops = None
    if "o" in sections:
        ops = {}
        for item in filter(None, sections["o"].split(",")):
            stream, colon, indices = item.partition(":")
            if not colon or not _NAME.match(stream):
                raise BadSchedule(f"bad schedule operations {item[:40]!r}: expected STREAM:INDICES, e.g. a1:0-4.7")
            if stream in ops:
                raise BadSchedule(f"schedule: stream {stream} listed twice")
            ops[stream] = _decode_indices(indices, item)
    return Schedule(faults, nemesis, ops)


def _decode_action(text: str) -> Action:
    at, _, rest = text.partition(":")
    verb, _, args = rest.partition(":")
    if not _TIME.match(at) or verb not in VERBS:
        raise BadSchedule(f"bad nemesis action {text[:40]!r}: expected SECONDS:VERB[:ARGS] with VERB one of {', '.join(VERBS)}")
    parsed: tuple
    if verb == "heal":
        parsed = ()
        if args:
            raise BadSchedule(f"bad nemesis action {text[:40]!r}: heal takes no arguments")
    elif verb == "partition":
        parsed = tuple(tuple(g.split(".")) for g in args.split("+"))
        if len(parsed) < 2:
            raise BadSchedule(f"bad nemesis action {text[:40]!r}: a partition needs two or more groups")
    else:
        parsed = tuple(args.split("."))
        if len(parsed) != (2 if verb == "cut" else 1):
            raise BadSchedule(f"bad nemesis action {text[:40]!r}: {verb} takes {'SRC.DST' if verb == 'cut' else 'one node'}")
    names = [n for g in parsed for n in (g if isinstance(g, tuple) else (g,))]
    if not all(_NAME.match(n) for n in names):
        raise BadSchedule(f"bad nemesis action {text[:40]!r}: a node name is empty or has odd characters")
    return Action(float(at), verb, parsed)


def _decode_indices(text: str, item: str) -> frozenset[int]:
    out: set[int] = set()
    for piece in filter(None, text.split(".")):
        lo, dash, hi = piece.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise BadSchedule(f"bad operation indices in {item[:40]!r}: expected numbers or LO-HI ranges split by '.'")
        if dash and int(hi) < int(lo):
            raise BadSchedule(f"bad operation range {piece!r}: {hi} < {lo}")
        if dash and int(hi) - int(lo) > 100_000:
            raise BadSchedule(f"operation range {piece!r} is too long")
        out.update(range(int(lo), int(hi if dash else lo) + 1))
    return frozenset(out)


@dataclass(slots=True)
class ScheduleRecorder:
    """What a run actually did: the nemesis actions it played and each stream's operations.

    The :class:`~delos_ref.sim.simulation.Simulation` fills it in (it never changes a run);
    :meth:`schedule` is the explicit schedule that the minimizer starts from.
    """

    nemesis: list[Action] = field(default_factory=list)
    ops: dict[str, set[int]] = field(default_factory=dict)

    def schedule(self, faults: frozenset[str]) -> Schedule:
        return Schedule(frozenset(faults), tuple(self.nemesis), {s: frozenset(v) for s, v in self.ops.items()})
