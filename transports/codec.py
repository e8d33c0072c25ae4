"""The wire codec: typed messages, envelopes and frames.

Every message that crosses a transport is a frozen dataclass registered under an explicit,
stable type tag (``@message("paxos.prepare")``). Its fields are restricted to a small set of
types (int, float, bool, str, bytes, None, tuples, dicts of those, and other registered
messages), checked on the way *in*: a peer that sends a string where an int belongs is
refused at the codec, so protocol handlers never see an ill-typed message.

A frame is what a transport moves::

    +-------+---------+-------+------------+----------------+---------------------------+
    | "DL"  | version | flags | length u32 | body (length)  | HMAC-SHA256 (if flag MAC) |
    +-------+---------+-------+------------+----------------+---------------------------+
      2 B      1 B      1 B       4 B

The body is one CBOR array ``[src, dst, kind, rid, payload]`` (an :class:`Envelope`). The
MAC, when the cluster has a secret, covers the header and the body, so a frame from another
cluster (or a tampered one) is refused before a single CBOR byte is parsed.

The one rule of this module: decoding *any* bytes either yields a value or raises
:class:`DecodeError` (or one of its subclasses), never anything else and never a hang. (A
KeyboardInterrupt that arrives mid-decode is still a KeyboardInterrupt.)
Bounds: ``max_frame_bytes`` (default 4 MiB) and ``MAX_DEPTH`` levels of nesting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import operator
import struct
import types
import typing
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Callable

import cbor2

try:  # OpenSSL's HMAC object itself: copy/update/digest without hmac.HMAC's Python wrapper
    from _hashlib import hmac_new as _keyed_hmac_sha256_impl

    def _keyed_hmac_sha256(key: bytes) -> Any:
        return _keyed_hmac_sha256_impl(key, digestmod="sha256")

except ImportError:  # a Python built without OpenSSL's hashlib: the portable wrapper

    def _keyed_hmac_sha256(key: bytes) -> Any:
        return hmac.new(key, digestmod=hashlib.sha256)

MAGIC = b"DL"
VERSION = 1
FLAG_MAC = 0x01
HEADER = struct.Struct(">2sBBI")
HEADER_BYTES = HEADER.size  # 8
MAC_BYTES = 32
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32
# Our private CBOR semantic tag for "a registered message follows": [type_tag, *fields].
CBOR_TAG_MESSAGE = 27_001


class CodecError(Exception):
    """Base of every codec error."""


class EncodeError(CodecError):
    """Local misuse: we were asked to encode something that is not a valid message."""


class DecodeError(CodecError):
    """A peer sent bytes that are not a valid frame or message. The only error decoding raises."""


class FrameTooLarge(DecodeError):
    """The frame's length field exceeds the configured bound (checked before reading the body)."""


class BadMac(DecodeError):
    """The frame's HMAC does not verify: wrong cluster secret, or a tampered frame."""


class MessageTooLarge(EncodeError):
    """An outgoing message does not fit the frame bound (or a UDP datagram)."""


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class _Registered:
    tag: str
    cls: type
    field_names: tuple[str, ...]
    checkers: tuple[Callable[[Any, int], Any], ...]
    # The message's fields in order, as one C-level call (faster than a getattr per field).
    get_fields: Callable[[Any], tuple[Any, ...]]
    compiled: bool = False  # checkers and exact_types are built (on first decode)
    # When every field is an int, bool, str or bytes, the type of each field in order: a
    # decoded message whose values have exactly these types needs no checker calls at all.
    exact_types: tuple[type, ...] | None = None


_BY_TAG: dict[str, _Registered] = {}
_BY_CLASS: dict[type, _Registered] = {}


def message(tag: str):
    """Class decorator: make ``cls`` a frozen, slotted dataclass and register it under ``tag``.

    Tags are part of the wire format: never reuse one for a different shape.
    """
    if not tag or not isinstance(tag, str):
        raise EncodeError("a message tag must be a non-empty string")

    def register(cls: type) -> type:
        if not dataclasses.is_dataclass(cls):
            cls = dataclass(frozen=True, slots=True)(cls)
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        if not params.frozen:
            raise EncodeError(f"message {cls.__name__} must be frozen")
        if tag in _BY_TAG and _BY_TAG[tag].cls.__qualname__ != cls.__qualname__:
            raise EncodeError(f"tag {tag!r} already registered for {_BY_TAG[tag].cls.__name__}")
        # Checkers are compiled lazily: annotations may name classes defined later.
        names = tuple(f.name for f in dataclasses.fields(cls))
        fast_frozen_init(cls)
        entry = _Registered(tag, cls, names, (), _fields_getter(names))
        _BY_TAG[tag] = entry
        _BY_CLASS[cls] = entry
        cls.TAG = tag  # type: ignore[attr-defined]
        return cls

    return register


def fast_frozen_init(cls: type) -> type:
    """Give the frozen, slotted dataclass ``cls`` an ``__init__`` that stores each field through
    its slot directly; returns ``cls``.

    A frozen dataclass's own ``__init__`` stores each field with ``object.__setattr__`` (it
    must get past the class's ``__setattr__``, which refuses every assignment); the slot's
    descriptor does the same store without the attribute lookup, about twice as fast. Every
    message is built once by its sender and once by its receiver's decoder, so at tens of
    thousands of messages a second this is worth having. Same signature (positional or
    keyword, the same defaults), same ``__post_init__`` call. A class this does not cover keeps
    the dataclass's ``__init__``: not frozen and slotted, or fields that need more
    (``default_factory``, keyword-only, ``init=False``, a name like ``self`` or ``__x``).
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        return cls  # (only this class's own slots are known to hold its fields)
    fields = dataclasses.fields(cls)
    if any(not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING for f in fields):
        return cls
    if any(f.name == "self" or f.name.startswith("__") for f in fields):
        return cls  # names that would clash with the generated code's own (__set0, ...)
    scope: dict[str, Any] = {}
    signature, body = ["self"], []
    for i, f in enumerate(fields):
        scope[f"__set{i}"] = getattr(cls, f.name).__set__  # the slot's member descriptor
        if f.default is dataclasses.MISSING:
            signature.append(f.name)
        else:
            scope[f"__default{i}"] = f.default
            signature.append(f"{f.name}=__default{i}")
        body.append(f"    __set{i}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    exec(f"def __init__({', '.join(signature)}):\n" + ("\n".join(body) or "    pass"), scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[misc]
    return cls


def _fields_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda value: ()
    getter = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda value: (getter(value),)
    return getter  # type: ignore[return-value]


def registered_tags() -> list[str]:
    return sorted(_BY_TAG)


# Field types whose checker is exactly ``type(value) is T`` (bool is not an int here).
_EXACT_FIELD_TYPES = (int, bool, str, bytes)


def _compiled(entry: _Registered) -> _Registered:
    """``entry`` with its field checkers built (on first decode: ``_build`` checks ``compiled``)."""
    hints = typing.get_type_hints(entry.cls)
    types_ = tuple(hints[name] for name in entry.field_names)
    checkers = tuple(_checker_for(tp) for tp in types_)
    exact = types_ if all(tp in _EXACT_FIELD_TYPES for tp in types_) else None
    entry = dataclasses.replace(entry, checkers=checkers, compiled=True, exact_types=exact)
    _BY_TAG[entry.tag] = entry
    _BY_CLASS[entry.cls] = entry
    return entry


# ----------------------------------------------------------------- field type checking
#
# A checker takes a decoded CBOR value and returns the value the dataclass field should hold
# (lists become tuples), or raises DecodeError. They are built once per field.


def _fail(expected: str, value: Any) -> DecodeError:
    return DecodeError(f"expected {expected}, got {type(value).__name__}")


def _checker_for(tp: Any) -> Callable[[Any, int], Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return _check_any
    if tp is int:
        return _check_int
    if tp is bool:
        return _simple(bool, "bool")
    if tp is float:
        return _check_float
    if tp is str:
        return _simple(str, "str")
    if tp is bytes:
        return _simple(bytes, "bytes")
    if tp is type(None):
        return _check_none
    if origin in (typing.Union, types.UnionType):
        return _union([_checker_for(a) for a in args], tp)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _homogeneous_tuple(_checker_for(args[0]))
        return _fixed_tuple([_checker_for(a) for a in args])
    if origin is dict:
        return _dict(_checker_for(args[0]), _checker_for(args[1]))
    if isinstance(tp, type) and tp in _BY_CLASS:
        return _nested(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        raise EncodeError(f"{tp.__name__} is used in a message but is not registered")
    raise EncodeError(f"unsupported message field type {tp!r}")


def _check_any(value: Any, depth: int) -> Any:
    """For ``Any`` fields: only plain CBOR data (no foreign semantic tags), normalized so that
    arrays are tuples and maps are dicts whatever cbor2 produced."""
    if depth > MAX_DEPTH:
        raise DecodeError("value nested too deeply")
    if value is None or type(value) in (bool, int, float, str, bytes) or type(value) in _BY_CLASS:
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_check_any(item, depth + 1) for item in value)
    if isinstance(value, Mapping):
        return {_check_any(k, depth + 1): _check_any(v, depth + 1) for k, v in value.items()}
    raise _fail("plain data", value)


def _check_int(value: Any, depth: int) -> int:
    if type(value) is not int:  # bool is an int subclass: refuse it here
        raise _fail("int", value)
    return value


def _check_float(value: Any, depth: int) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise _fail("float", value)


def _check_none(value: Any, depth: int) -> None:
    if value is not None:
        raise _fail("None", value)
    return None


def _simple(kind: type, name: str) -> Callable[[Any, int], Any]:
    def check(value: Any, depth: int) -> Any:
        if type(value) is not kind:
            raise _fail(name, value)
        return value

    return check


def _union(checkers: list[Callable[[Any, int], Any]], tp: Any) -> Callable[[Any, int], Any]:
    def check(value: Any, depth: int) -> Any:
        for c in checkers:
            try:
                return c(value, depth)
            except DecodeError:
                continue
        raise _fail(str(tp), value)

    return check


def _homogeneous_tuple(item: Callable[[Any, int], Any]) -> Callable[[Any, int], Any]:
    def check(value: Any, depth: int) -> tuple:
        if not isinstance(value, (list, tuple)):
            raise _fail("array", value)
        if depth > MAX_DEPTH:
            raise DecodeError("value nested too deeply")
        return tuple(item(v, depth + 1) for v in value)

    return check


def _fixed_tuple(items: list[Callable[[Any, int], Any]]) -> Callable[[Any, int], Any]:
    def check(value: Any, depth: int) -> tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise _fail(f"array of {len(items)}", value)
        return tuple(c(v, depth + 1) for c, v in zip(items, value))

    return check


def _dict(key: Callable[[Any, int], Any], val: Callable[[Any, int], Any]) -> Callable[[Any, int], Any]:
    def check(value: Any, depth: int) -> dict:
        if not isinstance(value, Mapping):  # cbor2 gives frozendicts inside tags
            raise _fail("map", value)
        if depth > MAX_DEPTH:
            raise DecodeError("value nested too deeply")
        return {key(k, depth + 1): val(v, depth + 1) for k, v in value.items()}

    return check


def _nested(cls: type) -> Callable[[Any, int], Any]:
    def check(value: Any, depth: int) -> Any:
        if type(value) is not cls:
            raise _fail(cls.__name__, value)
        return value

    return check


# ------------------------------------------------------------------ values <-> CBOR


def _registration(value: Any) -> _Registered:
    entry = _BY_CLASS.get(type(value))
    if entry is None:
        raise EncodeError(f"cannot encode {type(value).__name__}: not a registered message")
    return entry


def _as_tag(value: Any) -> cbor2.CBORTag:
    """A registered message as the CBOR it is sent as: tag CBOR_TAG_MESSAGE, [type_tag, *fields]."""
    entry = _registration(value)
    return cbor2.CBORTag(CBOR_TAG_MESSAGE, [entry.tag, *entry.get_fields(value)])


def _default_encoder(encoder: cbor2.CBOREncoder, value: Any) -> None:
    encoder.encode(_as_tag(value))


def _tag_hook(tag: cbor2.CBORTag, immutable: bool) -> Any:
    """cbor2 (>= 6) calls this for every tag it has no decoder of its own for."""
    if tag.tag != CBOR_TAG_MESSAGE:
        raise DecodeError(f"unexpected CBOR tag {tag.tag}")
    return _build(tag.value)


def _build(raw: Any) -> Any:
    if not isinstance(raw, (list, tuple)) or not raw or type(raw[0]) is not str:
        raise DecodeError("malformed message: expected [tag, fields...]")
    entry = _BY_TAG.get(raw[0])
    if entry is None:
        raise DecodeError(f"unknown message tag {raw[0][:64]!r}")
    if not entry.compiled:
        entry = _compiled(entry)
    values = raw[1:]
    if len(values) != len(entry.field_names):
        raise DecodeError(f"{entry.tag}: expected {len(entry.field_names)} fields, got {len(values)}")
    if entry.exact_types is not None and tuple(map(type, values)) == entry.exact_types:
        checked = values  # every field has its declared type already: one C-level comparison
    else:
        try:
            checked = [c(v, 1) for c, v in zip(entry.checkers, values)]
        except DecodeError as e:
            raise DecodeError(f"{entry.tag}: {e}") from None
    try:
        return entry.cls(*checked)
    except (TypeError, ValueError) as e:  # a __post_init__ validator refused it
        raise DecodeError(f"{entry.tag}: {e}") from None


def encode_value(value: Any) -> bytes:
    """CBOR-encode a message (or plain data containing messages)."""
    try:
        return cbor2.dumps(value, default=_default_encoder)
    except EncodeError:
        raise
    except Exception as e:
        raise EncodeError(f"cannot encode {type(value).__name__}: {e}") from e


def decode_value(data: bytes | bytearray | memoryview) -> Any:
    """Decode CBOR produced by :func:`encode_value`. Raises only :class:`DecodeError`."""
    try:
        return cbor2.loads(
            data,
            tag_hook=_tag_hook,
            max_depth=MAX_DEPTH,
            allow_indefinite=False,
            strict_hashable_types=True,
        )
    except DecodeError:
        raise
    except RecursionError:
        raise DecodeError("value nested too deeply") from None
    except Exception as e:  # cbor2 raises CBORDecodeError, ValueError, TypeError, OverflowError...
        cause = e.__cause__
        if isinstance(cause, DecodeError):
            raise DecodeError(str(cause)) from None
        if cause is not None and not isinstance(cause, Exception):
            # Ctrl-C (KeyboardInterrupt) landing while cbor2 runs our tag hook: cbor2 wraps it
            # in a CBORDecodeError. It is the user stopping the program, not a bad frame.
            raise cause from None
        raise DecodeError(f"malformed CBOR: {type(e).__name__}: {e}") from None


def roundtrip(value: Any) -> Any:
    """Encode then decode: what a peer would see. The simulator uses this by default."""
    return decode_value(encode_value(value))


# ------------------------------------------------------------------------- envelopes

KIND_ONEWAY = 0
KIND_REQUEST = 1
KIND_REPLY = 2
KIND_ERROR = 3
KINDS = (KIND_ONEWAY, KIND_REQUEST, KIND_REPLY, KIND_ERROR)
MAX_ID_CHARS = 128


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Envelope:
    """One message in flight: who sent it, to whom, and how it relates to a call.

    ``kind`` is one-way, request, reply or error; ``rid`` is the request id that a reply or
    error answers (0 for one-way messages).
    """

    src: str
    dst: str
    kind: int
    rid: int
    payload: Any

    def __post_init__(self) -> None:
        assert self.kind in KINDS, "Envelope.kind is one of KINDS"


# The CBOR head of tag CBOR_TAG_MESSAGE (major type 6, a 2-byte tag number), which opens the
# payload of every envelope body.
_MESSAGE_TAG_HEAD = b"\xd9" + struct.pack(">H", CBOR_TAG_MESSAGE)
# Encoded envelope heads: the CBOR array head and src, dst and kind, which repeat frame after
# frame. Bounded: cleared when full (a node talks to a handful of peers).
_ENVELOPE_HEADS: dict[tuple[str, str, int], bytes] = {}
_ENVELOPE_HEADS_MAX = 4096


def _envelope_head(src: str, dst: str, kind: int) -> bytes:
    """CBOR for ``[src, dst, kind, `` (an array of 5 whose last two items follow)."""
    cacheable = type(kind) is int  # True and 1.0 equal 1 as dict keys, but encode differently
    key = (src, dst, kind)
    head = _ENVELOPE_HEADS.get(key) if cacheable else None
    if head is None:
        # cbor2's own bytes for [src, dst, kind, 0], as an array of 5, minus the final 0.
        head = b"\x85" + encode_value([src, dst, kind, 0])[1:-1]
        if cacheable:
            if len(_ENVELOPE_HEADS) >= _ENVELOPE_HEADS_MAX:
                _ENVELOPE_HEADS.clear()
            _ENVELOPE_HEADS[key] = head
    return head


def _encode_uint(n: int) -> bytes:
    """CBOR for a request id: the shortest unsigned-integer form, as cbor2 writes it."""
    if type(n) is not int or not 0 <= n < 1 << 64:
        return encode_value(n)  # not a valid request id: encoded as is, refused by the receiver
    if n < 24:
        return bytes((n,))
    if n < 1 << 8:
        return b"\x18" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\x19" + n.to_bytes(2, "big")
    if n < 1 << 32:
        return b"\x1a" + n.to_bytes(4, "big")
    return b"\x1b" + n.to_bytes(8, "big")


def _encode_body(env: Envelope) -> bytes:
    """``[src, dst, kind, rid, tag(CBOR_TAG_MESSAGE, [type_tag, *fields])]`` in CBOR.

    Byte for byte what ``encode_value`` gives for that list; only the parts that repeat (the
    head, the tag) are not re-encoded for every frame.
    """
    entry = _registration(env.payload)
    try:
        head = _envelope_head(env.src, env.dst, env.kind)
    except TypeError as e:  # an unhashable src/dst/kind: not an envelope that can be sent
        raise EncodeError(f"cannot encode envelope: {e}") from e
    fields = encode_value([entry.tag, *entry.get_fields(env.payload)])
    return head + _encode_uint(env.rid) + _MESSAGE_TAG_HEAD + fields


def _decode_body(body: bytes | memoryview) -> Envelope:
    raw = decode_value(body)
    if not isinstance(raw, list) or len(raw) != 5:
        raise DecodeError("malformed envelope: expected [src, dst, kind, rid, payload]")
    src, dst, kind, rid, payload = raw
    if type(src) is not str or type(dst) is not str or not src or len(src) > MAX_ID_CHARS or len(dst) > MAX_ID_CHARS:
        raise DecodeError("malformed envelope: bad src/dst")
    if type(kind) is not int or kind not in KINDS:
        raise DecodeError("malformed envelope: bad kind")
    if type(rid) is not int or not 0 <= rid < 2**64:
        raise DecodeError("malformed envelope: bad request id")
    if type(payload) not in _BY_CLASS:
        raise DecodeError("malformed envelope: payload is not a registered message")
    return Envelope(src, dst, kind, rid, payload)


# ---------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class FrameCodec:
    """Frames envelopes to bytes and back, under one cluster secret and size bound."""

    secret: bytes | None = None
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    # HMAC-SHA256 already keyed with ``secret``: each frame's MAC starts from a copy of it,
    # which skips hashing the two key pads again (half the cost of a MAC on a small frame).
    _keyed_mac: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)

    # What our frame headers say, and the largest body that fits the bound (set from the above).
    _flags: int = dataclasses.field(default=0, init=False, repr=False, compare=False)
    _trailer_bytes: int = dataclasses.field(default=0, init=False, repr=False, compare=False)
    _max_body_bytes: int = dataclasses.field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        assert self.max_frame_bytes >= 64, "frames must be able to hold a small message"
        if self.secret:
            object.__setattr__(self, "_keyed_mac", _keyed_hmac_sha256(self.secret))
        object.__setattr__(self, "_flags", FLAG_MAC if self.secret else 0)
        object.__setattr__(self, "_trailer_bytes", MAC_BYTES if self.secret else 0)
        object.__setattr__(self, "_max_body_bytes", self.max_frame_bytes - HEADER_BYTES - self._trailer_bytes)

    def _mac(self, signed: bytes | memoryview) -> bytes:
        mac = self._keyed_mac.copy()
        mac.update(signed)
        return mac.digest()

    def encode(self, env: Envelope) -> bytes:
        body = _encode_body(env)
        if len(body) > self._max_body_bytes:
            total = HEADER_BYTES + len(body) + self._trailer_bytes
            raise MessageTooLarge(
                f"{type(env.payload).__name__} encodes to {total} bytes, over the frame bound of {self.max_frame_bytes}"
            )
        signed = HEADER.pack(MAGIC, VERSION, self._flags, len(body)) + body
        return signed + self._mac(signed) if self.secret else signed

    def parse_header(self, header: bytes | memoryview) -> int:
        """Validate a frame header; return the number of bytes that follow it."""
        if len(header) < HEADER_BYTES:
            raise DecodeError("truncated frame header")
        magic, version, flags, length = HEADER.unpack_from(header)
        if magic == MAGIC and version == VERSION and flags == self._flags and length <= self._max_body_bytes:
            return length + self._trailer_bytes  # the usual case: every check passed at once
        if magic != MAGIC:
            raise DecodeError("bad frame magic: not a delos-ref peer")
        if version != VERSION:
            raise DecodeError(f"unsupported frame version {version} (this node speaks {VERSION})")
        if flags & ~FLAG_MAC:
            raise DecodeError(f"unknown frame flags {flags:#x}")
        has_mac = bool(flags & FLAG_MAC)
        if has_mac != bool(self.secret):
            raise BadMac("frame authentication mismatch: " + ("unexpected MAC" if has_mac else "missing MAC"))
        rest = length + (MAC_BYTES if has_mac else 0)
        if HEADER_BYTES + rest > self.max_frame_bytes:
            raise FrameTooLarge(f"frame of {HEADER_BYTES + rest} bytes exceeds the bound of {self.max_frame_bytes}")
        return rest

    def decode(self, frame: bytes | bytearray | memoryview) -> Envelope:
        """Decode exactly one whole frame. Raises only :class:`DecodeError`."""
        frame = memoryview(frame)
        rest = self.parse_header(frame[:HEADER_BYTES])
        if len(frame) != HEADER_BYTES + rest:
            raise DecodeError(f"frame length mismatch: header says {HEADER_BYTES + rest}, got {len(frame)}")
        return self._decode_checked(frame)

    def _decode_checked(self, frame: memoryview) -> Envelope:
        """Decode a whole frame whose header :meth:`parse_header` has accepted."""
        if self.secret:
            end = len(frame) - MAC_BYTES
            if not hmac.compare_digest(self._mac(frame[:end]), frame[end:]):
                raise BadMac("frame MAC does not verify: wrong cluster secret?")
            return _decode_body(frame[HEADER_BYTES:end])
        return _decode_body(frame[HEADER_BYTES:])


class FrameReader:
    """Splits a byte stream into frames, refusing a bad header as soon as it arrives.

    Feed it whatever ``receive_some`` returned; :meth:`feed` returns the whole frames. A
    :class:`DecodeError` from it means the stream is unusable and must be closed.

    Whole frames are decoded straight from the bytes fed (no copy); only the start of a frame
    that has not fully arrived yet is kept, in a buffer, until the rest does. So the caller may
    reuse the buffer it fed once ``feed`` returns.
    """

    def __init__(self, codec: FrameCodec) -> None:
        self._codec = codec
        self._buf = bytearray()  # the start of a frame that has not fully arrived
        self._need: int | None = None  # bytes after the header of the frame in _buf, once known

    def feed(self, data: bytes | bytearray | memoryview) -> list[Envelope]:
        if self._buf:
            self._buf += data
            data = bytes(self._buf)
            self._buf.clear()
        view = data if type(data) is memoryview else memoryview(data)
        end = len(view)
        pos = 0
        out: list[Envelope] = []
        codec = self._codec
        while end - pos >= HEADER_BYTES:
            if self._need is None:
                self._need = codec.parse_header(view[pos : pos + HEADER_BYTES])
            size = HEADER_BYTES + self._need
            if end - pos < size:
                break
            self._need = None
            out.append(codec._decode_checked(view[pos : pos + size]))
            pos += size
        if pos < end:
            self._buf += view[pos:]
        return out
