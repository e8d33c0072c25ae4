"""Trace checker for ``specs/VirtualLog.tla``: the chain in the register, reconfigurations, appends.

The spec's register ``hist`` is the MetaStore register holding encoded chains. The trace
shows its versions wherever a client learns one: a metastore ``Chosen`` (instance v, the
value chosen) or ``ReadDone`` (version v, its data). Each such event *reveals* ``hist[v]``;
the checker decodes the chain (``transports.codec``) into segments
``(start, stop, open, loglet)``, where ``loglet`` is the loglet id from the segment's config
(the spec's ``loglet`` field; the spec's ``cfg`` is the rest of the config).

================  =========================================================================
spec variable     here
================  =========================================================================
hist              ``hist[v]``: every revealed version's chain
lSealed[l]        ``sealed[l]``: LogServers of loglet ``l`` that logged ``Seal``; ``l`` is
                  sealed when a majority of its config's LogServers did
rTail             ``sealed_tails[l]``: every tail a sealed ``CheckTail`` of ``l`` returned
acked             ``acked[vpos] = (loglet, lpos)``: virtuallog ``AppendAck`` events
cache, rpc, won   not tracked (the client's local control state; a client routes with
                  a version it read, so its cache is some ``hist[v]``)
================  =========================================================================

Actions: revealing ``hist[v+1]`` when ``hist[v]`` is known is the write that installed it,
one of :meth:`ExtWrite` (close the active segment at ``start + rTail``, where ``rTail`` is a
sealed check_tail result of its loglet -- ExtCheck -- and open a fresh loglet there),
:meth:`Truncate` (drop leading segments; the implementation drops several at once, the spec
one per step) or :meth:`Modify` (change the loglet or the config of one closed segment,
never its range); the checker tries them in the spec's order and rejects a chain that none
of them produces. ``AppendAck`` -> :meth:`AppendEntry`. Seals and zombie appends are the
NativeLoglet's business (:mod:`.loglet`); here only their outcome (sealed, sealed tails) is
used.

Migration to cold storage (issue 19; the spec's ``Migrate`` part): ``migrate`` logs
``ColdVerified`` (role ``migrate``: ``copy``, the cold loglet's id as its segment config names
it; ``source``, the loglet id of the segment that was copied; ``start``, ``stop``, the
segment's virtual range) once every entry of the copy was read back and compared -- the spec's
``Verify`` succeeding, :meth:`ColdVerified` here, which requires the range to be a closed
segment of ``source`` in a revealed chain (``Migratable``). A :meth:`Modify` that gives a
segment another loglet is legal only if that loglet is such a verified copy of the old one,
over the same range (``CopyReady``); one that keeps the loglet and changes its config (a
skip marker) needs no copy. A wrapper config (one with ``inner_kind`` / ``inner_params``,
like the skip loglet's) names the loglet it wraps: its segment's loglet is the inner one's,
and the wrapper's own name for it (``loglet_id``, which ``AppendAck`` and ``ColdVerified`` may
log) is an alias of it.
After a migration, an acknowledged entry of ``source`` is in place in the cold loglet's
segment.

Invariants after every step: OneChainPerVersion (one chain per revealed version),
SegmentsContiguous, ClosedSegmentsSealed, AckedInPlace (every acknowledged entry not
truncated away lies in its loglet's segment -- or in the segment of its verified cold copy --
of the latest revealed chain, at start + lpos, below the segment's stop), UniquePositions.
The ``metastore_write_without_version`` bug shows up as a chain that is no legal successor
of the version below it (built on an older version), which also moves or loses
acknowledged entries.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from delos_ref.tracecheck.base import Checker

# The register's values are codec messages: a Chain of Segments whose params are loglet
# configs. The codec decodes a message only once its class is registered, which happens when
# the module defining it is imported. The registry imports every one of them (the chain and
# every loglet kind's config), so importing it here is what makes decode_chain work in every
# entry point -- not only in processes that happen to have imported the VirtualLog already.
from delos_ref.virtuallog import registry as _registers_chain_and_config_tags  # noqa: F401
from delos_ref.virtuallog.chain import Chain as _Chain
from transports.codec import DecodeError, decode_value

#: The codec tag of a chain, as it appears in an encoded register value (CBOR text string).
CHAIN_TAG = _Chain.TAG.encode()


class ChainDecodeError(ValueError):
    """A register value that carries the chain tag but does not decode into a chain."""


@dataclass(frozen=True)
class Seg:
    start: int
    stop: int | None  # None: open (the active segment)
    loglet: str
    servers: tuple[str, ...]
    config: str = ""  # the segment's kind and a digest of its params: a config-only change shows
    alias: str = ""  # a wrapper config's own name for the loglet it wraps (what AppendAck logs)

    @property
    def open(self) -> bool:
        return self.stop is None

    def covers(self, p: int) -> bool:
        return self.start <= p and (self.stop is None or p < self.stop)


Chain = tuple[Seg, ...]


def data_bytes(logged: Any) -> bytes:
    """A logged bytes value (:mod:`delos_ref.trace`: utf-8 text or ``{"b64": ...}``) as bytes."""
    if isinstance(logged, dict) and "b64" in logged:
        return base64.b64decode(logged["b64"])
    if isinstance(logged, str):
        return logged.encode("utf-8")
    raise ValueError(f"not a logged bytes value: {logged!r}")


def decode_chain(logged: Any) -> Chain | None:
    """The chain a register value holds; None if it is no chain (another register's value).

    A value that carries the chain's codec tag but does not decode raises
    :class:`ChainDecodeError`: a checker that skipped it would accept the trace vacuously.
    """
    try:
        data = data_bytes(logged)
    except ValueError:
        return None
    if CHAIN_TAG not in data:
        return None
    try:
        value = decode_value(data)
    except DecodeError as e:
        raise ChainDecodeError(f"a register value tagged {CHAIN_TAG.decode()} does not decode: {e}") from None
    segments = getattr(value, "segments", None)
    if segments is None:
        return None  # the tag's bytes inside some other value (e.g. a logged entry)
    out = []
    for seg in segments:
        outer, config = _inner_config(seg.start, seg.kind, seg.params)
        loglet = str(getattr(config, "loglet_id", None) or f"{seg.kind}:{base64.b64encode(seg.params).decode()}")
        alias = str(getattr(outer, "loglet_id", None) or "") if outer is not config else ""
        digest = hashlib.sha256(seg.params).hexdigest()[:16]
        out.append(Seg(seg.start, seg.stop, loglet, tuple(getattr(config, "logservers", ())), f"{seg.kind}:{digest}", alias if alias != loglet else ""))
    return tuple(out)


def _inner_config(start: int, kind: str, params: bytes) -> tuple[Any, Any]:
    """A segment's config and the loglet config it stands for: a wrapper (``inner_kind`` /
    ``inner_params``, e.g. the skip loglet's markers over another loglet) stands for the
    loglet it wraps."""
    outer = None
    for _ in range(8):
        try:
            config = decode_value(params)
        except DecodeError as e:
            raise ChainDecodeError(f"segment at {start}: its {kind} loglet config does not decode: {e}") from None
        outer = config if outer is None else outer
        inner = getattr(config, "inner_params", None)
        if not isinstance(inner, bytes):
            return outer, config
        kind, params = str(getattr(config, "inner_kind", "?")), inner
    raise ChainDecodeError(f"segment at {start}: loglet configs wrapped more than 8 deep")


class VirtualLogChecker(Checker):
    SPEC = "VirtualLog"
    ACTIONS = {
        ("metastore", "Chosen"): "RevealChosen",
        ("metastore", "ReadDone"): "RevealRead",
        ("virtuallog", "AppendAck"): "AppendEntry",
        ("migrate", "ColdVerified"): "ColdVerified",
    }

    def __init__(self) -> None:
        super().__init__()
        self.hist: dict[int, Chain] = {}
        self.sealed: dict[str, set[str]] = {}
        self.servers: dict[str, tuple[str, ...]] = {}
        self.sealed_tails: dict[str, set[int]] = {}
        self.acked: dict[int, tuple[str, int]] = {}
        self.copies: dict[str, tuple[str, int, int]] = {}  # cold loglet -> (source, start, stop)
        self.aliases: dict[str, str] = {}  # a wrapper's name for a loglet -> the loglet
        self.used: dict[str, int] = {}  # loglet -> first version whose chain names it
        self.installs = 0
        self.unlinked = 0  # versions revealed without their predecessor (no successor check)
        self.chain_values = 0  # register values decoded as chains
        self._revealed: tuple[int, Chain] | None = None

    def observe(self, event: dict[str, Any]) -> None:
        role, name = event.get("role"), event.get("event")
        if role == "logserver" and name in ("Seal", "Repair"):
            self.sealed.setdefault(str(event["loglet"]), set()).add(event["node"])
        elif role == "sequencer" and name == "Activate":
            self.servers[str(event["loglet"])] = tuple(event["logservers"])
        elif role == "loglet" and name == "CheckTail" and event.get("sealed"):
            self.sealed_tails.setdefault(str(event["loglet"]), set()).add(int(event["tail"]))

    def is_sealed(self, seg: Seg) -> bool:
        """lSealed[l]: a majority of the loglet's LogServers set the seal bit."""
        servers = seg.servers or self.servers.get(seg.loglet, ())
        if not servers:
            return True  # not a NativeLoglet: its seal is not in the trace (not checked)
        return len(self.sealed.get(seg.loglet, set()) & set(servers)) >= len(servers) // 2 + 1

    # ------------------------------------------------------------------ register

    def step(self, index: int, event: dict[str, Any]) -> str | None:
        """As :meth:`Checker.step`, but a register event is a step only when it reveals a
        chain: the values of other registers are not the VirtualLog's (no step counted)."""
        key = (event.get("role"), event.get("event"))
        if key in (("metastore", "Chosen"), ("metastore", "ReadDone")):
            self.index, self.event, self.action = index, event, self.ACTIONS[key]  # type: ignore[index]
            self._revealed = self.revealed(event)
            if self._revealed is None:
                self.observe(event)
                return None
        return super().step(index, event)

    def revealed(self, e: dict[str, Any]) -> tuple[int, Chain] | None:
        """``(v, hist[v])`` if the event shows a chain: a Chosen instance v or a read of
        version v; a chain that cannot be decoded is a violation, never skipped."""
        if e["event"] == "Chosen":
            value = e.get("value")
            version, logged = int(e["instance"]), value.get("data") if isinstance(value, dict) else None
        else:
            version, logged = int(e["version"]), e.get("value")
        if version <= 0 or logged is None:
            return None
        try:
            chain = decode_chain(logged)
        except ChainDecodeError as error:
            self.require(False, str(error))
        self.chain_values += chain is not None
        return None if chain is None else (version, chain)

    def RevealChosen(self, e: dict[str, Any]) -> None:
        self.reveal(*self._revealed)

    def RevealRead(self, e: dict[str, Any]) -> None:
        self.reveal(*self._revealed)

    def reveal(self, v: int, chain: Chain) -> None:
        if v in self.hist:
            self.require(self.hist[v] == chain, f"two chains for version {v} (OneChainPerVersion)")
            return
        self.hist[v] = chain
        self.check_chain(v, chain)
        for below, above in ((v - 1, v), (v, v + 1)):
            if below in self.hist and above in self.hist:
                self.install(below, above)
        if v - 1 not in self.hist and v > 1:
            self.unlinked += 1

    def check_chain(self, v: int, ch: Chain) -> None:
        """SegmentsContiguous and ClosedSegmentsSealed for hist[v]."""
        self.require(len(ch) >= 1 and ch[-1].open, f"version {v}: the last segment is open (SegmentsContiguous)")
        for i in range(len(ch) - 1):
            s = ch[i]
            self.require(not s.open and s.start <= s.stop and s.stop == ch[i + 1].start, f"version {v}: segment {i} [{s.start}, {s.stop}) and segment {i + 1} are not contiguous (SegmentsContiguous)")
            self.require(self.is_sealed(s), f"version {v}: closed segment {i} (loglet {s.loglet}) is not sealed (ClosedSegmentsSealed)")
        for s in ch:
            self.used.setdefault(s.loglet, v)
            if s.alias:
                self.aliases[s.alias] = s.loglet

    def install(self, v: int, w: int) -> None:
        """hist[w] (w = v + 1) was written over hist[v]: one of ExtWrite, Truncate, Modify."""
        old, new = self.hist[v], self.hist[w]
        why = []
        for action in (self.ExtWrite, self.Truncate, self.Modify):
            reason = action(old, new, w)
            if reason is None:
                self.installs += 1
                return
            why.append(f"{action.__name__}: {reason}")
        self.require(False, f"the chain of version {w} is no successor of version {v}'s (" + "; ".join(why) + ")")

    def ExtWrite(self, old: Chain, new: Chain, w: int) -> str | None:
        if len(new) != len(old) + 1 or new[: len(old) - 1] != old[:-1]:
            return "not the old chain plus one segment"
        closed, fresh, active = new[-2], new[-1], old[-1]
        if (closed.start, closed.loglet) != (active.start, active.loglet) or closed.open:
            return f"does not close the active segment (loglet {active.loglet})"
        rtail = closed.stop - closed.start
        if active.servers:  # a NativeLoglet: its sealed check_tails are in the trace
            if rtail not in self.sealed_tails.get(active.loglet, set()):
                return f"closes loglet {active.loglet} at local tail {rtail}, which no sealed check_tail returned (ExtCheck)"
        if fresh.start != closed.stop or not fresh.open:
            return "the new segment does not start at the stop"
        if self.used.get(fresh.loglet, w) < w:
            return f"the new segment's loglet {fresh.loglet} is not fresh"
        return None

    def Truncate(self, old: Chain, new: Chain, w: int) -> str | None:
        k = len(old) - len(new)
        return None if k >= 1 and old[k:] == new else "not a suffix of the old chain"

    def Modify(self, old: Chain, new: Chain, w: int) -> str | None:
        if len(old) != len(new):
            return "another number of segments"
        diff = [i for i in range(len(old)) if old[i] != new[i]]
        if len(diff) != 1:
            return f"{len(diff)} segments differ"
        i = diff[0]
        if i == len(old) - 1 or (old[i].start, old[i].stop) != (new[i].start, new[i].stop):
            return "changes the active segment or a segment's range"
        if new[i].loglet != old[i].loglet and self.copies.get(new[i].loglet) != (old[i].loglet, old[i].start, old[i].stop):
            return f"gives segment [{old[i].start}, {old[i].stop}) loglet {new[i].loglet}, which is no verified copy of loglet {old[i].loglet} over that range (CopyReady)"
        return None

    # ------------------------------------------------------------------ migration

    def ColdVerified(self, e: dict[str, Any]) -> None:
        """Verify: the cold copy ``loglet`` of ``source``'s segment [start, stop) was read back
        and compared entry by entry. Only a closed segment is copied (Migratable)."""
        missing = [k for k in ("copy", "source", "start", "stop") if k not in e]
        self.require(not missing, f"ColdVerified without {', '.join(missing)}: the copy cannot be told apart from an unverified one")
        cold, source, start, stop = str(e["copy"]), self.aliases.get(str(e["source"]), str(e["source"])), int(e["start"]), int(e["stop"])
        closed = any(s.loglet == source and (s.start, s.stop) == (start, stop) for ch in self.hist.values() for s in ch[:-1])
        self.require(closed, f"cold copy {cold} of loglet {source} over [{start}, {stop}): no revealed chain has that closed segment (Migratable)")
        if "entries" in e:  # how many entries the verification read back
            self.require(int(e["entries"]) == stop - start, f"cold copy {cold} read back {e['entries']} entries, its segment [{start}, {stop}) holds {stop - start}")
        known = self.copies.setdefault(cold, (source, start, stop))
        self.require(known == (source, start, stop), f"cold loglet {cold} verified as a copy of {known} and of {(source, start, stop)}")

    # ------------------------------------------------------------------ appends

    def AppendEntry(self, e: dict[str, Any]) -> None:
        vpos, lpos, start = int(e["vpos"]), int(e["lpos"]), int(e["start"])
        loglet = self.aliases.get(str(e["loglet"]), str(e["loglet"]))  # a wrapper's name: the loglet
        self.require(vpos == start + lpos, f"append acknowledged at {vpos}, not start {start} + loglet position {lpos}")
        self.require(vpos not in self.acked, f"virtual position {vpos} acknowledged twice (UniquePositions)")
        self.acked[vpos] = (loglet, lpos)

    # ------------------------------------------------------------------ invariants

    def invariants(self) -> None:
        if not self.hist:
            return
        latest = max(self.hist)
        ch = self.hist[latest]
        if self.action == "AppendEntry":
            e = self.event
            assert e is not None
            self.acked_in_place(latest, ch, [int(e["vpos"])])
        elif latest in (int(self.event.get("instance", -1)), int(self.event.get("version", -1))):  # type: ignore[union-attr]
            self.acked_in_place(latest, ch, list(self.acked))

    def acked_in_place(self, v: int, ch: Chain, positions: list[int]) -> None:
        for p in positions:
            if p < ch[0].start:
                continue  # truncated away
            loglet, lpos = self.acked[p]
            ok = any(s.covers(p) and self.holds_loglet(s, loglet) and p == s.start + lpos for s in ch)
            self.require(ok, f"acknowledged entry at {p} (loglet {loglet}, position {lpos}) is not in place in the chain of version {v} (AckedInPlace)")

    def holds_loglet(self, s: Seg, loglet: str) -> bool:
        """Segment s holds loglet's entries: it is that loglet's, or a verified cold copy's of
        it over s's range, or a copy's of such a copy (a cold segment skipped, then migrated
        again, is copied from its first copy)."""
        name, seen = s.loglet, set()
        while name != loglet and name in self.copies and name not in seen:
            seen.add(name)
            source, start, stop = self.copies[name]
            if (start, stop) != (s.start, s.stop):
                return False
            name = source
        return name == loglet

    def finish(self) -> None:
        """A trace with acknowledged appends but no chain at all would be checked vacuously
        (AckedInPlace needs a chain): refuse it rather than accept it."""
        super().finish()
        appends = self.steps.get("AppendEntry", 0)
        self.require(
            appends == 0 or bool(self.hist),
            f"{appends} acknowledged appends but no chain revealed (no metastore Chosen/ReadDone of the chain register): "
            "nothing to check them against -- give every node's and client's trace file",
        )
