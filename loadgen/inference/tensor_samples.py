"""Named-tensor samples for a sweep: input sets sent through a target's tensor codec, answers checked.

What: :class:`TensorCodec` is what a target offers for any model (the request for its
metadata, an input set -> a ready request, an answer -> an output set; the KServe adapter
implements it per protocol); :func:`tensor_samples` makes the sweep's
:class:`~loadgen.samples.SampleSet` from input sets, the declared outputs and, when the
input data has them, expected outputs; :func:`body_samples` does the same for ready
request bodies (JSON lines).

How an answer is checked (:mod:`loadgen.inference.checking`): decoded by the codec, its
outputs must be the declared ones (else ``undecodable``); with expected outputs it agrees
or not (``agree`` 1/0; ``predicted`` the argmax of a float output when ``argmax`` is on);
without, ``agree`` is -1.  Why through the codec: the same samples can then go over V2
JSON, the binary-tensor extension or gRPC, whichever protocol the target speaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from loadgen.inference.checking import CheckRule, check_declared, compare_outputs, predicted_class
from loadgen.inference.metadata import TensorSpec
from loadgen.inference.v2_json import InputSet, OutputSet
from loadgen.request import DecodeError, Request
from loadgen.samples import NOT_CHECKED, Answer, ReadySamples

__all__ = ["TensorCodec", "body_samples", "tensor_samples"]


@runtime_checkable
class TensorCodec(Protocol):
    """A target that can send any model's named tensors (V2 protocols)."""

    def metadata_request(self) -> Request:
        """The request for the model's V2 metadata (``GET /v2/models/NAME``)."""
        ...

    def tensor_request(self, inputs: InputSet) -> Request:
        """One input set -> the ready infer request."""
        ...

    def decode_outputs(self, status: int, body: bytes) -> OutputSet:
        """A 2xx answer -> its output set; raise (ValueError/DecodeError) when it is not one."""
        ...


def tensor_samples(
    codec: TensorCodec,
    inputs: Sequence[InputSet],
    *,
    declared_outputs: Sequence[TensorSpec] = (),
    expected: Sequence[OutputSet] | None = None,
    rule: CheckRule | None = None,
    description: str,
) -> ReadySamples:
    """The sweep's samples: one request per input set (built now, re-sent), answers checked."""
    if expected is not None and len(expected) != len(inputs):
        raise ValueError(f"{len(inputs)} input sets but {len(expected)} expected output sets")
    rule = rule or CheckRule()
    requests = [codec.tensor_request(sample) for sample in inputs]

    def check(index: int, status: int, body: bytes) -> Answer:
        try:
            outputs = codec.decode_outputs(status, body)
        except DecodeError:
            raise
        except ValueError as exc:
            raise DecodeError(str(exc)) from None
        check_declared(outputs, declared_outputs)
        predicted = predicted_class(outputs) if rule.argmax else -1
        if expected is None:
            return Answer(predicted, NOT_CHECKED)
        return Answer(predicted, int(compare_outputs(outputs, expected[index], rule)))

    return ReadySamples(requests, check, description)


def body_samples(template: Request, bodies: Sequence[bytes], description: str) -> ReadySamples:
    """Ready bodies sent to ``template``'s method, path and headers; a 2xx answer is not checked."""
    requests = [Request(template.method, template.path, body, dict(template.headers)) for body in bodies]
    return ReadySamples(requests, lambda index, status, body: Answer(), description)
