"""The table state machine: log entries in, table state out (docs/design.md §8; Delos OSDI'20 §4).

A Delos database is a *replicated state machine over the shared log*: every write is a
command appended to the VirtualLog, and every replica plays the log in order, applying each
command to its local table. Replicas that applied the same prefix hold the same table. This
module is that state machine, and nothing else: no trio, no network, no clock. It is driven
by :class:`~delos_ref.db.replica.Replica` on real and simulated nodes, and directly by tests.

**Commands.** A write is a :class:`Command` -- ``(client, seq, floor, op, arg)``. A log entry
holds one command (``b"KV1" + CBOR``) or a *batch* of them (``b"KVB" + CBOR list``: the
replica puts the writes that arrive while its earlier appends are in flight into one entry,
group commit at the database layer). A batch is applied in its order, each command on its
own: its own deduplication and result. The operations that change the table (:data:`WRITE_OPS`):

* ``put(key, value)`` -> ``None``;
* ``delete(key)`` -> ``None``;
* ``cas(key, expected, new)`` -> ``True`` and writes ``new`` iff the value is ``expected``
  (``None`` means absent: ``expected=None`` creates only if absent, ``new=None`` deletes);
* ``txn(conditions, writes)``: ``conditions`` is a tuple of ``(key, expected)``, ``writes`` a
  tuple of ``(key, value-or-None)``; if every condition holds, every write is applied and the
  result is ``True``, else nothing changes and it is ``False`` (all or nothing).

Reads (``get``, ``scan``) are not commands: they read the local table (see the replica for
how a read is made linearizable). Keys and values are text, stored UTF-8 in the ``data``
table, so the table's key order is the byte order of the UTF-8 keys.

**Exactly once.** A client may send the same command more than once (it timed out and
retried on another replica), so the same ``(client, seq)`` can appear at several log
positions. Only the first is applied: its
result is remembered in the ``dedup`` table, and later copies return that result without
touching the data. The remembered results would grow forever, so each command also carries
the client's ``floor``: every ``seq`` below it has been answered, and the client will never
ask about it again. Applying a command drops that client's results below its floor, and
treats any later copy of a ``seq`` below the floor as a duplicate (nobody waits for it). All
of this happens in log order, so every replica makes the same decision at the same position.

**Atomic and durable apply.** :meth:`TableState.apply` applies a batch of consecutive
entries and writes, in *one* storage transaction, every entry's effect plus the new applied
position (the ``meta`` table's ``applied`` key). A crash leaves the table at the end of some
whole batch, with the position that matches it, so no entry is applied twice or skipped
after a restart (group apply: several entries share one fsync, each entry still atomic).

The fsync may also be deferred (``apply(..., sync=False)``, then :meth:`TableState.sync`):
the log, not the table, is what makes a write durable, and the table is a deterministic
function of the log prefix it applied. A crash then loses whole unsynced batches together
with their applied position, and the replica replays them from the log, making the same
decisions (results, deduplication) at the same positions. ``durable`` is the applied
position as of the last sync: the log must keep every entry from there on (see the
replica's trim).

A malformed entry (neither ``KV1`` nor ``KVB``: another application's entry, or garbage) is
skipped -- the position still advances, so every replica skips it alike; so is a malformed
command inside a batch (the others in the batch are applied).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, Iterable

from delos_ref.effects import Write
from delos_ref.storage import Storage, Transaction
from transports.codec import DecodeError, decode_value, encode_value, fast_frozen_init

DATA, DEDUP, META = "data", "dedup", "meta"
TABLES = (DATA, DEDUP, META)
APPLIED_KEY = b"applied"
FLOOR_PREFIX = b"floor/"
#: A client's floor moving up by at most this many seqs deletes their results by key; a longer
#: move scans the range (see _apply_command).
FLOOR_STEP_DELETES = 64
MAGIC = b"KV1"
BATCH_MAGIC = b"KVB"
WRITE_OPS = ("put", "delete", "cas", "txn")
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 64 * 1024
MAX_TXN_ITEMS = 64
MAX_SCAN = 1000

#: Bug switch: apply every copy of a retried command (no deduplication).
BUG_NO_DEDUP = "no_dedup"


class BadCommand(ValueError):
    """A command's operation or arguments are malformed (the caller's fault: never appended)."""


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Command:
    """One write, as it travels in the log. ``seq`` is unique per ``client``; ``floor`` is the
    lowest seq the client still awaits an answer for."""

    client: str
    seq: int
    floor: int
    op: str
    arg: tuple

    def __post_init__(self) -> None:
        if not self.client or not isinstance(self.client, str) or "\0" in self.client:
            raise BadCommand("a command needs a non-empty client id without NUL")
        if not (0 <= self.floor <= self.seq):
            raise BadCommand(f"a command needs 0 <= floor <= seq, got floor={self.floor} seq={self.seq}")
        validate(self.op, self.arg)


# ------------------------------------------------------------------------- validation


def _key(k: Any) -> None:
    if not isinstance(k, str) or not k or len(k.encode()) > MAX_KEY_BYTES:
        raise BadCommand(f"a key is a non-empty string of at most {MAX_KEY_BYTES} bytes, got {k!r:.60}")


def _value(v: Any, *, absent_ok: bool) -> None:
    if v is None and absent_ok:
        return
    if not isinstance(v, str) or len(v.encode()) > MAX_VALUE_BYTES:
        raise BadCommand(f"a value is a string of at most {MAX_VALUE_BYTES} bytes, got {type(v).__name__}")


def _pairs(x: Any, what: str) -> tuple:
    if not isinstance(x, (tuple, list)) or len(x) > MAX_TXN_ITEMS or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in x):
        raise BadCommand(f"txn {what}: a list of at most {MAX_TXN_ITEMS} [key, value] pairs")
    for k, v in x:
        _key(k)
        _value(v, absent_ok=True)
    return tuple(tuple(p) for p in x)


def validate(op: str, arg: Any) -> None:
    """Raise :class:`BadCommand` unless ``op(arg)`` is a well-formed write."""
    if not isinstance(arg, tuple):
        raise BadCommand(f"{op}: arguments are a tuple")
    match op, len(arg):
        case "put", 2:
            _key(arg[0])
            _value(arg[1], absent_ok=False)
        case "delete", 1:
            _key(arg[0])
        case "cas", 3:
            _key(arg[0])
            _value(arg[1], absent_ok=True)
            _value(arg[2], absent_ok=True)
        case "txn", 2:
            _pairs(arg[0], "conditions")
            _pairs(arg[1], "writes")
        case _:
            raise BadCommand(f"unknown write {op!r} with {len(arg)} argument(s); writes are {', '.join(WRITE_OPS)}")


# ---------------------------------------------------------------------------- encoding


def _tuples(x: Any) -> Any:
    """``x`` with every list in it made a tuple (CBOR decodes arrays as lists)."""
    if not isinstance(x, (list, tuple)):
        return x
    return tuple([_tuples(v) if isinstance(v, (list, tuple)) else v for v in x])


def _fields(cmd: Command) -> list:
    return [cmd.client, cmd.seq, cmd.floor, cmd.op, list(cmd.arg)]


def _from_fields(fields: Any) -> Command | None:
    try:
        client, seq, floor, op, arg = fields
        return Command(client, seq, floor, op, _tuples(arg))
    except (ValueError, TypeError):  # BadCommand is a ValueError
        return None


def encode_command(cmd: Command) -> bytes:
    """One command as one log entry."""
    return MAGIC + encode_value(_fields(cmd))


def encode_batch(cmds: list[Command]) -> bytes:
    """Several commands as one log entry, applied in this order (one command: ``KV1``)."""
    assert cmds, "encode_batch: at least one command"
    if len(cmds) == 1:
        return encode_command(cmds[0])
    return BATCH_MAGIC + encode_value([_fields(c) for c in cmds])


def decode_command(entry: bytes) -> Command | None:
    """The command in a single-command entry, or None if the entry is not a well-formed one."""
    if not entry.startswith(MAGIC):
        return None
    try:
        return _from_fields(decode_value(entry[len(MAGIC):]))
    except DecodeError:
        return None


def decode_entry(entry: bytes) -> list[Command]:
    """The well-formed commands of a log entry, in order (none: a skipped entry)."""
    if entry.startswith(MAGIC):
        cmd = decode_command(entry)
        return [] if cmd is None else [cmd]
    if not entry.startswith(BATCH_MAGIC):
        return []
    try:
        items = decode_value(entry[len(BATCH_MAGIC):])
    except DecodeError:
        return []
    if not isinstance(items, list):
        return []
    return [c for c in map(_from_fields, items) if c is not None]


def _u64(n: int) -> bytes:
    return struct.pack(">Q", n)


def _dedup_key(client: str, seq: int) -> bytes:
    return client.encode() + b"\0" + _u64(seq)


# ------------------------------------------------------------------------------- a batch


def _read(view: Transaction, key: str) -> str | None:
    raw = view.get(DATA, key.encode())
    return None if raw is None else raw.decode()


def _write(view: Transaction, key: str, value: str | None) -> None:
    view.put(DATA, key.encode(), None if value is None else value.encode())


def execute(view: Transaction, op: str, arg: tuple) -> Any:
    """The effect of one write on the table, and its result (the sequential specification:
    it matches :class:`~delos_ref.checker.KVTable`)."""
    match op:
        case "put":
            _write(view, arg[0], arg[1])
            return None
        case "delete":
            _write(view, arg[0], None)
            return None
        case "cas":
            key, expected, new = arg
            if _read(view, key) != expected:
                return False
            _write(view, key, new)
            return True
        case "txn":
            conditions, writes = arg
            if any(_read(view, k) != expected for k, expected in conditions):
                return False  # all or nothing: no write happens
            for k, v in writes:
                _write(view, k, v)
            return True
    raise AssertionError(f"execute: unvalidated op {op!r}")


def _apply_command(view: Transaction, cmd: Command, dedup: bool) -> Any:
    """Apply ``cmd`` once per (client, seq); a copy gets the first copy's result."""
    if not dedup:  # the bug switch: every copy takes effect
        return execute(view, cmd.op, cmd.arg)
    floor_key = FLOOR_PREFIX + cmd.client.encode()
    raw = view.get(META, floor_key)
    old_floor = 0 if raw is None else struct.unpack(">Q", raw)[0]
    floor = max(old_floor, cmd.floor)
    if floor > old_floor:  # the client has its answers below floor: forget them
        # Only seqs from old_floor up can have results (the ones below went when the floor
        # passed them), so a small step deletes those keys by name instead of scanning.
        if floor - old_floor <= FLOOR_STEP_DELETES:
            keys = [_dedup_key(cmd.client, s) for s in range(old_floor, floor)]
        else:
            keys = view.keys_in(DEDUP, _dedup_key(cmd.client, old_floor), _dedup_key(cmd.client, floor))
        for k in keys:
            view.put(DEDUP, k, None)
        view.put(META, floor_key, _u64(floor))
    if cmd.seq < floor:
        return None  # a late copy of an answered command: nobody waits for it; no effect
    key = _dedup_key(cmd.client, cmd.seq)
    seen = view.get(DEDUP, key)
    if seen is not None:
        return decode_value(seen)  # a duplicate: the first copy's result, no effect
    result = execute(view, cmd.op, cmd.arg)
    view.put(DEDUP, key, encode_value(result))
    return result


# ------------------------------------------------------------------------------ the table


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one command did: its log position, the command and its result. A batch
    entry gives one per command (same ``pos``); a skipped entry one with ``command`` None."""

    pos: int
    command: Command | None
    result: Any


class TableState:
    """The table of one replica over a :class:`~delos_ref.storage.Storage` (LMDB on a node,
    memory in tests and the simulator). ``applied`` is the number of log positions applied:
    the next position to apply."""

    def __init__(self, storage: Storage, *, bugs: frozenset[str] = frozenset()) -> None:
        assert set(bugs) <= {BUG_NO_DEDUP}, f"TableState: unknown bugs {sorted(bugs)}"
        self.storage = storage
        self.dedup = BUG_NO_DEDUP not in bugs
        raw = storage.get(META, APPLIED_KEY)
        self.applied = 0 if raw is None else struct.unpack(">Q", raw)[0]
        self.durable = self.applied  # what storage holds was synced (or is all a crash left)

    def sync(self) -> int:
        """Make every applied batch durable; the durable applied position."""
        if self.durable < self.applied:
            self.storage.sync()
            self.durable = self.applied
        return self.durable

    def apply(self, first: int, entries: Iterable[bytes], *, sync: bool = True) -> list[Applied]:
        """Apply the entries at positions ``first, first+1, ...`` in one transaction, durable
        before this returns unless ``sync`` is False (then durable at the next :meth:`sync`).
        One :class:`Applied` per command, in log order."""
        assert first == self.applied, f"apply: entries must start at the applied position {self.applied}, not {first}"
        entries = list(entries)
        if not entries:
            return []
        out = []
        with self.storage.transaction(sync=sync) as view:  # effects + position: one transaction
            for pos, entry in enumerate(entries, start=first):
                cmds = decode_entry(entry)
                out += [Applied(pos, c, _apply_command(view, c, self.dedup)) for c in cmds] or [Applied(pos, None, None)]
            view.put(META, APPLIED_KEY, _u64(first + len(entries)))
        self.applied = first + len(entries)
        if sync:
            self.durable = self.applied
        return out

    def get(self, key: str) -> str | None:
        _key(key)
        raw = self.storage.get(DATA, key.encode())
        return None if raw is None else raw.decode()

    def scan(self, *, prefix: str | None = None, start: str | None = None, end: str | None = None, limit: int = 100) -> list[tuple[str, str]]:
        """Pairs in key order: those with ``prefix``, or with ``start <= key < end`` (either
        bound may be left open); at most ``limit`` (<= MAX_SCAN)."""
        if not 1 <= limit <= MAX_SCAN:
            raise BadCommand(f"scan: limit is 1..{MAX_SCAN}, got {limit}")
        if prefix is not None and (start is not None or end is not None):
            raise BadCommand("scan: give a prefix or a range, not both")
        lo, hi = (start or "").encode(), None if end is None else end.encode()
        if prefix is not None:
            lo, hi = prefix.encode(), _prefix_end(prefix.encode())
        return [(k.decode(), v.decode()) for k, v in self.storage.scan(DATA, lo, hi, limit)]

    def digest(self) -> str:
        """SHA-256 of the data and dedup tables and the applied position: equal on replicas that
        applied the same prefix."""
        h = hashlib.sha256(_u64(self.applied))
        for table in (DATA, DEDUP):
            for k, v in self.storage.scan(table):
                h.update(_u64(len(k)) + k + _u64(len(v)) + v)
        return h.hexdigest()

    def dump(self) -> list[tuple[str, bytes, bytes]]:
        """Every row of every table: the content of a snapshot (applied position included)."""
        return [(t, k, v) for t in TABLES for k, v in self.storage.scan(t)]

    def restore(self, rows: list[tuple[str, bytes, bytes]]) -> None:
        """Replace the whole state with a snapshot's rows, in one transaction."""
        assert all(t in TABLES for t, _, _ in rows), "restore: rows of known tables only"
        writes = [Write(t, k, None) for t in TABLES for k, _ in self.storage.scan(t)]
        writes += [Write(t, k, v) for t, k, v in rows]
        self.storage.write(writes, sync=True)
        raw = self.storage.get(META, APPLIED_KEY)
        self.applied = self.durable = 0 if raw is None else struct.unpack(">Q", raw)[0]


def _prefix_end(prefix: bytes) -> bytes | None:
    """The least byte string above every string with ``prefix`` (None: no bound)."""
    p = prefix.rstrip(b"\xff")
    return None if not p else p[:-1] + bytes([p[-1] + 1])
