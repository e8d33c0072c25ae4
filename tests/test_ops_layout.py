"""Pure parts of the operator tooling: the disaggregated layout in cluster.json, the JSON
form of entries, and the dashboard rendered from a status document (no processes)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from cli import dashboard
from delos_ref import cluster, ops


def test_colocated_layout_gives_every_node_every_role():
    cfg = cluster.new_config(3, "tcp", 43000)
    assert [n.id for n in cfg.nodes] == ["n1", "n2", "n3"]
    assert all(n.hosted_roles == cluster.NODE_ROLES for n in cfg.nodes)
    assert not cfg.disaggregated
    assert cfg.with_role("acceptor") == cfg.with_role("logserver") == ["n1", "n2", "n3"]


def test_disaggregated_layout_puts_logservers_apart():
    cfg = cluster.new_config(3, "udp", 43000, logservers=3)
    assert [(n.id, n.port, tuple(n.hosted_roles)) for n in cfg.nodes] == [
        ("n1", 43000, ("acceptor", "sequencer")),
        ("n2", 43001, ("acceptor", "sequencer")),
        ("n3", 43002, ("acceptor", "sequencer")),
        ("ls1", 43003, ("logserver",)),
        ("ls2", 43004, ("logserver",)),
        ("ls3", 43005, ("logserver",)),
    ]
    assert cfg.disaggregated
    assert cfg.with_role("acceptor") == ["n1", "n2", "n3"]
    assert cfg.with_role("logserver") == ["ls1", "ls2", "ls3"]
    again = cluster.ClusterConfig.from_json(cfg.to_json(), "cluster.json")
    assert [n.roles for n in again.nodes] == [n.roles for n in cfg.nodes]


def test_initial_loglet_follows_the_roles():
    from delos_ref.process import initial_loglet

    cfg = cluster.new_config(2, "tcp", 43000, logservers=3)
    config = initial_loglet(cfg)
    assert (config.sequencer, config.logservers) == ("n1", ("ls1", "ls2", "ls3"))
    assert initial_loglet(cfg, "bootstrap").acceptors == ("n1", "n2")
    with pytest.raises(ValueError, match="unknown initial loglet kind"):
        initial_loglet(cfg, "no-such-kind")


def test_a_file_without_roles_means_every_role_and_bad_roles_are_refused():
    cfg = cluster.new_config(3, "tcp", 43000)
    raw = json.loads(cfg.to_json())
    for n in raw["nodes"]:
        del n["roles"]
    old = cluster.ClusterConfig.from_json(json.dumps(raw), "old.json")
    assert all(n.hosted_roles == cluster.NODE_ROLES for n in old.nodes)
    raw["nodes"][0]["roles"] = ["acceptor", "chef"]
    with pytest.raises(cluster.ClusterError, match="unknown roles"):
        cluster.ClusterConfig.from_json(json.dumps(raw), "bad.json")
    for n in raw["nodes"]:
        n["roles"] = ["acceptor", "logserver"]
    with pytest.raises(cluster.ClusterError, match="no node hosts the sequencer role"):
        cluster.ClusterConfig.from_json(json.dumps(raw), "bad.json")


def test_bad_layout_arguments_are_refused():
    with pytest.raises(cluster.ClusterError, match="--logservers"):
        cluster.new_config(3, "tcp", 43000, logservers=16)
    with pytest.raises(cluster.ClusterError, match="room for 6 ports"):
        cluster.new_config(3, "tcp", 65533, logservers=3)


def test_entries_are_text_when_utf8_else_base64():
    assert ops.entry_json(4, "héllo".encode()) == {"position": 4, "data": "héllo"}
    assert ops.entry_json(5, b"\xff\x00") == {"position": 5, "data_b64": "/wA="}


def _report(entries_n1: int, sealed: bool) -> dict:
    return {
        "cluster_id": "c0ffee",
        "transport": "tcp",
        "nodes": [
            {"id": "n1", "address": "127.0.0.1:1", "pid": 11, "alive": True, "roles": ["acceptor", "ping", "sequencer"], "process": "running", "configured_roles": ["acceptor", "sequencer"]},
            {"id": "ls1", "address": "127.0.0.1:2", "pid": 12, "alive": False, "roles": [], "process": "dead", "configured_roles": ["logserver"]},
        ],
        "metastore": {"version": 2},
        "chain": {
            "version": 2,
            "segments": [
                {"start": 0, "stop": 7, "kind": "native", "sealed": True, "params": {"loglet_id": "L0", "sequencer": "n1", "logservers": ["ls1"]}},
                {"start": 7, "stop": None, "kind": "native", "sealed": sealed, "params": {"loglet_id": "op-1", "sequencer": "n1", "logservers": ["ls1"]}},
            ],
        },
        "tail": {"position": 9, "sealed": sealed},
        "stats": {"n1": {"roles": {"sequencer": {"entries": entries_n1}}}, "ls1": None},
    }


def _text(renderable) -> str:
    console = Console(record=True, width=120, file=open("/dev/null", "w"))
    console.print(renderable)
    return console.export_text()


def test_dashboard_shows_nodes_segments_seal_marks_tail_version_and_rate():
    rate = dashboard.Rate()
    assert rate.update(10.0, _report(100, False)) is None  # one sample: no rate yet
    assert rate.update(12.0, _report(300, False)) == pytest.approx(100.0)
    text = _text(dashboard.render(_report(300, False), title="T", rate=100.0))
    assert "MetaStore version 2" in text and "tail 9" in text and "appends/s 100" in text
    assert "[0, 7)" in text and "[7, tail)" in text and "no (active)" in text and "op-1" in text
    assert "ls1" in text and "dead" in text and "logserver" in text and "300" in text
    sealed = _text(dashboard.render(_report(300, True), title="T"))
    assert "SEALED" in sealed and "rolls forward" in sealed


def test_dashboard_without_a_metastore_quorum_says_so():
    report = _report(0, False)
    report.update(metastore={"version": None, "error": "the MetaStore cannot reach a quorum: n2, n3 do not answer"}, chain=None, tail=None)
    text = _text(dashboard.render(report, title="T"))
    assert "unavailable" in text and "n2, n3 do not answer" in text and "no MetaStore quorum" in text
