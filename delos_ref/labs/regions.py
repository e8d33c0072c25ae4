"""Marked regions: how a lab's skeleton and its solution come out of the real code.

A lab removes one protocol rule from a real module. The rule's code sits between two comments,
at the indentation of the code they enclose::

    def on_accept(self, req, msg):
        \"\"\"Phase 2b.\"\"\"
        # lab: acceptor begin
        ...the rule...
        # lab: acceptor end

The markers are comments: the real module behaves the same with or without them. The
*skeleton* keeps both markers and replaces what lies between them by a TODO that states the
rule and a ``raise NotImplementedError``; the *solution* is what lies between them. Because
both are cut from the module the project runs, a lab cannot drift from the code.

Pure text functions: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MARK = re.compile(r"^(?P<indent>[ \t]*)# lab: (?P<lab>[a-z_]+) (?P<end>begin|end)\s*$")


class RegionError(ValueError):
    """A module's markers are unbalanced, nested or name another lab's region wrongly."""


@dataclass(frozen=True, slots=True)
class Region:
    lab: str
    begin: int  # index of the ``begin`` marker line
    end: int  # index of the ``end`` marker line
    indent: str


def find_regions(text: str, lab: str) -> list[Region]:
    """The regions of ``lab`` in ``text``, in order. Raises :class:`RegionError`."""
    regions: list[Region] = []
    open_at: tuple[int, str] | None = None
    for i, line in enumerate(text.splitlines()):
        m = _MARK.match(line)
        if m is None or m["lab"] != lab:
            continue
        if m["end"] == "begin":
            if open_at is not None:
                raise RegionError(f"line {i + 1}: '# lab: {lab} begin' inside another {lab} region")
            open_at = (i, m["indent"])
            continue
        if open_at is None:
            raise RegionError(f"line {i + 1}: '# lab: {lab} end' without a begin")
        regions.append(Region(lab, open_at[0], i, open_at[1]))
        open_at = None
    if open_at is not None:
        raise RegionError(f"line {open_at[0] + 1}: '# lab: {lab} begin' is never closed")
    return regions


def solution(text: str, lab: str) -> list[str]:
    """Each region's code, dedented, in order."""
    lines = text.splitlines()
    out = []
    for r in find_regions(text, lab):
        body = lines[r.begin + 1 : r.end]
        out.append("\n".join(line[len(r.indent) :] if line.startswith(r.indent) else line.lstrip() for line in body))
    return out


def skeleton(text: str, lab: str, todos: list[str]) -> str:
    """``text`` with region ``k``'s code replaced by ``todos[k]`` (a comment) and a raise."""
    regions = find_regions(text, lab)
    if len(regions) != len(todos):
        raise RegionError(f"lab {lab}: {len(regions)} marked regions but {len(todos)} TODO texts")
    lines = text.splitlines()
    out: list[str] = []
    last = 0
    for r, todo in zip(regions, todos):
        out += lines[last : r.begin + 1]
        first, *rest = todo.strip().splitlines()
        out.append(f"{r.indent}# TODO (lab {lab}): {first}")
        out += [f"{r.indent}#   {line}".rstrip() for line in rest]
        out.append(f'{r.indent}raise NotImplementedError("lab {lab}: this rule is yours to write")')
        last = r.end
    out += lines[last:]
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def fill(text: str, lab: str, bodies: list[str]) -> str:
    """``text`` with region ``k``'s code replaced by ``bodies[k]`` (dedented code, as
    :func:`solution` returns it), re-indented: ``fill(skeleton(t), lab, solution(t)) == t``."""
    regions = find_regions(text, lab)
    if len(regions) != len(bodies):
        raise RegionError(f"lab {lab}: {len(regions)} marked regions but {len(bodies)} bodies")
    lines = text.splitlines()
    out: list[str] = []
    last = 0
    for r, body in zip(regions, bodies):
        out += lines[last : r.begin + 1]
        out += [f"{r.indent}{line}" if line else "" for line in body.splitlines()]
        last = r.end
    out += lines[last:]
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")
