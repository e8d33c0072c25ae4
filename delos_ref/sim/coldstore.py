"""The simulator's cold store, with the faults a cold store can have (fault ``bitrot``).

A :class:`~delos_ref.loglet.cold.MemoryColdStore` that misbehaves, deterministically from
the run's seed, in the two ways ``delos_ref/migrate.py`` and ``delos_ref/loglet/cold.py``
must survive:

* **bad writes**: now and then a segment file is stored with one byte changed (a faulty
  copier or disk; the checksum the migration computed is of the bytes it *meant* to write).
  Only the migration's read-back catches it: with ``migrate_before_verified`` the chain names
  the bad copy, and its range becomes unreadable.
* **rot at rest**: :meth:`rot` flips one byte of a stored file -- the last byte, which is
  always inside the last entry's payload, so the file still parses. Reads of that file must
  fail (its checksum no longer matches); with ``cold_read_unchecked`` they return a wrong
  entry. The checks allow a rotted file's range to be *unreadable*, never different.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from delos_ref.loglet.cold import MemoryColdStore

#: How often a segment file is written with a changed byte, under fault ``bitrot``.
BAD_WRITE_P = 0.1


@dataclass
class FaultyColdStore(MemoryColdStore):
    rng: Any = None
    faulty: bool = False
    bad_writes: set[str] = field(default_factory=set)
    rotted: set[str] = field(default_factory=set)

    async def put(self, name: str, data: bytes) -> None:
        if self.faulty and name.endswith(".seg") and self.rng.random() < BAD_WRITE_P:
            data = _flip_last(data)
            self.bad_writes.add(name)
        await super().put(name, data)

    def rot(self, installed: set[str]) -> str | None:
        """Flip a byte of one of the ``installed`` files (those a chain names); its name."""
        choices = sorted(n for n in installed if n in self.blobs and n not in self.rotted and n not in self.bad_writes)
        if not choices:
            return None
        name = self.rng.choice(choices)
        self.blobs[name] = _flip_last(self.blobs[name])
        self.rotted.add(name)
        return name


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])
