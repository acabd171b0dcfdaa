"""What `bench run` sends a target that is not MNIST: files and synthesised inputs, through the sweep.

The in-memory engine on virtual time stands in for the network (nothing timed by the
machine); the target double speaks V2 JSON for a toy model whose input differs from
MNIST's in name, shape and dtype: ``tokens`` INT64 [-1, 4] -> ``scores`` FP32 [-1, 3].
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from bench.console import Console
from bench.run.samples import SampleChooser, SampleOptions
from loadgen.engines.memory_engine import MemoryEngine
from loadgen.engines.virtual_time import run_virtual
from loadgen.inference.checking import CheckRule
from loadgen.inference.input_data import InputDataError, read_input_file
from loadgen.inference.v2_json import InputSet, OutputSet, decode_response, encode_request
from loadgen.request import Request
from loadgen.samples import ReadySamples
from loadgen.stats import summarize
from loadgen.sweep import SweepPlan, run_sweep
from loadgen.sweep_settings import SweepSettings
from tests.support.loadgen import MEMORY_URL, FakeTarget

TOY_META = {
    "name": "toy",
    "inputs": [{"name": "tokens", "datatype": "INT64", "shape": [-1, 4]}],
    "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}],
}
MNIST_META = {
    "name": "mnist",
    "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 28, 28]}],
    "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
}


def toy_scores(tokens: np.ndarray) -> np.ndarray:
    """The toy model: scores[k] = (sum of tokens) mod 3 == k, as floats."""
    scores = np.zeros((tokens.shape[0], 3), np.float32)
    scores[np.arange(tokens.shape[0]), tokens.sum(axis=1) % 3] = 1.0
    return scores


class V2Double(FakeTarget):
    """A V2 target double (the KServe adapter's tensor codec, against the in-memory server)."""

    def metadata_request(self) -> Request:
        return Request("GET", "/v2/models/toy", b"", {})

    def tensor_request(self, inputs: InputSet) -> Request:
        return Request("POST", "/v2/models/toy/infer", encode_request("toy", inputs), {})

    def decode_outputs(self, status: int, body: bytes) -> OutputSet:
        return decode_response(body)


class ToyServer:
    """Answers the metadata and infer requests; ``wrong_shape`` answers [1, 2] scores."""

    def __init__(self, metadata: dict, wrong_shape: bool = False) -> None:
        self.metadata, self.wrong_shape, self.infers = metadata, wrong_shape, 0

    def __call__(self, request: Request) -> tuple[int, bytes]:
        if request.method == "GET":
            return 200, json.dumps(self.metadata).encode()
        self.infers += 1
        (tensor,) = json.loads(request.body)["inputs"]
        tokens = np.asarray(tensor["data"], np.int64).reshape(tensor["shape"])
        scores = toy_scores(tokens)[:, :2] if self.wrong_shape else toy_scores(tokens)
        out = {"name": "scores", "shape": list(scores.shape), "datatype": "FP32", "data": scores.ravel().tolist()}
        return 200, json.dumps({"model_name": "toy", "outputs": [out]}).encode()


PLAN = SweepPlan(**{**SweepSettings().__dict__, "n_requests": (8,), "modes": ("sequential",), "trials": 1, "warmup": 0})


def _choose_and_sweep(target, server, files=None, options=None):
    """(chosen samples, the sweep's steps, what the console said, the chooser)."""
    err = io.StringIO()
    console = Console()
    console.err.file = err  # messages go to stderr; read them here
    chooser = SampleChooser(files or {}, options or SampleOptions(), MemoryEngine.factory(server), console)

    async def main():
        chosen = await chooser(target)
        if chosen is None:
            return None, []
        return chosen, [s async for s in run_sweep(target, MemoryEngine.factory(server, latency=0.001), PLAN, chosen)]

    chosen, steps = run_virtual(main())
    return chosen, steps, " ".join(err.getvalue().split()), chooser


def test_a_v2_model_that_is_not_mnist_gets_inputs_synthesised_from_its_metadata() -> None:
    server = ToyServer(TOY_META)
    chosen, (step,), said, chooser = _choose_and_sweep(V2Double(MEMORY_URL, "toy-target"), server)
    assert isinstance(chosen, ReadySamples) and len(chosen) == 16
    assert "is not the MNIST model" in said and "synthesised from its metadata" in said
    tokens = json.loads(chosen.request(0).body)["inputs"][0]
    assert tokens["name"] == "tokens" and tokens["datatype"] == "INT64" and tokens["shape"] == [1, 4]
    assert all(r.ok and r.agree == -1 and r.label == -1 and 0 <= r.sample < 16 for r in step.records)
    row = summarize(step)
    assert row["errors"] == 0 and np.isnan(row["accuracy"]) and np.isnan(row["agreement"])
    assert chooser.facts["toy-target"]["source"] == "metadata"


def test_the_mnist_model_keeps_its_images() -> None:
    chosen, steps, said, _ = _choose_and_sweep(V2Double(MEMORY_URL), ToyServer(MNIST_META))
    assert chosen is None and said == ""


def _file(tmp_path: Path, samples: list[list[int]], expected: list[list[float]] | None) -> Path:
    doc: dict = {"data": [{"tokens": {"content": s, "shape": [4]}} for s in samples]}
    if expected is not None:
        doc["validation_data"] = [{"scores": e} for e in expected]
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_file_with_expected_outputs_gives_the_agreement_rate(tmp_path) -> None:
    samples = [[0, 0, 0, 1], [1, 1, 0, 0], [1, 1, 1, 0], [2, 2, 2, 2]]
    right = [toy_scores(np.array([s]))[0].tolist() for s in samples]
    expected = [*right[:3], [1.0, 0.0, 0.0]]  # the last expectation is wrong: its answer disagrees
    target = V2Double(MEMORY_URL, "toy-target")
    files = {"toy-target": read_input_file(_file(tmp_path, samples, expected))}
    chosen, (step,), said, _ = _choose_and_sweep(target, ToyServer(TOY_META), files)
    assert "sending 4 samples from" in said
    for record in step.records:
        assert record.ok and record.agree == (0 if record.sample == 3 else 1)
    row = summarize(step)
    sent_3 = sum(r.sample == 3 for r in step.records)
    assert row["n_agree"] == 8 - sent_3 and row["agreement"] == pytest.approx((8 - sent_3) / 8)


def test_argmax_agreement_for_classifiers(tmp_path) -> None:
    samples = [[0, 0, 0, 1]]
    expected = [[0.1, 0.8, 0.1]]  # not the toy's exact scores, but the same class
    files = {"t": read_input_file(_file(tmp_path, samples, expected))}
    for rule, agree in ((CheckRule(), 0), (CheckRule(argmax=True), 1)):
        _, (step,), _, _ = _choose_and_sweep(
            V2Double(MEMORY_URL, "t"), ToyServer(TOY_META), files, SampleOptions(rule=rule)
        )
        assert {r.agree for r in step.records} == {agree}
        assert {r.predicted for r in step.records} == ({1} if rule.argmax else {-1})


def test_an_answer_of_the_wrong_shape_is_undecodable_with_a_detail() -> None:
    _, (step,), _, _ = _choose_and_sweep(V2Double(MEMORY_URL), ToyServer(TOY_META, wrong_shape=True))
    assert {r.error for r in step.records} == {"undecodable"}
    assert "shape [1, 2], declared [-1, 3]" in step.records[0].error_detail


def test_a_file_that_does_not_fit_the_metadata_stops_before_any_request(tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"data": [{"tokens": [1, 2, 3, 4]}, {"token": [1, 2, 3, 4]}]}))
    server = ToyServer(TOY_META)
    with pytest.raises(InputDataError, match=r"sample 1, input 'token'.*unknown tensor; the model declares tokens"):
        _choose_and_sweep(V2Double(MEMORY_URL, "t"), server, {"t": read_input_file(path)})
    assert server.infers == 0


def test_json_lines_bodies_go_to_the_targets_own_endpoint(tmp_path) -> None:
    path = tmp_path / "bodies.jsonl"
    path.write_text('{"v": 3}\n{"v": 5}\n')
    seen: list[Request] = []

    def server(request: Request) -> tuple[int, bytes]:
        seen.append(request)
        return 200, b'{"digit": 1}'

    chosen, (step,), said, _ = _choose_and_sweep(FakeTarget(MEMORY_URL, "v1"), server, {"v1": read_input_file(path)})
    assert "2 request bodies" in said
    assert {r.path for r in seen} == {"/predict"} and {r.body for r in seen} == {b'{"v": 3}', b'{"v": 5}'}
    assert all(r.ok and r.agree == -1 for r in step.records)


def test_a_tensor_file_for_a_target_without_v2_is_refused(tmp_path) -> None:
    files = {"v1": read_input_file(_file(tmp_path, [[1, 2, 3, 4]], None))}
    with pytest.raises(ValueError, match="takes no named tensors"):
        _choose_and_sweep(FakeTarget(MEMORY_URL, "v1"), ToyServer(TOY_META), files)
