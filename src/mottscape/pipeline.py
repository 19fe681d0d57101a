"""The staged LL workflow of sec. IV, composed from one typed step per arrow.

    V -> u -> V_u -> {B_i} -> Sigma_omega -> f(r, rho_omega) -> E_omega(X^2) -> sigma(omega)

=====================  ===========================================  =======================
step                   function                                     result
=====================  ===========================================  =======================
u, V_u (eq. 2)         :func:`mottscape.landscape.landscape_of`     ``Landscape``
metric (eq. 9)         :func:`mottscape.landscape.metric_landscape` ``Landscape``
{B_i} (sec. II)        :func:`mottscape.basins.find_basins`         ``Basins``
nu, V_F, Delta_xi      :func:`mottscape.statistics.level_statistics` ``LevelStatistics``
rho_omega (eq. 12)     :func:`mottscape.mott.mott_scale`            array
rho_ij, r_ij (eq. 9)   :func:`mottscape.shell.pair_sample`          ``PairSample``
E_omega(X^2) (14-16)   :func:`mottscape.shell.shell_moments`        ``ShellMoments``
sigma (eqs. 17, 1)     :func:`mottscape.conductivity.conductivity_curves` ``Conductivity``
sigma_pairs (App. A-B) :func:`mottscape.pairs.pair_model`           ``PairModel`` (option)
=====================  ===========================================  =======================

:func:`run` composes them and returns a :class:`PipelineResult` that keeps every step's result
and the time each took; the xarray Dataset is built only at the edge
(:meth:`PipelineResult.to_dataset`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ._checks import real
from .basins import Basins, find_basins
from .conductivity import Conductivity, conductivity_curves
from .errors import InputError
from .grid import BYTES_PER_POINT_PAIRS, BYTES_PER_POINT_PIPELINE, check_memory
from .landscape import Landscape, landscape_of, metric_landscape
from .mott import mott_scale
from .options import Options
from .sample import Sample
from .shell import PairSample, ShellMoments, pair_sample, shell_moments
from .statistics import (
    LevelStatistics,
    level_statistics,
    xi_from_metric,
    xi_from_pairs,
    xi_transfer_matrix,
)

if TYPE_CHECKING:
    import xarray as xr

    from .agmon import PairDistances
    from .pairs import PairModel

__all__ = ["PipelineResult", "as_omega", "run"]


@dataclass(frozen=True, eq=False)
class PipelineResult:
    """Every step of the workflow for one sample, with the time each took.

    Attributes
    ----------
    sample, options
        The system and the options of the run.
    fermi_energy, omega, hbar_omega
        E_F, the angular frequencies and the photon energies.
    landscape
        The landscape solve (eq. 2).
    metric_landscape
        The landscape whose V_u (or W_u, ``effective="scaled"``) defines basins and metric.
    basins, statistics, pair_sample, moments, conductivity
        The results of the later steps.
    pair_model
        The pair model (App. A-B) when it runs (``options.runs_pair_model``), else None.
    timings
        Seconds per step: ``landscape``, ``basins``, ``statistics``, ``agmon``, ``moments``,
        ``conductivity`` (and ``pairs``).
    """

    sample: Sample
    options: Options
    fermi_energy: float
    omega: np.ndarray
    hbar_omega: np.ndarray
    landscape: Landscape
    metric_landscape: Landscape
    basins: Basins
    statistics: LevelStatistics
    pair_sample: PairSample
    moments: ShellMoments
    conductivity: Conductivity
    pair_model: PairModel | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def pairs(self) -> PairDistances:
        """The bounded Agmon distances between the basins of the states used."""
        return self.pair_sample.distances

    @property
    def sources(self) -> np.ndarray:
        """Indices of the basins whose states estimate f (the pair window or Sigma_omega)."""
        return self.statistics.sources

    def pair_euclidean(self) -> np.ndarray:
        """Euclidean distances r_ij of the listed pairs (minimum image when periodic)."""
        return self.pair_sample.r

    def to_dataset(self) -> xr.Dataset:
        """The results as an :class:`xarray.Dataset` (see :mod:`mottscape.results`)."""
        from .results import pipeline_dataset

        return pipeline_dataset(self)

    @cached_property
    def dataset(self) -> xr.Dataset:
        """:meth:`to_dataset`, built once."""
        return self.to_dataset()


def as_omega(omega: ArrayLike) -> np.ndarray:
    """Check angular frequencies: a non-empty, strictly increasing 1D array of finite > 0."""
    try:
        w = np.atleast_1d(np.asarray(omega, dtype=float))
    except (TypeError, ValueError):
        raise InputError(f"omega must be a number or an array of numbers, got {omega!r}") from None
    if w.ndim != 1 or w.size == 0:
        raise InputError(f"omega must be a non-empty 1D array of frequencies, got shape {w.shape}")
    bad = ~np.isfinite(w) | (w <= 0)
    if bad.any():
        raise InputError(
            f"omega must be finite and > 0 (got {w[bad][0]:g}); sigma(omega) is defined for "
            "positive angular frequencies")
    if np.any(np.diff(w) <= 0):
        raise InputError("omega must be strictly increasing; sort it and remove duplicates")
    return w


class _Timer:
    """Seconds per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def _check_pipeline_memory(sample: Sample, opts: Options) -> None:
    """Refuse a grid whose pipeline (and pair model, when it runs) would not fit in memory."""
    if opts.runs_pair_model:
        check_memory(sample.grid.size, BYTES_PER_POINT_PIPELINE + BYTES_PER_POINT_PAIRS,
                     "the pipeline with the pair model (estimator='pairs') on a grid",
                     "use estimator='eq17' (the paper's formula, "
                     f"{BYTES_PER_POINT_PIPELINE} bytes per point), a smaller sample or a "
                     "machine with more memory")
    else:
        check_memory(sample.grid.size, BYTES_PER_POINT_PIPELINE, "the pipeline on a grid")


def run(sample: Sample, fermi_energy: float, omega: ArrayLike, options: Options | None = None, *,
        landscape: Landscape | None = None, progress: bool = False) -> PipelineResult:
    """The LL workflow of sec. IV on one sample, step by step.

    Parameters
    ----------
    sample
        The system (:func:`~mottscape.sample.make_sample`).
    fermi_energy
        E_F, in the frame of V.
    omega
        Increasing angular frequencies > 0 (unit of ``sample.units``).
    options
        The open choices and solver strategies (default :class:`~mottscape.options.Options`).
    landscape
        A landscape of ``sample`` already solved (skips the solve).
    progress
        Show a progress bar over the Agmon searches.

    Returns
    -------
    PipelineResult
    """
    opts = options or Options()
    w = as_omega(omega)
    ef = real(fermi_energy, "fermi_energy")
    hw = sample.units.omega_to_energy(w)
    clock = _Timer()
    with clock.step("landscape"):
        if landscape is None:
            _check_pipeline_memory(sample, opts)
            landscape = landscape_of(sample, opts, on_failure="flag")
        _check_spectrum(landscape, ef, hw)
        if opts.runs_pair_model and landscape.solver == "given":
            raise InputError(
                "the pair model (estimator='pairs', the default) solves H on a box around each "
                "basin, and a landscape given by its V_u (Landscape.from_effective_potential "
                "or Landscape.given) carries no Hamiltonian of its own: pass estimator='eq17' "
                "(the paper's formula alone), or solve the landscape of the potential")
    with clock.step("basins"):
        metric = metric_landscape(landscape, opts.effective)
        basins = find_basins(metric, ef, split=opts.split, center=opts.center,
                             energy_rule="minimum" if opts.effective == "scaled" else "landscape")
    with clock.step("statistics"):
        stats = level_statistics(landscape, basins, ef, hw, opts)
        rho_w = mott_scale(hw, stats.delta_xi, opts.mott_scale)
        rho_log = mott_scale(hw, stats.delta_xi, "log")
    with clock.step("agmon"):
        pairs = pair_sample(metric, basins, stats, hw, rho_w, opts, progress=progress)
    with clock.step("moments"):
        moments = shell_moments(pairs, stats, hw, rho_w, rho_log, sample.grid.volume, opts)
    with clock.step("conductivity"):
        xi = {"fit": xi_from_pairs(pairs.r, pairs.distances.rho),
              "metric": xi_from_metric(metric, basins, ef)}
        if opts.xi == "transfer_matrix" and landscape.solver != "given":
            tm = xi_transfer_matrix(sample, ef)
            xi["transfer_matrix"] = tm.xi
            xi["transfer_matrix_error"] = tm.xi_error
        curves = conductivity_curves(stats, moments, hw, xi, sample.units, sample.ndim, opts,
                                     sample_ok=landscape.converged and not basins.percolating)
    model = None
    if opts.runs_pair_model:
        from .pairs import pair_model

        with clock.step("pairs"):
            model = pair_model(landscape, metric, basins, stats, ef, w, opts)
    return PipelineResult(sample=sample, options=opts, fermi_energy=ef, omega=w, hbar_omega=hw,
                          landscape=landscape, metric_landscape=metric, basins=basins,
                          statistics=stats, pair_sample=pairs, moments=moments,
                          conductivity=curves, pair_model=model, timings=clock.seconds)


#: hbar omega beyond this many spectral widths of H is refused (no transition can absorb it,
#: and sigma would overflow); below, a large omega is flagged (rho_omega <= 1), not refused.
SPECTRAL_MARGIN = 100.0


def _check_spectrum(landscape: Landscape, ef: float, hbar_omega: np.ndarray) -> None:
    """E_F above the bottom of the spectrum; hbar omega within the spectral width of H."""
    # the width is the same for H + shift, the operator the landscape solve already built
    # (H itself would be one more diagonal of the sample's size)
    ham = landscape.sample.landscape_hamiltonian
    width = float(ham.diagonal.max() - ham.diagonal.min()) + 2.0 * float(
        sum(np.max(c) for c in ham.couplings) * 2)
    if float(hbar_omega.max()) > SPECTRAL_MARGIN * width:
        raise InputError(
            f"omega: hbar omega = {float(hbar_omega.max()):.3g} is more than {SPECTRAL_MARGIN:g}"
            f" times the whole spectral width of H ({width:.3g}, Gershgorin): no pair of states "
            "can absorb it; the LL formula is a low-frequency law, use omega well below "
            "Delta_xi")
    vu_min = float(landscape.effective_potential.min())
    if ef <= vu_min:
        raise InputError(
            f"fermi_energy={ef:g} is below the bottom of the landscape spectrum (min V_u = "
            f"{vu_min:g}): there are no states and no basins; choose E_F above min V_u")
