"""The digit page in a real Chromium against real stand-ins (Flask under gunicorn, KServe).

For each target: a real MNIST test digit is drawn as a photo-like PNG (upscaled, off
centre, on grey-white paper or black), set on the page's file input, and the page's
answer must equal the label AND what the target's own API answers for the same file.
The page's 28x28 pixels must equal ``preprocess_photo``'s (the conversion the page
mirrors) and, for KServe, the body it sent must carry exactly ``wire_instance``'s numbers.
Digits are taken in order from the ``mnist`` fixture; one the target itself gets wrong is
skipped, and at most two such skips are allowed (named in the failure), so nothing is
cherry-picked silently.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiohttp import web
from PIL import Image

from models.data import normalize
from targets.base import Target, TargetContext
from targets.flask.server.app import preprocess_photo
from targets.process import free_port
from targets.registry import build_target
from targets.spec import TargetSpec
from targets.wire import wire_instance
from tests.support.browser import LAPTOP_VIEWPORT, browser_or_skip, screenshot_dir, watch
from tests.support.webui import serve_app
from webui.server import create_app

pytestmark = pytest.mark.slow

MAX_SKIPS = 2


@dataclass(frozen=True)
class PageCase:
    id: str
    adapter: str
    table: dict[str, Any]
    black_on_white: bool  # like a photo of ink on paper (the page must invert it)
    first: int  # index of the first test image tried (different digits per case)


CASES = [
    PageCase("flask", "flask", {"model_loading": "startup", "workers": 1}, black_on_white=True, first=0),
    PageCase("kserve-v1", "kserve", {"protocol": "v1", "workers": 1}, black_on_white=False, first=1),
    PageCase("kserve-v2", "kserve", {"protocol": "v2", "workers": 1}, black_on_white=True, first=2),
]


def photo_png(image: np.ndarray, *, black_on_white: bool) -> bytes:
    """A 28x28 MNIST digit as a 180x150 'photo': upscaled to 140x140, off centre, on paper."""
    digit = Image.fromarray(255 - image if black_on_white else image).resize((140, 140), Image.Resampling.BICUBIC)
    paper = Image.new("L", (180, 150), 236 if black_on_white else 12)
    mask = Image.fromarray(image).resize((140, 140), Image.Resampling.BICUBIC)
    paper.paste(digit, (31, 6), mask)  # ink only: the paper's tone stays around it
    buf = io.BytesIO()
    paper.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


_LEVELS = normalize(np.resize(np.arange(256, dtype=np.uint8), 784)).reshape(-1)[:256]  # value of each level


def reference_pixels(png: bytes) -> np.ndarray:
    """``preprocess_photo``'s 28x28 result as uint8 pixels (normalize is one-to-one)."""
    x = preprocess_photo(png)[0]
    pixels = np.abs(x[..., None] - _LEVELS).argmin(axis=-1).astype(np.uint8)
    assert np.array_equal(normalize(pixels), x)
    return pixels


def target_answer(target: Target, png: bytes, pixels: np.ndarray) -> int:
    """What the target's own API says: the photo for the Flask app, the pixels for KServe."""
    with httpx.Client(trust_env=False, timeout=60) as client:
        if target.adapter == "flask":
            resp = client.post(target.base_url + "/predict", files={"file": ("digit.png", png, "image/png")})
        else:
            request = target.encode(pixels)
            resp = client.request(
                request.method, target.base_url + request.path, content=request.body, headers=dict(request.headers)
            )
    return target.decode(resp.status_code, resp.content)


POSTED: list[tuple[str, bytes]] = []


@web.middleware
async def _record_posts(request: web.Request, handler: Any) -> web.StreamResponse:
    """Keep (Content-Type, body) of every POST the page's server receives."""
    if request.method == "POST":
        POSTED.append((request.headers.get("Content-Type", ""), await request.read()))
    return await handler(request)


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def running(request, trained_model, tmp_path_factory) -> Iterator[tuple[PageCase, Target, str]]:
    case: PageCase = request.param
    context = TargetContext(
        artifacts_dir=trained_model.dir, log_dir=tmp_path_factory.mktemp(f"logs-{case.id}"), ready_timeout_s=180
    )
    target = build_target(TargetSpec(f"page-{case.id}", case.adapter, case.table), context)
    asyncio.run(target.start())
    app = create_app(target)
    app.middlewares.append(_record_posts)  # Chromium does not expose multipart bodies to Playwright
    try:
        with serve_app(app) as url:
            yield case, target, url
    finally:
        asyncio.run(target.stop())


def _pick_digit(case: PageCase, target: Target, mnist, folder: Path) -> tuple[int, int, Path, bytes, np.ndarray]:
    images, labels = mnist
    skipped: list[str] = []
    for i in range(case.first, len(labels)):
        image, label = images[i], labels[i]
        png = photo_png(image, black_on_white=case.black_on_white)
        pixels = reference_pixels(png)
        answer = target_answer(target, png, pixels)
        if answer == int(label):
            path = folder / f"digit-{i}-label-{int(label)}.png"
            path.write_bytes(png)
            return i, int(label), path, png, pixels
        skipped.append(f"test image {i}: label {int(label)}, target answered {answer}")
        assert len(skipped) <= MAX_SKIPS, f"{case.id}: the target misreads too many photos: {skipped}"
    raise AssertionError("no usable digit")


def test_page_recognises_a_real_digit(running, mnist, tmp_path) -> None:
    case, target, url = running
    index, label, path, png, pixels = _pick_digit(case, target, mnist, tmp_path)
    POSTED.clear()
    with browser_or_skip() as browser:
        page = browser.new_page(viewport=LAPTOP_VIEWPORT)
        log = watch(page)
        page.goto(url)
        page.wait_for_selector("#target-line[data-state=ready]")
        page.set_input_files("#file", str(path))
        page.wait_for_selector("#predict:not([disabled])")
        page.click("#predict")
        page.wait_for_selector("#result[data-state=done], #result[data-state=error]", timeout=60_000)
        message = page.text_content("#message")
        assert page.get_attribute("#result", "data-state") == "done", message
        shown_digit = page.text_content("#digit")
        rtt = float(page.text_content("#rtt") or "nan")
        last = page.evaluate("window.digitPage.last")
        page.screenshot(path=str(screenshot_dir() / f"digit-page-{case.id}.png"), full_page=True)
        page.close()

    assert int(shown_digit or "-1") == label == target_answer(target, png, pixels), (index, shown_digit, label)
    assert rtt > 0
    # The page's conversion is preprocess_photo's, pixel for pixel.
    page_pixels = np.array(last["pixels"], dtype=np.uint8).reshape(28, 28)
    assert np.array_equal(page_pixels, pixels), np.argwhere(page_pixels != pixels)[:10]
    ((content_type, body),) = POSTED
    if case.adapter == "flask":
        assert content_type.startswith("multipart/form-data")
        assert png in body and b'name="file"' in body  # the photo itself, untouched
    else:
        sent = json.loads(body)
        assert content_type == "application/json"
        expected = wire_instance(pixels)
        if case.table["protocol"] == "v1":
            assert sent == {"instances": [expected]}
        else:
            (tensor,) = sent["inputs"]
            assert tensor["shape"] == [1, 28, 28] and tensor["datatype"] == "FP32"
            assert tensor["data"] == [v for row in expected for v in row]
        assert sent == last["body"]
    assert log.console_errors == [] and log.page_errors == [] and log.failed_requests == []
    assert log.external_requests((url,)) == []


def test_page_explains_bad_files_and_an_unreachable_target(tmp_path, mnist) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: the proxy answers 502
    target = build_target(
        TargetSpec("nowhere", "flask", {"endpoint": dead}), TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path)
    )
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a picture")
    fake_png = tmp_path / "broken.png"
    fake_png.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    photo = tmp_path / "digit.png"
    photo.write_bytes(photo_png(mnist[0][0], black_on_white=True))
    with serve_app(create_app(target)) as url, browser_or_skip() as browser:
        page = browser.new_page(viewport=LAPTOP_VIEWPORT)
        log = watch(page)
        page.goto(url)
        page.wait_for_selector("#target-line[data-state=ready]")

        page.set_input_files("#file", str(text_file))
        page.wait_for_selector("#message:not([hidden])")
        assert "“notes.txt” is not an image (its type is text/plain)" in (page.text_content("#message") or "")
        assert page.is_disabled("#predict")

        page.set_input_files("#file", str(fake_png))
        page.wait_for_selector("#message:has-text('broken.png')")  # (wait_for_function needs eval: CSP forbids)
        assert "could not be read as an image" in (page.text_content("#message") or "")
        assert page.is_disabled("#predict")

        # Drag and drop this time: a DataTransfer holding the photo, dropped on the zone.
        data = base64.b64encode(photo.read_bytes()).decode()
        transfer = page.evaluate_handle(
            """(b64) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
                return dt;
            }""",
            data,
        )
        page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
        page.wait_for_selector("#predict:not([disabled])")
        assert (page.text_content("#file-meta") or "").startswith("dropped.png · 180×150 px")
        page.click("#predict")
        page.wait_for_selector("#result[data-state=error]")
        message = page.text_content("#message") or ""
        page.screenshot(path=str(screenshot_dir() / "digit-page-unreachable.png"), full_page=True)
        page.close()
    assert "The page's server could not get an answer (HTTP 502)" in message
    assert "'nowhere'" in message and "unreachable" in message
    assert log.page_errors == []
    # The only console error is Chromium's own note about the 502 response.
    assert all("502" in e for e in log.console_errors), log.console_errors
    assert log.external_requests((url,)) == []


def _variant_png(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """A digit at a random scale (upscaled and downscaled crops), place, polarity and paper tone."""
    side = int(rng.integers(12, 400))
    black_on_white = bool(rng.integers(0, 2))
    width, height = side + int(rng.integers(0, 120)), side + int(rng.integers(0, 90))
    paper_tone = int(rng.integers(200, 256)) if black_on_white else int(rng.integers(0, 40))
    digit = Image.fromarray(255 - image if black_on_white else image).resize((side, side), Image.Resampling.BILINEAR)
    mask = Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR)
    paper = Image.new("L", (width, height), paper_tone)
    paper.paste(digit, (int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))), mask)
    buf = io.BytesIO()
    paper.save(buf, format="PNG")
    return buf.getvalue()


def test_page_conversion_equals_preprocess_photo_on_many_photos(tmp_path, mnist) -> None:
    """The page's JavaScript conversion against the Python one, on 40 varied photos.

    The grey pixels are handed to the page's functions directly (PIL decodes), so this
    checks the algorithm itself: inversion, ink crop, padding, LANCZOS down- and
    up-scaling, normalisation and rounding.
    """
    rng = np.random.default_rng(7)
    target = build_target(
        TargetSpec("page-only", "kserve", {"endpoint": "http://127.0.0.1:9"}),
        TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path),
    )
    cases = []
    for i in range(40):
        png = _variant_png(mnist[0][i], rng)
        grey = Image.open(io.BytesIO(png)).convert("L")
        cases.append((png, base64.b64encode(grey.tobytes()).decode(), grey.width, grey.height))
    with serve_app(create_app(target, forward=False)) as url, browser_or_skip() as browser:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#target-line[data-state=ready]")
        results = page.evaluate(
            """(cases) => cases.map(([b64, w, h]) => {
                const cfg = window.digitPage.state.config;
                const grey = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const { pixels } = window.digitPage.mnistPixels(grey, w, h, cfg.preprocess);
                return [Array.from(pixels), window.digitPage.wireInstance(pixels, cfg.normalize)];
            })""",
            [[grey, w, h] for _, grey, w, h in cases],
        )
        page.close()
    mismatched = []
    for i, ((png, *_), (pixels, instance)) in enumerate(zip(cases, results, strict=True)):
        expected = reference_pixels(png)
        page_pixels = np.array(pixels, dtype=np.uint8).reshape(28, 28)
        if not np.array_equal(page_pixels, expected) or instance != wire_instance(expected):
            mismatched.append((i, int(np.abs(page_pixels.astype(int) - expected).max())))
    assert mismatched == [], f"(photo, max pixel difference) where the page differs: {mismatched}"
