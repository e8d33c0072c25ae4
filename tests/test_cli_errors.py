"""Every command's bad input gives one line on stderr and the README's exit code (issue 17,
items 11-13, 16, 17, 19-22): 0 ok, 1 the operation failed, 2 bad usage, 3 partial, 130
interrupted. Never a traceback, never a multi-line box.

The first tests need no cluster (usage errors are found before anything is contacted; "no
cluster running" is found from the directory); the last ones run one real cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.cluster_fixture import CLI, running_cluster

BAD_TIMEOUTS = ("0", "-1", "nan", "inf")
TIMEOUT_COMMANDS = [
    ("append", "x"),
    ("read",),
    ("tail",),
    ("status",),
    ("seal",),
    ("trim", "3"),
    ("reconfigure",),
    ("restart", "n1"),
    ("kv", "get", "k"),
    ("kv", "put", "k", "v"),
    ("kv", "status"),
]


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def one_line(result, code: int) -> str:
    """The single ``error: ...`` line of a command that exited with ``code``."""
    assert result.exit_code == code, f"exit {result.exit_code} (wanted {code}): {result.stdout!r} {result.stderr!r} {result.exception!r}"
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not isinstance(result.exception, (AssertionError, OSError, ValueError)), repr(result.exception)
    return lines[0]


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
@pytest.mark.parametrize("command", TIMEOUT_COMMANDS, ids=lambda c: " ".join(c))
def test_a_bad_timeout_is_a_usage_error_of_one_line(command, value, tmp_path):
    line = one_line(run(*command, "--timeout", value, "--dir", str(tmp_path)), 2)
    assert "--timeout" in line and "positive number of seconds" in line


@pytest.mark.parametrize(
    "args, code, says",
    [
        (("trim", "-5"), 2, "trim point must be >= 0"),
        (("trim", "--", "-5"), 2, "trim point must be >= 0"),
        (("read", "--from", "-1"), 2, "bad position"),
        (("read", "--from", "3", "--to", "1"), 2, "bad position"),
        (("read", "--format", "hex"), 2, "--format"),
        (("append", "--bogus"), 2, "No such option: --bogus"),
        (("nosuchcommand",), 2, "No such command"),
        (("up", "--nodes", "0"), 2, "--nodes"),
        (("up", "--transport", "bogus"), 2, "--transport"),
        (("up", "--loglet", "bogus"), 2, "--loglet"),
        (("up", "--ready-timeout", "0"), 2, "--ready-timeout"),
        (("sim", "--workload", "nope"), 2, "nope"),
        (("kv", "scan", "--start", "b", "--end", "a"), 2, "empty range"),
        (("kv", "scan", "--prefix", "a", "--start", "b"), 2, "not both"),
        (("kv", "put", "k"), 2, "--value-file"),
        (("kv", "put", "k" * 1025, "v"), 2, "1,024 bytes"),
        (("kv", "put", "k", "v" * 65537), 2, "65,536 bytes"),
        (("append", "--file", "f", "x"), 2, "not both"),
        (("append", "--base64", "!!!"), 2, "not base64"),
        (("kv", "put", "k", "--value-file", "/nonexistent/v"), 2, "No such file or directory: '/nonexistent/v'"),
        (("skip", "-1", "--reason", "x"), 2, "bad position"),
        (("skip", "3"), 2, "--reason"),
        (("skip", "3", "--reason", " "), 2, "give a reason"),
        (("migrate",), 2, "give --below POS or --auto"),
        (("migrate", "--below", "5", "--auto"), 2, "give --below POS or --auto"),
        (("migrate", "--auto", "--keep", "-1"), 2, "--keep must be >= 0"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args, code, says, tmp_path):
    with_dir = () if args[0] == "sim" else ("--dir", str(tmp_path / "none"))
    line = one_line(run(*args, *with_dir), code)
    assert says in line, line


def test_a_usage_error_names_the_help_and_keeps_its_quotes(tmp_path):
    line = one_line(run("append", "--bogus"), 2)
    assert "(see `delos-ref append --help`)" in line
    line = one_line(run("append", "--file", str(tmp_path / "x.bin"), "--dir", str(tmp_path)), 2)
    assert line.endswith(f"'{tmp_path / 'x.bin'}'"), "the closing quote is kept"
    line = one_line(run("trace", "check", str(tmp_path / "x.ndjson")), 2)
    assert line.endswith(f"'{tmp_path / 'x.ndjson'}'"), "the closing quote is kept"


@pytest.mark.parametrize(
    "command",
    [("append", "x"), ("read",), ("tail",), ("seal",), ("trim", "1"), ("kill", "n1"), ("kv", "get", "k"), ("kv", "put", "k", "v"), ("kv", "status"), ("kv", "trim"),
     ("migrate", "--below", "1"), ("migrate", "--auto"), ("skip", "1", "--reason", "x")],
    ids=lambda c: " ".join(c),
)
def test_no_cluster_is_an_operation_failure_for_every_command(command, tmp_path):
    line = one_line(run(*command, "--dir", str(tmp_path / "none")), 1)
    assert "no cluster in" in line


def test_a_stale_directory_is_refused_at_once_by_kv_too(tmp_path):
    """A directory whose processes are gone: "no cluster running" at once (it took 30 s)."""
    d = tmp_path / "c"
    d.mkdir()
    (d / "cluster.json").write_text(json.dumps({
        "format": 1, "cluster_id": "x", "transport": "tcp", "secret": "00" * 32, "trace": False,
        "nodes": [{"id": f"n{i}", "host": "127.0.0.1", "port": 29990 + i, "pid": 999999} for i in (1, 2, 3)],
    }))
    for command in (("kv", "get", "k"), ("kv", "put", "k", "v"), ("append", "x")):
        started = time.monotonic()
        line = one_line(run(*command, "--dir", str(d)), 1)
        assert "no cluster running" in line and time.monotonic() - started < 5, line


def test_os_errors_are_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "Not a directory" in one_line(run("up", "--dir", str(afile / "c")), 1)
    binary = tmp_path / "trace.ndjson"
    binary.write_bytes(b"\xff\xfe\x00binary")
    line = one_line(run("trace", "check", str(binary)), 1)
    assert "not UTF-8" in line


def test_an_unwritable_directory_is_one_line(tmp_path, monkeypatch):
    """A read-only directory (as root every directory is writable, so mkdir is made to fail
    as it does for a user without permission)."""
    from pathlib import Path

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    line = one_line(run("up", "--dir", str(tmp_path / "ro" / "c")), 1)
    assert line == f"error: Permission denied: '{tmp_path / 'ro' / 'c'}'", line


def test_restore_refuses_what_it_cannot_restore_in_one_line(tmp_path):
    line = one_line(run("restore", "--from", str(tmp_path / "nope"), "--at", "5", "--dir", str(tmp_path / "r")), 1)
    assert "no such directory" in line
    (tmp_path / "cold").mkdir()
    line = one_line(run("restore", "--from", str(tmp_path / "cold"), "--at", "5", "--dir", str(tmp_path / "r")), 1)
    assert "the cold store holds nothing: positions from 0 below 5 are not in it" in line and not (tmp_path / "r").exists()
    line = one_line(run("restore", "--from", str(tmp_path / "cold"), "--at", "5", "--live", str(tmp_path / "none"), "--dir", str(tmp_path / "r")), 1)
    assert line.startswith(f"error: --live {tmp_path / 'none'}: ") and not (tmp_path / "r").exists(), line


def test_up_on_a_file_is_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = one_line(run("up", "--dir", str(afile)), 1)
    assert str(afile) in line


def test_help_has_no_boxes_no_bool_metavar_and_trace_has_an_example():
    for command in ([], ["status"], ["append"], ["kv", "put"], ["trace", "check"], ["trace"]):
        result = run(*command, "--help")
        assert result.exit_code == 0, result.stdout
        assert "<bool>" not in result.stdout and "╭" not in result.stdout, result.stdout
    assert "Example" in run("trace", "--help").stdout
    # an example is one line, never rewrapped mid-command
    assert "delos-ref up --detach --loglet bootstrap   # then: delos-ref reconfigure --loglet native (hot swap)" in run("up", "--help").stdout
    assert "delos-ref append hello world --json     # or: seq 1000 | delos-ref append;  delos-ref append --file photo.jpg" in run("append", "--help").stdout
    assert "65,536 bytes" in run("kv", "put", "--help").stdout and "1,024 bytes" in run("kv", "--help").stdout


def test_sim_output_keeps_bracketed_text_and_long_lines_when_piped(tmp_path):
    """Rich markup must not eat ``[events 73..75]``, and a pipe gets lines that are never cut."""
    from cli import main

    summary = {"workload": "log", "runs": 1, "faults": ["crash"], "bug": None, "events_per_s": 1.0,
               "violations": [{"seed": 7, "what": "entry lost [events 73..75] [bold]x[/bold]", "replay": "delos-ref sim --workload log --seed 7 --seeds 1 " + "--faults crash,partition,drop,duplicate,reorder,restart " * 3}]}
    proc = subprocess.run([*CLI[:1], "-c", f"from cli import main; main._print_sweep({summary!r})"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "[events 73..75] [bold]x[/bold]" in proc.stdout
    replay = [line for line in proc.stdout.splitlines() if "replay:" in line]
    assert len(replay) == 1 and replay[0].strip().endswith("restart"), proc.stdout
    assert main  # imported in this process too: the module loads


def test_piped_bench_table_keeps_whole_case_names():
    """Item 19: a table printed to a pipe takes its natural width (no `outstandi…`)."""
    result = {"bench": "kv", "machine": {"cpu": "some cpu", "cpus": 2},
              "results": [{"case": "put, 64 clients each with one request outstanding", "outstanding": 64, "p50_us": 1.0, "p99_us": 2.0, "ops_per_s": 3.0}],
              "baseline": []}
    proc = subprocess.run([*CLI[:1], "-c", f"from cli import main; main._print_bench({result!r})"], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    assert "put, 64 clients each with one request outstanding" in proc.stdout and "…" not in proc.stdout, proc.stdout


def test_status_chain_table_keeps_every_column_at_80_columns():
    """Item 19: on an 80-column terminal, long cells fold; no column is dropped or cut."""
    from rich.console import Console

    from cli import dashboard

    segments = [
        {"start": 0, "stop": 2, "kind": "bootstrap", "sealed": True, "params": {"loglet_id": "B0", "acceptors": ["n1", "n2", "n3"]}},
        {"start": 2, "stop": 123456, "kind": "native", "sealed": True, "params": {"loglet_id": "op-7a14a982", "sequencer": "n2", "logservers": ["n1", "n2", "n3", "ls1", "ls2"]}},
        {"start": 123456, "stop": None, "kind": "native", "sealed": False, "params": {"loglet_id": "n3@76d20d4879ea78d2.v3.37", "sequencer": "n2", "logservers": ["n1", "n2", "n3"]}},
    ]
    report = {"chain": {"version": 3, "segments": segments}}
    console = Console(width=80, force_terminal=True, color_system=None, record=True, file=open(os.devnull, "w"))
    console.print(dashboard._chain(report))
    text = console.export_text()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    header = next(line for line in text.splitlines() if "positions" in line)
    assert header.split()[0] == "#" and "loglet" in header and "kind" in header, text
    assert "[123456, tail)" in text and "bootstrap" in text and "no (active)" in text, text
    start = header.index("loglet")
    width = header.index(header[start:].split()[1], start + len("loglet")) - start  # up to the next header
    column = "".join(line[start:start + width].strip() for line in text.splitlines()[header_row(text) + 2:])
    assert "n3@76d20d4879ea78d2.v3.37" in column and "…" not in text, "the loglet id is folded, not cut"


def header_row(text: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if "positions" in line)


def test_escaped_read_text_is_one_line_per_entry():
    from cli.ops import escaped

    assert escaped(b"plain text") == "plain text"
    assert escaped(b"a\nb\tc\\d\r") == "a\\nb\\tc\\\\d\\r"
    assert escaped(b"\xff\x00") == "\\xff\\x00"
    assert escaped("héllo".encode()) == "héllo"
    assert escaped(b"x\\ny") != escaped(b"x\ny"), "a backslash-n and a newline differ"


# ------------------------------------------------------------------ with a real cluster

def j(*args: str, input: bytes | None = None) -> dict:
    result = run(*args, "--json", input=input)
    assert result.exit_code == 0, f"{args} -> {result.exit_code}: {result.stderr} {result.exception!r}"
    return json.loads(result.stdout)


@pytest.mark.cluster
def test_on_a_cluster_exit_codes_entries_kv_and_messages(tmp_path):
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c"):
        # item 21: CRLF line ends are stripped, a file is one entry, base64 entries, escaped text
        assert j("append", "--dir", d, input=b"one\r\ntwo\n") == {"positions": [0, 1]}
        blob = tmp_path / "blob"
        blob.write_bytes(b"line1\nline2\t\xff\n")
        assert j("append", "--file", str(blob), "--dir", d) == {"positions": [2]}
        assert j("append", "--base64", "AAEC", "--dir", d) == {"positions": [3]}
        result = run("read", "--dir", d)
        assert result.exit_code == 0
        assert result.stdout.splitlines() == ["0\tone", "1\ttwo", "2\tline1\\nline2\\t\\xff\\n", "3\t\\x00\\x01\\x02"]
        raw = run("read", "--from", "2", "--to", "3", "--format", "raw", "--dir", d)
        assert raw.stdout_bytes == b"2\tline1\nline2\t\xff\n\n"
        # item 12: unknown node and a position past the tail are operation failures (1)
        assert "unknown node" in one_line(run("kill", "n9", "--dir", d), 1)
        assert "n9" in one_line(run("kv", "get", "k", "--node", "n9", "--dir", d), 1)
        assert "past the tail" in one_line(run("read", "--from", "99999", "--dir", d), 1)
        # item 22: status JSON roles
        nodes = j("status", "--dir", d)["nodes"]
        assert all({"replica", "supervisor", "ping"} <= set(n["configured_roles"]) for n in nodes)
        assert all(sorted(n["roles"]) == sorted(n["configured_roles"]) for n in nodes), nodes
        # item 22: seal says what is true
        sealed = run("seal", "--dir", d)
        assert sealed.exit_code == 0 and "next append" not in sealed.stdout and "first client that meets the seal" in sealed.stdout
        # item 17: kv put from a file and from stdin; a scan range
        value = tmp_path / "value"
        value.write_text("from a file\n")
        assert j("kv", "put", "a", "--value-file", str(value), "--dir", d)["ok"] is True
        assert j("kv", "put", "b", "--value-file", "-", "--dir", d, input=b"from stdin")["ok"] is True
        assert j("kv", "get", "a", "--dir", d)["value"] == "from a file\n"
        assert j("kv", "scan", "--start", "a", "--end", "c", "--dir", d)["pairs"] == [["a", "from a file\n"], ["b", "from stdin"]]
        assert [r["replica"] for r in j("kv", "status", "--dir", d)["replicas"]] == ["n1", "n2", "n3"]
        # item 16: with a replica dead, status is partial (3) and says no "outcome unknown"
        j("kill", "n3", "--dir", d)
        # item 14: a failed append says how many entries landed, even when none did
        j("kill", "n2", "--dir", d)
        line = one_line(run("append", "--dir", d, "--timeout", "2", input=b"p\nq\nr\n"), 1)
        assert "none of 3 entries" in line or "0 of 3 appended" in line, line
        assert "restarted" in run("restart", "n2", "--dir", d).stdout
        result = run("kv", "status", "--dir", d, "--timeout", "1")
        assert result.exit_code == 3 and "outcome unknown" not in result.stdout and "send(s)" not in result.stdout, result.stdout
        line = one_line(run("kv", "trim", "--dir", d, "--timeout", "6"), 1)
        assert "nothing was trimmed" in line and "outcome unknown" not in line and "send(s)" not in line, line


@pytest.mark.cluster
def test_trimmed_read_names_the_real_start(tmp_path):
    """Item 15: after `trim 10` over segments [0, 4) and [4, ...), a read at 0 says 10."""
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c"):
        j("append", *[f"a{i}" for i in range(4)], "--dir", d)
        j("reconfigure", "--dir", d)
        j("append", *[f"b{i}" for i in range(8)], "--dir", d)
        assert j("trim", "10", "--dir", d) == {"trim_point": 10, "segments_dropped": 1, "base": 4}
        line = one_line(run("read", "--from", "0", "--dir", d), 1)
        assert "starts at 10" in line, line
        line = one_line(run("read", "--from", "5", "--dir", d), 1)
        assert "starts at 10" in line, line


@pytest.mark.cluster
def test_kv_in_the_disaggregated_layout(tmp_path):
    """Item 16: kv status lists the replicas only (n1..n3, not ls1..ls3) and exits 0 on a
    healthy cluster; with two LogServers dead, a put fails within its --timeout."""
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c", extra=("--logservers", "3")):
        assert j("kv", "put", "k", "v", "--dir", d)["ok"] is True
        result = run("kv", "status", "--dir", d)
        assert result.exit_code == 0, result.stdout + result.stderr
        assert [r["replica"] for r in json.loads(run("kv", "status", "--json", "--dir", d).stdout)["replicas"]] == ["n1", "n2", "n3"]
        j("kill", "ls1", "--dir", d)
        j("kill", "ls2", "--dir", d)
        started = time.monotonic()
        line = one_line(run("kv", "put", "k", "w", "--timeout", "4", "--dir", d), 1)
        assert time.monotonic() - started < 12 and "outcome unknown" in line and "not answering now: ls1, ls2" in line, line
        # Ctrl-C during a write that cannot finish: the outcome is unknown, and it says so
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            proc = subprocess.Popen([*CLI, "kv", "put", "k", "x", "--timeout", "60", "--dir", d], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        finally:
            signal.signal(signal.SIGINT, previous)
        time.sleep(5)  # past Python's start-up (about 1 s), into the write (which cannot finish)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130 and stderr.strip() == "error: interrupted: the write's outcome is unknown (it may take effect, once)", stderr


@pytest.mark.cluster
def test_ctrl_c_during_append_says_what_landed(tmp_path):
    """Item 14: Ctrl-C in the middle of `append` from stdin says which positions landed,
    in text and in --json, and exits 130."""
    d = str(tmp_path / "c")
    with running_cluster(tmp_path / "c"):
        for as_json in (False, True):
            lines = tmp_path / "lines"
            lines.write_bytes(b"".join(b"e%d\n" % i for i in range(200_000)))
            # SIGINT at its default in the child, even if this run inherited it ignored
            previous = signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                with open(lines, "rb") as stdin:
                    proc = subprocess.Popen([*CLI, "append", "--dir", d, *(["--json"] if as_json else [])], stdin=stdin,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
            finally:
                signal.signal(signal.SIGINT, previous)
            tail_before = j("tail", "--dir", d)["position"]
            deadline = time.monotonic() + 60
            while j("tail", "--dir", d)["position"] < tail_before + 20 and time.monotonic() < deadline:
                time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=30)
            assert proc.returncode == 130, (proc.returncode, stderr)
            line = stderr.decode().strip().splitlines()[-1]
            assert line.startswith("error: interrupted: appended ") and " of 200000 entries at positions " in line, stderr
            if as_json:
                got = json.loads(stdout)
                assert got["interrupted"] is True and len(got["positions"]) >= 20
                assert got["positions"] == list(range(got["positions"][0], got["positions"][0] + len(got["positions"])))


def test_the_docs_stand_on_their_own():
    """Item 24: nothing in the repository points outside it (../shared, PAPER_NOTES,
    DESIGN.md); the design reference is docs/design.md, which the README links."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    outside = ("../shared", "PAPER_NOTES", "DESIGN.md")
    found = []
    for path in root.rglob("*"):
        if path.suffix not in (".py", ".md", ".tla", ".cfg", ".toml") or any(p in (".venv", ".git") or p.endswith(".egg-info") for p in path.relative_to(root).parts):
            continue
        if path.name == "test_cli_errors.py":
            continue  # this test names them
        text = path.read_text(errors="replace")
        found += [f"{path.relative_to(root)}: {word}" for word in outside if word in text]
    assert not found, found
    assert (root / "docs" / "design.md").exists() and "docs/design.md" in (root / "README.md").read_text()
