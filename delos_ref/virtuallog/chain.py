"""The chain: the VirtualLog's metadata, as pure data (docs/design.md §3, §4; OSDI'20 §3.2).

The VirtualLog is one address space stitched together from loglets. What says which loglet
holds which positions is the *chain*, the single value kept in the MetaStore register: an
ordered list of *segments*, each ``[start, stop)`` in virtual positions, each naming a loglet
by its ``kind`` (``"memory"``, ``"native"``, ...) and its opaque ``params`` (the loglet's
config, encoded; only the registry of that kind reads them). Only the last segment is open
(``stop is None``): it is the *active segment*, the only one that takes appends.

**The position mapping.** Every loglet starts at its own position 0. A segment maps virtual
positions ``[start, stop)`` onto loglet positions ``[0, stop - start)``: virtual position
``v`` lives at loglet position ``v - start``. The active segment maps ``[start, inf)`` onto
``[0, inf)``. So a new segment needs no knowledge of the old loglet's positions, and
``reconfig_extend`` only has to learn one number, the sealed tail, which becomes both the old
segment's ``stop`` and the new one's ``start``.

**The invariants** (each checked by :func:`violations`, named by its tag, and enforced when a
:class:`Chain` is built -- so an ill-formed chain never leaves this module, nor decodes):

* ``nonempty``   -- a chain has at least one segment (the active one);
* ``ordered``    -- ``start <= stop`` for every closed segment, starts never decrease;
* ``contiguous`` -- each segment starts where the previous one stops: no gap, no overlap;
* ``one-open``   -- the last segment is open and every other one is closed;
* ``base``       -- the first segment's start is the chain's *base*: positions below it
  were trimmed and dropped by ``truncate``; ``base >= 0``.

**The operations** are pure functions from a chain to the next chain; the VirtualLog client
writes their result with a conditional write, so racing reconfigurers serialize:

* :meth:`Chain.extend` -- close the active segment at the sealed tail, open a new one;
* :meth:`Chain.truncate` -- drop leading segments that lie wholly below a trim point
  (never the active one; no seal needed, §3.2 "reconfigTruncate");
* :meth:`Chain.modify` -- replace the loglet config of a *sealed* segment (e.g. point it at
  a copy in cold storage, "reconfigModify"); its positions do not move;
* :meth:`Chain.segment_for` -- which segment holds a virtual position.

:func:`encode_chain` / :func:`decode_chain` turn a chain into the opaque bytes the register
stores, and back (a malformed value raises :class:`~transports.codec.DecodeError`).
"""

from __future__ import annotations

import bisect

from transports.codec import DecodeError, decode_value, encode_value, message

#: Bound on the segments of one chain (truncate keeps it short in practice).
MAX_SEGMENTS = 4096
#: Bound on one kind name.
MAX_KIND_CHARS = 64


@message("virtuallog.segment")
class Segment:
    """Virtual positions ``[start, stop)`` held by the loglet ``(kind, params)``; ``stop is
    None`` for the open, active segment. ``params`` is the loglet config, encoded."""

    start: int
    stop: int | None
    kind: str
    params: bytes

    def __post_init__(self) -> None:
        if not 0 < len(self.kind) <= MAX_KIND_CHARS:
            raise ValueError(f"Segment: kind is 1..{MAX_KIND_CHARS} characters, got {self.kind!r}")

    @property
    def is_open(self) -> bool:
        return self.stop is None

    def holds(self, pos: int) -> bool:
        """Whether virtual position ``pos`` lies in this segment."""
        return self.start <= pos and (self.stop is None or pos < self.stop)

    def to_loglet(self, pos: int) -> int:
        """The loglet position of virtual position ``pos`` (see "The position mapping")."""
        assert self.holds(pos) or pos == self.stop, f"mapping: {pos} is not in [{self.start}, {self.stop})"
        return pos - self.start

    def to_virtual(self, loglet_pos: int) -> int:
        assert loglet_pos >= 0, "mapping: loglet positions start at 0"
        return self.start + loglet_pos

    def same_loglet(self, other: "Segment") -> bool:
        """Whether both name one loglet at one place (the stop may differ: one is newer)."""
        return (self.start, self.kind, self.params) == (other.start, other.kind, other.params)


def violations(segments: tuple[Segment, ...]) -> list[str]:
    """Every chain invariant ``segments`` breaks, each as ``"tag: why"``; [] when well formed."""
    if not segments:
        return ["nonempty: a chain has at least one segment"]
    out = []
    if len(segments) > MAX_SEGMENTS:
        out.append(f"bound: {len(segments)} segments exceed {MAX_SEGMENTS}")
    if segments[0].start < 0:
        out.append(f"base: the first segment starts at {segments[0].start} < 0")
    if not segments[-1].is_open:
        out.append(f"one-open: the last segment is closed at {segments[-1].stop}")
    for i, seg in enumerate(segments[:-1]):
        if seg.is_open:
            out.append(f"one-open: segment {i} of {len(segments)} is open")
            continue
        if seg.stop < seg.start:
            out.append(f"ordered: segment {i} stops at {seg.stop} before its start {seg.start}")
        if segments[i + 1].start != seg.stop:
            out.append(f"contiguous: segment {i} stops at {seg.stop}, segment {i + 1} starts at {segments[i + 1].start}")
    return out


@message("virtuallog.chain")
class Chain:
    """The ordered segments of the VirtualLog; see the module docstring for the invariants."""

    segments: tuple[Segment, ...]

    def __post_init__(self) -> None:
        broken = violations(self.segments)
        if broken:
            raise ValueError("Chain invariants broken: " + "; ".join(broken))

    @staticmethod
    def initial(kind: str, params: bytes, start: int = 0) -> "Chain":
        """The chain of a new VirtualLog: one open segment from ``start``."""
        return Chain((Segment(start, None, kind, params),))

    @property
    def active(self) -> Segment:
        """The open segment: the only one that takes appends."""
        return self.segments[-1]

    @property
    def base(self) -> int:
        """The first position the chain still maps; everything below it was trimmed away."""
        return self.segments[0].start

    def extend(self, sealed_tail: int, kind: str, params: bytes) -> "Chain":
        """Close the active segment at ``sealed_tail`` (a virtual position: the active
        segment's start plus its sealed loglet's tail) and open ``(kind, params)`` there."""
        old = self.active
        if sealed_tail < old.start:
            raise ValueError(f"extend: sealed tail {sealed_tail} is below the active segment's start {old.start}")
        closed = Segment(old.start, sealed_tail, old.kind, old.params)
        return Chain(self.segments[:-1] + (closed, Segment(sealed_tail, None, kind, params)))

    def truncate(self, trim_point: int) -> "Chain":
        """Drop the leading closed segments that lie wholly below ``trim_point``."""
        keep = 0
        while keep < len(self.segments) - 1 and self.segments[keep].stop <= trim_point:
            keep += 1
        return self if keep == 0 else Chain(self.segments[keep:])

    def modify(self, index: int, kind: str, params: bytes) -> "Chain":
        """Replace the loglet of sealed segment ``index``; its ``[start, stop)`` stays."""
        if not 0 <= index < len(self.segments) - 1:
            raise ValueError(f"modify: segment {index} is not a sealed segment of {len(self.segments)}")
        old = self.segments[index]
        new = Segment(old.start, old.stop, kind, params)
        return Chain(self.segments[:index] + (new,) + self.segments[index + 1 :])

    def segment_for(self, pos: int) -> int | None:
        """The index of the segment that holds virtual ``pos``; None if ``pos`` is below the
        base (trimmed). Positions past the active segment's start all belong to it."""
        if pos < self.base:
            return None
        # The last segment starting at or before ``pos`` holds it: were it empty (start ==
        # stop), the next segment would start at the same place, so it would not be the last.
        lo = bisect.bisect_right(self.segments, pos, key=lambda seg: seg.start) - 1
        assert self.segments[lo].holds(pos), f"segment_for: segment {lo} holds {pos}"
        return lo


def encode_chain(chain: Chain) -> bytes:
    """The register's value for ``chain``."""
    return encode_value(chain)


def decode_chain(data: bytes) -> Chain:
    """The chain a register value holds; :class:`DecodeError` if it is not a well-formed one."""
    value = decode_value(data)
    if type(value) is not Chain:
        raise DecodeError(f"the register holds a {type(value).__name__}, not a Chain")
    return value
