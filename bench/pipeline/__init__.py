"""The servebench Kubeflow pipeline: defined, run (locally or on a cluster), timed and rendered.

Import the submodules; this package's ``__init__`` stays empty. What uses the model alone
(components, the custom pipeline, stage rows and reports) is in :mod:`models.pipeline`.

- ``definition.py``: the servebench pipeline (tune -> train -> export -> serve -> smoke), KFP v2.
- ``serving.py``: what the ``serve`` and ``smoke`` stages do: start a KServe stand-in, send it load.
- ``local_run.py``: ``bench pipeline run`` with kfp.local, each stage timed; ``bench pipeline compile``.
- ``remote_run.py``: ``bench pipeline run --target NAME`` on a target's Kubeflow, timed from the API.
- ``manifests.py``: ``bench manifests pipeline``: the TFJob, the InferenceService and the compiled IR.
"""
