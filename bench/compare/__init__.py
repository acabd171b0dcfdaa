"""``bench compare``: two runs compared over their trials, per step and per target, and a CI gate.

Import the submodules; this package's ``__init__`` stays empty.

- ``data.py``: what a comparison reads from a run (per step, one value per clean trial).
- ``stats.py``: the tests over trials (Welch on logs, Holm / BH, the noise floor); pure.
- ``power.py``: the per-target Welch interval, the detectable slow-down, trials needed; pure.
- ``outcome.py``: ``CompareSettings`` and the result types (step, target, whole comparison).
- ``verdict.py``: ``compare_runs`` -- step and target verdicts (``CompareResult``); pure.
- ``gate.py``: what ``--fail-on-regression`` decides: regression, pass or cannot judge (exit 0/1/3).
- ``render.py``: verdict wording, table cells, legend, summary lines and CSV; prints nothing.
- ``capacity.py``: the capacity searches of two runs compared (ratio and its range); pure.
- ``capacity_show.py``: the capacity comparison printed in the three formats.
- ``show.py``: the command's work -- load both runs, compare, print, return the exit code.
"""
