"""How an acceptor's state lies in storage, and how a restarted acceptor finds it again.

An acceptor must remember, across crashes, every promise and every acceptance it has
answered: forgetting a promise lets a lower ballot be accepted after a higher one was
promised, and forgetting an acceptance lets a chosen value vanish from the quorum that chose
it (Lamport, "Paxos Made Simple" §2.5: "an acceptor records its intended response in stable
storage before actually sending the response"). The runtime enforces the "before": every
:class:`~delos_ref.effects.Persist` of a batch is synced before any reply of that batch.

Layout: one table, :data:`SLOTS_TABLE`; key = the register's name in UTF-8, a NUL byte, then
the instance as 8 big-endian bytes (so a key scan walks each register's instances in order);
the MetaStore's own register ``""`` keeps the bare 8-byte key it always had, so a key of
exactly 8 bytes is the chain register and a longer one names its register (names contain no
NUL, :func:`paxos.messages.check_register`). Value = a :class:`~paxos.messages.Slot` encoded
with the project codec. One write per changed instance, so a Prepare and an Accept each cost
one small write.

Nothing here does I/O of its own: :func:`load_slots` reads through the
:class:`~delos_ref.storage.Storage` it is given (LMDB in a node process, memory in the
simulator), and the acceptor core receives the result as plain data.
"""

from __future__ import annotations

import struct

from delos_ref.effects import Write
from delos_ref.storage import Storage
from paxos.messages import CHAIN_REGISTER, MAX_INSTANCE, Slot, check_register
from transports.codec import DecodeError, decode_value, encode_value

SLOTS_TABLE = "paxos.slots"
#: Every table an acceptor uses (``LmdbStorage(path, tables=TABLES)``).
TABLES = (SLOTS_TABLE,)
_KEY = struct.Struct(">Q")


class CorruptAcceptorState(Exception):
    """The acceptor's storage holds a record it cannot read: refuse to serve rather than guess."""


#: What an acceptor's slots are keyed by: ``(register, instance)``.
SlotId = tuple[str, int]


def slot_key(instance: int, register: str = CHAIN_REGISTER) -> bytes:
    assert 1 <= instance <= MAX_INSTANCE, "slot_key: instances are 1..MAX_INSTANCE (checked at decode)"
    if register == CHAIN_REGISTER:
        return _KEY.pack(instance)
    return register.encode() + b"\x00" + _KEY.pack(instance)


def slot_write(instance: int, slot: Slot, register: str = CHAIN_REGISTER) -> Write:
    """The storage write that makes ``slot`` the durable state of ``instance`` of ``register``."""
    return Write(SLOTS_TABLE, slot_key(instance, register), encode_value(slot))


def decode_key(key: bytes) -> SlotId:
    if len(key) == _KEY.size:
        return CHAIN_REGISTER, _KEY.unpack(key)[0]
    if len(key) < _KEY.size + 2 or key[-_KEY.size - 1] != 0:
        raise CorruptAcceptorState(f"bad slot key {key!r}")
    try:
        register = key[: -_KEY.size - 1].decode()
        check_register(register)
    except (UnicodeDecodeError, ValueError):
        raise CorruptAcceptorState(f"bad register name in slot key {key!r}") from None
    (instance,) = _KEY.unpack(key[-_KEY.size :])
    return register, instance


def decode_slot(key: bytes, value: bytes) -> tuple[SlotId, Slot]:
    register, instance = decode_key(key)
    if not 1 <= instance <= MAX_INSTANCE:
        raise CorruptAcceptorState(f"register {register!r}: bad instance {instance}")
    try:
        slot = decode_value(value)
    except DecodeError as e:
        raise CorruptAcceptorState(f"register {register!r} instance {instance}: {e}") from None
    if type(slot) is not Slot:
        raise CorruptAcceptorState(f"register {register!r} instance {instance}: expected a Slot, found {type(slot).__name__}")
    return (register, instance), slot


def load_slots(storage: Storage) -> dict[SlotId, Slot]:
    """Every ``(register, instance)``'s durable state, as plain data for
    :class:`paxos.acceptor.Acceptor`."""
    return dict(decode_slot(k, v) for k, v in storage.scan(SLOTS_TABLE))
