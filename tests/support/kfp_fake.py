"""A fake Kubeflow Pipelines REST API on 127.0.0.1, so the real ``kfp.Client`` code path runs.

Why a fake server and not a mocked client: the code under test is our use of
``kfp.Client`` (host handling, auth headers, experiment lookup, run creation, reading the
run's details through ``kfp_server_api``'s deserializer).  Mocking the client would test
none of that.  The fake answers the endpoints the client actually calls (v2beta1):

* ``GET  /apis/v2beta1/healthz``                   (client start-up when no namespace is set)
* ``GET  /apis/v2beta1/experiments?filter=...``    (experiment lookup by display name)
* ``POST /apis/v2beta1/experiments``               (create the experiment when missing)
* ``POST /apis/v2beta1/runs``                      (create the run: inline IR pipeline_spec)
* ``GET  /apis/v2beta1/runs/{run_id}``             (the recorded answers, tests/data/kfp/)

Everything else -> 404 JSON.  With ``token`` set, a request without ``Authorization:
Bearer <token>`` gets 401, as an authenticating gateway would; with ``redirect_to`` set,
every request gets a 302 there (Dex's login page).  Every request is recorded.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from tests.support import paths

__all__ = ["DATA", "FakeKfp", "Seen"]

DATA = paths.DATA / "kfp"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Any


@dataclass
class FakeKfp:
    """``runs``: the GET answers in order (the last repeats); file names under tests/data/kfp or dicts."""

    runs: list[Any]
    token: str = ""
    redirect_to: str = ""  # answer every request 302 -> this URL (an expired Dex session)
    seen: list[Seen] = field(default_factory=list)
    experiments: list[dict[str, Any]] = field(default_factory=list)
    created_runs: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._docs = [json.loads((DATA / r).read_text()) if isinstance(r, str) else r for r in self.runs]
        self.run_id = self._docs[-1]["run_id"]
        self._reads = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def get_reads(self) -> int:
        return self._reads

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self, status: int, doc: Any) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    return self._answer(400, {"code": 3, "message": "body is not JSON"})
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.seen.append(Seen(method, parts.path, parse_qs(parts.query), headers, body))
                if fake.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", fake.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if fake.token and headers.get("authorization") != f"Bearer {fake.token}":
                    return self._answer(401, {"code": 16, "message": "Unauthenticated"})
                status, doc = fake.route(method, parts.path, parse_qs(parts.query), body)
                self._answer(status, doc)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        base = "/apis/v2beta1"
        if (method, path) == ("GET", f"{base}/healthz"):
            return 200, {"multi_user": False, "pipeline_store": "database"}
        if (method, path) == ("GET", f"{base}/experiments"):
            wanted = [
                p["stringValue"]
                for p in json.loads(query.get("filter", ["{}"])[0]).get("predicates", [])
                if p.get("key") == "display_name"
            ]
            found = [e for e in self.experiments if e["display_name"] in wanted]
            return 200, ({"experiments": found, "total_size": len(found)} if found else {})
        if (method, path) == ("POST", f"{base}/experiments"):
            if not isinstance(body, dict) or not body.get("display_name"):
                return 400, {"code": 3, "message": "experiment needs a display_name"}
            exp = {
                **body,
                "experiment_id": "9b2d4e11-58a3-4c6f-a0e7-1d2c3b4a5f60",
                "created_at": "2026-11-20T14:02:00Z",
                "storage_state": "AVAILABLE",
            }
            self.experiments.append(exp)
            return 200, exp
        if (method, path) == ("POST", f"{base}/runs"):
            if not isinstance(body, dict) or "pipeline_spec" not in body or not body.get("experiment_id"):
                return 400, {"code": 3, "message": "run needs pipeline_spec and experiment_id"}
            self.created_runs.append(body)
            return 200, {
                "run_id": self.run_id,
                "display_name": body.get("display_name"),
                "experiment_id": body["experiment_id"],
                "state": "PENDING",
                "created_at": "2026-11-20T14:02:11Z",
            }
        if method == "GET" and path == f"{base}/runs/{self.run_id}":
            with self._lock:
                doc = self._docs[min(self._reads, len(self._docs) - 1)]
                self._reads += 1
            return 200, doc
        return 404, {"code": 5, "message": f"no route for {method} {path}"}
