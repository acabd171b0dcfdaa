"""Inputs synthesised from metadata (every datatype, seeded, dynamic dimensions) and answers checked."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.inference.checking import CheckRule, check_declared, compare_outputs, predicted_class
from loadgen.inference.datatypes import DATATYPES
from loadgen.inference.metadata import TensorSpec
from loadgen.inference.synthesis import parse_shape_overrides, synthesize_inputs
from loadgen.inference.v2_json import encode_request
from loadgen.request import DecodeError


@pytest.mark.parametrize("name", list(DATATYPES))
@pytest.mark.parametrize("zeros", [False, True])
def test_every_datatype_is_synthesised_with_its_dtype_and_shape(name: str, zeros: bool) -> None:
    spec = TensorSpec("x", name, (-1, 3, 2))
    (first, *rest) = synthesize_inputs([spec], seed=7, zeros=zeros, count=4)
    array = first["x"]
    assert array.shape == (1, 3, 2) and array.dtype == DATATYPES[name].numpy
    assert spec.problem(array) == ""
    assert len(rest) == (0 if zeros else 3)
    if name not in ("BYTES",):
        encode_request("m", first)  # JSON can carry what is synthesised


def test_synthesis_is_seeded() -> None:
    spec = [TensorSpec("a", "FP32", (-1, 8)), TensorSpec("b", "INT32", (-1, 8))]
    one, two = synthesize_inputs(spec, seed=3), synthesize_inputs(spec, seed=3)
    other = synthesize_inputs(spec, seed=4)
    assert all(np.array_equal(x["a"], y["a"]) and np.array_equal(x["b"], y["b"]) for x, y in zip(one, two, strict=True))
    assert not np.array_equal(one[0]["a"], other[0]["a"])
    assert not np.array_equal(one[0]["a"], one[1]["a"])  # the samples differ from each other


def test_dynamic_dimensions_need_a_shape_except_the_batch() -> None:
    spec = TensorSpec("tokens", "INT64", (-1, -1))
    with pytest.raises(ValueError, match=r"dynamic dimension at position 1: give its size with --shape tokens:"):
        synthesize_inputs([spec])
    shapes = parse_shape_overrides(["tokens:16"])
    assert synthesize_inputs([spec], shapes=shapes)[0]["tokens"].shape == (1, 16)  # batch left out: 1
    assert synthesize_inputs([spec], shapes={"tokens": (2, 5)})[0]["tokens"].shape == (2, 5)
    with pytest.raises(ValueError, match="does not fit"):
        synthesize_inputs([TensorSpec("x", "FP32", (-1, 4))], shapes={"x": (3,)})
    with pytest.raises(ValueError, match="'nope', which the model does not declare"):
        synthesize_inputs([spec], shapes={"nope": (1,)})


@pytest.mark.parametrize("bad", ["tokens", "tokens:", "tokens:a,b", ":3", "tokens:-1"])
def test_shape_overrides_are_parsed_strictly(bad: str) -> None:
    with pytest.raises(ValueError, match="NAME:d1,d2"):
        parse_shape_overrides([bad])


SCORES = TensorSpec("scores", "FP32", (-1, 3))


def test_answers_must_be_the_declared_outputs() -> None:
    check_declared({"scores": np.zeros((1, 3), np.float32)}, [SCORES])
    with pytest.raises(DecodeError, match="lacks the declared output scores"):
        check_declared({"other": np.zeros((1, 3), np.float32)}, [SCORES])
    with pytest.raises(DecodeError, match=r"shape \[1, 4\], declared \[-1, 3\]"):
        check_declared({"scores": np.zeros((1, 4), np.float32)}, [SCORES])
    with pytest.raises(DecodeError, match="datatype FP64, declared FP32"):
        check_declared({"scores": np.zeros((1, 3), np.float64)}, [SCORES])


def test_floats_agree_within_the_stated_tolerance_integers_exactly() -> None:
    want = {"scores": np.array([[0.1, 0.2, 0.7]], np.float32)}
    near = {"scores": want["scores"] + np.float32(1e-6)}
    far = {"scores": want["scores"] + np.float32(1e-2)}
    assert compare_outputs(near, want, CheckRule())
    assert not compare_outputs(far, want, CheckRule())
    assert compare_outputs(far, want, CheckRule(atol=0.02))
    assert compare_outputs(far, want, CheckRule(argmax=True))  # same class
    assert predicted_class(far) == 2
    ints = {"ids": np.array([[1, 2]], np.int64)}
    assert compare_outputs(ints, ints, CheckRule(atol=10)) and not compare_outputs(
        {"ids": np.array([[1, 3]], np.int64)}, ints, CheckRule(atol=10)
    )
    text = {"t": np.array([b"a"], dtype=object)}
    assert compare_outputs(text, text, CheckRule()) and not compare_outputs(
        {"t": np.array([b"b"], dtype=object)}, text, CheckRule()
    )


def test_an_answer_that_cannot_be_compared_is_malformed_not_a_disagreement() -> None:
    want = {"scores": np.zeros((1, 3), np.float32)}
    with pytest.raises(DecodeError, match="lacks output 'scores'"):
        compare_outputs({}, want, CheckRule())
    with pytest.raises(DecodeError, match=r"shape \[1, 2\], expected \[1, 3\]"):
        compare_outputs({"scores": np.zeros((1, 2), np.float32)}, want, CheckRule())


def test_check_rule_refuses_negative_tolerances() -> None:
    with pytest.raises(ValueError, match="rtol"):
        CheckRule(rtol=-1)
