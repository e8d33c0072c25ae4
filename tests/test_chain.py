"""The chain (delos_ref/virtuallog/chain.py), pure: one test per invariant and per operation
rule of docs/design.md §3 ("only the last segment is open; segments are contiguous") and §4."""

from __future__ import annotations

import pytest

from delos_ref.virtuallog.chain import Chain, Segment, decode_chain, encode_chain, violations
from transports.codec import DecodeError, encode_value

A, B, C = b"a", b"b", b"c"


def chain3() -> Chain:
    """[0,5) a, [5,9) b, [9, inf) c."""
    return Chain.initial("memory", A).extend(5, "memory", B).extend(9, "native", C)


def test_nonempty_a_chain_has_a_segment():
    assert violations(()) and violations(())[0].startswith("nonempty")
    with pytest.raises(ValueError, match="nonempty"):
        Chain(())


def test_one_open_the_last_segment_is_open():
    with pytest.raises(ValueError, match="one-open"):
        Chain((Segment(0, 4, "memory", A),))


def test_one_open_no_earlier_segment_is_open():
    with pytest.raises(ValueError, match="one-open"):
        Chain((Segment(0, None, "memory", A), Segment(0, None, "memory", B)))


def test_contiguous_no_gap_between_segments():
    with pytest.raises(ValueError, match="contiguous"):
        Chain((Segment(0, 4, "memory", A), Segment(5, None, "memory", B)))


def test_contiguous_no_overlap_between_segments():
    with pytest.raises(ValueError, match="contiguous"):
        Chain((Segment(0, 4, "memory", A), Segment(3, None, "memory", B)))


def test_ordered_a_segment_never_stops_before_it_starts():
    with pytest.raises(ValueError, match="ordered"):
        Chain((Segment(4, 2, "memory", A), Segment(2, None, "memory", B)))


def test_base_is_never_negative():
    with pytest.raises(ValueError, match="base"):
        Chain((Segment(-1, None, "memory", A),))


def test_extend_closes_the_active_segment_at_the_sealed_tail():
    c = Chain.initial("memory", A).extend(7, "native", B)
    assert c.segments == (Segment(0, 7, "memory", A), Segment(7, None, "native", B))
    assert c.active == Segment(7, None, "native", B)


def test_extend_allows_an_empty_segment():
    c = Chain.initial("memory", A).extend(0, "memory", B).extend(0, "memory", C)
    assert [s.stop for s in c.segments] == [0, 0, None]
    assert c.segment_for(0) == 2


def test_extend_refuses_a_tail_below_the_active_start():
    with pytest.raises(ValueError, match="below"):
        chain3().extend(8, "memory", A)


def test_truncate_drops_only_segments_wholly_below_the_trim_point():
    c = chain3()
    assert c.truncate(4) == c
    assert c.truncate(5).segments == c.segments[1:]
    assert c.truncate(8).base == 5


def test_truncate_never_drops_the_active_segment():
    c = chain3().truncate(10**9)
    assert c.segments == (Segment(9, None, "native", C),) and c.base == 9


def test_modify_replaces_a_sealed_segment_in_place():
    c = chain3().modify(1, "backup", b"z")
    assert c.segments[1] == Segment(5, 9, "backup", b"z")
    assert c.segments[0] == chain3().segments[0] and c.active == chain3().active


@pytest.mark.parametrize("index", [2, 3, -1])
def test_modify_refuses_the_active_segment_and_bad_indexes(index):
    with pytest.raises(ValueError, match="sealed"):
        chain3().modify(index, "memory", A)


def test_segment_for_routes_each_position_to_its_segment():
    c = chain3()
    assert [c.segment_for(p) for p in range(12)] == [0] * 5 + [1] * 4 + [2] * 3
    assert c.segment_for(10**12) == 2


def test_segment_for_reports_trimmed_positions_below_the_base():
    c = chain3().truncate(5)
    assert c.segment_for(4) is None and c.segment_for(5) == 0


def test_position_mapping_starts_each_loglet_at_zero():
    seg = chain3().segments[1]
    assert seg.to_loglet(5) == 0 and seg.to_loglet(8) == 3 and seg.to_virtual(3) == 8


def test_encoding_roundtrips_through_register_bytes():
    c = chain3()
    data = encode_chain(c)
    assert type(data) is bytes and decode_chain(data) == c


def test_decoding_refuses_a_malformed_chain():
    bad = encode_value(Segment(0, None, "memory", A))
    with pytest.raises(DecodeError):
        decode_chain(bad)
    with pytest.raises(DecodeError):
        decode_chain(b"\xff\x00garbage")


def test_same_loglet_ignores_the_stop():
    c = Chain.initial("memory", A)
    assert c.active.same_loglet(c.extend(3, "memory", B).segments[0])
    assert not c.active.same_loglet(c.extend(3, "memory", B).active)
