"""``delos-ref up --netns`` (issue 24): every node in its own network namespace on a bridge,
and partitions and losses also made by the kernel (iptables in the namespaces).

* The planner (no root): names carry the cluster's tag, subnets in use are skipped, and the
  kernel rules of a partition (both ways, one way) and of a loss are the links the shaper's
  conditions name, dropped at the receiver.
* ``up --netns`` without root: exit 2 and one line, nothing made.
* One 3-node ``--netns`` cluster (UDP: one datagram per mark, so a one-way cut stays one way)
  carries the cluster checks:
  - the issue's partition test with kernel drops only: n1 (the sequencer) cut from n2, n3 in
    the kernel; the majority side reconfigures; after ``net heal`` n1 answers and the chain
    keeps its version; every acknowledged append is in place;
  - the shaper and the kernel agree: for a both-way and a one-way partition, ``net probe``
    (one mark per ordered pair of nodes) finds the same links cut with ``--via shaper`` as
    with ``--via kernel``, and they are the links the partition names;
  - a stopped cluster (its nodes killed with kill -9) restarts with ``up`` in new namespaces,
    and ``down`` then leaves no namespace, link or rule.
* A ``kill -9`` of ``up`` while it makes the namespaces, or while it starts the nodes:
  ``down`` removes what it made and the nodes it started.
* The ``net`` role's probe (pure), and ``--via kernel`` on a loopback cluster (exit 2).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import trio

from delos_ref import cluster, netns
from delos_ref.netctl import plan_loss, plan_partition
from tests.cluster_fixture import CLI, cli, free_base_port, status
from tests.test_chaos_cluster import Chaos, chain_monitor, read_all, writer
from transports.shaper import NetConditions

NODES = ["n1", "n2", "n3"]
CAN_NETNS = os.geteuid() == 0 and all(shutil.which(t) for t in ("ip", "iptables", "iptables-restore"))
needs_netns = pytest.mark.skipif(not CAN_NETNS, reason="--netns needs root, ip and iptables (CI runs as root)")


# ------------------------------------------------------------------------ the planner


def perfect() -> dict[str, NetConditions]:
    return {n: NetConditions() for n in NODES}


def test_the_plan_names_everything_with_the_tag_and_skips_subnets_in_use():
    cid = "0a1b2c3d4e5f6789"
    first = netns.plan(cid, NODES, used_subnets=())
    taken = netns.plan(cid, NODES, used_subnets={first.subnet})
    assert taken.subnet != first.subnet
    names = [first.bridge] + [x for n in first.nodes.values() for x in (n.netns, n.veth, n.peer)]
    assert all(name.startswith("dr0a1b2c") and len(name) <= 15 for name in names), names  # IFNAMSIZ
    assert len(set(names)) == len(names)
    assert [n.ip for n in first.nodes.values()] == [f"10.232.{first.subnet}.{11 + i}" for i in range(3)]
    assert first.bridge_ip == f"10.232.{first.subnet}.1"
    with pytest.raises(netns.NetnsError):
        netns.plan(cid, NODES, used_subnets=range(1, 255))
    # teardown: what the record names and whatever else carries the tag, nothing else
    cmds = netns.teardown_commands(first, first.tag, ["dr0a1b2c-n1", "dr0a1b2c-old", "drffffff-n1"], ["dr0a1b2cbr", "dr0a1b2ch0", "eth0"])
    assert ["ip", "netns", "del", "dr0a1b2c-old"] in cmds and not any("drffffff-n1" in c or "eth0" in c for c in cmds)
    assert cmds[-1] == ["ip", "link", "del", "dr0a1b2cbr"], "the bridge goes last"


def test_kernel_rules_drop_at_the_receiver_what_the_conditions_cut_or_lose():
    rec = netns.plan("0a1b2c3d4e5f6789", NODES, used_subnets=())
    ip = {n: rec.nodes[n].ip + "/32" for n in NODES}
    both = netns.kernel_rules(rec, plan_partition(perfect(), ["n1"], ["n2", "n3"]))
    assert both == {"n1": [["-s", ip["n2"], "-j", "DROP"], ["-s", ip["n3"], "-j", "DROP"]], "n2": [["-s", ip["n1"], "-j", "DROP"]], "n3": [["-s", ip["n1"], "-j", "DROP"]]}
    one_way = netns.kernel_rules(rec, plan_partition(perfect(), ["n1"], ["n2"], one_way=True))
    assert one_way == {"n1": [], "n2": [["-s", ip["n1"], "-j", "DROP"]], "n3": []}
    lossy = netns.kernel_rules(rec, plan_loss(perfect(), 0.02, ["n3"]))
    drop2 = ["-m", "statistic", "--mode", "random", "--probability", "0.020000", "-j", "DROP"]
    assert lossy == {"n1": [["-s", ip["n3"], *drop2]], "n2": [["-s", ip["n3"], *drop2]], "n3": [["-s", ip["n1"], *drop2], ["-s", ip["n2"], *drop2]]}
    assert netns.restore_input(one_way["n2"]) == f"*filter\n:DELOS-NET - [0:0]\n-A DELOS-NET -s {ip['n1']} -j DROP\nCOMMIT\n"


def test_up_netns_without_root_is_a_usage_error(tmp_path, monkeypatch):
    """Not root: one line, exit 2, and nothing made (no directory, no namespace). The euid is
    faked in-process: a real privilege drop cannot run the interpreter of a fresh clone in a
    0700 temporary directory (as CI's is)."""
    from typer.testing import CliRunner

    from cli.main import app

    monkeypatch.setattr(netns.os, "geteuid", lambda: 65534)
    namespaces = (lambda: set(netns.existing_netns())) if shutil.which("ip") else set
    before = namespaces()
    d = tmp_path / "c"
    result = CliRunner().invoke(app, ["up", "--netns", "--detach", "--dir", str(d)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == ["error: --netns needs root: it makes network namespaces, veth pairs, a bridge and iptables rules"]
    assert not d.exists()
    assert namespaces() == before


# --------------------------------------------------------------------- the cluster


def net(d: Path, *args: str) -> dict:
    return json.loads(cli("net", *args, "--dir", str(d), "--json", check=True).stdout)


def net_here(d: Path, *args: str) -> dict:
    """``net`` in this process (typer's CliRunner: the same code without a Python start-up;
    not from inside ``trio.run``)."""
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["net", *args, "--dir", str(d), "--json"])
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def cut_links(d: Path) -> set[tuple[str, str]]:
    probe = net_here(d, "probe", "--wait", "0.5")
    assert probe["missing"] == [], probe
    return {tuple(pair) for pair in probe["cut"]}


def leftovers(cfg: cluster.ClusterConfig, rec: netns.NetnsRecord) -> list[str]:
    left = netns.leftovers(cfg.cluster_id)
    if rec.bridge in subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout:
        left.append(f"the FORWARD rule of {rec.bridge}")
    return left


def kill_nodes(d: Path) -> None:
    for n in cluster.load(d).nodes:
        cluster.signal_node(n, signal.SIGKILL)
    time.sleep(0.3)


@needs_netns
def test_a_netns_cluster_partitioned_in_the_kernel_shaper_and_kernel_agree_and_down_cleans_up(tmp_path):
    d = tmp_path / "c"
    cli("up", "--netns", "--detach", "--dir", str(d), "--transport", "udp", "--base-port", str(free_base_port(3, "udp")), check=True, timeout=90)
    cfg = cluster.load(d)
    rec = netns.load_record(d)
    try:
        assert [n.host for n in cfg.nodes] == [rec.nodes[n].ip for n in NODES], "each node on its own address"
        assert status(d)["netns"]["namespaces"] == {n: rec.nodes[n].netns for n in NODES}
        _partition_of_the_sequencer_in_the_kernel(d, cfg)
        _shaper_and_kernel_cut_the_same_links(d)
        # kill -9 of every node: a stale cluster; `up` makes its namespaces again
        kill_nodes(d)
        cli("up", "--detach", "--dir", str(d), check=True, timeout=90)
        assert net(d, "partition", "n1", ">", "n2", "--via", "kernel")["kernel"]["n2"]["rules"], "rules in the new namespaces"
        assert status(d)["netns"]["kernel"] == ["n1: to n2: cut"], "status shows the kernel's conditions"
        assert cli("append", "again", "--dir", str(d)).returncode == 0
        kill_nodes(d)
    finally:
        down = cli("down", "--dir", str(d), timeout=60)
    assert down.returncode == 0 and "removed its network namespaces" in down.stderr, down.stderr
    assert leftovers(cfg, rec) == []
    assert cluster.live_nodes(cluster.load(d)) == []


def _partition_of_the_sequencer_in_the_kernel(d: Path, cfg: cluster.ClusterConfig) -> None:
    """n1 | n2,n3 in the kernel only, n1 the sequencer: the majority side reconfigures; after
    the heal n1 answers, the chain keeps its version, every acknowledged append is in place."""
    run = Chaos()
    marks: dict[str, object] = {}

    async def nemesis() -> None:
        await trio.sleep(2)
        assert run.sequencer == "n1", "the first sequencer is n1's"
        marks["version_before"] = run.chains[-1][1]
        cut = net(d, "partition", "n1", "|", "n2,n3", "--via", "kernel")
        assert all(s["conditions"]["cut"] == [] for s in cut["nodes"].values()), "the shaper cuts nothing"
        assert len(cut["kernel"]["n1"]["rules"]) == 2 and len(cut["kernel"]["n2"]["rules"]) == 1
        marks["cut"] = time.monotonic()
        with trio.fail_after(30):
            while run.sequencer == "n1":
                await trio.sleep(0.1)
        await trio.sleep(1)
        marks["version_moved"] = run.chains[-1][1]
        marks["dropped"] = sum(int(r.split(" -c ")[1].split()[0]) for s in net(d, "show")["kernel"].values() for r in s["rules"])
        healed = net(d, "heal", "--via", "kernel")
        assert all(s["rules"] == [] for s in healed["kernel"].values())
        marks["healed"] = time.monotonic()
        await trio.sleep(8)  # well past the detector's stable_s (3 s) and the supervisors' quiet_s
        run.stop = True

    async def main() -> list[list[bytes]]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer, cfg, run)
            nursery.start_soon(chain_monitor, cfg, run)
            nursery.start_soon(nemesis)
        tail = max(run.acked) + 1
        return [await read_all(cfg, n.id, tail) for n in cfg.nodes]

    logs = trio.run(main)
    versions = [(round(t - marks["cut"], 2), v, segs[-1][1]) for t, v, segs in run.chains]
    print(f"\nkernel partition n1 | n2,n3: {marks['dropped']} packets dropped by the rules; (seconds after the cut, version, sequencer): {versions}")
    assert marks["dropped"] > 0, "the kernel rules dropped packets"
    assert marks["version_moved"] > marks["version_before"]
    assert run.chains[-1][1] == marks["version_moved"], f"a reconfiguration after the heal: {versions}"
    assert [n["alive"] for n in status(d)["nodes"]] == [True, True, True], "n1 answers again"
    assert len([t for t in run.times if t > marks["healed"]]) > 20, "appends go on after the heal"
    for log in logs:
        for pos, entry in run.acked.items():
            assert log[pos] == entry, f"acknowledged {entry!r} at {pos}, the log holds {log[pos]!r} there"


def _shaper_and_kernel_cut_the_same_links(d: Path) -> None:
    assert cut_links(d) == set(), "a healed network carries every mark"
    cases = {
        ("n1", "|", "n2,n3"): {("n1", "n2"), ("n1", "n3"), ("n2", "n1"), ("n3", "n1")},
        ("n1", ">", "n2"): {("n1", "n2")},
    }
    for spec, expected in cases.items():
        seen = {}
        for via in ("shaper", "kernel"):
            net_here(d, "partition", *spec, "--via", via)
            seen[via] = cut_links(d)
            net_here(d, "heal")
        assert seen["shaper"] == seen["kernel"] == expected, f"partition {' '.join(spec)}: {seen}, expected {expected}"


def _node_processes(d: Path) -> bool:
    return subprocess.run(["pgrep", "-f", f"node --dir {d} "], capture_output=True).returncode == 0


@needs_netns
@pytest.mark.parametrize("when", ["making the namespaces", "starting the nodes"])
def test_down_removes_what_an_up_killed_half_way_made(tmp_path, when):
    """``kill -9`` of ``up`` as soon as its record exists (the namespaces half made), or as
    soon as a node process exists (nodes running that cluster.json may not list yet):
    ``down`` leaves no namespace, link, rule or node process."""
    d = tmp_path / "c"
    up = subprocess.Popen([*CLI, "up", "--netns", "--detach", "--dir", str(d), "--base-port", str(free_base_port(3, "tcp"))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (_node_processes(d) if when == "starting the nodes" else netns.record_path(d).exists()):
            time.sleep(0.005)
        up.send_signal(signal.SIGKILL)
    finally:
        up.wait(10)
    cfg = cluster.load(d)
    rec = netns.load_record(d)
    made = netns.leftovers(cfg.cluster_id)
    assert made, "up was killed after it made something"
    down = cli("down", "--dir", str(d), timeout=60)
    assert down.returncode == 0, down.stderr
    assert leftovers(cfg, rec) == [], f"left behind (up had made {made})"
    assert not _node_processes(d), "no node process left"


# ------------------------------------------------------------ the probe and the errors


def test_the_net_role_sends_a_probes_mark_and_tells_the_marks_it_received():
    from delos_ref.effects import Fail, Incoming, Reply, Send
    from delos_ref.netctl import NetControlCore, NetMark, NetMarks, NetMarksAsk, NetProbe

    core = NetControlCore("n1", lambda c: None, lambda: (NetConditions(), {}))
    effects = core.handle(Incoming("cli", 7, NetProbe("n2", "t1")))
    assert effects[0] == Send("n2", NetMark("t1")) and isinstance(effects[1], Reply) and effects[1].rid == 7
    assert core.handle(Incoming("n3", 0, NetMark("t2"))) == [], "a mark is one-way"
    assert core.handle(Incoming("cli", 8, NetMarksAsk())) == [Reply("cli", 8, NetMarks("n1", (("n3", "t2"),)))]
    assert isinstance(core.handle(Incoming("cli", 9, NetProbe("n1", "t3")))[0], Fail)


def test_via_kernel_on_a_loopback_cluster_is_a_usage_error(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    cluster.save(tmp_path, cluster.new_config(3, "tcp", 13900))
    for args in (["partition", "n1", "|", "n2", "--via", "kernel"], ["heal", "--via", "both"], ["loss", "2%", "--via", "wire"]):
        result = CliRunner().invoke(app, ["net", *args, "--dir", str(tmp_path)])
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
