"""The cold loglet's data, as pure code: its config, its segment files, its manifests
(see ``delos_ref/loglet/cold.py`` for the loglet and the stores; OSDI'20 §3.2, §6).

A *segment file* holds the entries of one range ``[lo, hi)`` of loglet positions; its
SHA-256 is recorded in the :class:`ColdLogletConfig`, so in the chain, so in the MetaStore:
the checksum a reader checks never comes from the store it checks. A *manifest* (one per
copy) names a copy's files and the virtual range it holds, for ``restore`` and ``status``.
No I/O here: bytes in, values out (a test scans the imports).

The segment file layout (big-endian)::

    +-------------------+--------+----------+-------------+---------+-----+
    | "DELOSCOLD1\n"    | lo: 8B | count: 4B| len: 4B     | entry   | ... |
    +-------------------+--------+----------+-------------+---------+-----+
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, Sequence

from delos_ref.loglet.api import LogletUnavailable
from transports.codec import message

#: Bounds of one segment file: a read loads one whole file, so keep them modest.
MAX_FILE_ENTRIES = 4096
MAX_FILE_BYTES = 8 << 20
#: Bound on the files of one copy (the config lives in the chain, in the MetaStore).
MAX_FILES = 1024
#: Bound on the verified files one client keeps decoded in memory.
MAX_CACHED_FILES = 8
#: The first bytes of a segment file ("Delos cold segment, version 1").
FILE_MAGIC = b"DELOSCOLD1\n"
MANIFEST_SUFFIX = ".manifest"


class ColdStoreError(LogletUnavailable):
    """A cold file cannot be served: the range it holds is unreadable (never wrong data)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, may_have_landed=False)


class ColdFileMissing(ColdStoreError):
    """The store has no file by that name (deleted, or a store mounted at the wrong place)."""


class ColdFileCorrupt(ColdStoreError):
    """The file's bytes differ from the SHA-256 the chain records for it, or do not parse."""


@message("loglet.cold.file")
class ColdFile:
    """One immutable segment file: loglet positions ``[lo, hi)``, its SHA-256 and size."""

    name: str
    lo: int
    hi: int
    sha256: bytes
    size: int

    def __post_init__(self) -> None:
        if not 0 <= self.lo < self.hi or len(self.sha256) != 32 or "/" in self.name or not self.name:
            raise ValueError(f"ColdFile: need a plain name, 0 <= lo < hi and a 32-byte SHA-256, got {self.name!r} [{self.lo}, {self.hi})")


@message("loglet.cold.config")
class ColdLogletConfig:
    """A copy of a sealed segment in the cold store at ``store`` (a directory path, or a
    simulator store's name): ``files`` cover loglet positions ``[0, count)`` in order."""

    loglet_id: str
    store: str
    files: tuple[ColdFile, ...]

    def __post_init__(self) -> None:
        if not 0 < len(self.loglet_id) <= 128 or not self.store:
            raise ValueError("ColdLogletConfig: loglet_id is 1..128 characters, and a store")
        if len(self.files) > MAX_FILES:
            raise ValueError(f"ColdLogletConfig: {len(self.files)} files exceed {MAX_FILES}")
        for before, after in zip(self.files, self.files[1:]):
            if before.hi != after.lo:
                raise ValueError(f"ColdLogletConfig: file {after.name} starts at {after.lo}, not at {before.hi}")
        if self.files and self.files[0].lo != 0:
            raise ValueError("ColdLogletConfig: the first file starts at loglet position 0")

    @property
    def count(self) -> int:
        """How many entries the copy holds: its sealed tail."""
        return self.files[-1].hi if self.files else 0

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


# ------------------------------------------------------------------ segment files (pure)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def encode_segment_file(lo: int, entries: Sequence[bytes]) -> bytes:
    """The bytes of a segment file holding ``entries`` at loglet positions ``lo, lo+1, ...``:
    the magic, ``lo`` and the count (8 and 4 bytes, big-endian), then each entry as a 4-byte
    length and its bytes."""
    assert entries and len(entries) <= MAX_FILE_ENTRIES, "segment file: 1..MAX_FILE_ENTRIES entries"
    parts = [FILE_MAGIC, struct.pack(">QI", lo, len(entries))]
    for e in entries:
        parts += [struct.pack(">I", len(e)), bytes(e)]
    return b"".join(parts)


def decode_segment_file(data: bytes, want: ColdFile, *, check: bool = True) -> list[bytes]:
    """The entries of segment file ``want`` from its bytes ``data``. Checks the SHA-256 the
    chain records first (rule 2; skipped only with ``check=False``, the bug switch), then the
    layout; either failing raises :class:`ColdFileCorrupt`."""
    if check and sha256(data) != want.sha256:
        raise ColdFileCorrupt(f"cold file {want.name}: SHA-256 mismatch (positions [{want.lo}, {want.hi}) of the segment are unreadable)")
    head = len(FILE_MAGIC) + 12
    if len(data) < head or not data.startswith(FILE_MAGIC):
        raise ColdFileCorrupt(f"cold file {want.name}: not a segment file")
    lo, count = struct.unpack_from(">QI", data, len(FILE_MAGIC))
    if (lo, lo + count) != (want.lo, want.hi):
        raise ColdFileCorrupt(f"cold file {want.name}: holds [{lo}, {lo + count}), the chain says [{want.lo}, {want.hi})")
    entries, at = [], head
    for _ in range(count):
        if at + 4 > len(data):
            raise ColdFileCorrupt(f"cold file {want.name}: cut short")
        (n,) = struct.unpack_from(">I", data, at)
        if at + 4 + n > len(data):
            raise ColdFileCorrupt(f"cold file {want.name}: cut short")
        entries.append(data[at + 4 : at + 4 + n])
        at += 4 + n
    if at != len(data):
        raise ColdFileCorrupt(f"cold file {want.name}: {len(data) - at} bytes past the last entry")
    return entries


def split_into_files(entries: Sequence[bytes]) -> list[tuple[int, list[bytes]]]:
    """``entries`` (loglet positions 0, 1, ...) cut into file-sized runs ``(lo, run)``."""
    runs: list[tuple[int, list[bytes]]] = []
    lo, run, size = 0, [], 0
    for pos, e in enumerate(entries):
        if run and (len(run) >= MAX_FILE_ENTRIES or size + len(e) + 4 > MAX_FILE_BYTES):
            runs.append((lo, run))
            lo, run, size = pos, [], 0
        run.append(e)
        size += len(e) + 4
    if run:
        runs.append((lo, run))
    return runs


def file_name(copy_id: str, lo: int, hi: int) -> str:
    return f"{copy_id}.{lo:012d}-{hi:012d}.seg"


def encode_manifest(config: ColdLogletConfig, start: int, source: dict[str, Any]) -> bytes:
    """The manifest of one copy: its files, and the virtual range ``[start, start+count)``."""
    files = [{"name": f.name, "lo": f.lo, "hi": f.hi, "sha256": f.sha256.hex(), "bytes": f.size} for f in config.files]
    body = {"loglet_id": config.loglet_id, "start": start, "stop": start + config.count, "source": source, "files": files}
    return json.dumps(body, indent=1, sort_keys=True).encode()


def decode_manifest(data: bytes, store: str) -> tuple[int, ColdLogletConfig, dict[str, Any]]:
    """``(start, config, source)`` of a manifest; ValueError if it is not one."""
    try:
        body = json.loads(data)
        files = tuple(ColdFile(f["name"], f["lo"], f["hi"], bytes.fromhex(f["sha256"]), f["bytes"]) for f in body["files"])
        return int(body["start"]), ColdLogletConfig(body["loglet_id"], store, files), dict(body.get("source", {}))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not a cold-store manifest: {e}") from None
