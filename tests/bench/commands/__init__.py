"""Tests of bench/commands/: the parsers and flags of every command, train, check-target."""
