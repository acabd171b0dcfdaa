"""The results schema: its version, what each version added, and where older files are upgraded.

A run's files are upgraded when they are read, never rewritten on disk; each reader turns
an older file into the records of the current schema in one place:

- summary.csv rows: :meth:`loadgen.stats.StepSummary.from_row` (missing columns become
  ``None`` or are derived; see :mod:`bench.results.parse`);
- requests.csv.gz: :func:`bench.results.parse.read_requests_csv` (missing columns get
  their defaults);
- meta.json: :meth:`ground.runmeta.RunMeta.from_json` (old status words through
  :data:`ground.runmeta.LEGACY_STATUS`), and :func:`bench.results.status.resolve_status`
  (a run that says ``running`` but whose writer is gone reads as ``abandoned``);
- a run without meta.json: :func:`guessed_schema` from the summary's columns.

Readers accept older versions where the data allows and refuse only newer ones (``bench
compare``, :func:`bench.compare.data.check_schemas`).
"""

from __future__ import annotations

from collections.abc import Mapping, Set

__all__ = ["SCHEMA_ADDED", "SCHEMA_VERSION", "guessed_schema"]

# Bump when summary.csv / requests.csv.gz columns or their meaning change, and say what
# the new version added in SCHEMA_ADDED.
SCHEMA_VERSION = 4

#: What each version of summary.csv added (version 1: the columns with ``run_id``).
SCHEMA_ADDED: Mapping[int, str] = {
    2: "open-loop rates, saturated, flags",  # offered_rps .. lag_growth_s, saturated, flags
    3: "percentile bounds",  # lat_pXX_lo_s / lat_pXX_hi_s (loadgen.stats, 95 %)
    4: "samples and agreement",  # n_agree, agreement; requests.csv.gz: sample, agree
}


def guessed_schema(columns: Set[str]) -> int | None:
    """The schema of a summary.csv without its meta.json: 4 has ``agreement``, 3 the
    percentile bounds, 2 ``flags``, 1 ``run_id``."""
    if "agreement" in columns:
        return SCHEMA_VERSION
    if "lat_p50_lo_s" in columns:
        return 3
    return 2 if "flags" in columns else 1 if "run_id" in columns else None
