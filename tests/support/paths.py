"""Where things are: the repository root, the examples, the test data and the vendored schemas.

One place for these paths, so a test file's depth in tests/ never matters (no
``Path(__file__).parents[N]`` in test modules).
"""

from __future__ import annotations

from pathlib import Path

#: The repository's root folder (holds bench.toml, pyproject.toml and tests/).
REPO = Path(__file__).resolve().parents[2]
#: examples/: the example adapters, importable from their folders.
EXAMPLES = REPO / "examples"
#: tests/data/: recorded answers (kfp/) and vendored schemas (schemas/).
DATA = REPO / "tests" / "data"
#: Vendored upstream schemas and examples; sources and licence in its README.md.
SCHEMAS = DATA / "schemas"
#: KServe's InferenceService CustomResourceDefinition (kserve/kserve, Apache-2.0).
KSERVE_CRD = SCHEMAS / "kserve" / "serving.kserve.io_inferenceservices.yaml"
#: Katib's hyperparameter-tuning examples (kubeflow/katib examples/v1beta1/hp-tuning/).
KATIB_EXAMPLES = SCHEMAS / "katib-examples"
