"""Type stub of the public API: the imports that ``__init__.py`` makes lazily.

``lazy_loader.attach_stub`` reads the ``from .x import y`` lines below, so this file is the one
list of public names for the run time and for type checkers alike.
"""

from . import disorder
from .agmon import PairDistances, agmon_distance, basin_distances, distance_field, geodesic
from .basins import Basins, find_basins
from .conductivity import ac_conductivity, run_pipeline
from .config import Study, StudyError, default_study, load_study, study_from_dict
from .disorder import generate
from .ensemble import run_ensemble
from .errors import (
    ConvergenceError,
    InputError,
    MottscapeError,
    OutputError,
    RegimeWarning,
    ValidityError,
)
from .exact import exact_dos, exact_eigenstates, kubo_greenwood, lowest_eigenvalues
from .grid import Grid, make_grid
from .hamiltonian import Hamiltonian, build_hamiltonian
from .io import load_potential
from .landscape import Landscape, solve_landscape
from .mott import mott_scale, sigma_mott_berezinskii
from .netcdf import read_netcdf, write_netcdf
from .network import conduction_network, network_matrix
from .options import Options
from .pairs import pair_conductivity, pair_parameters
from .pipeline import PipelineResult
from .sample import Sample, make_sample
from .study import StudyResult, run_study
from .units import LATTICE, SEMICONDUCTOR, UnitSystem, get_units
from .validation import validate

__version__: str

#: The old name of :class:`PipelineResult` (kept for users' scripts).
Pipeline = PipelineResult

__all__ = [
    "LATTICE",
    "SEMICONDUCTOR",
    "Basins",
    "ConvergenceError",
    "Grid",
    "Hamiltonian",
    "InputError",
    "Landscape",
    "MottscapeError",
    "Options",
    "OutputError",
    "PairDistances",
    "Pipeline",
    "PipelineResult",
    "RegimeWarning",
    "Sample",
    "Study",
    "StudyError",
    "StudyResult",
    "UnitSystem",
    "ValidityError",
    "__version__",
    "ac_conductivity",
    "agmon_distance",
    "basin_distances",
    "build_hamiltonian",
    "conduction_network",
    "default_study",
    "disorder",
    "distance_field",
    "exact_dos",
    "exact_eigenstates",
    "find_basins",
    "generate",
    "geodesic",
    "get_units",
    "kubo_greenwood",
    "load_potential",
    "load_study",
    "lowest_eigenvalues",
    "make_grid",
    "make_sample",
    "mott_scale",
    "network_matrix",
    "pair_conductivity",
    "pair_parameters",
    "read_netcdf",
    "run_ensemble",
    "run_pipeline",
    "run_study",
    "sigma_mott_berezinskii",
    "solve_landscape",
    "study_from_dict",
    "validate",
    "write_netcdf",
]
