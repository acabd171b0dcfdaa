"""The KFP v2 pipelines' model side (issue 8): the model's components, the custom-model
pipeline, stage timing rows, reports, KFP submission and manifests.

The servebench pipeline's ``serve`` and ``smoke`` stages and its definition start targets
and send load, so they live in the CLI layer (``bench/pipeline/definition.py``,
``bench/pipeline/serving.py``); nothing here imports them.
"""

__all__ = ["components", "custom", "registry", "stages", "timing"]
