"""Deployment files from a package's templates: ``{{name}}`` placeholders, DNS names, commented YAML.

Shared by the targets' manifests (``targets/templates/``) and the model's training
manifests (``models/templates/``), which sit in different layers and so need the helpers
below both.  Why not string.Template or Jinja: Dockerfiles, systemd units, nginx configs
and shell scripts are full of ``$VAR`` and ``${VAR}``, and a templating dependency is more
than these files need.  A placeholder without a value is an error (a half-rendered manifest
that deploys is worse than none), and so is a value that is never used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

__all__ = ["dns_label", "render_template", "template_text", "yaml_document"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def template_text(package: str, name: str) -> str:
    """The raw text of ``<package>/templates/<name>`` (works from an installed package too)."""
    return resources.files(package).joinpath("templates", name).read_text(encoding="utf-8")


def render_template(package: str, name: str, values: Mapping[str, object]) -> str:
    """Fill every ``{{placeholder}}`` of ``<package>/templates/<name>`` from ``values``."""
    text = template_text(package, name)
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


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (a bench.toml, a shell script) as readable ``|`` blocks."""


def _block_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    block = "\n" in value and all(line == line.rstrip() for line in value.splitlines())
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if block else None)


_BlockDumper.add_representer(str, _block_str)


def yaml_document(header: str, doc: Mapping[str, Any]) -> str:
    """``doc`` as YAML (safe types only, keys in order) after ``header`` as ``#`` comment lines.

    Why dicts and not templates for these: every value goes through the YAML emitter, so
    no name or script can break the document's structure; the header keeps the comments a
    user needs next to ``kubectl apply``.
    """
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.strip("\n").splitlines())
    return comment + yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, width=10_000)
