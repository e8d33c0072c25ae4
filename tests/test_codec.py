"""The codec: typed messages, frames, and the one rule -- decoding any bytes yields a message
or raises DecodeError, never anything else (transports/codec.py)."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transports.codec import (
    CBOR_TAG_MESSAGE,
    HEADER,
    KIND_REQUEST,
    MAGIC,
    MAX_DEPTH,
    VERSION,
    BadMac,
    DecodeError,
    EncodeError,
    Envelope,
    FrameCodec,
    FrameReader,
    FrameTooLarge,
    MessageTooLarge,
    decode_value,
    encode_value,
    message,
)


@message("test.inner")
class Inner:
    n: int
    label: str


@message("test.sample")
class Sample:
    seq: int
    data: bytes
    names: tuple[str, ...]
    inner: Inner | None
    extra: dict[str, int]
    ratio: float = 0.5
    flag: bool = False


SECRET = b"s" * 32
samples = st.builds(
    Sample,
    seq=st.integers(-(2**63), 2**63 - 1),
    data=st.binary(max_size=200),
    names=st.lists(st.text(max_size=10), max_size=5).map(tuple),
    inner=st.none() | st.builds(Inner, st.integers(0, 10**6), st.text(max_size=8)),
    extra=st.dictionaries(st.text(max_size=5), st.integers(0, 100), max_size=4),
    ratio=st.floats(allow_nan=False),
    flag=st.booleans(),
)


def frame_of(msg, secret=SECRET) -> bytes:
    return FrameCodec(secret=secret).encode(Envelope("n1", "n2", KIND_REQUEST, 9, msg))


@given(samples)
def test_roundtrip_preserves_every_field(msg):
    codec = FrameCodec(secret=SECRET)
    env = codec.decode(frame_of(msg))
    assert env == Envelope("n1", "n2", KIND_REQUEST, 9, msg)


@given(
    samples,
    st.text(min_size=1, max_size=12),
    st.text(max_size=12),
    st.sampled_from([0, 1, 2, 3, True, False]),  # a bool kind encodes as a bool, never as 0/1
    st.integers(-5, 2**64 + 5),
)
def test_envelope_bodies_are_byte_for_byte_cbor2s_encoding_of_the_five_item_list(msg, src, dst, kind, rid):
    """The codec writes the repeating head of a body from a cache; the bytes must not change."""
    import cbor2

    env = Envelope(src, dst, kind, rid, msg)
    tagged = cbor2.CBORTag(CBOR_TAG_MESSAGE, [Sample.TAG, *(getattr(msg, f.name) for f in dataclasses.fields(msg))])
    assert FrameCodec().encode(env)[HEADER.size :] == encode_value([src, dst, kind, rid, tagged])


def test_a_bool_kind_is_not_sent_as_the_int_kind_encoded_before_it():
    for kind in (1, True, 0, False):  # True == 1 and False == 0 as cache keys
        body = FrameCodec().encode(Envelope("n1", "n2", kind, 9, Inner(1, "x")))[HEADER.size :]
        assert type(decode_value(body)[2]) is type(kind)


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_random_bytes_only_ever_raise_decode_error(data):
    for secret in (None, SECRET):
        with pytest.raises(DecodeError):
            FrameCodec(secret=secret).decode(data)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_random_cbor_body_with_valid_header_only_raises_decode_error(body):
    frame = HEADER.pack(MAGIC, VERSION, 0, len(body)) + body
    with pytest.raises(DecodeError):
        FrameCodec().decode(frame)


@given(samples, st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_truncated_frames_raise_decode_error(msg, data):
    frame = frame_of(msg)
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(DecodeError):
        FrameCodec(secret=SECRET).decode(frame[:cut])


@given(samples, st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_flipped_bits_are_caught_by_the_mac(msg, data):
    frame = bytearray(frame_of(msg))
    i = data.draw(st.integers(0, len(frame) - 1))
    frame[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(DecodeError):
        FrameCodec(secret=SECRET).decode(bytes(frame))


@given(samples, st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_flipped_bits_without_mac_yield_a_message_or_decode_error(msg, data):
    frame = bytearray(frame_of(msg, secret=None))
    i = data.draw(st.integers(0, len(frame) - 1))
    frame[i] ^= 1 << data.draw(st.integers(0, 7))
    try:
        env = FrameCodec().decode(bytes(frame))
    except DecodeError:
        return
    assert isinstance(env.payload, (Sample, Inner))  # a well-typed message, never junk


def test_wrong_secret_is_a_bad_mac():
    with pytest.raises(BadMac, match="wrong cluster secret"):
        FrameCodec(secret=b"other").decode(frame_of(Inner(1, "x")))


def test_missing_mac_is_refused_by_a_node_with_a_secret():
    with pytest.raises(BadMac):
        FrameCodec(secret=SECRET).decode(frame_of(Inner(1, "x"), secret=None))


def test_huge_length_field_is_refused_from_the_header_alone():
    header = HEADER.pack(MAGIC, VERSION, 0, 2**32 - 1)
    with pytest.raises(FrameTooLarge):
        FrameCodec().parse_header(header)
    reader = FrameReader(FrameCodec())
    with pytest.raises(FrameTooLarge):
        reader.feed(header)  # no body needed: refused before waiting for 4 GiB


def test_oversize_message_is_refused_on_encode():
    codec = FrameCodec(max_frame_bytes=1024)
    with pytest.raises(MessageTooLarge, match="over the frame bound"):
        codec.encode(Envelope("a", "b", 0, 0, Sample(1, b"x" * 2000, (), None, {})))


def test_unknown_tag_is_a_decode_error():
    import cbor2

    body = cbor2.dumps(["a", "b", 0, 0, cbor2.CBORTag(27001, ["no.such.tag", 1])])
    with pytest.raises(DecodeError, match="unknown message tag"):
        FrameCodec().decode(HEADER.pack(MAGIC, VERSION, 0, len(body)) + body)


def test_wrong_field_type_is_a_decode_error():
    import cbor2

    body = cbor2.dumps(["a", "b", 0, 0, cbor2.CBORTag(27001, ["test.inner", "not-an-int", "x"])])
    with pytest.raises(DecodeError, match="expected int"):
        FrameCodec().decode(HEADER.pack(MAGIC, VERSION, 0, len(body)) + body)


def test_ctrl_c_during_a_decode_stays_a_keyboard_interrupt(monkeypatch):
    """cbor2 wraps whatever the tag hook raises in a CBORDecodeError, KeyboardInterrupt included.
    Ctrl-C landing there once turned into "malformed CBOR" and a traceback in `append`."""
    import transports.codec as codec

    def interrupted(raw):
        raise KeyboardInterrupt

    monkeypatch.setattr(codec, "_build", interrupted)
    with pytest.raises(KeyboardInterrupt):
        decode_value(encode_value(Inner(1, "x")))


def test_bool_is_not_accepted_as_int():
    with pytest.raises(DecodeError):
        decode_value(encode_value(Inner(True, "x")))  # type: ignore[arg-type]


def test_deep_nesting_is_bounded():
    deep = b"\x81" * (MAX_DEPTH + 50) + b"\x00"
    body_prefix = b"\x85\x61a\x61b\x00\x00"  # [src, dst, kind, rid, <deep>]
    frame_body = body_prefix + deep
    with pytest.raises(DecodeError):
        FrameCodec().decode(HEADER.pack(MAGIC, VERSION, 0, len(frame_body)) + frame_body)


def test_bad_magic_and_version_and_flags():
    good = frame_of(Inner(1, "x"), secret=None)
    for bad in (b"XX" + good[2:], good[:2] + bytes([VERSION + 1]) + good[3:], good[:3] + b"\x80" + good[4:]):
        with pytest.raises(DecodeError):
            FrameCodec().decode(bad)


def test_frame_reader_splits_a_stream_fed_byte_by_byte():
    codec = FrameCodec(secret=SECRET)
    frames = b"".join(codec.encode(Envelope("a", "b", 0, 0, Inner(i, "x"))) for i in range(5))
    reader = FrameReader(codec)
    got = []
    for i in range(len(frames)):
        got.extend(reader.feed(frames[i : i + 1]))
    assert [e.payload.n for e in got] == [0, 1, 2, 3, 4]


def test_registering_a_tag_twice_for_another_class_is_refused():
    with pytest.raises(EncodeError):

        @message("test.inner")
        class Other:
            x: int


def test_unregistered_payload_cannot_be_encoded():
    with pytest.raises(EncodeError):
        FrameCodec().encode(Envelope("a", "b", 0, 0, object()))


def test_header_layout_is_stable():
    frame = frame_of(Inner(1, "x"), secret=None)
    magic, version, flags, length = struct.unpack(">2sBBI", frame[:8])
    assert (magic, version, flags, length) == (MAGIC, VERSION, 0, len(frame) - 8)


@message("test.with_defaults_and_check")
class _Checked:
    n: int
    label: str = "none"
    parts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n >= 0")


def test_messages_built_by_the_fast_init_behave_like_the_dataclass_ones():
    """@message installs fast_frozen_init's __init__: the same signature, defaults,
    keywords, __post_init__ validation, immutability, equality and hash as the dataclass's."""
    assert "__set0" in _Checked.__init__.__code__.co_names  # ours (slot stores), not the dataclass's
    assert "__set0" in Envelope.__init__.__code__.co_names
    a, b = _Checked(1), _Checked(n=1, label="none", parts=())
    assert a == b and hash(a) == hash(b) and (a.n, a.label, a.parts) == (1, "none", ())
    assert _Checked(2, "x", (3,)) == _Checked(label="x", parts=(3,), n=2)
    with pytest.raises(ValueError):
        _Checked(-1)  # __post_init__ still runs
    with pytest.raises(TypeError):
        _Checked()  # a field without a default is still required
    with pytest.raises(TypeError):
        _Checked(1, nope=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.n = 5  # type: ignore[misc]
    assert repr(_Checked(1)) == "_Checked(n=1, label='none', parts=())"
    codec = FrameCodec(secret=b"k")
    env = Envelope("a", "b", KIND_REQUEST, 9, _Checked(4, "y", (1, 2)))
    assert codec.decode(codec.encode(env)) == env
    with pytest.raises(DecodeError):  # the validator refuses it on the way in, as before
        decode_value(encode_value(_Checked(0)).replace(b"\x00", b"\x20", 1))
