"""Live migration of sealed segments to cold storage, and skipping a poison entry: the two
uses of ``reconfig_modify`` (Delos, OSDI 2020, §3.2 "reconfigModify", §7).

A sealed segment's entries never change. ``reconfig_modify`` may therefore point it at a
*copy* -- here a :class:`~delos_ref.loglet.cold.ColdLoglet` over files in a cold store -- and
the LogServers that held it may then drop it. The danger is all in the word *copy*: the chain
must never name a loglet that does not hold exactly the segment's entries, or readers get
wrong data and nobody can tell. So a migration keeps these rules, in this order:

1. **Only a sealed segment.** A segment is migrated only when the chain has closed it (its
   ``stop`` is fixed: nothing more can land in ``[start, stop)``). The active segment is
   never copied. (Bug switch ``migrate_unsealed``: the active segment is copied up to its
   current tail, then sealed and modified: entries that land in between are lost.)
2. **Copy, then verify, then install.** Every entry is read from the segment's loglet and
   written to segment files (each written atomically, ``cold.py``); then every entry is
   *read back from the store* through a fresh cold loglet and compared, by SHA-256, with
   the source; the count must be ``stop - start``. Only a verified copy is installed.
   (Bug switch ``migrate_before_verified``: install first, verify after.)
3. **Install on the chain it was checked against.** ``reconfig_modify`` is a conditional
   write: the segment must still be in the chain exactly as it was copied (same range, same
   loglet). A lost race (another reconfiguration won) re-fetches the chain and re-checks: if
   the segment is still there unchanged, the verified copy is installed on the new chain; if
   another migration moved it, or a truncate dropped it, there is nothing to do.
4. **Drop last.** Only once the chain names the copy does the source loglet trim the range
   (``prefix_trim``: a NativeLoglet's LogServers purge those entries from LMDB). A reader with
   an old chain that meets the trim re-fetches the chain and reads the copy.

The manifest (``<copy id>.manifest``) is written after the files and before the install, so
every installed copy has one; a copy that lost its race has one too and is simply unused.
After the install, an empty ``<copy id>.installed`` marks the copy a chain named.

**Point-in-time restore** (:func:`restore_plan`, ``delos-ref restore``): the copies in a
cold store, by virtual range, are a log's prefix. A new cluster whose chain is those cold
segments up to a position ``at``, then a fresh NativeLoglet from ``at``, replays the log as
it was at ``at``. It needs the log's prefix ``[0, at)``: the cold store holds what was
migrated; positions not migrated yet are only on the live cluster, and
:func:`read_live` reads them from its VirtualLog (``restore --live DIR``), as stored, so
that :func:`live_segment` makes them one more (verified) cold copy of the restored chain.

Trace events (role ``migrate``): ``ColdWrite`` (copy, source, start, stop, files, bytes),
``ColdVerified`` (copy, entries, source, start, stop), ``ColdInstalled`` (copy, index, start, stop, version),
``ColdLostRace`` (copy, start), ``ColdDropped`` (source, start, stop). ``ColdInstalled`` is
the spec's ``Modify`` action; ``ColdVerified`` before it is its guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from delos_ref.loglet.api import LogletError, TrimmedError
from delos_ref.loglet.cold import ColdLoglet, ColdStore, read_manifests, write_copy
from delos_ref.loglet.cold_format import MANIFEST_SUFFIX, ColdLogletConfig, ColdStoreError, encode_manifest, sha256
from delos_ref.loglet.skip import SkipLogletConfig, SkippedEntry
from delos_ref.virtuallog.chain import Chain, Segment
from delos_ref.virtuallog.client import VirtualLog
from transports.codec import decode_value, encode_value

#: Bug switch (rule 1): copy the active segment up to its current tail, then seal it.
BUG_MIGRATE_UNSEALED = "migrate_unsealed"
#: Bug switch (rule 2): install the chain before the copy is verified.
BUG_MIGRATE_BEFORE_VERIFIED = "migrate_before_verified"
MIGRATE_BUGS = {
    BUG_MIGRATE_UNSEALED: "migration copies the active segment up to its tail before sealing it (later entries are lost)",
    BUG_MIGRATE_BEFORE_VERIFIED: "migration installs the chain naming the copy before reading the copy back",
}
#: The kind a migration produces (and never migrates again).
COLD = "cold"
SKIP = "skip"
#: The empty file that marks a copy a chain installed (written after the install).
INSTALLED_SUFFIX = ".installed"
#: Bound on install attempts per segment (each after a lost race).
MAX_ATTEMPTS = 8


class MigrationError(Exception):
    """A migration step failed (the source unreadable, the copy did not verify). The chain
    was not changed by the failed step: it never names an unverified copy."""


class CopyMismatch(MigrationError):
    """The copy read back differs from the source: it is never installed."""


@dataclass(frozen=True, slots=True)
class Migrated:
    """One segment moved to cold storage: ``[start, stop)`` now read from ``config``."""

    start: int
    stop: int
    config: ColdLogletConfig
    installed: bool  # False: someone else moved or dropped the segment first


def candidates(chain: Chain, below: int, *, bugs: frozenset[str] = frozenset()) -> list[Segment]:
    """The segments to migrate for ``--below below``: sealed (closed), wholly below it, not
    empty, not cold already. With ``migrate_unsealed`` also the active one (rule 1)."""
    out = [s for s in chain.segments[:-1] if s.stop <= below and s.stop > s.start and s.kind != COLD]
    if BUG_MIGRATE_UNSEALED in bugs and chain.active.start < below and chain.active.kind != COLD:
        out.append(chain.active)
    return out


def keep_last(chain: Chain, keep: int) -> int:
    """``--auto --keep N``: the position below which every sealed segment but the last
    ``keep`` non-empty ones is migrated (the chain's base if there is nothing to move)."""
    assert keep >= 0, "keep_last: keep >= 0"
    closed = [s for s in chain.segments[:-1] if s.stop > s.start]
    if len(closed) <= keep:
        return chain.base
    return closed[len(closed) - keep - 1].stop


async def migrate_below(
    vlog: VirtualLog,
    store: ColdStore,
    below: int,
    copy_id: Callable[[Segment], str],
    *,
    bugs: frozenset[str] = frozenset(),
    drop: bool = True,
    emit: Callable[..., None] | None = None,
) -> list[Migrated]:
    """Move every sealed segment wholly below ``below`` into ``store`` (rules 1-4). Segments
    are taken one at a time, oldest first; ``copy_id(segment)`` names each new copy (unique:
    a copy's files are immutable). Raises :class:`MigrationError` (or a loglet/MetaStore
    error) on the first segment that cannot be moved; those before it stay moved."""
    emit = emit or (lambda event, **fields: None)
    out: list[Migrated] = []
    for seg in candidates(await vlog.refresh(), below, bugs=bugs):
        out.append(await migrate_segment(vlog, store, seg, copy_id(seg), bugs=bugs, drop=drop, emit=emit))
    return out


async def migrate_segment(vlog: VirtualLog, store: ColdStore, seg: Segment, copy_id: str, *, bugs: frozenset[str], drop: bool, emit: Callable[..., None]) -> Migrated:
    """Copy, verify, install and drop one segment (see the module docstring)."""
    source = vlog.registry.loglet(seg)
    if seg.stop is None:  # only with the bug migrate_unsealed: copy what is there, then close it
        seg, entries = await _copy_then_seal(vlog, seg, copy_id)
    else:
        entries = await read_segment(source, seg.stop - seg.start)
    config = await write_copy(store, copy_id, entries)
    emit("ColdWrite", copy=copy_id, source=seg.kind, start=seg.start, stop=seg.stop, files=len(config.files), bytes=config.size)
    if BUG_MIGRATE_BEFORE_VERIFIED not in bugs:
        await verify_copy(store, config, entries, seg, emit)
    source_info = {"kind": seg.kind, "loglet": _loglet_id(vlog, seg), "version": vlog.version}
    await store.put(copy_id + MANIFEST_SUFFIX, encode_manifest(config, seg.start, source_info))
    installed = await install(vlog, seg, config, emit, loose=BUG_MIGRATE_UNSEALED in bugs)
    if installed:
        await store.put(copy_id + INSTALLED_SUFFIX, b"")  # restore prefers the copies a chain named
    if BUG_MIGRATE_BEFORE_VERIFIED in bugs:
        await verify_copy(store, config, entries, seg, emit)  # the bug: too late to matter
    if installed and drop:
        await _drop(source, seg, emit)
    return Migrated(seg.start, seg.stop, config, installed)


async def _copy_then_seal(vlog: VirtualLog, seg: Segment, copy_id: str) -> tuple[Segment, list[bytes]]:
    """The bug ``migrate_unsealed``: copy the active segment up to its tail *now*, then seal
    it (a reconfiguration onto a clone). Entries that land between the two are not in the
    copy, which believes the segment stops at the tail it saw."""
    source = vlog.registry.loglet(seg)
    tail, _sealed = await source.check_tail()
    entries = await read_segment(source, tail)
    await vlog.reconfig_extend_raw(*vlog.registry.clone(seg, f"{copy_id}.next"))
    return Segment(seg.start, seg.start + tail, seg.kind, seg.params), entries


async def read_segment(source: Any, count: int) -> list[bytes]:
    """Every entry of a sealed segment's loglet, positions ``[0, count)``, as stored."""
    entries: list[bytes] = []
    while len(entries) < count:
        try:
            got = await source.read_next(len(entries), count)
        except TrimmedError as e:
            raise MigrationError(f"the segment is trimmed below {e.trim_point}: nothing whole to copy") from None
        if not got:
            raise MigrationError(f"position {len(entries)} of a sealed segment is not readable yet")
        entries += [e for _, e in got]
    return entries


async def verify_copy(store: ColdStore, config: ColdLogletConfig, entries: list[bytes], seg: Segment, emit: Callable[..., None]) -> None:
    """Rule 2: read every entry back from the store (a fresh client: no cache) and compare
    its SHA-256 with the source's; the copy holds exactly ``stop - start`` entries."""
    expected = seg.stop - seg.start
    if config.count != expected:
        raise CopyMismatch(f"copy {config.loglet_id} holds {config.count} entries, the segment [{seg.start}, {seg.stop}) {expected}")
    try:
        back = await read_segment(ColdLoglet(config, store), config.count)
    except ColdStoreError as e:
        raise CopyMismatch(f"copy {config.loglet_id} does not read back: {e}") from None
    for pos, (a, b) in enumerate(zip(entries, back)):
        if sha256(a) != sha256(b):
            raise CopyMismatch(f"copy {config.loglet_id}: position {seg.start + pos} reads back differently from the source")
    source = decode_value(seg.params) if seg.params else None  # no params: a restore's copy of a copy
    emit("ColdVerified", copy=config.loglet_id, entries=len(back), source=getattr(source, "loglet_id", seg.kind), start=seg.start, stop=seg.stop)


async def install(vlog: VirtualLog, seg: Segment, config: ColdLogletConfig, emit: Callable[..., None], *, loose: bool = False) -> bool:
    """Rule 3: ``reconfig_modify`` on a chain that still holds ``seg`` unchanged; re-fetch,
    re-check and retry after a lost race. True if this call installed the copy. (``loose``,
    with the bug ``migrate_unsealed`` only: the segment's stop is not compared.)"""
    for _ in range(MAX_ATTEMPTS):
        chain = await vlog.refresh()
        version = vlog.version
        index = _index_of(chain, seg, loose)
        if index is None:
            emit("ColdLostRace", copy=config.loglet_id, start=seg.start)
            return False  # moved by another migration, or truncated away: nothing to do
        if await vlog.reconfig_modify_at(version, index, config):
            emit("ColdInstalled", copy=config.loglet_id, index=index, start=seg.start, stop=seg.stop, version=vlog.version)
            return True
        emit("ColdLostRace", copy=config.loglet_id, start=seg.start)
    raise MigrationError(f"segment [{seg.start}, {seg.stop}): the chain kept changing over {MAX_ATTEMPTS} attempts")


def _index_of(chain: Chain, seg: Segment, loose: bool = False) -> int | None:
    """Where ``seg`` still is, closed, same range, same loglet, in ``chain``; else None."""
    for i, s in enumerate(chain.segments[:-1]):
        if s == seg or (loose and s.same_loglet(seg)):
            return i
    return None


async def _drop(source: Any, seg: Segment, emit: Callable[..., None]) -> None:
    """Rule 4: the old loglet may now discard the range (best effort: the copy is installed)."""
    try:
        await source.prefix_trim(seg.stop - seg.start)
    except LogletError:
        return  # unreachable now: the range stays on the LogServers until a later trim
    emit("ColdDropped", source=seg.kind, start=seg.start, stop=seg.stop)


def _loglet_id(vlog: VirtualLog, seg: Segment) -> str | None:
    return getattr(vlog.registry.config(seg), "loglet_id", None)


async def cold_segments(store: ColdStore) -> list[dict[str, Any]]:
    """The copies in ``store`` (their manifests), for ``status``: start, stop, files, bytes."""
    return [{"copy": c.loglet_id, "start": start, "stop": start + c.count, "files": len(c.files), "bytes": c.size, "source": src} for start, c, src in await read_manifests(store)]


# ------------------------------------------------------------------------------- skip


class SkipRefused(Exception):
    """``skip POS``: the position is not in a sealed segment (one line, for the operator)."""


async def skip_entry(vlog: VirtualLog, pos: int, reason: str, *, emit: Callable[..., None] | None = None) -> dict[str, Any]:
    """Replace the entry at virtual ``pos`` by a skip marker carrying ``reason``
    (``delos_ref/loglet/skip.py``): ``reconfig_modify`` of the sealed segment holding it onto
    a :class:`~delos_ref.loglet.skip.SkipLogletConfig` over its loglet. Refused
    (:class:`SkipRefused`) for a position in the active segment or below the chain's base.
    Retries a lost race on the fresh chain."""
    emit = emit or (lambda event, **fields: None)
    for _ in range(MAX_ATTEMPTS):
        chain = await vlog.refresh()
        version = vlog.version
        index = chain.segment_for(pos)
        if index is None:
            raise SkipRefused(f"position {pos} is below the log's first position {chain.base} (trimmed)")
        seg = chain.segments[index]
        if seg.is_open:
            raise SkipRefused(f"position {pos} is in the active segment (from {seg.start}): only an entry of a sealed segment can be skipped; run `delos-ref reconfigure` first")
        config = skip_config(vlog, seg, pos - seg.start, reason)
        if await vlog.reconfig_modify_at(version, index, (SKIP, encode_value(config))):
            emit("Skip", pos=pos, index=index, start=seg.start, stop=seg.stop, version=vlog.version)
            return {"pos": pos, "segment": {"start": seg.start, "stop": seg.stop, "kind": seg.kind}, "reason": reason, "version": vlog.version}
    raise MigrationError(f"skip {pos}: the chain kept changing over {MAX_ATTEMPTS} attempts")


def skip_config(vlog: VirtualLog, seg: Segment, lpos: int, reason: str) -> SkipLogletConfig:
    """``seg``'s loglet with loglet position ``lpos`` skipped (added to its skips, if any)."""
    if seg.kind == SKIP:
        return vlog.registry.config(seg).with_skip(lpos, reason)
    return SkipLogletConfig(seg.kind, seg.params, (SkippedEntry(lpos, reason),))


# ---------------------------------------------------------------------------- restore


class RestoreRefused(Exception):
    """The cold store does not hold the log up to the position asked for (one line)."""


async def restore_plan(store: ColdStore, at: int, *, partial: bool = False) -> list[tuple[int, ColdLogletConfig, int]]:
    """The copies that make the log's prefix ``[0, at)``: ``(start, config, take)`` in order,
    ``take`` entries of each (less than the copy's count only for the last one). Of several
    copies of one range, the installed one, then the latest chain version's, is taken.
    With ``partial`` (the rest comes from the live log), the plan stops at the first
    position the store does not hold (:func:`plan_stop`); without, that is refused."""
    if at < 0:
        raise RestoreRefused(f"bad position: --at {at} must be >= 0")
    names = set(await store.names())
    best: dict[int, tuple[tuple[bool, int, str], ColdLogletConfig]] = {}
    for start, config, source in await read_manifests(store):
        rank = (config.loglet_id + INSTALLED_SUFFIX in names, int(source.get("version", 0)), config.loglet_id)
        if config.count and (start not in best or rank > best[start][0]):
            best[start] = (rank, config)
    plan, pos = [], 0
    while pos < at:
        if pos not in best:
            if partial:
                break
            have = ", ".join(f"[{s}, {s + c.count})" for s, (_, c) in sorted(best.items())) or "nothing"
            raise RestoreRefused(f"the cold store holds {have}: positions from {pos} below {at} are not in it "
                                 f"(read them from the live cluster with `--live DIR`, or migrate them first: `delos-ref migrate --below {at}` there)")
        config = best[pos][1]
        take = min(config.count, at - pos)
        plan.append((pos, config, take))
        pos += take
    return plan


def plan_stop(plan: list[tuple[int, ColdLogletConfig, int]]) -> int:
    """Where a restore plan's cold copies end: the first position they do not cover."""
    return plan[-1][0] + plan[-1][2] if plan else 0


async def read_live(vlog: VirtualLog, lo: int, at: int) -> list[bytes]:
    """The entries ``[lo, at)`` of a live cluster's log, as stored (in their envelopes, as a
    migration copies them), for the part of a restore the cold store does not hold. Refused
    (:class:`RestoreRefused`) when the live log does not hold them all: ``at`` past its
    tail, or a prefix trimmed away (then only a cold store that has them can help)."""
    tail = await vlog.check_tail()
    if at > tail:
        raise RestoreRefused(f"--at {at} is past the live log's tail {tail}: positions from {tail} below {at} were never written")
    entries: list[bytes] = []
    while lo + len(entries) < at:
        try:
            got = await vlog.read_stored(lo + len(entries), at)
        except TrimmedError as e:
            raise RestoreRefused(f"positions from {lo} below {at} are not in the cold store, and the live log is trimmed below {e.trim_point}: neither holds them") from None
        except ColdStoreError as e:
            raise RestoreRefused(f"positions from {lo} below {at} are not in the cold store, and the live log cannot read them: {e}") from None
        if not got:
            raise RestoreRefused(f"position {lo + len(entries)} of the live log is not readable")
        entries += [e for _, e in got]
    return entries


async def live_segment(entries: list[bytes], start: int, target: ColdStore, copy_id: str) -> Segment:
    """The closed cold segment ``[start, start + len(entries))`` of a restored chain made of
    entries read from the live log (:func:`read_live`): written to ``target`` as a new copy
    and verified like a migration."""
    config = await write_copy(target, copy_id, entries)
    seg = Segment(start, start + len(entries), COLD, b"")
    await verify_copy(target, config, entries, seg, lambda event, **f: None)
    await target.put(copy_id + MANIFEST_SUFFIX, encode_manifest(config, start, {"kind": COLD, "restored_from": "live"}))
    return Segment(seg.start, seg.stop, COLD, encode_value(config))


async def restored_segments(plan: list[tuple[int, ColdLogletConfig, int]], source: ColdStore, target: ColdStore, copy_id: str) -> list[Segment]:
    """The closed cold segments of a restored chain. A copy taken whole is named as it is (its
    files stay in ``source``); a partial last one is copied, its first ``take`` entries, into
    ``target`` under ``copy_id``, and verified like a migration."""
    out = []
    for start, config, take in plan:
        if take < config.count:
            entries = await read_segment(ColdLoglet(config, source), take)
            config = await write_copy(target, copy_id, entries)
            await verify_copy(target, config, entries, Segment(start, start + take, COLD, b""), lambda event, **f: None)
            await target.put(copy_id + MANIFEST_SUFFIX, encode_manifest(config, start, {"kind": COLD, "restored_from": source.location}))
        out.append(Segment(start, start + take, COLD, encode_value(config)))
    return out
