"""The client's calibrated ceiling on the throughput figure: only what was measured, never squashing the targets.

The calibration measures the load generator against a null server at a few concurrencies
(e.g. 1 and 64). Two things went wrong when the ceiling was drawn as a line through every
step:

- between two calibrated concurrencies the line was an interpolation, drawn exactly like
  a measurement (the concurrent panel's N = 4..32, and beyond the last point a guess);
- the ceiling (tens of thousands of req/s) stretched the log axis over two decades of
  empty space, so the difference between a 50 and a 500 req/s target sat at its bottom.

The rules here, chosen so that the figure shows what the run measured and nothing else:

- a ceiling value is drawn only at a step whose concurrency was calibrated, as a marker
  (no line between markers): steps at other concurrencies get none, and the legend says
  which steps have no measured ceiling;
- a measured value more than :data:`OFF_SCALE_FACTOR` times the fastest target's
  throughput in that panel is not put on the axis (the client is then far from being the
  limit, which is all the line could have said); it becomes a triangle on the top edge at
  that step, and the legend gives its value and how far above the targets it is. Steps
  near the ceiling are still ringed (:mod:`bench.report.plotting`), whatever the scale.

Pure placement (:func:`ceiling_marks`) is separate from drawing (:func:`draw_ceiling`) so
tests can check the data without reading pixels.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

__all__ = [
    "GID_CEILING_MEASURED",
    "GID_CEILING_OFF_SCALE",
    "OFF_SCALE_FACTOR",
    "CeilingMarks",
    "ceiling_marks",
    "draw_ceiling",
]

#: A measured ceiling more than this many times the fastest target is shown off-scale:
#: over half a decade of empty log axis would otherwise sit above every target, and at
#: under a fifth of the ceiling the client is not the limit anyway.
OFF_SCALE_FACTOR = 5.0
GID_CEILING_MEASURED = "ceiling-measured"
GID_CEILING_OFF_SCALE = "ceiling-off-scale"
_GREY = "#555555"
LABEL_WIDTH = 58


@dataclass(frozen=True)
class CeilingMarks:
    """Where a panel shows the client ceiling.

    ``on_axis``/``off_scale``: (N, req/s, concurrency) of steps whose concurrency was
    calibrated; ``unmeasured``: N of steps whose concurrency was not (nothing drawn).
    """

    engine: str
    on_axis: list[tuple[float, float, int]] = field(default_factory=list)
    off_scale: list[tuple[float, float, int]] = field(default_factory=list)
    unmeasured: list[int] = field(default_factory=list)
    fastest_target_rps: float = math.nan


def _calibrated(ceiling: Mapping[str, Any] | None) -> dict[int, float]:
    """{concurrency: req/s} as the calibration measured them (unreadable entries skipped)."""
    out: dict[int, float] = {}
    for key, value in ((ceiling or {}).get("rps_by_concurrency") or {}).items():
        try:
            conc, rps = int(float(key)), float(value)
        except (TypeError, ValueError):
            continue
        if rps > 0 and math.isfinite(rps):
            out[conc] = rps
    return out


def ceiling_marks(
    concurrency_by_n: Mapping[float, float], fastest_target_rps: float, ceiling: Mapping[str, Any] | None
) -> CeilingMarks | None:
    """Which steps get a measured ceiling, on the axis or off scale; None without a calibration.

    ``concurrency_by_n``: each step's N and the concurrency it ran at (sequential: 1;
    concurrent: N, or the ``--concurrency`` cap).
    """
    measured = _calibrated(ceiling)
    if not measured:
        return None
    marks = CeilingMarks(str((ceiling or {}).get("engine", "?")), fastest_target_rps=fastest_target_rps)
    limit = OFF_SCALE_FACTOR * fastest_target_rps if fastest_target_rps > 0 else math.inf
    for n, conc in sorted(concurrency_by_n.items()):
        c = max(int(round(float(conc or 1))), 1)
        if c not in measured:
            marks.unmeasured.append(int(n))
            continue
        point = (float(n), measured[c], c)
        (marks.on_axis if measured[c] <= limit else marks.off_scale).append(point)
    return marks


def _wrapped(text: str) -> str:
    """A legend label in lines of at most :data:`LABEL_WIDTH` characters (a long one-liner
    would widen the legend past the figure)."""
    return "\n".join(textwrap.wrap(text, LABEL_WIDTH))


def _values(points: list[tuple[float, float, int]]) -> str:
    by_conc = dict(sorted({c: rps for _n, rps, c in points}.items()))
    return "; ".join(f"{rps:,.0f} req/s at concurrency {c}" for c, rps in by_conc.items())


def draw_ceiling(ax: Any, marks: CeilingMarks | None) -> list[Line2D]:
    """Draw ``marks`` on ``ax``; the legend entries that explain them (appended by the caller)."""
    if marks is None:
        return []
    handles: list[Line2D] = []
    if marks.on_axis:
        xs, ys = [p[0] for p in marks.on_axis], [p[1] for p in marks.on_axis]
        ax.plot(
            xs,
            ys,
            linestyle="none",
            marker="D",
            markersize=6,
            markerfacecolor="white",
            markeredgecolor=_GREY,
            markeredgewidth=1.4,
            gid=GID_CEILING_MEASURED,
            zorder=3,
        )
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="D",
                markerfacecolor="white",
                markeredgecolor=_GREY,
                markeredgewidth=1.4,
                label=_wrapped(f"client ceiling ({marks.engine} engine), measured: {_values(marks.on_axis)}"),
            )
        )
    if marks.off_scale:
        top = blended_transform_factory(ax.transData, ax.transAxes)
        xs = [p[0] for p in marks.off_scale]
        ax.plot(
            xs,
            [1.0] * len(xs),
            linestyle="none",
            marker="^",
            markersize=8,
            color=_GREY,
            transform=top,
            clip_on=False,
            gid=GID_CEILING_OFF_SCALE,
            zorder=6,
        )
        times = min(p[1] for p in marks.off_scale) / marks.fastest_target_rps
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="^",
                color=_GREY,
                label=_wrapped(
                    f"on the top edge: client ceiling ({marks.engine} engine), measured, far above this axis: "
                    f"{_values(marks.off_scale)} (>= {times:,.0f}x the fastest target)"
                ),
            )
        )
    if marks.unmeasured:
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                label=_wrapped(
                    "no client ceiling at N = "
                    + ", ".join(str(n) for n in marks.unmeasured)
                    + ": their concurrency was not calibrated (an estimate between calibrated points is not drawn)"
                ),
            )
        )
    return handles
