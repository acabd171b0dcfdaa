"""Reports regenerated from result CSVs alone: tables (pure), figures (matplotlib Agg), documents.

Import the submodules directly; this package's ``__init__`` stays empty so that importing
the pure tables never pulls in matplotlib.

- ``write.py``: the reports of runs (serving, tuning, pipeline) into ``reports/<run-id>/``.
- ``build.py``: one serving run's report -- report.md/html, table3.md, figures.
- ``tables.py``: Table 3 and per-target summaries as text cells; ``markdown_table``; pure.
- ``bounds.py``: every percentile as a cell with its 95 % bounds, and what the figures draw; pure.
- ``flags.py``: failed and saturated steps as cell marks, legends and sentences.
- ``trialnoise.py``: the one-trial caution (the noise between identical runs) and steps out of order.
- ``runfacts.py``: meta.json in words: status, CPU plan, sweep settings, warnings.
- ``document.py``: one block list rendered to Markdown and to self-contained HTML.
- ``plotting.py``: shared drawing rules (colours, log axes, flagged steps).
- ``figures.py``: the closed-loop figures vs N; ``figures_rate.py``: the open-loop figure vs offered rate.
- ``ceiling_marks.py``: the client's calibrated ceiling on the throughput figure.
- ``capacity.py``: the capacity section and its figures (cells from :mod:`bench.capacity.table`).
"""

__all__: list[str] = []
