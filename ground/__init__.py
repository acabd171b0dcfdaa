"""Ground modules every servebench package may import; they import none of ours.

Why: the CLI layer (bench/), the serving adapters (targets/), the load generator
(loadgen/) and the model code (models/) all need the same few facts and helpers --
parsing a TOML table with errors that name the key, planning and pinning CPUs, scrubbing
credentials, the study's reference numbers.  Keeping them here lets every other package
point only downwards (see docs/architecture.md and the import-linter contracts in
pyproject.toml).

Modules: ``tables.py`` (TOML tables into frozen dataclasses, ``ConfigError``), ``toml_write.py``
(TOML text back out), ``cpus.py`` (CPU plans and pinning), ``clock.py`` (UTC stamps, clock
error), ``hostfacts.py`` (the machine's facts), ``figures.py`` (``save_figure``),
``redactor.py`` (``Redactor``, the one redaction rule), ``runmeta.py`` (meta.json as one
record, ``RunMeta``), ``manifests.py`` (``{{name}}`` templates, DNS labels, YAML),
``reference.py`` (the study's own numbers).
"""
