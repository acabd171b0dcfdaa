"""One redaction rule for every credential: the Redactor, who declares secrets, every sink.

The end-to-end test runs `bench run`, `bench report`, `bench compare`, `bench targets` and
`bench ui` against a loopback endpoint that echoes the credentials it receives
(tests/support/echo_http.py), with canary secrets in the environment, then counts the canaries --
raw, URL-encoded, base64 (also inside ``Basic user:secret``) and cut-off 6-character pieces
-- in every file servebench wrote and everything the page received.  Every count must be 0,
and the labels ``[REDACTED:VAR]`` must be there (proof that the echo did arrive).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote, quote_plus

import httpx
import numpy as np
import pytest

from bench.config import parse_config
from bench.console import Console
from bench.redact_secrets import configured_secret_variables, redact_file, redact_tree, redactor_for
from bench.results import RunWriter, load_run, write_json_atomic
from ground.redactor import MIN_SECRET_CHARS, PARTIAL_MIN_CHARS, Redactor
from ground.runmeta import RunMeta
from loadgen.classify import classify_response
from loadgen.records import RequestRecord, StepKey
from loadgen.stats import SUMMARY_COLUMNS
from targets.base import Request, Target, TargetContext, TargetError
from targets.registry import build_target
from targets.remote import RemoteSettings
from targets.secrets import read_secret_values, secret_env_fields, secret_env_names
from targets.spec import TargetSpec
from tests.support.e2e import e2e_config
from tests.support.echo_http import CUT_PADDING, VARIANTS, EchoServer
from tests.support.paths import REPO
from tests.support.webui import serve_app

TOKEN = "tK9/q+Zx=Vb3mW7pLr2NsY8dHf4Jc6"  # "/", "+", "=": URL-encoding changes it
COOKIE_VALUE = "Ck7Qp2Zr9Wx4Ls8Nb6Td3Yh5Mv1/Ga+"
COOKIE = f"authservice_session={COOKIE_VALUE}"
TOKEN_ENV, COOKIE_ENV = "SB_CANARY_TOKEN", "SB_CANARY_COOKIE"


def _b64(text: str, alphabet: str = "std") -> str:
    encode = base64.urlsafe_b64encode if alphabet == "url" else base64.b64encode
    return encode(text.encode()).decode()


def canary_forms(secret: str) -> dict[str, str]:
    """What must never appear: the secret, its URL-encodings, base64 (alone and in ``Basic
    user:secret`` at all 3 byte alignments: the middle of the encoding, computed without
    servebench's code) and its first/last 6 characters (a piece left by a cut)."""
    forms = {
        "raw": secret,
        "url": quote(secret, safe=""),
        "url-path": quote(secret),
        "url-plus": quote_plus(secret),
        "b64": _b64(secret),
        "b64-urlsafe": _b64(secret, "url"),
        "first6": secret[:PARTIAL_MIN_CHARS],
        "last6": secret[-PARTIAL_MIN_CHARS:],
    }
    for prefix in ("u:", "us:", "usr:"):
        for alphabet in ("std", "url"):
            encoded = _b64(prefix + secret, alphabet)
            forms[f"b64-basic-{len(prefix)}-{alphabet}"] = encoded[len(prefix) * 4 // 3 + 2 : -4]
    return forms


CANARIES = {"token": TOKEN, "cookie": COOKIE, "cookie-value": COOKIE_VALUE}


def _config(targets: dict[str, dict[str, str]]):
    """A BenchConfig with just these target tables (string values only)."""
    text = "".join(
        f"[targets.{name}]\n" + "".join(f'{k} = "{v}"\n' for k, v in table.items()) for name, table in targets.items()
    )
    return parse_config(text, REPO)


def count_canaries(data: bytes) -> Counter[str]:
    """Occurrences of every canary form in ``data`` (non-zero entries only)."""
    counts: Counter[str] = Counter()
    for name, secret in CANARIES.items():
        for form_name, form in canary_forms(secret).items():
            if name == "cookie" and form_name in ("first6", "last6"):
                continue  # the cookie string starts with its public name; its value is checked
            n = data.count(form.encode())
            if n:
                counts[f"{name}:{form_name}"] = n
    return counts


def _decompressed(path: Path) -> bytes:
    """A gzip file's content, all members (requests.csv.gz is one member per step)."""
    out, rest = [], path.read_bytes()
    while rest:
        member = zlib.decompressobj(wbits=31)
        out.append(member.decompress(rest))
        rest = member.unused_data
    return b"".join(out)


def _readable(path: Path) -> bytes:
    """A file's bytes, and for gzip files their decompressed content as well."""
    raw = path.read_bytes()
    return _decompressed(path) + b"\n" + raw if path.suffix == ".gz" else raw


def _kind(path: Path) -> str:
    name = path.name
    return ".csv.gz" if name.endswith(".csv.gz") else (path.suffix or name)


# --- the Redactor ---------------------------------------------------------------------


def test_every_form_of_a_secret_is_redacted() -> None:
    r = Redactor({TOKEN_ENV: TOKEN, COOKIE_ENV: COOKIE})
    texts = [
        f"Authorization: Bearer {TOKEN}",
        f"?token={quote(TOKEN, safe='')}&x={quote_plus(TOKEN)}&p={quote(TOKEN)}",
        f"Authorization: Basic {_b64('user:' + TOKEN)}",
        f"Basic {_b64('us:' + TOKEN)} / {_b64('u:' + TOKEN, 'url')} / {_b64(TOKEN)}",
        json.dumps({"token": TOKEN, "cookie": COOKIE}),
        repr({"body": (TOKEN + COOKIE).encode()}),
        f"<b>{COOKIE_VALUE}</b> {TOKEN.replace('/', chr(92) + '/')}",
        f"Set-Cookie: {COOKIE}; Path=/",
    ]
    for text in texts:
        out = r.redact(text)
        assert not count_canaries(out.encode()), (text, out)
        assert "[REDACTED:" in out
    assert r.redact(f"Bearer {TOKEN}") == f"Bearer [REDACTED:{TOKEN_ENV}]"
    assert r.redact(f"Cookie: {COOKIE}") == f"Cookie: [REDACTED:{COOKIE_ENV}]"


def test_cut_off_pieces_at_the_edges_are_redacted_but_not_short_ones() -> None:
    r = Redactor({"T": TOKEN})
    for keep in range(PARTIAL_MIN_CHARS, len(TOKEN)):
        assert r.redact("HTTP 401: x " + TOKEN[:keep] + "...") == "HTTP 401: x [REDACTED:T]..."
        assert r.redact("HTTP 401: x " + TOKEN[:keep]) == "HTTP 401: x [REDACTED:T]"
        assert r.redact(TOKEN[-keep:] + " rest of a log line") == "[REDACTED:T] rest of a log line"
    short = TOKEN[: PARTIAL_MIN_CHARS - 1]
    assert r.redact("x " + short) == "x " + short  # 5 characters: not worth over-redacting text
    assert r.redact("a " + TOKEN[:10] + " b") == "a " + TOKEN[:10] + " b"  # mid-text: not a cut


def test_overlapping_and_nested_secrets_leave_no_fragment() -> None:
    r = Redactor({"A": "abcdefgh12345678", "B": "12345678ijklmnop", "C": "cdefgh1234"})
    out = r.redact("<abcdefgh12345678ijklmnop>")
    assert out == "<[REDACTED:A][REDACTED:B][REDACTED:C]>"
    for fragment in ("abc", "123", "ijk", "mnop"):
        assert fragment not in out
    assert r.redact("only cdefgh1234 here") == "only [REDACTED:C] here"


def test_empty_values_are_ignored_and_duplicates_get_one_label() -> None:
    assert not Redactor({"A": "", "B": ""}) and Redactor({"A": ""}).redact("text") == "text"
    r = Redactor([("FIRST", "same-value-123"), ("SECOND", "same-value-123")])
    assert r.names == ("FIRST",) and r.redact("x same-value-123") == "x [REDACTED:FIRST]"
    assert "same-value" not in repr(r) and "FIRST" in repr(r)
    with pytest.raises(ValueError, match="environment variable name"):
        Redactor({"bad name]": "value-12345"})


def test_short_secrets_are_still_redacted_and_flagged() -> None:
    r = Redactor({"PIN": "4711", "LONG": "a-long-enough-secret"})
    assert r.short_names == ("PIN",) and len("4711") < MIN_SECRET_CHARS
    assert r.redact("pin 4711, twice 47114711") == "pin [REDACTED:PIN], twice [REDACTED:PIN][REDACTED:PIN]"
    assert Redactor({"H": "Bearer abc"}).short_names == ("H",)  # the scheme word does not make it long
    console = Console(file=io.StringIO())
    config = _config({"t": {"adapter": "flask", "bearer_token_env": "SB_SHORT"}})
    with pytest.MonkeyPatch.context() as mp:
        warnings: list[str] = []
        mp.setattr(console, "warn", warnings.append)
        redactor_for(config, console, environ={"SB_SHORT": "4711"})
        redactor_for(config, console, environ={"SB_SHORT": "4711"})  # again: no second warning
    assert len(warnings) == 1 and "SB_SHORT" in warnings[0] and "4711" not in warnings[0]


def test_bytes_data_and_headers() -> None:
    r = Redactor({"T": TOKEN})
    body = json.dumps({"predictions": [3], "echo": f"Bearer {TOKEN}"}).encode()
    out = r.redact_bytes(body)
    assert json.loads(out) == {"predictions": [3], "echo": "Bearer [REDACTED:T]"}
    data = r.redact_data({"k": [TOKEN, {TOKEN: 1}], "n": 2.5, "b": TOKEN.encode()})
    assert data == {"k": ["[REDACTED:T]", {"[REDACTED:T]": 1}], "n": 2.5, "b": b"[REDACTED:T]"}
    assert r.redact_headers({"X-Replica": TOKEN}) == {"X-Replica": "[REDACTED:T]"}
    assert Redactor().redact_bytes(body) is body  # nothing configured: nothing touched


# --- who declares secrets ---------------------------------------------------------------


@dataclass(frozen=True)
class CustomSettings(RemoteSettings):
    """A user's adapter: one secret by the ``*_env`` convention, one declared explicitly."""

    secret_env_fields: ClassVar[tuple[str, ...]] = ("auth_variable",)
    api_key_env: str = ""
    auth_variable: str = ""
    label: str = ""


class CustomTarget(Target):
    adapter = "custom-test"
    Settings = CustomSettings

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    is_remote = True

    def encode(self, image: np.ndarray) -> Request:
        return Request("POST", "/", b"")

    def decode(self, status: int, body: bytes) -> int:
        return 0

    def manifests(self) -> dict[str, str]:
        return {}


def test_settings_declare_secret_variables_by_convention_and_explicitly() -> None:
    assert secret_env_fields(CustomSettings) == ("bearer_token_env", "cookie_env", "api_key_env", "auth_variable")
    settings = CustomSettings(api_key_env="MY_KEY", auth_variable="MY_AUTH", label="not a secret")
    assert secret_env_names(settings) == {"api_key_env": "MY_KEY", "auth_variable": "MY_AUTH"}
    values = read_secret_values(["MY_KEY", "MY_AUTH", "UNSET"], {"MY_KEY": "k" * 12, "MY_AUTH": ""})
    assert values == {"MY_KEY": "k" * 12}  # empty and unset variables contribute nothing

    @dataclass(frozen=True)
    class Typo:
        secret_env_fields: ClassVar[tuple[str, ...]] = ("nope",)
        x: str = ""

    with pytest.raises(ValueError, match="nope"):
        secret_env_fields(Typo)


def test_configuration_collects_every_adapters_secret_variables() -> None:
    config = _config(
        {
            "a": {"adapter": "flask", "bearer_token_env": "V1", "cookie_env": "V2"},
            "b": {
                "adapter": "kserve",
                "kfp_endpoint": "https://kfp.example",
                "kfp_token_env": "V3",
                "kfp_cookie_env": "V4",
            },
            "c": {"adapter": "tests.test_redaction:CustomTarget", "api_key_env": "V5", "auth_variable": "V6"},
            "d": {"adapter": "no.such.module:Nope", "some_token_env": "V7"},  # unparsable: *_env keys still count
        }
    )
    assert configured_secret_variables(config) == ["V1", "V2", "V3", "V4", "V5", "V6", "V7"]
    env = {f"V{i}": f"secret-number-{i}-value" for i in range(1, 8)}
    r = redactor_for(config, environ=env)
    assert r.names == tuple(f"V{i}" for i in range(1, 8))
    text = " ".join(env.values())
    assert r.redact(text) == " ".join(f"[REDACTED:V{i}]" for i in range(1, 8))


# --- the sinks --------------------------------------------------------------------------


def _record(seq: int, detail: str) -> RequestRecord:
    return RequestRecord(
        seq=seq,
        intended_s=0.0,
        sent_s=0.0,
        latency_s=0.01,
        service_s=0.01,
        status=401,
        error="http_4xx",
        error_detail=detail,
        bytes_out=1,
        bytes_in=1,
        label=1,
        predicted=-1,
    )


def _echo_details() -> list[str]:
    """error_detail as loadgen.classify and the Flask adapter's decode really produce it."""
    from targets.flask.target import decode_predictions
    from tests.support.echo_http import Sent

    sent = Sent(f"Bearer {TOKEN}", COOKIE)
    details = []
    for _name, variant in VARIANTS:
        status, _content_type, body = variant(sent)
        details.append(classify_response(status, body, decode_predictions).detail)
    return details


def test_run_writer_redacts_error_detail_meta_and_summary(tmp_path) -> None:
    details = _echo_details()
    # The raw material: whole tokens, and one cut after its first characters by the 200-character limit.
    cut = 200 - len("...") - len("HTTP 503: ") - CUT_PADDING
    assert PARTIAL_MIN_CHARS <= cut < len(TOKEN)
    assert any(TOKEN in d for d in details) and any(d.endswith(TOKEN[:cut] + "...") for d in details)
    r = Redactor({TOKEN_ENV: TOKEN, COOKIE_ENV: COOKIE})
    key = StepKey("t", "sequential", len(details), 1, 0.0, 0)
    with RunWriter(tmp_path / "run", "run", SUMMARY_COLUMNS, redactor=r) as writer:
        writer.write_meta(
            RunMeta.from_json(
                {
                    "run_id": "run",
                    "target_errors": {"t": f"start_failed: HTTP 401 {TOKEN}"},
                    "targets": {"t": {"note": quote(TOKEN, safe="")}},
                }
            )
        )
        writer.append_summary(
            {"target": "t", "mode": "sequential", "n_requests": 1, "trial": 0, "total_s": 1.0, "flags": f"x {TOKEN}"}
        )
        writer.append_requests(key, [_record(i, d) for i, d in enumerate(details)])
    for path in (tmp_path / "run").iterdir():
        assert not count_canaries(_readable(path)), path
    run = load_run(tmp_path / "run")
    assert f"[REDACTED:{TOKEN_ENV}]" in " ".join(run.requests["error_detail"])
    assert run.meta.details["target_errors"]["t"] == f"start_failed: HTTP 401 [REDACTED:{TOKEN_ENV}]"
    write_json_atomic(tmp_path / "x.json", {"e": [TOKEN, 1.5]}, r)
    assert json.loads((tmp_path / "x.json").read_text()) == {"e": [f"[REDACTED:{TOKEN_ENV}]", 1.5]}


def test_reading_an_old_leaky_run_redacts_what_reports_see(tmp_path) -> None:
    key = StepKey("t", "sequential", 1, 1, 0.0, 0)
    with RunWriter(tmp_path / "old", "old", SUMMARY_COLUMNS) as writer:  # no redactor: as before the fix
        writer.write_meta(RunMeta.from_json({"run_id": "old", "target_errors": {"t": TOKEN}}))
        writer.append_summary({"target": "t", "mode": "sequential", "n_requests": 1, "trial": 0, "total_s": 1.0})
        writer.append_requests(key, [_record(0, f"HTTP 401: {TOKEN}")])
    run = load_run(tmp_path / "old", redactor=Redactor({"T": TOKEN}))
    assert run.meta.details["target_errors"]["t"] == "[REDACTED:T]"
    assert list(run.requests["error_detail"]) == ["HTTP 401: [REDACTED:T]"]


def test_log_files_are_redacted_in_place_and_binaries_left_alone(tmp_path) -> None:
    logs = tmp_path / "logs" / "t"
    logs.mkdir(parents=True)
    (logs / "a.log").write_text(f"GET /healthz Authorization: Bearer {TOKEN}\nlast line {TOKEN[:9]}")
    (logs / "clean.log").write_text("nothing here\n")
    png = b"\x89PNG\r\n\x1a\n\0\0" + TOKEN.encode()
    (logs / "fig.png").write_bytes(png)
    changed = redact_tree(tmp_path / "logs", Redactor({"T": TOKEN}))
    assert changed == [logs / "a.log"]
    assert (logs / "a.log").read_text() == "GET /healthz Authorization: Bearer [REDACTED:T]\nlast line [REDACTED:T]"
    assert (logs / "fig.png").read_bytes() == png
    assert not redact_file(logs / "clean.log", Redactor({"T": TOKEN}))


def test_console_redacts_messages_tables_and_errors(capsys) -> None:
    out = io.StringIO()
    console = Console(file=out)
    console.redactor = Redactor({"T": TOKEN})
    console.info(f"info {TOKEN}")
    console.warn(f"warn {TOKEN}")
    console.error(f"error {quote(TOKEN, safe='')}")
    console.print(f"print {TOKEN}")
    console.table(f"title {TOKEN}", ["a", "b"], [[TOKEN, 1]])
    with console.progress(f"p {TOKEN}") as bar:
        bar.update(1, 2, f"label {TOKEN}")
    captured = capsys.readouterr()
    text = out.getvalue() + captured.err + captured.out
    assert not count_canaries(text.encode()), text
    assert text.count("[REDACTED:T]") >= 5


def _flask_target(tmp_path: Path, endpoint: str, **table: object):
    spec = TargetSpec(
        "echo", "flask", {"endpoint": endpoint, "bearer_token_env": TOKEN_ENV, "cookie_env": COOKIE_ENV, **table}
    )
    return build_target(spec, TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path / "logs", ready_timeout_s=5))


@pytest.fixture
def canary_env(monkeypatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(COOKIE_ENV, COOKIE)


def test_readiness_failure_that_echoes_is_redacted(tmp_path, canary_env) -> None:
    with EchoServer() as echo:
        target = _flask_target(tmp_path, echo.url, health_path="/deny", ready_timeout_s=0.3)
        with pytest.raises(TargetError) as info:
            asyncio.run(target.start())
    message = str(info.value)
    assert echo.sent and echo.sent[0].authorization == f"Bearer {TOKEN}" and echo.sent[0].cookie == COOKIE
    assert "HTTP 401 not ready" in message and f"[REDACTED:{TOKEN_ENV}]" in message, message
    assert not count_canaries(message.encode()), message


def test_page_proxy_never_passes_an_echoed_secret(tmp_path, canary_env) -> None:
    """JSON, text and HTML answers, 2xx/4xx/5xx, passed headers, config.json: nothing echoed gets through."""
    from webui.server import create_app

    config = _config({"echo": {"adapter": "flask", "bearer_token_env": TOKEN_ENV, "cookie_env": COOKIE_ENV}})
    received: list[bytes] = []
    answers: list[httpx.Response] = []
    with EchoServer() as echo:
        target = _flask_target(tmp_path, echo.url)
        app = create_app(target, redactor=redactor_for(config))
        with serve_app(app) as page, httpx.Client(timeout=30, trust_env=False) as client:
            for path in ("", "config.json", "digit.js", "nope"):
                resp = client.get(page + path)
                received.append(str(dict(resp.headers)).encode() + resp.content)
            for _ in range(2 * len(VARIANTS)):
                resp = client.post(page + "api/predict", files={"file": ("d.png", b"\x89PNG fake", "image/png")})
                answers.append(resp)
                received.append(str(dict(resp.headers)).encode() + resp.content)
    assert {200, 401, 403, 500, 502, 503} <= {a.status_code for a in answers}
    assert all(s.authorization == f"Bearer {TOKEN}" and s.cookie == COOKIE for s in echo.sent)
    everything = b"\n".join(received)
    assert not count_canaries(everything), count_canaries(everything)
    assert f"[REDACTED:{TOKEN_ENV}]".encode() in everything and f"[REDACTED:{COOKIE_ENV}]".encode() in everything
    # A valid answer stays valid JSON with its prediction; only the echo is replaced.
    first = answers[0].json()
    assert first["predictions"] == [3] and first["you_sent"] == {
        "authorization": f"Bearer [REDACTED:{TOKEN_ENV}]",
        "cookie": f"[REDACTED:{COOKIE_ENV}]",
    }
    assert answers[0].headers["X-Replica"] == f"[REDACTED:{TOKEN_ENV}]"
    assert "set-cookie" not in answers[0].headers and "www-authenticate" not in answers[0].headers


# --- end to end: every file `bench` writes, everything the page receives ------------------


def _e2e_config(tmp_path: Path, trained_model, echo_url: str) -> Path:
    creds = f'bearer_token_env = "{TOKEN_ENV}"\ncookie_env = "{COOKIE_ENV}"\n'
    extra = (
        f'\n[targets.echo-flask]\nadapter = "flask"\nendpoint = "{echo_url}"\n{creds}'
        f'\n[targets.echo-kserve]\nadapter = "kserve"\nprotocol = "v1"\nendpoint = "{echo_url}"\n{creds}'
        f'\n[targets.echo-deny]\nadapter = "k8s"\nendpoint = "{echo_url}"\nhealth_path = "/deny"\n'
        f"ready_timeout_s = 0.5\n{creds}"
    )
    return e2e_config(tmp_path, trained_model, extra)


def _env() -> dict[str, str]:
    return {**os.environ, TOKEN_ENV: TOKEN, COOKIE_ENV: COOKIE, "PYTHONPATH": str(REPO)}


def _bench(config: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=_env(),
    )


def _page_session(config: Path, target: str) -> tuple[list[bytes], str, int]:
    """Start `bench ui`, fetch the page and POST every echo variant twice; Ctrl-C it.

    Returns (everything the page received, the process's stdout+stderr, its exit code).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "--config", str(config), "ui", "--target", target, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=_env(),
    )
    received: list[bytes] = []
    try:
        url = ""
        lines = []
        for line in proc.stdout:
            lines.append(line)
            match = re.search(r"digit page for \S+: (http://\S+)", line)
            if match:
                url = match.group(1)
                break
        assert url, "".join(lines) + proc.stderr.read()
        with httpx.Client(timeout=30, trust_env=False) as client:
            for path in ("", "config.json", "digit.js", "mnist.js", "digit.css", "missing"):
                resp = client.get(url + path)
                received.append(str(dict(resp.headers)).encode() + resp.content)
            for _ in range(2 * len(VARIANTS)):
                resp = client.post(url + "api/predict", files={"file": ("d.png", b"\x89PNG fake", "image/png")})
                received.append(str(dict(resp.headers)).encode() + resp.content)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    return received, "".join(lines) + out + err, proc.returncode


@pytest.mark.slow
def test_no_file_servebench_writes_and_nothing_the_page_gets_holds_a_canary(tmp_path, trained_model) -> None:
    outputs: dict[str, str] = {}
    with EchoServer() as echo:
        config = _e2e_config(tmp_path, trained_model, echo.url)
        run = _bench(
            config,
            "run",
            "echo-flask",
            "echo-kserve",
            "echo-deny",
            "--requests",
            "9,18",
            "--modes",
            "sequential,concurrent",
            "--run-id",
            "canary",
        )
        outputs["run"] = run.stdout + run.stderr
        assert run.returncode == 1, outputs["run"]  # echoes are errors, and echo-deny never got ready
        for name, args in {
            "report": ("report", "canary"),
            "compare": ("compare", "canary", "canary", "--format", "md"),
            "targets": ("targets",),
        }.items():
            proc = _bench(config, *args)
            outputs[name] = proc.stdout + proc.stderr
            assert proc.returncode == 0, outputs[name]
        page, outputs["ui"], code = _page_session(config, "echo-flask")
        assert code == 0, outputs["ui"]
        deny = _bench(config, "ui", "--target", "echo-deny", "--port", "0")
        outputs["ui-deny"] = deny.stdout + deny.stderr
        assert deny.returncode == 1 and "not ready" in outputs["ui-deny"], outputs["ui-deny"]

    # Count every canary form in every file written and everything received.
    written = [
        p
        for d in ("results", "reports", ".cache")
        if (tmp_path / d).is_dir()
        for p in sorted((tmp_path / d).rglob("*"))
        if p.is_file()
    ]
    assert any(p.name == "report.html" for p in written) and any(p.name == "requests.csv.gz" for p in written)
    counts: dict[str, dict[str, int]] = {}
    for path in written:
        counts[str(path.relative_to(tmp_path))] = dict(count_canaries(_readable(path)))
    for name, text in outputs.items():
        counts[f"console:{name}"] = dict(count_canaries(text.encode()))
    for i, data in enumerate(page):
        counts[f"page:answer-{i}"] = dict(count_canaries(data))
    by_kind: Counter[str] = Counter()
    files_by_kind: Counter[str] = Counter()
    for where, found in counts.items():
        kind = where.split(":")[0] if ":" in where else _kind(Path(where))
        files_by_kind[kind] += 1
        by_kind[kind] += sum(found.values())
    report = {
        "files_by_kind": dict(files_by_kind),
        "canary_count_by_kind": dict(by_kind),
        "nonzero": {k: v for k, v in counts.items() if v},
    }
    out_dir = REPO / "test-output"  # git-ignored; the counts per file type, for the record
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "redaction-canary-counts.json").write_text(json.dumps(report, indent=2) + "\n")
    assert not report["nonzero"], report["nonzero"]

    # The endpoint really got the canaries, and really echoed them back: the labels prove it.
    assert echo.sent and {s.authorization for s in echo.sent} == {f"Bearer {TOKEN}"}
    assert {s.cookie for s in echo.sent} == {COOKIE}
    requests_text = _decompressed(tmp_path / "results" / "canary" / "requests.csv.gz").decode()
    for label in (f"[REDACTED:{TOKEN_ENV}]", f"[REDACTED:{COOKIE_ENV}]"):
        assert label in requests_text
        assert label.encode() in b"\n".join(page)
    meta = json.loads((tmp_path / "results" / "canary" / "meta.json").read_text())
    assert f"[REDACTED:{TOKEN_ENV}]" in meta["target_errors"]["echo-deny"]
    assert f"[REDACTED:{TOKEN_ENV}]" in outputs["ui-deny"]
    assert "x" * 20 + "[REDACTED:" in requests_text  # the token cut at 200 characters went too
