"""Read one results cell as a number, a count or a yes/no, whatever form it comes in.

A cell of summary.csv or capacity.csv -- or a row dict built from one -- can hold a number,
a numeric string, ``""``, ``None`` or pandas' NaN for "nothing here", and a bool column
read back by pandas may be ``True``, ``"True"`` or ``1``. Every reader, table and sentence
that turns such a cell into a value uses these three functions, so a missing value means
the same thing everywhere: ``None`` (or ``False``), never a crash and never ``nan``
printed as a number.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["cell_count", "cell_number", "cell_true"]


def cell_number(value: Any) -> float | None:
    """The cell as a float; None for missing, NaN and unreadable cells (``inf`` stays ``inf``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def cell_count(value: Any) -> int | None:
    """The cell as a whole number (rounded); None for missing, NaN, infinite and unreadable cells."""
    number = cell_number(value)
    return None if number is None or math.isinf(number) else int(round(number))


def cell_true(value: Any) -> bool:
    """The cell as a bool: 'True', 'true', '1', 'yes', 1 and True are true; NaN, '' and missing are false."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False
