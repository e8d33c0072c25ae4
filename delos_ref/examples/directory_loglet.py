"""A loglet in a directory: the worked example of docs/tutorial-loglet.md, and a loglet plugin.

Each entry is one file, ``<root>/<loglet_id>/<position>``, written whole (to a temporary
file, synced, then renamed) before ``append`` returns; the seal is the file ``sealed``;
the trim point is the file ``trim``. Clients of the same directory -- in one process or in
several on one machine -- share the loglet, each operation under an exclusive ``flock``.

It keeps the whole loglet contract (docs/design.md §2, §3.4), which the conformance suite
(``tests/loglet_conformance.py``) checks:

1. **Gapless, durable positions.** Under the lock, an append takes the first position with
   no file and writes it; the file exists only once complete and synced, so the tail (one
   past the highest file) never counts a half-written entry.
2. **The seal is sticky.** ``seal`` creates ``sealed`` (synced) under the lock; every later
   append sees it under the same lock and fails with :class:`SealedError` before taking a
   position (``may_have_landed=False``: it certainly did not land).
3. **check_tail reports the seal bit** with the tail, read under one lock: a consistent pair.
4. **Trim never discards the future**: the trim point is at most the tail.

What it gives up: it is as fault-tolerant as one disk (no replication: a crashed machine
takes the loglet with it), and its blocking file calls run in the trio thread. That is fine
for a tutorial and for one machine; a real data plane replicates (the NativeLoglet).

It is also a *loglet plugin* (``delos_ref/plugins.py``): :func:`loglet_kind` and
:func:`new_config` let a ``delos-ref up --loglet-module delos_ref.examples.directory_loglet``
cluster hot-swap onto it with ``delos-ref reconfigure --loglet directory``. It needs no
servers (no ``serve``): every process of a local cluster shares the machine's filesystem.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Any, Iterator

import trio

from delos_ref.loglet.api import MAX_READ_ENTRIES, Loglet, SealedError, Tail, TrimmedError, check_entry, check_range
from delos_ref.virtuallog.registry import LogletKind
from transports.codec import message

KIND = "directory"


@message("example.directory.config")
class DirectoryLogletConfig:
    """The loglet ``loglet_id`` in the directory ``root`` (what a chain segment stores)."""

    loglet_id: str
    root: str

    def __post_init__(self) -> None:
        if not self.loglet_id or "/" in self.loglet_id or self.loglet_id.startswith("."):
            raise ValueError("DirectoryLogletConfig: loglet_id is a plain file name")


class DirectoryLoglet(Loglet):
    """A client of the loglet stored in ``path``: one file per entry, a seal file, a trim file."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)

    # ------------------------------------------------------------------ files and lock

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(os.path.join(self.path, "lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when f closes
            yield

    def _entry_file(self, pos: int) -> str:
        return os.path.join(self.path, f"{pos:020d}")

    def _write_durably(self, name: str, data: bytes) -> None:
        """Write ``name`` whole or not at all: a synced temporary file renamed over it."""
        tmp = os.path.join(self.path, ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.path, name))
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself is durable
        finally:
            os.close(dir_fd)

    def _sealed(self) -> bool:
        return os.path.exists(os.path.join(self.path, "sealed"))

    def _trim_point(self) -> int:
        try:
            with open(os.path.join(self.path, "trim"), "rb") as f:
                return int(f.read())
        except FileNotFoundError:
            return 0

    def _tail(self) -> int:
        positions = [int(n) for n in os.listdir(self.path) if n.isdigit()]
        return max([self._trim_point(), *(p + 1 for p in positions)])

    # ------------------------------------------------------------------ the Loglet API

    async def append(self, entry: bytes) -> int:
        check_entry(entry)
        await trio.lowlevel.checkpoint()  # let concurrent callers interleave, as on a network
        with self._locked():
            if self._sealed():
                raise SealedError(may_have_landed=False)  # rule 2: refused before a position
            pos = self._tail()
            self._write_durably(f"{pos:020d}", bytes(entry))  # rule 1
            return pos

    async def check_tail(self) -> Tail:
        await trio.lowlevel.checkpoint()
        with self._locked():
            return Tail(self._tail(), self._sealed())  # rule 3: one consistent pair

    async def read_next(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        check_range(lo, hi)
        await trio.lowlevel.checkpoint()
        with self._locked():
            trim = self._trim_point()
            if lo < trim:
                raise TrimmedError(lo, trim)
            out = []
            for pos in range(lo, min(hi, self._tail(), lo + MAX_READ_ENTRIES)):
                with open(self._entry_file(pos), "rb") as f:
                    out.append((pos, f.read()))
            return out

    async def prefix_trim(self, pos: int) -> None:
        await trio.lowlevel.checkpoint()
        with self._locked():
            target = min(pos, self._tail())  # rule 4
            old = self._trim_point()
            if target <= old:
                return
            self._write_durably("trim", str(target).encode())
            for p in range(old, target):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self._entry_file(p))

    async def seal(self) -> None:
        await trio.lowlevel.checkpoint()
        with self._locked():
            if not self._sealed():
                self._write_durably("sealed", b"")  # rule 2: sticky, durable


def directory_kind() -> LogletKind:
    """The registry entry: how a VirtualLog client builds and clones a directory loglet."""
    return LogletKind(
        KIND,
        DirectoryLogletConfig,
        build=lambda cfg: DirectoryLoglet(os.path.join(cfg.root, cfg.loglet_id)),
        clone=lambda cfg, fresh_id: DirectoryLogletConfig(fresh_id, cfg.root),
    )


# ---------------------------------------------------------------- the plugin interface


def loglet_kind(node: object = None) -> LogletKind:
    """The plugin's registry entry (the same on every node: the loglet needs no network)."""
    return directory_kind()


def new_config(ops: Any, loglet_id: str) -> DirectoryLogletConfig:
    """A fresh directory loglet for ``delos-ref reconfigure --loglet directory``: under
    ``<cluster dir>/directory-loglets/``, which every process of a local cluster reaches."""
    return DirectoryLogletConfig(loglet_id, os.path.abspath(os.path.join(ops.directory, "directory-loglets")))
