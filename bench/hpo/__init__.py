"""The study's hyperparameter tuning run by servebench: ``bench hpo`` and ``bench manifests hpo``.

Import the submodules; this package's ``__init__`` stays empty. The search itself (space,
algorithms, trial processes, result rows, report, Katib manifests) is :mod:`models.hpo`;
this package is the part that needs servebench's run folder and console.

- ``run.py``: one Optuna study per repeat x budget x algorithm, trial rows as they finish, the summary.
"""
