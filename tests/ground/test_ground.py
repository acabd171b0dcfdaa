"""The ground helpers every layer shares: one of each (host facts, clock, CPU pinning, figures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ground.clock import utc_iso, utc_stamp
from ground.cpus import available_cpus, pinned
from ground.figures import FIGURE_METADATA, save_figure
from ground.hostfacts import HOST_KEYS, host_facts, same_host

# The keys meta.json (bench/results/header.py) and the calibration file (loadgen/measure.py) used to
# write, each on its own: both must still be there under the same names.
OLD_META_KEYS = {"hostname", "cpu_model", "cpu_count", "cpus_usable", "os", "python", "python_implementation"}
OLD_CALIBRATION_KEYS = {"hostname", "cpu_model", "cpu_count", "available_cpus", "platform", "python"}


def test_host_facts_keep_every_key_either_file_had() -> None:
    facts = host_facts()
    assert OLD_META_KEYS | OLD_CALIBRATION_KEYS == set(facts)
    assert facts["cpus_usable"] == len(facts["available_cpus"]) == len(available_cpus())
    assert facts["cpu_count"] >= facts["cpus_usable"] >= 1


def test_same_host_compares_the_identifying_keys_only() -> None:
    here = host_facts()
    assert same_host(dict(here), here)
    assert same_host({k: here[k] for k in HOST_KEYS}, here)  # an older file with fewer keys
    assert not same_host({**here, "cpu_model": "another CPU"}, here)
    assert not same_host(None, here) and not same_host("vm", here)


def test_clock_formats() -> None:
    assert utc_iso(0) == "1970-01-01T00:00:00Z"
    assert utc_stamp(86_400 + 3_661) == "19700102-010101"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_pinned_restores_the_cpu_set_even_after_an_error() -> None:
    before = os.sched_getaffinity(0)
    one = min(before)
    with pytest.raises(RuntimeError), pinned([one]):
        assert os.sched_getaffinity(0) == {one}
        raise RuntimeError("inside the block")
    assert os.sched_getaffinity(0) == before
    with pinned(()):  # nothing to pin: nothing changes
        assert os.sched_getaffinity(0) == before


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([1, 2, 3], [3, 1, 2])
    return fig


def test_save_figure_writes_the_same_metadata_and_the_same_bytes_twice(tmp_path: Path) -> None:
    first = save_figure(_figure(), tmp_path / "a" / "fig.v1", ("png", "svg"))
    second = save_figure(_figure(), tmp_path / "b" / "fig.v1", ("png", "svg"))
    assert [p.name for p in first] == ["fig.v1.png", "fig.v1.svg"]  # a dot in the name is kept
    for one, two in zip(first, second, strict=True):
        assert one.read_bytes() == two.read_bytes()
    png, svg = (p.read_bytes() for p in first)
    assert b"servebench" in png and b"Matplotlib" not in png
    assert b"servebench" in svg and b"<dc:date>" not in svg
    assert set(FIGURE_METADATA) == {"png", "svg"}


def test_save_figure_refuses_formats_without_pinned_metadata(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="png, svg"):
        save_figure(_figure(), tmp_path / "fig", ("pdf",))
    assert not list(tmp_path.iterdir()) or not any(tmp_path.rglob("*.pdf"))
