"""Helpers for the tests (never tests themselves), imported as ``tests.support.<module>``.

* ``paths`` -- the repository, examples and test-data folders (vendored schemas included).
* ``e2e`` -- ``python -m bench`` in a subprocess with a temporary results folder.
* ``browser`` -- Playwright driving the system Chromium; skips loudly without it.
* ``loadgen`` -- test doubles for the load generator: a tiny HTTP server, its in-memory
  twin, a trivial Target.
* ``stub_http`` -- small real HTTP/1.1 servers in threads that behave and misbehave.
* ``raw_http`` -- send exact bytes to a server, read its answer; ``bad_input_cases`` --
  what the bad-input suite sends and expects.
* ``echo_http`` -- an endpoint that echoes the credentials it receives (redaction tests).
* ``targets`` -- sending blueprints, bad-body mutations, process checks;
  ``target_cases`` -- the adapters the in-repo contract suite runs over.
* ``webui`` -- aiohttp apps in a background loop and a recording upstream.
* ``synthetic_runs`` / ``compare_synth`` -- synthetic run folders and runs with a known
  noise structure (never measurements); ``shard`` -- real shard runs for the merge tests.
* ``kfp_fake`` -- a fake Kubeflow Pipelines REST API on loopback.
"""
