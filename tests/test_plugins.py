"""Loglet plugins without processes (``delos_ref/plugins.py``): what a module must define,
the one-line errors for one that cannot be used, a cluster file that names one, and the
hooks a node and a registry call (``serve``, ``loglet_kind``). The cluster test is
``tests/test_plugin_cluster.py``."""

from __future__ import annotations

import json

import pytest
import served_loglet_plugin

from delos_ref import cluster, plugins
from delos_ref.ops import check_new_module
from delos_ref.process import serve_plugins
from delos_ref.virtuallog.chain import Segment
from delos_ref.virtuallog.registry import MemoryLogletConfig, cluster_registry

TUTORIAL = "delos_ref.examples.directory_loglet"


def test_the_tutorials_module_is_a_plugin_and_its_kind_joins_a_cluster_registry():
    plugin = plugins.load(TUTORIAL)
    assert plugin.kind == "directory" and plugin.serve is None
    registry = cluster_registry(None, ["n1"], [TUTORIAL])  # type: ignore[arg-type]
    assert "directory" in registry.kinds and "directory" not in cluster_registry(None, ["n1"]).kinds  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "module, message",
    [
        ("not a module", "is not a dotted module name"),
        ("no_such_module_xyz", "cannot import loglet module no_such_module_xyz: ModuleNotFoundError"),
        ("json", "module json is not a loglet plugin: it defines no loglet_kind() and no new_config()"),
    ],
)
def test_a_module_that_cannot_be_used_is_one_line(module, message):
    with pytest.raises(plugins.PluginError) as e:
        plugins.load(module)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_kind_name_is_taken_once():
    with pytest.raises(plugins.PluginError, match="both register the kind 'directory'"):
        plugins.load_all([TUTORIAL, TUTORIAL])
    assert check_new_module([], TUTORIAL).kind == "directory"
    assert check_new_module([TUTORIAL], TUTORIAL).kind == "directory"  # already recorded: fine


def test_a_cluster_file_naming_a_module_that_does_not_import_is_a_cluster_error(tmp_path):
    cfg = cluster.new_config(3, "tcp", 15400)
    cfg.loglet_modules = ["no_such_module_xyz"]
    tmp_path.joinpath("cluster.json").write_text(cfg.to_json())
    assert json.loads(tmp_path.joinpath("cluster.json").read_text())["loglet_modules"] == ["no_such_module_xyz"]
    assert cluster.load_file(tmp_path).loglet_modules == ["no_such_module_xyz"]
    with pytest.raises(cluster.ClusterError, match="cannot import loglet module no_such_module_xyz"):
        cluster.load(tmp_path)


def test_a_node_serves_its_plugins_and_their_kinds_build_loglets(tmp_path):
    class FakeNode:
        node_id = "n2"

    cfg = cluster.new_config(3, "tcp", 15400)
    cfg.loglet_modules = ["served_loglet_plugin"]
    serve_plugins(cfg, FakeNode(), tmp_path)  # type: ignore[arg-type]
    assert served_loglet_plugin.SERVED == [("n2", str(tmp_path))]
    registry = cluster_registry(None, ["n1"], cfg.loglet_modules)  # type: ignore[arg-type]
    kind, params = registry.encode(MemoryLogletConfig("M1"))
    assert kind == "served" and registry.loglet(Segment(0, None, kind, params)) is served_loglet_plugin.STORE.get("M1")
