"""Tests of bench/, the CLI package, one folder per subpackage (commands, run, results, compare, capacity,
shard, pipeline, report)."""
