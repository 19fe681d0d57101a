"""Exceptions raised by mottscape.

Every error raised on bad input names the argument, says what was wrong and what would be
accepted. Physics outside the theory's validity is *not* an error: it is reported as flags in
the results (see ``docs/errors.md``). :class:`ValidityError` is not raised by the package
today (every such case is a flag); it is kept so that scripts that catch it keep working.
"""

from __future__ import annotations

__all__ = ["ConvergenceError", "InputError", "MottscapeError", "OutputError", "RegimeWarning",
           "ValidityError"]


class MottscapeError(Exception):
    """Base class of every exception raised by mottscape."""


class InputError(MottscapeError, ValueError):
    """An argument, file or study setting is invalid; the message says how to fix it."""


class ValidityError(MottscapeError, ValueError):
    """The requested quantity is undefined for these parameters (outside the theory).

    Not raised by the package today: outside the theory's validity the results carry flags
    (``valid``, ``percolating``, ...). Kept for scripts that catch it.
    """


class ConvergenceError(MottscapeError, RuntimeError):
    """An iterative solver did not reach its tolerance; the message gives the residual."""

    def __init__(self, message: str, residual: float | None = None) -> None:
        super().__init__(message)
        self.residual = residual


class OutputError(MottscapeError, OSError):
    """Results could not be written (disk full, read-only file system, no permission...).

    An :class:`OSError` (``.errno`` and ``.filename`` are set when known) and a
    :class:`MottscapeError`; the message names the file and the fix. When it
    is raised nothing partial is left under the target name, and the temporary file is gone.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "cannot write the results"


class RegimeWarning(UserWarning):
    """The results are computed, but part of them lies outside the theory's validity.

    Emitted by :func:`mottscape.ac_conductivity`; the message says which assumption fails
    (percolating basins, frequencies not small, a Mott length comparable to the sample...)
    and what to do instead (:func:`mottscape.regime.diagnosis`). The same sentences are the
    attribute ``diagnosis`` of the results. Silence it with
    ``warnings.filterwarnings("ignore", category=mottscape.RegimeWarning)``.
    """
