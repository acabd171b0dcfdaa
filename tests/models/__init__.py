"""Tests of models/: data, training and export, the reuse decision, the training manifests; hpo/: the tuning study."""
