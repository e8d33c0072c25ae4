"""Loglet plugins: a user's loglet kind, loaded by every process of a ``delos-ref up`` cluster.

The data plane of virtual consensus is replaceable (docs/tutorial-loglet.md): a new loglet
kind needs no change to the VirtualLog, only a registry entry in every process that may meet
one of its segments. A *loglet plugin* is a Python module that provides that entry, and the
cluster names its plugins in ``cluster.json`` (``"loglet_modules": ["pkg.mod", ...]``,
written by ``delos-ref up --loglet-module pkg.mod`` or ``delos-ref plugin add pkg.mod``).

**The interface.** A plugin module defines:

* ``loglet_kind(node) -> LogletKind`` -- the registry entry (its kind name, config type,
  how to build a client of the loglet on ``node``, how to clone a config under a fresh id;
  ``delos_ref/virtuallog/registry.py``). Importing the module registers its config type
  with the codec (``@message``), so that chains naming the kind decode;
* ``new_config(ops, loglet_id) -> config`` -- the config of a fresh loglet for ``delos-ref
  reconfigure --loglet KIND`` (``ops`` is the command's :class:`~delos_ref.ops.OpsSession`:
  the cluster's ``directory``, its ``cfg``, its ``vlog``);
* optionally ``serve(node, data_dir)`` -- if the kind needs servers: add their roles to
  each node process (``node.add_role``), their state under ``data_dir`` (``DIR/<id>/``).

**Who loads them.** :func:`delos_ref.cluster.load` imports the modules ``cluster.json``
names, so every node process (``run_node``), database replica, supervisor and operator
command has them before it decodes a chain; :func:`delos_ref.virtuallog.registry.cluster_registry`
adds their kinds. A module that cannot be imported is a one-line :class:`PluginError`.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

#: A dotted module name (``pkg.mod``): what ``--loglet-module`` takes.
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class PluginError(Exception):
    """A loglet module that cannot be used: the message is the one line the CLI prints."""


@dataclass(frozen=True)
class LogletPlugin:
    """One loaded plugin module: its name and the functions of the interface above."""

    module: str
    kind: str
    loglet_kind: Callable[[Any], Any]
    new_config: Callable[[Any, str], Any]
    serve: Callable[[Any, Any], None] | None


def load(module: str) -> LogletPlugin:
    """Import ``module`` and check that it is a loglet plugin (see the module docstring)."""
    if not _MODULE_NAME.match(module):
        raise PluginError(f"loglet module {module!r} is not a dotted module name such as pkg.mod")
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - any failure of a user's import is reported in one line
        raise PluginError(f"cannot import loglet module {module}: {type(e).__name__}: {e} (is it on PYTHONPATH?)") from None
    return _plugin_of(mod)


def _plugin_of(mod: ModuleType) -> LogletPlugin:
    missing = [name for name in ("loglet_kind", "new_config") if not callable(getattr(mod, name, None))]
    if missing:
        raise PluginError(f"module {mod.__name__} is not a loglet plugin: it defines no {' and no '.join(m + '()' for m in missing)} (see docs/tutorial-loglet.md)")
    try:
        kind = mod.loglet_kind(None).name  # the kind's name (the entry is built again per node)
    except Exception as e:  # noqa: BLE001
        raise PluginError(f"loglet module {mod.__name__}: loglet_kind(None) failed: {type(e).__name__}: {e}") from None
    serve = getattr(mod, "serve", None)
    return LogletPlugin(mod.__name__, kind, mod.loglet_kind, mod.new_config, serve if callable(serve) else None)


def load_all(modules: list[str] | tuple[str, ...]) -> list[LogletPlugin]:
    """Every module's plugin, in order; two modules of one kind name are refused."""
    plugins = [load(m) for m in modules]
    seen: dict[str, str] = {}
    for p in plugins:
        if p.kind in seen:
            raise PluginError(f"loglet modules {seen[p.kind]} and {p.module} both register the kind {p.kind!r}")
        seen[p.kind] = p.module
    return plugins


def by_kind(modules: list[str] | tuple[str, ...]) -> dict[str, LogletPlugin]:
    """The plugins of ``modules`` by kind name."""
    return {p.kind: p for p in load_all(modules)}
