"""TLC on specs/StripedLoglet.tla: each mutant is caught (issue 18). That the model itself
passes is checked with the other routine models, by
``tests/test_tlc.py::test_routine_model_completes_with_no_error[MCStripedLoglet]``.

Runs when java and the TLA+ jars are there (``TLA2TOOLS_JAR``, ``TLA_COMMUNITY_JAR``: see
``specs/README.md``); skips with the reason otherwise. The mutants are the textual
replacements listed in ``specs/striped_mutants.py``, one per bug switch of the StripedLoglet.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SPECS = Path(__file__).resolve().parent.parent / "specs"
TLC_TIMEOUT_S = 300  # the model takes ~10 s alone; generous for a loaded machine


def _jars() -> tuple[str, str]:
    if shutil.which("java") is None:
        pytest.skip("java is not on PATH")
    jars = (os.environ.get("TLA2TOOLS_JAR", ""), os.environ.get("TLA_COMMUNITY_JAR", ""))
    if not all(jars) or not all(Path(j).is_file() for j in jars):
        pytest.skip("TLA2TOOLS_JAR and TLA_COMMUNITY_JAR must name the TLA+ jars")
    return jars


def _mutants() -> list[dict]:
    spec = importlib.util.spec_from_file_location("striped_mutants", SPECS / "striped_mutants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.STRIPED_MUTANTS


def _tlc(workdir: Path, model: str) -> str:
    tools, community = _jars()
    cmd = ["java", "-XX:+UseParallelGC", "-cp", f"{tools}:{community}", "tlc2.TLC", "-workers", "2",
           "-metadir", str(workdir / "states"), "-config", f"{model}.cfg", f"{model}.tla"]
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=TLC_TIMEOUT_S)
    return done.stdout + done.stderr


def _copy_specs(dst: Path) -> None:
    for f in list(SPECS.glob("*.tla")) + list(SPECS.glob("*.cfg")):
        shutil.copy(f, dst / f.name)


@pytest.mark.parametrize("mutant", _mutants(), ids=lambda m: m["name"])
def test_tlc_catches_each_striped_mutant(mutant, tmp_path):
    _jars()
    _copy_specs(tmp_path)
    spec = tmp_path / mutant["spec"]
    text = spec.read_text()
    assert text.count(mutant["old"]) == 1, f"{mutant['name']}: the text to replace must occur exactly once"
    spec.write_text(text.replace(mutant["old"], mutant["new"]))
    out = _tlc(tmp_path, mutant["model"])
    assert f"Invariant {mutant['violates']} is violated" in out, out[-3000:]
