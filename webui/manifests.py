"""`bench manifests ui`: the digit page as the study deployed it (section 5.4).

The study "dockerized the html file and hosted it using nginx", ran it as one Pod and
exposed it with a Service of type LoadBalancer.  This renders exactly that: a Dockerfile
(``FROM nginx``, the page's files and a ``config.json``), an nginx server block that serves
the page and proxies ``/api/predict`` to the model's in-cluster URL, the Pod and the
Service.  By default that URL is the cluster-local address of the first ``kserve``
target's InferenceService, so the page runs the KServe V1 path it runs locally.

Why nginx proxies instead of the page calling the model: the model service is
cluster-local (not reachable from a browser) and has no CORS headers; the page only ever
talks to its own origin, locally (:mod:`webui.server`) and on the cluster alike.
Why the upstream goes through a variable with a ``resolver``: nginx resolves a literal
``proxy_pass`` host once at start and refuses to start if the InferenceService does not
exist yet; with a variable the Pod starts anyway and answers 502 JSON until it exists.

YAML is produced with ``yaml.safe_dump`` from dicts and every value that lands in the
nginx or Docker text is checked first, so no setting can break a document's structure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import yaml

from targets.spec import TargetSpec
from webui.pageconfig import API_MODES, ApiMode, api_mode_for_url, page_config

__all__ = [
    "DEFAULT_IMAGE",
    "ManifestError",
    "build_context_files",
    "default_predict_url",
    "kserve_cluster_url",
    "render_ui_manifests",
]

DEFAULT_IMAGE = "servebench-digit-page:0.1.0"
DEFAULT_NAME = "digit-page"
#: The cluster DNS service, resolvable from any Pod (nginx re-resolves the upstream with it).
DEFAULT_RESOLVER = "kube-dns.kube-system.svc.cluster.local"
MAX_BODY_BYTES = 4 * 1024 * 1024
NGINX_IMAGE = "nginx:1.27-alpine"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SAFE = re.compile(r"^[A-Za-z0-9._~:/?#@!&'()*+,;=%\[\]-]+$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


class ManifestError(ValueError):
    """A setting cannot be rendered into a working manifest; the message names it."""


def kserve_cluster_url(model_name: str, namespace: str, protocol: str = "v1", raw_deployment: bool = False) -> str:
    """The in-cluster predict URL of an InferenceService.

    Serverless (Knative): ``http://<name>.<ns>.svc.cluster.local`` (the local gateway);
    RawDeployment: the predictor Service ``http://<name>-predictor.<ns>.svc.cluster.local``.
    """
    from targets.kserve.manifests import kserve_cluster_host  # the one spelling (also the load Job's)

    path = f"/v1/models/{model_name}:predict" if protocol == "v1" else f"/v2/models/{model_name}/infer"
    return f"http://{kserve_cluster_host(model_name, namespace, raw_deployment)}{path}"


def default_predict_url(targets: Mapping[str, TargetSpec]) -> str:
    """The first ``kserve`` target's cluster-local URL (KServe's defaults when there is none).

    ``targets``: the configured target tables (``BenchConfig.targets``), in file order.
    """
    from ground.tables import parse_table
    from targets.kserve.target import KServeSettings

    for name, spec in targets.items():
        if spec.adapter == "kserve":
            s = parse_table(KServeSettings, spec.settings, f"targets.{name}")
            return kserve_cluster_url(s.model_name, s.namespace, s.protocol, s.raw_deployment)
    s = KServeSettings()
    return kserve_cluster_url(s.model_name, s.namespace, s.protocol, s.raw_deployment)


def _check_url(url: str) -> tuple[str, str]:
    """``predict_url`` -> (host[:port], the URL); http(s), a host, no spaces/quotes/credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ManifestError(f"predict URL must be http:// or https:// with a host, got {url!r}")
    if parts.username or parts.password:
        raise ManifestError("predict URL must not embed credentials")
    if not _SAFE.match(url) or any(c in url for c in "\"'$;{}\\"):
        raise ManifestError(f"predict URL has characters nginx would misread (quotes, $, ;, braces, spaces): {url!r}")
    return parts.netloc, url


def _check(name: str, value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.match(value):
        raise ManifestError(f"{name} must be {what}, got {value!r}")
    return value


def _nginx_conf(*, predict_url: str, host: str, resolver: str, listen_port: int, html_root: str, api: ApiMode) -> str:
    limit = MAX_BODY_BYTES
    too_large = json.dumps({"error": f"body too large: the limit is {limit} bytes", "source": "proxy", "limit": limit})
    not_allowed = json.dumps({"error": "method not allowed: POST a photo or a predict body", "source": "proxy"})
    unreachable = json.dumps(
        {"error": f"the model service at {predict_url} is unreachable or did not answer in time", "source": "proxy"}
    )
    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return f"""\
# nginx server block of the servebench digit page (the study's section 5.4, Figure 19).
# Serves the page from {html_root} and proxies POST /api/predict to the model service:
#   {predict_url}
# (page API mode: {api}).  Rendered by `python -m bench manifests ui`; installed by the
# Dockerfile as /etc/nginx/conf.d/default.conf.
server {{
    listen {listen_port};
    server_name _;
    root {html_root};
    index index.html;
    client_max_body_size {limit};
    server_tokens off;

    add_header Content-Security-Policy "{csp}" always;
    add_header X-Content-Type-Options nosniff always;
    add_header Referrer-Policy no-referrer always;

    location = /config.json {{
        add_header Cache-Control no-store always;
        add_header Content-Security-Policy "{csp}" always;
        add_header X-Content-Type-Options nosniff always;
    }}

    location = /api/predict {{
        default_type application/json;
        if ($request_method != POST) {{
            add_header Allow POST always;
            return 405 '{not_allowed}';
        }}
        error_page 413 = @too_large;
        error_page 502 504 = @unreachable;

        # Re-resolved every 30 s, so the Pod starts before the InferenceService exists.
        resolver {resolver} valid=30s;
        set $predict_url "{predict_url}";
        proxy_pass $predict_url;
        proxy_set_header Host {host};
        # The page's origin credentials mean nothing to the model service: never forward them.
        proxy_set_header Cookie "";
        proxy_set_header Authorization "";
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_connect_timeout 5s;
        proxy_read_timeout 30s;
        proxy_hide_header Access-Control-Allow-Origin;
    }}

    location @too_large {{
        default_type application/json;
        return 413 '{too_large}';
    }}

    location @unreachable {{
        default_type application/json;
        return 502 '{unreachable}';
    }}
}}
"""


def _dockerfile(image: str, listen_port: int) -> str:
    return f"""\
# The servebench digit page as the study ran it: a static page served by nginx.
# Build context = the folder `python -m bench manifests ui -o DIR` wrote:
#   docker build -t {image} DIR && docker push {image}
FROM {NGINX_IMAGE}
COPY nginx.conf /etc/nginx/conf.d/default.conf
COPY static/ /usr/share/nginx/html/
COPY config.json /usr/share/nginx/html/config.json
EXPOSE {listen_port}
"""


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "servebench"}


def _pod(name: str, namespace: str, image: str, listen_port: int) -> dict[str, object]:
    def probe(delay: int) -> dict[str, object]:
        return {"httpGet": {"path": "/", "port": "http"}, "initialDelaySeconds": delay, "periodSeconds": 10}

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels(name)},
        "spec": {
            "containers": [
                {
                    "name": "nginx",
                    "image": image,
                    "ports": [{"name": "http", "containerPort": listen_port, "protocol": "TCP"}],
                    "readinessProbe": probe(2),
                    "livenessProbe": probe(10),
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "32Mi"},
                        "limits": {"cpu": "250m", "memory": "64Mi"},
                    },
                    "securityContext": {"allowPrivilegeEscalation": False},
                }
            ],
        },
    }


def _service(name: str, namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels(name)},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _yaml(comment: str, doc: dict[str, object]) -> str:
    header = "".join(f"# {line}\n" if line else "#\n" for line in comment.splitlines())
    return header + yaml.safe_dump(doc, sort_keys=False)


def render_ui_manifests(
    *,
    predict_url: str,
    api: ApiMode | None = None,
    name: str = DEFAULT_NAME,
    namespace: str = "default",
    image: str = DEFAULT_IMAGE,
    resolver: str = DEFAULT_RESOLVER,
    listen_port: int = 80,
    html_root: str = "/usr/share/nginx/html",
) -> dict[str, str]:
    """File name -> text: ``Dockerfile``, ``nginx.conf``, ``config.json``, ``pod.yaml``, ``service.yaml``.

    ``api`` defaults to what ``predict_url`` implies (:func:`webui.pageconfig.api_mode_for_url`).
    ``resolver``/``listen_port``/``html_root`` exist so the same nginx.conf can run outside
    a cluster (the tests run it under a local nginx); the defaults are for the Pod.
    """
    host, url = _check_url(predict_url)
    api = api or api_mode_for_url(url)
    if api not in API_MODES:
        raise ManifestError(f"api must be one of {', '.join(API_MODES)}, got {api!r}")
    _check("name", name, _DNS_LABEL, "a lowercase DNS label")
    _check("namespace", namespace, _DNS_LABEL, "a lowercase DNS label")
    _check("image", image, _IMAGE, "a container image reference")
    _check("resolver", resolver, _HOSTNAME, "a host name or address")
    _check("html_root", html_root, re.compile(r"^/[A-Za-z0-9._/-]*$"), "an absolute path")
    if not 0 < listen_port < 65536:
        raise ManifestError(f"listen_port must be a TCP port, got {listen_port}")
    config = page_config(
        target=name, adapter="nginx", api=api, where="cluster", upstream=url, max_upload_bytes=MAX_BODY_BYTES
    )
    where = f"kubectl apply -f pod.yaml -f service.yaml   (namespace {namespace})"
    return {
        "Dockerfile": _dockerfile(image, listen_port),
        "nginx.conf": _nginx_conf(
            predict_url=url, host=host, resolver=resolver, listen_port=listen_port, html_root=html_root, api=api
        ),
        "config.json": json.dumps(config, indent=1) + "\n",
        "pod.yaml": _yaml(
            f"The digit page's nginx Pod (the study used one plain Pod).\n{where}\nIt proxies /api/predict to {url}",
            _pod(name, namespace, image, listen_port),
        ),
        "service.yaml": _yaml(
            "A LoadBalancer Service in front of the page's Pod, as in the study (with one Pod a\n"
            "LoadBalancer is more than needed, but it gives the page a reachable address).\n"
            f"Open http://<EXTERNAL-IP>/ from `kubectl get service {name} -n {namespace}`.",
            _service(name, namespace),
        ),
    }


def build_context_files() -> dict[str, bytes]:
    """The page's static files under ``static/`` (the Dockerfile copies them into nginx)."""
    from webui.server import STATIC_DIR, STATIC_FILES

    return {f"static/{name}": (STATIC_DIR / name).read_bytes() for name in STATIC_FILES}
