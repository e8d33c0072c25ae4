"""What every trace checker shares: the violation, the event loop, the dispatch table.

A checker is a transcription of one spec. Subclasses define ``ACTIONS``: a mapping from a
trace event ``(role, event)`` to the name of a method, which is named like the spec action
the event is mapped to. :meth:`Checker.step` calls it for one event; the method first checks
the action's enabling condition (:meth:`Checker.require`), then applies its effect to the
state, and ``step`` then checks the spec's invariants (:meth:`Checker.invariants`).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar


class TraceViolation(Exception):
    """The trace is not a behaviour of the spec: which line, which action, what failed."""

    def __init__(self, spec: str, index: int, event: dict[str, Any] | None, action: str, why: str) -> None:
        self.spec, self.index, self.event, self.action, self.why = spec, index, event, action, why
        where = f"line {index + 1}" if index >= 0 else "end of trace"
        shown = "" if event is None else " " + json.dumps(event, sort_keys=True)[:300]
        super().__init__(f"{spec}: {where}: {action}: {why}.{shown}")


class Checker:
    """Base of the per-spec checkers; see the module docstring."""

    SPEC: ClassVar[str] = "?"
    #: (role, event) -> method name (the TLA+ action the event maps to)
    ACTIONS: ClassVar[dict[tuple[str, str], str]] = {}

    def __init__(self) -> None:
        self.index = -1
        self.event: dict[str, Any] | None = None
        self.action = "Init"
        self.steps: dict[str, int] = {}

    def require(self, condition: bool, why: str) -> None:
        """An enabling condition, or a logged value that must match the spec's state."""
        if not condition:
            raise TraceViolation(self.SPEC, self.index, self.event, self.action, why)

    def step(self, index: int, event: dict[str, Any]) -> str | None:
        """Map one event to its action, take it, check the invariants; the action's name."""
        name = self.ACTIONS.get((event.get("role", ""), event.get("event", "")))
        self.observe(event)
        if name is None:
            return None
        self.index, self.event, self.action = index, event, name
        getattr(self, name)(event)
        self.steps[self.action] = self.steps.get(self.action, 0) + 1
        self.invariants()
        return name

    @classmethod
    def preprocess(cls, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Make explicit the steps of actors that log nothing (default: none)."""
        return events

    def observe(self, event: dict[str, Any]) -> None:
        """Learn constants (e.g. the set of acceptors) from any event; default: nothing."""

    def invariants(self) -> None:
        """The spec's invariants that the last action could have broken."""

    def finish(self) -> None:
        """Checks that need the whole trace (e.g. properties of every result)."""
        self.index, self.event, self.action = -1, None, "End"


def canon(value: Any) -> str:
    """A hashable canonical form of a logged JSON value (entry data, chains, updates)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
