"""The commands of `python -m bench`: one module per command, registered in :mod:`bench.cli`.

Each module exports a :class:`bench.commands.common.Command` (its flags and its ``main``),
turns the parsed flags into plain values and calls the feature that does the work.
argparse stays in this package; command modules never import each other.

- ``common``: what commands share -- ``Command``, the argparse value types, a configured target, waiting for Ctrl-C
- ``train``: train the shared model and export TorchScript + SavedModel
- ``targets``: list the configured targets
- ``serve``: start one target's local stand-in until Ctrl-C
- ``manifests``: print or write what creates a target (or hpo, pipeline, ui, loadgen TARGET) on a cluster
- ``ui``: serve the digit-recognition page for one target
- ``check-target`` (``check_target``): run the target contract suite against one adapter
- ``calibrate``: measure each load-generator engine's own ceiling
- ``run``: the benchmark sweep (:mod:`bench.run`), or N local shards of it (:mod:`bench.shard`)
- ``merge``: merge shard runs into one run (:mod:`bench.shard.merge`)
- ``hpo``, ``pipeline``, ``report``, ``compare``: see their modules
"""
