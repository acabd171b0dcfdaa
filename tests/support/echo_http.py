"""A loopback endpoint that echoes the credentials it receives, in every way a real one might.

Why: the redaction tests need a "remote target" that repeats the ``Authorization`` and
``Cookie`` headers it was sent -- in response headers and in JSON, text and HTML bodies,
raw, URL-encoded and base64-encoded, in 2xx, 4xx and 5xx answers and in readiness checks
-- as a misconfigured ingress or a verbose auth proxy does.  It knows nothing about the
secrets: it echoes what arrives, so a test proves servebench sent them *and* kept them out
of everything it wrote.

``GET /deny`` answers 401 (a readiness check that fails, echoing); any other GET answers
200 with the echo (a readiness check that passes).  Each POST gets the next of
:data:`VARIANTS` in turn, so N consecutive requests see every variant when N >= 9.
"""

from __future__ import annotations

import base64
import html
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

__all__ = ["EchoServer", "VARIANTS", "Sent"]

#: Characters before the echoed token in the "cut" variants: servebench keeps 200 characters
#: of an error body (``loadgen.classify``), so the cut falls inside the token.
CUT_PADDING = 180


@dataclass(frozen=True)
class Sent:
    """The credential headers one request carried."""

    authorization: str
    cookie: str

    @property
    def token(self) -> str:
        return self.authorization.removeprefix("Bearer ")


Answer = tuple[int, str, bytes]  # status, content type, body
Variant = Callable[[Sent], Answer]


def _json(status: int, doc: object) -> Answer:
    return status, "application/json", json.dumps(doc).encode()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


VARIANTS: tuple[tuple[str, Variant], ...] = (
    (
        "200 json, a valid prediction plus the echo",
        lambda s: _json(200, {"predictions": [3], "you_sent": {"authorization": s.authorization, "cookie": s.cookie}}),
    ),
    ("200 json without a prediction, echoing", lambda s: _json(200, {"echo": s.authorization, "cookie": s.cookie})),
    ("200 text", lambda s: (200, "text/plain", f"ok, I saw {s.authorization} and {s.cookie}".encode())),
    (
        "401 json",
        lambda s: _json(401, {"error": "invalid_token", "authorization": s.authorization, "cookie": s.cookie}),
    ),
    (
        "401 text",
        lambda s: (401, "text/plain", f"Unauthorized: Authorization: {s.authorization}; Cookie: {s.cookie}".encode()),
    ),
    (
        "403 html",
        lambda s: (
            403,
            "text/html",
            (
                f"<html><body><h1>Forbidden</h1><p>token <b>{html.escape(s.token)}</b>, "
                f"cookie <i>{html.escape(s.cookie)}</i></p></body></html>"
            ).encode(),
        ),
    ),
    (
        "500 json, encoded echoes",
        lambda s: _json(
            500,
            {
                "error": "boom",
                "url": f"/login?token={quote(s.token, safe='')}&next=%2F",
                "basic": "Basic " + _b64("user:" + s.token),
                "b64": _b64(s.token),
                "cookie_b64": _b64(s.cookie),
            },
        ),
    ),
    (
        "503 text, token where the error detail is cut",
        lambda s: (503, "text/plain", ("x" * CUT_PADDING + s.token + " tail").encode()),
    ),
    (
        "502 text, cookie where the error detail is cut",
        lambda s: (502, "text/plain", ("y" * (CUT_PADDING + 3) + s.cookie).encode()),
    ),
)


class EchoServer:
    """``with EchoServer() as echo: echo.url``; records the credentials of every request."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._count = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects

            def log_message(self, *args: object) -> None:
                pass

            def _sent(self) -> Sent:
                sent = Sent(self.headers.get("Authorization", ""), self.headers.get("Cookie", ""))
                with server._lock:
                    server.sent.append(sent)
                return sent

            def _answer(self, sent: Sent, answer: Answer) -> None:
                status, content_type, body = answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Replica", sent.token)  # the page's proxy passes X-Replica on
                self.send_header("Set-Cookie", sent.cookie)
                self.send_header(
                    "WWW-Authenticate", f'Bearer realm="echo", error="invalid_token", token="{sent.token}"'
                )
                self.send_header("X-Echo-Authorization", sent.authorization)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                sent = self._sent()
                if self.path.startswith("/deny"):
                    self._answer(
                        sent,
                        (401, "text/plain", f"not ready: who is {sent.authorization}? cookie {sent.cookie}".encode()),
                    )
                else:
                    self._answer(
                        sent, _json(200, {"ready": True, "you_sent": sent.authorization, "cookie": sent.cookie})
                    )

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sent = self._sent()
                with server._lock:
                    index = server._count % len(VARIANTS)
                    server._count += 1
                self._answer(sent, VARIANTS[index][1](sent))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> EchoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
