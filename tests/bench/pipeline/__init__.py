"""Tests of the pipeline feature: the KFP pipeline, the custom-model pipeline, its manifests, the remote
client, its report."""
