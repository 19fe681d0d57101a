"""Watershed segmentation of a map (scikit-image), shared by the basins and the landscape law.

Private: :func:`mottscape.basins.find_basins` splits basins with it and
:meth:`mottscape.landscape.Landscape.eigenvalue_estimates` takes the minimum of V_u per
catchment basin (ref. [30]).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

__all__ = ["ROUNDOFF_DEPTH", "watershed", "watershed_minima"]


def watershed_minima(values: np.ndarray) -> np.ndarray:
    """Minimum of ``values`` over each watershed catchment basin (one per local minimum)."""
    values = np.asarray(values, dtype=float)
    labels = watershed(values)
    index = np.unique(labels)
    index = index[index > 0]
    if index.size == 0:  # a flat map (scikit-image finds no minimum): one catchment basin
        return np.array([float(values.min())]) if values.size else np.zeros(0)
    return np.asarray(ndi.minimum(values, labels, index), dtype=float)


#: Local minima shallower than this fraction of the scale of the values are round-off (e.g.
#: between cells that are equal by symmetry), not wells: they get no basin of their own.
ROUNDOFF_DEPTH = 1e-10


def watershed(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Watershed labels of ``values`` (face connectivity), one per minimum deeper than round-off.

    The markers are the h-minima with h = ROUNDOFF_DEPTH * scale, so that the segmentation
    does not depend on the last bits of the values (without this, V and V + c could give
    different basins). 0 where no marker is reached (flat maps).
    """
    from skimage.morphology import h_minima
    from skimage.segmentation import watershed as _skwatershed

    face = ndi.generate_binary_structure(values.ndim, 1)
    h = ROUNDOFF_DEPTH * (1.0 + float(np.max(np.abs(values))))
    minima = h_minima(values, h, footprint=face).astype(bool)
    if mask is not None:
        minima &= mask
    markers, n = ndi.label(minima, structure=face)
    if n == 0:
        return np.zeros(values.shape, dtype=int)
    return _skwatershed(values, markers=markers, mask=mask, connectivity=1)
