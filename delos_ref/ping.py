"""The ping role: every node answers ``Ping`` with who it is and what it hosts.

``delos-ref status`` uses it to report liveness from a real round trip over the cluster's
transport (not from a pid check), and the node's roles and counters.
"""

from __future__ import annotations

from typing import Any, Callable

from delos_ref.effects import Effect, Incoming, Reply
from transports.codec import message


@message("node.ping")
class Ping:
    want_stats: bool = False


@message("node.pong")
class Pong:
    node_id: str
    roles: tuple[str, ...]
    pid: int
    info: dict[str, Any]


class PingCore:
    """Pure: answers pings. ``describe`` returns the node's roles and counters as plain data."""

    handles = (Ping,)

    def __init__(self, node_id: str, pid: int, describe: Callable[[bool], tuple[tuple[str, ...], dict[str, Any]]]) -> None:
        self.node_id = node_id
        self.pid = pid
        self._describe = describe
        self.pings = 0

    def handle(self, item: Any) -> list[Effect]:
        if not isinstance(item, Incoming) or not item.wants_reply:
            return []  # a one-way ping has nobody to answer
        self.pings += 1
        roles, info = self._describe(item.msg.want_stats)
        return [Reply(item.src, item.rid, Pong(self.node_id, roles, self.pid, info))]

    def statistics(self) -> dict[str, int]:
        return {"pings": self.pings}
