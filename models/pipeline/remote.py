"""Submitting the compiled pipeline to a real Kubeflow Pipelines API with ``kfp.Client``.

Why the real client and not hand-written REST calls: ``kfp.Client`` is what the study's
notebooks used (``kfp.Client()`` inside MiniKF) and what users will compare against; its
request shapes (experiment lookup by filter, ``runs`` body with the inline IR
``pipeline_spec``) are the KFP SDK's, not our guess.  Tests run this exact code against a
fake KFP REST server on loopback that serves a recorded ``GET /apis/v2beta1/runs/{id}``
answer (``tests/support/kfp_fake.py``); no live Kubeflow was reachable while writing it.

Credentials: the token and cookie come from environment variables named in the target's
table (:class:`models.pipeline.kfp_settings.KfpSettings`) and are handed to ``kfp.Client``
(``existing_token`` -> ``Authorization: Bearer``, ``cookies`` -> ``Cookie``).  They are
excluded from ``repr`` and every error text passes through :meth:`KfpAccess.redact`
(servebench's one redaction rule, :class:`ground.redactor.Redactor`).
``kfp.Client`` prints experiment/run links to stdout; they are captured and returned
(library code never prints).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ground.redactor import Redactor
from models.pipeline.kfp_run import FINISHED_STATES
from models.pipeline.kfp_settings import KfpSettings, normalize_kfp_endpoint

__all__ = ["KfpAccess", "KfpError", "KfpSession", "compile_for_cluster", "open_kfp", "preflight"]

#: Per-HTTP-call limits (seconds): a hung API server must not hang the bounded wait.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0


class KfpError(RuntimeError):
    """The KFP API could not be reached or refused a call; the message holds no secret."""


@dataclass(frozen=True)
class KfpAccess:
    """Resolved access to a KFP API.  ``token`` / ``cookie`` are secrets: never logged or stored."""

    host: str
    namespace: str = ""
    experiment: str = "servebench"
    verify_tls: bool = True
    token: str = field(default="", repr=False)
    cookie: str = field(default="", repr=False)
    #: the token and cookie labelled by their variable names (``[REDACTED:KFP_TOKEN]``)
    redactor: Redactor = field(default_factory=Redactor, repr=False)

    def __post_init__(self) -> None:
        if not self.redactor and (self.token or self.cookie):  # built without open_kfp: generic labels
            object.__setattr__(self, "redactor", Redactor({"kfp_token": self.token, "kfp_cookie": self.cookie}))

    def redact(self, text: str) -> str:
        """``text`` with the token and cookie (and their encodings) replaced."""
        return self.redactor.redact(text)


def _env(target: str, key: str, var: str, environ: Mapping[str, str]) -> str:
    value = environ.get(var, "")
    if not value:
        raise KfpError(f"target {target!r}: environment variable {var} (named by {key}) is not set or empty")
    if any(c in value for c in "\r\n"):
        raise KfpError(f"target {target!r}: environment variable {var} (named by {key}) contains a newline")
    return value


def open_kfp(
    target: str, settings: KfpSettings, *, verify_tls: bool = True, environ: Mapping[str, str] | None = None
) -> KfpAccess:
    """Read the credentials named by ``settings`` from the environment; errors name the VARIABLE."""
    if not settings.kfp_endpoint:
        raise KfpError(f"target {target!r} has no kfp_endpoint")
    env = os.environ if environ is None else environ
    token = _env(target, "kfp_token_env", settings.kfp_token_env, env) if settings.kfp_token_env else ""
    cookie = _env(target, "kfp_cookie_env", settings.kfp_cookie_env, env) if settings.kfp_cookie_env else ""
    redactor = Redactor({settings.kfp_token_env or "kfp_token": token, settings.kfp_cookie_env or "kfp_cookie": cookie})
    return KfpAccess(
        host=normalize_kfp_endpoint(settings.kfp_endpoint),
        namespace=settings.kfp_namespace,
        experiment=settings.kfp_experiment,
        verify_tls=verify_tls,
        token=token,
        cookie=cookie,
        redactor=redactor,
    )


def compile_for_cluster(pipeline_func: Callable[..., Any], path: Path, image: str = "") -> dict[str, Any]:
    """Compile ``pipeline_func`` to IR YAML at ``path``; with ``image``, every step runs in it.

    Why the override: the components are compiled with a plain ``python`` base image,
    which lacks servebench; on a cluster each step needs an image with servebench
    installed.  Returns the IR document as written.
    """
    import yaml
    from kfp import compiler

    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func, package_path=str(path))
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if image:
        for executor in doc["deploymentSpec"]["executors"].values():
            executor["container"]["image"] = image
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return doc


def _describe_error(exc: BaseException) -> str:
    import kfp_server_api

    if isinstance(exc, kfp_server_api.ApiException):
        body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
        return f"HTTP {exc.status} {exc.reason or ''}".rstrip() + (f": {body.strip()[:300]}" if body.strip() else "")
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def preflight(access: KfpAccess, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """One ``GET /apis/v2beta1/healthz`` with the credentials, redirects NOT followed.

    Why before ``kfp.Client``: the client's own health check retries 5 times, 5 s apart,
    on any HTTP error (25 s for a wrong token), and it follows redirects, so an expired
    Dex/oauth2-proxy session turns into a login page parsed as JSON.  Here a 401/403 or a
    redirect is reported at once, naming what to fix.
    """
    import ssl
    import urllib.error
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    headers = {"Accept": "application/json"}
    if access.token:
        headers["Authorization"] = f"Bearer {access.token}"
    if access.cookie:
        headers["Cookie"] = access.cookie
    handlers: list[Any] = [_NoRedirect()]
    if not access.verify_tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    url = f"{access.host}/apis/v2beta1/healthz"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=timeout_s) as resp:
            resp.read(65536)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            where = exc.headers.get("Location", "?").split("?")[0]
            hint = "redirected to a login page: the session cookie (kfp_cookie_env) is missing or expired"
            raise KfpError(access.redact(f"KFP API at {access.host}: HTTP {exc.code} {hint} (-> {where})")) from None
        hint = {401: " (check kfp_token_env / kfp_cookie_env)", 403: " (the credentials lack access)"}.get(exc.code, "")
        raise KfpError(
            access.redact(f"KFP API at {access.host}: GET {url} answered HTTP {exc.code} {exc.reason}{hint}")
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KfpError(access.redact(f"KFP API at {access.host}: cannot reach {url}: {reason}")) from None


class KfpSession:
    """One ``kfp.Client`` for one API: submit a compiled package, read and wait for a run."""

    def __init__(self, access: KfpAccess) -> None:
        self.access = access
        self.links: list[str] = []  # what kfp.Client printed (experiment and run links)
        preflight(access)
        self._client = self._call("connect", self._make_client)

    def _make_client(self) -> Any:
        import kfp
        import urllib3

        a = self.access
        client = kfp.Client(
            host=a.host,
            namespace=a.namespace or "kubeflow",
            existing_token=a.token or None,
            cookies=a.cookie or None,
            verify_ssl=a.verify_tls,
        )
        # kfp.Client takes no timeout; the pool of its (shared) ApiClient does.
        pool = getattr(getattr(getattr(client._run_api, "api_client", None), "rest_client", None), "pool_manager", None)
        if pool is not None:
            pool.connection_pool_kw["timeout"] = urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S)
        return client

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        out = io.StringIO()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(out):
                warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
                return fn()
        except KfpError:
            raise
        except Exception as exc:
            raise KfpError(
                self.access.redact(f"KFP API at {self.access.host}: {what} failed: {_describe_error(exc)}")
            ) from None
        finally:
            self.links.extend(line.strip() for line in self.access.redact(out.getvalue()).splitlines() if line.strip())

    def submit(self, package: Path, *, arguments: Mapping[str, Any], run_name: str) -> str:
        """Create a run from the compiled package (caching off: every step really runs); its run id."""
        a = self.access
        result = self._call(
            "create run",
            lambda: self._client.create_run_from_pipeline_package(
                pipeline_file=str(package),
                arguments=dict(arguments),
                run_name=run_name,
                experiment_name=a.experiment,
                namespace=a.namespace or None,
                enable_caching=False,
            ),
        )
        return str(result.run_id)

    def get_run(self, run_id: str) -> Any:
        """The run (``kfp_server_api.V2beta1Run``) as the API reports it now."""
        return self._call("get run", lambda: self._client.get_run(run_id))

    def wait(
        self,
        run_id: str,
        *,
        timeout_s: float,
        poll_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> tuple[Any, bool]:
        """Poll until the run finished or ``timeout_s`` passed: (last run read, timed_out)."""
        deadline = clock() + timeout_s
        while True:
            run = self.get_run(run_id)
            if str(run.state or "").upper() in FINISHED_STATES:
                return run, False
            remaining = deadline - clock()
            if remaining <= 0:
                return run, True
            sleep(min(poll_s, remaining))
