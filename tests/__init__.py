"""servebench's test suite, in folders that mirror the packages they test.

* ``bench/`` -- the CLI package: ``commands/`` (parsers, train, check-target), ``run/`` (the
  run path: runner, trials, host load), ``results/`` (the run folder: write, read, meta,
  status), ``compare/``, ``capacity/``, ``shard/`` (``--shard``/``--clients``, merge, the
  load-generator Job), ``pipeline/``, ``report/``; ``test_config.py`` (bench.toml and flags).
* ``targets/`` -- the target framework at the top (registry, processes, local server,
  contract, remote, lifecycle, bad input to every stand-in); ``kserve/`` and ``flask/``
  (the Flask app, its k8s stand-in, HTTP framing): the adapters.
* ``loadgen/`` -- engines, modes, pacing, saturation, statistics, sweeps, calibration,
  capacity search, sharding and the step gate.
* ``models/`` -- data, training, export, training manifests; ``hpo/``: the search, trials,
  Katib rendering, results.
* ``webui/`` -- the digit page; ``ground/`` -- the helpers every layer shares.
* ``e2e/`` -- ``python -m bench`` as a user runs it across every package (run, report and
  compare over the stand-ins; SIGKILL of the whole process tree).  A feature's own
  end-to-end test sits with the feature (e.g. ``bench/capacity/test_e2e.py``).
* top level -- whole-project properties: ``test_layers.py`` (the one-way layers),
  ``test_redaction.py`` (no secret in any sink); ``conftest.py`` (cache folders, the shared
  trained model, the ``browser`` marker).
* ``support/`` -- the helpers (fakes, stub servers, synthetic runs), imported as
  ``tests.support.<module>`` everywhere; ``data/`` -- recorded answers and vendored schemas.
"""
