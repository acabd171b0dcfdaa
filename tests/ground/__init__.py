"""Tests of ground/: the helpers every layer shares (host facts, clock, CPU pinning, figures, TOML writing)."""
