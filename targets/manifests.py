"""Renders the deployment templates shipped in ``targets/templates/``, and asks a target for its training files.

The rendering rules (``{{name}}`` placeholders, none missing, none unused) are
:mod:`ground.manifests`'; :func:`dns_label` and :func:`yaml_document` are re-exported
from there for the adapters' manifests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ground.manifests import dns_label, render_template, yaml_document
from ground.manifests import template_text as _package_template_text
from targets.base import Target

__all__ = ["dns_label", "render", "template_text", "training_manifests", "yaml_document"]


def template_text(name: str) -> str:
    """The raw text of ``targets/templates/<name>`` (works from an installed package too)."""
    return _package_template_text("targets", name)


def render(name: str, values: Mapping[str, object]) -> str:
    """Fill every ``{{placeholder}}`` of template ``targets/templates/<name>`` from ``values``."""
    return render_template("targets", name, values)


def training_manifests(target: Target, *, model_table: Mapping[str, Any], train_threads: int) -> dict[str, str]:
    """The files that train ``target``'s model outside Kubeflow ({} for adapters trained elsewhere).

    An adapter declares them with a ``training_manifests(model_table=..., train_threads=...)``
    method (``flask``: a Slurm script; ``k8s``: a Job into a volume claim; both render them
    with :mod:`models.training_manifests`).  ``model_table``: bench.toml's ``[model]`` table
    as written; ``train_threads``: its ``torch_threads`` (the CPUs the training uses).
    """
    own = getattr(target, "training_manifests", None)
    if not callable(own):
        return {}
    return dict(own(model_table=model_table, train_threads=train_threads))
