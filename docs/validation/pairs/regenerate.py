"""Regenerate the pair-model validation (docs/validation.md, "The pair model").

Usage (from the repository root)::

    .venv/bin/python docs/validation/pairs/regenerate.py [MODEL ...]

For each model: the exact Kubo-Greenwood sigma (reused from an earlier run of this script or
from ``docs/validation/<model>/validation.nc`` when one exists: same study, same seeds, same
bins), sigma_LL as published (eq. 17 with V_u) and with the scaled landscape, sigma_MB (eq. 1),
the pair model with the package defaults and with ``pair_coupling="tunnelling"`` (every pair of
states of two basins through the LL amplitude t_ab), on every realization; saved to
``docs/validation/pairs/<model>/validation.nc`` (and its figure).
Then prints the tables (``report.py`` in this directory).

The pair model's defaults were chosen on the two-well tests (tests/test_pairs.py) and on three
128^2 samples of the 2D block model (seeds 3-5, not the seeds of the block_2d study); every model
below is held out from that choice except block_2d, whose study shares the model but not the
samples.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mottscape as ms
from mottscape.validation import validate

HERE = Path(__file__).parent
DOCS = HERE.parent
STUDIES = {
    "block_2d": DOCS / "block_2d.toml",
    "block_1d": DOCS / "block_1d.toml",
    "gaussian_1d": DOCS / "gaussian_1d.toml",
    "gaussian_2d": DOCS.parent / "investigation" / "gaussian_2d.toml",
    "alloy_2d": DOCS.parent / "investigation" / "alloy_2d.toml",
}
#: Realizations per model (the 1D chains cost ~1 min each with the pair model).
REALIZATIONS = {"block_1d": 6, "gaussian_1d": 6, "gaussian_2d": 4, "alloy_2d": 4}
VARIANTS = {"default": {}, "effective_scaled": {"effective": "scaled"}}


def run(model: str) -> None:
    previous = HERE / model / "validation.nc"  # an earlier run of this script
    if not previous.exists():
        previous = DOCS / model / "validation.nc"  # the validation study of docs/validation.md
    reuse = None
    n = REALIZATIONS.get(model)
    if previous.exists():
        old = ms.read_netcdf(previous)
        if n is None or n == old.sizes["realization"]:
            reuse, n = old, old.sizes["realization"]
        else:
            reuse = old.isel(realization=slice(0, n))
    validate(STUDIES[model], realizations=n, variants=VARIANTS, reuse_exact=reuse,
             out=HERE / model, log=lambda m: print(f"[{model}] {m}", flush=True))


if __name__ == "__main__":
    for name in sys.argv[1:] or list(STUDIES):
        run(name)
