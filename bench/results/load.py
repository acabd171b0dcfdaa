"""Read a run folder back as one :class:`RunData`: its summary rows, raw requests and meta.json.

The files are parsed by :mod:`bench.results.parse` (summary.csv, requests.csv.gz) and
:func:`ground.runmeta.read_run_meta` (meta.json), so a run comes back as the typed records
it was written from, whichever schema wrote it (:mod:`bench.results.schema`). Readers take
a :class:`ground.redactor.Redactor` too, so a report of a run written before redaction
existed shows no secret either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import pandas as pd

from bench.results.chunks import iter_request_frames
from bench.results.digest import DIGEST_COLUMNS, PooledKey, StepLatencies, digest_frames, digest_requests
from bench.results.layout import (
    META_FILE,
    PIPELINE_STAGES_FILE,
    REQUESTS_FILE,
    SUMMARY_FILE,
    ResultsError,
    run_dirs,
)
from bench.results.parse import ReadError, read_requests_csv, read_summary_csv, step_results, summary_frame
from bench.results.partial import checkpointed_key, partial_summary
from bench.results.schema import guessed_schema
from ground.redactor import Redactor
from ground.runmeta import KIND_SERVING, MetaError, RunMeta, RunStatus, read_run_meta
from loadgen.records import StepResult
from loadgen.stats import SUMMARY_COLUMNS, StepSummary

__all__ = ["RunData", "latest_run", "load_run", "read_meta", "read_requests"]


@dataclass(frozen=True)
class RunData:
    """A run as read back from disk: its summary rows, optional raw requests, its metadata.

    ``steps`` are the typed summary rows (:class:`loadgen.stats.StepSummary`, any schema);
    ``summary`` is the same rows as a DataFrame with every current column, for the pandas
    code of the report; ``columns`` are the columns the summary file actually had.

    The raw requests are read only when asked for, from ``requests_file`` (or given in
    memory as ``request_frame``): :meth:`latencies` reads them in bounded chunks into
    one compact array per step (what report and compare need, at any run length);
    :attr:`requests` is the whole table in memory (about 750 bytes per record: small
    runs, tests). ``dropped_modes`` are left out of both (:meth:`without_modes`).
    """

    path: Path
    run_id: str
    steps: tuple[StepSummary, ...]
    meta: RunMeta
    columns: frozenset[str] = frozenset(SUMMARY_COLUMNS)
    requests_file: Path | None = None
    request_frame: pd.DataFrame | None = None
    redactor: Redactor | None = None
    dropped_modes: frozenset[str] = frozenset()

    @cached_property
    def summary(self) -> pd.DataFrame:
        return summary_frame(self.steps)

    @cached_property
    def requests(self) -> pd.DataFrame | None:
        """Every request row in memory (None when the run has none): unbounded, see the class docstring."""
        frame = self.request_frame
        if frame is None and self.requests_file is not None:
            frame = read_requests(self.requests_file)
            if frame is not None and self.redactor:
                for column in ("error_detail", "error"):
                    frame[column] = [self.redactor.redact(v) if isinstance(v, str) else v for v in frame[column]]
        if frame is not None and self.dropped_modes:
            frame = frame[~frame["mode"].isin(self.dropped_modes)].reset_index(drop=True)
        return frame

    @cached_property
    def _digest(self) -> dict[PooledKey, StepLatencies] | None:
        if self.request_frame is not None:
            return digest_frames([self.request_frame], self.dropped_modes)
        if self.requests_file is None:
            return None
        try:
            return digest_requests(self.requests_file, self.dropped_modes)
        except ReadError as exc:
            raise ResultsError(str(exc)) from None

    def scan_requests(self, consume: Callable[[pd.DataFrame], None], columns: Sequence[str]) -> None:
        """Feed ``consume`` every request row (``columns``, the dropped modes left out) in
        bounded chunks. When the digest (:meth:`latencies`) has not been read yet it is built
        in the same pass: one read of requests.csv.gz serves the report's latency CDF and its
        timeline, not two (a 10 M-request run's file is 337 MB of gzip: benchmarks/results/bench_memory.md).
        Raises :class:`~bench.results.parse.ReadError` when the file is unreadable."""
        drop, wanted = self.dropped_modes, list(columns)
        if self.request_frame is not None:
            frame = self.request_frame
            consume((frame[~frame["mode"].isin(drop)] if drop else frame)[wanted])
            return
        if self.requests_file is None:
            return
        if "_digest" in self.__dict__:  # read already: only the caller's pass
            for frame in iter_request_frames(self.requests_file, wanted):
                consume(frame[~frame["mode"].isin(drop)] if drop else frame)
            return
        both = list(dict.fromkeys((*wanted, *DIGEST_COLUMNS)))

        def tee() -> Iterator[pd.DataFrame]:
            for frame in iter_request_frames(self.requests_file, both):
                kept = frame[~frame["mode"].isin(drop)] if drop else frame
                consume(kept[wanted])
                yield kept

        self.__dict__["_digest"] = digest_frames(tee())  # what the cached property would hold

    def latencies(self) -> dict[PooledKey, StepLatencies] | None:
        """Per step (trials pooled), the successful requests' latencies and the count sent, read
        in bounded chunks (:mod:`bench.results.digest`); None when the run has no requests file."""
        return self._digest

    @property
    def schema_version(self) -> int | None:
        return self.meta.schema_version

    @property
    def targets(self) -> list[str]:
        """Targets in run order (meta's order first, then any others as they appear)."""
        present = {s.key.target for s in self.steps}
        seen = [t for t in self.meta.details.get("targets_order") or [] if t in present]
        return seen + [t for t in dict.fromkeys(s.key.target for s in self.steps) if t not in seen]

    def without_modes(self, modes: Iterable[str]) -> RunData:
        """The run without the steps (and requests) of ``modes``, e.g. the capacity searches."""
        drop = set(modes)
        return replace(
            self,
            steps=tuple(s for s in self.steps if s.key.mode not in drop),
            dropped_modes=self.dropped_modes | drop,
        )

    def step_results(self) -> list[StepResult]:
        """The measured steps with their raw records (needs requests.csv.gz), as the sweep produced them."""
        return step_results(self.steps, self.requests)


def read_meta(directory: Path) -> RunMeta | None:
    """The run's meta.json as a :class:`ground.runmeta.RunMeta` (None when it has none)."""
    try:
        return read_run_meta(Path(directory) / META_FILE)
    except MetaError as exc:
        raise ResultsError(str(exc)) from None


def read_requests(path: Path) -> pd.DataFrame | None:
    """Per-request rows; a member truncated by a crash is dropped after its last full line."""
    try:
        return read_requests_csv(path)
    except ReadError as exc:
        raise ResultsError(str(exc)) from None


def load_run(ref: str | Path, *, with_requests: bool = True, redactor: Redactor | None = None) -> RunData:
    """A run folder, or a ``summary.csv`` path (then only that file and a sibling meta.json).

    With ``redactor``, meta.json and the requests' text columns come back redacted, so
    whatever is rendered from them (reports) holds no configured secret, even for a run
    written before redaction existed.
    """
    path = Path(ref)
    if path.is_file():
        directory, summary_path, requests_path = path.parent, path, None
    elif path.is_dir():
        directory, summary_path = path, path / SUMMARY_FILE
        requests_path = path / REQUESTS_FILE if with_requests else None
    else:
        raise ResultsError(f"{ref} is neither a run folder nor a summary CSV")
    if not summary_path.is_file() and (directory / PIPELINE_STAGES_FILE).is_file():
        raise ResultsError(
            f"{directory} is a pipeline run (it has {PIPELINE_STAGES_FILE}), not a serving "
            f"benchmark: it has no {SUMMARY_FILE}; `bench report` renders it, `bench compare` cannot"
        )
    meta = read_meta(directory)
    if not summary_path.is_file() and meta is not None and meta.kind != KIND_SERVING:
        raise ResultsError(f"{directory} is a {meta.kind!r} run, not a serving benchmark: it has no {SUMMARY_FILE}")
    try:
        summary = read_summary_csv(summary_path)
    except ReadError as exc:
        raise ResultsError(str(exc)) from None
    if meta is None:
        meta = RunMeta(
            kind=KIND_SERVING,
            run_id=summary.run_id or directory.name,
            status=RunStatus.UNKNOWN,
            schema_version=guessed_schema(summary.columns),
            status_reason="the run has no meta.json",
        )
    if redactor:
        meta = RunMeta.from_json(redactor.redact_data(meta.to_json()))
    steps = summary.steps
    cut_short = checkpointed_key(meta.details)
    if cut_short is not None and (directory / REQUESTS_FILE).is_file():  # a step killed mid-way: its partial row
        try:
            partial = partial_summary(directory / REQUESTS_FILE, cut_short, steps, meta.details)
        except ReadError as exc:
            raise ResultsError(str(exc)) from None
        steps = steps if partial is None else (*steps, partial)
    return RunData(
        path=directory,
        run_id=meta.run_id,
        steps=steps,
        meta=meta,
        columns=summary.columns,
        requests_file=requests_path if requests_path is not None and requests_path.is_file() else None,
        redactor=redactor,
    )


def latest_run(results_dir: Path) -> Path:
    """The most recently started run under ``results_dir`` (by meta start time, then mtime)."""
    runs = run_dirs(results_dir)
    if not runs:
        raise ResultsError(f"no runs under {results_dir}; run `python -m bench run all` first")

    def started(p: Path) -> tuple[float, float]:
        try:
            meta = read_meta(p)
        except ResultsError:
            meta = None
        return (float(meta.started_at or 0.0) if meta else 0.0, p.stat().st_mtime)

    return max(runs, key=started)
