"""Where the theory holds on this sample, and what to do where it does not.

The LL-generalized Mott-Berezinskii picture (sec. II-III of the paper) assumes separated
basins (strong localization: E_F in the band tail, below the landscape's mobility edge, ref.
[35]), frequencies small against the level spacing of a localization volume (rho_omega > 1,
eqs. 11-12), and, for sigma(omega) to be that of the material rather than of one finite
sample, resonant pairs at the Mott length R_omega (eq. 18) that fit well inside the sample.
The flags of the results say per frequency which of these fail; :func:`diagnosis` turns
them into sentences that name the failure and the remedy, printed by the summaries and
emitted by :func:`mottscape.ac_conductivity` as a :class:`RegimeWarning`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import RegimeWarning

if TYPE_CHECKING:
    from .grid import Grid
    from .pipeline import PipelineResult

__all__ = ["MOTT_LENGTH_SHARE", "RegimeWarning", "diagnosis", "ensemble_diagnosis",
           "mott_length_flag"]

#: A frequency is flagged when its Mott length reaches this share of the sample's smallest
#: side (half: a pair at distance R_omega then spans half the sample, and the pairs that fit
#: are a minority of those the bulk would hold; with periodic boundaries no two points are
#: farther apart than half a side).
MOTT_LENGTH_SHARE = 0.5


def mott_length_flag(mott_length: np.ndarray, grid: Grid) -> np.ndarray:
    """Per omega: the Mott length R_omega (eq. 18) reaches half the smallest sample side.

    Parameters
    ----------
    mott_length
        R_omega in length units (NaN where the classical logarithm is not positive: the
        frequency is then not small, which :func:`diagnosis` reports separately).
    grid
        The sample's grid (its side lengths).

    Returns
    -------
    numpy.ndarray of bool
    """
    side = min(grid.lengths)
    with np.errstate(invalid="ignore"):
        return np.asarray(mott_length, float) >= MOTT_LENGTH_SHARE * side


def _frequencies(omega: np.ndarray, mask: np.ndarray) -> str:
    """``"3 of 8 frequencies (omega = 0.01-0.05)"``."""
    sel = omega[mask]
    span = f"{sel.min():.3g}" if sel.size == 1 else f"{sel.min():.3g}-{sel.max():.3g}"
    return f"{int(mask.sum())} of {mask.size} frequencies (omega = {span})"


def _sample_notes(result: PipelineResult) -> list[str]:
    """Sentences about the whole sample: percolation, the landscape solve."""
    notes = []
    if result.basins.percolating:
        notes.append(
            f"the basins of the effective potential percolate at E_F = "
            f"{result.fermi_energy:.6g} (they fill {result.basins.filling:.0%} of the "
            "sample): E_F is at or above the landscape's mobility edge, where the hopping "
            "picture of the theory fails, and no frequency is valid; lower E_F into the band "
            "tail, or compute the exact reference on this sample (mottscape.kubo_greenwood)")
    land = result.landscape
    if not land.converged:
        notes.append(
            f"the landscape solve stopped at relative residual {land.residual:.3g} above its "
            f"tolerance {land.tolerance:.3g}: every number carries that error; use "
            "solver='direct' or solver='amg', or raise maxiter")
    return notes


def diagnosis(result: PipelineResult) -> list[str]:
    """The assumptions that fail on this sample, each with what to do instead.

    Parameters
    ----------
    result
        One run of the workflow.

    Returns
    -------
    list of str
        Empty when the sample is inside the theory's validity at every frequency.
    """
    notes = _sample_notes(result)
    cond, omega = result.conductivity, np.asarray(result.omega, float)
    small = np.asarray(cond.flag_rho_omega_small, bool)
    if small.any():
        notes.append(
            f"{_frequencies(omega, small)} are not small against the level spacing "
            f"Delta_xi = {result.statistics.delta_xi:.3g} (rho_omega <= 1, eq. 12): outside "
            "the low-frequency regime of eqs. 11-17; use hbar omega well below Delta_xi")
    long = mott_length_flag(cond.mott_length, result.sample.grid) & ~small
    if long.any():
        side = min(result.sample.grid.lengths)
        reach = float(np.nanmax(np.asarray(cond.mott_length)[long]))
        notes.append(
            f"at {_frequencies(omega, long)} the Mott length R_omega (eq. 18, up to "
            f"{reach:.3g}) reaches half the sample's smallest side ({side:.3g}): the resonant "
            "pairs barely fit, so sigma is that of this finite sample, not of the material; "
            f"use samples of side well above 2 R_omega = {2 * reach:.3g} or higher "
            "frequencies")
    model = result.pair_model
    if model is not None and model.truncated:
        notes.append(
            "the pair model's Agmon search bound cut off pairs that still resonate at the "
            "lowest frequency: sigma_pairs there is a lower bound; raise the lowest frequency")
    if model is not None:
        notes.extend(_empty_note(model, result.fermi_energy))
        notes.extend(_uncertain_note(model, omega))
    return notes


def _empty_note(model, fermi_energy: float) -> list[str]:
    """A note when the pair model found no eigenstate of H near E_F at all."""
    if model.states.n:
        return []
    return [
        f"no eigenstate of H lies within the pair model's window of E_F = {fermi_energy:.6g} "
        "(+- the top of the highest bin) in any basin's box (the landscape law expects "
        f"{float(model.landscape_count.sum()):.2g}): the pair model's sigma (sigma_pairs, and "
        "sigma_ll with the default estimator) is 0 at every frequency because this sample "
        "has no states there, which says nothing of what the material conducts; E_F may lie "
        "below the sample's lowest state (mottscape.exact.lowest_eigenvalues): raise E_F, "
        "or use a larger sample or an ensemble"]


#: A bin whose sigma_pairs owes more than this share to pairs of uncertain splitting is
#: reported (:attr:`mottscape.pairs.PairModel.uncertain_share`).
UNCERTAIN_SHARE_MAX = 0.1


def _uncertain_note(model, omega: np.ndarray) -> list[str]:
    """A note when the boxes cut the pair model's states enough to move their splittings."""
    share = np.nan_to_num(np.asarray(model.uncertain_share, float))
    bad = share > UNCERTAIN_SHARE_MAX
    if not bad.any():
        return []
    return [
        f"at {_frequencies(omega, bad)} up to {100 * float(share.max()):.0f} % of sigma "
        "comes from state pairs whose energies the faces of their boxes shift by more than "
        "a tenth of their splitting (largest estimated shift "
        f"{float(model.states.energy_error.max()):.3g}): the boxes are too small for these "
        f"states (typical of fine grids){_widened(model)}; raise state_padding (e.g. 30), "
        "or use state_boxes='merged' if they were per basin"]


def _widened(model) -> str:
    """What the pair model already did about uncertain splittings (empty if nothing)."""
    from .pairs import WIDEN_ROUNDS

    n = model.widened
    return (f", even with the boxes of {n} basins solved again at up to "
            f"{2 ** WIDEN_ROUNDS} times the padding (boxes that cut states this much can "
            "also move the dipoles of pairs that this test does not flag, at other "
            "frequencies)" if n else "")


#: Realizations quoted by name in an ensemble's diagnosis (the rest are counted).
QUOTED_REALIZATIONS = 3


def ensemble_diagnosis(notes: dict[int, str]) -> str:
    """One ensemble's diagnosis from its realizations' (``diagnosis`` attributes).

    Parameters
    ----------
    notes
        Realization index -> that realization's diagnosis (lines; empty when none fails).

    Returns
    -------
    str
        Empty when no realization has a note; else a count and the notes of the first few
        realizations, one line each (the per-omega flags of every realization stay in the
        ensemble's variables).
    """
    flagged = {r: text.split("\n") for r, text in sorted(notes.items()) if text}
    if not flagged:
        return ""
    lines = [f"{len(flagged)} of {len(notes)} realizations are outside the theory's validity "
             "somewhere (their flags say where):"]
    for r in list(flagged)[:QUOTED_REALIZATIONS]:
        lines += [f"realization {r}: {line}" for line in flagged[r]]
    if len(flagged) > QUOTED_REALIZATIONS:
        lines.append(f"... and {len(flagged) - QUOTED_REALIZATIONS} more realizations")
    return "\n".join(lines)
