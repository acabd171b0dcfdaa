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
from targets.flask.server.app import create_app, preprocess_photo
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


# -- bodies: never cut, never a 500 --------------------------------------------------------
def _run_wsgi(app, body_stream, content_type: str = "application/json") -> tuple[int, dict]:
    """Call the app as a server would for a chunked body: no CONTENT_LENGTH, input terminated."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    environ = EnvironBuilder(path="/predict", method="POST", content_type=content_type).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = body_stream
    environ["wsgi.input_terminated"] = True
    app_iter, status, _headers = run_wsgi_app(app, environ, buffered=True)
    return int(status.split()[0]), json.loads(b"".join(app_iter))


def test_chunked_body_over_the_limit_is_413_not_cut(artifacts) -> None:
    """Werkzeug's get_data stops at MAX_CONTENT_LENGTH on a chunked body; the app must not."""
    app = create_app(artifacts, "startup", max_body_bytes=200_000)
    padded = ONE[:-1] + " " * (200_000 - len(ONE)) + ONE[-1:]  # exactly the limit: valid
    status, doc = _run_wsgi(app, io.BytesIO(padded.encode()))
    assert status == 200 and len(doc["predictions"]) == 1
    status, doc = _run_wsgi(app, io.BytesIO(padded.encode() + b"garbage"))  # a valid prefix + more
    assert status == 413 and "body too large" in doc["error"]


def test_body_the_server_cannot_deframe_is_400(artifacts) -> None:
    class BadChunks(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise ValueError("Invalid chunk size")  # what a server's de-chunking raises

    status, doc = _run_wsgi(create_app(artifacts, "startup"), BadChunks())
    assert status == 400 and "malformed request body" in doc["error"]


# -- photos: the bytes decide, a declared type must agree -----------------------------------
def _photo(fmt: str) -> bytes:
    big = Image.fromarray(255 - _image(3)).resize((112, 112), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    big.convert("RGB" if fmt in ("JPEG", "WEBP") else "L").save(buf, format=fmt)
    return buf.getvalue()


def _multipart(client, data: bytes, content_type: str):
    return client.post(
        "/predict", data={"file": (io.BytesIO(data), "photo.bin", content_type)}, content_type="multipart/form-data"
    )


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP"])
def test_other_image_formats_are_415_whatever_they_are_declared(client, fmt: str) -> None:
    data = _photo(fmt)
    for resp in (client.post("/predict", data=data, content_type="image/png"), _multipart(client, data, "image/png")):
        assert resp.status_code == 415, resp.text
        assert f"unsupported image format {fmt}" in resp.get_json()["error"]


def test_svg_is_415_and_no_message_holds_an_object_repr(client) -> None:
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><text>7</text></svg>'
    for resp in (client.post("/predict", data=svg, content_type="image/png"), _multipart(client, svg, "image/svg+xml")):
        assert resp.status_code == 415
        message = resp.get_json()["error"]
        assert "SVG" in message and "0x" not in message and "object" not in message


def test_declared_type_must_match_the_bytes(client) -> None:
    png, jpeg = _photo("PNG"), _photo("JPEG")
    resp = client.post("/predict", data=jpeg, content_type="image/png")
    assert resp.status_code == 400 and "declared image/png but the body is a JPEG image" in resp.get_json()["error"]
    assert _multipart(client, png, "image/jpeg").status_code == 400
    # Undeclared (octet-stream) parts and the browsers' image/jpg alias are judged by the bytes.
    assert _multipart(client, png, "application/octet-stream").status_code == 200
    assert _multipart(client, jpeg, "image/jpg").status_code == 200


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (5000, 5000), (4097, 4096)])
def test_image_bombs_are_413_before_decoding(client, width: int, height: int) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )
    assert len(bomb) < 200
    resp = client.post("/predict", data=bomb, content_type="image/png")
    assert resp.status_code == 413 and "image too large" in resp.get_json()["error"]


def test_truncated_photo_is_400(client) -> None:
    png = _photo("PNG")
    resp = client.post("/predict", data=png[: len(png) // 2], content_type="image/png")
    assert resp.status_code == 400 and "PNG data is truncated or corrupt" in resp.get_json()["error"]


def test_json_integers_with_too_many_digits_are_400(client) -> None:
    for digits in (21, 5000):  # 5000: past Python's own int-conversion limit
        resp = client.post("/predict", data=ONE.replace("0.0", "9" * digits, 1), content_type="application/json")
        assert resp.status_code == 400 and f"has {digits} digits" in resp.get_json()["error"]


# -- the stand-in's buffering worker: deadlines, 100-continue ---------------------------------
@pytest.mark.slow
def test_worker_deadlines_and_expect_continue(trained_model, tmp_path) -> None:
    """Through gunicorn with 1 s deadlines: silent, slow-head and slow-body clients are cut off
    (close, 408, 408) while a valid request is answered; ``Expect: 100-continue`` works.
    Bounds are generous (10 s) so a loaded machine cannot make this flaky."""
    import asyncio
    import socket
    import time

    from targets.base import TargetContext
    from targets.process import group_pids
    from targets.registry import build_target
    from targets.spec import TargetSpec

    table = {"model_loading": "startup", "header_timeout_s": 1.0, "body_timeout_s": 1.0}
    context = TargetContext(artifacts_dir=trained_model.dir, log_dir=tmp_path, ready_timeout_s=180.0)
    target = build_target(TargetSpec("deadlines", "flask", table), context)
    asyncio.run(target.start())
    try:
        host, port = target.base_url.removeprefix("http://").rsplit(":", 1)
        address = (host, int(port))
        pids = {pid for p in target.processes for pid in group_pids(p.pgid)}
        body = ONE.encode()
        head = (
            f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        ).encode()

        def answer_of(sock: socket.socket) -> bytes:
            sock.settimeout(10)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            return data

        silent = [socket.create_connection(address) for _ in range(20)]
        slow_head = socket.create_connection(address)
        slow_head.sendall(head[:20])
        slow_body = socket.create_connection(address)
        slow_body.sendall(head + b"\r\n" + body[:10])
        start = time.monotonic()
        with socket.create_connection(address) as valid:  # answered while all of those wait
            valid.sendall(head + b"\r\n" + body)
            assert answer_of(valid).startswith(b"HTTP/1.1 200")
        assert time.monotonic() - start < 10
        for sock, expected in (
            (slow_head, b"request head did not arrive within 1 s"),
            (slow_body, b"request body did not arrive within 1 s"),
        ):
            with sock:
                answer = answer_of(sock)
                assert answer.startswith(b"HTTP/1.1 408") and b"application/json" in answer and expected in answer
        for sock in silent:
            with sock:
                assert answer_of(sock) == b""  # closed without an answer: it asked nothing
        with socket.create_connection(address) as expecting:
            expecting.sendall(head + b"Expect: 100-continue\r\n\r\n")
            expecting.settimeout(10)
            assert expecting.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
            expecting.sendall(body)
            assert answer_of(expecting).startswith(b"HTTP/1.1 200")
        assert {pid for p in target.processes for pid in group_pids(p.pgid)} == pids
    finally:
        asyncio.run(target.stop())


def test_deadline_settings_are_checked(tmp_path) -> None:
    from targets.base import TargetContext
    from targets.registry import build_target
    from targets.spec import TargetSpec

    context = TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path)
    target = build_target(TargetSpec("t", "flask", {"header_timeout_s": 2.5}), context)
    assert target.settings.header_timeout_s == 2.5 and target.settings.body_timeout_s == 10.0
    for key in ("header_timeout_s", "body_timeout_s"):
        with pytest.raises(Exception, match=key):
            build_target(TargetSpec("t", "k8s", {key: 0}), context)
