"""Micro-benchmark: writing one step's raw records (``RunWriter.append_requests``).

Why: after every step the sweep writes all its records to ``requests.csv.gz`` as one gzip
member (CSV formatting, redaction of text cells, gzip level 6, fsync) before the next step
starts.  100,000 records is the largest step a sweep allows (``loadgen.sweep``).  Each
round appends one more member to the same file, as consecutive steps of a run do; the
file is then read back with the real reader and the last step compared with the records.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from micro_data import open_loop_step

from bench.results import RunWriter, read_requests
from loadgen.stats import SUMMARY_COLUMNS

N_RECORDS = 100_000


@pytest.fixture(scope="module")
def step_and_arrays() -> tuple:
    return open_loop_step(N_RECORDS, seed=21, mode="rate")


def test_append_requests_100k(benchmark, step_and_arrays: tuple, tmp_path: Path) -> None:
    step, arrays = step_and_arrays
    with RunWriter(tmp_path / "run", "micro", SUMMARY_COLUMNS) as writer:
        benchmark(writer.append_requests, step.key, step.records)
        written = writer.requests_written
    frame = read_requests(writer.requests_path)
    assert frame is not None
    assert len(frame) == written and written % N_RECORDS == 0 and written >= N_RECORDS
    last = frame.iloc[-N_RECORDS:]
    np.testing.assert_array_equal(last["seq"].to_numpy(), np.arange(N_RECORDS))
    np.testing.assert_array_equal(last["latency_s"].to_numpy(float), arrays.latency_s)  # exact round trip
    np.testing.assert_array_equal(last["intended_s"].to_numpy(float), arrays.intended_s)
    np.testing.assert_array_equal(last["error"].to_numpy() == "http_5xx", arrays.failed)
    assert set(last["mode"]) == {"rate"} and set(last["run_id"]) == {"micro"}
