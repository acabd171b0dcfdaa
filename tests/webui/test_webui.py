"""The digit page's server, proxy, config and manifests (fast: in-process servers only).

The targets here are the real adapters in remote mode pointed at a recording stub
(tests/support/webui.py), so the proxy is checked against the headers the adapters really
build (Host, bearer token) without starting any model server.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml

from loadgen.nullserver import nginx_available
from models.data import MEAN, STD
from targets.base import TargetContext
from targets.process import free_port
from targets.registry import build_target
from targets.spec import TargetSpec
from tests.support.paths import EXAMPLES
from tests.support.webui import StubUpstream, serve_app
from webui.manifests import (
    ManifestError,
    default_predict_url,
    kserve_cluster_url,
    render_ui_manifests,
)
from webui.pageconfig import UnsupportedTarget
from webui.server import STATIC_DIR, STATIC_FILES, create_app

TOKEN = "s3cr3t-token-value-for-tests"
TOKEN_ENV = "SERVEBENCH_WEBUI_TEST_TOKEN"
HOST = "digits.example.com"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # bytes only; the stub does not decode


def _target(adapter: str, endpoint: str, tmp_path: Path, **table: object):
    spec = TargetSpec(f"webui-{adapter}", adapter, {"endpoint": endpoint, **table})
    return build_target(spec, TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path, ready_timeout_s=10))


@pytest.fixture
def token_env(monkeypatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def _no_cors(resp: httpx.Response) -> None:
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")], dict(resp.headers)


def _client() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=30)


# --------------------------------------------------------------------------- proxy --


def test_proxy_forwards_the_photo_with_the_adapters_host_and_token(tmp_path, token_env) -> None:
    stub = StubUpstream(body=b'{"predictions": [3]}')
    with serve_app(stub.app()) as upstream_url:
        target = _target("flask", upstream_url.rstrip("/"), tmp_path, host_header=HOST, bearer_token_env=TOKEN_ENV)
        with serve_app(create_app(target)) as page_url, _client() as client:
            resp = client.post(page_url + "api/predict", files={"file": ("digit.png", PNG, "image/png")})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"predictions": [3]}
    assert resp.headers["X-Replica"] == "stub-0"
    _no_cors(resp)
    (seen,) = stub.requests
    assert seen.method == "POST" and seen.path == "/predict"
    assert seen.headers["Host"] == HOST
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert PNG in seen.body and b'name="file"' in seen.body
    assert TOKEN not in resp.text


def test_proxy_forwards_a_kserve_v2_body_byte_for_byte(tmp_path) -> None:
    stub = StubUpstream(
        body=json.dumps({"outputs": [{"name": "logits", "shape": [1, 10], "data": [0.0] * 10}]}).encode()
    )
    body = json.dumps({"inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "FP32", "data": [0.5] * 784}]})
    with serve_app(stub.app()) as upstream_url:
        target = _target("kserve", upstream_url.rstrip("/"), tmp_path, protocol="v2", model_name="digits")
        asyncio.run(target.start())  # readiness check against the stub; reads no secrets
        try:
            with serve_app(create_app(target)) as page_url, _client() as client:
                config = client.get(page_url + "config.json").json()
                resp = client.post(page_url + "api/predict", content=body, headers={"Content-Type": "application/json"})
        finally:
            asyncio.run(target.stop())
    assert config["api"] == "kserve-v2"
    assert resp.status_code == 200 and resp.json()["outputs"][0]["shape"] == [1, 10]
    (seen,) = stub.requests
    assert seen.path == "/v2/models/digits/infer"
    assert seen.body == body.encode()
    assert seen.headers["Content-Type"] == "application/json"


def test_target_errors_pass_through_with_their_status(tmp_path) -> None:
    stub = StubUpstream(status=400, body=b'{"error": "cannot decode image: bad PNG"}')
    with serve_app(stub.app()) as upstream_url:
        target = _target("flask", upstream_url.rstrip("/"), tmp_path)
        with serve_app(create_app(target)) as page_url, _client() as client:
            resp = client.post(page_url + "api/predict", files={"file": ("x.png", b"not a png", "image/png")})
    assert resp.status_code == 400
    assert resp.json() == {"error": "cannot decode image: bad PNG"}


def test_non_json_answer_becomes_a_json_error_without_secrets(tmp_path, token_env) -> None:
    stub = StubUpstream(
        status=503, body=f"<html>upstream down, you sent Bearer {TOKEN}</html>".encode(), content_type="text/html"
    )
    with serve_app(stub.app()) as upstream_url:
        target = _target("flask", upstream_url.rstrip("/"), tmp_path, bearer_token_env=TOKEN_ENV)
        with serve_app(create_app(target)) as page_url, _client() as client:
            resp = client.post(page_url + "api/predict", files={"file": ("d.png", PNG, "image/png")})
    assert resp.status_code == 503
    doc = resp.json()
    assert doc["source"] == "proxy" and "HTTP 503" in doc["error"] and "text/html" in doc["error"]
    assert TOKEN not in resp.text and "[REDACTED:Authorization]" in doc["error"]


def test_oversized_body_gets_413_json_and_is_not_forwarded(tmp_path) -> None:
    stub = StubUpstream()
    with serve_app(stub.app()) as upstream_url:
        target = _target("flask", upstream_url.rstrip("/"), tmp_path)
        with serve_app(create_app(target, max_body_bytes=10_000)) as page_url, _client() as client:
            big = client.post(page_url + "api/predict", content=b"x" * 10_001, headers={"Content-Type": "image/png"})

            def chunks():  # no Content-Length: the limit must hold while reading too
                for _ in range(20):
                    yield b"y" * 1000

            chunked = client.post(page_url + "api/predict", content=chunks(), headers={"Content-Type": "image/png"})
            ok = client.post(page_url + "api/predict", content=b"z" * 10_000, headers={"Content-Type": "image/png"})
    for resp in (big, chunked):
        assert resp.status_code == 413, resp.text
        assert resp.json()["error"] == "body too large: the limit is 10000 bytes"
        _no_cors(resp)
    assert ok.status_code == 200
    assert [len(r.body) for r in stub.requests] == [10_000]  # only the body within the limit


def test_other_methods_get_405_json(tmp_path) -> None:
    stub = StubUpstream()
    with serve_app(stub.app()) as upstream_url:
        target = _target("flask", upstream_url.rstrip("/"), tmp_path)
        with serve_app(create_app(target)) as page_url, _client() as client:
            answers = [client.request(m, page_url + "api/predict") for m in ("GET", "PUT", "DELETE", "PATCH")]
            post_to_page = client.post(page_url, content=b"x")
            missing = client.get(page_url + "nope.js")
    for resp in answers:
        assert resp.status_code == 405
        assert resp.headers["Allow"] == "POST"
        assert "not allowed" in resp.json()["error"]
        _no_cors(resp)
    assert post_to_page.status_code == 405 and "error" in post_to_page.json()
    assert missing.status_code == 404 and missing.json()["error"] == "not found: /nope.js"
    assert stub.requests == []


def test_unreachable_target_gets_502_naming_it(tmp_path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    target = _target("flask", dead, tmp_path)
    with serve_app(create_app(target)) as page_url, _client() as client:
        resp = client.post(page_url + "api/predict", files={"file": ("d.png", PNG, "image/png")})
    assert resp.status_code == 502
    doc = resp.json()
    assert doc["source"] == "proxy"
    assert "'webui-flask'" in doc["error"] and f"{dead}/predict" in doc["error"] and "unreachable" in doc["error"]
    _no_cors(resp)


def test_slow_target_gets_504(tmp_path) -> None:
    stub = StubUpstream(delay_s=2.0)
    with serve_app(stub.app()) as upstream_url:
        target = _target("flask", upstream_url.rstrip("/"), tmp_path)
        with serve_app(create_app(target, timeout_s=0.5)) as page_url, _client() as client:
            resp = client.post(page_url + "api/predict", files={"file": ("d.png", PNG, "image/png")})
    assert resp.status_code == 504
    assert "did not answer within 0.5 s" in resp.json()["error"]


def test_no_start_serves_the_page_but_refuses_to_forward(tmp_path) -> None:
    target = _target("flask", "http://127.0.0.1:9", tmp_path)
    with serve_app(create_app(target, forward=False)) as page_url, _client() as client:
        config = client.get(page_url + "config.json").json()
        resp = client.post(page_url + "api/predict", files={"file": ("d.png", PNG, "image/png")})
    assert config["forwarding"] is False and config["upstream"] == "(not started)"
    assert resp.status_code == 502 and "--no-start" in resp.json()["error"]


def test_foreign_origin_and_host_are_refused(tmp_path) -> None:
    stub = StubUpstream()
    with serve_app(stub.app()) as upstream_url:
        target = _target("flask", upstream_url.rstrip("/"), tmp_path)
        with serve_app(create_app(target)) as page_url, _client() as client:
            files = {"file": ("d.png", PNG, "image/png")}
            evil = client.post(page_url + "api/predict", files=files, headers={"Origin": "http://evil.example"})
            rebound = client.get(page_url, headers={"Host": "evil.example:80"})
            own = client.post(page_url + "api/predict", files=files, headers={"Origin": page_url.rstrip("/")})
    assert evil.status_code == 403 and "evil.example" in evil.json()["error"]
    assert rebound.status_code == 421
    assert own.status_code == 200
    assert len(stub.requests) == 1  # only the same-origin request went through


def _example_target(name: str, adapter: str, folder: str, tmp_path: Path, **table: object):
    """An out-of-tree example adapter (examples/FOLDER, imported by path as a user would)."""
    sys.path.insert(0, str(EXAMPLES / folder))
    try:
        spec = TargetSpec(name, adapter, dict(table))
        return build_target(spec, TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path, ready_timeout_s=10))
    finally:
        sys.path.pop(0)


def test_adapter_without_a_page_protocol_is_refused_by_name(tmp_path) -> None:
    target = _example_target("plugin", "servebench_aiohttp_example.target:AiohttpTarget", "aiohttp_target", tmp_path)
    with pytest.raises(UnsupportedTarget, match="'plugin'.*no page_protocol.*multipart, kserve-v1, kserve-v2"):
        create_app(target, forward=False)


def test_unknown_page_protocol_is_refused_by_name(tmp_path) -> None:
    target = _example_target("plugin", "servebench_fastapi_example.target:FastAPITarget", "fastapi_target", tmp_path)
    target.page_protocol = "kserve-v9"  # an adapter with a typo in its declaration
    with pytest.raises(UnsupportedTarget, match="'plugin'.*page_protocol 'kserve-v9'.*does not speak"):
        create_app(target, forward=False)


def test_out_of_tree_adapter_declaring_kserve_v1_gets_the_page(tmp_path) -> None:
    """The FastAPI example is no built-in: its page_protocol alone makes the page work with it."""
    stub = StubUpstream(body=json.dumps({"predictions": [[0.0] * 3 + [5.0] + [0.0] * 6]}).encode())
    body = json.dumps({"instances": [[[0.5] * 28] * 28]})
    with serve_app(stub.app()) as upstream_url:
        target = _example_target(
            "fast",
            "servebench_fastapi_example.target:FastAPITarget",
            "fastapi_target",
            tmp_path,
            endpoint=upstream_url.rstrip("/"),
        )
        asyncio.run(target.start())  # readiness check against the stub (GET /health)
        try:
            with serve_app(create_app(target)) as page_url, _client() as client:
                config = client.get(page_url + "config.json").json()
                resp = client.post(page_url + "api/predict", content=body, headers={"Content-Type": "application/json"})
        finally:
            asyncio.run(target.stop())
    assert config["api"] == "kserve-v1" and config["adapter"] == "fastapi-example"
    assert resp.status_code == 200 and resp.json()["predictions"][0][3] == 5.0
    (seen,) = stub.requests
    assert seen.path == "/v1/predict" and seen.body == body.encode()


# ------------------------------------------------------------------- config & page --


def test_config_json_describes_the_target_and_holds_no_secret(tmp_path, token_env) -> None:
    stub = StubUpstream()
    with serve_app(stub.app()) as upstream_url:
        target = _target("k8s", upstream_url.rstrip("/"), tmp_path, host_header=HOST, bearer_token_env=TOKEN_ENV)
        with serve_app(create_app(target)) as page_url, _client() as client:
            resp = client.get(page_url + "config.json")
            page = client.get(page_url)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    config = resp.json()
    assert config["target"] == "webui-k8s" and config["adapter"] == "k8s" and config["api"] == "multipart"
    assert config["where"] == "remote" and config["upstream"] == upstream_url.rstrip("/") + "/predict"
    assert config["predict_path"] == "api/predict"  # relative: same origin, also under a sub-path
    assert config["normalize"] == {"mean": MEAN, "std": STD, "decimals": 4}
    assert config["preprocess"]["ink_threshold"] == 30 and config["preprocess"]["digit_box"] == 20
    for resp_ in (resp, page):
        assert TOKEN not in resp_.text and "Bearer" not in resp_.text
        _no_cors(resp_)
        assert "default-src 'none'" in resp_.headers["Content-Security-Policy"]


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [value for name, value in attrs if name in ("src", "href", "action", "srcset") and value]


def test_page_references_only_local_assets(tmp_path) -> None:
    parser = _Refs()
    parser.feed((STATIC_DIR / "index.html").read_text())
    assert sorted(parser.refs) == ["data:,", "digit.css", "digit.js", "mnist.js"]  # data:, = no favicon request
    js = (STATIC_DIR / "digit.js").read_text() + (STATIC_DIR / "mnist.js").read_text()
    css = (STATIC_DIR / "digit.css").read_text()
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/", js + css, re.IGNORECASE), (
        "an absolute URL in the page's code"
    )
    assert "@import" not in css and "url(" not in css and "@font-face" not in css
    fetched = re.findall(r"fetch\(([^,)]+)", js)
    assert sorted(fetched) == ['"config.json"', "cfg.predict_path"], fetched  # predict_path: "api/predict"
    target = _target("flask", "http://127.0.0.1:9", tmp_path)
    with serve_app(create_app(target, forward=False)) as page_url, _client() as client:
        for name, ctype in STATIC_FILES.items():
            resp = client.get(page_url + name)
            assert resp.status_code == 200 and resp.headers["Content-Type"] == ctype
            assert resp.content == (STATIC_DIR / name).read_bytes()
        assert client.get(page_url).content == (STATIC_DIR / "index.html").read_bytes()
        assert client.get(page_url + "server.py").status_code == 404  # only the listed files


# ------------------------------------------------------------------------ manifests --


def test_manifests_validate_and_wire_the_page_to_the_inferenceservice(repo_root) -> None:
    from bench.config import load_config

    url = default_predict_url(load_config(repo_root / "bench.toml").targets)
    assert url == "http://mnist.kubeflow-user-example-com.svc.cluster.local/v1/models/mnist:predict"
    files = render_ui_manifests(predict_url=url)
    assert set(files) == {"Dockerfile", "nginx.conf", "config.json", "pod.yaml", "service.yaml"}
    pod = yaml.safe_load(files["pod.yaml"])
    service = yaml.safe_load(files["service.yaml"])
    for doc in (pod, service):
        kubernetes_validate.validate(doc, "1.30", strict=True)
    assert pod["kind"] == "Pod" and service["kind"] == "Service"
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "servebench-digit-page:0.1.0"
    (port,) = container["ports"]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"] and port["containerPort"] == 80
    assert container["readinessProbe"]["httpGet"]["port"] == "http"

    docker = files["Dockerfile"]
    assert re.search(r"^FROM nginx:", docker, re.MULTILINE)
    assert (
        "COPY static/ /usr/share/nginx/html/" in docker and "COPY nginx.conf /etc/nginx/conf.d/default.conf" in docker
    )
    conf = files["nginx.conf"]
    assert f'set $predict_url "{url}";' in conf and "proxy_pass $predict_url;" in conf
    assert "proxy_set_header Host mnist.kubeflow-user-example-com.svc.cluster.local;" in conf
    assert "Access-Control-Allow-Origin" not in conf.replace("proxy_hide_header Access-Control-Allow-Origin", "")
    config = json.loads(files["config.json"])
    assert config["api"] == "kserve-v1" and config["where"] == "cluster" and config["upstream"] == url


def test_manifests_api_mode_follows_the_url_and_bad_values_are_named() -> None:
    v2 = kserve_cluster_url("digits", "team-a", "v2", raw_deployment=True)
    assert v2 == "http://digits-predictor.team-a.svc.cluster.local/v2/models/digits/infer"
    assert json.loads(render_ui_manifests(predict_url=v2)["config.json"])["api"] == "kserve-v2"
    flask = render_ui_manifests(predict_url="http://k8s-ibm.default.svc.cluster.local/predict")
    assert json.loads(flask["config.json"])["api"] == "multipart"
    for bad, word in (
        ("ftp://x/predict", "http"),
        ("http://a/predict;rm -rf", "characters"),
        ('http://a/p"redict', "characters"),
        ("http://user:pw@a/predict", "credentials"),
    ):
        with pytest.raises(ManifestError, match=word):
            render_ui_manifests(predict_url=bad)
    with pytest.raises(ManifestError, match="namespace"):
        render_ui_manifests(predict_url=v2, namespace="Team_A")


def test_kubernetes_schema_rejects_a_broken_pod() -> None:
    pod = yaml.safe_load(render_ui_manifests(predict_url="http://m.ns.svc.cluster.local/predict")["pod.yaml"])
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, "1.30", strict=True)


def test_cli_manifests_ui_writes_the_build_context(tmp_path, repo_root) -> None:
    out = tmp_path / "ui"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--config",
            str(repo_root / "bench.toml"),
            "manifests",
            "ui",
            "-o",
            str(out),
            "--predict-url",
            "http://digits.team-a.svc.cluster.local/v1/models/digits:predict",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo_root,
    )
    assert proc.returncode == 0, proc.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(
        ["Dockerfile", "config.json", "nginx.conf", "pod.yaml", "service.yaml"] + [f"static/{n}" for n in STATIC_FILES]
    )
    assert (out / "static" / "digit.js").read_bytes() == (STATIC_DIR / "digit.js").read_bytes()
    assert "proxy_set_header Host digits.team-a.svc.cluster.local;" in (out / "nginx.conf").read_text()


def test_cli_predict_url_is_refused_for_other_manifests(repo_root) -> None:
    """--predict-url only means something to `manifests ui`; elsewhere it must not be silently dropped."""
    from bench.cli import main

    assert main(["--config", str(repo_root / "bench.toml"), "manifests", "hpo", "--predict-url", "http://x"]) == 2


@pytest.mark.slow
@pytest.mark.skipif(
    nginx_available() is None, reason="NGINX NOT INSTALLED (apt-get install nginx): the rendered nginx.conf is not run"
)
def test_rendered_nginx_conf_serves_the_page_and_proxies(tmp_path) -> None:
    """Run the rendered server block under a real nginx, proxying to the recording stub."""
    stub = StubUpstream(body=b'{"predictions": [[0, 0, 0, 0, 5, 0, 0, 0, 0, 0]]}')
    with serve_app(stub.app()) as upstream_url:
        port = free_port()
        html = tmp_path / "html"
        html.mkdir()
        files = render_ui_manifests(
            predict_url=upstream_url + "v1/models/mnist:predict",
            resolver="127.0.0.1",
            listen_port=port,
            html_root=str(html),
        )
        for name in STATIC_FILES:
            shutil.copy(STATIC_DIR / name, html / name)
        (html / "config.json").write_text(files["config.json"])
        (tmp_path / "server.conf").write_text(files["nginx.conf"])
        (tmp_path / "logs").mkdir()
        # As root, nginx's workers would run as nobody and could not read pytest's 0700 tmp dirs.
        user = "user root;\n" if os.geteuid() == 0 else ""
        main = user + (
            f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/logs/error.log; events {{}}\n"
            f"http {{ include /etc/nginx/mime.types; access_log off; client_body_temp_path {tmp_path}/body;"
            f" proxy_temp_path {tmp_path}/proxy; include {tmp_path}/server.conf; }}\n"
        )
        (tmp_path / "nginx.conf").write_text(main)
        proc = subprocess.Popen(
            [nginx_available(), "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}/"
            with _client() as client:
                for _ in range(100):
                    try:
                        page = client.get(base)
                        break
                    except httpx.ConnectError:
                        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                        asyncio.run(asyncio.sleep(0.05))
                assert page.status_code == 200 and page.content == (STATIC_DIR / "index.html").read_bytes()
                assert client.get(base + "digit.js").headers["Content-Type"].endswith("javascript")
                config = client.get(base + "config.json").json()
                body = json.dumps({"instances": [[[0.0] * 28] * 28]}).encode()
                ok = client.post(
                    base + "api/predict",
                    content=body,
                    headers={"Content-Type": "application/json", "Cookie": "session=abc"},
                )
                wrong = client.get(base + "api/predict")
                big = client.post(base + "api/predict", content=b"x" * (4 * 1024 * 1024 + 1))
        finally:
            proc.terminate()
            proc.wait(10)
    assert config["api"] == "kserve-v1"
    assert ok.status_code == 200 and ok.json()["predictions"][0][4] == 5
    (seen,) = stub.requests
    assert seen.path == "/v1/models/mnist:predict" and seen.body == body
    assert "Cookie" not in seen.headers
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST" and "error" in wrong.json()
    assert big.status_code == 413 and "too large" in big.json()["error"]
    for resp in (page, ok, wrong, big):
        _no_cors(resp)


# ------------------------------------------------------------------------ bench ui --


def _start_ui(repo_root: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``python -m bench ui ARGS --port 0``; returns the process and the page URL it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "--config", str(repo_root / "bench.toml"), "ui", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=repo_root,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the URL line (or EOF when it failed)
    match = re.search(r"digit page for \S+: (http://127\.0\.0\.1:\d+/)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"no URL printed: {line!r} {proc.communicate(timeout=30)}")
    return proc, match.group(1)


def _interrupt(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_cli_ui_no_start_serves_the_page_and_stops_on_ctrl_c(repo_root) -> None:
    proc, url = _start_ui(repo_root, "--no-start", "--target", "kubeflow-gcp")
    try:
        with _client() as client:
            config = client.get(url + "config.json").json()
            page = client.get(url)
    finally:
        code, err = _interrupt(proc)
    assert config["target"] == "kubeflow-gcp" and config["api"] == "kserve-v1" and config["forwarding"] is False
    assert page.status_code == 200
    assert code == 0, err
    assert "--no-start" in err


def test_cli_ui_refuses_an_unknown_target_and_a_bad_port(repo_root) -> None:
    base = [sys.executable, "-m", "bench", "--config", str(repo_root / "bench.toml"), "ui"]
    unknown = subprocess.run(
        [*base, "--target", "nope"], check=False, capture_output=True, text=True, timeout=120, cwd=repo_root
    )
    port = subprocess.run(
        [*base, "--port", "70000"], check=False, capture_output=True, text=True, timeout=120, cwd=repo_root
    )
    assert unknown.returncode == 2 and "targets.nope" in unknown.stderr and "greene-linserv" in unknown.stderr
    assert port.returncode == 2 and "--port must be 0..65535" in port.stderr


@pytest.mark.slow
def test_cli_ui_starts_the_default_flask_standin_and_leaves_nothing_behind(repo_root, trained_model, mnist) -> None:
    from PIL import Image

    from tests.support.targets import descendants

    buf = io.BytesIO()
    Image.fromarray(255 - mnist[0][0]).resize((112, 112)).save(buf, format="PNG")
    proc, url = _start_ui(repo_root)  # default target: the first flask target (greene-linserv)
    try:
        children = descendants(proc.pid)
        with _client() as client:
            config = client.get(url + "config.json").json()
            resp = client.post(url + "api/predict", files={"file": ("d.png", buf.getvalue(), "image/png")})
    finally:
        code, err = _interrupt(proc)
    assert config["target"] == "greene-linserv" and config["api"] == "multipart"
    assert config["where"] == "local stand-in" and config["upstream"].startswith("http://127.0.0.1:")
    assert resp.status_code == 200 and 0 <= resp.json()["predictions"][0] <= 9
    assert code == 0, err
    assert "stopped greene-linserv" in err
    assert children, "the stand-in (gunicorn) should have been a child of `bench ui`"
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert alive == [], f"processes left after Ctrl-C: {alive}"


def test_cli_ui_reports_a_target_that_is_not_ready_and_a_taken_port(tmp_path, repo_root) -> None:
    dead = free_port()
    config = tmp_path / "bench.toml"
    config.write_text(  # every other table keeps its defaults
        f'[targets.far-away]\nadapter = "flask"\nendpoint = "http://127.0.0.1:{dead}"\nready_timeout_s = 1.0\n'
    )
    base = [sys.executable, "-m", "bench", "--config", str(config), "ui"]
    not_ready = subprocess.run([*base, "--port", "0"], check=False, capture_output=True, text=True, timeout=120)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = subprocess.run(
            [*base, "--no-start", "--port", str(busy.getsockname()[1])],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert not_ready.returncode == 1, not_ready.stderr
    assert "far-away" in not_ready.stderr and f"127.0.0.1:{dead}" in not_ready.stderr
    assert "digit page for" not in not_ready.stdout
    assert taken.returncode == 1 and "cannot serve the page on 127.0.0.1" in taken.stderr, taken.stderr
