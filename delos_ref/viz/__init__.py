"""Pictures of a run: message-sequence charts and a step-through explorer (issue 20).

Everything here is pure -- events in, text out; only ``cli/`` writes files and prints:

* :mod:`.model` -- what each trace event *is* on a chart (a message, a drop, a fault, a
  protocol step, a client operation), the lanes, the key fields, and :class:`Violation`;
* :mod:`.chart` -- :func:`~.chart.render_svg`: a message-sequence chart (SVG, drawn with
  ``drawsvg``), and :func:`~.chart.render_chart_html`: the same in an HTML page;
* :mod:`.state` -- folds the events into every node's protocol state, step by step;
* :mod:`.explore` -- :func:`~.explore.render_html`: the run explorer, one self-contained page;
* :mod:`.sources` -- where events come from: a seeded simulation (re-run, with the client
  history and the checkers' verdicts), trace files, or a cluster directory (``up --trace``).

``docs/charts.md`` explains how to read a chart.
"""

from delos_ref.viz.model import Violation

__all__ = ["Violation"]
