"""Where a pod inside the cluster reaches a target: the address a load-generator Job uses.

Why its own module: the rendered manifests name the services (a k8s target's Service, a
KServe InferenceService), so the cluster-local DNS name follows from the same settings;
this is the one place that spells those names for clients (``bench manifests loadgen``).

* ``kserve``: the InferenceService's cluster-local host -- Serverless (Knative):
  ``<name>.<ns>.svc.cluster.local``, served by Knative's local gateway (the address KServe
  reports in ``status.address.url``); RawDeployment: the predictor Service
  ``<name>-predictor.<ns>.svc.cluster.local`` (port 80 to the container's 8080).  No Host
  header: the URL's host is the routing host.  The Istio ingress route (what an outside
  client takes) is documented as an alternative in docs/loadgen-in-cluster.md.
* ``k8s``: the Service's cluster DNS name and port (``<name>.<ns>.svc.cluster.local``):
  kube-proxy's ClusterIP path to the pods, not the LoadBalancer.
* anything else: the target's configured ``endpoint`` (a bare-metal host such as the
  study's linserv is not in the cluster; the Job then loads it from the cluster's network).

An adapter a user adds can answer for itself with a ``cluster_endpoint()`` method.
"""

from __future__ import annotations

from dataclasses import dataclass

from targets.base import Target
from targets.manifests import dns_label

__all__ = ["CLUSTER_DOMAIN", "ClusterEndpoint", "cluster_endpoint", "kserve_cluster_host"]

#: The cluster's DNS domain; ``cluster.local`` unless the cluster was set up otherwise.
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class ClusterEndpoint:
    """A target's address from inside the cluster, and in words why that address.

    ``url``: base URL (the target adds its predict path).  ``host_header``: a Host to send
    instead of the URL's own ("" = the URL's).  ``how``: one sentence for the manifest header.
    """

    url: str
    host_header: str = ""
    how: str = ""


def kserve_cluster_host(model_name: str, namespace: str, raw_deployment: bool) -> str:
    """The cluster-local host of an InferenceService (module docstring)."""
    name = f"{model_name}-predictor" if raw_deployment else model_name
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


def cluster_endpoint(target: Target) -> ClusterEndpoint:
    """The address of ``target`` from a pod in the cluster; ValueError when there is none."""
    own = getattr(target, "cluster_endpoint", None)
    if callable(own):
        endpoint = own()
        if not isinstance(endpoint, ClusterEndpoint):
            raise TypeError(f"{type(target).__name__}.cluster_endpoint() must return a ClusterEndpoint")
        return endpoint
    from targets.k8s_target import K8sSettings
    from targets.kserve_target import KServeSettings

    s = target.settings
    if isinstance(s, KServeSettings):
        host = kserve_cluster_host(s.model_name, s.namespace, s.raw_deployment)
        how = ("the predictor Service of the RawDeployment InferenceService" if s.raw_deployment else
               "the InferenceService's cluster-local address (Knative local gateway)")
        return ClusterEndpoint(f"http://{host}", how=f"{how} {s.model_name!r} in namespace {s.namespace!r}")
    if isinstance(s, K8sSettings):
        name = dns_label(target.name)
        port = "" if s.service_port == 80 else f":{s.service_port}"
        return ClusterEndpoint(f"http://{name}.{s.namespace}.svc.{CLUSTER_DOMAIN}{port}",
                               how=f"the Service {name!r} in namespace {s.namespace!r} by its cluster DNS name "
                                   "(ClusterIP through kube-proxy, not the LoadBalancer)")
    endpoint = getattr(s, "endpoint", "")
    if endpoint:
        return ClusterEndpoint(endpoint, getattr(s, "host_header", ""),
                               how="the target's configured endpoint (it does not run in the cluster)")
    raise ValueError(
        f"target {target.name!r} ({target.adapter}) does not run on Kubernetes and has no endpoint: "
        f"set targets.{target.name}.endpoint to an address the cluster's pods can reach")
