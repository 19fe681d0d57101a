"""The pictures that explain a result.

* :func:`plot_landscape` -- V_u with its basins at E_F (Sigma_omega highlighted).
* :func:`plot_agmon_shell` -- Fig. 1 of the paper: the Agmon shell
  rho_omega <= rho(r, B_i) <= rho_omega + 1 around one basin, beside the Euclidean Mott circle
  of radius R_omega = xi ln(2 Delta_xi / hbar omega) (eq. 18).
* :func:`plot_conductivity` -- sigma_LL(omega) beside the classical Mott-Berezinskii curve
  (and an exact reference when given), on log-log axes.
* :func:`plot_network` -- the conduction network at one frequency (sec. III).

Every function draws on a :class:`matplotlib.axes.Axes` it is given, or on a new
:class:`matplotlib.figure.Figure` (no pyplot global state), and returns the figure.
2D samples are drawn as maps, 1D samples as profiles, 3D samples as the slice through the
chosen basin.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from .units import display_unit

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes

    from .grid import Grid
    from .pipeline import PipelineResult

__all__ = [
    "plot_agmon_shell",
    "plot_conductivity",
    "plot_landscape",
    "plot_network",
    "plot_sweep",
    "plot_validation",
    "render_figures",
    "save_figures",
    "write_images",
]


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 5.0)) -> tuple[Figure, Axes]:
    """A new figure and its axes, or the given axes and the figure they belong to."""
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.subplots()
    # the caller's axes may sit in a SubFigure; the plots return what holds them
    return cast(Figure, ax.figure), ax


def _slice_2d(field: np.ndarray, index: np.ndarray) -> np.ndarray:
    """A 2D view of a field: itself in 2D, the slice through ``index`` (last axis) in 3D."""
    if field.ndim == 3:
        return field[:, :, int(index[2])]
    return field


def _extent(grid: Grid) -> tuple[float, float, float, float]:
    (lx, ly) = grid.lengths[:2]
    return (0.0, ly, lx, 0.0)


def _choose_basin(pipeline: PipelineResult, omega_index: int) -> int:
    """The basin of Sigma_omega with the most shell pairs, nearest the centre on ties."""
    basins = pipeline.basins
    hw = float(pipeline.hbar_omega[omega_index])
    members = basins.sigma_omega(pipeline.fermi_energy, hw)
    if members.size == 0:
        members = np.arange(basins.n)
    centre = np.asarray(pipeline.landscape.grid.lengths) / 2
    dist = np.sqrt(((basins.centers[members] - centre) ** 2).sum(1))
    return int(members[np.argmin(dist)])


def plot_landscape(pipeline: PipelineResult, omega_index: int | None = None,
                   ax: Axes | None = None) -> Figure:
    """V_u with the basins at E_F.

    The basins of Sigma_omega (at ``omega_index``, default the largest omega) are outlined in
    black, the others in grey.
    """
    land, basins = pipeline.landscape, pipeline.basins
    k = pipeline.omega.size - 1 if omega_index is None else omega_index
    ef = pipeline.fermi_energy
    members = basins.sigma_omega(ef, float(pipeline.hbar_omega[k]))
    fig, ax = _axes(ax)
    vu = land.effective_potential
    grid = land.grid
    if grid.ndim == 1:
        x = grid.coordinates(0)
        ax.plot(x, land.potential, color="0.7", lw=0.6, label="V")
        ax.plot(x, vu, color="C0", lw=1.2, label="$V_u = 1/u$")
        ax.axhline(ef, color="k", ls="--", lw=0.8, label="$E_F$")
        for idx in members:
            cells = np.flatnonzero(basins.labels == idx + 1)
            ax.axvspan(x[cells[0]], x[cells[-1]], color="C1", alpha=0.3, lw=0)
        top = np.quantile(vu, 0.98)
        ax.set_ylim(min(vu.min(), land.potential.min()), max(top, ef * 1.5))
        ax.set_xlabel("x")
        ax.set_ylabel("energy")
        ax.legend(loc="upper right", fontsize=8)
    else:
        where = basins.minimum_index[members[0]] if members.size else np.array(grid.shape) // 2
        img = _slice_2d(vu, where)
        lab = _slice_2d(basins.labels, where)
        hi = np.quantile(img, 0.99)
        im = ax.imshow(img, origin="upper", cmap="viridis", vmax=hi, extent=_extent(grid),
                       interpolation="nearest")
        fig.colorbar(im, ax=ax, label="$V_u$")
        sig = np.isin(lab, members + 1)
        ax.contour(np.linspace(0, grid.lengths[1], img.shape[1]),
                   np.linspace(0, grid.lengths[0], img.shape[0]), lab > 0, levels=[0.5],
                   colors="0.85", linewidths=0.5, linestyles="dashed")
        if sig.any():
            ax.contour(np.linspace(0, grid.lengths[1], img.shape[1]),
                       np.linspace(0, grid.lengths[0], img.shape[0]), sig, levels=[0.5],
                       colors="k", linewidths=0.8, linestyles="dashed")
        ax.set_xlabel("y")
        ax.set_ylabel("x")
        title = "" if grid.ndim == 2 else f" (slice z = {where[2]})"
        ax.set_title(f"$V_u$ and basins at $E_F$ = {ef:.3g}{title}", fontsize=9)
    return fig


def plot_agmon_shell(pipeline: PipelineResult, omega_index: int | None = None,
                     basin: int | None = None, ax: Axes | None = None) -> Figure:
    """Fig. 1: the Agmon shell [rho_omega, rho_omega + 1] around one basin and the Mott circle.

    Parameters
    ----------
    pipeline
        The result of :func:`mottscape.run_pipeline`.
    omega_index
        Frequency index (default: the middle of the valid frequencies).
    basin
        Basin index (default: the basin of Sigma_omega nearest the centre of the sample).
    """
    from .agmon import agmon_distance

    land, basins = pipeline.landscape, pipeline.basins
    rho_all = pipeline.moments.rho_omega
    if omega_index is None:
        ok = np.flatnonzero(np.isfinite(rho_all) & (rho_all > 1))
        omega_index = int(ok[ok.size // 2]) if ok.size else 0
    rho_w = float(rho_all[omega_index])
    R = float(pipeline.conductivity.mott_length[omega_index])
    if basin is None:
        basin = _choose_basin(pipeline, omega_index)
    ef = pipeline.fermi_energy
    grid = land.grid
    bound = rho_w + 1.5 if np.isfinite(rho_w) else None
    rho = agmon_distance(land, ef, basins.mask(basin), bound=bound)
    fig, ax = _axes(ax)
    centre = basins.centers[basin]
    if grid.ndim == 1:
        x = grid.coordinates(0)
        ax.plot(x, np.where(np.isfinite(rho), rho, np.nan), color="C0",
                label=r"$\rho(x, B_i)$")
        shell = (rho >= rho_w) & (rho <= rho_w + 1)
        ax.fill_between(x, 0, rho_w + 1.5, where=shell, color="orange", alpha=0.5, lw=0,
                        label=r"$\rho_\omega \leq \rho \leq \rho_\omega + 1$")
        for s in (-1, 1):
            ax.axvline(centre[0] + s * R, color="C0", ls="-", lw=1.2,
                       label=r"$R_\omega$" if s > 0 else None)
        ax.set_xlabel("x")
        ax.set_ylabel("Agmon distance")
        ax.legend(fontsize=8)
    else:
        index = basins.minimum_index[basin]
        img = _slice_2d(rho, index)
        lab = _slice_2d(basins.labels, index)
        vu = _slice_2d(land.effective_potential, index)
        ax.imshow(vu, origin="upper", cmap="Greys", vmax=np.quantile(vu, 0.99),
                  extent=_extent(grid), interpolation="nearest", alpha=0.6)
        shell = np.where((img >= rho_w) & (img <= rho_w + 1), 1.0, np.nan)
        ax.imshow(shell, origin="upper", cmap="autumn_r", vmin=0, vmax=1.5,
                  extent=_extent(grid), interpolation="nearest", alpha=0.8)
        ys = np.linspace(0, grid.lengths[1], img.shape[1])
        xs = np.linspace(0, grid.lengths[0], img.shape[0])
        ax.contour(ys, xs, lab > 0, levels=[0.5], colors="k", linewidths=0.6,
                   linestyles="dashed")
        if np.isfinite(R):
            ax.add_patch(Circle((centre[1], centre[0]), R, fill=False, color="tab:blue",
                                lw=1.5))
        ax.plot(centre[1], centre[0], "k+", ms=8)
        ax.set_xlim(0, grid.lengths[1])
        ax.set_ylim(grid.lengths[0], 0)
        ax.set_xlabel("y")
        ax.set_ylabel("x")
    omega = float(pipeline.omega[omega_index])
    ax.set_title(rf"Agmon shell (orange) and Mott circle $R_\omega$ (blue): "
                 rf"$\omega$ = {omega:.3g}, $\rho_\omega$ = {rho_w:.3g}", fontsize=9)
    return fig


def _curve(ds: xr.Dataset, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean and standard error of ``name``: the ensemble aggregates when present."""
    if f"{name}_mean" in ds:
        return ds[f"{name}_mean"].values, ds[f"{name}_sem"].values
    values = ds[name].values
    if values.ndim == 2:  # stacked realizations without aggregates
        return np.nanmean(values, axis=0), None
    return values, None


def plot_conductivity(ds: xr.Dataset, ax: Axes | None = None,
                      exact: xr.Dataset | None = None) -> Figure:
    """sigma_LL, sigma_MB (eq. 1) and eq. 17 or sigma_pairs, against omega (log-log).

    sigma_LL is the run's estimator (the pair model by default, then eq. 17 is drawn beside
    it; with ``estimator="eq17"`` the pair model is drawn beside it when it ran).

    Works for one realization and for ensembles (``run_ensemble`` results, a results.nc of
    several realizations): the ensemble mean is drawn with a band of +- one standard error.
    Points outside the theory's validity (``valid`` false; for ensembles, false in most
    realizations) are drawn hollow. ``exact`` may be a Dataset from
    :func:`mottscape.kubo_greenwood` (variable ``sigma``) or an ensemble with
    ``sigma_exact``. A sweep (dimension ``point``) draws one pair of curves per parameter
    point (:func:`plot_sweep`).
    """
    if "point" in ds.dims:
        return plot_sweep(ds, ax=ax)
    if exact is None and "sigma_exact" in ds:  # a run with [conductivity] exact = true
        exact = ds
    fig, ax = _axes(ax)
    w = ds.omega.values
    valid = ds["valid"].values.astype(bool)
    if valid.ndim == 2:
        valid = valid.mean(axis=0) >= 0.5
    pairs = ds.attrs.get("option_estimator", "pairs") == "pairs" and "sigma_pairs" in ds
    curves = [("sigma_ll", "C2" if pairs else "C1", "-",
               r"$\sigma_{LL}$ (pair model, App. A-B)" if pairs else r"$\sigma_{LL}$ (eq. 17)"),
              ("sigma_mb", "C0", "--", r"$\sigma_{MB}$ (eq. 1)")]
    if pairs and "sigma_eq17" in ds:
        curves.append(("sigma_eq17", "C1", ":", r"eq. 17 (paper)"))
    elif "sigma_pairs" in ds:
        curves.append(("sigma_pairs", "C2", "-.", r"$\sigma_{pairs}$ (App. A-B)"))
    for name, color, style, label in curves:
        mean, sem = _curve(ds, name)
        pos = np.isfinite(mean) & (mean > 0)
        ax.loglog(w[pos], mean[pos], style, color=color, lw=1,
                  label=None if name == "sigma_ll" else label)
        if sem is not None:
            err = np.nan_to_num(sem)
            ax.fill_between(w[pos], np.maximum(mean[pos] - err[pos], mean[pos] * 1e-3),
                            mean[pos] + err[pos], color=color, alpha=0.25, lw=0)
        if name == "sigma_ll":
            ax.loglog(w[pos & valid], mean[pos & valid], "o", color=color, ms=4, label=label)
            if (pos & ~valid).any():
                ax.loglog(w[pos & ~valid], mean[pos & ~valid], "o", mfc="none", color=color,
                          ms=4, label="outside validity")
    if exact is not None:
        _draw_exact(ax, exact, ds)
    ax.set_xlabel(rf"$\omega$ [{display_unit(ds.omega.attrs)}]")
    ax.set_ylabel(rf"$\sigma$ [{display_unit(ds['sigma_ll'].attrs)}]")
    n = ds.sizes.get("realization")
    if n:
        ax.set_title(f"ensemble of {n} realizations (band: +- 1 standard error)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return fig


#: Exact bins carried by fewer pairs (summed over realizations) are drawn hollow: sampling
#: noise of the exact curve, not a result.
RESOLVED_PAIRS = 10


def _draw_exact(ax: Axes, exact: xr.Dataset, ds: xr.Dataset) -> None:
    """The exact curve: resolved bins filled, the others hollow; the axis kept on sigma_LL.

    Hollow squares: fewer than :data:`RESOLVED_PAIRS` pairs; hollow triangles: bins that the
    exact boxes resolve only partly (pairs beyond their padding, see
    :func:`mottscape.summary.beyond_padding_share`).
    """
    from .exact import RESOLVED_FAR
    from .summary import beyond_padding_share

    name = "sigma_exact" if "sigma_exact" in exact else "sigma"
    se, _ = _curve(exact, name)
    counts = exact["n_pairs_exact" if "n_pairs_exact" in exact else "n_pairs"].values
    pairs = counts.sum(axis=0) if counts.ndim == 2 else counts
    w = exact.omega.values
    good = se > 0
    share = beyond_padding_share(exact)
    partial = good & (share >= RESOLVED_FAR) if share is not None else np.zeros_like(good)
    few = good & (pairs < RESOLVED_PAIRS) & ~partial
    resolved = good & ~few & ~partial
    ax.loglog(w[good], se[good], "-", color="k", lw=0.8)
    ax.loglog(w[resolved], se[resolved], "s", color="k", ms=3, label="exact (Kubo-Greenwood)")
    if few.any():
        ax.loglog(w[few], se[few], "s", mfc="none", color="k", ms=3,
                  label=f"exact, < {RESOLVED_PAIRS} pairs")
    if partial.any():
        ax.loglog(w[partial], se[partial], "^", mfc="none", color="k", ms=4,
                  label="exact, pairs beyond the boxes' padding")
    ours = np.concatenate([_curve(ds, n)[0] for n in ("sigma_ll", "sigma_mb")])
    ours = ours[np.isfinite(ours) & (ours > 0)]
    if ours.size and se[good].size and se[good].min() < 1e-3 * ours.min():
        ax.set_ylim(bottom=1e-3 * ours.min())  # an unresolved bin may be ~0 (rounding)


def plot_sweep(ds: xr.Dataset, ax: Axes | None = None) -> Figure:
    """sigma_LL and sigma_MB at each parameter point of a sweep, one colour per point.

    sigma_LL (the run's estimator) solid with a band of +- one standard error, sigma_MB
    (eq. 1) dashed; the legend gives each point's swept values.
    """
    fig, ax = _axes(ax)
    from .summary import sweep_label

    w = ds.omega.values
    for p in range(ds.sizes["point"]):
        one = ds.isel(point=p)
        color = f"C{p % 10}"
        label = sweep_label(one)
        for name, style in (("sigma_ll", "o-"), ("sigma_mb", "--")):
            mean, sem = _curve(one, name)
            pos = np.isfinite(mean) & (mean > 0)
            ax.loglog(w[pos], mean[pos], style, color=color, lw=1, ms=3,
                      label=label if name == "sigma_ll" else None)
            if sem is not None and name == "sigma_ll":
                err = np.nan_to_num(sem)
                ax.fill_between(w[pos], np.maximum(mean[pos] - err[pos], mean[pos] * 1e-3),
                                mean[pos] + err[pos], color=color, alpha=0.2, lw=0)
    ax.set_xlabel(rf"$\omega$ [{display_unit(ds.omega.attrs)}]")
    ax.set_ylabel(rf"$\sigma$ [{display_unit(ds['sigma_ll'].attrs)}]")
    n = ds.sizes.get("realization", 1)
    ax.set_title(rf"sweep: $\sigma_{{LL}}$ (solid) and $\sigma_{{MB}}$ (eq. 1, dashed),"
                 f" {n} realizations per point", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def plot_network(pipeline: PipelineResult, omega_index: int | None = None,
                 ax: Axes | None = None) -> Figure:
    """The conduction network at one frequency over the map of V_u (2D; 3D projected)."""
    from .network import conduction_network

    if omega_index is None:
        ok = np.flatnonzero(pipeline.moments.n_pairs > 0)
        omega_index = int(ok[ok.size // 2]) if ok.size else 0
    g = conduction_network(pipeline, omega_index)
    fig, ax = _axes(ax)
    land = pipeline.landscape
    grid = land.grid
    if grid.ndim >= 2:
        vu = land.effective_potential
        img = vu if grid.ndim == 2 else vu.min(axis=2)
        ax.imshow(img, origin="upper", cmap="Greys", vmax=np.quantile(img, 0.99),
                  extent=_extent(grid), alpha=0.5)
        for a, b in g.edges:
            pa, pb = g.nodes[a]["pos"], g.nodes[b]["pos"]
            if np.all(np.abs(np.subtract(pa, pb)) <= np.asarray(grid.lengths) / 2):
                ax.plot([pa[1], pb[1]], [pa[0], pb[0]], "-", color="C3", lw=0.7)
        if g.number_of_nodes():
            pos = np.array([g.nodes[n]["pos"] for n in g.nodes])
            ax.plot(pos[:, 1], pos[:, 0], "o", color="C0", ms=2.5)
        ax.set_xlim(0, grid.lengths[1])
        ax.set_ylim(grid.lengths[0], 0)
    else:
        for a, b in g.edges:
            xa, xb = g.nodes[a]["pos"][0], g.nodes[b]["pos"][0]
            ax.plot([xa, xb], [0, 0], "-", color="C3", alpha=0.5)
        x = [g.nodes[n]["pos"][0] for n in g.nodes]
        ax.plot(x, np.zeros(len(x)), "o", ms=3)
        ax.set_yticks([])
    ax.set_title(f"conduction network: {g.number_of_nodes()} states, {g.number_of_edges()} "
                 rf"pairs, $\omega$ = {float(pipeline.omega[omega_index]):.3g}", fontsize=9)
    return fig


def plot_validation(res: xr.Dataset, variant: str = "default") -> Figure:
    """Validation figure: ensemble means against omega and their ratios to exact.

    Left: sigma_exact, the recommended sigma_ll, the paper's eq. 17 (``variant`` of its open
    choices, and the scaled landscape when validated), sigma_MB (eq. 1) and the pair model's
    LL tunnelling part (bands: 16-84 % bootstrap over realizations); right: the ratios to the
    exact result. Bins the exact mean does not resolve are shaded.
    """
    fig = Figure(figsize=(11.0, 4.5), layout="constrained")
    ax, axr = fig.subplots(1, 2)
    w = res.omega.values
    ex = res["sigma_exact_mean"].values
    ok = ex > 0
    ax.loglog(w[ok], ex[ok], "ks-", ms=4, label="exact (Kubo-Greenwood)")
    variants = list(res.variant.values)

    def eq17(v: str) -> xr.DataArray:
        return res["sigma_eq17"].sel(variant=v).mean("realization")

    curves = [("ll", res["sigma_ll"].mean("realization"), "C2", r"$\sigma_{ll}$ (recommended)"),
              (f"eq17_{variant}", eq17(variant), "C1", rf"eq. 17, paper ({variant})"),
              *([("eq17_effective_scaled", eq17("effective_scaled"), "C3",
                  r"eq. 17, scaled $W_u$")]
                if "effective_scaled" in variants and variant != "effective_scaled" else []),
              ("mb", res["sigma_mb"].mean("realization"), "C0", r"$\sigma_{MB}$ (eq. 1)")]
    if "ratio_pairs_tunnelling" in res:
        curves.append(("pairs_tunnelling", res["sigma_pairs_tunnelling"].mean("realization"),
                       "C4", "pair model, LL tunnelling only"))
    if "resolved" in res and "omega_lower" in res.coords:
        for axis in (ax, axr):
            for k in np.flatnonzero(~res["resolved"].values.astype(bool)):
                axis.axvspan(float(res.omega_lower[k]), float(res.omega_upper[k]),
                             color="0.9", lw=0, zorder=0)
    for key, mean, color, label in curves:
        m = np.asarray(mean)
        good = m > 0
        if not good.any():  # nothing to draw (e.g. no shell pair at all): no legend entry
            continue
        ax.loglog(w[good], m[good], "o-", color=color, ms=4, label=label)
        lo = np.asarray(res[f"ratio_{key}_lo"]) * ex
        hi = np.asarray(res[f"ratio_{key}_hi"]) * ex
        band = good & np.isfinite(lo) & np.isfinite(hi) & (lo > 0)
        ax.fill_between(w[band], lo[band], hi[band], color=color, alpha=0.2, lw=0)
        r = np.asarray(res[f"ratio_{key}"])
        rg = np.isfinite(r) & (r > 0)
        axr.loglog(w[rg], r[rg], "o-", color=color, ms=4, label=label)
        rl, rh = np.asarray(res[f"ratio_{key}_lo"]), np.asarray(res[f"ratio_{key}_hi"])
        b = rg & np.isfinite(rl) & np.isfinite(rh) & (rl > 0)
        axr.fill_between(w[b], rl[b], rh[b], color=color, alpha=0.2, lw=0)
    axr.axhline(1.0, color="k", lw=0.8)
    if w.size and w.max() >= 10 * w.min():  # a decade or more: label the decades only
        from matplotlib.ticker import NullFormatter

        for axis in (ax, axr):
            axis.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"$\omega$")
    ax.set_ylabel(r"$\sigma$ (ensemble mean)")
    axr.set_xlabel(r"$\omega$")
    axr.set_ylabel(r"$\sigma / \sigma_{exact}$")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    axr.grid(True, which="both", alpha=0.3)
    n = res.sizes.get("realization", 1)
    fig.suptitle(f"validation: {n} realizations, E_F = {res.attrs.get('fermi_energy', '')}",
                 fontsize=10)
    return fig


def render_figures(pipeline: PipelineResult, exact: xr.Dataset | None = None, dpi: int = 130,
                   results: xr.Dataset | None = None) -> dict[str, bytes]:
    """The standard figures of a study as PNG bytes, by file name (nothing is written).

    ``results`` (default: the pipeline's own) is the Dataset whose sigma(omega) is drawn, e.g.
    an ensemble's with its error band.
    """
    import io

    images = {}
    for name, draw in (
        ("landscape.png", lambda: plot_landscape(pipeline)),
        ("agmon_shell.png", lambda: plot_agmon_shell(pipeline)),
        ("conductivity.png", lambda: plot_conductivity(
            pipeline.dataset if results is None else results, exact=exact)),
        ("network.png", lambda: plot_network(pipeline)),
    ):
        buf = io.BytesIO()
        draw().savefig(buf, dpi=dpi, format="png")
        images[name] = buf.getvalue()
    return images


def write_images(images: dict[str, bytes], outdir: str | os.PathLike) -> list[Path]:
    """Write rendered images into ``outdir``, each atomically (temporary file + rename)."""
    from .files import write_bytes

    return [write_bytes(data, Path(outdir) / name) for name, data in images.items()]


def save_figures(pipeline: PipelineResult, outdir: str | os.PathLike,
                 exact: xr.Dataset | None = None, dpi: int = 130,
                 results: xr.Dataset | None = None) -> list[Path]:
    """Write the standard figures of a study as PNG files into ``outdir``; return the paths.

    ``results`` (default: the pipeline's own) is the Dataset whose sigma(omega) is drawn, e.g.
    an ensemble's with its error band. Every figure is drawn before any file is written.
    """
    return write_images(render_figures(pipeline, exact, dpi, results), outdir)
