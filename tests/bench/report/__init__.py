"""Tests of bench/report/: every file, percentile bounds, the client ceiling, flags, run facts, one-trial
caution, a real browser."""
