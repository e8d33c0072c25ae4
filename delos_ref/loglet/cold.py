"""The cold loglet: a read-only loglet for sealed segments, kept as files in a cold store
(Delos, OSDI 2020, §3.2 "reconfigModify", §6: old segments moved to a BackupLoglet).

A sealed segment never changes again: its entries are fixed below its stop, and the chain
names it only so that reads can find them. So it need not stay on LogServers, which keep
every entry in LMDB on fast disks. The VirtualLog's ``reconfig_modify`` can point the segment
at *another* loglet holding the same entries -- here, a set of immutable files on any
filesystem -- and the LogServers may then drop their copy. This module holds that loglet.

**The pieces.**

* A :class:`ColdStore` (a small interface: ``put``, ``get``, ``names``) holds named,
  immutable blobs. :class:`FileColdStore` is the real one, a directory: each blob is written
  atomically (temp file, fsync, rename, fsync of the directory), so a crash leaves either the
  whole file or none. :class:`MemoryColdStore` is the simulator's. An object store could be a
  third: nothing else here touches files.
* A *segment file* holds the entries of one range ``[lo, hi)`` of loglet positions
  (:func:`encode_segment_file`). Its SHA-256 is written in the config, in the chain.
* A *manifest* (one per copy, itself an immutable file, ``<copy id>.manifest``) names a copy's
  files with their ranges and checksums, and the virtual range the copy holds: what
  ``delos-ref restore`` and ``status`` read. It is written last, after every file.
* :class:`ColdLogletConfig` -- the segment's ``params`` -- names the store, the files, and
  the checksum of each.

**The rules of the cold loglet.**

1. It is born sealed: ``append`` raises :class:`SealedError` (it certainly did not land) and
   ``check_tail`` answers ``Tail(count, sealed=True)``. ``seal`` does nothing.
2. A read never returns a byte that does not match the checksum in the chain. A file whose
   SHA-256 differs raises :class:`ColdFileCorrupt`, a missing one :class:`ColdFileMissing`:
   both are :class:`LogletUnavailable`, so the VirtualLog reports the range unreadable, and
   the rest of the log stays readable. (Bug switch ``cold_read_unchecked`` serves the bytes
   unchecked; the simulator's at-rest bit flips then read back as wrong entries.)
3. ``prefix_trim`` is this client's: the files are immutable, and the segment leaves the
   chain by ``reconfig_truncate`` (then its files may be deleted).

The codec of segment files and the checks are pure functions (``cold_format.py``); every byte of
I/O is behind the :class:`ColdStore` (docs/design.md §2).

Trace events (role ``loglet``): ``ColdRead`` (loglet, file, lo, hi) and ``ColdCorrupt``
(loglet, file, reason). The migration (``delos_ref/migrate.py``) emits the copy's events.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import trio

from delos_ref.loglet.api import MAX_READ_ENTRIES, Loglet, SealedError, Tail, TrimmedError, check_range
from delos_ref.loglet.cold_format import (
    MAX_CACHED_FILES,
    MANIFEST_SUFFIX,
    ColdFile,
    ColdFileCorrupt,
    ColdFileMissing,
    ColdLogletConfig,
    ColdStoreError,
    decode_manifest,
    decode_segment_file,
    encode_segment_file,
    file_name,
    sha256,
    split_into_files,
)

__all__ = [
    "BUG_COLD_READ_UNCHECKED",
    "COLD_BUGS",
    "ColdFile",
    "ColdFileCorrupt",
    "ColdFileMissing",
    "ColdLoglet",
    "ColdLogletConfig",
    "ColdStore",
    "ColdStoreError",
    "ColdStores",
    "FileColdStore",
    "MemoryColdStore",
    "read_manifests",
    "write_copy",
]

#: Bug switch (rule 2): serve a segment file without checking its SHA-256.
BUG_COLD_READ_UNCHECKED = "cold_read_unchecked"
COLD_BUGS = {BUG_COLD_READ_UNCHECKED: "the cold loglet serves a segment file whose checksum it did not check"}

# ------------------------------------------------------------------------- the stores


class ColdStore(Protocol):
    """Named immutable blobs. ``put`` is atomic (all or nothing) and durable when it returns;
    ``get`` raises :class:`ColdFileMissing` for a name it does not hold."""

    location: str

    async def put(self, name: str, data: bytes) -> None: ...

    async def get(self, name: str) -> bytes: ...

    async def names(self) -> list[str]: ...


class FileColdStore:
    """A directory as a cold store. Every write: a temp file, fsync, rename, fsync of the
    directory -- a crash leaves the whole file or none, never half of one."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.location = os.path.abspath(os.fspath(directory))

    async def put(self, name: str, data: bytes) -> None:
        await trio.to_thread.run_sync(self.put_sync, name, data)

    def put_sync(self, name: str, data: bytes) -> None:
        _check_name(name)
        os.makedirs(self.location, exist_ok=True)
        final = os.path.join(self.location, name)
        tmp = os.path.join(self.location, f".{name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fd = os.open(self.location, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself is durable only once the directory is synced
        finally:
            os.close(fd)

    async def get(self, name: str) -> bytes:
        return await trio.to_thread.run_sync(self.get_sync, name)

    def get_sync(self, name: str) -> bytes:
        _check_name(name)
        try:
            with open(os.path.join(self.location, name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ColdFileMissing(f"cold file {name} is missing from {self.location}") from None
        except OSError as e:
            raise ColdStoreError(f"cold file {name} in {self.location}: {e.strerror}") from None

    async def names(self) -> list[str]:
        return await trio.to_thread.run_sync(self.names_sync)

    def names_sync(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.location) if not n.startswith("."))
        except FileNotFoundError:
            return []


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"cold store: {name!r} is not a plain file name")


@dataclass
class MemoryColdStore:
    """The simulator's cold store: blobs in a dict. ``put`` yields once, like any I/O."""

    location: str = "memory"
    blobs: dict[str, bytes] = field(default_factory=dict)

    async def put(self, name: str, data: bytes) -> None:
        _check_name(name)
        await trio.lowlevel.checkpoint()
        self.blobs[name] = bytes(data)

    async def get(self, name: str) -> bytes:
        await trio.lowlevel.checkpoint()
        if name not in self.blobs:
            raise ColdFileMissing(f"cold file {name} is missing from {self.location}")
        return self.blobs[name]

    async def names(self) -> list[str]:
        await trio.lowlevel.checkpoint()
        return sorted(self.blobs)


class ColdStores:
    """Opens the store a config names (``config.store``), one object per location.
    ``factory`` makes a store from a location: :class:`FileColdStore` by default."""

    def __init__(self, factory: Callable[[str], Any] = FileColdStore) -> None:
        self._factory = factory
        self._open: dict[str, Any] = {}

    def open(self, location: str) -> ColdStore:
        if location not in self._open:
            self._open[location] = self._factory(location)
        return self._open[location]


async def read_manifests(store: ColdStore) -> list[tuple[int, ColdLogletConfig, dict[str, Any]]]:
    """Every copy in ``store``, as ``(start, config, source)``, by virtual start."""
    out = []
    for name in await store.names():
        if name.endswith(MANIFEST_SUFFIX):
            out.append(decode_manifest(await store.get(name), store.location))
    return sorted(out, key=lambda m: (m[0], m[1].loglet_id))


# ------------------------------------------------------------------------- the loglet


class ColdLoglet(Loglet):
    """A client of one cold copy; see the module docstring for its rules."""

    def __init__(self, config: ColdLogletConfig, store: ColdStore, *, bugs: frozenset[str] = frozenset(), emit: Callable[..., None] | None = None) -> None:
        self.config = config
        self._store = store
        self._check = BUG_COLD_READ_UNCHECKED not in bugs
        self._emit = emit or (lambda event, **fields: None)
        self._trim_point = 0
        self._files: OrderedDict[str, list[bytes]] = OrderedDict()  # verified, decoded
        self.stats = {"reads": 0, "file_loads": 0, "corrupt": 0}

    async def append(self, entry: bytes) -> int:
        await trio.lowlevel.checkpoint()
        raise SealedError("a cold loglet is read-only: sealed from birth", may_have_landed=False)  # rule 1

    async def append_many(self, entries: Sequence[bytes]) -> list[int]:
        return [await self.append(e) for e in entries[:1]]

    async def check_tail(self) -> Tail:
        await trio.lowlevel.checkpoint()
        return Tail(self.config.count, True)

    def known_readable(self) -> int:
        return self.config.count  # every entry is committed for good, and immutable

    async def seal(self) -> None:
        await trio.lowlevel.checkpoint()  # sealed already (rule 1)

    async def prefix_trim(self, pos: int) -> None:
        await trio.lowlevel.checkpoint()
        self._trim_point = max(self._trim_point, min(pos, self.config.count))  # rule 3

    async def read_next(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        check_range(lo, hi)
        if lo < self._trim_point:
            raise TrimmedError(lo, self._trim_point)
        hi = min(hi, self.config.count, lo + MAX_READ_ENTRIES)
        if lo >= hi:
            await trio.lowlevel.checkpoint()
            return []
        f = self._file_holding(lo)
        entries = await self._load(f)
        stop = min(hi, f.hi)
        self.stats["reads"] += 1
        self._emit("ColdRead", loglet=self.config.loglet_id, file=f.name, lo=lo, hi=stop)
        return [(p, entries[p - f.lo]) for p in range(lo, stop)]

    def _file_holding(self, pos: int) -> ColdFile:
        for f in self.config.files:
            if f.lo <= pos < f.hi:
                return f
        raise AssertionError(f"cold loglet: no file holds {pos} < count {self.config.count}")

    async def _load(self, f: ColdFile) -> list[bytes]:
        """The entries of ``f``, from the cache or the store, checked (rule 2)."""
        if f.name in self._files:
            self._files.move_to_end(f.name)
            return self._files[f.name]
        data = await self._store.get(f.name)
        try:
            entries = decode_segment_file(data, f, check=self._check)
        except ColdFileCorrupt as e:
            self.stats["corrupt"] += 1
            self._emit("ColdCorrupt", loglet=self.config.loglet_id, file=f.name, reason=str(e))
            raise
        self.stats["file_loads"] += 1
        self._files[f.name] = entries
        if len(self._files) > MAX_CACHED_FILES:
            self._files.popitem(last=False)
        return entries

    def statistics(self) -> dict[str, int]:
        return dict(self.stats, count=self.config.count, files=len(self.config.files), bytes=self.config.size)


# ---------------------------------------------------------------------- writing a copy


async def write_copy(store: ColdStore, copy_id: str, entries: Sequence[bytes]) -> ColdLogletConfig:
    """Write ``entries`` (loglet positions 0, 1, ...) as segment files of a new copy
    ``copy_id`` in ``store``; the config naming them (no manifest yet: see migrate.py)."""
    files = []
    for lo, run in split_into_files(entries):
        data = encode_segment_file(lo, run)
        f = ColdFile(file_name(copy_id, lo, lo + len(run)), lo, lo + len(run), sha256(data), len(data))
        await store.put(f.name, data)
        files.append(f)
    return ColdLogletConfig(copy_id, store.location, tuple(files))
