"""delos-ref: a reference implementation of virtual consensus (Delos, OSDI 2020).

``delos_ref.connect(directory, node=...)`` opens a client of the database of a running
cluster (see :mod:`delos_ref.db`)::

    async with delos_ref.connect(".delos-ref") as table:
        await table.put("k", "v")
"""

import logging
import os
from typing import Any

__all__ = ["connect"]

# A library logs; the program decides where it goes (``delos-ref node`` writes node.log, see
# delos_ref/logs.py). Without this, Python would print warnings -- a reconfiguration in a
# simulation -- to stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())

# The lab overlay (delos_ref/labs/overlay.py): only with DELOS_LAB=WORK, a student's module
# from WORK runs in place of a lab's real one. Installed here, before any lab module loads.
if os.environ.get("DELOS_LAB"):
    from delos_ref.labs.overlay import install_if_requested

    install_if_requested()


def __getattr__(name: str) -> Any:
    # Lazy: importing any submodule of delos_ref must not pull in the whole database stack.
    if name == "connect":
        from delos_ref.db.client import connect

        return connect
    raise AttributeError(f"module 'delos_ref' has no attribute {name!r}")
