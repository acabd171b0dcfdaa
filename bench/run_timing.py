"""Where a `bench run`'s time went: model, client calibration, the targets, the rest.

Why: the console's "wall time 277.6 s" read as the benchmark's own span, while it also
held training the model and calibrating the client (the run's measured part took 151 s).
`bench run` records the parts in meta.json (``timing``) and every place that shows a run's
time -- the end-of-run console line, the report's Run table -- words them the same way
through :func:`timing_text`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RunTiming", "timing_text"]


@dataclass(frozen=True)
class RunTiming:
    """Seconds, measured with ``time.perf_counter`` by `bench run`.

    ``total_s``: from the start of `bench run`'s work (after its flags were parsed) until
    the last target stopped and meta.json was final; the tables and the report come after
    and are not in it. ``model_s``: checking (and, on a fresh clone, training) the model;
    ``calibration_s``: loading or measuring the client's calibration; ``targets_s``: every
    target's start-up, sweep and stop (the run's own span).
    """

    total_s: float
    model_s: float
    calibration_s: float
    targets_s: float

    def to_json(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def _seconds(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def timing_text(timing: Mapping[str, Any] | None) -> str:
    """'151.2 s in all: model (check or training) 0.4 s, client calibration 12.0 s, targets (start, sweep,
    stop) 135.3 s, other 3.5 s' -- or '' when meta.json has no readable ``timing``."""
    total = _seconds((timing or {}).get("total_s"))
    if total is None:
        return ""
    parts = [
        ("model (check or training)", "model_s"),
        ("client calibration", "calibration_s"),
        ("targets (start-up, sweep, stop)", "targets_s"),
    ]
    known = [(label, _seconds(timing.get(key))) for label, key in parts]
    shown = [(label, v) for label, v in known if v is not None]
    other = total - sum(v for _label, v in shown)
    words = [f"{label} {v:.1f} s" for label, v in shown]
    if shown and other >= 0.05:
        words.append(f"other set-up {other:.1f} s")
    return f"{total:.1f} s in all" + (": " + ", ".join(words) if words else "")
