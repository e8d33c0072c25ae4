"""Message-sequence charts of a run, as SVG (drawn with ``drawsvg``) or an HTML page.

One lane per node and client, left to right; one row per trace event, time downwards (the
gutter shows the event's number and its time in seconds since the first event: virtual time
in a simulation, wall-clock time on a real cluster). How to read one: ``docs/charts.md``.

* A delivered message is an arrow from the sender's lane to the receiver's, labelled with its
  type and the key fields of the step it caused at the receiver (a ``Prepare`` that got a
  ``Promise`` reads ``Prepare i1 b2.x1``). A message delivered before (a network duplicate,
  or a resend of the same request) is dashed and says ``again``.
* A message that never arrived ends in a cross, labelled with why (lost, cut, receiver down).
* A real cluster's trace records no messages: a grey dotted arrow is one its steps imply (a
  LogServer's ``Store`` came from the sequencer's ``Append``, an acceptor's ``Promise`` from
  the proposer its ballot names, ...; :func:`~delos_ref.viz.model.inferred_messages`).
* A crash is a red cross on the node's lane, which stays grey until the restart (green bar);
  on a real cluster's trace a killed node shows where it started again ("killed"), its lane
  grey from its last logged step;
  a partition is an orange line across the chart naming its sides, a heal a green one.
* Each protocol step is a dot on its node's lane with its key fields; a step that changes state
  a reader should follow (promise and accept, local tail, seal bit, chain version, known tail)
  is bold.
* A client operation is a bar on the client's lane from invoke to return: green ok, red
  failed, orange unknown (``info``), grey still running at the end. A client node that runs
  several operations at once (the loglet workloads' append loops ``a1@0``, ``a1@1``) has a
  column of bars per loop, side by side.
* The event where a checker found a violation is marked red, with the checker's explanation;
  findings of checks over the whole run are listed at the bottom.

Long runs: draw a window (``window=(first, last)`` event numbers), only some nodes (``focus``:
their events, and the messages they exchange with the others, whose lanes are then omitted),
and lanes with nothing in the window collapse (named in the header instead of drawn).
"""

from __future__ import annotations

import bisect
import html
import textwrap
from dataclasses import dataclass, field
from typing import Any, Iterable

import drawsvg as draw

from delos_ref.viz.model import (
    DROPS,
    STATE_CHANGES,
    Violation,
    duplicates,
    fault_label,
    inferred_messages,
    key_fields,
    kind_of,
    lanes_of,
    mark_restarts,
    process_of,
    send_rows,
    touched,
    triggered,
)

GUTTER = 118  # event number and time
LANE_W = 190
ROW_H = 17
HEADER = 64
FONT = 10
OTHERS = "(others)"
COLOURS = {
    "message": "#1f4e8c",
    "drop": "#b03030",
    "dup": "#7a4fb0",
    "step": "#333333",
    "state": "#0b6e4f",
    "ok": "#2e9d4a",
    "fail": "#c0392b",
    "info": "#e08e0b",
    "open": "#999999",
    "crash": "#c0392b",
    "partition": "#e08e0b",
    "heal": "#2e9d4a",
    "violation": "#d62728",
    "inferred": "#6f6f6f",
}


#: A bound on the rows one chart draws (17 px each: 340,000 px of chart, ~6 MB of SVG); a
#: longer run is drawn a window at a time.
MAX_ROWS = 20_000


class ChartTooLong(ValueError):
    """More rows than :data:`MAX_ROWS` to draw: the caller should choose a window or a focus."""


@dataclass
class Layout:
    """Where things are: the visible event numbers, their rows' y, the lanes' x."""

    indices: list[int]
    y: dict[int, float]
    x: dict[str, float]
    lanes: list[str]
    collapsed: list[str] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0
    bar_columns: dict[str, int] = field(default_factory=dict)  # node -> client bar columns

    def y_at(self, index: int) -> float:
        """The y of event ``index``, or where it would be (between the visible rows around it)."""
        if index in self.y:
            return self.y[index]
        k = bisect.bisect_left(self.indices, index)
        if k >= len(self.indices):
            return self.height - ROW_H
        return self.y[self.indices[k]] - ROW_H / 2 if k else HEADER - 4

    def lane_x(self, node: str) -> float:
        return self.x.get(node, self.x.get(OTHERS, -1.0))


def layout(events: list[dict[str, Any]], *, focus: Iterable[str] | None = None, window: tuple[int, int] | None = None, violations: Iterable[Violation] = (), footer_lines: int = 0) -> Layout:
    """Choose the rows (events in the window that touch a focused lane) and the lanes."""
    lo, hi = window if window is not None else (0, len(events) - 1)
    lo, hi = max(lo, 0), min(hi, len(events) - 1)
    marked = {v.index for v in violations if v.index is not None}
    focus_set = set(focus) if focus else None
    indices = []
    for i in range(lo, hi + 1):
        e = events[i]
        on = touched(e)
        if focus_set is None or i in marked or set(on) & focus_set or (kind_of(e) == "fault" and not on):
            indices.append(i)
    if len(indices) > MAX_ROWS:
        raise ChartTooLong(f"{len(indices)} events to draw, more than one chart holds ({MAX_ROWS}): draw a window (--from-event/--to-event) or fewer lanes (--focus)")
    used = {n for i in indices for n in touched(events[i])}
    all_lanes = lanes_of(events)
    if focus_set is not None:
        lanes = [n for n in all_lanes if n in focus_set]
        if used - focus_set:
            lanes.append(OTHERS)
    else:
        lanes = [n for n in all_lanes if n in used]
    collapsed = [n for n in all_lanes if n not in lanes]
    x = {n: GUTTER + LANE_W * k + LANE_W / 2 for k, n in enumerate(lanes)}
    y = {i: HEADER + ROW_H * k + ROW_H / 2 for k, i in enumerate(indices)}
    assert indices == sorted(indices), "layout: rows follow the events' order (time downwards)"
    width = GUTTER + LANE_W * max(len(lanes), 1) + 260
    height = HEADER + ROW_H * (len(indices) + 1) + footer_lines * 14 + 20
    return Layout(indices, y, x, lanes, collapsed, width, height)


def render_svg(
    events: list[dict[str, Any]],
    *,
    title: str,
    violation: Violation | Iterable[Violation] | None = None,
    focus: Iterable[str] | None = None,
    window: tuple[int, int] | None = None,
) -> str:
    """The message-sequence chart of ``events`` as an SVG document (see the module docstring).

    ``violation``: one or several :class:`~delos_ref.viz.model.Violation` to mark; ``focus``:
    the nodes to draw (others' messages to them come from an ``(others)`` lane); ``window``:
    the first and last event number to draw (inclusive).
    """
    return svg_text(draw_chart(events, title=title, violations=_as_list(violation), focus=focus, window=window)[0])


def svg_text(d: draw.Drawing) -> str:
    """The drawing's SVG element, without the XML declaration (so it can sit inside HTML)."""
    text = d.as_svg()
    return text[text.index("<svg"):]


def render_chart_html(events: list[dict[str, Any]], *, title: str, violation: Violation | Iterable[Violation] | None = None, focus: Iterable[str] | None = None, window: tuple[int, int] | None = None) -> str:
    """The chart in a plain HTML page (no scripts, nothing fetched)."""
    svg = render_svg(events, title=title, violation=violation, focus=focus, window=window)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
        "<style>body{margin:0;font-family:sans-serif}</style></head><body>\n" + svg + "\n</body></html>\n"
    )


def _as_list(violation: Violation | Iterable[Violation] | None) -> list[Violation]:
    if violation is None:
        return []
    if isinstance(violation, Violation):
        return [violation]
    return list(violation)


def draw_chart(events: list[dict[str, Any]], *, title: str, violations: list[Violation], focus: Iterable[str] | None = None, window: tuple[int, int] | None = None) -> tuple[draw.Drawing, Layout]:
    """The drawing and its layout (the explorer uses the layout to highlight a step)."""
    events = mark_restarts(events)
    late = [v for v in violations if v.index is None]
    footer = sum(min(len(_wrap(f"{v.by}: {v.what}", 150)), MARK_LINES) for v in late[:LATE_SHOWN]) + (3 if late else 0)
    footer += MARK_LINES if any(v.index is not None for v in violations) else 0  # a mark's text may hang below the last row
    lay = layout(events, focus=focus, window=window, violations=violations, footer_lines=footer)
    d = draw.Drawing(lay.width, lay.height, font_family="sans-serif", font_size=FONT)
    d.append(draw.Rectangle(0, 0, lay.width, lay.height, fill="white"))
    _defs(d)
    _header(d, lay, title)
    _lanes(d, events, lay)
    columns = bar_columns(events)
    for e in events:
        if kind_of(e) == "client":
            lay.bar_columns[e["node"]] = max(lay.bar_columns.get(e["node"], 1), columns[process_of(e)] + 1)
    _client_bars(events, d, lay, columns)
    starts = send_rows(events)
    dups = duplicates(events)
    t0 = float(events[0].get("t", 0.0)) if events else 0.0
    has_network = any(e.get("role") == "net" for e in events)
    inferred = {} if has_network else inferred_messages(events)
    for i in lay.indices:
        if i in inferred:
            _inferred_arrow(d, events[i], lay, i, *inferred[i])
        _event(d, events, i, lay, starts, dups, t0)
    for v in violations:
        if v.index is not None and v.index in lay.y:
            _violation_mark(d, lay, v)
    if late:
        _late_violations(d, lay, late)
    return d, lay


def _defs(d: draw.Drawing) -> None:
    for name, colour in (("arrow", COLOURS["message"]), ("arrow-dup", COLOURS["dup"]), ("arrow-inferred", COLOURS["inferred"])):
        m = draw.Marker(-1, -3, 6, 3, scale=1, orient="auto", id=name)
        m.append(draw.Lines(-1, -3, 6, 0, -1, 3, close=True, fill=colour))
        d.append(m)


def _header(d: draw.Drawing, lay: Layout, title: str) -> None:
    d.append(draw.Text(title, 14, 8, 18, font_weight="bold"))
    if lay.collapsed:
        d.append(draw.Text("lanes not drawn (nothing in this window or not in focus): " + ", ".join(lay.collapsed), FONT, 8, 34, fill="#777"))
    d.append(draw.Text("event  t (s)", FONT, 8, HEADER - 8, fill="#777"))
    for node, x in lay.x.items():
        d.append(draw.Text(node, 12, x, HEADER - 8, text_anchor="middle", font_weight="bold"))


def _lanes(d: draw.Drawing, events: list[dict[str, Any]], lay: Layout) -> None:
    top, bottom = HEADER - 4, (lay.y[lay.indices[-1]] + ROW_H / 2) if lay.indices else HEADER
    for x in lay.x.values():
        d.append(draw.Line(x, top, x, bottom, stroke="#bbb", stroke_width=1))
    down_since: dict[str, int] = {}
    last_seen: dict[str, int] = {}
    for i, e in enumerate(events):
        if e.get("event") == "killed":  # a real cluster: dead from its last logged step on
            node = str(e.get("node"))
            _down_span(d, lay, node, last_seen.get(node, i), i)
        for node in touched(e):
            last_seen[node] = i
        if e.get("role") != "nemesis" or e.get("event") not in ("crash", "restart"):
            continue
        target = e["target"]
        if e["event"] == "crash":
            down_since[target] = i
        elif target in down_since:
            _down_span(d, lay, target, down_since.pop(target), i)
    for target, since in down_since.items():
        _down_span(d, lay, target, since, None)


def _down_span(d: draw.Drawing, lay: Layout, node: str, since: int, until: int | None) -> None:
    if node not in lay.x:
        return
    y0 = lay.y_at(since)
    y1 = lay.y_at(until) if until is not None else (lay.y[lay.indices[-1]] if lay.indices else y0)
    if y1 > y0:
        d.append(draw.Rectangle(lay.x[node] - 3, y0, 6, y1 - y0, fill="#ddd", stroke="#c0392b", stroke_dasharray="3,3", stroke_width=0.7))


BAR_W = 7  # a client bar's width; a node's second process's bars sit one width (+2) left


def bar_columns(events: list[dict[str, Any]]) -> dict[str, int]:
    """Each client process's column on its node's lane: 0, 1, ... by first appearance."""
    out: dict[str, int] = {}
    per_node: dict[str, int] = {}
    for e in events:
        if kind_of(e) == "client" and process_of(e) not in out:
            out[process_of(e)] = per_node.get(e["node"], 0)
            per_node[e["node"]] = out[process_of(e)] + 1
    return out


def _client_bars(events: list[dict[str, Any]], d: draw.Drawing, lay: Layout, columns: dict[str, int]) -> None:
    """A bar from each operation's invoke to its completion, coloured by outcome."""
    pending: dict[str, int] = {}
    for i, e in enumerate(events):
        if kind_of(e) != "client":
            continue
        process = process_of(e)
        if e["event"] == "invoke":
            pending[process] = i
        elif process in pending:
            _bar(d, lay, e["node"], columns[process], pending.pop(process), i, e["event"])
    for process, start in pending.items():
        _bar(d, lay, events[start]["node"], columns[process], start, None, "open")


def _bar(d: draw.Drawing, lay: Layout, node: str, column: int, start: int, end: int | None, outcome: str) -> None:
    if node not in lay.x:
        return
    y0 = lay.y_at(start)
    bottom = (lay.y[lay.indices[-1]] + ROW_H / 2) if lay.indices else HEADER
    y1 = min(lay.y_at(end) if end is not None else bottom, bottom)
    if y1 < HEADER or y0 > bottom:
        return
    x = lay.x[node] - 12 - (BAR_W + 2) * column
    d.append(draw.Rectangle(x, y0, BAR_W, max(y1 - y0, 2), fill=COLOURS[outcome], fill_opacity=0.75, class_=f"bar-{outcome}"))


def _event(d: draw.Drawing, events: list[dict[str, Any]], i: int, lay: Layout, starts: dict[int, int], dups: set[int], t0: float) -> None:
    e = events[i]
    y = lay.y[i]
    d.append(draw.Text(f"{i:>5}  {float(e.get('t', 0)) - t0:.4f}", FONT, 8, y + 3, fill="#999", font_family="monospace"))
    kind = kind_of(e)
    if kind in ("message", "drop"):
        _arrow(d, events, i, lay, starts.get(i, i), i in dups)
    elif kind == "fault":
        _fault(d, e, lay, y)
    elif kind == "client":
        _client_label(d, e, lay, y)
    else:
        _step(d, e, lay, y)


def _arrow(d: draw.Drawing, events: list[dict[str, Any]], i: int, lay: Layout, start: int, dup: bool) -> None:
    e = events[i]
    x0, x1 = lay.lane_x(e["src"]), lay.lane_x(e["dst"])
    y0, y1 = lay.y_at(start), lay.y[i]
    if x0 < 0 or x1 < 0:
        return
    if x0 == x1:  # a message to itself (or between two lanes folded into "(others)")
        x1 = x0 + 30
    delivered = e["event"] == "deliver"
    if delivered:
        colour = COLOURS["dup"] if dup else COLOURS["message"]
        d.append(draw.Line(x0, y0, x1, y1, stroke=colour, stroke_width=1, stroke_dasharray="4,2" if dup else None, marker_end="url(#arrow-dup)" if dup else "url(#arrow)"))
        cause = triggered(events, i)
        label = e.get("msg", "?") + (" again" if dup else "") + (f" {key_fields(cause)}" if cause is not None else "")
    else:
        xe = x0 + (x1 - x0) * 0.6
        ye = y0 + (y1 - y0) * 0.6 if y1 != y0 else y1
        d.append(draw.Line(x0, y0, xe, ye, stroke=COLOURS["drop"], stroke_width=1, stroke_dasharray="2,2"))
        _cross(d, xe, ye, 4, COLOURS["drop"])
        label = f"{e.get('msg', '?')} {DROPS.get(e['event'], e['event'])}"
        x1, y1 = xe, ye
    mx = (x0 + x1) / 2
    d.append(draw.Text(label[:70], FONT - 1, mx, (y0 + y1) / 2 - 2, text_anchor="middle", fill=COLOURS["drop"] if not delivered else "#222"))


def _inferred_arrow(d: draw.Drawing, e: dict[str, Any], lay: Layout, i: int, sender: str, start: int, label: str) -> None:
    """A message a real cluster's trace implies (see :func:`~delos_ref.viz.model.inferred_messages`)."""
    x0, x1 = lay.lane_x(sender), lay.lane_x(str(e.get("node")))
    if x0 < 0 or x1 < 0 or x0 == x1:
        return
    y0, y1 = lay.y_at(start), lay.y[i]
    d.append(draw.Line(x0, y0, x1, y1, stroke=COLOURS["inferred"], stroke_width=1.2, stroke_dasharray="3,2", marker_end="url(#arrow-inferred)"))
    d.append(draw.Text(label[:60], FONT - 1, (x0 + x1) / 2, (y0 + y1) / 2 - 2, text_anchor="middle", fill=COLOURS["inferred"]))


def _cross(d: draw.Drawing, x: float, y: float, r: float, colour: str) -> None:
    d.append(draw.Line(x - r, y - r, x + r, y + r, stroke=colour, stroke_width=2))
    d.append(draw.Line(x - r, y + r, x + r, y - r, stroke=colour, stroke_width=2))


def _fault(d: draw.Drawing, e: dict[str, Any], lay: Layout, y: float) -> None:
    name = e["event"]
    left, right = GUTTER, GUTTER + LANE_W * len(lay.lanes)
    if name in ("crash", "killed"):
        node = e.get("target", e.get("node"))
        x = lay.lane_x(node)
        if x >= 0:
            _cross(d, x, y, 6, COLOURS["crash"])
            d.append(draw.Text(fault_label(e) if name == "killed" else f"CRASH {node}", FONT, x + 9, y + 4, fill=COLOURS["crash"], font_weight="bold"))
    elif name == "restart":
        x = lay.lane_x(e["target"])
        if x >= 0:
            d.append(draw.Rectangle(x - 8, y - 2, 16, 4, fill=COLOURS["heal"]))
            d.append(draw.Text(f"restart {e['target']}", FONT, x + 9, y + 4, fill=COLOURS["heal"], font_weight="bold"))
    elif name == "cut_link":
        x0, x1 = lay.lane_x(e["src"]), lay.lane_x(e["dst"])
        if x0 >= 0 and x1 >= 0:
            d.append(draw.Line(x0, y, x1, y, stroke=COLOURS["partition"], stroke_width=2, stroke_dasharray="6,3"))
            d.append(draw.Text(fault_label(e), FONT, (x0 + x1) / 2, y - 3, text_anchor="middle", fill=COLOURS["partition"], font_weight="bold"))
    else:
        colour = COLOURS["heal"] if name == "heal" else COLOURS["partition"]
        d.append(draw.Line(left, y, right, y, stroke=colour, stroke_width=2, stroke_dasharray="8,3"))
        d.append(draw.Text(fault_label(e), FONT, left + 4, y - 3, fill=colour, font_weight="bold"))


def _client_label(d: draw.Drawing, e: dict[str, Any], lay: Layout, y: float) -> None:
    x = lay.lane_x(e["node"])
    if x < 0:
        return
    value = e.get("value")
    text = f"{e['f']}({'' if value is None else value})" if e["event"] == "invoke" else f"{e['event']}" + ("" if value is None else f" {value}")
    if "process" in e:
        text = f"{e['process']} {text}"
        x -= (BAR_W + 2) * (lay.bar_columns.get(e["node"], 1) - 1)  # left of the node's bars
    colour = "#222" if e["event"] == "invoke" else COLOURS[e["event"]]
    d.append(draw.Text(text[:50], FONT, x - 14, y + 3, text_anchor="end", fill=colour, font_weight="bold"))


def _step(d: draw.Drawing, e: dict[str, Any], lay: Layout, y: float) -> None:
    x = lay.lane_x(str(e.get("node")))
    if x < 0:
        return
    state = e.get("event") in STATE_CHANGES
    colour = COLOURS["state"] if state else COLOURS["step"]
    d.append(draw.Circle(x, y, 3 if state else 2, fill=colour))
    text = f"{e.get('event')} {key_fields(e)}".strip()
    d.append(draw.Text(text[:60], FONT, x + 6, y + 3, fill=colour, font_weight="bold" if state else None))


MARK_LINES = 8  # lines of a checker's explanation shown at the violating event
LATE_SHOWN = 10  # findings listed at the bottom (the explorer lists them all)


def _wrap(text: str, width: int) -> list[str]:
    """The lines of ``text`` (its own line breaks kept), each at most ``width`` characters."""
    return [part for line in text.splitlines() for part in (textwrap.wrap(line, width) or [""])] or [""]


def _violation_mark(d: draw.Drawing, lay: Layout, v: Violation) -> None:
    y = lay.y[v.index]  # type: ignore[index]
    right = GUTTER + LANE_W * len(lay.lanes)
    d.append(draw.Rectangle(2, y - ROW_H / 2, right + 250, ROW_H, fill=COLOURS["violation"], fill_opacity=0.15, stroke=COLOURS["violation"], class_="violation"))
    what = v.what
    if "\nStuck:" in what:  # a linearizability failure: the operation it got stuck on first
        head, stuck = what.split("\nStuck:", 1)
        what = head.splitlines()[0] + "\nStuck:" + stuck
    lines = _wrap(f"VIOLATION ({v.by}): {what}", 110)
    if len(lines) > MARK_LINES:
        lines = lines[: MARK_LINES - 1] + [f"... ({len(lines) - MARK_LINES + 1} more lines: the whole explanation is in the explorer and `delos-ref sim`)"]
    for k, line in enumerate(lines):
        d.append(draw.Text(line, FONT, GUTTER + 4, y + ROW_H / 2 + 12 + 12 * k, fill=COLOURS["violation"], font_weight="bold"))


def _late_violations(d: draw.Drawing, lay: Layout, late: list[Violation]) -> None:
    y = (lay.y[lay.indices[-1]] if lay.indices else HEADER) + ROW_H + 6
    d.append(draw.Text("Found by the checks after the run (over the whole history):", FONT + 1, 8, y, fill=COLOURS["violation"], font_weight="bold"))
    for v in late[:LATE_SHOWN]:
        for line in _wrap(f"{v.by}: {v.what}", 150)[:MARK_LINES]:
            y += 14
            d.append(draw.Text(line, FONT, 16, y, fill=COLOURS["violation"]))
    if len(late) > LATE_SHOWN:
        d.append(draw.Text(f"... and {len(late) - LATE_SHOWN} more", FONT, 16, y + 14, fill=COLOURS["violation"]))
