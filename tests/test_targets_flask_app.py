"""The Flask app in-process (Flask test client): every input path and every refusal.

Quick: uses an untrained LeNet scripted into a temp folder (the validation rules do not
depend on the weights); the contract suite checks real answers from the trained model
through gunicorn.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.data import normalize, wire_pixels
from models.net import LeNet
from targets.flask_app import create_app, preprocess_photo
from targets.wire import dumps_compact, wire_instance

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("artifacts")
    (folder / "torchscript").mkdir()
    torch.manual_seed(0)
    torch.jit.script(LeNet().eval()).save(str(folder / "torchscript" / "model.pt"))
    return folder


@pytest.fixture(scope="module")
def model(artifacts: Path) -> torch.jit.ScriptModule:
    return torch.jit.load(str(artifacts / "torchscript" / "model.pt"))


def _digits(model, x: np.ndarray) -> list[int]:
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x[:, None]))).argmax(1).tolist()


@pytest.fixture(scope="module", params=["per-request", "startup"])
def client(request, artifacts):
    app = create_app(artifacts, request.param, replica="r7", max_instances=4, max_body_bytes=200_000)
    return app.test_client()


def _image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((28, 28), dtype=np.uint8)
    img[6:22, 10:18] = rng.integers(100, 256, size=(16, 8))
    return img


def test_instances_match_in_process_model(client, model) -> None:
    images = [_image(i) for i in range(3)]
    body = dumps_compact({"instances": [wire_instance(im) for im in images]})
    resp = client.post("/predict", data=body, content_type="application/json")
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Replica"] == "r7"
    assert resp.get_json() == {"predictions": _digits(model, wire_pixels(np.stack(images)))}


def test_flat_784_and_raw_images(client, model) -> None:
    image = _image(5)
    flat = np.round(wire_pixels(image).astype(np.float64), 4).reshape(-1).tolist()
    resp = client.post("/predict", json={"instances": [flat]})
    assert resp.get_json()["predictions"] == _digits(model, wire_pixels(image)[None])
    resp = client.post("/predict", json={"images": [image.tolist()]})
    assert resp.status_code == 200
    assert resp.get_json()["predictions"] == _digits(model, normalize(image)[None])


def test_photo_upload_multipart_and_raw(client, model) -> None:
    image = _image(9)
    # A photo-like version: 4x larger, dark ink on a light background, as PNG and JPEG.
    big = Image.fromarray(255 - image).resize((112, 112), Image.Resampling.NEAREST)
    expected = _digits(model, preprocess_photo(_encode(big, "PNG")))
    png = _encode(big, "PNG")
    resp = client.post("/predict", data={"file": (io.BytesIO(png), "digit.png")}, content_type="multipart/form-data")
    assert resp.status_code == 200, resp.text
    assert resp.get_json()["predictions"] == expected
    resp = client.post("/predict", data=png, content_type="image/png")
    assert resp.get_json()["predictions"] == expected
    resp = client.post("/predict", data=_encode(big, "JPEG"), content_type="image/jpeg")
    assert resp.status_code == 200 and len(resp.get_json()["predictions"]) == 1


def test_photo_preprocessing_is_mnist_like() -> None:
    image = np.zeros((28, 28), dtype=np.uint8)
    image[4:24, 12:16] = 255  # a "1", ink box 20 high
    light = Image.fromarray(255 - image).resize((280, 280), Image.Resampling.NEAREST)
    x = preprocess_photo(_encode(light, "PNG"))
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    back = (x[0] * 0.3081 + 0.1307) * 255
    assert back[14, 14] > 200 and back[0, 0] < 1 and back[14, 2] < 1  # bright ink centred, dark border



def test_grey_paper_becomes_black_background() -> None:
    """Paper at grey 220 (not white): the background level is taken off, so the model sees black around the ink."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[6:22, 8:20] = 255  # a wide block: the crop keeps a lot of paper in its box
    image[9:19, 11:17] = 0
    paper = Image.fromarray(np.where(image > 0, 0, 220).astype(np.uint8)).resize((280, 280), Image.Resampling.NEAREST)
    back = (preprocess_photo(_encode(paper, "PNG"))[0] * 0.3081 + 0.1307) * 255
    hole = back[10:18, 12:16]  # paper inside the ring; without levelling it would be ~35
    assert hole.max() < 8, f"paper inside the digit should be black (LANCZOS ringing <= 5), got up to {hole.max():.1f}"
    assert back.max() > 200  # the ink keeps its contrast (255 - 35 = 220)

def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.convert("L").save(buf, format=fmt)
    return buf.getvalue()


ONE = json.dumps({"instances": [[[0.0] * 28] * 28]})


@pytest.mark.parametrize(
    ("body", "content_type", "status", "needle"),
    [
        ("{bad json", "application/json", 400, "malformed JSON"),
        ("", "application/json", 400, "empty body"),
        ("[1, 2]", "application/json", 400, "expected a JSON object"),
        ("{}", "application/json", 400, "exactly one of"),
        ('{"instances": [], "images": []}', "application/json", 400, "exactly one of"),
        ('{"instances": []}', "application/json", 400, "is empty"),
        ('{"instances": "x"}', "application/json", 400, "must be a list"),
        ('{"instances": [[1, 2, 3]]}', "application/json", 400, "has shape [3]"),
        ('{"instances": [[[1, 2], [3]]]}', "application/json", 400, "ragged"),
        ('{"instances": [' + json.dumps([["a"] * 28] * 28) + "]}", "application/json", 400, "only numbers"),
        ('{"instances": [' + json.dumps([[True] * 28] * 28) + "]}", "application/json", 400, "only numbers"),
        (ONE.replace("0.0", "NaN", 1), "application/json", 400, "NaN"),
        (ONE.replace("0.0", "Infinity", 1), "application/json", 400, "Infinity"),
        (ONE.replace("0.0", "1e999", 1), "application/json", 400, "infinite"),
        (ONE.replace("0.0", "5000", 1), "application/json", 400, "normalised"),
        ('{"images": [' + json.dumps([[300] * 28] * 28) + "]}", "application/json", 400, "0..255"),
        ('{"instances": [' + ",".join([json.dumps([[0] * 28] * 28)] * 5) + "]}", "application/json", 413, "too many"),
        (ONE, "text/plain", 415, "unsupported Content-Type"),
        (ONE, "", 415, "unsupported Content-Type"),
        ("not a png", "image/png", 400, "cannot decode image"),
        ("", "image/png", 400, "empty body"),
        (" " * 300_000 + ONE, "application/json", 413, "body too large"),
    ],
)
def test_bad_input_gets_4xx_json(client, body: str, content_type: str, status: int, needle: str) -> None:
    resp = client.post("/predict", data=body, content_type=content_type or None)
    assert resp.status_code == status, resp.text
    assert needle in resp.get_json()["error"]
    assert client.post("/predict", data=ONE, content_type="application/json").status_code == 200


def test_multipart_without_file_and_wrong_routes(client) -> None:
    resp = client.post("/predict", data={"other": "x"}, content_type="multipart/form-data")
    assert resp.status_code == 400 and "'file' field" in resp.get_json()["error"]
    assert client.get("/predict").status_code == 405
    assert "error" in client.get("/nope").get_json()
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok" and health["replica"] == "r7"


def test_bad_artifacts_fail_at_creation(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="TorchScript model not found"):
        create_app(tmp_path, "per-request")
    (tmp_path / "torchscript").mkdir()
    (tmp_path / "torchscript" / "model.pt").write_bytes(b"not a model")
    with pytest.raises(Exception):  # noqa: B017 - torch's own error type for a corrupt archive
        create_app(tmp_path, "per-request")
    with pytest.raises(ValueError, match="model_loading"):
        create_app(tmp_path, "lazy")
