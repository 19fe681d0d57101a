"""The pair model: every state of every basin, coupled pair by pair (sec. III, App. A and B).

Instead of the binary window of eqs. 13-17 (a pair conducts when rho_ij lies in
[rho_omega, rho_omega + 1] and then |X|^2 = r^2/4), each pair (a, b) of states near E_F is the
two-level system of sec. III:

* the states: every eigenstate of H near E_F found basin by basin
  (:mod:`mottscape.basin_states`), with its energy E_a, centroid r_a and localization volume
  V_a (c_a = V_a^{-1/2}, eq. 10);
* the overlap of two LL-approximated states in basins B_i, B_j (eqs. A2-A12):
  S_ab = c_a c_b e^{-rho_ij} (V_ij + |B_i| + |B_j|), the tube volume V_ij of eqs. A9-A10 from
  :mod:`mottscape.tube`;
* the transition amplitude t_ab (``amplitude``):

  ``"a13"`` (eq. A13, the paper)
      t = E_F S_ab. E_F depends on the zero of energy; it is measured here from min V, the
      frame of eq. 2 (H >= 0, u > 0) in which the landscape and its Agmon metric are defined,
      which is also the frame where eq. A1's t = <psi_j|H|psi_i> ~ E_F <psi_j|psi_i> has a
      positive H.
  ``"herring"`` (our extension, no free constant either)
      Herring's formula for the tunnelling splitting, t = (hbar^2 / 2m) int_S
      (psi_a grad psi_b - psi_b grad psi_a) . dS over the surface S that divides the two
      wells, with the same LL states (eq. 10) and the same Laplace method across S at the
      Agmon midpoint s* of the geodesic: t = (hbar^2 w(s*) / m) c_a c_b e^{-rho_ij}
      (2 pi)^{(d-1)/2} / sqrt(det H_perp(s*)). It is independent of the energy frame and is
      the textbook exact leading order for two wells (in 1D, t = (hbar^2 kappa / m) psi_a psi_b
      at the midpoint).
  ``"flux"`` (our extension)
      Herring's surface integral itself, summed over the lattice bonds of the plane through
      s* on the two states' box eigenvectors (:mod:`mottscape.flux`): no Laplace method, no
      continuum metric; ``"herring"`` for the pairs whose boxes do not both hold that plane.
      S_ab and Herring's t both carry the midpoint product psi_a psi_b(s*); where the flux is
      read, S_ab takes the product it implies (S_ab * t_flux / t_herring), so that the
      second term of eq. B3 does not keep the LL product that the flux has corrected (for
      geodesics through other basins the two differ by orders of magnitude).
  ``"a16"``
      t = Delta_xi rho_ij e^{-rho_ij} (eq. A16, its open O(1) prefactor set to 1).

* the splitting Delta E = sqrt(4 t^2 + (E_a - E_b)^2) (eq. 7) and the resonance
  Delta E = hbar omega (eq. 8), one state occupied and one empty at T = 0
  (E_- < E_F < E_+);
* the matrix element of eq. B3, both terms:
  X = t / (2 sqrt(t^2 + delta^2)) (r_b - r_a) + delta / sqrt(t^2 + delta^2) int psi_a x psi_b,
  delta = (E_a - E_b)/2, with int psi_a (x - x_ab) psi_b = S_ab (x_c - x_ab) for the
  LL-approximated states (their product sits on the tube, whose centre is x_c; x_ab is the
  middle of the pair, the origin that makes the dipole of two overlapping states symmetric);
* two states resolved together in one basin's box (the states of one basin, or of strongly
  coupled neighbours) are already eigenstates of the same local Hamiltonian: they enter with
  their box splitting |E_a - E_b| and their box dipole |X_ab|^2, not through t_ab
  (``box_share`` reports the part of sigma they carry; the rest is the LL tunnelling model).

Neighbouring basins' boxes are merged when the merged box is barely larger, and in 2D and 3D
the whole sample is solved as one box when the boxes would cost more
(:func:`mottscape.basin_states.basin_states`, ``merge``). Then every state is an exact
eigenstate of H and every pair is resolved in that box: sigma_pairs *is* the exact
Kubo-Greenwood sum of the sample (``box_share`` = 1), not an LL estimate. The model records it
(:attr:`PairModel.whole_sample`, :attr:`PairModel.boxes`; the results' variables
``pair_model_whole_sample`` and ``pair_model_boxes``).

sigma_pairs is the Kubo-Greenwood sum (eqs. 4-5, spin included) over these pairs, binned
exactly like :func:`mottscape.kubo_greenwood`: each pair adds
2 pi (Delta E) |X_ab|^2 / (d |Omega|) / (hbar * bin width) to the bin of omega_ab = Delta E / hbar.

Pairs farther apart than the Agmon search bound (rho_omega at the smallest frequency plus
:data:`BOUND_MARGIN`) are left out; ``truncated`` reports when a pair at that bound still had
2 t >= hbar omega_min. A box that cuts a state shifts its energy
(:func:`mottscape.basin_states._truncation_error`); ``uncertain_share`` reports the part of
sigma from pairs whose splitting that shift makes uncertain (:data:`UNCERTAIN_SPLITTING`).

Boxes widened
-------------
A nearly resonant pair's splitting is what places it in a bin, and a box face that shifts
one of its states by a fraction of the bin's width can move its sigma to the next bin.
Where pairs whose states' estimated shifts exceed :data:`WIDEN_BIN_SHARE` of their bin's
width carry more than :data:`mottscape.regime.UNCERTAIN_SHARE_MAX` of a bin's sigma, the
boxes of their states' basins are solved again with twice the padding and the model redone,
up to :data:`WIDEN_ROUNDS` times (:func:`_basins_to_widen`; ``PairModel.widened``, the
results' variable ``pair_model_widened_basins``). On the built-in default study (2D blocks,
192^2, the change's training set) 6 of 16 realizations had a bin 10^2 to 10^19 times exact
or 0.085 of it from one such pair at the default padding. Samples without such a bin are
solved once, unchanged.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypedDict

import numpy as np
from numpy.typing import ArrayLike

from ._groups import expanded
from .agmon import PairDistances, basin_distances
from .basin_states import BasinStates, basin_states, landscape_counts
from .errors import InputError
from .flux import flux_amplitude
from .mott import mott_scale
from .tube import PairTubes, pair_tubes

if TYPE_CHECKING:
    import xarray as xr
    from numpy.typing import ArrayLike

    from .basins import Basins
    from .landscape import Landscape
    from .options import Options
    from .pipeline import PipelineResult
    from .statistics import LevelStatistics

__all__ = ["PairModel", "mixing_x2", "omega_edges", "pair_conductivity", "pair_model",
           "pair_model_on", "pair_parameters", "recoupled", "splitting"]

#: A pair found together in a box is resolved there when both states' weights on the box faces
#: are below this.
RESOLVE_LEAK = 1e-2
#: A pair's splitting is uncertain when its two states' estimated energy errors (the shift by
#: their boxes' faces, :func:`mottscape.basin_states._truncation_error`) add up to more than
#: this fraction of it: ``uncertain_share`` reports the part of sigma such pairs carry.
UNCERTAIN_SPLITTING = 0.1
#: The shares of sigma_pairs per bin that a :class:`PairModel` reports, with their long names
#: (the variables of :func:`pair_conductivity`, and of the pipeline's results as ``pairs_*``).
SHARES: dict[str, str] = {
    "box_share": "share of sigma_pairs from pairs resolved in one basin box (the rest: LL "
                 "tunnelling, App. A)",
    "flux_share": "share of sigma_pairs from tunnelling pairs whose t_ab is the lattice "
                  "Herring flux read on both states' box vectors (amplitude flux)",
    "uncertain_share": "share of sigma_pairs from pairs whose states' energy errors from "
                       f"their box faces add up to more than {UNCERTAIN_SPLITTING:g} of "
                       "their splitting",
}
#: Agmon distance searched beyond rho_omega(omega_min) (e^{-2 x 3}: pairs past it add < 0.3 %).
BOUND_MARGIN = 3.0


# ---------------------------------------------------------------------- two-level algebra
def splitting(t: ArrayLike, e_a: ArrayLike, e_b: ArrayLike) -> np.ndarray:
    """Delta E = sqrt(4 t^2 + (E_a - E_b)^2) (eq. 7)."""
    t = np.asarray(t, float)
    return np.sqrt(4.0 * t**2 + (np.asarray(e_a, float) - np.asarray(e_b, float)) ** 2)


def mixing_x2(t: ArrayLike, delta: ArrayLike, dr: ArrayLike, overlap: ArrayLike = 0.0,
              offset: ArrayLike | None = None) -> np.ndarray:
    """|X_ab|^2 of eq. B3 (both terms), summed over the axes (eq. B4).

    Parameters
    ----------
    t, delta
        Transition amplitude and half the energy difference (E_a - E_b)/2, arrays of n pairs.
    dr
        r_b - r_a, shape ``(n, d)``.
    overlap
        S_ab = int psi_a psi_b (the second term is S_ab times ``offset``).
    offset
        x_c - x_ab, the tube centre relative to the pair's middle, shape ``(n, d)``; None: 0.

    Returns
    -------
    numpy.ndarray
        |X|^2 = |t/(2 sqrt(t^2+delta^2)) dr + delta/sqrt(t^2+delta^2) S offset|^2. For
        t >> |delta| it tends to |dr|^2/4 (eq. 13); for t << |delta| to
        (t/(2 delta))^2 |dr|^2 + ... .
    """
    t = np.asarray(t, float)
    delta = np.asarray(delta, float)
    root = np.sqrt(t**2 + delta**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        first = np.where(root > 0, t / (2.0 * root), 0.5)
        second = np.where(root > 0, delta / root, 0.0) * np.asarray(overlap, float)
    x = first[:, None] * np.asarray(dr, float)
    if offset is not None:
        x = x + second[:, None] * np.asarray(offset, float)
    return np.sum(x**2, axis=1)


#: Width in decades of the bin of a single frequency (see :func:`omega_edges`).
SINGLE_BIN_DECADES = 0.25


def omega_edges(omega: np.ndarray) -> np.ndarray:
    """Bin edges around increasing frequencies: geometric midpoints, outer edges as far out.

    Each frequency is the geometric centre of its bin (the bins of
    :func:`mottscape.kubo_greenwood`'s ``omega_lower``/``omega_upper`` in a study). A single
    frequency gets a bin a quarter of a decade wide, ``omega * 10**(-1/8 .. 1/8)`` (the width
    of the validation's bins; a bin is needed because a finite sample's sigma is a sum of
    delta peaks, eq. 4).
    """
    w = np.asarray(omega, float)
    if w.ndim != 1 or w.size < 1:
        raise InputError("omega: the pair model bins sigma around one or more frequencies; "
                         "give a 1D array of increasing frequencies > 0")
    if w.size == 1:
        return w[0] * 10.0 ** np.array([-SINGLE_BIN_DECADES / 2, SINGLE_BIN_DECADES / 2])
    mids = np.sqrt(w[:-1] * w[1:])
    return np.concatenate([[w[0] ** 2 / mids[0]], mids, [w[-1] ** 2 / mids[-1]]])


def _binned(energy: np.ndarray, x2: np.ndarray, active: np.ndarray, edges_energy: np.ndarray,
            volume: float, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Kubo-Greenwood sum per bin of hbar omega (internal units e = hbar = 1), and counts."""
    k = np.searchsorted(edges_energy, energy, side="right") - 1
    use = active & (k >= 0) & (k < edges_energy.size - 1)
    contrib = 2.0 * math.pi * energy * x2 / (d * volume)
    widths = np.diff(edges_energy)
    sigma = np.bincount(k[use], weights=contrib[use], minlength=widths.size) / widths
    return sigma, np.bincount(k[use], minlength=widths.size)


# ---------------------------------------------------------------------- the model
@dataclass(frozen=True)
class PairModel:
    """The pair model of one sample (see the module notes).

    Attributes
    ----------
    states
        The states near E_F, basin by basin.
    distances, tubes
        The basin pairs searched, their rho_ij and tube geometry.
    a, b, pair
        Inter-basin state pairs (state indices) and the basin pair of each (into
        ``distances``).
    t, overlap, splitting, x2, active
        Per state pair: t_ab, S_ab, Delta E (eq. 7), |X_ab|^2 (eq. B3), E_- < E_F < E_+.
    boxed
        Per inter-basin state pair: both states were resolved in one box; such pairs enter
        sigma with that box's splitting and |X|^2 (``states.box_pairs``), not through t_ab.
    midpoint_read
        Per inter-basin state pair: how many of its two states' amplitudes at the Agmon
        midpoint were read on their box eigenvectors (``state_amplitude="midpoint"``, see
        :func:`_midpoint_product`; the others continue the tail amplitude as
        e^{-rho_ij / 2}).
    flux_read
        Per inter-basin state pair: t_ab is the lattice Herring flux of the two states' box
        eigenvectors (``amplitude="flux"``, :func:`mottscape.flux.flux_amplitude`); where
        False it is Herring's Laplace estimate.
    sigma, n_pairs
        Per bin: the conductivity (unit of ``units.sigma_unit``) and the pairs counted.
    box_share
        Per bin: the part of ``sigma`` carried by pairs resolved in one box (pairs of one basin
        and ``boxed`` pairs); the rest is the LL tunnelling model of App. A.
    flux_share
        Per bin: the part of ``sigma`` carried by tunnelling pairs whose t_ab is the lattice
        flux read on both states' box vectors (``flux_read``); the rest of the tunnelling
        part rests on Herring's Laplace estimate (or the chosen ``amplitude``).
    uncertain_share
        Per bin: the part of ``sigma`` carried by pairs whose splitting is uncertain: their
        states' estimated energy errors, from the faces of their boxes, add up to more than
        :data:`UNCERTAIN_SPLITTING` of it (boxes too small for the states: raise
        ``state_padding``).
    edges
        Bin edges of angular frequency.
    energy_frame
        E_F in the frame of eq. A13 (measured from min V).
    landscape_count
        Landscape-law number of states in the window, per basin (refs. [28, 30]).
    truncated
        Some pair at the search bound still had 2 t >= hbar omega_min.
    amplitude, cross_section, coupling
        The choices used (``coupling``: ``options.pair_coupling``, see :func:`recoupled`).
    boxes, whole_sample
        Number of boxes diagonalised, and whether the whole sample was one box (then sigma is
        the exact Kubo-Greenwood sum of the sample, not an LL estimate; see the module notes).
    widened
        Number of basins whose boxes were solved again with a wider padding because their
        states' face shifts could move the pairs that carry a bin (module notes, "Boxes
        widened").
    """

    states: BasinStates
    distances: PairDistances
    tubes: PairTubes
    a: np.ndarray
    b: np.ndarray
    pair: np.ndarray
    t: np.ndarray
    overlap: np.ndarray
    splitting: np.ndarray
    x2: np.ndarray
    active: np.ndarray
    boxed: np.ndarray
    midpoint_read: np.ndarray
    flux_read: np.ndarray
    sigma: np.ndarray
    n_pairs: np.ndarray
    box_share: np.ndarray
    flux_share: np.ndarray
    uncertain_share: np.ndarray
    edges: np.ndarray
    energy_frame: float
    landscape_count: np.ndarray
    truncated: bool
    amplitude: str
    cross_section: str
    coupling: str
    widened: int = 0

    @property
    def boxes(self) -> int:
        """Number of boxes diagonalised for the states (one per basin unless merged)."""
        return self.states.n_boxes

    @property
    def whole_sample(self) -> bool:
        """The whole sample was solved as one box: sigma is the exact reference's, not LL's."""
        return self.states.whole_sample


def _state_pairs(states: BasinStates, dist: PairDistances
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (state of B_i, state of B_j) for every listed basin pair (i, j)."""
    order = np.argsort(states.basin, kind="stable")
    count = np.bincount(states.basin, minlength=dist.n)
    start = np.concatenate([[0], np.cumsum(count)])
    ci, cj = count[dist.i], count[dist.j]
    pair, k = expanded(ci * cj)
    a = order[start[dist.i][pair] + k // np.maximum(cj[pair], 1)]
    b = order[start[dist.j][pair] + k % np.maximum(cj[pair], 1)]
    return a, b, pair


def _amplitude(kind: str, overlap, rho, tubes: PairTubes, pair, product, frame: float,
               delta_xi: float, kinetic: float, mass: np.ndarray) -> np.ndarray:
    """t_ab; ``product`` is psi_a psi_b at the Agmon midpoint (:func:`_midpoint_product`)."""
    if kind == "a13":
        return frame * overlap
    if kind in ("herring", "flux"):  # "flux": where the lattice flux cannot be read
        flux = 2.0 * kinetic * tubes.mid_metric[pair] / mass[pair]  # hbar^2 w / m
        return flux * product * tubes.mid_section[pair]
    return delta_xi * rho * np.exp(-rho)


def _search(metric_land: Landscape, basins: Basins, states: BasinStates, ef: float,
            hbar_omega: np.ndarray, delta_xi: float, options: Options) -> PairDistances:
    owners = np.unique(states.basin)
    rho_min = mott_scale(hbar_omega[:1], delta_xi, options.mott_scale)[0]
    bound = (float(rho_min) if np.isfinite(rho_min) and rho_min > 0 else 0.0) + BOUND_MARGIN
    if owners.size < 2:
        return PairDistances(i=np.zeros(0, int), j=np.zeros(0, int), rho=np.zeros(0),
                             n=basins.n, bound=bound, sources=owners, energy=ef)
    return basin_distances(metric_land, basins, energy=ef, sources=owners, bound=bound)


def _box_usable(states: BasinStates, coupling: str) -> np.ndarray:
    """Box pairs used as such: resolved (little leakage), and of one basin if ``tunnelling``."""
    bp = states.box_pairs
    ok = bp.leakage <= RESOLVE_LEAK
    if coupling == "tunnelling":
        ok &= states.basin[bp.a] == states.basin[bp.b]
    return ok


def _box_resolved(states: BasinStates, a: np.ndarray, b: np.ndarray, coupling: str
                  ) -> np.ndarray:
    """Which state pairs (a, b) are resolved together in a box (their dipole is the box's)."""
    bp = states.box_pairs
    n = max(states.n, 1)
    ok = _box_usable(states, coupling)
    boxed_keys = np.sort(bp.a[ok] * n + bp.b[ok])
    keys = np.minimum(a, b) * n + np.maximum(a, b)
    return np.isin(keys, boxed_keys)


def _state_amplitudes(states: BasinStates, kind: str) -> np.ndarray:
    """c_a of eq. 10: V_a^{-1/2} (``"volume"``) or the measured tail amplitude.

    The tail amplitude for ``"tail"``, and for ``"midpoint"`` where the midpoint is not
    readable; V_a^{-1/2} where a state has no tail measured.
    """
    c = 1.0 / np.sqrt(states.volumes)
    if kind in ("tail", "midpoint"):
        c = np.where(np.isfinite(states.tails), states.tails, c)
    return c


def _midpoint_product(states: BasinStates, kind: str, a: np.ndarray, b: np.ndarray,
                      pair: np.ndarray, rho: np.ndarray, tubes: PairTubes
                      ) -> tuple[np.ndarray, np.ndarray]:
    """psi_a psi_b at the Agmon midpoint of each state pair, and how many of the two were read.

    Eq. 10 gives psi_a(s*) = c_a e^{-rho_ij / 2} at the midpoint s*, so the product is
    c_a c_b e^{-rho_ij}. With ``kind="midpoint"`` each factor is instead read on the state's
    own box eigenvector (:meth:`~mottscape.basin_states.StateVectors.at`): at the midpoint
    cell if the box holds it, else at the cell of the geodesic nearest to the midpoint on the
    state's side that the box holds, continued to the midpoint as e^{-Delta rho} (eq. 10 over
    the remaining stretch only); the tail amplitude where the box holds no cell of the path
    beyond the basin, or where it also holds the partner state (the two are then hybrids of one
    box Hamiltonian, not the single-well states of Herring's formula; by default such a pair
    is resolved on its box and t_ab is not used, unless the copies leak).

    Why: in 2D the exact single-well states decay from their basins as about
    e^{-1.2 rho}, not e^{-rho}, so a tail amplitude measured at rho = 1-3 and continued as
    e^{-rho} overestimates them at the midpoint, more the farther apart the wells
    (docs/investigation/README.md, "Couplings of exact resonant pairs"); the box eigenvector
    has the decay of the local Hamiltonian.
    """
    half = np.exp(-0.5 * rho)
    c = _state_amplitudes(states, kind)
    fa, fb = c[a] * half, c[b] * half
    read = np.zeros(a.size, int)
    if kind != "midpoint" or states.vectors is None or not a.size:
        return fa * fb, read
    for own_is_i, s, other, f in ((True, a, b, fa), (False, b, a, fb)):
        got = _read_on_path(states.vectors, s, pair, rho, tubes, own_is_i)
        ok = np.isfinite(got) & ~states.vectors.shares_box(s, other)
        f[ok] = got[ok]
        read += ok
    return fa * fb, read


def _read_on_path(vectors, s: np.ndarray, pair: np.ndarray, rho: np.ndarray,
                  tubes: PairTubes, own_is_i: bool) -> np.ndarray:
    """psi_s at the midpoint, read on the box of state ``s`` (see :func:`_midpoint_product`).

    ``own_is_i``: the states lie in B_i of their pairs (the end the path's rho is measured
    from), else in B_j. NaN where the box holds no cell of the path on the state's side.
    """
    out = vectors.at(s, tubes.mid_cell[pair])
    miss = np.flatnonzero(~np.isfinite(out))
    if not miss.size:
        return out
    p = pair[miss]
    q, k = tubes.path_items(p)
    f = tubes.path_rho[k]
    own = f if own_is_i else rho[miss][q] - f  # rho from the state's basin, on the geodesic
    gap = 0.5 * rho[miss][q] - own
    vals = vectors.at(s[miss][q], tubes.path_cells[k])
    good = (gap >= 0) & np.isfinite(vals)
    if not good.any():
        return out
    q, gap, vals = q[good], gap[good], vals[good]
    order = np.lexsort((gap, q))  # per state pair, the smallest gap first
    first = order[np.r_[True, q[order][1:] != q[order][:-1]]]
    out[miss[q[first]]] = vals[first] * np.exp(-gap[first])
    return out


def crossed_level_rho(tubes: PairTubes, basins: Basins, metric: np.ndarray, energy: float,
                      mass: float, kinetic: float, grid) -> tuple[np.ndarray, np.ndarray]:
    """The Agmon distance the crossed basins add with ``crossed_basins="level"``.

    On the geodesic of each basin pair, the cells of a third basin k where the metric of
    eq. 9 vanishes (V_u <= E) get the metric of k's landscape ground level,
    sqrt(m (E_k - E) / K) with E_k = (1 + d/4) min_{B_k} V_u (ref. [30]), when E_k > E: a
    basin with no level at E is crossed under its level, not freely (eq. A6 counts it as
    free). Basins with E_k <= E and the pair's own basins are unchanged.

    Returns
    -------
    extra : numpy.ndarray
        Added distance per basin pair (index of ``tubes``).
    along : numpy.ndarray
        The added distance from basin i at every path cell, aligned with ``tubes.path_rho``
        (which is rho(., B_i)).
    """
    cells = tubes.path_cells
    n = tubes.path_start.size - 1
    if not cells.size:
        return np.zeros(n), np.zeros(0)
    lengths = np.diff(tubes.path_start)
    owner, _ = expanded(lengths)
    nonempty = lengths > 0
    first, last = tubes.path_start[:-1][nonempty], tubes.path_start[1:][nonempty] - 1
    lab = basins.labels.ravel()[cells].astype(np.int64) - 1  # -1: outside every basin
    ends_i, ends_j = np.full(n, -2), np.full(n, -2)
    ends_i[nonempty], ends_j[nonempty] = lab[first], lab[last]
    crossed = ((metric.ravel()[cells] == 0) & (lab >= 0) & (lab != ends_i[owner])
               & (lab != ends_j[owner]))
    gap = np.where(crossed, basins.energies[np.maximum(lab, 0)] - energy, 0.0)
    floor = np.sqrt(np.maximum(gap, 0.0) * mass / kinetic)
    pos = grid.positions(np.stack(np.unravel_index(cells, grid.shape), axis=1))
    length = np.linalg.norm(grid.displacement(pos[:-1], pos[1:]), axis=1)  # minimum image
    incr = np.concatenate([[0.0], length * 0.5 * (floor[1:] + floor[:-1])])
    incr[first] = 0.0  # no step into a path's first cell
    total = np.cumsum(incr)
    from_j = total - np.repeat(total[first], lengths[nonempty])  # paths run B_j -> B_i
    extra = np.zeros(n)
    extra[nonempty] = from_j[last]
    return extra, extra[owner] - from_j


def _two_level(t: np.ndarray, overlap: np.ndarray, states: BasinStates, a: np.ndarray,
               b: np.ndarray, centre: np.ndarray, grid, ef: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Delta E (eq. 7), |X|^2 (eq. B3) and E_- < E_F < E_+ of inter-basin state pairs."""
    ea, eb = states.energies[a], states.energies[b]
    split = splitting(t, ea, eb)
    dr = grid.displacement(states.centroids[a], states.centroids[b])
    middle = states.centroids[a] + 0.5 * dr
    x2 = mixing_x2(t, 0.5 * (ea - eb), dr, overlap, grid.displacement(middle, centre))
    mean = 0.5 * (ea + eb)
    return split, x2, (mean - 0.5 * split < ef) & (ef < mean + 0.5 * split)


def _box_terms(states: BasinStates, ef: float, coupling: str
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Splitting, |X|^2, E_F-between and energy error of the pairs resolved in a box."""
    bp = states.box_pairs
    ok = _box_usable(states, coupling)
    ea, eb = bp.energy_a[ok], bp.energy_b[ok]
    return (np.abs(ea - eb), bp.x2[ok],
            (np.minimum(ea, eb) < ef) & (ef < np.maximum(ea, eb)), bp.energy_error[ok])


def _tunnel_terms(states: BasinStates, a: np.ndarray, b: np.ndarray, boxed: np.ndarray,
                  split: np.ndarray, x2: np.ndarray, active: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Splitting, |X|^2, E_F-between and energy error of the tunnelling pairs (not boxed)."""
    tunnel = ~boxed
    err = states.energy_error
    return split[tunnel], x2[tunnel], active[tunnel], err[a[tunnel]] + err[b[tunnel]]


class _Shares(TypedDict):
    """The shares of sigma per bin that :class:`PairModel` reports."""

    box_share: np.ndarray
    flux_share: np.ndarray
    uncertain_share: np.ndarray


def _sigma(tunnel: tuple, box: tuple, e_edges: np.ndarray, grid, units, fluxed: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, _Shares]:
    """sigma per bin (study units), the pairs counted, and three shares of sigma.

    The shares (``box_share``, ``flux_share``, ``uncertain_share`` of :class:`PairModel`):
    from the box-resolved pairs, from the tunnelling pairs whose t_ab is a read flux, and from
    the pairs whose splitting is uncertain. ``tunnel`` and ``box``: (splitting, |X|^2,
    active, energy error) of the tunnelling and box pairs; ``fluxed``: which tunnelling pairs
    have a flux-read t_ab.
    """
    energy, x2_all, active_all, error = (np.concatenate([u, v]) for u, v in zip(tunnel, box,
                                                                                 strict=True))
    sigma, count = _binned(energy, x2_all, active_all, e_edges, grid.volume, grid.ndim)
    in_box = np.arange(energy.size) >= tunnel[0].size
    by_flux = np.concatenate([fluxed, np.zeros(box[0].size, bool)])

    def share(part_of: np.ndarray) -> np.ndarray:
        part, _ = _binned(energy, x2_all, active_all & part_of, e_edges, grid.volume,
                          grid.ndim)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sigma > 0, part / sigma, np.nan)

    shares = _Shares(box_share=share(in_box), flux_share=share(by_flux),
                     uncertain_share=share(error > UNCERTAIN_SPLITTING * energy))
    return sigma * units.sigma_factor(grid.ndim), count, shares


def pair_model(land: Landscape, metric_land: Landscape, basins: Basins,
               stats: LevelStatistics, fermi_energy: float, omega: np.ndarray,
               options: Options, edges: np.ndarray | None = None) -> PairModel:
    """sigma_pairs and every ingredient of the pair model on one sample (App. A, B).

    Parameters
    ----------
    land
        The solved landscape (its sample's H gives the states, its u the curvature).
    metric_land
        The landscape of the basins and the Agmon metric (V_u, or W_u when scaled).
    basins
        The basins at E_F.
    stats
        Level statistics (Delta_xi for ``amplitude="a16"`` and the search bound).
    fermi_energy
        E_F in the frame of V.
    omega
        Increasing angular frequencies (at least two); the bins lie between them
        (:func:`omega_edges`), and the top of the last bin sets the window of states.
    options
        ``amplitude``, ``cross_section``, ``state_amplitude``, ``pair_coupling``,
        ``state_boxes`` and ``mott_scale`` are used.
    edges
        Bin edges of angular frequency (default :func:`omega_edges` of ``omega``).

    Returns
    -------
    PairModel
        When the states' boxes would cost more than one solve of the whole sample (2D, 3D),
        the sample is one box and sigma is the exact Kubo-Greenwood sum
        (``PairModel.whole_sample``).
    """
    sample = land.sample
    edges = omega_edges(omega) if edges is None else np.asarray(edges, float)
    e_edges = sample.units.omega_to_energy(edges)
    keep = options.state_amplitude == "midpoint" or options.amplitude == "flux"
    metric = metric_land.agmon_metric(fermi_energy)
    scale = np.ones(basins.n)
    solved: dict = {}  # boxes the widening leaves as they were are not solved again
    for attempt in range(WIDEN_ROUNDS + 1):
        states = basin_states(sample, basins, metric,
                              fermi_energy, float(e_edges[-1]), padding=options.state_padding,
                              merge=options.state_boxes == "merged",
                              landscape=land, keep_vectors=keep,
                              padding_scale=scale if attempt else None, solved=solved)
        model = _model_of_states(states, land, metric_land, basins, stats, fermi_energy,
                                 omega, options, edges, metric)
        grow = _basins_to_widen(model, fermi_energy, e_edges)
        if attempt == WIDEN_ROUNDS or not grow.size:
            break
        scale[grow] *= 2.0
    return replace(model, widened=int(np.count_nonzero(scale > 1)))


def _model_of_states(states: BasinStates, land: Landscape, metric_land: Landscape,
                     basins: Basins, stats: LevelStatistics, fermi_energy: float,
                     omega: np.ndarray, options: Options, edges: np.ndarray,
                     metric: np.ndarray) -> PairModel:
    """The pair model on given basin states.

    The arguments are :func:`pair_model`'s; ``metric`` is the Agmon metric at E_F.
    """
    units, grid = land.sample.units, land.sample.grid
    e_edges = units.omega_to_energy(edges)
    window = float(e_edges[-1])
    dist = _search(metric_land, basins, states, fermi_energy,
                   units.omega_to_energy(np.asarray(omega, float)), stats.delta_xi, options)
    tubes = pair_tubes(land, metric_land, basins, dist, options.cross_section)
    a, b, pair = _state_pairs(states, dist)
    rho = dist.rho[pair]
    tails_rho, tails_tubes = rho, tubes
    if options.crossed_basins == "level":
        extra, along = crossed_level_rho(tubes, basins, metric, fermi_energy,
                                         float(np.mean(land.mass)), units.kinetic, grid)
        tails_rho = rho + extra[pair]
        tails_tubes = replace(tubes, path_rho=tubes.path_rho + along)
    product, read = _midpoint_product(states, options.state_amplitude, a, b, pair, tails_rho,
                                      tails_tubes)
    overlap = product * (tubes.volume[pair] + basins.volumes[dist.i[pair]]
                         + basins.volumes[dist.j[pair]])
    frame = fermi_energy + land.shift
    mass = _mid_mass(land, dist)
    t = _amplitude(options.amplitude, overlap, rho, tubes, pair, product, frame,
                   stats.delta_xi, units.kinetic, mass)
    fluxed = np.zeros(t.size, bool)
    if options.amplitude == "flux" and states.vectors is not None:
        flux = flux_amplitude(states.vectors, grid, basins.labels, dist, tubes, a, b, pair,
                              units.kinetic, mass)
        fluxed = np.isfinite(flux)
        # S_ab and Herring's t share the midpoint product psi_a psi_b(s*): the flux implies it
        scaled = fluxed & (t > 0)
        overlap = np.where(scaled, overlap * flux / np.where(scaled, t, 1.0), overlap)
        t = np.where(fluxed, flux, t)
    states = replace(states, vectors=None)  # one eigenvector per state: not kept
    split, x2, active = _two_level(t, overlap, states, a, b, tubes.centre[pair], grid,
                                   fermi_energy)
    boxed = _box_resolved(states, a, b, options.pair_coupling)
    sigma, count, shares = _sigma(
        _tunnel_terms(states, a, b, boxed, split, x2, active),
        _box_terms(states, fermi_energy, options.pair_coupling), e_edges, grid, units,
        fluxed[~boxed])
    near_bound = rho >= float(np.max(dist.bound)) - 1.0 if rho.size else np.zeros(0, bool)
    return PairModel(states=states, distances=dist, tubes=tubes, a=a, b=b, pair=pair, t=t,
                     overlap=overlap, splitting=split, x2=x2, active=active,
                     boxed=boxed, midpoint_read=read, flux_read=fluxed,
                     sigma=sigma, n_pairs=count, **shares,
                     edges=edges,
                     energy_frame=frame,
                     landscape_count=landscape_counts(land, basins, fermi_energy - window,
                                                      fermi_energy + window),
                     truncated=bool(np.any(2.0 * t[near_bound] >= e_edges[0])),
                     amplitude=options.amplitude, cross_section=options.cross_section,
                     coupling=options.pair_coupling)


#: Rounds of :func:`pair_model` that double the box padding of the basins whose states carry
#: misplaced pairs (:func:`_basins_to_widen`): 2 rounds reach 4 times the padding.
WIDEN_ROUNDS = 2
#: A pair may sit in the wrong bin when its states' estimated energy errors (the shift by
#: their boxes' faces) exceed this fraction of its bin's width.
WIDEN_BIN_SHARE = 0.1


def _basins_to_widen(model: PairModel, ef: float, e_edges: np.ndarray) -> np.ndarray:
    """The basins whose boxes are too small for the pairs that carry a bin.

    A pair whose two states' energy errors (:func:`mottscape.basin_states._truncation_error`)
    exceed :data:`WIDEN_BIN_SHARE` of its bin's width may belong to the next bin; where such
    pairs carry more than :data:`mottscape.regime.UNCERTAIN_SHARE_MAX` of a bin's sigma,
    their states' owner basins are returned (``e_edges``: the bins' edges in energy; empty
    when there are none, or the whole sample is one box). The criterion is the bin's width,
    not the splitting (:data:`UNCERTAIN_SPLITTING`, what the diagnosis reports): on
    log-spaced bins 21 % wide a shift of a tenth of the splitting moves a pair into the next
    bin about half the time (a pair of the default study 0.2 % below an edge, its box's
    shift 0.0013 for a splitting of 0.0121, was one bin up). Where a bin's edges differ by
    less than a factor 2 its pairs' splittings exceed its width, so every pair the diagnosis
    calls uncertain is widened too; a bin still reported uncertain is one the widening
    rounds did not settle.
    """
    from .regime import UNCERTAIN_SHARE_MAX

    states = model.states
    if states.whole_sample:
        return np.zeros(0, int)
    bp = states.box_pairs
    ok = _box_usable(states, model.coupling)
    tunnel = ~model.boxed
    # the pairs as _sigma counts them: (splitting, |X|^2, E_F-between, energy error)
    split, x2, active, error = (np.concatenate([u, v]) for u, v in zip(
        _tunnel_terms(states, model.a, model.b, model.boxed, model.splitting, model.x2,
                      model.active),
        _box_terms(states, ef, model.coupling), strict=True))
    k = np.searchsorted(e_edges, split, side="right") - 1  # the bins of _binned
    inside = np.flatnonzero((k >= 0) & (k < e_edges.size - 1))
    loose = np.zeros(split.size, bool)  # may belong to the next bin
    loose[inside] = error[inside] > WIDEN_BIN_SHARE * np.diff(e_edges)[k[inside]]
    total, _ = _binned(split, x2, active, e_edges, 1.0, 1)
    part, _ = _binned(split, x2, active & loose, e_edges, 1.0, 1)
    pick = active & loose
    pick[inside] &= (part > UNCERTAIN_SHARE_MAX * total)[k[inside]]
    a = np.concatenate([model.a[tunnel], bp.a[ok]])
    b = np.concatenate([model.b[tunnel], bp.b[ok]])
    return np.unique(states.basin[np.concatenate([a[pick], b[pick]])])


def _mid_mass(land: Landscape, dist: PairDistances) -> np.ndarray:
    """Effective mass per basin pair (the sample's mean mass: mass maps vary slowly)."""
    return np.full(len(dist), float(np.mean(land.mass)))


# ---------------------------------------------------------------------- array-first wrappers
def _check_pipeline(pipeline) -> None:
    from .pipeline import PipelineResult

    if not isinstance(pipeline, PipelineResult):
        raise InputError(f"pipeline must be a Pipeline (from mottscape.run_pipeline), got "
                         f"{type(pipeline).__name__}")


def _check_prefactor(prefactor) -> float:
    if isinstance(prefactor, bool) or not isinstance(prefactor, numbers.Real) \
            or not (math.isfinite(prefactor) and float(prefactor) > 0):
        raise InputError(f"prefactor={prefactor!r} must be a finite number > 0 (a factor on "
                         "every t_ab, default 1: the model as derived)")
    return float(prefactor)


def pair_model_on(pipeline, omega_edges_) -> PairModel:
    """The pair model of a pipeline on bins given by their edges.

    The pipeline's own model is returned when it computed one on the same bins.
    """
    try:
        edges = np.asarray(omega_edges_, dtype=float)
    except (TypeError, ValueError):
        edges = np.zeros(0)
    if (edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges))
            or np.any(edges <= 0) or np.any(np.diff(edges) <= 0)):
        shown = (repr(omega_edges_) if isinstance(omega_edges_, list | tuple)
                 and len(omega_edges_) <= 6 else f"<array of shape {edges.shape}>")
        raise InputError(f"omega_edges={shown} must be a strictly increasing 1D array of at "
                         "least two finite, positive frequencies")
    _check_pipeline(pipeline)
    if pipeline.pair_model is not None and np.array_equal(pipeline.pair_model.edges, edges):
        return pipeline.pair_model
    centres = np.sqrt(edges[:-1] * edges[1:])
    return pair_model(pipeline.landscape, pipeline.metric_landscape, pipeline.basins,
                      pipeline.statistics, pipeline.fermi_energy, centres, pipeline.options,
                      edges=edges)


def _rebinned(model: PairModel, edges: np.ndarray, pipeline) -> PairModel:
    """The same pairs binned on other edges."""
    units, grid = pipeline.sample.units, pipeline.sample.grid
    sigma, count, shares = _sigma(
        _tunnel_terms(model.states, model.a, model.b, model.boxed, model.splitting, model.x2,
                      model.active),
        _box_terms(model.states, pipeline.fermi_energy, model.coupling),
        units.omega_to_energy(edges), grid, units, model.flux_read[~model.boxed])
    return replace(model, sigma=sigma, n_pairs=count, edges=edges, **shares)


def recoupled(model: PairModel, coupling: str, pipeline) -> PairModel:
    """The same states and amplitudes with another ``pair_coupling``.

    ``coupling`` is ``"box"`` or ``"tunnelling"``: only which pairs go through t_ab, and so
    sigma, change.
    """
    from .options import allowed

    if coupling not in allowed("pair_coupling"):
        raise InputError(f"coupling={coupling!r} is not known; use one of "
                         f"{', '.join(allowed('pair_coupling'))}")
    boxed = _box_resolved(model.states, model.a, model.b, coupling)
    return _rebinned(replace(model, boxed=boxed, coupling=coupling), model.edges, pipeline)


def pair_parameters(pipeline: PipelineResult, prefactor: float = 1.0) -> dict:
    """t_ab, splitting, |X_ab|^2 and occupations of the state pairs of the pair model.

    Returns a dict of arrays over the inter-basin state pairs: ``a``, ``b`` (state indices),
    ``i``, ``j`` (their basins), ``rho``, ``r``, ``t`` (times ``prefactor``), ``splitting``
    (Delta E), ``x2`` (|X_ab|^2), ``active`` (E_- < E_F < E_+) and ``boxed`` (both states
    resolved in one box: splitting and |X|^2 from the box, not from t). Energies in the study's
    energy unit, lengths in its length unit. The model uses the pipeline's frequencies.
    """
    _check_pipeline(pipeline)
    prefactor = _check_prefactor(prefactor)
    model = pair_model_on(pipeline, omega_edges(pipeline.omega)) if pipeline.omega.size > 1 \
        else pair_model_on(pipeline, [pipeline.omega[0] / 2, pipeline.omega[0] * 2])
    if prefactor != 1.0:
        model = _scaled(model, prefactor, pipeline)
    st, dist = model.states, model.distances
    dr = pipeline.sample.grid.displacement(st.centroids[model.a], st.centroids[model.b])
    return dict(a=model.a, b=model.b, i=dist.i[model.pair], j=dist.j[model.pair],
                rho=dist.rho[model.pair], r=np.sqrt(np.sum(dr**2, axis=1)), t=model.t,
                splitting=model.splitting, x2=model.x2, active=model.active, boxed=model.boxed)


def pair_conductivity(pipeline: PipelineResult, omega_edges: ArrayLike,
                      prefactor: float = 1.0) -> xr.Dataset:
    """Bin-averaged conductivity of the pair model on given bins.

    Parameters
    ----------
    pipeline
        A :class:`~mottscape.pipeline.PipelineResult` (its options choose ``amplitude`` and
        ``cross_section``).
    omega_edges
        Increasing bin edges of angular frequency (units of the study); the largest sets the
        window of states.
    prefactor
        A factor on every t_ab (1: the model as derived, no free constant).

    Returns
    -------
    xarray.Dataset
        ``sigma_pairs``, ``n_pairs``, ``box_share``, ``flux_share`` and
        ``uncertain_share`` on coordinate ``omega`` (geometric bin centres), with
        ``omega_lower``/``omega_upper``; the attributes ``pair_model_boxes``,
        ``pair_model_whole_sample`` (1 when the whole sample was one box: sigma_pairs is then
        the exact Kubo-Greenwood sum, not an LL estimate) and ``pair_model_widened_basins``
        (see the module notes, "Boxes widened").
    """
    import xarray as xr

    prefactor = _check_prefactor(prefactor)
    model = pair_model_on(pipeline, omega_edges)
    if prefactor != 1.0:
        model = _scaled(model, prefactor, pipeline)
    units, d = pipeline.sample.units, pipeline.sample.ndim
    edges = model.edges
    return xr.Dataset(
        {"sigma_pairs": ("omega", model.sigma, {"units": units.sigma_unit(d),
                                                "long_name": "pair model (App. A-B)"}),
         "n_pairs": ("omega", model.n_pairs, {"units": "1",
                                              "long_name": "state pairs in the bin"}),
         **{name: ("omega", getattr(model, name), {"units": "1", "long_name": text})
            for name, text in SHARES.items()}},
        coords={"omega": ("omega", np.sqrt(edges[:-1] * edges[1:]),
                          {"units": units.omega_unit}),
                "omega_lower": ("omega", edges[:-1], {"units": units.omega_unit}),
                "omega_upper": ("omega", edges[1:], {"units": units.omega_unit})},
        attrs={"prefactor": prefactor, "amplitude": model.amplitude,
               "cross_section": model.cross_section, "pair_model_boxes": model.boxes,
               # 1: the whole sample was one box, sigma_pairs is the exact reference's
               "pair_model_whole_sample": int(model.whole_sample),
               "pair_model_widened_basins": model.widened},
    )


def _scaled(model: PairModel, prefactor: float, pipeline) -> PairModel:
    """The model with every t_ab multiplied by ``prefactor`` (splittings and |X|^2 redone)."""
    t = prefactor * model.t
    split, x2, active = _two_level(t, prefactor * model.overlap, model.states, model.a,
                                   model.b, model.tubes.centre[model.pair],
                                   pipeline.sample.grid, pipeline.fermi_energy)
    return _rebinned(replace(model, t=t, splitting=split, x2=x2, active=active), model.edges,
                     pipeline)
