"""``bench run --modes capacity``: how much load each target sustains under a latency objective.

Import the submodules; this package's ``__init__`` stays empty. The searches themselves are
pure and live in :mod:`loadgen.capacity` and :mod:`loadgen.concurrency_search`; the
``[capacity]`` table is :class:`loadgen.objective.CapacityConfig`.

- ``run.py``: the capacity phase of ``bench run`` -- real probes for the searches, rows written as measured.
- ``results.py``: capacity.csv, capacity_probes.csv and capacity_concurrency.csv: rows out, frames back in.
- ``table.py``: the capacity and closed-loop tables as text cells (console, capacity.md, report).
- ``show.py``: the console side -- ``--modes``/``--slo`` checks, progress lines, the final table.

The report's capacity section and figures are :mod:`bench.report.capacity`; the comparison of
two runs' capacities is :mod:`bench.compare.capacity`.
"""
