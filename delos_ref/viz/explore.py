"""The run explorer: one self-contained HTML page to step through a run.

Left, the controls (first, back, forward, last, jump to an event number, jump to the
violation; the arrow keys step too, and a click on a row of the chart goes to its event), the current event, what the checkers found, and the
state after the event (:mod:`.state`: acceptor slots, LogServer tails and seal bits,
sequencer windows, a StripedLoglet's stripes and striped tail, the chain each client holds, the MetaStore's chain, the client history so
far); the keys the event changed are highlighted. Right, the run's chart (:mod:`.chart`), a
band on the current event's row, scrolled along with the steps.

The page needs no server and fetches nothing: the chart is inline SVG, the state is embedded
as JSON (one diff per event, replayed in the page), and the script is the few lines below,
written for this page (no library: there is little to do). A failing run opens at its
violation.

Test hooks (``tests/test_explorer_browser.py``): ``#step`` holds the current event number,
``#event`` its description, and each state row is ``tr[data-section][data-key]`` with the
value in ``td.value``.
"""

from __future__ import annotations

import html
import json
from typing import Any, Iterable

from delos_ref.viz.chart import ROW_H, draw_chart, svg_text
from delos_ref.viz.model import Violation, label_of
from delos_ref.viz.state import SECTIONS, fold

STYLE = """
body{margin:0;font-family:sans-serif;font-size:13px;display:flex;height:100vh}
#side{width:460px;min-width:460px;overflow:auto;contain:strict;padding:8px;border-right:1px solid #ccc;box-sizing:border-box}
#chart{flex:1;overflow:auto;position:relative;contain:strict}
#cursor{position:absolute;left:0;height:ROW_Hpx;background:rgba(58,123,213,0.22);pointer-events:none}
button{margin:1px;font-size:13px}
#step{font-weight:bold;font-size:16px}
#event{font-family:monospace;background:#f4f4f4;padding:4px;margin:6px 0;white-space:pre-wrap;word-break:break-all}
.violation{color:#d62728;font-weight:bold;margin:4px 0}
.here{background:#fde2e2}
h3{margin:10px 0 2px 0;font-size:13px;text-transform:uppercase;color:#555}
table{border-collapse:collapse;width:100%}
td{border-bottom:1px solid #eee;padding:1px 4px;vertical-align:top}
td.key{white-space:nowrap;color:#333;width:40%}
tr.changed{background:#fff3b0}
"""

SCRIPT = """
const D = JSON.parse(document.getElementById('data').textContent);
const N = D.labels.length;
let cur = -1, state = null;
function fresh() { const s = {}; D.sections.forEach(k => s[k] = new Map()); return s; }
function apply(s, j) {
  for (const [sec, key, val] of D.diffs[j]) { if (val === null) s[sec].delete(key); else s[sec].set(key, val); }
}
function stateAt(i) {  // forward from where we are; backward replays from the first event
  if (state === null || i < cur) { state = fresh(); cur = -1; }
  for (let j = cur + 1; j <= i; j++) apply(state, j);
  return state;
}
function esc(t) { const d = document.createElement('div'); d.textContent = t; return d.innerHTML; }
function show(i) {
  i = Math.max(0, Math.min(N - 1, i));
  const s = stateAt(i);
  cur = i;
  document.getElementById('step').textContent = cur;
  document.getElementById('event').textContent = D.labels[cur] + '\\n' + D.raw[cur];
  const changed = new Set(D.diffs[cur].map(d => d[0] + '|' + d[1]));
  let out = '';
  for (const sec of D.sections) {
    if (!s[sec].size) continue;
    out += '<h3>' + sec + '</h3><table>';
    const keys = [...s[sec].keys()];
    if (sec !== 'history') keys.sort();
    for (const k of keys) {
      const c = changed.has(sec + '|' + k) ? ' class="changed"' : '';
      out += '<tr data-section="' + esc(sec) + '" data-key="' + esc(k) + '"' + c + '><td class="key">' + esc(k) + '</td><td class="value">' + esc(s[sec].get(k)) + '</td></tr>';
    }
    out += '</table>';
  }
  document.getElementById('state').innerHTML = out;
  const here = D.violations.filter(v => v.index === cur);
  document.getElementById('here').innerHTML = here.map(v => '<div class="violation">VIOLATION (' + esc(v.by) + '): ' + esc(v.what) + '</div>').join('');
  const y = D.y[cur];
  const cursor = document.getElementById('cursor');  // a band over the chart, not inside it:
  cursor.style.top = (y - D.rowH / 2) + 'px';         // moving it repaints no SVG
  cursor.dataset.y = y;
  const pane = document.getElementById('chart');
  if (y < pane.scrollTop + 40 || y > pane.scrollTop + pane.clientHeight - 40) pane.scrollTop = y - pane.clientHeight / 2;
  history.replaceState(null, '', '#' + cur);
}
document.getElementById('first').onclick = () => show(0);
document.getElementById('prev').onclick = () => show(cur - 1);
document.getElementById('next').onclick = () => show(cur + 1);
document.getElementById('last').onclick = () => show(N - 1);
document.getElementById('go').onclick = () => show(parseInt(document.getElementById('jump').value || '0', 10));
document.getElementById('jump').onkeydown = e => { if (e.key === 'Enter') document.getElementById('go').click(); };
const vb = document.getElementById('toviolation');
if (D.open === null) vb.disabled = true; else vb.onclick = () => show(D.open);
document.addEventListener('keydown', e => {
  if (e.target.tagName === 'INPUT') return;
  if (e.key === 'ArrowDown' || e.key === 'ArrowRight') { show(cur + 1); e.preventDefault(); }
  if (e.key === 'ArrowUp' || e.key === 'ArrowLeft') { show(cur - 1); e.preventDefault(); }
});
document.getElementById('chart').addEventListener('click', e => {  // click a row: go to its event
  const pane = document.getElementById('chart');
  const y = e.clientY - pane.getBoundingClientRect().top + pane.scrollTop;
  let best = 0;
  for (let i = 1; i < N; i++) if (Math.abs(D.y[i] - y) < Math.abs(D.y[best] - y)) best = i;
  show(best);
});
const fromHash = parseInt(location.hash.slice(1), 10);
show(Number.isNaN(fromHash) ? (D.open === null ? 0 : D.open) : fromHash);
"""


def render_html(
    events: list[dict[str, Any]],
    *,
    title: str,
    violations: Iterable[Violation] = (),
    open_at: int | None = None,
    notes: Iterable[str] = (),
    replay: str | None = None,
    window: tuple[int, int] | None = None,
) -> str:
    """The explorer page for ``events`` (see the module docstring).

    ``open_at``: the event the page opens at, and its "violation" button jumps to (default:
    the first violation that points at an event, else the last event if there are any
    violations, else the first event). ``window``: draw only these events' rows of the chart
    (first and last, inclusive; a long run's page gets smaller and quicker): the steps still
    go through the whole run, the band stays at the window's edge outside it."""
    violations = list(violations)
    if open_at is None and violations:
        marked = [v.index for v in violations if v.index is not None]
        open_at = min(marked) if marked else len(events) - 1
    drawing, lay = draw_chart(events, title=title, violations=violations, window=window)
    t0 = float(events[0].get("t", 0.0)) if events else 0.0  # shown: seconds since the first event
    data = {
        "labels": [f"#{i} t={float(e.get('t', 0)) - t0:.6f}  {label_of(e)}" for i, e in enumerate(events)],
        "raw": [json.dumps(e, sort_keys=True) for e in events],
        "diffs": fold(events),
        "sections": list(SECTIONS),
        "y": [round(lay.y_at(i), 1) for i in range(len(events))],
        "rowH": ROW_H,
        "violations": [{"index": v.index, "what": v.what, "by": v.by} for v in violations],
        "open": open_at,
    }
    found = "".join(
        f"<div class='violation'>{html.escape(v.by)}{'' if v.index is None else f' at event {v.index}'}: {html.escape(v.what)}</div>" for v in violations
    ) or "<div>No checker found a violation.</div>"
    side = (
        f"<h2 style='font-size:15px;margin:2px 0'>{html.escape(title)}</h2>"
        + (f"<div style='font-family:monospace;font-size:11px'>replay: {html.escape(replay)}</div>" if replay else "")
        + "".join(f"<div style='color:#a60;font-size:11px'>note: {html.escape(n)}</div>" for n in notes)
        + "<div><button id='first'>|&lt;</button><button id='prev'>&lt; back</button>"
        + "event <span id='step'>0</span> of " + str(max(len(events) - 1, 0))
        + "<button id='next'>forward &gt;</button><button id='last'>&gt;|</button></div>"
        + "<div>jump to <input id='jump' type='number' min='0' style='width:6em'><button id='go'>go</button>"
        + "<button id='toviolation'>the violation</button></div>"
        + "<div id='event'></div><div id='here'></div>"
        + "<details><summary>What the checkers found</summary>" + found + "</details>"
        + "<div id='state'></div>"
    )
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>" + STYLE.replace("ROW_H", str(ROW_H)) + "</style></head>\n"
        "<body><div id='side'>" + side + "</div><div id='chart'>" + svg_text(drawing)
        + f"<div id='cursor' style='width:{lay.width:.0f}px'></div></div>\n"
        "<script type='application/json' id='data'>" + payload + "</script>\n<script>" + SCRIPT + "</script></body></html>\n"
    )
