"""The lab overlay: a student's module runs in place of the real one, only when asked.

With the environment variable ``DELOS_LAB=WORK`` set, importing one of the modules that a
lab removes a rule from (``paxos.acceptor``, ``delos_ref.loglet.native.sequencer``, ... the
list is :data:`delos_ref.labs.catalog.LAB_MODULES`) loads ``WORK/<its path>`` instead, if
that file exists. Nothing else changes: every other module, and a lab module with no file in
WORK, is the project's own. Without ``DELOS_LAB`` nothing is installed.

``delos_ref/__init__.py`` installs the overlay, so it must be imported before any lab
module: ``delos-ref`` does (``cli/common.py`` imports ``delos_ref.cluster`` first), and so
does the grader. (``paxos`` cannot install it: its modules are pure, no ``os``. A script of
your own that imports ``paxos.acceptor`` before ``delos_ref`` gets the real module: import
``delos_ref`` first.) ``delos-ref lab check`` runs its grading in a child process with the variable set;
``delos-ref up --lab WORK`` sets it for the nodes it starts; a node logs each module it took
from WORK.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

from delos_ref.labs.catalog import LAB_MODULES

ENV = "DELOS_LAB"
log = logging.getLogger(__name__)


class LabFinder(importlib.abc.MetaPathFinder):
    """Finds the lab modules present in ``work``; declines every other import."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.loaded: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in LAB_MODULES:
            return None  # not a lab module: the normal import system finds it
        file = self.work / (fullname.replace(".", "/") + ".py")
        if not file.is_file():
            return None  # this lab was not started in WORK: the real module
        self.loaded.append(fullname)
        log.warning("lab overlay: %s loaded from %s", fullname, file)
        return importlib.util.spec_from_file_location(fullname, file)


def install_if_requested() -> LabFinder | None:
    """Put a :class:`LabFinder` first on ``sys.meta_path`` when ``DELOS_LAB`` names a
    directory (idempotent); otherwise do nothing."""
    work = os.environ.get(ENV)
    if not work:
        return None
    for finder in sys.meta_path:
        if isinstance(finder, LabFinder):
            return finder
    finder = LabFinder(Path(work).resolve())
    sys.meta_path.insert(0, finder)
    return finder


def log_if_active() -> None:
    """Log (warning) that the overlay is on and which lab modules WORK replaces."""
    finder = next((f for f in sys.meta_path if isinstance(f, LabFinder)), None)
    if finder is None:
        return
    present = sorted(m for m in LAB_MODULES if (finder.work / (m.replace(".", "/") + ".py")).is_file())
    log.warning("lab overlay on (%s=%s): %s run from there (loaded so far: %s)", ENV, finder.work, ", ".join(present) or "no lab module", ", ".join(finder.loaded) or "none")
