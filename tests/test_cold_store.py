"""The cold store and the cold loglet's read rules (delos_ref/loglet/cold.py): atomic writes,
and a corrupt or missing file read as a clear error for its range, never as wrong data."""

from __future__ import annotations

import os

import pytest
import trio

from delos_ref.loglet import LogletUnavailable
from delos_ref.loglet.cold import (
    BUG_COLD_READ_UNCHECKED,
    ColdFileCorrupt,
    ColdFileMissing,
    ColdLoglet,
    FileColdStore,
    MemoryColdStore,
    write_copy,
)
from delos_ref.loglet.cold_format import MAX_FILE_ENTRIES, ColdLogletConfig, decode_manifest, encode_manifest, encode_segment_file
from transports.codec import decode_value, encode_value

ENTRIES = [b"entry-%05d" % i for i in range(MAX_FILE_ENTRIES + 500)]  # two files


async def _copy(tmp_path) -> tuple[FileColdStore, ColdLogletConfig]:
    store = FileColdStore(tmp_path / "cold")
    return store, await write_copy(store, "copy1", ENTRIES)


async def test_a_copy_is_split_into_checksummed_files_and_reads_back(tmp_path):
    store, cfg = await _copy(tmp_path)
    assert [(f.lo, f.hi) for f in cfg.files] == [(0, MAX_FILE_ENTRIES), (MAX_FILE_ENTRIES, len(ENTRIES))]
    assert decode_value(encode_value(cfg)) == cfg, "the config round-trips through the codec (it lives in the chain)"
    loglet = ColdLoglet(cfg, store)
    got = await loglet.read_next(MAX_FILE_ENTRIES - 2, MAX_FILE_ENTRIES + 2)
    assert got == [(p, ENTRIES[p]) for p in range(MAX_FILE_ENTRIES - 2, MAX_FILE_ENTRIES)], "a read stops at the end of a file"
    assert sorted(await store.names()) == sorted(f.name for f in cfg.files), "no temp file is left behind"


async def test_a_corrupt_file_fails_its_range_and_the_rest_stays_readable(tmp_path):
    store, cfg = await _copy(tmp_path)
    path = os.path.join(store.location, cfg.files[1].name)
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0x01  # one bit of one entry's payload: the layout still parses
    open(path, "wb").write(bytes(data))
    loglet = ColdLoglet(cfg, store)
    with pytest.raises(ColdFileCorrupt, match="SHA-256 mismatch") as e:
        await loglet.read_next(MAX_FILE_ENTRIES + 10, MAX_FILE_ENTRIES + 20)
    assert isinstance(e.value, LogletUnavailable), "the VirtualLog reports it as an unreadable range"
    assert await loglet.read_next(5, 8) == [(p, ENTRIES[p]) for p in range(5, 8)], "the other file still reads"


async def test_the_unchecked_read_bug_serves_wrong_data(tmp_path):
    """The bug switch cold_read_unchecked has teeth: the same flip reads back as a wrong entry."""
    store, cfg = await _copy(tmp_path)
    path = os.path.join(store.location, cfg.files[0].name)
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0x01
    open(path, "wb").write(bytes(data))
    got = await ColdLoglet(cfg, store, bugs=frozenset([BUG_COLD_READ_UNCHECKED])).read_next(MAX_FILE_ENTRIES - 1, MAX_FILE_ENTRIES)
    assert got[0][1] != ENTRIES[MAX_FILE_ENTRIES - 1]


async def test_a_missing_file_is_a_clear_error(tmp_path):
    store, cfg = await _copy(tmp_path)
    os.unlink(os.path.join(store.location, cfg.files[0].name))
    with pytest.raises(ColdFileMissing, match=f"cold file {cfg.files[0].name} is missing"):
        await ColdLoglet(cfg, store).read_next(0, 10)


async def test_a_file_of_another_range_is_refused(tmp_path):
    """A file renamed over another (same store, wrong range) fails even if its own checksum holds."""
    store = MemoryColdStore()
    cfg = await write_copy(store, "c", ENTRIES)
    store.blobs[cfg.files[0].name] = encode_segment_file(0, ENTRIES[: MAX_FILE_ENTRIES - 1])
    with pytest.raises(ColdFileCorrupt):
        await ColdLoglet(cfg, store).read_next(0, 1)


async def test_a_write_that_dies_before_the_rename_leaves_no_file(tmp_path, monkeypatch):
    store = FileColdStore(tmp_path / "cold")
    await store.put("a.seg", b"old")

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        await store.put("a.seg", b"new")
        await store.put("b.seg", b"new")
    with pytest.raises(OSError):
        await store.put("b.seg", b"new")
    monkeypatch.undo()
    assert await store.get("a.seg") == b"old", "the old file is whole"
    with pytest.raises(ColdFileMissing):
        await store.get("b.seg")
    assert await store.names() == ["a.seg"], "temp files are hidden (dot names), never read as data"


async def test_the_manifest_names_the_files_and_the_virtual_range(tmp_path):
    store, cfg = await _copy(tmp_path)
    start, back, source = decode_manifest(encode_manifest(cfg, 1000, {"kind": "native"}), store.location)
    assert (start, back, source) == (1000, cfg, {"kind": "native"})
    with pytest.raises(ValueError, match="not a cold-store manifest"):
        decode_manifest(b"{}", store.location)


def test_file_names_cannot_climb_out_of_the_store(tmp_path):
    store = FileColdStore(tmp_path)
    with pytest.raises(ValueError):
        trio.run(store.put, "../x", b"")
