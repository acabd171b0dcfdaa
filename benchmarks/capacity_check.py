"""Check the capacity search: is it repeatable, and does plain rate mode agree with it?

    python benchmarks/capacity_check.py [TARGET ...] [--searches 3] [--slo p99=100ms]
                                        [--cross-seconds 5] [--config bench.toml]

Why: a capacity figure is only useful if (a) searching again finds about the same rate and
(b) the rate means what it claims. So this script

1. runs ``bench run TARGETS --modes capacity`` ``--searches`` times (separate runs, each
   with its own ``[sweep] seed``, so the spread covers schedule sampling, host noise and
   a fresh start of every stand-in) and reports per target the found capacities, their
   median and relative spread, and the verdicts;
2. cross-checks WITHOUT the search's code path: for each target it runs plain
   ``bench run TARGET --rate R --duration S`` at 0.9x and 1.2x the median capacity, and
   judges each run from its own summary.csv and requests.csv.gz with the *same rule* as
   the search (:func:`loadgen.slo_evidence.judge`, one look, at the searches' confidence:
   met / violated / undecided from the successful requests over the bound, in send
   order, with the design effect; any failed request or a ``saturated`` step is a
   violation). Each run sends at least ``--cross-looks`` times the requests one look
   needs to show "met", so "undecided" is rare where the answer is clear. Expected: 0.9x
   meets the objective and 1.2x violates it. The numpy point estimate of the percentile
   is shown beside the verdict.

The objective (percentile and bound) is read back from the searches' capacity.csv.
``bench run --rate R --duration S`` is used when this servebench has those flags; else a
temporary copy of bench.toml (next to it, removed afterwards) sets ``[sweep] rate_rps``
and ``n_requests``. Results: a table on stdout and ``benchmarks/out/capacity_check.json``
(plus a timestamped copy), with wall times and the load average before and after each
part -- on a shared machine, figures are only as quiet as the machine was -- and, to be
committed, ``benchmarks/results/capacity_check.md`` (command, date, commit, load; ``--out
NAME`` for another name) with every search's row and every look beside it
(``NAME_searches.csv``, ``NAME_probes.csv``).
This is a standalone script (its own argparse), not a test.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadgen.slo_evidence import SequentialRule
from loadgen.slo_evidence import judge as judge_looks

OUT_DIR = ROOT / "benchmarks" / "out"
RESULTS = ROOT / "benchmarks" / "results"
FACTORS = (0.9, 1.2)


# -- a minimal TOML writer for the temporary config (bench.toml holds scalars, lists, tables) --
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else json.dumps(key)


def dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Tables after their scalars, recursively (``[targets.NAME]``)."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in data.items():
        if isinstance(value, dict):
            name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
            scalars = any(not isinstance(v, dict) for v in value.values())
            out += (f"\n[{name}]\n" if scalars or not value else "") + dump_toml(value, name)
    return out


# -- running bench -----------------------------------------------------------------------
def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def bench(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", "--config", str(config), *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
    )


def has_rate_flags(config: Path) -> bool:
    """True when this servebench's ``bench run`` has ``--rate`` and ``--duration``."""
    text = bench(config, "run", "--help").stdout
    return "--rate" in text and "--duration" in text


class TempConfig:
    """bench.toml with some values replaced, written next to the original (so relative
    paths resolve the same) and removed on exit."""

    def __init__(self, original: Path, data: dict[str, Any], name: str) -> None:
        self.path = original.parent / f".{name}-{os.getpid()}.toml"
        self.path.write_text("# temporary: written by benchmarks/capacity_check.py\n" + dump_toml(data))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _with(data: dict[str, Any], table: str, **values: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(data))
    copy.setdefault(table, {}).update(values)
    return copy


def _load() -> tuple[float, float, float]:
    return os.getloadavg()


# -- part 1: repeated searches -------------------------------------------------------------
def searches(
    config: Path,
    data: dict[str, Any],
    results_dir: Path,
    targets: list[str],
    n: int,
    slo: str | None,
    stamp: str,
    say: Any,
) -> dict[str, Any]:
    seed0 = int(data.get("sweep", {}).get("seed", 0))
    runs = []
    for i in range(1, n + 1):
        run_id = f"capcheck-{stamp}-search{i}"
        load_before, t0 = _load(), time.perf_counter()
        with TempConfig(config, _with(data, "sweep", seed=seed0 + i - 1), "capacity-check") as tmp:
            args = ["run", *targets, "--modes", "capacity", "--run-id", run_id, "--no-report"]
            proc = bench(tmp, *args + (["--slo", slo] if slo else []))
        wall = time.perf_counter() - t0
        say(f"search {i}/{n}: exit {proc.returncode}, {wall:.1f} s wall, load {load_before[0]:.2f} -> {_load()[0]:.2f}")
        capacity_csv = results_dir / run_id / "capacity.csv"
        if not capacity_csv.is_file():
            raise RuntimeError(f"search {i} wrote no capacity.csv (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        frame = pd.read_csv(capacity_csv)
        runs.append(
            {
                "run_id": run_id,
                "exit": proc.returncode,
                "wall_s": round(wall, 1),
                "seed": seed0 + i - 1,
                "loadavg_before": load_before,
                "loadavg_after": _load(),
                "rows": json.loads(frame.to_json(orient="records")),
            }
        )
    per_target: dict[str, Any] = {}
    for target in targets:
        rows = [r for run in runs for r in run["rows"] if r["target"] == target]
        caps = np.array([r["capacity_rps"] if r["capacity_rps"] is not None else np.nan for r in rows], float)
        found = caps[~np.isnan(caps)]
        median = float(np.median(found)) if found.size else math.nan
        per_target[target] = {
            "capacities_rps": [None if math.isnan(c) else round(float(c), 3) for c in caps],
            "median_rps": median,
            "spread_pct": float((found.max() - found.min()) / median * 100) if found.size >= 2 else math.nan,
            "verdicts": [r["verdict"] for r in rows],
            "precision_reached": [bool(r["precision_reached"]) for r in rows],
            "stop_reasons": [r["stop_reason"] for r in rows],
            "client_bound": [bool(r["client_bound"]) for r in rows],
            "seconds": [r["seconds"] for r in rows],
            "percentile": rows[0]["percentile"] if rows else math.nan,
            "bound_s": rows[0]["bound_s"] if rows else math.nan,
            "confidence": rows[0].get("confidence") if rows else math.nan,
            "max_dev_from_median_pct": (
                float(np.max(np.abs(found - median)) / median * 100) if found.size >= 2 else math.nan
            ),
        }
    return {"runs": runs, "targets": per_target}


# -- part 2: plain rate-mode cross-check -----------------------------------------------------
def judge(run_dir: Path, percentile: float, bound_s: float, confidence: float) -> dict[str, Any]:
    """The objective checked from the plain rate run's own files with the search's rule."""
    summary = pd.read_csv(run_dir / "summary.csv")
    rows = summary[summary["mode"] == "rate"]
    with gzip.open(run_dir / "requests.csv.gz", "rt") as fh:
        requests = pd.read_csv(fh, keep_default_na=False, na_values={"latency_s": [""]})
    requests = requests[requests["mode"] == "rate"]
    good = requests[requests["error"].astype(str) == ""].sort_values(["intended_s", "seq"])
    ok = good["latency_s"].to_numpy(float)
    value = float(np.percentile(ok, percentile, method="linear")) if ok.size else math.nan
    errors = int(rows["errors"].sum())
    saturated = bool(rows["saturated"].astype(str).str.lower().isin(["true", "1"]).any())
    sent = good["sent_s"].to_numpy(float) if "sent_s" in good else None  # episodes and seconds of arrivals
    evidence = (
        judge_looks([ok], percentile, bound_s, SequentialRule(confidence, 1), sent=None if sent is None else [sent])
        if ok.size
        else None
    )
    if errors or saturated or evidence is None:
        decision = "violated"
    else:
        decision = evidence.decision.value
    return {
        "n_requests": int(rows["n_requests"].sum()),
        "offered_rps": float(rows["rate"].iloc[0]),
        "achieved_rps": float(rows["achieved_rps"].iloc[0]) if "achieved_rps" in rows else math.nan,
        "latency_s": value,
        "errors": errors,
        "saturated": saturated,
        "decision": decision,
        "met": decision == "met",
        "exceed": evidence.exceed if evidence else None,
        "n_effective": round(evidence.n_effective, 1) if evidence else None,
        "lat_lo_s": evidence.lat_lo_s if evidence else None,
        "lat_hi_s": evidence.lat_hi_s if evidence else None,
    }


def cross_check(
    config: Path,
    data: dict[str, Any],
    results_dir: Path,
    found: dict[str, Any],
    seconds: float,
    looks: float,
    stamp: str,
    say: Any,
) -> dict[str, Any]:
    flags = has_rate_flags(config)
    out: dict[str, Any] = {
        "used": "--rate/--duration flags" if flags else "temporary bench.toml ([sweep] rate_rps, n_requests)",
        "targets": {},
    }
    for target, info in found.items():
        capacity = info["median_rps"]
        if math.isnan(capacity):
            out["targets"][target] = {"skipped": "no capacity found"}
            continue
        checks = {}
        confidence = float(info["confidence"]) if info.get("confidence") is not None else 0.95
        min_requests = math.ceil(looks * SequentialRule(confidence, 1).first_look(float(info["percentile"])))
        for factor in FACTORS:
            rate = round(capacity * factor, 3)
            n = max(min_requests, math.ceil(rate * seconds))
            run_id = f"capcheck-{stamp}-{target}-x{factor:g}"
            load_before, t0 = _load(), time.perf_counter()
            if flags:
                proc = bench(
                    config,
                    "run",
                    target,
                    "--modes",
                    "rate",
                    "--rate",
                    str(rate),
                    "--duration",
                    str(n / rate),
                    "--run-id",
                    run_id,
                    "--no-report",
                )
            else:
                patched = _with(
                    data, "sweep", modes=["rate"], rate_rps=rate, n_requests=[n], arrival="poisson", trials=1
                )
                with TempConfig(config, patched, "capacity-check") as tmp:
                    proc = bench(tmp, "run", target, "--run-id", run_id, "--no-report")
            wall = time.perf_counter() - t0
            run_dir = results_dir / run_id
            if not (run_dir / "summary.csv").is_file():
                checks[f"x{factor:g}"] = {"error": f"exit {proc.returncode}: {proc.stderr[-2000:]}"}
                continue
            result = judge(run_dir, info["percentile"], info["bound_s"], confidence)
            result.update(
                factor=factor,
                run_id=run_id,
                exit=proc.returncode,
                wall_s=round(wall, 1),
                loadavg_before=load_before,
                loadavg_after=_load(),
            )
            checks[f"x{factor:g}"] = result
            say(
                f"{target} at {factor:g}x = {rate:g} req/s ({n} requests): p{info['percentile']:g} "
                f"{result['latency_s'] * 1000:.2f} ms, {result['exceed']} over the bound, errors {result['errors']}, "
                f"saturated {result['saturated']} -> {result['decision']} ({wall:.1f} s wall)"
            )
        low, high = checks.get("x0.9", {}), checks.get("x1.2", {})
        checks["consistent"] = bool(low.get("decision") == "met" and high.get("decision") == "violated")
        out["targets"][target] = checks
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="target names (default: every target in the config)")
    parser.add_argument("--config", type=Path, default=ROOT / "bench.toml")
    parser.add_argument("--searches", type=int, default=3, help="capacity searches per target (default: %(default)s)")
    parser.add_argument("--slo", default=None, help="objective, e.g. p99=100ms (default: the config's [capacity])")
    parser.add_argument(
        "--cross-seconds",
        type=float,
        default=5.0,
        help="seconds of arrivals per cross-check run (default: %(default)s)",
    )
    parser.add_argument(
        "--cross-looks",
        type=float,
        default=4.0,
        help="each cross-check run sends at least this many times the requests one look needs to "
        "show 'met' (default: %(default)s)",
    )
    parser.add_argument("--no-cross-check", action="store_true", help="only the repeated searches")
    parser.add_argument(
        "--out",
        default="capacity_check",
        help="name of the results under benchmarks/results/: NAME.md, NAME_searches.csv (every "
        "search's capacity.csv row) and NAME_probes.csv (every look) (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.searches < 1 or not args.cross_seconds > 0:
        parser.error("--searches must be >= 1 and --cross-seconds > 0")

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    config = args.config.resolve()
    data = tomllib.loads(config.read_text())
    targets = args.targets or list(data.get("targets", {}))
    unknown = [t for t in targets if t not in data.get("targets", {})]
    if unknown or not targets:
        parser.error(f"unknown target(s) {unknown}; targets: {', '.join(data.get('targets', {}))}")
    results_dir = (config.parent / data.get("paths", {}).get("results_dir", "results")).resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    started, load_start = time.perf_counter(), _load()
    report: dict[str, Any] = {
        "created_utc": stamp,
        "config": str(config),
        "targets": targets,
        "searches": args.searches,
        "slo": args.slo,
        "loadavg_start": load_start,
        "cpu_count": os.cpu_count(),
    }
    report["search"] = searches(config, data, results_dir, targets, args.searches, args.slo, stamp, say)
    report["search_wall_s"] = round(time.perf_counter() - started, 1)
    if not args.no_cross_check:
        report["cross_check"] = cross_check(
            config, data, results_dir, report["search"]["targets"], args.cross_seconds, args.cross_looks, stamp, say
        )
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["loadavg_end"] = _load()

    print(f"{'target':<16} {'capacities (req/s)':<28} {'median':>9} {'spread':>8}  {'verdicts':<28} cross-check")
    for target, info in report["search"]["targets"].items():
        caps = ", ".join("-" if c is None else f"{c:.4g}" for c in info["capacities_rps"])
        spread = "-" if math.isnan(info["spread_pct"]) else f"{info['spread_pct']:.1f} %"
        cross = report.get("cross_check", {}).get("targets", {}).get(target, {})
        if "skipped" in cross:
            cross_text = cross["skipped"]
        elif cross:
            parts = [f"{k}: {v.get('decision', 'error')}" for k, v in cross.items() if k.startswith("x")]
            cross_text = ", ".join(parts) + (" (consistent)" if cross.get("consistent") else " (NOT consistent)")
        else:
            cross_text = "-"
        print(
            f"{target:<16} {caps:<28} {info['median_rps']:>9.4g} {spread:>8}  "
            f"{', '.join(info['verdicts']):<28} {cross_text}"
        )
        if not all(info["precision_reached"]):
            print(
                f"{'':<16} note: {sum(not p for p in info['precision_reached'])} search(es) stopped before the "
                "precision was reached (see stop_reasons in the JSON): their capacity is a lower bound, so 1.2x "
                "may still meet the objective"
            )
    print(
        f"wall {report['wall_s']:.0f} s (searches {report['search_wall_s']:.0f} s); load average "
        f"{load_start[0]:.2f} at start, {report['loadavg_end'][0]:.2f} at end, {os.cpu_count()} CPUs"
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    (OUT_DIR / "capacity_check.json").write_text(text + "\n")
    (OUT_DIR / f"capacity_check-{stamp}.json").write_text(text + "\n")
    write_markdown(
        report, "python benchmarks/capacity_check.py " + " ".join(argv if argv is not None else sys.argv[1:]), args.out
    )
    write_rows(results_dir, [run["run_id"] for run in report["search"]["runs"]], args.out)
    print(
        f"wrote {OUT_DIR / 'capacity_check.json'} (and a timestamped copy) and {RESULTS / args.out}.md, "
        "_searches.csv, _probes.csv"
    )
    return 0


def write_rows(results_dir: Path, run_ids: list[str], name: str) -> None:
    """NAME_searches.csv and NAME_probes.csv: every search's capacity.csv row and every look,
    gathered from the search runs, so the md's figures can be re-read without the runs."""
    for suffix, csv_name in (("searches", "capacity.csv"), ("probes", "capacity_probes.csv")):
        frames = [pd.read_csv(results_dir / r / csv_name) for r in run_ids if (results_dir / r / csv_name).is_file()]
        if frames:
            pd.concat(frames, ignore_index=True).to_csv(RESULTS / f"{name}_{suffix}.csv", index=False)


def write_markdown(report: dict[str, Any], command: str, name: str = "capacity_check") -> None:
    """benchmarks/results/NAME.md: what anyone needs to re-read the figures."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    start, end = report["loadavg_start"], report["loadavg_end"]
    lines = [
        "# Capacity searches on the stand-ins: repeatability and plain rate runs",
        "",
        f"- command: `{command.strip()}`",
        f"- date: {report['created_utc']} UTC, commit {commit}",
        f"- load average (1, 5, 15 min) at start / end: {' '.join(f'{x:.2f}' for x in start)} / "
        f"{' '.join(f'{x:.2f}' for x in end)} on {report['cpu_count']} CPUs"
        + (" -- **loaded machine**" if max(start[0], end[0]) > 1 else ""),
        f"- wall time: {report['wall_s']:.0f} s in all; searches {report['search_wall_s']:.0f} s "
        f"({report['searches']} x `bench run {' '.join(report['targets'])} --modes capacity`, one per row "
        "below)",
        "",
    ]
    lines += ["| search run | wall s | load before | load after |", "|---|---|---|---|"]
    for run in report["search"]["runs"]:
        lines.append(
            f"| {run['run_id']} | {run['wall_s']} | {run['loadavg_before'][0]:.2f} | {run['loadavg_after'][0]:.2f} |"
        )
    lines += [
        "",
        "| target | capacities offered (req/s) | median | max deviation from median | verdicts | "
        "0.9x rate run | 1.2x rate run | consistent |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cross = report.get("cross_check", {}).get("targets", {})
    for target, info in report["search"]["targets"].items():
        caps = ", ".join("-" if c is None else f"{c:.4g}" for c in info["capacities_rps"])
        dev = info.get("max_dev_from_median_pct", math.nan)
        cells = []
        for key in ("x0.9", "x1.2"):
            c = cross.get(target, {}).get(key, {})
            if "decision" in c:
                cells.append(
                    f"{c['offered_rps']:.4g} req/s x {c['n_requests']}: {c['decision']} "
                    f"({c['exceed']} over, p{info['percentile']:g} {c['latency_s'] * 1000:.1f} ms"
                    + (", saturated" if c["saturated"] else "")
                    + (f", {c['errors']} errors" if c["errors"] else "")
                    + ")"
                )
            else:
                cells.append(cross.get(target, {}).get("skipped", c.get("error", "-"))[:80])
        lines.append(
            f"| {target} | {caps} | {info['median_rps']:.4g} | "
            f"{'-' if math.isnan(dev) else f'{dev:.1f} %'} | {', '.join(info['verdicts'])} | {cells[0]} | "
            f"{cells[1]} | {cross.get(target, {}).get('consistent', '-')} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
