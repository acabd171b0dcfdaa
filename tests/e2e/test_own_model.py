"""End to end: `bench run` against a real V2 server whose model is not MNIST, through a file and through synthesis.

One real KServe ModelServer (:mod:`tests.support.toy_v2_server`: ``tokens`` INT64 [-1, 4] ->
``scores`` FP32 [-1, 3]) on 127.0.0.1 for the whole module; a ``kserve`` target in remote
mode points at it with only a URL, a model name and ``protocol = "v2"``.
"""

from __future__ import annotations

import asyncio
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


def _config(tmp_path: Path, trained_model, url: str, extra: str = "") -> Path:
    table = f'\n[targets.toy]\nadapter = "kserve"\nendpoint = "{url}"\nmodel_name = "toy"\nprotocol = "v2"\n'
    return e2e_config(tmp_path, trained_model, table + extra)


def _requests(run_dir: Path) -> pd.DataFrame:
    with gzip.open(run_dir / "requests.csv.gz", "rt") as handle:
        return pd.read_csv(handle, keep_default_na=False)


ARGS = ("--requests", "6", "--modes", "sequential,concurrent", "--trials", "1", "--no-report")


def test_synthesised_inputs_and_an_input_data_file_in_one_run(tmp_path, trained_model, toy_url) -> None:
    """Target ``toy``: a URL and a model name only (inputs from the metadata); target
    ``toy-file``: the same server with bench.toml's ``input_data`` (relative to bench.toml),
    expected outputs included, one of them wrong on purpose."""
    tokens = [[1, 2, 3, 4], [0, 0, 0, 1], [2, 2, 0, 0]]
    expected = [toy_scores(np.array(t)).tolist() for t in tokens]
    expected[2] = [[1.0, 0.0, 0.0]] if expected[2] != [[1.0, 0.0, 0.0]] else [[0.0, 0.0, 1.0]]  # disagrees
    doc = {
        "data": [{"tokens": {"content": t, "shape": [4]}} for t in tokens],
        "validation_data": [{"scores": {"content": e, "shape": [1, 3]}} for e in expected],
    }
    (tmp_path / "toy.json").write_text(json.dumps(doc))
    second = (
        f'\n[targets.toy-file]\nadapter = "kserve"\nendpoint = "{toy_url}"\nmodel_name = "toy"\n'
        'protocol = "v2"\ninput_data = "toy.json"\n'
    )
    config = _config(tmp_path, trained_model, toy_url, second)
    proc = run_bench(config, "run", "toy", "toy-file", *ARGS, "--run-id", "own", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = " ".join(proc.stderr.split())
    assert "toy: model toy is not the MNIST model" in said and "tokens INT64 [-1, 4]" in said
    assert "toy-file: sending 3 samples from" in said and "answers agreeing" in said
    run_dir = tmp_path / "results" / "own"
    summary = pd.read_csv(run_dir / "summary.csv")
    requests = _requests(run_dir)
    assert (summary["errors"] == 0).all() and summary["accuracy"].isna().all()

    synth = requests[requests["target"] == "toy"]
    assert synth["sample"].between(0, 15).all() and (synth["agree"] == -1).all()
    assert summary[summary["target"] == "toy"]["agreement"].isna().all()

    filed = requests[requests["target"] == "toy-file"]
    assert set(filed["sample"]) <= {0, 1, 2} and (filed["agree"] == (filed["sample"] != 2).astype(int)).all()
    per_step = filed.groupby("mode")["agree"].mean()
    for _, row in summary[summary["target"] == "toy-file"].iterrows():
        assert row["agreement"] == pytest.approx(per_step[row["mode"]])
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["samples"]["targets"]["toy"]["source"] == "metadata"
    assert meta["samples"]["targets"]["toy-file"]["source"] == "file"


def test_files_that_do_not_fit_the_real_servers_metadata_are_refused(tmp_path, toy_url) -> None:
    """In-process (no `bench run` start-up): the chooser reads the real server's metadata and
    refuses each bad file, naming sample and field, before a sweep could send anything."""
    from bench.console import Console
    from bench.run.samples import SampleChooser, SampleOptions
    from loadgen.engines import engine_class
    from loadgen.inference.input_data import InputDataError, read_input_file
    from targets.base import TargetContext
    from targets.kserve.target import KServeSettings, KServeTarget

    target = KServeTarget(
        "toy",
        KServeSettings(endpoint=toy_url, model_name="toy", protocol="v2"),
        TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path),
    )
    target.base_url = toy_url
    cases = {
        "unknown tensor": ({"pixels": [0.5] * 4}, "sample 1, input 'pixels': unknown tensor"),
        "missing tensor": ({}, "sample 1"),
        "wrong shape": ({"tokens": {"content": [1, 2, 3], "shape": [3]}}, "sample 1, input 'tokens', field 'shape'"),
        "wrong dtype": ({"tokens": [0.5, 1, 2, 3]}, "sample 1, input 'tokens': values do not fit INT64"),
    }
    for name, (sample, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '-')}.json"
        path.write_text(json.dumps({"data": [{"tokens": [1, 2, 3, 4]}, sample]}))
        try:
            file = read_input_file(path)
        except InputDataError as exc:  # {} is refused structurally, before any target
            assert "sample 1" in str(exc), name
            continue
        chooser = SampleChooser({"toy": file}, SampleOptions(), engine_class("aiohttp"), Console())
        with pytest.raises(InputDataError) as err:
            asyncio.run(chooser(target))
        assert message in str(err.value), (name, str(err.value))
