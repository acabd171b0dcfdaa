"""Where a pod inside the cluster reaches a target: the address a load-generator Job uses.

An adapter whose deployment runs in the cluster answers for itself with a
``cluster_endpoint()`` method returning a :class:`ClusterEndpoint` (``k8s``: the Service's
cluster DNS name and port, kube-proxy's ClusterIP path rather than the LoadBalancer;
``kserve``: the InferenceService's cluster-local host).  Any other target is reached at its
configured ``endpoint`` (a bare-metal host such as the study's linserv is not in the
cluster; the Job then loads it from the cluster's network).  ``bench manifests loadgen``
asks here, so the manifests and the clients spell each address once.
"""

from __future__ import annotations

from dataclasses import dataclass

from targets.base import Target

__all__ = ["CLUSTER_DOMAIN", "ClusterEndpoint", "cluster_endpoint"]

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


def cluster_endpoint(target: Target) -> ClusterEndpoint:
    """The address of ``target`` from a pod in the cluster; ValueError when there is none."""
    own = getattr(target, "cluster_endpoint", None)
    if callable(own):
        endpoint = own()
        if not isinstance(endpoint, ClusterEndpoint):
            raise TypeError(f"{type(target).__name__}.cluster_endpoint() must return a ClusterEndpoint")
        return endpoint
    s = target.settings
    endpoint = getattr(s, "endpoint", "")
    if endpoint:
        return ClusterEndpoint(
            endpoint,
            getattr(s, "host_header", ""),
            how="the target's configured endpoint (it does not run in the cluster)",
        )
    raise ValueError(
        f"target {target.name!r} ({target.adapter}) does not run on Kubernetes and has no endpoint: "
        f"set targets.{target.name}.endpoint to an address the cluster's pods can reach"
    )
