"""Second models: small classifiers on tabular data sets scikit-learn ships offline.

Why a package beside the MNIST model: issue 24 asks for a model that is not MNIST and not
an image, so a benchmark of "your own model" (named input tensors of another name, shape
and dtype) can be shown end to end.  Its map:

* :mod:`models.tabular.datasets` -- the data sets by name (``breast-cancer``, ``wine``)
  and their seeded, stratified train/test split;
* :mod:`models.tabular.weights` -- the model as plain arrays: the ``.npz`` file (read with
  ``allow_pickle=False``, never pickle) and the forward pass (probabilities, label);
* :mod:`models.tabular.train` -- fit (scikit-learn, deterministic, under a second) and
  check that the exported arrays answer exactly like the fitted estimator;
* :mod:`models.tabular.input_data` -- the test split as a Triton perf_analyzer
  ``--input-data`` JSON file, with the expected answers as ``validation_data``;
* :mod:`models.tabular.artifacts` -- ``artifacts/<name>/``: train once, reuse while the
  recipe and every file's sha256 are unchanged.
"""
