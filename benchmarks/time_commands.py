"""Time what a newcomer runs first -- training the model, `bench run all` -- with the machine's load.

Why: the README's time figures ("~10 s to train", "1 min 30 s for run all") were taken on
a quiet machine and read as promises; on a busy one the same commands took 105 s and
151 s. Every figure the README quotes is a row of ``benchmarks/results/command_times.csv``
written by this script: the command, its wall time, the parts `bench run` records in
meta.json (``timing``), the load average before and after, and the commit.

    python benchmarks/time_commands.py train            # trains into a scratch folder (never artifacts/)
    python benchmarks/time_commands.py run              # python -m bench run all, results in a scratch folder
    python benchmarks/time_commands.py run --requests 1,4,16,64,256

A row is labelled ``loaded machine`` when the 1-minute load average before or after was
above 1, else ``quiet machine``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "command_times.csv"
COLUMNS = (
    "utc",
    "commit",
    "what",
    "command",
    "exit",
    "wall_s",
    "model_s",
    "calibration_s",
    "targets_s",
    "train_s",
    "export_s",
    "load_before",
    "load_after",
    "cpus",
    "machine",
    "notes",
)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return done.stdout.strip() + ("+dirty" if dirty else "")


def _scratch_config(scratch: Path) -> Path:
    """bench.toml as shipped, with the model trained into ``scratch`` (the project's model is never touched)."""
    text = (ROOT / "bench.toml").read_text(encoding="utf-8")
    text, count = re.subn(r'(?m)^artifacts_dir = "[^"]*"', f'artifacts_dir = "{scratch / "model"}"', text)
    if count != 1:
        raise SystemExit('bench.toml: expected exactly one `artifacts_dir = "..."` line in [model]')
    path = scratch / "bench.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _time(command: list[str], timeout_s: float) -> tuple[int, float, str, str]:
    before = _load()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - started
    return done.returncode, wall, before, _load()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("train", "run"))
    parser.add_argument("--requests", default=None, help="bench run --requests (default: bench.toml's)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before the command is killed")
    args = parser.parse_args()
    row: dict[str, object] = {
        "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _commit(),
        "what": args.what,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="servebench-time-") as tmp:
        scratch = Path(tmp)
        if args.what == "train":
            command = [sys.executable, "-m", "bench", "--config", str(_scratch_config(scratch)), "train"]
            shown = "python -m bench train (into an empty artifacts folder)"
        else:
            command = [
                sys.executable,
                "-m",
                "bench",
                "-q",
                "run",
                "all",
                "--out",
                str(scratch / "results"),
                "--run-id",
                "timed",
                "--no-report",
            ]
            if args.requests:
                command += ["--requests", args.requests]
            shown = "python -m bench run all" + (f" --requests {args.requests}" if args.requests else "")
        code, wall, before, after = _time(command, args.timeout)
        meta_path = scratch / "results" / "timed" / "meta.json"
        timing = json.loads(meta_path.read_text())["timing"] if meta_path.is_file() else {}
        model_json = scratch / "model" / "model.json"  # training and export as the trainer timed them
        model = json.loads(model_json.read_text()) if model_json.is_file() else {}
    loaded = max(float(before.split()[0]), float(after.split()[0])) > 1.0
    row.update(
        command=shown,
        exit=code,
        wall_s=round(wall, 1),
        model_s=timing.get("model_s", ""),
        calibration_s=timing.get("calibration_s", ""),
        targets_s=timing.get("targets_s", ""),
        train_s=model.get("training_seconds", ""),
        export_s=model.get("export_seconds", ""),
        notes="",
        load_before=before,
        load_after=after,
        machine="loaded machine" if loaded else "quiet machine",
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    new = not OUT.is_file()
    with OUT.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    print(", ".join(f"{k}={v}" for k, v in row.items()))
    return code


if __name__ == "__main__":
    sys.exit(main())
