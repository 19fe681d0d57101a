"""The conduction network (sec. III).

The graph whose vertices are the basins of Sigma_omega and whose edges join the pairs at an
Agmon distance rho_ij in [rho_omega, rho_omega + 1]: the pairs that hybridize and resonate at
frequency omega.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Literal, get_args

import networkx as nx
import numpy as np
import scipy.sparse as sp

from .errors import InputError

if TYPE_CHECKING:
    from .pipeline import PipelineResult

__all__ = ["conduction_network", "network_matrix"]


#: The states of the network.
NetworkStates = Literal["statistics", "sigma_omega"]
STATES: tuple[NetworkStates, ...] = get_args(NetworkStates)


def _check_pipeline(pipeline) -> None:
    from .pipeline import PipelineResult

    if not isinstance(pipeline, PipelineResult):
        raise InputError(f"pipeline must be a Pipeline (from mottscape.run_pipeline), got "
                         f"{type(pipeline).__name__}")


def _edges(pipeline, omega_index: int, width: float = 1.0, states: str = "statistics"):
    _check_pipeline(pipeline)
    n_omega = pipeline.omega.size
    if isinstance(omega_index, bool) or not isinstance(omega_index, numbers.Integral):
        raise InputError(
            f"omega_index={omega_index!r} must be an int, the index of a frequency of the "
            f"results (0 to {n_omega - 1})")
    omega_index = int(omega_index)
    if not 0 <= omega_index < n_omega:
        raise InputError(
            f"omega_index={omega_index} is out of range; the results have "
            f"{n_omega} frequencies (0 to {n_omega - 1})")
    rho_w = float(pipeline.moments.rho_omega[omega_index])
    hw = float(pipeline.hbar_omega[omega_index])
    ef = pipeline.fermi_energy
    if states not in STATES:
        raise InputError(f"states={states!r} is not known; use one of {STATES}")
    basins = pipeline.basins
    members = basins.sigma_omega(ef, hw) if states == "sigma_omega" else pipeline.sources
    pd = pipeline.pairs
    inside = (np.isin(pd.i, members) & np.isin(pd.j, members)
              & (pd.rho >= rho_w) & (pd.rho <= rho_w + width))
    return members, pd.i[inside], pd.j[inside], pd.rho[inside], rho_w


def conduction_network(pipeline: PipelineResult, omega_index: int, width: float = 1.0,
                       states: NetworkStates = "statistics") -> nx.Graph:
    """The conduction network at ``dataset.omega[omega_index]`` as a networkx graph.

    Parameters
    ----------
    pipeline
        A :class:`mottscape.conductivity.Pipeline` (from :func:`mottscape.run_pipeline`).
    omega_index
        Which frequency of the results.
    width
        Width of the Agmon shell (1 in the paper).
    states
        The vertices: ``"statistics"`` (default), the states whose pairs estimate
        f(r, rho_omega) (the pair window, or Sigma_omega at the largest omega), or
        ``"sigma_omega"``, Sigma_omega at this omega (eq. 14 literally).

    Returns
    -------
    networkx.Graph
        Nodes are basin indices with attributes ``pos`` (centre), ``energy`` and ``volume``;
        edges carry ``rho`` (Agmon distance) and ``r`` (Euclidean distance).
    """
    members, i, j, rho, rho_w = _edges(pipeline, omega_index, width, states)
    omega_index = int(omega_index)
    basins = pipeline.basins
    g = nx.Graph(rho_omega=rho_w, omega=float(pipeline.omega[omega_index]))
    for k in members:
        g.add_node(int(k), pos=tuple(basins.centers[k]), energy=float(basins.energies[k]),
                   volume=float(basins.volumes[k]))
    grid = pipeline.landscape.grid
    delta = grid.displacement(basins.centers[i], basins.centers[j])
    r = np.sqrt(np.sum(delta**2, axis=1))
    for a, b, p, q in zip(i.tolist(), j.tolist(), rho.tolist(), r.tolist(), strict=True):
        g.add_edge(a, b, rho=p, r=q)
    return g


def network_matrix(pipeline: PipelineResult, omega_index: int, width: float = 1.0,
                   states: NetworkStates = "statistics") -> sp.csr_array:
    """The conduction network as a symmetric sparse matrix of Agmon distances (n_basins^2)."""
    _, i, j, rho, _ = _edges(pipeline, omega_index, width, states)
    n = pipeline.basins.n
    m = sp.coo_array((np.concatenate([rho, rho]), (np.concatenate([i, j]),
                                                    np.concatenate([j, i]))), shape=(n, n))
    return m.tocsr()
