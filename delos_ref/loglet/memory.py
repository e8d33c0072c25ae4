"""The memory loglet: the whole Loglet contract in one process, as plainly as it can be said.

Read this one first. A loglet is a list of entries plus a seal bit and a trim point, and the
contract of docs/design.md §2 reads almost directly as code when everything lives in one
object: ``append`` refuses once the seal bit is set, ``check_tail`` is the length of the list,
``seal`` sets a bit that never clears. There are no failures to tolerate, so none of the
NativeLoglet's machinery (majorities, repair, ``known_tail``) is needed; what remains is the
*meaning* that machinery must preserve. The conformance suite runs against this loglet
first, so a failing test there is a bug in the test, and against every other loglet after.

Each operation yields to the scheduler once before it acts (``trio.lowlevel.checkpoint``), so
that concurrent callers interleave as they would against a real loglet, and tests that race
appends against a seal exercise real races. Many clients share one :class:`MemoryLoglet`.
Nothing survives the process: it is for tests, notebooks, and as a worked example.
"""

from __future__ import annotations

import trio

from delos_ref.loglet.api import (
    MAX_READ_ENTRIES,
    Loglet,
    SealedError,
    Tail,
    TrimmedError,
    check_entry,
    check_range,
)


class MemoryLoglet(Loglet):
    """An in-process loglet: a list, a seal bit and a trim point."""

    def __init__(self) -> None:
        self._entries: list[bytes] = []  # position i holds _entries[i]; trimmed ones become b""
        self._sealed = False
        self._trim_point = 0
        self.stats = {"appends": 0, "refused": 0, "seals": 0, "reads": 0}

    async def append(self, entry: bytes) -> int:
        check_entry(entry)
        await trio.lowlevel.checkpoint()
        if self._sealed:
            # Refused before taking a position: it certainly did not land.
            self.stats["refused"] += 1
            raise SealedError(may_have_landed=False)
        self._entries.append(bytes(entry))
        self.stats["appends"] += 1
        return len(self._entries) - 1

    async def append_many(self, entries) -> list[int]:
        for e in entries:
            check_entry(e)
        await trio.lowlevel.checkpoint()
        if self._sealed:
            self.stats["refused"] += 1
            raise SealedError(may_have_landed=False)
        first = len(self._entries)
        self._entries.extend(bytes(e) for e in entries)
        self.stats["appends"] += len(entries)
        return list(range(first, len(self._entries)))

    async def check_tail(self) -> Tail:
        await trio.lowlevel.checkpoint()
        return Tail(len(self._entries), self._sealed)

    async def read_next(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        check_range(lo, hi)
        await trio.lowlevel.checkpoint()
        if lo < self._trim_point:
            raise TrimmedError(lo, self._trim_point)
        self.stats["reads"] += 1
        stop = min(hi, len(self._entries), lo + MAX_READ_ENTRIES)
        return [(pos, self._entries[pos]) for pos in range(lo, stop)]

    async def prefix_trim(self, pos: int) -> None:
        await trio.lowlevel.checkpoint()
        # Trimming past the tail trims to the tail (api.py): never discard the future.
        target = min(pos, len(self._entries))
        for p in range(self._trim_point, target):
            self._entries[p] = b""
        self._trim_point = max(self._trim_point, target)

    async def seal(self) -> None:
        await trio.lowlevel.checkpoint()
        self._sealed = True
        self.stats["seals"] += 1

    def statistics(self) -> dict[str, int]:
        return dict(self.stats, tail=len(self._entries), trim_point=self._trim_point, sealed=int(self._sealed))
