"""Kubeflow Pipelines keys of a target's table: where its KFP API is and how to log in.

Why on the *target*: in the study each platform (MiniKF on GCP, Kubeflow on IBM Cloud) ran
both the pipeline and the KServe endpoint, so a ``kubeflow-*`` target names its cluster's
KFP API beside its serving endpoint, and ``bench run pipeline --target NAME`` submits there.
The adapter's ``Settings`` inherit :class:`KfpSettings`; ``ground.tables.parse_table``
then reports a misspelt key or a wrong type as ``targets.NAME.KEY: problem``.

Why the module lives in ``models/pipeline/`` although the keys sit in a target's table:
both the pipeline submission (:mod:`models.pipeline.remote`) and the ``kserve`` adapter's
settings need it, and the target layer may import the model layer below it, not the
other way round.

As for serving credentials (:mod:`targets.remote`), the table names environment
*variables*, never secret values: ``kfp_token_env`` (sent as ``Authorization: Bearer``,
e.g. a GCP/IBM IAM access token) and ``kfp_cookie_env`` (a ``Cookie`` header value, e.g.
Kubeflow's ``authservice_session=...`` behind Dex).

Only ``https://`` endpoints, or ``http://`` to a loopback address (a ``kubectl
port-forward``): a token must never cross a network in clear text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["KfpSettings", "is_loopback_host", "normalize_kfp_endpoint"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_kfp_endpoint(url: str) -> str:
    """Validate ``kfp_endpoint``: https://host[:port][/prefix] or http:// to loopback; no trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"kfp_endpoint must be an https:// URL with a host, got {url!r}")
    if parts.username or parts.password:
        raise ValueError("kfp_endpoint must not embed credentials; use kfp_token_env or kfp_cookie_env")
    if parts.query or parts.fragment:
        raise ValueError(f"kfp_endpoint must not have a query or fragment, got {url!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"kfp_endpoint must use https:// (http:// only to a loopback address such as a "
            f"kubectl port-forward), got {url!r}"
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class KfpSettings:
    """The KFP keys (all optional; ``kfp_endpoint = ""`` means no pipeline submission).

    ``kfp_endpoint``: base URL of the KFP API (``https://kubeflow.example.com/pipeline``).
    ``kfp_token_env`` / ``kfp_cookie_env``: NAMES of environment variables with a bearer
    token / a Cookie header value ("" = not used; MiniKF in-cluster needed neither).
    ``kfp_namespace``: profile namespace of a multi-user Kubeflow ("" = single-user).
    ``kfp_experiment``: experiment the runs are filed under.
    ``kfp_image``: container image for every pipeline step ("" = the compiled one, which
    lacks servebench); it must contain servebench and its dependencies.
    ``kfp_timeout_s``: how long ``bench run pipeline --target`` waits for the run.
    ``kfp_poll_s``: seconds between two reads of the run's state.
    """

    kfp_endpoint: str = ""
    kfp_token_env: str = ""
    kfp_cookie_env: str = ""
    kfp_namespace: str = ""
    kfp_experiment: str = "servebench"
    kfp_image: str = ""
    kfp_timeout_s: float = 3600.0
    kfp_poll_s: float = 10.0

    def check_kfp(self) -> None:
        """Raise ValueError naming the key; called from the adapter's ``__post_init__``."""
        if self.kfp_endpoint:
            normalize_kfp_endpoint(self.kfp_endpoint)
        for key in ("kfp_token_env", "kfp_cookie_env"):
            value = getattr(self, key)
            if value and not _ENV_NAME.fullmatch(value):
                raise ValueError(f"{key} must be an environment variable NAME (letters, digits, _), got {value!r}")
        if self.kfp_namespace and not _DNS_LABEL.fullmatch(self.kfp_namespace):
            raise ValueError(f"kfp_namespace must be a lowercase DNS label, got {self.kfp_namespace!r}")
        if not self.kfp_experiment.strip() or any(c in self.kfp_experiment for c in "\r\n"):
            raise ValueError(f"kfp_experiment must be a non-empty single-line name, got {self.kfp_experiment!r}")
        if any(c.isspace() or c in "\"'`$" for c in self.kfp_image):
            raise ValueError(f"kfp_image must be an image reference without spaces or quotes, got {self.kfp_image!r}")
        if not self.kfp_timeout_s > 0:
            raise ValueError(f"kfp_timeout_s must be > 0, got {self.kfp_timeout_s}")
        if not self.kfp_poll_s > 0:
            raise ValueError(f"kfp_poll_s must be > 0, got {self.kfp_poll_s}")

    @property
    def has_kfp(self) -> bool:
        return bool(self.kfp_endpoint)

    def public_kfp_settings(self) -> dict[str, object]:
        """KFP facts safe to store: URL, host, variable NAMES, namespace, experiment, image."""
        if not self.kfp_endpoint:
            return {}
        facts: dict[str, object] = {
            "kfp_endpoint": self.kfp_endpoint,
            "kfp_host": urlsplit(self.kfp_endpoint).hostname,
            "kfp_experiment": self.kfp_experiment,
        }
        for key in ("kfp_token_env", "kfp_cookie_env", "kfp_namespace", "kfp_image"):
            if getattr(self, key):
                facts[key] = getattr(self, key)
        return facts
