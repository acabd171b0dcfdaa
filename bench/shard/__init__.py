"""Sharded load: N shard runs of one plan (local processes or cluster pods) and their merge into one run.

- ``processes``: `bench run TARGET --clients N` -- N shard processes on this machine, one stand-in, merged
- ``merge``: shard runs -> one ordinary run (records concatenated, statistics from their union)
- ``merge_checks``: the shard runs read and checked (one split, completed, agreeing) before a record is read
- ``step_frames``: one shard's records step by step, in bounded chunks of columns
- ``merge_records``: one step's records from every shard -> the merged step, streamed
- ``merge_meta``: the merged run's meta.json
- ``merge_table``: the merged run's per-shard table on the console
- ``job``: `manifests loadgen TARGET --clients N` -- the cluster Job's inputs, checked
- ``job_render``: the ConfigMap, Indexed Job and helper pod of that Job, as YAML

One shard's own run (``bench run --shard I/N``: its options, checks, meta.json facts) is
:mod:`bench.shard_run`, below both this package and :mod:`bench.run`, which use it.
"""
