"""Hyperparameter tuning: the study's Katib experiments (Tables 1-2, Figure 20), run locally.

Modules: :mod:`~models.hpo.space` (the search space), :mod:`~models.hpo.search` (Optuna
studies with Katib semantics), :mod:`~models.hpo.runner` (a trial as a process, metrics read
like Katib's StdOut collector), :mod:`~models.hpo.results` (CSV rows and summary),
:mod:`~models.hpo.report` (tables and figures), :mod:`~models.hpo.katib` (Experiment
manifests).  Import the submodules directly; this package imports nothing heavy.
"""

__all__: list[str] = []
