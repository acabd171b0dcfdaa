"""Tests of bench/compare/verdict/: verdicts over trials, the power analysis and gate, the pure statistics."""
