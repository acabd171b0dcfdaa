"""Remote mode, shared by every adapter: endpoint URL, Host header, credentials, readiness.

Why shared: a remote target (a real Kubernetes LoadBalancer, an Istio ingress in front of a
KServe InferenceService) differs from a local stand-in only in *where* requests go and
*which headers* they carry.  Every adapter gets the same rules here:

* settings name environment *variables* (``bearer_token_env``, ``cookie_env``), never
  secret values, so bench.toml can be committed;
* the values are read once at ``start()``; a missing variable is an error naming the
  variable, never showing a value;
* ``describe()`` and error messages never include the values: ``RemoteAccess.redact``
  applies servebench's one redaction rule (:class:`ground.redactor.Redactor`) to any answer
  text that might echo them back, before that text is cut short;
* ``start()`` only checks readiness and fails naming the URL and what it answered.

Every field ending in ``_env`` names a secret-holding variable (:mod:`targets.secrets`), so
``bench`` redacts these values from everything it writes, whichever sink the text reaches.

Adapters put :class:`RemoteSettings` fields into their own ``Settings`` by inheriting it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ground.redactor import Redactor
from targets.base import TargetError

__all__ = [
    "RemoteAccess",
    "RemoteSettings",
    "check_remote_ready",
    "normalize_endpoint",
    "open_remote",
    "public_remote_settings",
]


def normalize_endpoint(url: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """Validate an ``endpoint`` setting: scheme://host[:port][/prefix], no trailing slash.

    ``schemes``: those the adapter speaks (http and https by default; the kserve adapter
    adds grpc and grpcs for ``protocol = "grpc-v2"``).
    """
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        spelled = " or ".join(f"{s}://" for s in schemes)
        raise ValueError(f"endpoint must be an {spelled} URL with a host, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"endpoint must not have a query or fragment, got {url!r}")
    if parts.username or parts.password:
        raise ValueError("endpoint must not embed credentials; use bearer_token_env or cookie_env")
    return url.rstrip("/")


@dataclass(frozen=True)
class RemoteSettings:
    """The remote-mode keys every adapter's table accepts (inherit this dataclass).

    ``endpoint``: base URL of an existing deployment; "" = start a local stand-in.
    ``host_header``: Host sent with every request (Istio ingress routing), "" = none.
    ``bearer_token_env`` / ``cookie_env``: *names* of environment variables holding an
    ``Authorization: Bearer`` token / a ``Cookie`` header value (e.g. Kubeflow's authservice
    session cookie); "" = not used.
    ``verify_tls``: check the server certificate for https endpoints.
    ``ready_timeout_s``: how long ``start()`` waits for the target (0 = the run's default).
    """

    #: URL schemes ``endpoint`` may use (an adapter speaking more overrides it).
    endpoint_schemes: ClassVar[tuple[str, ...]] = ("http", "https")

    endpoint: str = ""
    host_header: str = ""
    bearer_token_env: str = ""
    cookie_env: str = ""
    verify_tls: bool = True
    ready_timeout_s: float = 0.0

    def __post_init__(self) -> None:
        if self.endpoint:
            normalize_endpoint(self.endpoint, self.endpoint_schemes)
        for key in ("bearer_token_env", "cookie_env"):
            value = getattr(self, key)
            if value and not value.replace("_", "").isalnum():
                raise ValueError(f"{key} must be an environment variable NAME (letters, digits, _), got {value!r}")
        if any(c in self.host_header for c in "\r\n /"):
            raise ValueError(f"host_header must be a bare host name, got {self.host_header!r}")
        if self.ready_timeout_s < 0:
            raise ValueError("ready_timeout_s must be >= 0")

    @property
    def is_remote(self) -> bool:
        return bool(self.endpoint)


@dataclass(frozen=True)
class RemoteAccess:
    """Resolved access to an endpoint: URL, headers to send, TLS checking.

    ``headers`` may hold secrets: it is excluded from ``repr`` and must never be logged.
    ``redactor`` holds the secret values, labelled by their variable names.
    """

    base_url: str
    headers: Mapping[str, str] = field(repr=False)
    verify_tls: bool = True
    redactor: Redactor = field(default_factory=Redactor, repr=False)

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced by ``[REDACTED:VARIABLE]`` (for error messages)."""
        return self.redactor.redact(text)


def _env_value(target: str, key: str, var: str, environ: Mapping[str, str]) -> str:
    value = environ.get(var)
    if value is None or value == "":
        raise TargetError(f"target {target!r}: environment variable {var} (named by {key}) is not set or empty")
    if any(c in value for c in "\r\n"):
        raise TargetError(f"target {target!r}: environment variable {var} (named by {key}) contains a newline")
    return value


def open_remote(
    target: str,
    settings: RemoteSettings,
    *,
    base_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> RemoteAccess:
    """Read credentials from the environment and build the headers for ``settings``.

    ``base_url`` overrides ``settings.endpoint`` (used when a local stand-in is reached with
    the same header rules). Raises :class:`TargetError` naming a missing VARIABLE.
    """
    env = os.environ if environ is None else environ
    schemes = getattr(settings, "endpoint_schemes", ("http", "https"))
    url = normalize_endpoint(base_url if base_url is not None else settings.endpoint, schemes)
    headers: dict[str, str] = {}
    secrets: dict[str, str] = {}
    if settings.host_header:
        headers["Host"] = settings.host_header
    if settings.bearer_token_env:
        token = _env_value(target, "bearer_token_env", settings.bearer_token_env, env)
        headers["Authorization"] = f"Bearer {token}"
        secrets[settings.bearer_token_env] = token
    if settings.cookie_env:
        cookie = _env_value(target, "cookie_env", settings.cookie_env, env)
        headers["Cookie"] = cookie
        secrets[settings.cookie_env] = cookie
    return RemoteAccess(base_url=url, headers=headers, verify_tls=settings.verify_tls, redactor=Redactor(secrets))


#: Characters of a readiness answer kept for the error message (after redaction).
ANSWER_LIMIT = 300


def _redacting_probe(url: str, access: RemoteAccess, ok_statuses: tuple[int, ...]) -> Any:
    """``GET url`` with the access headers; (ready, answer) with the answer redacted, then cut.

    Why not :func:`targets.process.http_probe`: it cuts the body to 300 characters first,
    and a cut through an echoed secret would leave a piece that no longer matches it.
    Here the whole body is redacted before it is shortened.
    """

    async def probe() -> tuple[bool, str]:
        import httpx  # lazy: keeps `bench targets` light

        try:
            async with httpx.AsyncClient(verify=access.verify_tls, timeout=2.0, trust_env=False) as client:
                resp = await client.get(url, headers=dict(access.headers))
        except httpx.HTTPError as exc:
            return False, access.redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        text = access.redact(resp.text).strip()[:ANSWER_LIMIT].strip()
        return resp.status_code in ok_statuses, f"HTTP {resp.status_code} {text}".strip()

    return probe


async def check_remote_ready(
    target: str,
    access: RemoteAccess,
    health_path: str,
    *,
    timeout_s: float,
    ok_statuses: tuple[int, ...] = (200,),
    probe: Any = None,
) -> str:
    """Poll ``GET base_url + health_path`` with the access headers until it answers OK.

    ``probe``: an adapter's own readiness check instead of the GET (a
    :data:`targets.process.Probe`), for endpoints that are not HTTP.

    Raises :class:`TargetError` naming the target, the URL and what it answered (secrets
    redacted) after ``timeout_s``.
    """
    from targets.process import wait_ready

    url = access.base_url + health_path
    if probe is None:  # else the adapter's own check (e.g. gRPC ModelReady), answers redacted here
        probe = _redacting_probe(url, access, ok_statuses)
    else:
        url = access.base_url
    try:
        return await wait_ready(probe, timeout=timeout_s, what=f"remote target {target!r} at {url}")
    except TargetError as exc:
        raise TargetError(access.redact(str(exc))) from None


def public_remote_settings(settings: RemoteSettings) -> dict[str, Any]:
    """Remote-mode facts safe to show or store: URL, Host, variable NAMES, TLS flag."""
    facts: dict[str, Any] = {}
    if settings.endpoint:
        facts["endpoint"] = settings.endpoint
    if settings.host_header:
        facts["host_header"] = settings.host_header
    if settings.bearer_token_env:
        facts["bearer_token_env"] = settings.bearer_token_env
    if settings.cookie_env:
        facts["cookie_env"] = settings.cookie_env
    if settings.endpoint:
        facts["verify_tls"] = settings.verify_tls
    return facts
