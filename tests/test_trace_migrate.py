"""Trace checking of migration and skip (issue 19): the ``Modify`` rule of VirtualLog's trace
checkers (Python, and ``specs/TraceVirtualLog.tla`` under TLC when it is available).

A ``reconfig_modify`` that gives a closed segment another loglet is legal only once the
trace showed that loglet to be a *verified* cold copy of the old one over the same range
(``migrate ColdVerified``: copy, source, start, stop); one that keeps the loglet and changes
its config (a skip marker) needs no copy; the range never changes. After a migration, the
acknowledged entries of the old loglet are in place in the cold copy's segment.

The traces here are made by hand: memory-loglet configs (their seals are not in the trace),
register values encoded as the implementation encodes them.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from delos_ref.tracecheck import TraceViolation, check_events
from delos_ref.tracecheck.tla import prepare
from delos_ref.virtuallog.chain import Chain, Segment
from delos_ref.virtuallog.registry import MemoryLogletConfig
from transports.codec import decode_value, encode_value, message


@message("test.trace_migrate.wrapper")
class WrapperConfig:
    """A config that wraps another loglet's, as the skip loglet's does (markers over it)."""

    inner_kind: str
    inner_params: bytes
    skipped: tuple[int, ...]

    @property
    def loglet_id(self) -> str:
        """The wrapper's own name for the loglet (the skip loglet's: ``<inner>~skip<pos>``)."""
        return decode_value(self.inner_params).loglet_id + "~skip" + ",".join(map(str, self.skipped))


def _seg(start: int, stop: int | None, loglet: str, kind: str = "memory") -> Segment:
    return Segment(start, stop, kind, encode_value(MemoryLogletConfig(loglet)))


def _chosen(version: int, *segments: Segment) -> dict[str, Any]:
    data = base64.b64encode(encode_value(Chain(tuple(segments)))).decode()
    return {"role": "metastore", "event": "Chosen", "node": "c1", "proposer": "c1", "instance": version, "ballot": [1, "c1"], "value": {"writer": "c1", "seq": version, "data": {"b64": data}}}


def _ack(vpos: int, loglet: str, start: int) -> dict[str, Any]:
    return {"role": "virtuallog", "event": "AppendAck", "node": "c1", "client": "c1", "vpos": vpos, "lpos": vpos - start, "start": start, "loglet": loglet}


def _verified(cold: str, source: str, start: int, stop: int) -> dict[str, Any]:
    return {"role": "migrate", "event": "ColdVerified", "node": "m", "copy": cold, "entries": stop - start, "source": source, "start": start, "stop": stop}


# Two entries in loglet A, then A is closed at 2 and B opened there.
BEFORE = [
    _chosen(1, _seg(0, None, "A")),
    _ack(0, "A", 0),
    _ack(1, "A", 0),
    _chosen(2, _seg(0, 2, "A"), _seg(2, None, "B")),
]
MIGRATED = _chosen(3, _seg(0, 2, "C", "cold"), _seg(2, None, "B"))


def test_a_migration_to_a_verified_copy_is_accepted_and_keeps_acked_entries_in_place() -> None:
    steps = check_events("VirtualLog", BEFORE + [_verified("C", "A", 0, 2), MIGRATED, _ack(2, "B", 2)])
    assert steps["ColdVerified"] == 1 and steps["RevealChosen"] == 3 and steps["AppendEntry"] == 3


def test_a_migration_to_an_unverified_copy_is_rejected() -> None:
    with pytest.raises(TraceViolation, match="no verified copy of loglet A"):
        check_events("VirtualLog", BEFORE + [MIGRATED])


def test_a_copy_of_another_range_does_not_allow_the_migration() -> None:
    # A verified copy of [0, 1) only: no closed segment has that range (Migratable) ...
    with pytest.raises(TraceViolation, match="Migratable"):
        check_events("VirtualLog", BEFORE + [_verified("C", "A", 0, 1)])
    # ... and a copy of the right range of another loglet does not make C a copy of A.
    wrong_source = BEFORE + [_chosen(3, _seg(0, 2, "A"), _seg(2, 3, "B"), _seg(3, None, "D"))]
    with pytest.raises(TraceViolation, match="no verified copy"):
        check_events("VirtualLog", wrong_source + [_verified("C", "B", 2, 3), _chosen(4, _seg(0, 2, "C", "cold"), _seg(2, 3, "B"), _seg(3, None, "D"))])


def test_a_copy_of_the_open_segment_is_rejected() -> None:
    """migrate_unsealed: the active segment's loglet is not sealed, its range not final."""
    with pytest.raises(TraceViolation, match="Migratable"):
        check_events("VirtualLog", BEFORE + [_verified("C", "B", 2, 3)])


def test_a_modify_never_changes_the_range() -> None:
    copied = BEFORE + [_verified("C", "A", 0, 2)]
    # The segment alone is changed: its start moves (the chain stays contiguous).
    with pytest.raises(TraceViolation, match="a segment's range"):
        check_events("VirtualLog", copied + [_chosen(3, _seg(1, 2, "C", "cold"), _seg(2, None, "B"))])
    # Its stop moves, and the next segment's start with it: two segments differ.
    with pytest.raises(TraceViolation, match="no successor"):
        check_events("VirtualLog", copied + [_chosen(3, _seg(0, 1, "C", "cold"), _seg(1, None, "B"))])


def test_a_skip_keeps_the_loglet_and_changes_only_its_config() -> None:
    """A skip marker is a config change of the same loglet: no copy needed, range kept."""
    skipped = _chosen(3, _seg(0, 2, "A", "memory+skip"), _seg(2, None, "B"))
    steps = check_events("VirtualLog", BEFORE + [skipped])
    assert steps["RevealChosen"] == 3
    # The same chain again (no change at all) is no Modify: it would need a version of its own.
    with pytest.raises(TraceViolation, match="no successor"):
        check_events("VirtualLog", BEFORE + [_chosen(3, _seg(0, 2, "A"), _seg(2, None, "B"))])


def test_a_wrapper_config_is_the_loglet_it_wraps() -> None:
    """A skip wrapper around A's config (or around the cold copy's) keeps the loglet: no copy
    needed, and A's acknowledged entries stay in place in the wrapped segment."""
    inner = encode_value(MemoryLogletConfig("A"))
    wrapped = Segment(0, 2, "skip", encode_value(WrapperConfig("memory", inner, (1,))))
    steps = check_events("VirtualLog", BEFORE + [_chosen(3, wrapped, _seg(2, None, "B")), _ack(2, "B", 2)])
    assert steps["RevealChosen"] == 3
    # An append resolved in the wrapped segment logs the wrapper's name: an alias of A.
    resolved = BEFORE[:2] + BEFORE[3:] + [_chosen(3, wrapped, _seg(2, None, "B")), {**_ack(1, "A", 0), "loglet": "A~skip1"}]
    assert check_events("VirtualLog", resolved)["AppendEntry"] == 2
    cold = Segment(0, 2, "skip", encode_value(WrapperConfig("cold", encode_value(MemoryLogletConfig("C")), (0,))))
    migrated_then_skipped = BEFORE + [_verified("C", "A", 0, 2), MIGRATED, _chosen(4, cold, _seg(2, None, "B"))]
    assert check_events("VirtualLog", migrated_then_skipped)["RevealChosen"] == 4


# A copy of a copy: A's segment migrated to the cold copy C, one of its entries skipped (a
# wrapper over C), and the skipped segment migrated again, to D, copied from C (the source the
# migration logs is the wrapper's name for C). A's acknowledged entries are in place in D.
SKIPPED_C = Segment(0, 2, "skip", encode_value(WrapperConfig("cold", encode_value(MemoryLogletConfig("C")), (0,))))
COPY_OF_COPY = BEFORE + [
    _verified("C", "A", 0, 2),
    MIGRATED,
    _chosen(4, SKIPPED_C, _seg(2, None, "B")),
    _verified("D", "C~skip0", 0, 2),
    _chosen(5, _seg(0, 2, "D", "cold"), _seg(2, None, "B")),
    _ack(2, "B", 2),
]


def test_a_copy_of_a_copy_keeps_the_acknowledged_entries_in_place() -> None:
    steps = check_events("VirtualLog", COPY_OF_COPY)
    assert steps["ColdVerified"] == 2 and steps["RevealChosen"] == 5 and steps["AppendEntry"] == 3
    # Without D's verification, the second migration is refused.
    with pytest.raises(TraceViolation, match="no verified copy"):
        check_events("VirtualLog", COPY_OF_COPY[:7] + COPY_OF_COPY[8:])


def test_a_verification_event_without_its_range_is_rejected() -> None:
    event = {k: v for k, v in _verified("C", "A", 0, 2).items() if k not in ("source", "stop")}
    with pytest.raises(TraceViolation, match="without source, stop"):
        check_events("VirtualLog", BEFORE + [event])
    short = {**_verified("C", "A", 0, 2), "entries": 1}
    with pytest.raises(TraceViolation, match="read back 1 entries"):
        check_events("VirtualLog", BEFORE + [short])


def test_the_prepared_trace_carries_the_copies_and_the_configs() -> None:
    prepared = prepare("VirtualLog", BEFORE + [_verified("C", "A", 0, 2), MIGRATED])
    verified = [line for line in prepared if line["event"] == "ColdVerified"]
    assert verified == [{"event": "ColdVerified", "loglet": "C", "source": "A", "start": 0, "stop": 2}]
    last = [line for line in prepared if line["event"] == "Reveal"][-1]
    assert last["chain"][0]["loglet"] == "C" and last["chain"][0]["config"].startswith("cold:")


def _tlc_or_skip() -> None:
    from delos_ref.tracecheck.tla import tlc_command

    try:
        tlc_command()
    except Exception:
        pytest.skip("TLC is not available (TLA2TOOLS_JAR / TLA_COMMUNITY_JAR, or tlc on PATH)")


def test_tlc_accepts_a_verified_migration_and_rejects_an_unverified_one() -> None:
    from delos_ref.tracecheck.tla import validate_with_tlc

    _tlc_or_skip()
    ok = validate_with_tlc("VirtualLog", BEFORE + [_verified("C", "A", 0, 2), MIGRATED, _ack(2, "B", 2)])
    assert ok.accepted, ok.report
    bad = validate_with_tlc("VirtualLog", BEFORE + [MIGRATED])
    assert not bad.accepted and bad.event is not None and bad.event["event"] == "Chosen", bad.report
    skip = validate_with_tlc("VirtualLog", BEFORE + [_chosen(3, _seg(0, 2, "A", "memory+skip"), _seg(2, None, "B"))])
    assert skip.accepted, skip.report


def test_tlc_accepts_a_copy_of_a_copy_and_rejects_an_unverified_second_copy() -> None:
    """The TLA+ trace spec agrees with the Python checker on a cold segment migrated again:
    A's acknowledged entries are in place in D, a verified copy of C, itself one of A's."""
    from delos_ref.tracecheck.tla import validate_with_tlc

    _tlc_or_skip()
    ok = validate_with_tlc("VirtualLog", COPY_OF_COPY)
    assert ok.accepted, ok.report
    bad = validate_with_tlc("VirtualLog", COPY_OF_COPY[:7] + COPY_OF_COPY[8:])
    assert not bad.accepted and bad.event is not None and bad.event["event"] == "Chosen", bad.report
