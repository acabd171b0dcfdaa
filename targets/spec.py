"""A target's table as bench.toml wrote it: the plain value the registry builds a target from.

Why in ``targets/``: :mod:`targets.registry` resolves and builds adapters from it, and the
target layer must not import the CLI layer's configuration; ``bench/config.py`` parses
``[targets.NAME]`` tables into these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["TargetSpec"]


@dataclass(frozen=True)
class TargetSpec:
    """A target's table as written: its name, adapter reference and raw settings.

    The adapter (found by :func:`targets.registry.resolve_adapter`) parses ``settings``
    into its own typed settings object.  ``input_data`` (any adapter's table may set it) is
    not the adapter's: it names the input-data file ``bench run`` sends to this target
    (relative to bench.toml; "" = the MNIST images, or inputs synthesised from V2 metadata).
    """

    name: str
    adapter: str
    settings: Mapping[str, Any]
    input_data: str = ""
