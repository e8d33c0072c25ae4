"""A loglet plugin with servers, for tests/test_plugins.py: its kind builds memory loglets
and its ``serve`` records which nodes it was asked to serve on."""

from __future__ import annotations

from typing import Any

from delos_ref.virtuallog.registry import LogletKind, MemoryLogletConfig, MemoryLogletStore

STORE = MemoryLogletStore()
SERVED: list[tuple[str, str]] = []


def loglet_kind(node: Any = None) -> LogletKind:
    return LogletKind("served", MemoryLogletConfig, build=lambda cfg: STORE.get(cfg.loglet_id), clone=lambda cfg, fresh_id: MemoryLogletConfig(fresh_id))


def new_config(ops: Any, loglet_id: str) -> MemoryLogletConfig:
    return MemoryLogletConfig(loglet_id)


def serve(node: Any, data_dir: Any) -> None:
    SERVED.append((node.node_id, str(data_dir)))
