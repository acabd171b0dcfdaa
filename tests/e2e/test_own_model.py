"""End to end: `bench run` against a real V2 server whose model is not MNIST, through a file and through synthesis.

One real KServe ModelServer (:mod:`tests.support.toy_v2_server`: ``tokens`` INT64 [-1, 4] ->
``scores`` FP32 [-1, 3]) on 127.0.0.1 for the whole module; a ``kserve`` target in remote
mode points at it with only a URL, a model name and ``protocol = "v2"``.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.e2e import REPO, e2e_config, run_bench
from tests.support.toy_v2_server import toy_scores

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def toy_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.toy_v2_server", str(port)],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/v2/models/toy/ready", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the toy V2 server did not start (exit {proc.poll()})") from None
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _config(tmp_path: Path, trained_model, url: str) -> Path:
    table = f'\n[targets.toy]\nadapter = "kserve"\nendpoint = "{url}"\nmodel_name = "toy"\nprotocol = "v2"\n'
    return e2e_config(tmp_path, trained_model, table)


def _requests(run_dir: Path) -> pd.DataFrame:
    with gzip.open(run_dir / "requests.csv.gz", "rt") as handle:
        return pd.read_csv(handle, keep_default_na=False)


ARGS = ("--requests", "6", "--modes", "sequential,concurrent", "--trials", "1", "--no-report")


def test_inputs_synthesised_from_the_metadata(tmp_path, trained_model, toy_url) -> None:
    config = _config(tmp_path, trained_model, toy_url)
    proc = run_bench(config, "run", "toy", *ARGS, "--run-id", "synth", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = " ".join(proc.stderr.split())
    assert "is not the MNIST model" in said and "tokens INT64 [-1, 4]" in said
    run_dir = tmp_path / "results" / "synth"
    summary = pd.read_csv(run_dir / "summary.csv")
    assert (summary["errors"] == 0).all() and summary["agreement"].isna().all() and summary["accuracy"].isna().all()
    requests = _requests(run_dir)
    assert requests["sample"].between(0, 15).all() and (requests["agree"] == -1).all()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["samples"]["targets"]["toy"]["source"] == "metadata"


def test_an_input_data_file_with_expected_outputs(tmp_path, trained_model, toy_url) -> None:
    tokens = [[1, 2, 3, 4], [0, 0, 0, 1], [2, 2, 0, 0]]
    expected = [toy_scores(np.array(t)).tolist() for t in tokens]
    expected[2] = [[0.0, 0.0, 1.0]] if expected[2] != [[0.0, 0.0, 1.0]] else [[1.0, 0.0, 0.0]]  # one wrong
    doc = {
        "data": [{"tokens": {"content": t, "shape": [4]}} for t in tokens],
        "validation_data": [{"scores": {"content": e, "shape": [1, 3]}} for e in expected],
    }
    data = tmp_path / "toy.json"
    data.write_text(json.dumps(doc))
    config = _config(tmp_path, trained_model, toy_url)
    proc = run_bench(config, "run", "toy", *ARGS, "--run-id", "file", "--input-data", str(data), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "results" / "file"
    requests = _requests(run_dir)
    measured = requests[requests["error"] == ""]
    assert len(measured) == len(requests) and set(measured["sample"]) <= {0, 1, 2}
    assert (measured["agree"] == (measured["sample"] != 2).astype(int)).all()
    summary = pd.read_csv(run_dir / "summary.csv")
    per_step = requests.groupby(["mode"])["agree"].mean()
    for _, row in summary.iterrows():
        assert row["agreement"] == pytest.approx(per_step[row["mode"]])
    assert "answers agreeing" in proc.stdout or "answers agreeing" in proc.stderr


def test_a_bad_file_is_refused_before_any_request(tmp_path, trained_model, toy_url) -> None:
    data = tmp_path / "bad.json"
    data.write_text(json.dumps({"data": [{"tokens": [1, 2, 3, 4]}, {"pixels": [0.5] * 4}]}))
    config = _config(tmp_path, trained_model, toy_url)
    proc = run_bench(config, "run", "toy", *ARGS, "--run-id", "bad", "--input-data", str(data), timeout=300)
    assert proc.returncode != 0
    said = " ".join(proc.stderr.split())
    assert "sample 1, input 'pixels'" in said and "unknown tensor" in said, said[-2000:]
    assert (
        not (tmp_path / "results" / "bad" / "requests.csv.gz").exists() or _requests(tmp_path / "results" / "bad").empty
    )
