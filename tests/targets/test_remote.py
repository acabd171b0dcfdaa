"""Remote mode: Host header and credentials from env var NAMES, readiness, no secret leaks.

The slow test uses a real local stand-in as the "remote" deployment, behind a small
recording proxy that plays the ingress: it records what arrives and forwards it.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from bench.config import load_config
from models.data import load_dataset
from targets.base import TargetContext, TargetError
from targets.registry import build_target
from targets.remote import RemoteSettings, open_remote
from targets.spec import TargetSpec

TOKEN = "tok-9f8e7d6c5b4a-SECRET"
COOKIE = "authservice_session=cookie-1a2b3c-SECRET"
HOST = "mnist.kubeflow-user.example.com"


def _ctx(tmp_path: Path, artifacts: Path | None = None) -> TargetContext:
    return TargetContext(artifacts_dir=artifacts or tmp_path / "none", log_dir=tmp_path / "logs")


def test_open_remote_builds_headers_from_env_names() -> None:
    settings = RemoteSettings(endpoint="https://x.example/", host_header=HOST, bearer_token_env="T", cookie_env="C")
    access = open_remote("t", settings, environ={"T": TOKEN, "C": COOKIE})
    assert access.base_url == "https://x.example"
    assert access.headers == {"Host": HOST, "Authorization": f"Bearer {TOKEN}", "Cookie": COOKIE}
    assert TOKEN not in repr(access) and COOKIE not in repr(access)
    assert access.redact(f"echo {TOKEN} and {COOKIE}") == "echo [REDACTED:T] and [REDACTED:C]"


def test_missing_env_var_error_names_the_variable_only(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("SB_MISSING_TOKEN", raising=False)
    spec = TargetSpec("remote-x", "flask", {"endpoint": "http://127.0.0.1:9", "bearer_token_env": "SB_MISSING_TOKEN"})
    target = build_target(spec, _ctx(tmp_path))
    with pytest.raises(TargetError) as info:
        asyncio.run(target.start())
    assert "SB_MISSING_TOKEN" in str(info.value) and "remote-x" in str(info.value)


def test_describe_shows_names_never_values(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SB_T", TOKEN)
    spec = TargetSpec("r", "k8s", {"endpoint": "http://10.0.0.5:80", "host_header": HOST, "bearer_token_env": "SB_T"})
    target = build_target(spec, _ctx(tmp_path))
    request = target.encode(np.zeros((28, 28), dtype=np.uint8))
    assert request.headers["Authorization"] == f"Bearer {TOKEN}" and request.headers["Host"] == HOST
    facts = target.describe()
    assert facts["mode"] == "remote" and facts["base_url"] == "http://10.0.0.5:80"
    assert facts["bearer_token_env"] == "SB_T" and facts["host_header"] == HOST
    assert TOKEN not in repr(facts)


def test_unreachable_remote_names_url_and_answer(tmp_path) -> None:
    from targets.process import free_port

    url = f"http://127.0.0.1:{free_port()}"
    spec = TargetSpec("gone", "flask", {"endpoint": url, "ready_timeout_s": 0.5})
    target = build_target(spec, _ctx(tmp_path))
    with pytest.raises(TargetError) as info:
        asyncio.run(target.start())
    assert f"{url}/healthz" in str(info.value) and "ConnectError" in str(info.value)


class _Proxy:
    """A recording reverse proxy (the "ingress"): records request headers, forwards upstream.

    ``/echo-headers`` answers 503 with the request's Authorization in the body, to prove
    that error messages redact secrets a remote echoes back.
    """

    def __init__(self, upstream: str) -> None:
        up = urlsplit(upstream)
        self.records: list[dict[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                proxy.records.append({"path": self.path, **{k: v for k, v in self.headers.items()}})
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/echo-headers":
                    payload = f"not ready; you sent {self.headers.get('Authorization')}".encode()
                    status, ctype = 503, "text/plain"
                else:
                    conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                    headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    payload, status = resp.read(), resp.status
                    ctype = resp.getheader("Content-Type", "application/json")
                    conn.close()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream(trained_model, tmp_path) -> Iterator[str]:
    spec = TargetSpec("the-remote", "flask", {"model_loading": "startup"})
    target = build_target(spec, _ctx(tmp_path / "up", trained_model.dir))
    asyncio.run(target.start())
    try:
        yield target.base_url
    finally:
        asyncio.run(target.stop())


@pytest.mark.slow
def test_remote_mode_against_a_local_standin(upstream, repo_root, tmp_path, monkeypatch) -> None:
    from tests.support.targets import send

    monkeypatch.setenv("SB_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("SB_TEST_COOKIE", COOKIE)
    proxy = _Proxy(upstream)
    try:
        table = {
            "endpoint": proxy.url + "/",
            "host_header": HOST,
            "bearer_token_env": "SB_TEST_TOKEN",
            "cookie_env": "SB_TEST_COOKIE",
            "ready_timeout_s": 10.0,
        }
        target = build_target(TargetSpec("k8s-remote", "k8s", table), _ctx(tmp_path))
        asyncio.run(target.start())
        assert target.is_remote and target.base_url == proxy.url and not target.processes
        split = load_dataset(load_config(repo_root / "bench.toml").model)
        correct = 0
        for image, label in zip(split.test_x[:20], split.test_y[:20], strict=True):
            response = send(target.base_url, target.encode(image))
            correct += target.decode(response.status_code, response.content) == label
        assert correct >= 18
        asyncio.run(target.stop())

        assert proxy.records[0]["path"] == "/healthz"  # start() checked readiness first
        for record in proxy.records:
            assert record["Host"] == HOST
            assert record["Authorization"] == f"Bearer {TOKEN}"
            assert record["Cookie"] == COOKIE
        assert TOKEN not in repr(target.describe()) and COOKIE not in repr(target.describe())

        # Not ready: the error names the URL and what it answered, with the secret redacted.
        table_bad = {**table, "health_path": "/echo-headers", "ready_timeout_s": 0.5}
        bad = build_target(TargetSpec("k8s-remote", "k8s", table_bad), _ctx(tmp_path))
        with pytest.raises(TargetError) as info:
            asyncio.run(bad.start())
        message = str(info.value)
        assert f"{proxy.url}/echo-headers" in message and "HTTP 503 not ready" in message
        assert "Bearer [REDACTED:SB_TEST_TOKEN]" in message and TOKEN not in message
    finally:
        proxy.close()
    for log in (tmp_path / "up").rglob("*.log"):
        assert TOKEN not in log.read_text(errors="replace")
