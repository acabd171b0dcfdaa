"""`python -m bench calibrate`: measure each load-generator engine's own ceiling here.

Why a command of its own: the figures of a sweep are only worth something if the client
is far from its own limits; this shows those limits on the machine at hand (against a
null endpoint on another core) and writes the JSON that ``bench run`` embeds and uses to
choose the ``auto`` engine. See :mod:`loadgen.calibration` for the definitions.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.commands.common import Command, choice_list, csv_ints, csv_words
from bench.config import BenchConfig
from bench.console import Console

if TYPE_CHECKING:
    from loadgen.calibration import CalibrationResult

__all__ = ["CALIBRATE", "calibrate", "calibration_rows"]

_COLUMNS = ("engine", "c", "req/s", "CPU ms/req", "p50 ms", "p99 ms", "errors")


def _fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def calibration_rows(calibration: CalibrationResult) -> list[list[str]]:
    """One table row per engine x concurrency (unavailable engines get one row saying so)."""
    rows = []
    for name, entry in calibration.engines.items():
        if not entry.points:
            rows.append([name, "-", "-", "-", "-", "-", entry.error or "not measured"])
            continue
        for p in entry.points:
            errors = ", ".join(f"{k}={v}" for k, v in sorted(p.errors.items())) or "0"
            rows.append(
                [
                    name,
                    str(p.concurrency),
                    _fmt(p.req_per_s, 0),
                    _fmt(p.cpu_ms_per_request, 4),
                    _fmt(p.p50_ms, 3),
                    _fmt(p.p99_ms, 3),
                    errors,
                ]
            )
    return rows


def calibrate(
    config: BenchConfig,
    *,
    engines: list[str] | None,
    duration_s: float,
    concurrencies: list[int] | None,
    output: Path | None,
    console: Console,
) -> int:
    """Run the calibration, print its table, write its JSON; 0 when at least one engine works."""
    from loadgen.calibration import DEFAULT_CONCURRENCIES, MAX_DURATION_S, run_calibration, write_calibration
    from targets.wire import mnist_payload

    if not 0 < duration_s <= MAX_DURATION_S:
        console.error(f"--duration must be in (0, {MAX_DURATION_S:g}] seconds, got {duration_s:g}")
        return 2
    levels = list(concurrencies or DEFAULT_CONCURRENCIES)
    if any(c < 1 or c > 1024 for c in levels):
        console.error(f"--concurrency values must be in 1..1024, got {levels}")
        return 2
    path = output or (config.results_dir / "calibration.json")
    total = len(engines or ("fast", "aiohttp", "httpx")) * len(levels) * (duration_s + 0.2)
    console.info(f"calibrating engines against a null endpoint on loopback (~{total:.0f} s of load)")
    try:
        result = run_calibration(
            engines=engines,
            concurrencies=levels,
            duration_s=duration_s,
            cpus=config.loadgen.cpus,
            payload=mnist_payload(),
            on_progress=console.info,
        )
    except ValueError as exc:
        console.error(str(exc))
        return 2
    except RuntimeError as exc:  # the null endpoint could not start
        console.error(f"calibration failed: {exc}")
        return 1
    data = result.data  # provenance: endpoint, client, payload, baseline
    endpoint = data["endpoint"]
    client = data["client"]
    console.table(
        f"Client ceiling per engine: {endpoint['kind']} {endpoint.get('version') or ''} null endpoint "
        f"on CPUs {endpoint['cpus'] or 'any'}, client on CPUs {client['cpus'] or 'any'} ({client['loop']}), "
        f"{data['payload']['bytes']:,} B POST, {duration_s:g} s per point",
        _COLUMNS,
        calibration_rows(result),
    )
    console.print(f"raw blocking-socket round trip at c=1: p50 {_fmt(data['baseline']['p50_ms'], 3)} ms")
    for name, entry in result.engines.items():
        if entry.added_latency_ms is not None:
            console.print(
                f"{name} ({entry.version}): adds {entry.added_latency_ms:.3f} ms at c=1 "
                f"(p50 minus raw socket p50); mean CPU {_fmt(entry.cpu_ms_per_request, 4)} ms/req"
            )
    write_calibration(result, path)
    if not result.chosen:
        console.error(data.get("choice_error", "no engine worked"))
        console.print(f"wrote {path}")
        return 1
    console.print(f"cheapest engine here: {result.chosen} ({data['choice_rule']})")
    console.print(f"wrote {path}")
    return 0


# --- `python -m bench calibrate` (registered in bench/cli.py) ---


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from loadgen.engines import ENGINE_NAMES, PROTOCOL_ENGINE_NAMES

    parser.add_argument(
        "--engines",
        type=csv_words,
        default=None,
        metavar=choice_list(ENGINE_NAMES + PROTOCOL_ENGINE_NAMES),
        help="comma-separated engines (default: the HTTP engines; add grpc to measure the gRPC engine "
        "against a null gRPC server)",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (default: %(default)s)")
    parser.add_argument("--concurrency", type=csv_ints, default=None, help="e.g. 1,8,64")
    parser.add_argument("-o", "--output", type=Path, default=None, help="JSON file to write")


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return calibrate(
        config,
        engines=args.engines,
        duration_s=args.duration,
        concurrencies=args.concurrency,
        output=args.output,
        console=console,
    )


CALIBRATE = Command(_add_arguments, _main)
