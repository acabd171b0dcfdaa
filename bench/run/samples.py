"""What `bench run` sends each target: the MNIST images, an input-data file, or inputs from V2 metadata.

What: :func:`read_input_files` reads every target's input-data file (``--input-data`` or
its bench.toml ``input_data``) *before anything starts*, so an empty, oversized or
malformed file stops the run at once; :class:`SampleChooser` is called by the runner once
a target is up and before any request: it fetches the target's V2 metadata where it
speaks V2, checks the file's tensors against it, and returns the
:class:`~loadgen.samples.SampleSet` to send (None = the MNIST images, as always).

The rules, in order:

1. a JSON-lines file: its bodies, sent to the endpoint the target sends MNIST images to
   (V1 and plain-HTTP targets), answers not checked beyond their status;
2. a perf_analyzer file: its tensors, checked against the metadata (or typed by the file's
   own ``datatype`` keys when the server publishes none), answers checked against
   ``validation_data`` if given, else against the declared outputs;
3. no file, a V2 target whose metadata does not describe the MNIST model: inputs
   synthesised from the metadata (``--shape`` for dynamic dimensions), and the console
   says so;
4. otherwise the MNIST images, exactly as before.

Why here and not in loadgen: choosing needs the target (its protocol, its MNIST endpoint)
and the console; the pieces it composes are pure and live in :mod:`loadgen.inference`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import BenchConfig
from bench.console import Console
from loadgen.engine import EngineOptions
from loadgen.inference.checking import CheckRule
from loadgen.inference.input_data import InputFile, read_input_file, resolve_tensors
from loadgen.inference.metadata import ModelMetadata, parse_metadata
from loadgen.inference.synthesis import synthesize_inputs
from loadgen.inference.tensor_samples import body_samples, tensor_samples
from loadgen.samples import SampleSet
from targets.base import Target
from targets.wire import describes_mnist

__all__ = ["SampleChooser", "SampleOptions", "read_input_files"]

_METADATA_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SampleOptions:
    """The run's sample flags: ``--input-data``, ``--shape``, ``--synthetic``, ``--rtol``, ``--atol``, ``--argmax``."""

    input_data: Path | None = None  # for every target of the run, over bench.toml's input_data
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    zeros: bool = False  # synthesise zeros instead of seeded random values
    rule: CheckRule = field(default_factory=CheckRule)


def read_input_files(config: BenchConfig, names: Sequence[str], options: SampleOptions) -> dict[str, InputFile]:
    """Each target's input-data file, read and checked structurally (InputDataError naming the file)."""
    files: dict[str, InputFile] = {}
    cache: dict[Path, InputFile] = {}
    for name in names:
        spec = config.targets[name]
        path = options.input_data or (config.root / spec.input_data if spec.input_data else None)
        if path is None:
            continue
        path = Path(path).expanduser().resolve()
        if path not in cache:
            cache[path] = read_input_file(path)
        files[name] = cache[path]
    return files


class SampleChooser:
    """``await chooser(target)`` -> the SampleSet to send it, or None for the MNIST images.

    ``facts[name]`` records what was chosen (for meta.json's ``samples``).
    """

    def __init__(
        self,
        files: Mapping[str, InputFile],
        options: SampleOptions,
        engine_factory: Callable[[EngineOptions], Any],
        console: Console,
        seed: int = 0,
    ) -> None:
        self.files = dict(files)
        self.options = options
        self.engine_factory = engine_factory
        self.console = console
        self.seed = seed
        self.facts: dict[str, dict[str, Any]] = {}

    async def __call__(self, target: Target) -> SampleSet | None:
        file = self.files.get(target.name)
        if file is not None and file.is_bodies:
            template = target.encode(np.zeros((28, 28), dtype=np.uint8))  # the endpoint MNIST images go to
            chosen = body_samples(template, file.bodies, f"{len(file.bodies)} request bodies from {file.path}")
            return self._chose(target, chosen, source="file", file=str(file.path), path=template.path)
        metadata = await self._metadata(target, required=file is not None)
        if file is not None:
            inputs, expected = resolve_tensors(file, metadata)
            how = "checked against validation_data" if expected is not None else "answers checked for declared outputs"
            chosen = tensor_samples(
                target,
                inputs,
                declared_outputs=metadata.outputs if metadata else (),
                expected=expected,
                rule=self.options.rule,
                description=f"{len(inputs)} samples from {file.path} ({how})",
            )
            return self._chose(target, chosen, source="file", file=str(file.path), expected=expected is not None)
        if metadata is None or describes_mnist(metadata):
            return None
        inputs = synthesize_inputs(
            metadata.inputs, shapes=self.options.shapes, seed=self.seed, zeros=self.options.zeros
        )
        kind = "zeros" if self.options.zeros else "seeded random values"
        chosen = tensor_samples(
            target,
            inputs,
            declared_outputs=metadata.outputs,
            description=f"{len(inputs)} input sets of {kind} synthesised from the metadata ({metadata.describe()})",
        )
        self.console.info(
            f"{target.name}: model {metadata.name or '?'} is not the MNIST model ({metadata.describe()}): "
            f"sending {kind} synthesised from its metadata; answers checked for the declared outputs' "
            "shapes and datatypes (give --input-data FILE to send your own data)"
        )
        return self._chose(target, chosen, source="metadata", synthetic=kind)

    def _chose(self, target: Target, chosen: SampleSet, **facts: Any) -> SampleSet:
        self.facts[target.name] = {"description": chosen.description, "samples": len(chosen), **facts}
        if facts.get("source") == "file":
            self.console.info(f"{target.name}: sending {chosen.description}")
        return chosen

    async def _metadata(self, target: Target, *, required: bool) -> ModelMetadata | None:
        """The target's V2 metadata; None when it speaks no V2 (or, unless ``required``, will not say)."""
        request_of = getattr(target, "metadata_request", None)
        request = request_of() if callable(request_of) else None
        if request is None:
            if required:
                raise ValueError(
                    f"target {target.name!r} takes no named tensors (no V2 protocol): give it a JSON-lines "
                    "file (*.jsonl) of request bodies instead"
                )
            return None
        engine = self.engine_factory(
            EngineOptions(
                base_url=target.base_url,
                max_connections=1,
                timeout_s=_METADATA_TIMEOUT_S,
                connect_timeout_s=_METADATA_TIMEOUT_S,
                verify_tls=target.verify_tls,
            )
        )
        try:
            async with engine:
                engine.prepare([request])
                response = await engine.send(request)
            if not 200 <= response.status < 300:
                raise ValueError(f"GET {request.path} answered HTTP {response.status}")
            as_json = getattr(target, "metadata_json", None)  # a gRPC answer -> REST's JSON document
            metadata = parse_metadata(as_json(response.body) if callable(as_json) else response.body)
        except Exception as exc:
            if required:
                self.console.warn(f"{target.name}: no V2 metadata ({exc}); the file's own datatypes and shapes apply")
            return None
        return metadata
