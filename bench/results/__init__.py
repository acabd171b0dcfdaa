"""The run folder ``results/<run-id>/``: its layout, writing, reading, schema and status.

One package owns what a run leaves on disk; every command writes and reads runs through it.

Modules, each with one job:

- :mod:`~bench.results.layout` -- the folder's file names, valid run ids, which folders
  already hold a run (:func:`holds_run`, :func:`refuse_existing_run`), finding a run by id;
- :mod:`~bench.results.writer` -- :class:`RunWriter` (summary.csv rows and one gzip member
  of requests.csv.gz per step, flushed as measured, redacted), meta.json written atomically;
- :mod:`~bench.results.parse` -- summary.csv and requests.csv.gz parsed back into
  :class:`loadgen.stats.StepSummary` and :class:`loadgen.records.RequestRecord` records;
- :mod:`~bench.results.load` -- a whole folder read back as one :class:`RunData`;
- :mod:`~bench.results.schema` -- the schema version, what each version added, and where
  older files are upgraded on reading;
- :mod:`~bench.results.header` -- a new run's meta.json, filled with this machine's and
  checkout's facts (:func:`~bench.results.header.run_header`, ``new_meta``);
- :mod:`~bench.results.status` -- who wrote a run and whether it is still running
  (``running`` vs ``abandoned``), and the warnings shown before a run's numbers.

The record meta.json holds, :class:`ground.runmeta.RunMeta`, lives in ``ground`` because
``models/pipeline`` reads it too and may not import ``bench``. The capacity search's own
files are its feature's (``bench/capacity/results.py``), appended with
:func:`append_csv_rows`.

Public surface: the names below are what other packages import from ``bench.results``;
:mod:`~bench.results.header`, :mod:`~bench.results.status` and :mod:`~bench.results.parse`
are imported from their modules (they are used by few, and some by ``bench run`` alone).
"""

from __future__ import annotations

from bench.results.layout import (
    HPO_TRIALS_FILE,
    META_FILE,
    PIPELINE_STAGES_FILE,
    REQUESTS_FILE,
    RESULT_MARKERS,
    RUN_MARKERS,
    SHARDS_DIR,
    SUMMARY_FILE,
    ResultsError,
    fresh_run_dir,
    holds_run,
    refuse_existing_run,
    resolve_run,
    validate_run_id,
)
from bench.results.load import RunData, latest_run, load_run, read_meta, read_requests
from bench.results.parse import REQUEST_KEY_COLUMNS
from bench.results.schema import SCHEMA_VERSION
from bench.results.writer import RunWriter, append_csv_rows, write_json_atomic, write_meta_file

__all__ = [
    "HPO_TRIALS_FILE",
    "META_FILE",
    "PIPELINE_STAGES_FILE",
    "REQUESTS_FILE",
    "REQUEST_KEY_COLUMNS",
    "RESULT_MARKERS",
    "RUN_MARKERS",
    "SCHEMA_VERSION",
    "SHARDS_DIR",
    "SUMMARY_FILE",
    "ResultsError",
    "RunData",
    "RunWriter",
    "append_csv_rows",
    "fresh_run_dir",
    "holds_run",
    "latest_run",
    "load_run",
    "read_meta",
    "read_requests",
    "refuse_existing_run",
    "resolve_run",
    "validate_run_id",
    "write_json_atomic",
    "write_meta_file",
]
