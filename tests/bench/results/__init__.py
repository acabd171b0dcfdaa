"""Tests of the results package: the run folder's writer and readers, run metadata, a run's status."""
