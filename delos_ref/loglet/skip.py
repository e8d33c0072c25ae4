"""The skip loglet: a sealed segment with some entries replaced by "skipped" markers
(Delos, OSDI 2020, §7: "a poison entry was removed by editing VirtualLog metadata").

A *poison* entry is one that every database replica fails on: each one reads it, crashes
applying it, restarts and reads it again. The log is immutable, so the entry cannot be
deleted; but the *chain* says which loglet serves each segment, and ``reconfig_modify`` may
change that for a sealed segment. ``delos-ref skip POS --reason TEXT`` points the segment
holding ``POS`` at a :class:`SkipLogletConfig`: the same loglet as before (``inner``), read
through a filter that answers a *skip marker* at each skipped position. The marker is not an
entry envelope (``delos_ref/virtuallog/entry.py``), so every reader sees it as it is, and the
database decodes no command from it: every replica applies it as the same no-op.

Rules:

1. Only a sealed segment can hold skips (``Chain.modify`` refuses the active one); positions
   outside the segment are refused before anything is written.
2. The segment's range and every other entry stay as they were: reads are the inner
   loglet's, with the skipped positions' entries replaced by their markers.
3. Skipping again adds to the list (one wrapper, never a wrapper of a wrapper). A migration
   to cold storage copies the markers, so a cold segment carries the skip for good.

A replica that had applied the entry before the skip keeps its effect: a skip is for an
entry no replica could apply. The markers and the config are pure; reads delegate to the
inner loglet client the registry built.
"""

from __future__ import annotations

from typing import Sequence

import trio

from delos_ref.loglet.api import Loglet, SealedError, Tail
from transports.codec import decode_value, message

#: A skip marker's first bytes: not the envelope's 0xD1, not a database command's magic.
SKIP_MAGIC = b"\xd5skipped\x00"
MAX_REASON_BYTES = 512
#: Bound on the skipped positions of one segment (the config lives in the chain).
MAX_SKIPS = 256


def skip_marker(reason: str) -> bytes:
    """The entry a skipped position reads as: the magic, then the reason (UTF-8)."""
    return SKIP_MAGIC + reason.encode()[:MAX_REASON_BYTES]


def skipped_reason(entry: bytes) -> str | None:
    """The reason, if ``entry`` is a skip marker; else None."""
    if not entry.startswith(SKIP_MAGIC):
        return None
    return entry[len(SKIP_MAGIC):].decode(errors="replace")


@message("loglet.skip.entry")
class SkippedEntry:
    """Loglet position ``pos`` of the segment reads as a marker carrying ``reason``."""

    pos: int
    reason: str


@message("loglet.skip.config")
class SkipLogletConfig:
    """The loglet ``(inner_kind, inner_params)`` with the entries at ``skipped`` replaced."""

    inner_kind: str
    inner_params: bytes
    skipped: tuple[SkippedEntry, ...]

    def __post_init__(self) -> None:
        positions = [s.pos for s in self.skipped]
        if not positions or len(positions) > MAX_SKIPS or positions != sorted(set(positions)) or positions[0] < 0:
            raise ValueError(f"SkipLogletConfig: 1..{MAX_SKIPS} distinct skipped positions, ascending")
        if self.inner_kind == "skip":
            raise ValueError("SkipLogletConfig: one wrapper, never a wrapper of a wrapper (rule 3)")

    @property
    def loglet_id(self) -> str:
        """A name for this edit of the inner loglet (status, traces): its id and the skips."""
        inner = getattr(decode_value(self.inner_params), "loglet_id", None) or self.inner_kind
        return f"{inner}~skip{','.join(str(s.pos) for s in self.skipped)}"

    def with_skip(self, pos: int, reason: str) -> "SkipLogletConfig":
        kept = tuple(s for s in self.skipped if s.pos != pos)
        return SkipLogletConfig(self.inner_kind, self.inner_params, tuple(sorted(kept + (SkippedEntry(pos, reason),), key=lambda s: s.pos)))


class SkipLoglet(Loglet):
    """Reads of ``inner`` with the skipped positions answered by markers (rule 2)."""

    def __init__(self, config: SkipLogletConfig, inner: Loglet) -> None:
        self.config = config
        self._inner = inner
        self._markers = {s.pos: skip_marker(s.reason) for s in config.skipped}

    async def append(self, entry: bytes) -> int:
        await trio.lowlevel.checkpoint()
        raise SealedError("a segment with skipped entries is sealed", may_have_landed=False)

    async def append_many(self, entries: Sequence[bytes]) -> list[int]:
        return [await self.append(e) for e in entries[:1]]

    async def check_tail(self) -> Tail:
        return await self._inner.check_tail()

    def known_readable(self) -> int:
        return self._inner.known_readable()

    def learn_tail(self, tail: int) -> None:
        """The registry teaches a closed segment's stop: pass it on to the inner loglet."""
        if hasattr(self._inner, "learn_tail"):
            self._inner.learn_tail(tail)

    async def read_next(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        got = await self._inner.read_next(lo, hi)
        return [(p, self._markers.get(p, e)) for p, e in got]

    async def prefix_trim(self, pos: int) -> None:
        await self._inner.prefix_trim(pos)

    async def seal(self) -> None:
        await self._inner.seal()
