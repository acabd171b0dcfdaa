"""Tests of models/hpo/: the Katib-like search, trials, rendered Katib Experiments, results, the CLI end to end."""
