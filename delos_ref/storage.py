"""Durable storage behind the protocol roles: LMDB, or memory that models a crash.

Both implementations offer one small interface: named tables of byte keys to byte values,
point reads, ordered range scans, and :meth:`Storage.write`, which applies a batch of
:class:`~delos_ref.effects.Write` s atomically and, with ``sync=True``, durably (fsync) before
it returns. "Durable means synced before the ack" (docs/design.md §12): a role only acknowledges what
a synced write holds.

A state machine whose writes depend on what it reads as it goes (the database's table)
uses :meth:`Storage.transaction` instead: one atomic transaction that reads its own writes.
By default that is an overlay of pending writes in memory, handed to :meth:`Storage.write`
at the end; LMDB does it natively (one write transaction, no overlay).

:class:`MemoryStorage` is the simulator's disk: it keeps what was written and what was synced
apart, and :meth:`MemoryStorage.crash` throws away everything that was not synced.
"""

from __future__ import annotations

import abc
import bisect
import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from delos_ref.effects import Write


class StorageError(Exception):
    pass


class DataDirInUse(StorageError):
    """Another live process holds this data directory."""


class StorageFull(StorageError):
    """The disk (or LMDB's map) has no room for a write: nothing of the write was applied.

    A node cannot take writes any more; it exits with this cause in its log and exit record
    (``delos_ref/logs.py``) rather than serve on half a disk."""


#: A write error on a filesystem with less room than this counts as a full disk.
NEARLY_FULL_BYTES = 1 << 20


def _is_full(e: BaseException, path: Path) -> bool:
    """Did ``e`` happen because the disk (or LMDB's map) is full? ENOSPC says so; LMDB also
    turns a short write -- what a full disk gives -- into EIO, so an I/O error counts too
    when the filesystem has less than :data:`NEARLY_FULL_BYTES` left."""
    import errno

    import lmdb

    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return True
    if isinstance(e, lmdb.MapFullError) or (isinstance(e, lmdb.Error) and "No space left" in str(e)):
        return True
    if "Input/output error" in str(e):
        try:
            st = os.statvfs(path)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < NEARLY_FULL_BYTES
    return False


class Storage(abc.ABC):
    @abc.abstractmethod
    def get(self, table: str, key: bytes) -> bytes | None: ...

    @abc.abstractmethod
    def scan(self, table: str, lo: bytes = b"", hi: bytes | None = None, limit: int = 1 << 30) -> list[tuple[bytes, bytes]]:
        """Pairs with ``lo <= key < hi`` in key order, at most ``limit`` of them."""

    @abc.abstractmethod
    def last(self, table: str) -> tuple[bytes, bytes] | None:
        """The pair with the greatest key, or None for an empty table."""

    @abc.abstractmethod
    def write(self, writes: Iterable[Write], sync: bool = True) -> None:
        """Apply ``writes`` atomically; with ``sync`` they are on disk when this returns."""

    def sync(self) -> None:
        """Make every earlier write durable."""

    @contextlib.contextmanager
    def transaction(self, sync: bool = True) -> Iterator["Transaction"]:
        """One atomic transaction that sees its own writes, applied when the block ends
        (durably if ``sync``); nothing of it is applied if the block raises."""
        txn = OverlayTransaction(self)
        yield txn
        self.write(txn.writes(), sync=sync)

    def statistics(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


class Transaction(abc.ABC):
    """Reads and writes inside :meth:`Storage.transaction`: a read sees the writes before it."""

    @abc.abstractmethod
    def get(self, table: str, key: bytes) -> bytes | None: ...

    @abc.abstractmethod
    def put(self, table: str, key: bytes, value: bytes | None) -> None:
        """Set ``key`` to ``value``; None deletes it."""

    @abc.abstractmethod
    def keys_in(self, table: str, lo: bytes, hi: bytes) -> list[bytes]:
        """Present keys with ``lo <= key < hi``, in order."""


class OverlayTransaction(Transaction):
    """The portable transaction: pending writes in a dict over the storage's committed state."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.pending: dict[tuple[str, bytes], bytes | None] = {}

    def get(self, table: str, key: bytes) -> bytes | None:
        if (table, key) in self.pending:
            return self.pending[(table, key)]
        return self.storage.get(table, key)

    def put(self, table: str, key: bytes, value: bytes | None) -> None:
        self.pending[(table, key)] = value

    def keys_in(self, table: str, lo: bytes, hi: bytes) -> list[bytes]:
        keys = {k for k, _ in self.storage.scan(table, lo, hi)}
        for (t, k), v in self.pending.items():
            if t == table and lo <= k < hi:
                (keys.add if v is not None else keys.discard)(k)
        return sorted(keys)

    def writes(self) -> list[Write]:
        return [Write(t, k, v) for (t, k), v in self.pending.items()]


class MemoryStorage(Storage):
    """In-memory tables with a crash model: unsynced writes are lost by :meth:`crash`."""

    def __init__(self) -> None:
        self._live: dict[str, dict[bytes, bytes]] = {}
        self._synced: dict[str, dict[bytes, bytes]] = {}
        self._sorted: dict[str, list[bytes]] = {}
        self.syncs = 0
        self.writes = 0

    def _table(self, table: str) -> dict[bytes, bytes]:
        return self._live.setdefault(table, {})

    def _keys(self, table: str) -> list[bytes]:
        keys = self._sorted.get(table)
        if keys is None:
            keys = self._sorted[table] = sorted(self._table(table))
        return keys

    def get(self, table: str, key: bytes) -> bytes | None:
        return self._live.get(table, {}).get(key)

    def scan(self, table: str, lo: bytes = b"", hi: bytes | None = None, limit: int = 1 << 30) -> list[tuple[bytes, bytes]]:
        keys = self._keys(table)
        data = self._table(table)
        out = []
        for k in keys[bisect.bisect_left(keys, lo):]:
            if (hi is not None and k >= hi) or len(out) >= limit:
                break
            out.append((k, data[k]))
        return out

    def last(self, table: str) -> tuple[bytes, bytes] | None:
        keys = self._keys(table)
        return (keys[-1], self._live[table][keys[-1]]) if keys else None

    def write(self, writes: Iterable[Write], sync: bool = True) -> None:
        for w in writes:
            t = self._table(w.table)
            if w.value is None:
                t.pop(w.key, None)
            else:
                t[w.key] = w.value
            self._sorted.pop(w.table, None)
            self.writes += 1
        if sync:
            self.sync()

    def sync(self) -> None:
        self._synced = {t: dict(d) for t, d in self._live.items()}
        self.syncs += 1

    def crash(self) -> None:
        """Lose every write that was not synced (what a power cut does to a page cache)."""
        self._live = {t: dict(d) for t, d in self._synced.items()}
        self._sorted.clear()

    def statistics(self) -> dict[str, int]:
        return {"writes": self.writes, "syncs": self.syncs}


class LmdbStorage(Storage):
    """One LMDB environment per role directory, one named database per table.

    The environment is opened with ``sync=False`` and synced explicitly after each batch
    that asks for it, so many writes share one fsync (group commit). A ``LOCK`` file held with
    ``flock`` keeps a second process off the same directory: LMDB itself would allow it.
    """

    def __init__(self, path: str | os.PathLike, tables: Iterable[str], map_size: int = 1 << 30) -> None:
        import fcntl

        import lmdb

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path / "LOCK", "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "another process"
            self._lock.close()
            raise DataDirInUse(f"data directory {self.path} is in use by {holder}") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"pid {os.getpid()}\n")
        self._lock.flush()
        try:
            self._env = lmdb.open(str(self.path / "lmdb"), map_size=map_size, max_dbs=16, sync=False, metasync=False, subdir=True)
            self._dbs = {t: self._env.open_db(t.encode()) for t in sorted(set(tables))}
        except (lmdb.Error, OSError) as e:
            self._lock.close()
            if _is_full(e, self.path):
                raise StorageFull(f"disk full: cannot open {self.path}: {e}") from None
            raise StorageError(f"cannot open {self.path}: {e}") from None
        self.syncs = 0
        self.writes = 0

    def _db(self, table: str):
        try:
            return self._dbs[table]
        except KeyError:
            raise StorageError(f"unknown table {table!r}") from None

    def get(self, table: str, key: bytes) -> bytes | None:
        with self._env.begin(db=self._db(table)) as txn:
            return txn.get(key)

    def scan(self, table: str, lo: bytes = b"", hi: bytes | None = None, limit: int = 1 << 30) -> list[tuple[bytes, bytes]]:
        out = []
        with self._env.begin(db=self._db(table)) as txn:
            cur = txn.cursor()
            if not cur.set_range(lo):
                return out
            for k, v in cur:
                if (hi is not None and k >= hi) or len(out) >= limit:
                    break
                out.append((k, v))
        return out

    def last(self, table: str) -> tuple[bytes, bytes] | None:
        with self._env.begin(db=self._db(table)) as txn:
            cur = txn.cursor()
            return (cur.key(), cur.value()) if cur.last() else None

    def write(self, writes: Iterable[Write], sync: bool = True) -> None:
        with self.transaction(sync=sync) as txn:
            for w in writes:
                txn.put(w.table, w.key, w.value)

    def sync(self) -> None:
        with self._full_is_named():
            self._env.sync(True)
        self.syncs += 1

    @contextlib.contextmanager
    def transaction(self, sync: bool = True) -> Iterator[Transaction]:
        """One LMDB write transaction: it reads its own writes, no overlay needed."""
        with self._full_is_named():
            with self._env.begin(write=True) as txn:
                view = _LmdbTransaction(txn, self._db)
                yield view
        self.writes += view.writes
        if sync:
            self.sync()

    @contextlib.contextmanager
    def _full_is_named(self) -> Iterator[None]:
        """A write the disk (or the map) has no room for raises :class:`StorageFull`."""
        import lmdb

        try:
            yield
        except (lmdb.Error, OSError) as e:
            if _is_full(e, self.path):
                raise StorageFull(f"disk full: {self.path}: {e}") from None
            raise

    def table_sizes(self) -> dict[str, int]:
        """Entries in each table (what a restarted role finds on disk)."""
        with self._env.begin() as txn:
            return {t: txn.stat(db)["entries"] for t, db in sorted(self._dbs.items())}

    def statistics(self) -> dict[str, int]:
        return {"writes": self.writes, "syncs": self.syncs}

    def close(self) -> None:
        self._env.close()
        self._lock.close()


class _LmdbTransaction(Transaction):
    """Reads and writes inside one LMDB write transaction; ``db`` maps a table name to its
    named database (:meth:`LmdbStorage._db`)."""

    def __init__(self, txn, db: Callable[[str], Any]) -> None:
        self._txn = txn
        self._db = db
        self.writes = 0

    def get(self, table: str, key: bytes) -> bytes | None:
        return self._txn.get(key, db=self._db(table))

    def put(self, table: str, key: bytes, value: bytes | None) -> None:
        if value is None:
            self._txn.delete(key, db=self._db(table))
        else:
            self._txn.put(key, value, db=self._db(table))
        self.writes += 1

    def keys_in(self, table: str, lo: bytes, hi: bytes) -> list[bytes]:
        cur = self._txn.cursor(db=self._db(table))
        out: list[bytes] = []
        if cur.set_range(lo):
            for k in cur.iternext(values=False):
                if k >= hi:
                    break
                out.append(k)
        return out
