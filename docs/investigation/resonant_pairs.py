"""Couplings of exact resonant pairs on random samples against the LL amplitude t_ab.

    .venv/bin/python docs/investigation/resonant_pairs.py
        [--models block,gaussian,alloy,block_1d,anderson_3d] [--seeds N] [--window W]
        [--no-tuned] [--state-amplitude A] [--state-boxes B] [--amplitude T] [--out F]

Issue 11, item 3, second half. Run time: 32 min on the shared 2-core machine (load 4-5) (three 2D
models and a 1D chain, 20 samples each, 128^2 and 4096 sites); the 3D Anderson model (20 samples
of 20^3) takes about 3 min: ``--models anderson_3d --state-boxes per_basin`` (a box per basin,
as large samples get; with the merged boxes these small samples are one box and the package
does not use t_ab). The comparison of the amplitudes ``herring`` and ``flux`` (README,
"Herring's flux on the box vectors") ran each model with ``--seeds 10 --state-boxes per_basin
--amplitude T --out docs/investigation/amplitude/MODEL_T.json`` (2-5 min per model). Writes
``docs/investigation/resonant_pairs.json`` beside this script (models not run keep their
previous entries). Nothing in ``src/`` is changed; private helpers of ``mottscape.pairs``
and ``mottscape.basin_states`` are imported so that the formulas are the package's own.

Two kinds of exact pairs are measured.

Exact resonant pairs (``pairs``)
    The exact eigenstates of H in [E_F - W, E_F + W] (``ms.exact_eigenstates``). Each cell is
    attached to its nearest basin of V_u at E_F (``basin_states.nearest_basin``); q_k(a) is
    the weight of state a on the domain of basin k. A state is a *hybrid* of basins (i, j)
    when its two largest domain weights sum to >= :data:`TWO_BASINS` and each is >=
    :data:`EACH_BASIN`. Two hybrids of the same (i, j) (and no third) form a *resonant pair*
    (a, b). With q_i the weight of a on i normalized to the two, the two-level model of
    App. B gives t_exact = |E_a - E_b| sqrt(q_i (1 - q_i)) (q_i averaged over a and b's
    estimates). Pairs are kept only when b carries the same weights swapped (within
    :data:`Q_AGREE`) and no third window state carries >= :data:`THIRD` of its weight on i
    or j (a three-level problem).
Tuned resonances (``tuned``)
    Natural resonances are rare and short-ranged (rho < 2-4; the package resolves almost all
    of them in one box, where t_ab is not used). To test t_ab where the pair model uses it,
    basin pairs of the package's own pair list are taken, :data:`TUNED_PER_BIN` at random per
    unit bin of rho from 1 to 9. On the union box of the two basins (padded like the pair
    model's boxes): the single-well state of i nearest E_F (j's basin cells raised by
    :data:`RAISE` hopping energies), the state of j nearest to it (i's cells raised), then a
    constant shift of j's basin cells (Newton steps, a few 0.01-0.1 hopping energies) until
    the single-well energies agree to 1e-8; the two-well box with that shift gives the
    hybrids and t_exact as above. The shift changes the random sample a little (it is a
    local change of one well's depth), not the barrier between the wells.
Single wells (the LL side's states)
    For each basin of a pair, H on a box with the partner basin's cells raised. It gives the
    tail amplitude A (psi ~ A e^{-rho}: the median of |psi| e^{rho} over the cells at Agmon
    distance 1-3 from the basin, as ``basin_states`` measures it, but without the partner's
    domain), the participation volume V_PR and the single-well energy e. Checks of the
    exact side: t_sw = sqrt((E_a - E_b)^2 - (e_i - e_j)^2) / 2 (eq. 7 solved for t), and,
    for tuned pairs, ``t_flux``: Herring's flux of the exact single-well states through the
    boundary of i's domain, sum over the bonds (x in i's domain, y outside) of
    H_xy (phi_j(x) phi_i(y) - phi_i(x) phi_j(y)).
LL side (the same formula as ``pairs._amplitude``)
    rho_ij (``basin_distances`` on the metric landscape), the tube of the pair
    (``pair_tubes``: midpoint metric w and cross-section, volume V_ij), and

    * ``herring_tail``: (hbar^2 w / m) A_i A_j e^{-rho} x section (the package default,
      ``amplitude="herring"``, ``state_amplitude="tail"``, with single-well tails);
    * ``herring_vpr``: the same with c = V_PR^{-1/2} of the single-well states
      (``state_amplitude="volume"``);
    * ``herring_basin``: the same with c = |B|^{-1/2} (basin volumes, no eigenproblem);
    * ``a13``: eq. A13, (E_F - min V) c_i c_j e^{-rho} (V_ij + |B_i| + |B_j|), c = V_PR^{-1/2};
    * ``a16``: eq. A16, Delta_xi rho e^{-rho} (prefactor 1, Delta_xi of the pipeline);
    * ``package`` (tuned pairs): the package's own t_ab (``PairModel.t``) for its states of
      i and j nearest the single-well energies (its tails are measured in its own boxes).

    For tuned pairs, herring_tail / t_flux is split exactly into two factors at the Agmon
    midpoint cell x* (the cell minimizing max(rho(., B_i), rho(., B_j)) on the box): the
    *tail factor* A_i A_j e^{-rho_ij} / (phi_i phi_j)(x*) (the LL tails against the exact
    single-well states there) and the *section factor* (w section)_LL / (w(x*) section_exact),
    section_exact being the cross-section that gives the exact flux from (phi_i phi_j)(x*).

Per model: the ratios t / t_exact (median, quartiles, fractions within factors 2 and 3), the
slope of ln(ratio) against rho, the fitted slope s of ln t_exact = a - s rho (1 if the Agmon
distance sets the decay), and whether the package's pair model holds the pair's states and
resolves them in one box.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp

import mottscape as ms
from mottscape.agmon import PairDistances, basin_distances
from mottscape.basin_states import _tails, nearest_basin
from mottscape.box_solve import box_eigenpairs
from mottscape.pairs import RESOLVE_LEAK, _amplitude, _mid_mass, crossed_level_rho
from mottscape.sample import make_sample
from mottscape.state_boxes import PADDING_AGMON, clipped, mean_outside, padding_cells
from mottscape.tube import pair_tubes

HERE = Path(__file__).resolve().parent


def _box_axes(sample, slices, pad) -> list[np.ndarray]:
    """Unwrapped cell indices of a padded box, per axis (the package's box rule)."""
    lo = np.array([sl.start for sl in slices]) - pad
    hi = np.array([sl.stop for sl in slices]) + pad
    lo, hi = clipped(lo[None], hi[None], np.asarray(sample.grid.shape), sample.grid.periodic)
    return [np.arange(x, y) for x, y in zip(lo[0], hi[0], strict=True)]

OUT = HERE / "resonant_pairs.json"
#: Options of the package's pair model (``--state-amplitude``); default: the package defaults.
PIPE_OPTIONS: dict = {}

#: A hybrid: its two largest basin-domain weights sum to at least this ...
TWO_BASINS = 0.8
#: ... and each of them is at least this.
EACH_BASIN = 0.15
#: The weights of a and b (normalized to the two basins) must agree swapped within this.
Q_AGREE = 0.1
#: A third window state with this much weight on basin i or j makes the pair three-level.
THIRD = 0.2
#: The partner basin's cells are raised by this many hopping energies for the single well.
RAISE = 20.0
#: Frequencies of the pipeline run (its pair model's window is hbar omega_max).
OMEGA = np.geomspace(5e-3, 0.2, 6)
SHAPE = (128, 128)
#: Also measure tuned resonances (``--no-tuned`` turns them off).
TUNED = True

MODELS = {
    # training model: docs/validation/block_2d.toml at 128^2, seeds not used there
    "block": dict(make=lambda s: ms.disorder.block(SHAPE, block=4, width=4.0, seed=s),
                  fermi=0.9, seeds=tuple(range(11, 31))),
    # held-out: docs/investigation/gaussian_2d.toml at 128^2
    "gaussian": dict(make=lambda s: ms.disorder.gaussian(SHAPE, correlation_length=3.0,
                                                         amplitude=1.0, seed=s),
                     fermi=None, seeds=tuple(range(211, 231))),
    # held-out: docs/investigation/alloy_2d.toml at 128^2
    "alloy": dict(make=lambda s: ms.disorder.binary_alloy(SHAPE, concentration=0.2, v_a=0.0,
                                                          v_b=2.0, smoothing_length=1.0,
                                                          seed=s),
                  fermi=None, seeds=tuple(range(311, 331))),
    # a 1D chain: docs/validation/block_1d.toml (blocks of 8 sites, width 4, E_F = 1) on
    # 4096 sites
    "block_1d": dict(make=lambda s: ms.disorder.block((4096,), block=8, width=4.0, seed=s),
                     fermi=1.0, seeds=tuple(range(411, 431))),
    # held-out 3D: docs/validation/anderson_3d.toml (box [0, 20], E_F = 4.5) at 20^3, as the
    # reduced study of tests/test_validation_bands.py, seeds not used there
    "anderson_3d": dict(make=lambda s: ms.disorder.anderson((20, 20, 20), width=20.0, seed=s),
                        fermi=4.5, seeds=tuple(range(511, 531))),
}
#: E_F at this quantile of V_u when the model does not fix it.
QUANTILE = 0.10


# ---------------------------------------------------------------------- exact side
def domain_weights(psi: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """q[k, a]: weight of state a on the domain of basin k (cells nearest to it)."""
    dom = nearest_basin(labels).ravel() - 1
    p2 = psi**2
    n = int(labels.max())
    q = np.zeros((n, psi.shape[1]))
    inside = dom >= 0
    for a in range(psi.shape[1]):
        q[:, a] = np.bincount(dom[inside], weights=p2[inside, a], minlength=n)
    return q / p2.sum(axis=0)


def resonant_pairs(E: np.ndarray, q: np.ndarray) -> tuple[list[dict], dict]:
    """Exact resonant pairs (see the module notes) and the counts of the cuts."""
    top = np.argsort(q, axis=0)[::-1][:2]  # two largest domains per state
    w1 = q[top[0], np.arange(E.size)]
    w2 = q[top[1], np.arange(E.size)]
    hybrid = (w1 + w2 >= TWO_BASINS) & (w2 >= EACH_BASIN)
    groups: dict[tuple[int, int], list[int]] = {}
    for a in np.flatnonzero(hybrid):
        key = (int(min(top[0, a], top[1, a])), int(max(top[0, a], top[1, a])))
        groups.setdefault(key, []).append(int(a))
    cuts = {"hybrids": int(hybrid.sum()), "groups": len(groups), "not_two": 0,
            "q_disagree": 0, "third_state": 0}
    out = []
    for (i, j), members in sorted(groups.items()):
        if len(members) != 2:
            cuts["not_two"] += 1
            continue
        a, b = members
        qa = q[[i, j], a] / q[[i, j], a].sum()
        qb = q[[i, j], b] / q[[i, j], b].sum()
        if abs(qa[0] - qb[1]) > Q_AGREE:
            cuts["q_disagree"] += 1
            continue
        others = np.setdiff1d(np.arange(E.size), [a, b])
        if others.size and max(q[i, others].max(), q[j, others].max()) >= THIRD:
            cuts["third_state"] += 1
            continue
        qi = 0.5 * (qa[0] + qb[1])  # a's and b's estimate of the same mixing, averaged
        out.append(dict(i=i, j=j, a=a, b=b, ea=float(E[a]), eb=float(E[b]), qi=float(qi),
                        qa=float(qa[0]), qb=float(qb[1]),
                        t_exact=float(abs(E[a] - E[b]) * math.sqrt(qi * (1 - qi)))))
    return out, cuts


# ---------------------------------------------------------------------- single wells
def single_tail(phi: np.ndarray, metric_box: np.ndarray, source: np.ndarray,
                exclude: np.ndarray, sample) -> float:
    """Tail amplitude A of one single-well state, as ``basin_states._tails`` measures it
    (median of |psi| e^{rho} over the cells at Agmon distance 1-3 from the basin) but
    without the partner basin's domain ``exclude``, where the raised well cuts the tail."""
    from mottscape.agmon import distance_field
    from mottscape.basin_states import TAIL_RANGE
    from mottscape.grid import make_grid

    grid = make_grid(metric_box.shape, sample.grid.spacing)
    rho = distance_field(metric_box, grid, source, bound=TAIL_RANGE[1] + 1.0).ravel()
    sel = (rho >= TAIL_RANGE[0]) & (rho <= TAIL_RANGE[1]) & ~exclude.ravel()
    if not sel.any():
        return math.nan
    with np.errstate(divide="ignore"):
        logs = np.log(np.abs(phi[sel]) / math.sqrt(sample.grid.cell_volume)) + rho[sel]
    return float(np.exp(np.median(logs)))


def single_well(sample, basins, metric, nearest, pad, k: int, partner: int,
                psi_ab: np.ndarray, lo: float, hi: float) -> dict:
    """The state of basin k alone: its box with the partner basin's cells raised."""
    sl = ndi.find_objects(basins.labels, basins.n)[k]
    axes = _box_axes(sample, sl, pad)
    shape = sample.grid.shape
    mesh = np.meshgrid(*axes, indexing="ij")
    flat = np.ravel_multi_index([m % n for m, n in zip(mesh, shape, strict=True)],
                                shape).ravel()
    A = sample.hamiltonian.matrix("csr")[flat][:, flat]
    lab_box = basins.labels.ravel()[flat]
    raised = lab_box == partner + 1
    hopping = float(np.max(np.abs((A - sp.diags(A.diagonal())).data), initial=1.0))
    A = (A + sp.diags(np.where(raised, RAISE * hopping, 0.0))).tocsr()
    w, v = box_eigenpairs(A, lo, hi)
    if w.size == 0:
        return dict(ok=False)
    overlap = np.sum((v.T @ psi_ab[flat]) ** 2, axis=1)  # |<phi|a>|^2 + |<phi|b>|^2
    n = int(np.argmax(overlap))
    box_shape = tuple(len(x) for x in axes)
    met_box = metric.ravel()[flat].reshape(box_shape)
    src = (lab_box == k + 1).reshape(box_shape)
    tail = single_tail(v[:, n], met_box, src, nearest.ravel()[flat] == partner + 1, sample)
    tail_all = _tails(v[:, [n]], met_box, src, sample)[0]
    cell = sample.grid.cell_volume
    return dict(ok=True, energy=float(w[n]), overlap=float(overlap[n]), tail=float(tail),
                tail_all=float(tail_all),
                vpr=float(cell / np.sum(v[:, n] ** 4)), partner_in_box=bool(raised.any()))


# ---------------------------------------------------------------------- tuned resonances
#: Agmon-distance bins of the tuned pairs, and how many basin pairs per bin and sample.
TUNED_BINS = np.arange(1.0, 9.0, 1.0)
TUNED_PER_BIN = 2
#: Half-width of the eigenvalue window around the single-well energy (hopping energies).
TUNED_HALF = 0.05


def _union_box(sample, objects, ks, pad):
    """Cells (flat indices) and shape of the bounding box of basins ``ks`` padded by ``pad``."""
    sls = [objects[k] for k in ks]
    union = tuple(slice(min(sl[a].start for sl in sls), max(sl[a].stop for sl in sls))
                  for a in range(sample.ndim))
    axes = _box_axes(sample, union, pad)
    mesh = np.meshgrid(*axes, indexing="ij")
    shape = sample.grid.shape
    flat = np.ravel_multi_index([m % n for m, n in zip(mesh, shape, strict=True)],
                                shape).ravel()
    return flat, tuple(len(x) for x in axes)


def _well_state(A, dom_k: np.ndarray, target: float, half: float):
    """Box eigenstate nearest ``target`` with >= 1/2 of its weight on the domain ``dom_k``."""
    w, v = box_eigenpairs(A, target - half, target + half)
    if w.size == 0:
        return None
    weight = (v[dom_k] ** 2).sum(axis=0)
    ok = np.flatnonzero(weight >= 0.5)
    if ok.size == 0:
        return None
    n = ok[np.argmin(np.abs(w[ok] - target))]
    return float(w[n]), v[:, n]


def tuned_pair(sample, basins, metric, objects, nearest, pad, i: int, j: int, ef: float,
               window: float) -> dict | None:
    """Bring the single-well states of basins i, j into resonance and measure t exactly.

    On the union box of the two basins (padded like the pair model's boxes): the single-well
    state of i nearest E_F (j's cells raised), the state of j nearest to it (i's cells raised),
    a constant shift of j's basin cells (Newton steps on the first-order shift) until their
    energies agree to 1e-8, then the two-well box with that shift: t = |E_a - E_b| sqrt(q_i q_j)
    of its two hybrids, and t_sw from the residual detuning.
    """
    flat, box_shape = _union_box(sample, objects, (i, j), pad)
    A0 = sample.hamiltonian.matrix("csr")[flat][:, flat]
    lab, dom = basins.labels.ravel()[flat], nearest.ravel()[flat]
    mi, mj = lab == i + 1, lab == j + 1
    di, dj = dom == i + 1, dom == j + 1
    hopping = float(np.max(np.abs((A0 - sp.diags(A0.diagonal())).data), initial=1.0))
    raise_i, raise_j = sp.diags(RAISE * hopping * mi), sp.diags(RAISE * hopping * mj)
    si = _well_state((A0 + raise_j).tocsr(), di, ef, window)
    if si is None:
        return None
    shift = np.zeros(flat.size)
    sj = _well_state((A0 + raise_i).tocsr(), dj, si[0], window)
    if sj is None:
        return None
    detuning0 = si[0] - sj[0]
    for _ in range(6):
        delta = si[0] - sj[0]
        if abs(delta) < 1e-8:
            break
        shift[mj] += delta / max(float((sj[1][mj] ** 2).sum()), 0.2)
        sj = _well_state((A0 + raise_i + sp.diags(shift)).tocsr(), dj, si[0], TUNED_HALF)
        if sj is None:
            return None
    # Herring's flux of the exact single-well states through the boundary of i's domain
    coo = sp.triu(A0, k=1).tocoo()
    cross = di[coo.row] != di[coo.col]
    x = np.where(di[coo.row], coo.row, coo.col)[cross]  # the end in i's domain
    y = np.where(di[coo.row], coo.col, coo.row)[cross]
    flux = abs(float(np.sum(coo.data[cross] * (sj[1][x] * si[1][y] - si[1][x] * sj[1][y]))))
    w, v = box_eigenpairs((A0 + sp.diags(shift)).tocsr(), si[0] - TUNED_HALF, si[0] + TUNED_HALF)
    if w.size < 2:
        return None
    qi, qj = (v[di] ** 2).sum(axis=0), (v[dj] ** 2).sum(axis=0)
    a, b = np.argsort(qi + qj)[::-1][:2]
    both = np.array([qi[a] + qj[a], qi[b] + qj[b]])
    qa = qi[a] / both[0]
    qb = qj[b] / both[1]
    met = metric.ravel()[flat].reshape(box_shape)
    tails = [single_tail(s[1], met, m.reshape(box_shape), other, sample)
             for s, m, other in ((si, mi, dj), (sj, mj, di))]
    tails_all = [_tails(s[1][:, None], met, m.reshape(box_shape), sample)[0]
                 for s, m in ((si, mi), (sj, mj))]
    cell = sample.grid.cell_volume
    split = abs(w[a] - w[b])
    arg = split**2 - (si[0] - sj[0]) ** 2
    q = 0.5 * (qa + qb)
    mid = _midpoint(sample, met, mi.reshape(box_shape), mj.reshape(box_shape), si[1], sj[1],
                    tails, flux, float(np.mean(sample.mass)))
    return dict(mid, i=i, j=j, ea=float(w[a]), eb=float(w[b]), qa=float(qa), qb=float(qb),
                qi=float(q), two_basins=float(both.min()), detuning=float(detuning0),
                shift=float(shift[mj].mean()) if mj.any() else 0.0,
                residual=float(si[0] - sj[0]),
                t_exact=float(split * math.sqrt(q * (1 - q))),
                t_single_well=float(0.5 * math.sqrt(arg)) if arg > 0 else math.nan,
                t_flux=flux,
                well_i=dict(ok=True, energy=si[0], tail=float(tails[0]),
                            tail_all=float(tails_all[0]),
                            vpr=float(cell / np.sum(si[1] ** 4)), overlap=1.0,
                            partner_in_box=True),
                well_j=dict(ok=True, energy=sj[0], tail=float(tails[1]),
                            tail_all=float(tails_all[1]),
                            vpr=float(cell / np.sum(sj[1] ** 4)), overlap=1.0,
                            partner_in_box=True),
                model_holds=False, model_boxed=False)


def _midpoint(sample, met, src_i, src_j, phi_i, phi_j, tails, flux, mass) -> dict:
    """The single-well states at the Agmon midpoint x* against their LL tails A e^{-rho}.

    x* minimizes max(rho(., B_i), rho(., B_j)) on the box (the midpoint of the geodesic).
    Returns, per well, |phi(x*)| / (A e^{-rho(x*)}) (1 if psi ~ A e^{-rho} holds out to x*),
    and the cross-section that makes Herring's formula give the exact flux with the exact
    states: flux / ((hbar^2 w(x*) / m) |phi_i phi_j|(x*)).
    """
    from mottscape.agmon import distance_field
    from mottscape.grid import make_grid

    grid = make_grid(met.shape, sample.grid.spacing)
    ri = distance_field(met, grid, src_i).ravel()
    rj = distance_field(met, grid, src_j).ravel()
    x = int(np.argmin(np.maximum(ri, rj)))
    cell = math.sqrt(sample.grid.cell_volume)
    pi, pj = abs(phi_i[x]) / cell, abs(phi_j[x]) / cell
    kin = sample.units.kinetic
    w = float(met.ravel()[x])
    section = flux / (2.0 * kin * w / mass * pi * pj) if w > 0 and pi * pj > 0 else math.nan
    return dict(mid_rho_i=float(ri[x]), mid_rho_j=float(rj[x]),
                mid_ratio_i=float(pi / (tails[0] * math.exp(-ri[x]))),
                mid_ratio_j=float(pj / (tails[1] * math.exp(-rj[x]))),
                mid_w_exact_point=w, section_exact=float(section))


def crossed_floor(basins, tubes, n: int, metric, ef: float, extra: np.ndarray) -> dict:
    """What ``crossed_basins="level"`` adds to the geodesic of pair n.

    ``crossed_floor_rho``: the extra Agmon distance (``extra``, from
    :func:`mottscape.pairs.crossed_level_rho`); ``crossed_levels``: E_k - E_F of the basins the
    path crosses where the metric vanishes (below E_F: negative).
    """
    _, k = tubes.path_items(np.array([n]))
    lab = basins.labels.ravel()[tubes.path_cells[k]] - 1
    inside = (metric.ravel()[tubes.path_cells[k]] == 0) & (lab >= 0) & ~np.isin(
        lab, [lab[0], lab[-1]])
    levels = sorted({float(basins.energies[x] - ef) for x in np.unique(lab[inside])})
    return dict(crossed_floor_rho=float(extra[n]), crossed_levels=levels)


def tuned_pairs(sample, pipe, ef: float, window: float, seed: int) -> tuple[list[dict], dict]:
    """Tuned resonances of basin pairs of the pair model, a few per bin of rho."""
    model = pipe.pair_model
    basins, land, mland = pipe.basins, pipe.landscape, pipe.metric_landscape
    metric = mland.agmon_metric(ef)
    dist, tubes = model.distances, model.tubes
    owners = set(np.unique(model.states.basin).tolist())
    rng = np.random.default_rng(seed)
    objects = ndi.find_objects(basins.labels, basins.n)
    nearest = nearest_basin(basins.labels)
    pad = padding_cells(sample, PADDING_AGMON, mean_outside(metric, basins))
    cand = np.array([n for n in range(len(dist)) if int(dist.i[n]) in owners
                     and int(dist.j[n]) in owners], int)
    chosen = []
    for lo in TUNED_BINS:
        inbin = cand[(dist.rho[cand] >= lo) & (dist.rho[cand] < lo + 1.0)]
        chosen.extend(rng.permutation(inbin)[:TUNED_PER_BIN].tolist())
    out, cuts = [], {"tried": len(chosen), "no_state": 0, "not_hybrid": 0}
    st, bp = model.states, model.states.box_pairs
    res = bp.leakage <= RESOLVE_LEAK
    boxed_basins = {(int(min(x, y)), int(max(x, y)))
                    for x, y in zip(st.basin[bp.a[res]], st.basin[bp.b[res]], strict=True)}
    extra, _ = crossed_level_rho(tubes, basins, metric, ef, float(np.mean(sample.mass)),
                                 sample.units.kinetic, sample.grid)
    for n in chosen:
        got = tuned_pair(sample, basins, metric, objects, nearest, pad, int(dist.i[n]),
                         int(dist.j[n]), ef, window)
        if got is None:
            cuts["no_state"] += 1
            continue
        if got["two_basins"] < TWO_BASINS or min(got["qi"], 1 - got["qi"]) < EACH_BASIN \
                or abs(got["qa"] - got["qb"]) > Q_AGREE:
            cuts["not_hybrid"] += 1
            continue
        got.update(rho=float(dist.rho[n]), mid_metric=float(tubes.mid_metric[n]),
                   mid_section=float(tubes.mid_section[n]),
                   tube_volume=float(tubes.volume[n]), crossed=float(tubes.crossed[n]),
                   vol_i=float(basins.volumes[got["i"]]), vol_j=float(basins.volumes[got["j"]]),
                   **crossed_floor(basins, tubes, n, metric, ef, extra))
        # the package's own t_ab for its states of i and j nearest the single-well energies
        sel = np.flatnonzero(model.pair == n)
        got["model_holds"] = bool(sel.size)
        got["model_boxed"] = (got["i"], got["j"]) in boxed_basins
        got["t_package"] = math.nan
        if sel.size:
            ei0 = got["well_i"]["energy"]
            ej0 = ei0 - got["detuning"]
            k = sel[np.argmin(np.abs(st.energies[model.a[sel]] - ei0)
                              + np.abs(st.energies[model.b[sel]] - ej0))]
            got["t_package"] = float(model.t[k])
            got["package_read"] = int(getattr(model, "midpoint_read", np.zeros(k + 1))[k])
            got["package_boxed"] = bool(model.boxed[k])
            got["package_flux"] = bool(getattr(model, "flux_read", np.zeros(k + 1, bool))[k])
        out.append(got)
    if out:
        sub = PairDistances(i=np.array([p["i"] for p in out]), j=np.array([p["j"] for p in out]),
                            rho=np.array([p["rho"] for p in out]), n=dist.n, bound=dist.bound,
                            sources=dist.sources, energy=ef)
        _ll_amplitudes(out, sub, _Tubes(out), land, pipe, ef)
    return out, cuts


class _Tubes:
    """The midpoint metric and section of listed pairs, as ``pairs._amplitude`` reads them."""

    def __init__(self, pairs: list[dict]):
        self.mid_metric = np.array([p["mid_metric"] for p in pairs])
        self.mid_section = np.array([p["mid_section"] for p in pairs])


# ---------------------------------------------------------------------- one sample
def one_sample(model: str, seed: int, window: float, natural: bool = True) -> dict:
    """Both measurements on one sample (``natural=False``: the tuned resonances only)."""
    spec = MODELS[model]
    t0 = time.perf_counter()
    V = spec["make"](seed)
    sample = make_sample(V)
    land = ms.solve_landscape(V)
    ef = spec["fermi"] if spec["fermi"] is not None else float(
        np.quantile(land.effective_potential, QUANTILE))
    pipe = ms.run_pipeline(sample, ef, OMEGA, landscape=land, pair_model=True, **PIPE_OPTIONS)
    land, mland, basins = pipe.landscape, pipe.metric_landscape, pipe.basins
    metric = mland.agmon_metric(ef)
    tuned, tuned_cuts = tuned_pairs(sample, pipe, ef, window, seed) if TUNED else ([], {})
    if natural:
        E, psi = ms.exact_eigenstates(sample, ef - window, ef + window)
    else:
        E, psi = np.zeros(0), np.zeros((sample.grid.size, 0))
    q = domain_weights(psi, basins.labels)
    found, cuts = resonant_pairs(E, q)
    row = dict(model=model, seed=seed, fermi_energy=ef, n_basins=int(basins.n),
               basin_fraction=float(np.mean(basins.labels > 0)), n_exact=int(E.size),
               delta_xi=float(pipe.statistics.delta_xi), cuts=cuts, pairs=[], tuned=tuned,
               tuned_cuts=tuned_cuts)
    if not found:
        row["seconds"] = time.perf_counter() - t0
        return row
    # rho_ij and tubes of the pairs' basins
    src = np.unique([p[k] for p in found for k in ("i", "j")])
    dist = basin_distances(mland, basins, energy=ef, sources=src, bound=25.0)
    index = {(int(i), int(j)): n for n, (i, j) in enumerate(zip(dist.i, dist.j, strict=True))}
    keep = [p for p in found if (p["i"], p["j"]) in index]
    row["cuts"]["no_rho"] = len(found) - len(keep)
    if not keep:
        row["seconds"] = time.perf_counter() - t0
        return row
    rows = np.array([index[(p["i"], p["j"])] for p in keep])
    sub = PairDistances(i=dist.i[rows], j=dist.j[rows], rho=dist.rho[rows], n=dist.n,
                        bound=dist.bound, sources=dist.sources, energy=ef)
    tubes = pair_tubes(land, mland, basins, sub, pipe.options.cross_section)
    pad = padding_cells(sample, PADDING_AGMON, mean_outside(metric, basins))
    nearest = nearest_basin(basins.labels)
    lo, hi = ef - window - 0.1, ef + window + 0.1
    model_states = pipe.pair_model.states
    boxed_keys = {(int(a), int(b)) for a, b in zip(model_states.box_pairs.a,
                                                   model_states.box_pairs.b, strict=True)}
    for n, p in enumerate(keep):
        psi_ab = psi[:, [p["a"], p["b"]]]
        wi = single_well(sample, basins, metric, nearest, pad, p["i"], p["j"], psi_ab, lo, hi)
        wj = single_well(sample, basins, metric, nearest, pad, p["j"], p["i"], psi_ab, lo, hi)
        p.update(rho=float(sub.rho[n]), mid_metric=float(tubes.mid_metric[n]),
                 mid_section=float(tubes.mid_section[n]), tube_volume=float(tubes.volume[n]),
                 vol_i=float(basins.volumes[p["i"]]), vol_j=float(basins.volumes[p["j"]]),
                 well_i=wi, well_j=wj)
        # the package's pair model: does it hold both states, and in one box?
        ma = np.argmin(np.abs(model_states.energies - p["ea"])) if model_states.n else -1
        mb = np.argmin(np.abs(model_states.energies - p["eb"])) if model_states.n else -1
        held = bool(model_states.n and abs(model_states.energies[ma] - p["ea"]) < 1e-3
                    and abs(model_states.energies[mb] - p["eb"]) < 1e-3 and ma != mb)
        p["model_holds"] = held
        p["model_boxed"] = bool(held and (min(ma, mb), max(ma, mb)) in boxed_keys)
    _ll_amplitudes(keep, sub, tubes, land, pipe, ef)
    row["pairs"] = keep
    row["seconds"] = time.perf_counter() - t0
    return row


def _ll_amplitudes(pairs: list[dict], sub: PairDistances, tubes, land, pipe, ef: float) -> None:
    """Fill t_LL of every variant (same formula as ``pairs._amplitude``)."""
    n = len(pairs)
    idx = np.arange(n)
    rho = sub.rho
    mass = _mid_mass(land, sub)
    kin = land.units.kinetic
    dxi = float(pipe.statistics.delta_xi)
    frame = ef + land.shift

    def get(key, side):
        return np.array([p[f"well_{side}"].get(key, math.nan) if p[f"well_{side}"]["ok"]
                         else math.nan for p in pairs])

    c_tail = get("tail", "i") * get("tail", "j")
    c_vpr = 1.0 / np.sqrt(get("vpr", "i") * get("vpr", "j"))
    c_basin = 1.0 / np.sqrt(np.array([p["vol_i"] * p["vol_j"] for p in pairs]))
    vols = np.array([p["tube_volume"] + p["vol_i"] + p["vol_j"] for p in pairs])
    out = {}
    for name, c in (("herring_tail", c_tail), ("herring_vpr", c_vpr),
                    ("herring_basin", c_basin)):
        out[name] = _amplitude("herring", None, rho, tubes, idx, c * np.exp(-rho), frame, dxi,
                               kin, mass)
    out["a13"] = _amplitude("a13", c_vpr * np.exp(-rho) * vols, rho, tubes, idx, c_vpr, frame,
                            dxi, kin, mass)
    out["a16"] = _amplitude("a16", None, rho, tubes, idx, None, frame, dxi, kin, mass)
    for k, p in enumerate(pairs):
        for name, t in out.items():
            p[f"t_{name}"] = float(t[k])
        ei, ej = p["well_i"].get("energy", math.nan), p["well_j"].get("energy", math.nan)
        arg = (p["ea"] - p["eb"]) ** 2 - (ei - ej) ** 2
        p["t_single_well"] = float(0.5 * math.sqrt(arg)) if arg > 0 else math.nan


# ---------------------------------------------------------------------- report
VARIANTS = ("herring_tail", "herring_vpr", "herring_basin", "a13", "a16")


def ratio_stats(t_ll: np.ndarray, t_ex: np.ndarray, rho: np.ndarray) -> dict:
    ok = np.isfinite(t_ll) & (t_ll > 0) & (t_ex > 0)
    zero = int(np.sum(t_ll == 0))  # herring: no non-degenerate geodesic part (Gamma_1 empty)
    r = t_ll[ok] / t_ex[ok]
    if r.size == 0:
        return {"n": 0, "n_zero": zero}
    lr = np.abs(np.log(r))
    out = {"n": int(r.size), "n_zero": zero, "median": float(np.median(r)),
           "q25": float(np.quantile(r, 0.25)), "q75": float(np.quantile(r, 0.75)),
           "within2": float(np.mean(lr <= math.log(2))),
           "within3": float(np.mean(lr <= math.log(3)))}
    if r.size >= 5 and np.ptp(rho[ok]) > 0:
        out["slope_ratio"] = float(np.polyfit(rho[ok], np.log(r), 1)[0])
        out["slope_ll"] = float(-np.polyfit(rho[ok], np.log(t_ll[ok]), 1)[0])
    return out


def _quartiles(x: np.ndarray) -> list[float]:
    x = x[np.isfinite(x)]
    return [float(v) for v in np.quantile(x, [0.25, 0.5, 0.75])] if x.size else []


def _package_subsets(pairs: list[dict], t_ex: np.ndarray, rho: np.ndarray) -> dict:
    """The package's t / t_exact where the pair model uses t (not resolved in one box), split
    by how t was obtained: the lattice flux read on both box vectors (``amplitude="flux"``),
    or not (Herring's Laplace estimate), and for geodesics that cross another basin."""
    t = np.array([p.get("t_package", math.nan) for p in pairs])
    used = ~np.array([bool(p.get("package_boxed", True)) for p in pairs])
    flux = np.array([bool(p.get("package_flux", False)) for p in pairs])
    crossed = np.array([p.get("crossed", math.nan) > 0 for p in pairs])
    out = {}
    for name, sel in (("package, t used", used), ("package, t used, flux read", used & flux),
                      ("package, t used, flux not read", used & ~flux),
                      ("package, t used, geodesic crosses a basin", used & crossed),
                      ("package, t used, crosses none", used & ~crossed)):
        out[name] = ratio_stats(np.where(sel, t, math.nan), t_ex, rho)
    return out


def summarize(rows: list[dict], key: str = "pairs") -> dict:
    pairs = [p for row in rows for p in row[key]]
    if not pairs:
        return {"n_pairs": 0}
    t_ex = np.array([p["t_exact"] for p in pairs])
    rho = np.array([p["rho"] for p in pairs])
    out = {"n_pairs": len(pairs), "rho_range": [float(rho.min()), float(rho.max())],
           "rho_median": float(np.median(rho)),
           "t_exact_range": [float(t_ex.min()), float(t_ex.max())],
           "model_holds": float(np.mean([p["model_holds"] for p in pairs])),
           "model_boxed": float(np.mean([p["model_boxed"] for p in pairs])),
           "partner_in_box": float(np.mean([p["well_i"].get("partner_in_box", False)
                                            for p in pairs])),
           "single_well_overlap_median": float(np.median(
               [min(p["well_i"].get("overlap", 0), p["well_j"].get("overlap", 0))
                for p in pairs]))}
    if len(pairs) >= 3 and np.ptp(rho) > 0:
        s, a = np.polyfit(rho, np.log(t_ex), 1)
        out["slope_exact"] = float(-s)
        out["intercept_exact"] = float(a)
    out["ratios"] = {name: ratio_stats(np.array([p[f"t_{name}"] for p in pairs]), t_ex, rho)
                     for name in (*VARIANTS, "single_well", "flux", "package")
                     if f"t_{name}" in pairs[0]}
    if key == "tuned" and "package_boxed" in pairs[0]:
        out["ratios"].update(_package_subsets(pairs, t_ex, rho))
    if "mid_ratio_i" in pairs[0]:
        # Herring's LL formula over the exact flux, split exactly into two factors at the
        # midpoint cell x*: the tails, A_i A_j e^{-rho_ij} / (phi_i phi_j)(x*), and the rest,
        # (w section)_LL / (w(x*) section_exact) (section_exact: the one giving the exact flux)
        use = [p for p in pairs if p["mid_section"] > 0 and p["mid_w_exact_point"] > 0]
        if use:
            r_use = np.array([p["rho"] for p in use])
            tail = np.array([math.exp(-p["rho"] + p["mid_rho_i"] + p["mid_rho_j"])
                             / (p["mid_ratio_i"] * p["mid_ratio_j"]) for p in use])
            sec = np.array([p["mid_section"] * p["mid_metric"]
                            / (p["section_exact"] * p["mid_w_exact_point"]) for p in use])
            amp = np.array([p[f"mid_ratio_{k}"] for p in use for k in "ij"])
            out["midpoint_amplitude_ratio"] = _quartiles(amp)
            out["tail_factor"] = _quartiles(tail)
            out["section_factor"] = _quartiles(sec)
            if np.ptp(r_use) > 0:
                out["tail_factor_slope"] = float(np.polyfit(r_use, np.log(tail), 1)[0])
                out["section_factor_slope"] = float(np.polyfit(r_use, np.log(sec), 1)[0])
    # the ratios by bin of rho
    out["by_rho"] = []
    for lo in (0.0, 1.0, 3.0, 5.0, 7.0):
        hi = {0.0: 1.0, 1.0: 3.0, 3.0: 5.0, 5.0: 7.0, 7.0: 9.0}[lo]
        sel = (rho >= lo) & (rho < hi)
        if not sel.any():
            continue
        rec = {"rho": [lo, hi], "n": int(sel.sum()),
               "t_exact_median": float(np.median(t_ex[sel]))}
        for name in ("package", "herring_tail", "a16"):
            if f"t_{name}" in pairs[0]:
                t = np.array([p[f"t_{name}"] for p in pairs])[sel]
                ok = t > 0
                rec[name] = float(np.median(t[ok] / t_ex[sel][ok])) if ok.any() else math.nan
        out["by_rho"].append(rec)
    return out


def table(name: str, rows: list[dict], s: dict, key: str = "pairs") -> str:
    lines = [f"## {name} ({'exact resonant pairs' if key == 'pairs' else 'tuned resonances'})"
             f": {len(rows)} samples, E_F = "
             + ", ".join(f"{r['fermi_energy']:.3f}" for r in rows)
             + "; basins " + ", ".join(str(r["n_basins"]) for r in rows)
             + "; exact states " + ", ".join(str(r["n_exact"]) for r in rows)]
    if not s.get("n_pairs"):
        lines.append("no resonant pairs")
        return "\n".join(lines)
    ckey = "cuts" if key == "pairs" else "tuned_cuts"
    cuts = {k: sum(r[ckey].get(k, 0) for r in rows) for k in rows[0][ckey]}
    lines.append(f"resonant pairs {s['n_pairs']} (cuts: {cuts}); rho {s['rho_range'][0]:.2f}-"
                 f"{s['rho_range'][1]:.2f} (median {s['rho_median']:.2f}); t_exact "
                 f"{s['t_exact_range'][0]:.2g}-{s['t_exact_range'][1]:.2g}; slope of ln "
                 f"t_exact vs rho {s.get('slope_exact', math.nan):.2f}")
    lines.append(f"package pair model holds both states {s['model_holds']:.0%}, resolves "
                 f"them in one box {s['model_boxed']:.0%}; partner inside the box "
                 f"{s['partner_in_box']:.0%}; single-well overlap median "
                 f"{s['single_well_overlap_median']:.2f}")
    if s.get("tail_factor"):
        a, c = s["tail_factor"], s["section_factor"]
        lines.append(f"herring_tail / exact = tail factor x section factor: tails A_i A_j "
                     f"e^-rho / exact phi_i phi_j at the midpoint {a[1]:.3g} (IQR {a[0]:.2g}-"
                     f"{a[2]:.2g}, d ln / d rho {s.get('tail_factor_slope', math.nan):+.2f}); "
                     f"w x section, LL / exact flux {c[1]:.3g} (IQR {c[0]:.2g}-{c[2]:.2g}, "
                     f"d ln / d rho {s.get('section_factor_slope', math.nan):+.2f})")
    if s.get("by_rho"):
        names = [k for k in ("package", "herring_tail", "a16") if k in s["by_rho"][0]]
        lines.append("| rho | pairs | median t_exact | " + " | ".join(
            f"median {k}/exact" for k in names) + " |")
        lines.append("|---" * (3 + len(names)) + "|")
        for rec in s["by_rho"]:
            lines.append(f"| {rec['rho'][0]:g}-{rec['rho'][1]:g} | {rec['n']} | "
                         f"{rec['t_exact_median']:.2g} | "
                         + " | ".join(f"{rec[k]:.3g}" for k in names) + " |")
        lines.append("")
    lines.append("| t | n (t = 0) | median t/t_exact | IQR | within x2 | within x3 | "
                 "d ln(ratio)/d rho | slope of ln t |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for k, v in s["ratios"].items():
        if not v.get("n"):
            lines.append(f"| {k} | 0 ({v.get('n_zero', 0)}) | - | - | - | - | - | - |")
            continue
        lines.append(f"| {k} | {v['n']} ({v['n_zero']}) | {v['median']:.3g} | "
                     f"{v['q25']:.2g}-{v['q75']:.2g} | {v['within2']:.0%} | {v['within3']:.0%} | "
                     f"{v.get('slope_ratio', math.nan):+.2f} | "
                     f"{v.get('slope_ll', math.nan):.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="block,gaussian,alloy,block_1d")
    p.add_argument("--seeds", type=int, default=20, help="samples per model (<= 20)")
    p.add_argument("--window", type=float, default=0.2, help="W, hopping energies")
    p.add_argument("--no-tuned", action="store_true", help="skip the tuned resonances")
    p.add_argument("--report", action="store_true",
                   help="only reprint the tables from the JSON (summaries recomputed)")
    p.add_argument("--state-amplitude", default=None,
                   help="the package pair model's state_amplitude (default: the package's)")
    p.add_argument("--amplitude", default=None,
                   help="the package pair model's amplitude (default: the package's)")
    p.add_argument("--state-boxes", default=None,
                   help="the package pair model's state_boxes (default: the package's)")
    p.add_argument("--crossed-basins", default=None,
                   help="the package pair model's crossed_basins (default: the package's)")
    p.add_argument("--out", default=None, help="JSON file (default resonant_pairs.json)")
    args = p.parse_args(argv)
    global TUNED, OUT
    if args.state_amplitude:
        PIPE_OPTIONS["state_amplitude"] = args.state_amplitude
    if args.state_boxes:
        PIPE_OPTIONS["state_boxes"] = args.state_boxes
    if args.amplitude:
        PIPE_OPTIONS["amplitude"] = args.amplitude
    if args.crossed_basins:
        PIPE_OPTIONS["crossed_basins"] = args.crossed_basins
    if args.out:
        OUT = Path(args.out)
    TUNED = not args.no_tuned
    if args.report:
        result = json.loads(OUT.read_text())
        for name, entry in result["models"].items():
            rows = entry["samples"]
            entry["summary"], entry["tuned_summary"] = summarize(rows), summarize(rows, "tuned")
            print(table(name, rows, entry["summary"]) + "\n\n"
                  + table(name, rows, entry["tuned_summary"], "tuned") + "\n")
        OUT.write_text(json.dumps(result, indent=1, default=float))
        return 0
    t0 = time.perf_counter()
    result = {"window": args.window, "shape": SHAPE, "models": {}}
    if OUT.exists():  # models not run now keep their last results
        old = json.loads(OUT.read_text())
        if old.get("window") == args.window:
            result["models"] = old.get("models", {})
    texts = []
    for name in args.models.split(","):
        rows = []
        for seed in MODELS[name]["seeds"][:args.seeds]:
            rows.append(one_sample(name, seed, args.window))
            print(f"{name} seed {seed}: {len(rows[-1]['pairs'])} pairs, "
                  f"{len(rows[-1]['tuned'])} tuned, "
                  f"{rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
        s = summarize(rows)
        st = summarize(rows, "tuned")
        result["models"][name] = {"summary": s, "tuned_summary": st, "samples": rows,
                                  "pipe_options": dict(PIPE_OPTIONS)}
        texts.append(table(name, rows, s) + "\n\n" + table(name, rows, st, "tuned"))
        print(texts[-1], flush=True)
        OUT.write_text(json.dumps(result, indent=1, default=float))  # partial
    result["seconds"] = time.perf_counter() - t0
    result["command_models"] = args.models
    OUT.write_text(json.dumps(result, indent=1, default=float))
    print(f"total {result['seconds']:.0f} s; wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
