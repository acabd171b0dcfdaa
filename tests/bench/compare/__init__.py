"""Tests of bench/compare/: verdicts over trials, the power analysis and gate, the pure statistics."""
