"""The one shared MNIST model: data (``data``), network (``net``), training (``train``),
export with a parity check (``export``), the artifacts folder (``artifacts``) and loading
helpers for servers and tests (``predict``).  ``trial`` and ``hpo`` run the study's
hyperparameter search on the same network and data.  ``training_manifests`` renders the
files that train it outside Kubeflow (a Slurm script from ``templates/slurm-train.sbatch``,
a Kubernetes Job), for the ``flask`` and ``k8s`` adapters' ``bench manifests``.
``tabular`` holds second models that are not MNIST (issue 24): small classifiers on
scikit-learn's bundled data sets, exported as ``.npz`` arrays with an input-data file.

``import models.data`` and ``import models.artifacts`` need only numpy; torch is imported
by ``net``/``train``/``export``/``predict``, tensorflow only when a SavedModel is built or
loaded.
"""
