"""Durations as people write them: ``90``, ``1.5``, ``90s``, ``30m``, ``2h``, ``1h30m``.

Why one parser: ``bench run --duration``, ``--stages`` and bench.toml's ``[sweep]``
``duration_s``/``max_duration_s``/``stages`` all take a length of time, and an hour-long
soak is easier to read as ``1h`` than as ``3600``.  One rule, one error message: a bare
number is seconds (so every existing ``duration_s = 2.0`` keeps its meaning); a string is
one or more ``<number><unit>`` parts, largest unit first, units ``h``, ``m``, ``s``
(``1h30m``, ``2m30s``, ``0.5h``).  A bad value raises :class:`DurationError`, whose
message names the flag or key (``what``) and lists the accepted forms.
"""

from __future__ import annotations

import math
import re

__all__ = ["DURATION_FORMS", "DurationError", "format_duration", "parse_duration"]

#: The accepted forms, as every error message states them.
DURATION_FORMS = "seconds (90, 1.5) or a number with units h, m, s, largest first (90s, 30m, 2h, 1h30m)"

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUMBER})([hms])")
_WHOLE = re.compile(rf"(?:{_NUMBER}[hms])+")


class DurationError(ValueError):
    """A duration that is not one of :data:`DURATION_FORMS` (or is negative / not finite)."""


def parse_duration(value: object, what: str) -> float:
    """Seconds in ``value`` (a number of seconds, or a string such as ``"1h30m"``); ``what`` names it in errors.

    Accepts ints and floats (seconds; ``bool`` is refused), numeric strings (``"90"``,
    ``"1.5"``) and unit strings whose units appear at most once each, in the order h, m, s.
    The result is a finite float >= 0: whether 0 is allowed is the caller's rule.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DurationError(f"{what}: must be a duration -- {DURATION_FORMS} -- got {type(value).__name__} {value!r}")
    if isinstance(value, str):
        seconds = _parse_text(value.strip().lower(), what)
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise DurationError(f"{what}: must be a finite duration >= 0 -- {DURATION_FORMS} -- got {value!r}")
    return seconds


def _parse_text(text: str, what: str) -> float:
    """Seconds in a stripped, lower-cased duration string."""
    if re.fullmatch(_NUMBER, text):
        return float(text)
    if not _WHOLE.fullmatch(text):
        raise DurationError(f"{what}: {text!r} is not a duration; write {DURATION_FORMS}")
    parts = _PART.findall(text)
    units = [unit for _, unit in parts]
    if units != sorted(set(units), key="hms".index):
        raise DurationError(f"{what}: {text!r} repeats a unit or puts a smaller one first; write {DURATION_FORMS}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """``seconds`` in the parser's own form, for messages: ``5400`` -> ``"1h30m"``, ``90.5`` -> ``"1m30.5s"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return f"{seconds:g} s"
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    text = (f"{hours:.0f}h" if hours else "") + (f"{minutes:.0f}m" if minutes else "")
    secs = round(secs, 3)
    if secs or not text:
        text += f"{secs:g}s"
    return text
