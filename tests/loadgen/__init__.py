"""Tests of loadgen/: engines, modes, pacing, saturation, statistics, sweeps, calibration, capacity search,
shards, the step gate."""
