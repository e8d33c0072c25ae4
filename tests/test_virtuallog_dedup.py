"""Exactly-once appends (delos_ref/virtuallog/client.py ``_resolve``, entry.py): an append whose
outcome is unknown is looked for in its sealed segment before it is sent again.

The loglets here are memory loglets that can *lose a reply*: the entry lands, but the append
raises an error that says it may have landed -- what a NativeLoglet does when its sequencer
dies after storing, or when the chain moves on while an append is in flight (issue 17, item 1:
``e346`` acknowledged at 346 and also found at 345, the last entry of the sealed segment).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Awaitable, Callable

import pytest

from delos_ref.loglet.api import MAX_ENTRY_BYTES, LogletUnavailable, SealedError
from delos_ref.loglet.memory import MemoryLoglet
from delos_ref.virtuallog import AppendOutcomeUnknown, LogletRegistry, MemoryLogletConfig, VirtualLog, VirtualLogOptions
from delos_ref.virtuallog.client import BUG_REAPPEND_UNKNOWN
from delos_ref.virtuallog.entry import MAX_ENVELOPE_BYTES, EntryId, decode_entry, encode_entry
from delos_ref.virtuallog.registry import LogletKind
from paxos.register import MetaStoreClient
from tests.test_virtuallog import FAST, SERVERS, cluster, read_all

OPTIONS = VirtualLogOptions(roll_forward_s=0.5, poll_s=0.02)


class LossyLoglet(MemoryLoglet):
    """A memory loglet whose next append can lose its reply: ``lose`` is "landed" (stored,
    then the reply is lost) or "dropped" (lost before it landed); ``meanwhile`` runs between
    the landing and the error (e.g. another client reconfigures); ``sealed`` makes the error
    a SealedError, as when a seal overtakes an append in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.lose: str | None = None
        self.sealed = False
        self.meanwhile: Callable[[], Awaitable[None]] | None = None

    async def append(self, entry: bytes) -> int:
        lose, self.lose = self.lose, None
        if lose == "landed":
            await super().append(entry)
        elif lose is None:
            return await super().append(entry)
        if self.meanwhile is not None:
            await self.meanwhile()
        if self.sealed:
            raise SealedError("sealed while the append was in flight", may_have_landed=True)
        raise LogletUnavailable("the reply was lost", may_have_landed=True)


@dataclasses.dataclass
class Lossy:
    loglets: dict[str, LossyLoglet] = dataclasses.field(default_factory=dict)

    def get(self, loglet_id: str) -> LossyLoglet:
        return self.loglets.setdefault(loglet_id, LossyLoglet())

    def kind(self) -> LogletKind:
        return LogletKind("lossy", MemoryLogletConfig, build=lambda cfg: self.get(cfg.loglet_id), clone=lambda cfg, fresh: MemoryLogletConfig(fresh))

    def client(self, c: Any, name: str, bugs: frozenset[str] = frozenset()) -> VirtualLog:
        node = c.sim.client(name)
        metastore = MetaStoreClient(node.endpoint, SERVERS, node.rng("metastore"), name, timeouts=FAST)
        return VirtualLog(metastore, LogletRegistry((self.kind(),)), name, options=OPTIONS, bugs=bugs)


async def entries(vlog: VirtualLog, lo: int = 0) -> list[bytes]:
    return [e for _, e in await read_all(vlog, lo)]


async def test_an_append_that_landed_but_lost_its_reply_is_found_where_it_landed(autojump_clock):
    """The unsealed case: the chain still has the segment active, so the client cannot know
    yet (the entry may still land). It seals the segment (roll-forward), reads the range where
    the entry can be, finds it, and returns that position: it is not appended again."""
    lossy = Lossy()
    async with cluster() as c:
        v = lossy.client(c, "c1")
        await v.bootstrap(MemoryLogletConfig("m0"))
        assert [await v.append(b"a%d" % i) for i in range(2)] == [0, 1]
        lossy.get("m0").lose = "landed"
        assert await v.append(b"x") == 2
        assert await entries(v) == [b"a0", b"a1", b"x"]
        assert v.stats["found"] == 1 and v.stats["roll_forwards"] == 1
        assert [(s.start, s.stop) for s in v.chain.segments] == [(0, 3), (3, None)]
        assert await v.append(b"y") == 3  # the next append goes to the new segment


async def test_an_append_that_never_landed_is_appended_once_on_the_new_segment(autojump_clock):
    lossy = Lossy()
    async with cluster() as c:
        v = lossy.client(c, "c1")
        await v.bootstrap(MemoryLogletConfig("m0"))
        await v.append(b"a0")
        lossy.get("m0").lose = "dropped"
        assert await v.append(b"x") == 1
        assert await entries(v) == [b"a0", b"x"]
        assert v.stats["found"] == 0 and v.stats["resolved"] == 1


async def test_a_seal_that_overtakes_an_append_in_flight_then_two_reconfigurations(autojump_clock):
    """The issue's case: the entry lands as the last one of a segment that another client
    seals and closes, and the chain moves on twice before the appender looks. It finds the
    entry in the closed segment, below its stop."""
    lossy = Lossy()
    async with cluster() as c:
        v, w = lossy.client(c, "c1"), lossy.client(c, "c2")
        await v.bootstrap(MemoryLogletConfig("m0"))
        await v.append(b"a0")

        async def two_reconfigurations() -> None:
            await w.reconfig_extend(MemoryLogletConfig("m1"))
            await w.append(b"w0")
            await w.reconfig_extend(MemoryLogletConfig("m2"))

        m0 = lossy.get("m0")
        m0.lose, m0.sealed, m0.meanwhile = "landed", True, two_reconfigurations
        assert await v.append(b"x") == 1
        assert await entries(v) == [b"a0", b"x", b"w0"]
        assert [(s.start, s.stop) for s in v.chain.segments] == [(0, 2), (2, 3), (3, None)]
        assert v.stats["found"] == 1 and v.stats["roll_forwards"] == 0


async def test_the_outcome_stays_unknown_when_the_range_was_trimmed_away(autojump_clock):
    lossy = Lossy()
    async with cluster() as c:
        v, w = lossy.client(c, "c1"), lossy.client(c, "c2")
        await v.bootstrap(MemoryLogletConfig("m0"))
        await v.append(b"a0")

        async def reconfigure_and_trim() -> None:
            await w.reconfig_extend(MemoryLogletConfig("m1"))
            await w.append(b"w0")
            await w.prefix_trim(2)
            assert await w.reconfig_truncate() is True  # m0's segment [0, 2) is dropped

        m0 = lossy.get("m0")
        m0.lose, m0.sealed, m0.meanwhile = "landed", True, reconfigure_and_trim
        with pytest.raises(AppendOutcomeUnknown, match="trimmed"):
            await v.append(b"x")
        assert await entries(w, 2) == [b"w0"] and w.chain.base == 2


async def test_bug_reappend_unknown_stores_the_entry_twice(autojump_clock):
    """The bug switch: the behaviour before _resolve (and what the simulator must catch)."""
    lossy = Lossy()
    async with cluster() as c:
        v = lossy.client(c, "c1", bugs=frozenset([BUG_REAPPEND_UNKNOWN]))
        await v.bootstrap(MemoryLogletConfig("m0"))
        lossy.get("m0").lose = "landed"
        assert await v.append(b"x") == 1
        assert await entries(v) == [b"x", b"x"]


# ------------------------------------------------------------------------- the envelope


def test_the_envelope_round_trips_and_costs_a_few_bytes():
    ident = EntryId("n1@0123456789abcdef", 300)  # an incarnation id as process.py makes them
    stored = encode_entry(ident, b"e346")
    assert decode_entry(stored) == (ident, b"e346")
    assert len(stored) - len(b"e346") == 1 + 1 + 19 + 2  # magic, length, writer, LEB128(300)
    assert len(encode_entry(EntryId("c1", 0), b"")) == 5
    assert len(encode_entry(EntryId("w" * 255, (1 << 64) - 1), b"")) == MAX_ENVELOPE_BYTES


@pytest.mark.parametrize("raw", [b"", b"plain", b"\xd1", b"\xd1\x05ab", b"\xd1\x01a\x80\x80", b"\xd1\x02\xff\xfe\x01", b"\xd1\x00\x01x"])
def test_bytes_that_are_no_envelope_are_handed_over_as_stored(raw):
    assert decode_entry(raw) == (None, raw)


async def test_readers_get_the_users_bytes_unchanged_even_if_they_look_like_an_envelope(autojump_clock):
    tricky = [b"", b"\xd1\x02c1\x00x", encode_entry(EntryId("c1", 0), b"y"), bytes(range(256))]
    lossy = Lossy()
    async with cluster() as c:
        v = lossy.client(c, "c1")
        await v.bootstrap(MemoryLogletConfig("m0"))
        for e in tricky:
            await v.append(e)
        assert await entries(v) == tricky
        stored = lossy.get("m0")._entries
        assert [decode_entry(s) for s in stored] == [(EntryId("c1", i), e) for i, e in enumerate(tricky)]


async def test_an_entry_too_large_with_its_envelope_is_refused_before_sending(autojump_clock):
    lossy = Lossy()
    async with cluster() as c:
        v = lossy.client(c, "c1")
        await v.bootstrap(MemoryLogletConfig("m0"))
        with pytest.raises(ValueError, match="envelope"):
            await v.append(b"z" * MAX_ENTRY_BYTES)
        assert await v.append(b"ok") == 0  # the refused entry took no sequence number... and no position
        assert lossy.get("m0")._entries == [encode_entry(EntryId("c1", 0), b"ok")]
