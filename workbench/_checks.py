"""Checks of user-given values, each raising ``ValueError`` with a one-line message.

Every public function of the package validates its arguments with these, so the
same mistake gets the same sentence everywhere: ``"top must be a positive integer;
got 0."``. A ``bool`` is never accepted as a number (``True`` is not a batch size).
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

__all__ = ["integer", "number", "choice", "from_dict", "names", "integers", "numbers_by_name"]


def integer(value, name: str, *, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``value`` as an ``int``, checked to be a whole number in ``[minimum, maximum]``.

    Parameters
    ----------
    value : object
        The value to check (Python or NumPy integer; never ``bool``).
    name : str
        How the message names it (``"batch_size"``, ``"TrainConfig.epochs"``).
    minimum, maximum : int or None
        Inclusive bounds; ``None`` for no bound. The default asks for a positive integer.

    Returns
    -------
    int
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
            (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {_integer_phrase(minimum, maximum)}; got {value!r}.")
    return int(value)


def _integer_phrase(minimum, maximum) -> str:
    if maximum is not None:
        return f"an integer between {minimum} and {maximum}" if minimum is not None else f"an integer <= {maximum}"
    if minimum == 1:
        return "a positive integer"
    if minimum == 0:
        return "a non-negative integer"
    return f"an integer >= {minimum}" if minimum is not None else "an integer"


def number(value, name: str, *, positive: bool = False, finite: bool = True) -> float:
    """``value`` as a ``float``, checked to be a real number (finite, and ``> 0`` when ``positive``).

    Returns
    -------
    float
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            (finite and not math.isfinite(value)) or (positive and not value > 0):
        kind = "a positive finite number" if positive and finite else "a positive number" if positive else \
            "a finite number" if finite else "a number"
        raise ValueError(f"{name} must be {kind}; got {value!r}.")
    return float(value)


def choice(value, name: str, choices: Iterable[str], *, meaning: str | None = None) -> str:
    """``value``, checked to be one of ``choices`` (the message lists them).

    Parameters
    ----------
    meaning : str, optional
        A few words on what the choices are, added to the message.
    """
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        extra = f" ({meaning})" if meaning else ""
        raise ValueError(f"Unknown {name} {value!r}; choose one of {', '.join(choices)}{extra}.")
    return value


def from_dict(cls, data, what: str):
    """An instance of the dataclass ``cls`` from ``data``, refusing unknown keys with a message naming them.

    Parameters
    ----------
    cls : dataclass type
    data : dict
    what : str
        How the message names the settings (``"training settings"``).
    """
    from dataclasses import fields

    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a dict of settings; got {type(data).__name__}.")
    known = {field.name for field in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"Unknown {what} {sorted(unknown)}; expected some of {sorted(known)}.")
    return cls(**data)


# ---------------------------------------------------------------------------------
# comma-separated values, as a command line gives them
# ---------------------------------------------------------------------------------
def number_or_auto(text: str):
    """A command line's ``T|auto`` (``--threshold``): the number, or ``"auto"``; anything else is refused as argparse refuses."""
    import argparse

    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'auto'") from None


def names(text: str) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]`` (empty items dropped)."""
    return [name.strip() for name in str(text).split(",") if name.strip()]


def integers(text: str, name: str) -> list[int]:
    """``"4,16,64"`` → ``[4, 16, 64]``; anything else is a ``ValueError`` naming ``name`` (a flag: ``--dims``)."""
    try:
        return [int(part) for part in names(text)]
    except ValueError:
        raise ValueError(f"{name} takes comma-separated whole numbers, for example 4,16,64; got {text!r}.") from None


def numbers_by_name(text: str | None, name: str, *, key: str = "NAME", example: str = "a=0.1,b=2") -> dict[str, float]:
    """``"pmi=0.001, sigmoid=0.003"`` → ``{"pmi": 0.001, "sigmoid": 0.003}``; ``None`` or ``""`` → ``{}``."""
    values = {}
    for item in names(text or ""):
        label, _, value = item.partition("=")
        try:
            values[label.strip()] = float(value)
        except ValueError:
            raise ValueError(f"{name} item {item!r} is not {key}=NUMBER; write for example {example}.") from None
    return values
