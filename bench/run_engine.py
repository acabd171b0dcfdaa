"""Which load-generator engine a `bench run` uses, and the calibration facts it records.

Why apart from :mod:`bench.cmd_run`: choosing the engine means loading (or quickly
measuring) the client calibration, with fallbacks when it is unavailable or fails -- a
job of its own, whose result the run only records in meta.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.config import BenchConfig
from bench.console import Console

if TYPE_CHECKING:
    from loadgen.calibration import CalibrationResult

__all__ = ["CALIBRATION_MAX_AGE_S", "calibration_json", "choose_run_engine", "event_loop_name"]

CALIBRATION_MAX_AGE_S = 24 * 3600.0


def choose_run_engine(config: BenchConfig, requested: str, console: Console) -> tuple[str, str, CalibrationResult | None]:
    """(engine name, how it was chosen, calibration or None).

    ``auto`` takes the engine the calibration measured cheapest here; a named engine is used
    as is, but the calibration is still loaded (or quickly measured) for the client ceiling.
    """
    from loadgen.engines import available_engines

    calibration = None
    try:
        from loadgen.calibration import choose_engine, load_or_run_calibration
    except ImportError as exc:
        console.warn(f"calibration is not available ({exc}): the client ceiling will not be recorded")
        choose_engine = load_or_run_calibration = None  # type: ignore[assignment]
    if load_or_run_calibration is not None:
        path = config.results_dir / "calibration.json"
        try:
            console.info(f"client calibration: {path} (reused when under {CALIBRATION_MAX_AGE_S / 3600:g} h old "
                         "and from this host; else a quick one is measured now)")
            from targets.wire import mnist_payload

            calibration = load_or_run_calibration(path, max_age_s=CALIBRATION_MAX_AGE_S, quick=True,
                                                  cpus=config.loadgen.cpus, payload=mnist_payload(),
                                                  on_progress=console.info)
        except Exception as exc:  # noqa: BLE001 - a failed calibration must not stop the benchmark
            console.warn(f"client calibration failed ({type(exc).__name__}: {exc}); no ceiling recorded")
    if requested != "auto":
        return requested, "configured", calibration
    if calibration is not None and choose_engine is not None:
        try:
            return choose_engine(calibration), "auto: cheapest CPU per request in the calibration", calibration
        except Exception as exc:  # noqa: BLE001
            console.warn(f"could not choose an engine from the calibration: {exc}")
    available = available_engines()
    if not available:
        raise RuntimeError("no load-generator engine can be imported here")
    fallback = "fast" if "fast" in available else available[0]
    console.warn(f"engine 'auto' without a calibration: using {fallback!r}")
    return fallback, "auto: fallback without calibration", calibration


def event_loop_name() -> str:
    """The event loop the run measures with (uvloop when the fast engine's helper is importable)."""
    try:
        from loadgen.engines.fast_engine import loop_name

        return loop_name()
    except ImportError:
        return "asyncio"


def calibration_json(calibration: CalibrationResult | None, path: Path) -> dict[str, Any] | None:
    """meta.json's ``calibration``: the summary of the calibration the run used (None without one)."""
    if calibration is None:
        return None
    from loadgen.calibration import calibration_summary

    return calibration_summary(calibration, path)
