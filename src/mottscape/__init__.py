"""mottscape: low-frequency ac conductivity of disordered materials from the localization landscape.

The workflow of Hayoun, Gruzberg & Filoche (2026),

    V -> u (H u = 1) -> V_u = 1/u -> basins {B_i} -> Sigma_omega -> f(r, rho_omega)
      -> E_omega(X^2) -> sigma(omega),

one module per step. See the README for a tour and ``docs/`` for the conventions.
"""

from __future__ import annotations

import lazy_loader as _lazy

__version__ = "0.1.0"

# The public names are imported on first use (PEP 562, scientific-python's lazy_loader, as in
# scikit-image): `import mottscape` costs little more than numpy's import, and a command that
# needs only part of the package (the study parser, `mottscape example`) does not load numba,
# xarray or matplotlib. The names live in __init__.pyi, read here and by type checkers.
_getattr, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
__all__ = [*__all__, "Pipeline", "__version__"]


def __getattr__(name: str):
    if name == "Pipeline":  # the old name of PipelineResult (kept for users' scripts)
        return _getattr("PipelineResult")
    return _getattr(name)
