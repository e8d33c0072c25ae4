"""The graded labs (``delos-ref lab``, delos_ref/labs/): for every lab, the untouched skeleton
fails ``check`` with a useful first failure, the solution passes, and a typical wrong answer
fails. Checks run in quick mode (one seed) but grade the same parts as a full check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from delos_ref import labs
from delos_ref.labs.catalog import LABS, LAB_MODULES
from delos_ref.labs.tables import TABLES
from delos_ref.labs.regions import find_regions, fill, skeleton, solution

ROOT = Path(__file__).resolve().parent.parent
QUICK_SEEDS = 1

#: lab -> (what the wrong answer does, the text in the real module, its replacement)
WRONG = {
    "acceptor": (
        "accepts without checking the promise",
        "        if msg.ballot < slot.promised:\n            # P1a: accepting would break",
        "        if False:\n            # P1a: accepting would break",
    ),
    "proposer": (
        "adopts the last reported value, not the highest-ballot one",
        "if msg.accepted_value is not None and msg.accepted_ballot > self._adopt_ballot:",
        "if msg.accepted_value is not None:",
    ),
    "logserver": (
        "keeps storing after the seal",
        "if st.sealed and BUG_ACCEPT_AFTER_SEAL not in self.bugs:",
        "if False:",
    ),
    "sequencer": (
        "commits what one LogServer stored, before a majority",
        "index = 0 if BUG_ACK_BEFORE_MAJORITY in self.bugs else lg.config.majority - 1",
        "index = 0",
    ),
    "register": (
        "reports Written without checking that the chosen value is its own",
        "        if chosen == update:\n            return Written(expected + 1)",
        "        if True:\n            return Written(expected + 1)",
    ),
    "check_tail": (
        "returns the sealed tail without repairing it onto a majority",
        "        await self._repair(tail, probes, deadline)\n",
        "",
    ),
    "reconfigure": (
        "extends the chain without sealing the old loglet",
        "        await loglet.seal()  # 1. seal (idempotent)\n",
        "",
    ),
    "roll_forward": (
        "rolls forward at once, without giving a live reconfigurer roll_forward_s",
        "deadline = trio.current_time() + self.options.roll_forward_s",
        "deadline = trio.current_time()",
    ),
    "sync_read": (
        "reads after check_tail without waiting for the table to play to that tail",
        "                    await self.wait_applied(tail)\n",
        "",
    ),
}


#: More wrong answers, each caught the same way: (lab, what it does, text, replacement)
MORE_WRONG = [
    (
        "register",
        "writes without comparing the version: proposes at expected + 1 even past the register's version",
        "        while expected > self._known_version:\n",
        "        while False:\n",
    ),
    (
        "acceptor",
        "promises without checking the promise it made",
        "        if msg.ballot < slot.promised:\n            # P1a: we promised not",
        "        if False:\n            # P1a: we promised not",
    ),
]


def _work(tmp_path: Path, name: str, text: str) -> Path:
    lab = labs.lab(name)
    file = tmp_path / lab.path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    return tmp_path


def _failure(grade: dict) -> str:
    return next(p["first_failure"] for p in grade["parts"] if p["first_failure"])


@pytest.mark.parametrize("lab", [lb.name for lb in LABS])
def test_each_lab_has_its_marked_regions_and_a_todo_per_region(lab):
    lb = labs.lab(lab)
    text = (ROOT / lb.path).read_text()
    assert len(find_regions(text, lab)) == len(lb.todos) >= 1
    assert TABLES[lab], f"lab {lab} has no table tests"


@pytest.mark.parametrize("lab", [lb.name for lb in LABS])
def test_skeleton_plus_solution_is_the_real_module(lab):
    """The labs cannot drift: the skeleton is the real module minus the regions."""
    lb = labs.lab(lab)
    text = (ROOT / lb.path).read_text()
    skel = skeleton(text, lab, list(lb.todos))
    assert "NotImplementedError" in skel and f"# TODO (lab {lab}):" in skel
    assert fill(skel, lab, solution(text, lab)) == text
    compile(skel, lb.path, "exec")


@pytest.mark.parametrize("lab", [lb.name for lb in LABS])
def test_untouched_skeleton_fails_check_with_a_useful_first_failure(lab, tmp_path):
    labs.start(lab, tmp_path)
    grade = labs.check(lab, tmp_path, seeds=QUICK_SEEDS)
    assert not labs.passed(grade)
    tables = grade["parts"][0]
    assert tables["part"] == "tables" and tables["passed"] == 0
    first = _failure(grade)
    assert "NotImplementedError" in first and f"lab {lab}" in first and "the rule:" in first, first


@pytest.mark.parametrize("lab", [lb.name for lb in LABS])
def test_solution_passes_check(lab, tmp_path):
    lb = labs.lab(lab)
    work = _work(tmp_path, lab, (ROOT / lb.path).read_text())
    grade = labs.check(lab, work, seeds=QUICK_SEEDS)
    assert labs.passed(grade), grade
    assert [p["part"] for p in grade["parts"]] == ["tables", "sweep", "linearizability", "trace"]
    assert grade["module_file"].startswith(str(tmp_path.resolve())), "graded the student's file"


@pytest.mark.parametrize("lab", [lb.name for lb in LABS])
def test_typical_wrong_answer_fails_check(lab, tmp_path):
    lb = labs.lab(lab)
    what, old, new = WRONG[lab]
    text = (ROOT / lb.path).read_text()
    assert text.count(old) == 1, f"the wrong answer for {lab} no longer applies"
    work = _work(tmp_path, lab, text.replace(old, new))
    grade = labs.check(lab, work, seeds=QUICK_SEEDS)
    assert not labs.passed(grade), f"{lab}: a version that {what} passed: {grade}"
    assert grade["parts"][0]["passed"] < grade["parts"][0]["total"], f"{lab}: the table tests miss a version that {what}"


@pytest.mark.parametrize("lab, what, old, new", MORE_WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(MORE_WRONG)])
def test_more_wrong_answers_fail_check(lab, what, old, new, tmp_path):
    text = (ROOT / labs.lab(lab).path).read_text()
    assert text.count(old) == 1, f"the wrong answer for {lab} no longer applies"
    grade = labs.check(lab, _work(tmp_path, lab, text.replace(old, new)), seeds=QUICK_SEEDS)
    assert grade["parts"][0]["passed"] < grade["parts"][0]["total"], f"{lab}: the table tests miss a version that {what}"


def test_overlay_is_off_unless_asked():
    """Without DELOS_LAB, importing delos_ref installs nothing."""
    code = "import sys, delos_ref, paxos.acceptor; from delos_ref.labs.overlay import LabFinder; print(any(isinstance(f, LabFinder) for f in sys.meta_path), paxos.acceptor.__file__)"
    env = {k: v for k, v in os.environ.items() if k != "DELOS_LAB"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", str(ROOT / "paxos/acceptor.py")]


def test_overlay_loads_only_lab_modules_present_in_work(tmp_path):
    (tmp_path / "paxos").mkdir()
    (tmp_path / "paxos/acceptor.py").write_text("MARK = 'student'\n")
    (tmp_path / "paxos/ballot.py").write_text("raise SystemExit('not a lab module: must not load')\n")
    code = "import delos_ref, paxos.acceptor, paxos.ballot, paxos.proposer; print(paxos.acceptor.MARK, paxos.proposer.__file__)"
    env = dict(os.environ, DELOS_LAB=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["student", str(ROOT / "paxos/proposer.py")]
    assert "paxos.acceptor" in LAB_MODULES and "paxos.ballot" not in LAB_MODULES


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", "lab", *args], cwd=cwd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    unknown = _cli("check", "nope", "--dir", str(tmp_path), cwd=tmp_path)
    missing = _cli("check", "acceptor", "--dir", str(tmp_path / "absent"), cwd=tmp_path)
    (tmp_path / "w/paxos").mkdir(parents=True)
    (tmp_path / "w/paxos/acceptor.py").write_text("def broken(:\n")
    syntax = _cli("check", "acceptor", "--dir", str(tmp_path / "w"), cwd=tmp_path)
    for r, says in ((unknown, "unknown lab 'nope'"), (missing, "no WORK directory"), (syntax, "syntax error")):
        assert r.returncode == 2, r
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and says in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_cli_start_then_check_names_the_first_failure_and_exits_1(tmp_path):
    started = _cli("start", "sequencer", "--dir", "w", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    again = _cli("start", "sequencer", "--dir", "w", cwd=tmp_path)
    assert again.returncode == 1 and "already holds lab sequencer" in again.stderr
    checked = _cli("check", "sequencer", "--dir", "w", "--seeds", "1", cwd=tmp_path)
    assert checked.returncode == 1, checked.stderr
    assert "tables           0/3  FAIL" in checked.stdout
    assert "first failure (tables): sequencer_does_not_commit_on_a_minority: NotImplementedError" in checked.stdout
    assert "lab sequencer: not yet" in checked.stdout


def test_cli_solution_prints_the_real_region():
    r = subprocess.run([sys.executable, "-m", "cli.main", "lab", "solution", "sequencer"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0
    assert "ranked = sorted(lg.tails.values(), reverse=True)" in r.stdout


def test_up_with_lab_runs_the_students_module_on_every_node(tmp_path):
    """`up --lab WORK`: the nodes load the lab module from WORK (node.log says so), and the
    cluster works with it (a solved lab: the real rule)."""
    from tests.cluster_fixture import cli, running_cluster

    work = tmp_path / "work"
    labs.start("sequencer", work)
    lb = labs.lab("sequencer")
    file = work / lb.path
    file.write_text(fill(file.read_text(), "sequencer", solution((ROOT / lb.path).read_text(), "sequencer")))
    directory = tmp_path / "c"
    with running_cluster(directory, extra=("--lab", str(work))) as cfg:
        appended = cli("append", "a", "b", "--dir", str(directory), "--json", check=True)
        assert '"positions"' in appended.stdout
        for node in cfg.nodes:
            log = (directory / node.id / "node.log").read_text()
            assert f"lab overlay on (DELOS_LAB={work.resolve()})" in log, log
            # The node imports the module when it first needs it (before or after that line).
            assert f"lab overlay: delos_ref.loglet.native.sequencer loaded from {work.resolve()}/delos_ref/loglet/native/sequencer.py" in log, log


def test_up_with_a_lab_dir_holding_no_lab_module_is_bad_usage(tmp_path):
    from tests.cluster_fixture import cli

    r = cli("up", "--detach", "--dir", str(tmp_path / "c"), "--lab", str(tmp_path))
    assert r.returncode == 2 and "holds no lab module" in r.stderr and "Traceback" not in r.stderr


def _tlc_available() -> bool:
    from delos_ref.tracecheck.tla import TLCUnavailable, tlc_command

    try:
        tlc_command()
        return True
    except TLCUnavailable:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _tlc_available(), reason="TLC not available (TLA2TOOLS_JAR; see specs/README.md)")
def test_check_with_tlc_accepts_the_solution_and_rejects_a_wrong_answer(tmp_path):
    """`check --tlc`: TLC itself replays seed 0's trace against specs/TraceMetaStorePaxos.tla;
    the wrong acceptor's run raises, so it leaves no trace to accept."""
    lb = labs.lab("acceptor")
    text = (ROOT / lb.path).read_text()
    good = labs.check("acceptor", _work(tmp_path / "good", "acceptor", text), seeds=1, tlc=True)
    assert good["parts"][-1]["part"] == "tlc" and good["parts"][-1]["passed"] == 1, good
    _, old, new = WRONG["acceptor"]
    bad = labs.check("acceptor", _work(tmp_path / "bad", "acceptor", text.replace(old, new)), seeds=1, tlc=True)
    assert bad["parts"][-1]["passed"] == 0, bad


def test_check_with_tlc_but_no_tlc_is_bad_usage(tmp_path, monkeypatch):
    for var in ("TLA2TOOLS_JAR", "TLA_COMMUNITY_JAR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    labs.start("acceptor", tmp_path)
    with pytest.raises(labs.LabUsageError, match="--tlc: TLC is not available"):
        labs.check("acceptor", tmp_path, seeds=1, tlc=True)


def test_a_failing_seed_gets_its_chart_command_once_delos_ref_chart_exists(monkeypatch):
    import typer.models

    from cli import lab as cli_lab
    from cli.main import app

    grade = {"work": "/w", "workload": "loglet"}
    monkeypatch.setattr(app, "registered_commands", [c for c in app.registered_commands if c.name != "chart"])
    assert cli_lab._chart_command(grade, 3) is None
    monkeypatch.setattr(app, "registered_commands", app.registered_commands + [typer.models.CommandInfo(name="chart")])
    assert cli_lab._chart_command(grade, 3) == "DELOS_LAB=/w delos-ref chart --workload loglet --seed 3 --out loglet-3.svg"


def test_a_version_that_never_returns_is_reported_not_waited_for_forever(tmp_path):
    lb = labs.lab("sequencer")
    text = (ROOT / lb.path).read_text()
    old = "ranked = sorted(lg.tails.values(), reverse=True)"
    work = _work(tmp_path, "sequencer", text.replace(old, "while True:\n            pass\n        " + old))
    with pytest.raises(labs.LabStateError, match="did not finish within 3 s"):
        labs.check("sequencer", work, seeds=1, timeout_s=3)


def test_a_case_that_never_returns_is_stopped_by_its_bound():
    from delos_ref.labs.grade import Overtime, _bounded, _describe

    with pytest.raises(Overtime) as caught:
        with _bounded(1):
            while True:
                pass
    assert _describe(caught.value) == "still running after 1 s (a loop that never ends?)"


def test_two_labs_of_one_module_share_its_file_in_work(tmp_path):
    """reconfigure and roll_forward both live in virtuallog/client.py: starting the second keeps
    the student's work on the first."""
    path = labs.start("reconfigure", tmp_path)
    path.write_text(path.read_text().replace('raise NotImplementedError("lab reconfigure: this rule is yours to write")', "return True  # my work"))
    assert labs.start("roll_forward", tmp_path) == path
    text = path.read_text()
    assert "return True  # my work" in text and "# TODO (lab roll_forward):" in text
    assert 'raise NotImplementedError("lab roll_forward' in text


def test_cli_start_into_a_file_is_bad_usage(tmp_path):
    (tmp_path / "f").write_text("")
    r = _cli("start", "acceptor", "--dir", "f", cwd=tmp_path)
    assert r.returncode == 2 and "not a directory" in r.stderr and "Traceback" not in r.stderr
