"""How much a LogServer's LMDB holds, measured from outside its process (for ``bench
migrate`` and the cold-storage cluster test).

LMDB files never shrink: pages freed by a delete go to LMDB's free list and are reused by
later writes, so the file size says nothing about what was dropped. What does fall when the
LogServers purge a migrated range is the number of entries and the pages the tables *use*
(branch, leaf and overflow pages of each table's B-tree). :func:`logserver_data_size`
reports those, read through a read-only LMDB environment (safe beside the writer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from delos_ref.loglet.native.storage import ENTRIES


def logserver_data_size(node_dir: str | Path) -> dict[str, Any]:
    """``{"entries", "used_pages", "used_bytes", "file_bytes"}`` of the LogServer entries
    table under ``node_dir`` (a node's ``DIR/<id>``)."""
    import lmdb

    path = Path(node_dir) / "logserver" / "lmdb"
    env = lmdb.open(str(path), readonly=True, lock=True, max_dbs=16, subdir=True)
    try:
        db = env.open_db(ENTRIES.encode(), create=False)
        with env.begin() as txn:
            st = txn.stat(db)
        pages = st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        return {"entries": st["entries"], "used_pages": pages, "used_bytes": pages * st["psize"], "file_bytes": (path / "data.mdb").stat().st_size}
    finally:
        env.close()
