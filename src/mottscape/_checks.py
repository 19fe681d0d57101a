"""Shared validators of scalar arguments: one rule for what counts as a number.

Every public entry point that takes a scalar (an energy, a length, a tolerance, a count) checks
it here, so that the same input is accepted or refused the same way everywhere, with a message
that names the argument and what it must be:

* a real number is a :class:`numbers.Real` (Python and numpy ints and floats, fractions) or a
  0-d numpy array of one; ``True``/``False``, strings and arrays are refused. A boolean is a
  number to Python (``float(True) == 1.0``), but an energy or a length given as ``True`` is a
  slip, and using it would be a silently wrong number; a string such as ``"0.5"`` belongs to a
  study file, where the TOML types are checked with the file's line;
* an integer is a :class:`numbers.Integral` (not a bool), or a float or 0-d array whose value is
  a whole number (``4.0`` from a computation is 4).

``where`` names the caller at the head of every message (e.g. ``"disorder.block"``) and ``hint``
ends it (e.g. what the argument means). Written here rather than taken from a library: the
checks are a few lines and the messages are the package's own.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["integer", "positive", "real"]


def _scalar(value: Any) -> Any:
    """The item of a 0-d numpy array of a real kind; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return value.item()
    return value


def real(value: Any, name: str, where: str = "", *, minimum: float | None = None,
         strict: bool = False, bound: float | None = None, allow_inf: bool = False,
         hint: str = "") -> float:
    """``value`` as a float, checked: a real number, finite, and at least ``minimum``.

    Parameters
    ----------
    value
        The argument as given.
    name
        Its name, as the caller knows it (``"fermi_energy"``).
    where
        The caller (function or model) named at the head of the messages, or ``""``.
    minimum
        Lower limit; ``strict`` makes it exclusive (``> minimum``).
    bound
        Largest accepted ``|value|`` (energies: :data:`mottscape.grid.ENERGY_MAX`).
    allow_inf
        Accept ``+inf`` (e.g. an unbounded search); NaN and ``-inf`` are refused.
    hint
        Appended to every message (e.g. ``" (the level E, e.g. E_F)"``).

    Raises
    ------
    InputError
        Naming ``name``, the value given and the rule it breaks.
    """
    where = f"{where}: " if where else ""
    value = _scalar(value)
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise InputError(f"{where}{name}={value!r} must be a real number{hint}")
    x = float(value)
    if math.isnan(x) or (math.isinf(x) and not (allow_inf and x > 0)):
        raise InputError(f"{where}{name}={value!r} must be finite{hint}")
    if bound is not None and abs(x) > bound:
        raise InputError(
            f"{where}{name}={value!r} is larger in magnitude than the accepted {bound:g}; "
            f"express energies in a larger unit{hint}")
    if minimum is not None and not (x > minimum if strict else x >= minimum):
        raise InputError(
            f"{where}{name}={value!r} must be {'>' if strict else '>='} {minimum:g}{hint}")
    return x


def positive(value: Any, name: str, where: str = "", *, hint: str = "") -> float:
    """``value`` as a finite float > 0 (see :func:`real`)."""
    return real(value, name, where, minimum=0.0, strict=True, hint=hint)


def integer(value: Any, name: str, where: str = "", *, minimum: int | None = None,
            hint: str = "") -> int:
    """``value`` as an int, checked: a whole number (not a bool), at least ``minimum``."""
    where = f"{where}: " if where else ""
    value = _scalar(value)
    whole = isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer())
    if isinstance(value, bool | np.bool_) or not whole:
        raise InputError(f"{where}{name}={value!r} must be a whole number{hint}")
    n = int(value)
    if minimum is not None and n < minimum:
        raise InputError(f"{where}{name}={value!r} must be an integer >= {minimum}{hint}")
    return n
