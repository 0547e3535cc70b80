"""Text tables: a pandas frame as aligned plain text, the one text form of every table the package prints.

Every table is first a :class:`pandas.DataFrame` of plain values (numbers as numbers, a
missing value as ``None`` or NaN); its text comes from :func:`text_table`, which formats
the cells (floats with ``digits`` decimals, missing values as ``—``), aligns them (text
to the left, numbers to the right) and lets :meth:`pandas.DataFrame.to_string` lay out
the rows, with a rule under the header. pandas is imported when a table is made.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["text_table", "MISSING"]

#: How a missing value (``None``, NaN) is shown.
MISSING = "—"


def _cell(value, digits: int) -> str:
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return MISSING
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def text_table(frame, *, digits: int = 3, indent: str = "") -> str:
    """``frame`` as an aligned plain-text table (no index), each line prefixed by ``indent``.

    Floats are shown with ``digits`` decimals and missing values as ``—``; a column of
    numbers (missing values aside) is aligned to the right, any other to the left; columns
    are two spaces apart and a rule of dashes follows the header.
    """
    import pandas as pd

    headers, columns, widths = [], {}, []
    for position, name in enumerate(frame.columns):
        values = list(frame.iloc[:, position])
        cells = [_cell(value, digits) for value in values]
        present = [value for value, cell in zip(values, cells) if cell != MISSING]
        right = bool(present) and all(_is_number(value) for value in present)
        width = max([len(str(name)), *map(len, cells)])
        widths.append(width)
        pad = (lambda text, width=width: text.rjust(width)) if right else (lambda text, width=width: text.ljust(width))
        gap = " " if position else ""  # to_string puts one space between columns: two in all
        headers.append(gap + pad(str(name)))
        columns[position] = [gap + pad(cell) for cell in cells]
    if not columns:
        return ""
    shown = pd.DataFrame(columns, index=range(len(frame)))
    lines = shown.to_string(index=False, header=headers).splitlines() if len(frame) else [" ".join(headers)]
    lines = [line.rstrip() for line in lines]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(indent + line for line in lines)
