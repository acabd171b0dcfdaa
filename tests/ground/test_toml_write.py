"""ground.toml_write: what it writes, tomllib reads back equal; what it cannot, it refuses."""

from __future__ import annotations

import tomllib

import pytest

from ground.toml_write import TomlWriteError, dumps
from tests.support.paths import REPO


def test_the_shipped_bench_toml_round_trips() -> None:
    tables = tomllib.loads((REPO / "bench.toml").read_text())
    assert tomllib.loads(dumps(tables)) == tables


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        'quote " and backslash \\',
        "tab\tnewline\nreturn\r",
        "del \x7f and nul \x00 and \x1f",
        "unicode é ✓ 😀",
        "",
        "$SCRATCH/servebench",
        "[not a table]",
        "# not a comment",
    ],
)
def test_strings_survive_every_escape(value: str) -> None:
    tables = {"t": {"key": value, "list": [value, value]}}
    assert tomllib.loads(dumps(tables)) == tables


def test_keys_that_need_quotes_and_nested_tables() -> None:
    tables = {
        "top": 1,
        "targets": {
            "greene-linserv": {"adapter": "flask", "workers": 2},
            "my target.v2": {"adapter": "x", "cpus": [0, 1], "verify_tls": False, "rate": 2.5e-3, "big": 10**15},
        },
        "empty": {},
    }
    assert tomllib.loads(dumps(tables)) == tables


def test_lists_of_inline_tables_round_trip_like_sweep_stages() -> None:
    """bench.toml's ``[sweep] stages`` is a list of inline tables; a rendered loadgen Job's
    bench.toml must carry it (it could not: "cannot write a dict as a TOML value")."""
    tables = {
        "sweep": {
            "stages": [
                {"duration": "2m", "start_rate": 0.0, "rate": 100.0},
                {"duration": "30m", "rate": 100.0},
                {"my key": {"nested": [1, 2]}},
            ],
            "modes": ["rate"],
        }
    }
    assert tomllib.loads(dumps(tables)) == tables


def test_header_lines_are_comments() -> None:
    text = dumps({"a": {"b": 1}}, header="first line\nsecond")
    assert text.startswith("# first line\n# second\n")
    assert tomllib.loads(text) == {"a": {"b": 1}}


@pytest.mark.parametrize("value", [float("inf"), float("nan"), object(), {1, 2}, b"bytes"])
def test_values_toml_cannot_hold_equal_are_refused(value: object) -> None:
    with pytest.raises(TomlWriteError):
        dumps({"t": {"key": value}})
