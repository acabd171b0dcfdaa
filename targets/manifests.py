"""Rendering the deployment templates shipped in ``targets/templates/``.

Why not string.Template or Jinja: Dockerfiles, systemd units and nginx configs are full of
``$VAR`` and ``${VAR}``, and a templating dependency is more than these files need.
Placeholders are ``{{name}}``; a placeholder without a value is an error (a half-rendered
manifest that deploys is worse than none), and so is a value that is never used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources

__all__ = ["dns_label", "render", "template_text"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def template_text(name: str) -> str:
    """The raw text of ``targets/templates/<name>`` (works from an installed package too)."""
    return resources.files("targets").joinpath("templates", name).read_text(encoding="utf-8")


def render(name: str, values: Mapping[str, object]) -> str:
    """Fill every ``{{placeholder}}`` of template ``name`` from ``values``."""
    text = template_text(name)
    wanted = set(_PLACEHOLDER.findall(text))
    missing = sorted(wanted - set(values))
    if missing:
        raise KeyError(f"template {name}: no value for {', '.join(missing)}")
    unused = sorted(set(values) - wanted)
    if unused:
        raise KeyError(f"template {name}: values not used by the template: {', '.join(unused)}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def dns_label(name: str) -> str:
    """A Kubernetes resource name (RFC 1123 label) derived from a target name."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    if not label:
        raise ValueError(f"cannot derive a Kubernetes name from {name!r}")
    return label
