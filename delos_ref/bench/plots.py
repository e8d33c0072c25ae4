"""Figures for ``bench compare`` and ``bench paper``, drawn with matplotlib (the optional
``plots`` extra, which ``make`` installs). Without it, :func:`available` is False and the
benchmarks write their tables only.

Each function takes plain rows (the benchmarks' dicts), draws one figure and saves it as
``NAME.png`` and ``NAME.svg`` under a directory; it returns the two paths. Nothing here
measures or decides: what a figure shows is chosen by its caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(title: str, panels: int = 1, width: float = 6.4) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width * panels if panels > 1 else width, 4.2), squeeze=False)
    fig.suptitle(title)
    return fig, list(axes[0])


def _save(fig: Any, out: Path, name: str) -> list[Path]:
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, dpi=110)
    plt.close(fig)
    return paths


def lines(out: Path, name: str, title: str, series: dict[str, Sequence[tuple[float, float]]], xlabel: str, ylabel: str,
          *, logx: bool = False, logy: bool = False, integer_x: bool = False, marks: Sequence[tuple[float, str]] = (),
          hmarks: Sequence[tuple[float, str]] = ()) -> list[Path]:
    """One panel, one line per series of (x, y) points; ``marks``: vertical lines with a label,
    ``hmarks`` horizontal ones; ``integer_x``: ticks on whole numbers only (counts of stripes)."""
    fig, (ax,) = _figure(title)
    for label, points in series.items():
        pts = [(x, y) for x, y in points if x is not None and y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=label)
    for x, label in marks:
        ax.axvline(x, color="red", linestyle="--", linewidth=1)
        ax.annotate(label, (x, 1), xycoords=("data", "axes fraction"), xytext=(3, -12), textcoords="offset points", color="red")
    for y, label in hmarks:
        ax.axhline(y, color="gray", linestyle=":", linewidth=1)
        ax.annotate(label, (0, y), xycoords=("axes fraction", "data"), xytext=(3, 3), textcoords="offset points", color="gray")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if integer_x:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, out, name)


def bars(out: Path, name: str, title: str, groups: Sequence[str], series: dict[str, Sequence[float | None]], ylabel: str,
         *, panels: dict[str, tuple[dict[str, Sequence[float | None]], str]] | None = None) -> list[Path]:
    """Grouped bars: one group per ``groups`` item, one bar per series. ``panels``: more
    panels side by side, each ``title -> (series, ylabel)`` over the same groups."""
    all_panels = {title: (series, ylabel), **(panels or {})}
    fig, axes = _figure("", panels=len(all_panels), width=5.2)
    for ax, (ptitle, (pseries, plabel)) in zip(axes, all_panels.items()):
        width = 0.8 / max(1, len(pseries))
        for i, (label, values) in enumerate(pseries.items()):
            xs = [g + i * width for g in range(len(groups))]
            ax.bar(xs, [v or 0 for v in values], width=width, label=label)
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], list(groups))
        ax.set_ylabel(plabel)
        ax.set_title(ptitle)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, out, name)


def cdfs(out: Path, name: str, title: str, panels: dict[str, dict[str, Sequence[float]]], xlabel: str) -> list[Path]:
    """One panel per ``panels`` item, one empirical CDF per series of samples (log x)."""
    fig, axes = _figure(title, panels=len(panels), width=4.4)
    for ax, (ptitle, series) in zip(axes, panels.items()):
        for label, samples in series.items():
            xs = sorted(samples)
            if xs:
                ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", label=label)
        ax.set_xscale("log")
        ax.set_title(ptitle)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of operations")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, out, name)
