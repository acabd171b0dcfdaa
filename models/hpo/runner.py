"""Run a trial as its own process and read its metrics the way Katib's StdOut collector does.

Why a process per trial: a Katib trial is a fresh container running
``python -m models.trial ...``; running the very same command locally measures the same
thing (process start, imports, data loading, training, evaluation) and exercises the
entry point a cluster would run.  Each process trains with one torch thread, so
``parallel`` trials share the machine's cores as ``parallel`` single-threaded jobs.

Every trial process is started in its own process group and registered; ``cancel_all``
(called by :func:`models.hpo.search.run_study` on an interrupt) and the per-trial timeout
stop the whole group with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from models.hpo.search import TrialFailed, TrialOutcome
from models.hpo.space import TrialParams

__all__ = ["KATIB_METRIC_RE", "ProcessTrialRunner", "parse_metrics", "trial_command"]

#: Katib's default StdOut metrics filter (``pkg/metricscollector``): ``name=value`` pairs.
KATIB_METRIC_RE = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")


def parse_metrics(text: str) -> dict[str, float]:
    """``name=value`` metrics in ``text``; the last report of a name wins (Katib's ``latest``)."""
    metrics: dict[str, float] = {}
    for line in text.splitlines():
        for match in KATIB_METRIC_RE.finditer(line):
            try:
                metrics[match.group(1)] = float(match.group(2))
            except ValueError:  # e.g. "x=" followed by a non-number: not a metric
                continue
    return metrics


def trial_command(
    params: TrialParams,
    *,
    epochs: int,
    momentum: float,
    config_path: str | Path | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The argv of one local trial (the Katib trial Job runs the same module and flags)."""
    argv = [
        python,
        "-m",
        "models.trial",
        f"--lr={params.lr!r}",
        f"--batch-size={params.batch_size}",
        f"--epochs={epochs}",
        f"--momentum={momentum!r}",
        "--threads=1",
    ]
    if config_path is not None:
        argv.append(f"--config={config_path}")
    return argv


class ProcessTrialRunner:
    """An :data:`models.hpo.search.Objective` that runs each trial as ``python -m models.trial``."""

    def __init__(
        self,
        *,
        epochs: int,
        momentum: float = 0.5,
        config_path: str | Path | None = None,
        cwd: str | Path | None = None,
        timeout_s: float = 900.0,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.epochs = epochs
        self.momentum = momentum
        self.config_path = config_path
        self.cwd = Path(cwd) if cwd is not None else None
        self.timeout_s = timeout_s
        self.python = python
        base = dict(os.environ if env is None else env)
        # One thread per trial process, whatever the libraries would pick by themselves.
        base.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
        self._env = base
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._cancelled = False

    def command(self, params: TrialParams) -> Sequence[str]:
        return trial_command(
            params, epochs=self.epochs, momentum=self.momentum, config_path=self.config_path, python=self.python
        )

    def __call__(self, params: TrialParams) -> TrialOutcome:
        with self._lock:
            if self._cancelled:
                raise TrialFailed("cancelled before start")
            proc = subprocess.Popen(
                list(self.command(params)),
                cwd=self.cwd,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            self._live.add(proc)
        try:
            try:
                out, err = proc.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                _stop_group(proc)
                proc.communicate()
                raise TrialFailed(f"timed out after {self.timeout_s:g} s") from None
        finally:
            with self._lock:
                self._live.discard(proc)
        if proc.returncode != 0:
            tail = [line for line in err.strip().splitlines() if line.strip()][-1:] or ["(no stderr)"]
            raise TrialFailed(f"trial process exited with {proc.returncode}: {tail[0][:300]}")
        metrics = parse_metrics(out)
        if "loss" not in metrics:
            raise TrialFailed("no 'loss=<number>' line in the trial's output")
        loss = metrics["loss"]
        if not math.isfinite(loss):
            raise TrialFailed(f"non-finite loss {loss}")
        return TrialOutcome(loss=loss, accuracy=metrics.get("accuracy", float("nan")))

    def cancel_all(self) -> None:
        """Stop every running trial process (SIGTERM, then SIGKILL) and refuse new ones."""
        with self._lock:
            self._cancelled = True
            live = list(self._live)
        for proc in live:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    """SIGTERM the trial's process group, SIGKILL it if it has not gone after ``grace_s``."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
