"""Tests of the run path (bench/run/): the runner, independent trials, trial design, host load."""
