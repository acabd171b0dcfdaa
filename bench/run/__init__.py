"""One `bench run`: the request, the checks, the model and engine, the sweep of every target, the console.

- ``request``: :class:`RunRequest`, the run flags as one value, and their ``[sweep]`` overrides
- ``session``: one run from its checks to its exit code (results folder, meta.json, Table 3, report)
- ``prepare``: the model trained, the test images loaded, the engine chosen (client calibration)
- ``runner``: the targets swept one at a time, each row written as it is measured
- ``trial_design``: which target is measured when (a fresh start per trial, in a shuffled order)
- ``display``: the run's progress lines and its Table-3-style tables on the console

Why a package "run" (not "sweep"): it is everything one `bench run` does around
:func:`loadgen.sweep.run_sweep`, which is the sweep itself. Sharding one run
(``--shard I/N``) is :mod:`bench.shard_run`; N local shards and their merge are :mod:`bench.shard`.
"""
