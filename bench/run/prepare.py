"""Get a `bench run` ready to measure: the model trained, the test images loaded, the engine chosen.

Choosing the engine means loading (or quickly measuring) the client calibration, with
fallbacks when it is unavailable or fails; the run records the choice and the calibration
in meta.json (:func:`calibration_json`).  `bench run` (:mod:`bench.run.session`) does all
of it; `bench run --clients N` (:mod:`bench.shard.processes`) the model and the engine,
once, before its N shard processes would race to do them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.config import BenchConfig
from bench.console import Console
from bench.training import ensure_model_shown
from loadgen.engines import available_engines, engine_class
from models.data import load_dataset

if TYPE_CHECKING:
    from loadgen.calibration import CalibrationResult

__all__ = [
    "CALIBRATION_MAX_AGE_S",
    "PreparedRun",
    "calibration_json",
    "choose_run_engine",
    "event_loop_name",
    "prepare_model",
    "prepare_run",
]

CALIBRATION_MAX_AGE_S = 24 * 3600.0


@dataclass(frozen=True)
class PreparedRun:
    """The model, the test images and the engine, ready for the sweep."""

    artifacts: Any
    split: Any
    engine_name: str
    chosen_by: str
    calibration: Any
    engine_cls: Any
    model_s: float = 0.0  # checking (or training) the model and loading the test images
    calibration_s: float = 0.0  # loading or measuring the client calibration, choosing the engine


def prepare_model(config: BenchConfig, console: Console) -> Any:
    """The model's artifacts, trained first when missing (a progress bar titled "model")."""
    return ensure_model_shown(
        config,
        console,
        title="model",
        label=lambda epoch, epochs, loss, acc: (
            f"training: epoch {epoch}/{epochs}, loss {loss:.3f}, training answers correct {acc:.1%}"
        ),
    )


def prepare_run(config: BenchConfig, engine_name: str, console: Console) -> PreparedRun:
    """Train the model if needed, load the test images, choose the engine (calibration)."""
    model_started = time.perf_counter()
    artifacts = prepare_model(config, console)
    split = load_dataset(config.model)
    calibration_started = time.perf_counter()
    engine_name, chosen_by, calibration = choose_run_engine(config, engine_name, console)
    return PreparedRun(
        artifacts,
        split,
        engine_name,
        chosen_by,
        calibration,
        engine_class(engine_name),
        model_s=calibration_started - model_started,
        calibration_s=time.perf_counter() - calibration_started,
    )


def choose_run_engine(
    config: BenchConfig, requested: str, console: Console
) -> tuple[str, str, CalibrationResult | None]:
    """(engine name, how it was chosen, calibration or None).

    ``auto`` takes the engine the calibration measured cheapest here; a named engine is used
    as is, but the calibration is still loaded (or quickly measured) for the client ceiling.
    """
    calibration = None
    try:
        from loadgen.calibration import choose_engine, load_or_run_calibration
    except ImportError as exc:
        console.warn(f"calibration is not available ({exc}): the client ceiling will not be recorded")
        choose_engine = load_or_run_calibration = None
    if load_or_run_calibration is not None:
        path = config.results_dir / "calibration.json"
        try:
            console.info(
                f"client calibration: {path} (reused when under {CALIBRATION_MAX_AGE_S / 3600:g} h old "
                "and from this host; else a quick one is measured now)"
            )
            from targets.wire import mnist_payload

            calibration = load_or_run_calibration(
                path,
                max_age_s=CALIBRATION_MAX_AGE_S,
                quick=True,
                cpus=config.loadgen.cpus,
                payload=mnist_payload(),
                on_progress=console.info,
            )
        except Exception as exc:
            console.warn(f"client calibration failed ({type(exc).__name__}: {exc}); no ceiling recorded")
    if requested != "auto":
        return requested, "configured", calibration
    if calibration is not None and choose_engine is not None:
        try:
            return choose_engine(calibration), "auto: cheapest CPU per request in the calibration", calibration
        except Exception as exc:
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
