"""Tests of bench/shard/: ``--shard``/``--clients``, merging shard runs, the load-generator Job (rendered and
executed)."""
