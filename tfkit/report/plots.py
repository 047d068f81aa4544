"""The latency-vs-accuracy chart of a report, drawn with matplotlib's Agg canvas.

matplotlib is imported inside the function and pyplot is never used, so importing tfkit.report
costs nothing and no global backend is switched.

Example:
    >>> Path("latency_accuracy.png").write_bytes(latency_accuracy_png(results, title="tsm"))
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence

from tfkit.types import BenchResult

# Fixed colours per precision so every report reads the same; other precisions get grey.
PRECISION_COLORS = {
    "float32": "#1f77b4",
    "float16": "#2ca02c",
    "dynamic": "#9467bd",
    "int8": "#d62728",
    "int16x8": "#ff7f0e",
}
OTHER_COLOR = "#7f7f7f"
NA_LABEL = "n/a"


def _plain(text: str) -> str:
    """User text shown as typed: a pair of '$' would otherwise be parsed as mathtext (and may fail)."""
    return text.replace("$", r"\$")


def _marker_area(size_bytes: int, largest: int) -> float:
    """Marker area grows with file size (area ~ bytes, so the eye reads size correctly)."""
    return 40.0 + 360.0 * (size_bytes / largest if largest > 0 else 0.0)


def latency_accuracy_png(results: Sequence[BenchResult], *, title: str = "latency vs accuracy", dpi: int = 120,
                        devices: Sequence[str] | None = None) -> bytes:
    """PNG bytes: x = p50 latency (bar to p90), y = top-1 accuracy %, marker area = file size.

    Artifacts without accuracy sit on a separate "n/a" row below the measured ones. `devices`
    (one label per result, for results from several devices) is added to each point's label.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    measured = [100.0 * r.accuracy for r in results if r.accuracy is not None and math.isfinite(r.accuracy)]
    if measured:
        low, high = min(measured), max(measured)
        span = max(high - low, 5.0)
        na_y = low - 0.35 * span
    else:
        low = high = na_y = 0.0
        span = 1.0
    largest = max((r.size_bytes for r in results), default=0)
    legend: dict[str, Line2D] = {}
    for index, r in enumerate(results):
        has_accuracy = r.accuracy is not None and math.isfinite(r.accuracy)
        y = 100.0 * r.accuracy if has_accuracy else na_y
        color = PRECISION_COLORS.get(r.precision, OTHER_COLOR)
        p50, p90 = r.latency_ms.p50, r.latency_ms.p90
        ax.errorbar([p50], [y], xerr=[[0.0], [max(p90 - p50, 0.0)]], fmt="none", ecolor=color, capsize=3, lw=1)
        ax.scatter(
            [p50], [y], s=_marker_area(r.size_bytes, largest), color=color, alpha=0.75,
            edgecolors="black", linewidths=0.5, marker="o" if has_accuracy else "X",
        )
        legend.setdefault(r.precision, Line2D([], [], ls="", marker="o", color=color, label=_plain(r.precision)))
        ax.annotate(
            _plain(f"{r.name} ({r.precision})" + (f" on {devices[index]}" if devices else "")
                   + f"\n{r.size_bytes / 1024:.1f} KB"), (p50, y),
            # Staggered heights with a leader line: points close together keep readable labels.
            xytext=(8, 8 + 26 * (index % 4)), textcoords="offset points", fontsize=8,
            arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.6},
        )
    if measured and len(measured) < len(results):
        separator = na_y + 0.15 * span
        ax.axhline(separator, color="grey", lw=0.8, ls="--")
        ax.set_ylim(na_y - 0.15 * span, high + 0.2 * span)
        ticks = [t for t in ax.get_yticks() if separator < t <= high + 0.2 * span]
        ax.set_yticks([na_y, *ticks], [NA_LABEL, *(f"{t:g}" for t in ticks)])
    elif not measured:
        ax.set_ylim(-1.0, 1.0)
        ax.set_yticks([0.0], [NA_LABEL])
    else:
        ax.set_ylim(low - 0.2 * span, high + 0.2 * span)
    ax.set_xlim(left=0.0, right=max(r.latency_ms.p90 for r in results) * 1.35 or 1.0)
    ax.set_xlabel("p50 latency (ms); bar reaches p90")
    ax.set_ylabel("top-1 accuracy (%)" if measured else "accuracy (not measured)")
    ax.set_title(_plain(title))
    ax.grid(True, alpha=0.3)
    handles = list(legend.values())
    if len(measured) < len(results):
        handles.append(Line2D([], [], ls="", marker="X", color=OTHER_COLOR, label="accuracy not measured"))
    ax.legend(handles=handles, title="precision (area = file size)", fontsize=8, title_fontsize=8, loc="best")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
