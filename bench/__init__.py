"""servebench's top layer: the command line and the orchestration of every study.

Nothing imports ``bench``; it imports every layer below (webui, targets, loadgen, models,
ground; docs/architecture.md draws the map). Inside it, the command layer sits on the
feature packages, never under them (import-linter contracts in pyproject.toml):

* ``cli.py`` -- the command registry (``python -m bench COMMAND``); ``commands/`` -- one
  module per command, argparse stays there (``commands/common.py``: what commands share).
* ``run/`` -- one ``bench run`` (``RunRequest``, the sweep of every target, Table 3);
  ``shard/`` -- sharded load (``--shard``, ``--clients``, ``bench merge``, the loadgen Job);
  ``shard_run.py`` -- one shard's checks and meta facts; ``run_timing.py`` -- where a run's
  time went.
* ``capacity/`` -- ``--modes capacity`` (capacity under a latency objective);
  ``compare/`` -- two runs compared over trials, and the CI gate; ``hpo/`` -- the tuning
  study; ``pipeline/`` -- the Kubeflow pipeline study; ``report/`` -- tables, figures and
  documents regenerated from the CSVs alone.
* ``results/`` -- the run folder ``results/<run-id>/``: layout, writing, reading, schema.
* ``config.py`` (bench.toml), ``console.py`` (the only printing), ``training.py`` (the model,
  trained with progress), ``signals.py`` (Ctrl-C/SIGTERM), ``emit.py`` (print or write
  rendered files), ``hostnoise.py`` (how busy the host was), ``redact_secrets.py`` (the
  configuration's secrets kept out of every output).
"""
