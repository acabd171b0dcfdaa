"""Shared by aa_study.py and ab_study.py: scratch configs, `bench run` / `bench compare` as subprocesses.

Why subprocesses: the studies must measure exactly what a user's CI does -- separate
`python -m bench run` processes (fresh stand-ins, fresh placement) compared by
`python -m bench compare --fail-on-regression` -- not an in-process shortcut. Runs go
into a scratch results folder through a temporary copy of bench.toml, so the user's
results/ is never touched.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "benchmarks" / "out"
RUN_TIMEOUT_S = 1800.0  # one `bench run`; generous, but every child is bounded
COMPARE_TIMEOUT_S = 300.0

__all__ = ["OUT_DIR", "ROOT", "Scratch", "busy_competitor", "loadavg", "loaded", "stop", "target_line", "write_json"]


def loadavg() -> str:
    """`cat /proc/loadavg`, as the studies print it before and after."""
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unavailable"


def loaded(*samples: str, limit: float = 1.0) -> bool:
    """True when any sample's 1-minute load exceeds ``limit``: results then say 'loaded machine'."""
    for sample in samples:
        try:
            if float(sample.split()[0]) > limit:
                return True
        except (ValueError, IndexError):
            continue
    return False


def _toml_key(key: str) -> str:
    bare = key.replace("-", "").replace("_", "")
    return key if bare.isalnum() and bare.isascii() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_tables(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    lines = []
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars]
    for key, table in tables:
        lines += _toml_tables(table, f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key))
    return lines


@dataclass
class Scratch:
    """A temporary results folder and bench.toml copies pointing at it; removed by :meth:`close`."""

    config: Path = ROOT / "bench.toml"
    keep: bool = False
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="servebench-study-")))
    run_seconds: list[float] = field(default_factory=list)
    compare_seconds: list[float] = field(default_factory=list)

    def write_config(self, name: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
        """A copy of bench.toml with results in the scratch folder and absolute model paths.

        ``overrides``: {"targets.greene-linserv": {"model_loading": "startup"}, ...}.
        """
        data = tomllib.loads(self.config.read_text(encoding="utf-8"))
        root = self.config.resolve().parent
        model = data.setdefault("model", {})
        model["artifacts_dir"] = str((root / model.get("artifacts_dir", "artifacts/model")).resolve())
        if model.get("idx_dir"):
            model["idx_dir"] = str((root / model["idx_dir"]).resolve())
        data["paths"] = {"results_dir": str(self.directory / "results"), "reports_dir": str(self.directory / "reports")}
        for dotted, values in (overrides or {}).items():
            table = data
            for part in dotted.split("."):
                table = table.setdefault(part, {})
            table.update(values)
        path = self.directory / f"{name}.toml"
        path.write_text("\n".join(_toml_tables(data)) + "\n", encoding="utf-8")
        return path

    def bench(self, config: Path, args: Sequence[str], log_name: str, timeout_s: float) -> subprocess.CompletedProcess:
        """`python -m bench --config CONFIG ARGS`, output kept in the scratch folder's logs."""
        logs = self.directory / "logs"
        logs.mkdir(exist_ok=True)
        cmd = [sys.executable, "-m", "bench", "--config", str(config), *args]
        child = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
        )
        try:
            stdout, stderr = child.communicate(timeout=timeout_s)
        except BaseException:  # timeout or Ctrl-C: let bench stop its stand-ins (its Ctrl-C path) first
            _interrupt(child)
            raise
        (logs / f"{log_name}.log").write_text(
            f"$ {' '.join(cmd)}\nexit {child.returncode}\n--- stdout\n{stdout}\n--- stderr\n{stderr}", encoding="utf-8"
        )
        return subprocess.CompletedProcess(cmd, child.returncode, stdout, stderr)

    def train(self, config: Path) -> None:
        """Train the model now if needed, so that no run's time includes training."""
        proc = self.bench(config, ["-q", "train"], "train", RUN_TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"`bench train` exited {proc.returncode}: {proc.stderr[-2000:]}")

    def run(
        self,
        config: Path,
        run_id: str,
        *,
        targets: Sequence[str],
        requests: str,
        trials: int,
        modes: str | None,
        extra: Sequence[str] = (),
    ) -> int:
        """One `bench run` into the scratch results; returns its exit code (1 = some request failed)."""
        args = [
            "-q",
            "run",
            *targets,
            "--requests",
            requests,
            "--trials",
            str(trials),
            "--run-id",
            run_id,
            "--no-report",
            *extra,
        ]
        if modes:
            args += ["--modes", modes]
        started = time.monotonic()
        proc = self.bench(config, args, f"run-{run_id}", RUN_TIMEOUT_S)
        self.run_seconds.append(time.monotonic() - started)
        if proc.returncode not in (0, 1) or not (self.directory / "results" / run_id / "summary.csv").is_file():
            raise RuntimeError(
                f"`bench run` {run_id} failed (exit {proc.returncode}); log: "
                f"{self.directory / 'logs' / f'run-{run_id}.log'}\n{proc.stderr[-2000:]}"
            )
        return proc.returncode

    def compare(self, config: Path, a: str, b: str, extra: Sequence[str] = ()) -> tuple[int, list[dict[str, Any]]]:
        """`bench compare A B --fail-on-regression --format csv`: (exit code 0/1/3, the per-target rows)."""
        import pandas as pd

        started = time.monotonic()
        proc = self.bench(
            config,
            ["-q", "compare", a, b, "--fail-on-regression", "--format", "csv", *extra],
            f"compare-{a}-{b}",
            COMPARE_TIMEOUT_S,
        )
        self.compare_seconds.append(time.monotonic() - started)
        if proc.returncode not in (0, 1, 3):  # 3 = cannot judge; 2 = bad input, a study error
            raise RuntimeError(f"`bench compare {a} {b}` exited {proc.returncode}: {proc.stderr[-2000:]}")
        rows = pd.read_csv(io.StringIO(proc.stdout), comment="#")
        targets = rows[rows["level"] == "target"]
        keep = [
            "target",
            "ratio",
            "ci_low",
            "ci_high",
            "ci_level",
            "threshold_pct",
            "noise_floor_pct",
            "verdict",
            "independent",
            "trial_sd",
            "dof",
            "detectable_pct",
            "between_trial_sd",
            "within_trial_sd",
        ]
        return proc.returncode, json.loads(targets[keep].to_json(orient="records"))

    def summary(self, run_id: str):
        import pandas as pd

        return pd.read_csv(self.directory / "results" / run_id / "summary.csv")

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.directory, ignore_errors=True)


_BUSY = """
import os, sys, time
cpus = {int(c) for c in sys.argv[1].split(",")}
duty, period, limit = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, cpus)
end = time.monotonic() + limit
tick = time.monotonic()
while time.monotonic() < end:
    start = time.monotonic()
    while time.monotonic() - start < duty * period:
        pass
    tick += period
    pause = tick - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    else:
        tick = time.monotonic()
"""


def busy_competitor(
    cpus: Sequence[int], duty: float, *, period_s: float = 0.010, limit_s: float = RUN_TIMEOUT_S
) -> subprocess.Popen:
    """A CPU-bound process pinned to ``cpus``, busy ``duty`` of every ``period_s``.

    It exits by itself after ``limit_s`` even if this script dies; the caller stops it
    (terminate, then kill) as soon as the run it disturbs is over.
    """
    if not 0 < duty <= 1:
        raise ValueError(f"duty must be in (0, 1], got {duty}")
    return subprocess.Popen(
        [sys.executable, "-c", _BUSY, ",".join(str(c) for c in cpus), str(duty), str(period_s), str(limit_s)]
    )


def _interrupt(child: subprocess.Popen) -> None:
    """SIGINT (bench's Ctrl-C path stops its stand-ins), then SIGTERM, then SIGKILL."""
    for send, wait_s in ((lambda: child.send_signal(signal.SIGINT), 30), (child.terminate, 10), (child.kill, None)):
        if child.poll() is not None:
            return
        send()
        try:
            child.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


def stop(proc: subprocess.Popen) -> None:
    """Stop one child we started: SIGTERM, then SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def target_line(rows: Sequence[Mapping[str, Any]]) -> str:
    """'greene-linserv 1.031 [0.981, 1.072] thr 8.2 % no significant change; ...' (missing numbers as '-')."""

    def num(value: Any) -> str:
        return "-" if value is None or (isinstance(value, float) and value != value) else f"{value:.3f}"

    def pct(value: Any) -> str:
        return "-" if value is None or (isinstance(value, float) and value != value) else f"{value:.1f}"

    return "; ".join(
        f"{r['target']} {num(r['ratio'])} [{num(r['ci_low'])}, {num(r['ci_high'])}] "
        f"thr {pct(r['threshold_pct'])} % {r['verdict']}"
        for r in rows
    )


def write_json(name: str, data: Mapping[str, Any]) -> Path:
    """benchmarks/out/NAME.json (git-ignored), plus a timestamped copy."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, default=str) + "\n"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    (OUT_DIR / f"{name}-{stamp}.json").write_text(text, encoding="utf-8")
    path = OUT_DIR / f"{name}.json"
    path.write_text(text, encoding="utf-8")
    return path


def git_commit() -> str:
    """The checkout's commit (with '+dirty' when it has uncommitted changes), for result headers."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def study_header(command: str, label: str, loads: Sequence[str]) -> list[str]:
    """The lines every committed study result starts with: command, date, commit, loads, label."""
    firsts = []
    for sample in loads:
        try:
            firsts.append(float(sample.split()[0]))
        except (ValueError, IndexError):
            continue
    span = f"{min(firsts):.2f}-{max(firsts):.2f}" if firsts else "unavailable"
    return [
        f"command: `{command}`",
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"commit: {git_commit()}",
        f"1-minute load average over the study: {span} (`/proc/loadavg` samples: "
        f"{len(firsts)}); {label}; 2 CPUs shared with other work",
    ]


def write_study(
    out: Path, header: Sequence[str], summary: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> tuple[Path, Path]:
    """OUT.md (header, summary lines) and OUT.csv (the rows, header lines as # comments)."""
    import csv

    out.parent.mkdir(parents=True, exist_ok=True)
    md = out.with_suffix(".md")
    md.write_text("\n".join([f"# {out.name}", "", *(f"- {h}" for h in header), "", *summary]) + "\n", encoding="utf-8")
    path = out.with_suffix(".csv")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", encoding="utf-8", newline="") as f:
        for line in header:
            f.write(f"# {line}\n")
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return md, path
