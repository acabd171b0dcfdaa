"""Saving a matplotlib figure: one function, the same metadata in every file servebench draws.

Why one place: the run report, the tuning report and the pipeline report all write
figures; each used to choose its own metadata (one stripped matplotlib's version, one
wrote ``servebench``, one wrote nothing), so two regenerations of the same report could
differ byte for byte for reasons unrelated to the data.  Here every PNG says
``Software: servebench`` and every SVG ``Creator: servebench`` with no date, and SVG element
ids are salted with a fixed string instead of random ones, so a figure regenerated from
the same CSVs is the same file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DPI", "FIGURE_METADATA", "save_figure"]

#: Raster resolution unless a caller needs another (pixels per inch).
DPI = 110

#: Per format: what matplotlib writes into the file (None removes matplotlib's default).
FIGURE_METADATA: dict[str, dict[str, str | None]] = {
    "png": {"Software": "servebench"},
    "svg": {"Creator": "servebench", "Date": None},
}


def save_figure(fig: Figure, base: Path, formats: Sequence[str] = ("png",), *, dpi: int = DPI) -> list[Path]:
    """Write ``base.<format>`` for each format (parents created), close ``fig``, return the paths.

    ``base`` is the path without a suffix (``reports/run/fig_total_time``); its name may
    contain dots.  Formats other than png and svg are refused: their metadata is not pinned.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    unknown = [f for f in formats if f not in FIGURE_METADATA]
    if unknown or not formats:
        raise ValueError(f"figure formats must be among {', '.join(FIGURE_METADATA)}, got {list(formats)}")
    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        with matplotlib.rc_context({"svg.hashsalt": "servebench"}):  # stable ids, not random ones
            for fmt in formats:
                path = base.with_name(f"{base.name}.{fmt}")
                fig.savefig(path, dpi=dpi, metadata=dict(FIGURE_METADATA[fmt]))
                paths.append(path)
    finally:
        plt.close(fig)
    return paths
