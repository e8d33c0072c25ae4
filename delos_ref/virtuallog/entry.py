"""The entry envelope: every entry a VirtualLog stores says who appended it (exactly-once appends).

A shared log whose ``append`` returns one position must hold each appended entry once. The
hard case is an append whose outcome is *unknown*: the request reached the loglet, but its
reply never came (the sequencer died, the chain moved on while it was in flight). Appending
the entry again may store it twice; giving up may lose an append that in fact succeeded. The
VirtualLog resolves such an append instead (``client.py``, ``_resolve``): it reads the range of
the old, sealed segment where the entry can have landed and *looks for it*. For that, an entry
must be recognisable, so the VirtualLog wraps each one in a small envelope carrying its
:class:`EntryId`: the appending client's id (unique per client incarnation) and a sequence
number that client gives each ``append`` call (not each attempt: every attempt of one append
stores the same id).

Readers never see the envelope: ``read_next`` hands back the user's bytes exactly as given to
``append``. The layout, chosen to cost little: 2 bytes, the writer id and 1-3 bytes of seq
for the first two million appends -- 22-24 bytes per entry for a database replica (id
``n1.replica.<8 hex>``, 19 characters), 32-34 for a CLI client (``ops-<8 hex>@<16 hex>``);
``tests/test_virtuallog_dedup.py`` pins the sizes::

    +------+------------+-----------------+--------------+----------------------+
    | 0xD1 | writer len | writer (UTF-8)  | seq (LEB128) | the user's bytes ... |
    +------+------------+-----------------+--------------+----------------------+
      1 B      1 B         1..255 B          1..10 B

An entry that does not parse as an envelope (written straight into a loglet by something
other than a VirtualLog, e.g. a test) is handed over as stored, with no id. Pure functions:
no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The envelope's first byte ("Delos entry, version 1").
MAGIC = 0xD1
MAX_WRITER_BYTES = 255
#: Bound on one sequence number (10 LEB128 bytes hold 64 bits).
MAX_SEQ = (1 << 64) - 1
#: The most bytes an envelope adds to an entry.
MAX_ENVELOPE_BYTES = 2 + MAX_WRITER_BYTES + 10


@dataclass(frozen=True, slots=True)
class EntryId:
    """Who appended an entry: ``writer`` (the VirtualLog's client id) and its ``seq``-th append."""

    writer: str
    seq: int

    def __post_init__(self) -> None:
        if not 0 < len(self.writer.encode()) <= MAX_WRITER_BYTES:
            raise ValueError(f"EntryId: a writer id is 1..{MAX_WRITER_BYTES} UTF-8 bytes, got {self.writer!r:.80}")
        if not 0 <= self.seq <= MAX_SEQ:
            raise ValueError(f"EntryId: seq is 0..2**64-1, got {self.seq}")


def encode_entry(ident: EntryId, data: bytes) -> bytes:
    """The stored form of ``data`` appended as ``ident``."""
    writer = ident.writer.encode()
    return bytes((MAGIC, len(writer))) + writer + _uleb128(ident.seq) + data


def decode_entry(stored: bytes) -> tuple[EntryId | None, bytes]:
    """``(id, the user's bytes)`` of a stored entry; ``(None, stored)`` if it is no envelope."""
    if len(stored) < 3 or stored[0] != MAGIC:
        return None, stored
    end = 2 + stored[1]
    try:
        writer = stored[2:end].decode()
    except UnicodeDecodeError:
        return None, stored
    seq, shift, i = 0, 0, end
    while True:
        if i >= len(stored) or shift > 63:
            return None, stored  # cut short, or longer than 64 bits: not ours
        byte = stored[i]
        seq |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if byte < 0x80:
            break
    if not writer or seq > MAX_SEQ:
        return None, stored
    return EntryId(writer, seq), stored[i:]


def entry_id(stored: bytes) -> EntryId | None:
    """Only the id of a stored entry (None if it is no envelope)."""
    return decode_entry(stored)[0]


def _uleb128(n: int) -> bytes:
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)
