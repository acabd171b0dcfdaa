"""The ``kserve`` adapter's settings: one target's table in bench.toml, checked.

Read by the adapter (:mod:`targets.kserve.target`) and the manifest renderer
(:mod:`targets.kserve.manifests`), which the adapter calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from models.pipeline.kfp_settings import KfpSettings
from models.tabular.datasets import TABULAR_MODELS
from targets.remote import RemoteSettings

__all__ = ["KServeSettings"]

_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class KServeSettings(RemoteSettings, KfpSettings):
    """A ``kserve`` target's table in bench.toml (remote-mode and ``kfp_*`` keys inherited).

    The ``kfp_*`` keys (:class:`models.pipeline.kfp_settings.KfpSettings`) name the cluster's
    Kubeflow Pipelines API for ``bench run pipeline --target``.

    ``protocol``: "v1" (``/v1/models/<name>:predict``, TF-Serving rows), "v2" (Open
    Inference Protocol in JSON, ``/v2/models/<name>/infer``), "v2-binary" (the same
    endpoint with the binary-tensor extension) or "grpc-v2" (the Open Inference Protocol
    over gRPC: the stand-in also serves gRPC on a loopback port, the ``grpc`` engine sends);
    see :mod:`targets.kserve.protocols`.  A remote grpc-v2 ``endpoint`` is
    ``grpc://host:port`` (plaintext) or ``grpcs://host:port`` (TLS, certificate always
    checked); credentials and ``host_header`` travel as gRPC metadata and ``:authority``.
    ``workers``: ModelServer processes of the local stand-in; in the manifest, the fixed
    replica count (min = max, so autoscaling never changes what is measured).
    ``model_name``: name in the URL; on a cluster it is the InferenceService name.
    ``storage_uri``: where the cluster finds the SavedModel's model base (the folder that
    holds the numeric version folder ``1/``): copy ``artifacts/model/savedmodel/<name>``
    there.  The default is a placeholder PVC (``pvc://<claim>/<path>``); ``gs://`` or
    ``s3://`` URIs work the same way.
    ``raw_deployment``: add ``serving.kserve.io/deploymentMode: RawDeployment`` (a plain
    Deployment instead of a Knative service: no scale-to-zero, no activator hop).
    ``custom_container``: the manifest runs our predictor image (this stand-in) instead of
    KServe's tensorflow runtime; ``image`` names it.
    ``cpus``: CPUs for the stand-in, overriding the run's plan (empty = the plan's).
    ``tf_threads``: TensorFlow threads per worker (0 = one per CPU the stand-in may use).
    ``model``: which model the local stand-in serves: ``"mnist"`` (the study's SavedModel,
    the default) or a tabular model trained by ``python -m bench train --model NAME``
    (``breast-cancer``, ``wine``; served from ``artifacts/NAME/weights.npz``, V2 input
    ``features`` FP64, outputs ``probabilities`` FP32 and ``label`` INT64).  A tabular
    target is not an MNIST target: it takes its requests from an input-data file.
    """

    endpoint_schemes: ClassVar[tuple[str, ...]] = ("http", "https", "grpc", "grpcs")

    protocol: Literal["v1", "v2", "v2-binary", "grpc-v2"] = "v1"
    workers: int = 1
    model_name: str = "mnist"
    namespace: str = "kubeflow-user-example-com"
    storage_uri: str = "pvc://servebench-models/savedmodel/mnist"
    raw_deployment: bool = False
    custom_container: bool = False
    image: str = "servebench-kserve-predictor:0.1.0"
    cpu: str = "1"
    memory: str = "2Gi"
    cpus: list[int] = ()  # parse_table gives a tuple
    tf_threads: int = 0
    model: str = "mnist"

    @property
    def serves_mnist(self) -> bool:
        """True when the stand-in serves the study's MNIST model (``model = "mnist"``)."""
        return self.model == "mnist"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_kfp()
        if self.endpoint:
            grpc_url = self.endpoint.split("://", 1)[0] in ("grpc", "grpcs")
            if grpc_url != (self.protocol == "grpc-v2"):
                raise ValueError(
                    "endpoint: protocol grpc-v2 takes a grpc://host:port or grpcs://host:port endpoint, "
                    f"the other protocols an http(s):// one; got {self.endpoint!r} with protocol {self.protocol!r}"
                )
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.model != "mnist" and self.model not in TABULAR_MODELS:
            raise ValueError(f"model must be 'mnist' or one of {sorted(TABULAR_MODELS)}, got {self.model!r}")
        if self.tf_threads < 0:
            raise ValueError(f"tf_threads must be >= 0, got {self.tf_threads}")
        for key in ("model_name", "namespace"):
            if not _DNS_LABEL.fullmatch(getattr(self, key)):
                raise ValueError(
                    f"{key} must be a lowercase DNS label (model_name is the InferenceService name), "
                    f"got {getattr(self, key)!r}"
                )
        for key in ("namespace", "storage_uri", "image", "cpu", "memory"):
            value = getattr(self, key)
            if not value or any(c.isspace() or c in "\"'`$" for c in value):
                raise ValueError(f"{key} must be non-empty, without spaces, quotes or '$', got {value!r}")
        if "://" not in self.storage_uri:
            raise ValueError(
                f"storage_uri must be a URI like pvc://claim/path or gs://bucket/path, got {self.storage_uri!r}"
            )
