"""The bounded readers of requests.csv.gz give what the whole-file readers gave, chunk size whatever.

The reference is the reader as it was before issue 25 (the whole file decompressed and
parsed at once), copied here, so "same numbers out" is checked against the old code itself.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import zlib

import numpy as np
import pandas as pd
import pytest

from bench.compare.data import request_latencies
from bench.report.figures import cdf_points, fig_latency_cdf
from bench.results import RunWriter, load_run
from bench.results.chunks import iter_csv_blocks, iter_request_frames
from bench.results.digest import digest_frames, digest_requests, ok_latencies_of
from bench.results.parse import ok_latencies, read_requests_csv
from loadgen.records import RECORD_COLUMNS, RequestRecord
from loadgen.stats import SUMMARY_COLUMNS
from tests.support.synthetic_runs import make_step, write_synthetic_run

_OLD_DEFAULTS = {
    "service_s": math.nan,
    "error_detail": "",
    "bytes_out": 0,
    "bytes_in": 0,
    "label": -1,
    "predicted": -1,
    "status": 0,
}


def old_read_requests_csv(path):
    """bench.results.parse.read_requests_csv as it was at commit 01d424c (whole file at once)."""
    raw = path.read_bytes()
    chunks = []
    while raw:
        member = zlib.decompressobj(wbits=31)
        try:
            chunks.append(member.decompress(raw))
        except zlib.error:
            break
        if not member.eof:
            break
        raw = member.unused_data
    data = b"".join(chunks)
    if not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    if not data:
        return None
    frame = pd.read_csv(
        io.BytesIO(data),
        keep_default_na=False,
        na_values={"latency_s": [""], "sent_s": [""], "service_s": [""], "intended_s": [""]},
        float_precision="round_trip",
    )
    for column, default in (("concurrency", None), ("rate", 0.0), *_OLD_DEFAULTS.items()):
        if column not in frame.columns:
            frame[column] = default
    if frame["concurrency"].isna().any():
        frame["concurrency"] = np.where(frame["mode"] == "sequential", 1, frame["n_requests"])
    for column in ("target", "mode", "error", "error_detail"):
        frame[column] = frame[column].astype(str)
    return frame


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A synthetic run with failures, several steps and trials (about 1,000 records)."""
    directory = tmp_path_factory.mktemp("chunks")
    run = write_synthetic_run(directory, "r", ns=(1, 8, 64), trials=2, seed=5)
    rng = np.random.default_rng(9)
    # one more step with failures and an error detail holding quotes, commas and a newline
    writer_path = run / "requests.csv.gz"
    step = make_step("k8s-ibm", "rate", 50, 1, 0.01, rng, fail_every=7)
    weird = [
        RequestRecord(**{**r.__dict__, "error_detail": 'HTTP 500: "bad",\nsecond line' if r.error else ""})
        for r in step.records
    ]
    text = io.StringIO()
    writer = csv.writer(text)
    key = [step.key.target, step.key.mode, step.key.n_requests, step.key.concurrency, 5.0, 1]
    for r in weird:
        writer.writerow(["r", *key, *[getattr(r, c) for c in RECORD_COLUMNS]])
    with writer_path.open("ab") as handle:
        handle.write(gzip.compress(text.getvalue().encode(), mtime=0))
    return run


@pytest.mark.parametrize("chunk_bytes", [64, 1000, 1 << 20])
def test_chunked_frames_equal_the_old_whole_file_reader(run_dir, chunk_bytes):
    path = run_dir / "requests.csv.gz"
    frames = list(iter_request_frames(path, chunk_bytes=chunk_bytes))
    assert len(frames) > 1 or chunk_bytes == 1 << 20
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), old_read_requests_csv(path))
    pd.testing.assert_frame_equal(read_requests_csv(path), old_read_requests_csv(path))


def test_blocks_end_at_records_even_inside_quoted_newlines(run_dir):
    blocks = list(iter_csv_blocks(run_dir / "requests.csv.gz", chunk_bytes=50))
    assert all(block.endswith(b"\n") and block.count(b'"') % 2 == 0 for block in blocks)
    assert b"".join(blocks) == gzip.decompress((run_dir / "requests.csv.gz").read_bytes())


def test_truncated_or_corrupt_member_keeps_every_complete_row_before_it(run_dir, tmp_path):
    whole = (run_dir / "requests.csv.gz").read_bytes()
    for cut in (len(whole) - 30, len(whole) // 2):
        path = tmp_path / "cut.csv.gz"
        path.write_bytes(whole[:cut])
        new = pd.concat(iter_request_frames(path, chunk_bytes=200), ignore_index=True)
        pd.testing.assert_frame_equal(new, old_read_requests_csv(path))
    path.write_bytes(whole + b"\x00garbage")
    pd.testing.assert_frame_equal(read_requests_csv(path), old_read_requests_csv(path))


def test_digest_equals_the_old_ok_latencies_and_counts(run_dir):
    path = run_dir / "requests.csv.gz"
    old = old_read_requests_csv(path)
    digest = digest_requests(path)
    expected = ok_latencies(old)
    got = ok_latencies_of(digest)
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    sent = old.groupby(["target", "mode", "n_requests", "concurrency", "rate"]).size()
    assert {k: v.sent for k, v in digest.items()} == {
        (t, m, int(n), int(c), round(float(r), 6)): int(v) for (t, m, n, c, r), v in sent.items()
    }
    small = digest_frames(iter_request_frames(path, chunk_bytes=300))
    assert {k: v.sent for k, v in small.items()} == {k: v.sent for k, v in digest.items()}
    dropped = digest_requests(path, drop_modes=["rate"])
    assert dropped and all(k[1] != "rate" for k in dropped)


def test_compare_and_report_read_what_the_old_frame_gave(run_dir):
    run = load_run(run_dir)
    old = old_read_requests_csv(run_dir / "requests.csv.gz")
    expected = ok_latencies(old)
    got = request_latencies(run)
    assert got.keys() == expected.keys()
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
    fig = fig_latency_cdf(run.latencies(), run.targets, ["sequential", "concurrent", "rate"])
    lines = {line.get_label(): line for ax in fig.axes for line in ax.lines}
    at_64 = old[(old["mode"] == "concurrent") & (old["n_requests"] == 64) & (old["target"] == "kubeflow-gcp")]
    ok = np.sort(at_64.loc[at_64["error"] == "", "latency_s"].to_numpy())
    line = lines[f"kubeflow-gcp ({ok.size} ok)"]
    np.testing.assert_array_equal(line.get_xdata(), ok * 1000)
    np.testing.assert_array_equal(line.get_ydata(), np.arange(1, ok.size + 1) / ok.size)
    assert run.requests is not None and len(run.requests) == len(old)
    without = run.without_modes(["rate"])
    assert set(without.requests["mode"]) == {"sequential", "concurrent"}
    assert all(k[1] != "rate" for k in without.latencies())


def test_cdf_points_exact_when_small_and_within_one_step_when_decimated():
    rng = np.random.default_rng(1)
    small = rng.lognormal(size=500)
    x, y = cdf_points(small, max_points=1000)
    np.testing.assert_array_equal(x, np.sort(small))
    np.testing.assert_array_equal(y, np.arange(1, 501) / 500)
    big = rng.lognormal(size=100_000)
    x, y = cdf_points(big, max_points=1000)
    assert x.size <= 1000 and x[-1] == big.max() and y[-1] == 1.0
    exact = np.sort(big)
    # each drawn point lies on the exact curve, and no gap in height exceeds 1/(max_points - 1) (+ rounding)
    np.testing.assert_array_equal(np.searchsorted(exact, x, side="right") / big.size, y)
    assert np.diff(np.concatenate([[0.0], y])).max() <= 1 / (1000 - 1) + 1 / big.size


def test_a_run_without_requests_has_no_latencies(tmp_path):
    writer = RunWriter(tmp_path / "r", "r", SUMMARY_COLUMNS)
    writer.append_summary({"target": "t", "mode": "concurrent", "n_requests": 1, "trial": 1, "total_s": 1.0})
    writer.close()
    run = load_run(tmp_path / "r")
    assert run.latencies() is None and run.requests is None


def test_a_long_step_is_written_as_bounded_members_and_reads_back_whole(tmp_path, monkeypatch):
    import bench.results.writer as writer_module

    monkeypatch.setattr(writer_module, "ROWS_PER_MEMBER", 7)
    step = make_step("t", "concurrent", 30, 1, 0.01, np.random.default_rng(4), fail_every=5)
    writer = RunWriter(tmp_path / "r", "r", SUMMARY_COLUMNS)
    writer.append_requests(step.key, (r for r in step.records))  # a generator: never a list here
    writer.close()
    raw = (tmp_path / "r" / "requests.csv.gz").read_bytes()
    members = 0
    while raw:
        member = zlib.decompressobj(wbits=31)
        member.decompress(raw)
        members += 1
        raw = member.unused_data
    assert members == 5  # 30 records, 7 per member: 4 full members and one of 2
    frame = read_requests_csv(tmp_path / "r" / "requests.csv.gz")
    assert frame["seq"].tolist() == list(range(30))
    assert frame["error"].tolist() == [r.error for r in step.records]
