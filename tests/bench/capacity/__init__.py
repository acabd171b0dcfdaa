"""Tests of bench/capacity/: the capacity mode's plumbing and its end-to-end run."""
