"""Unit systems.

mottscape computes in one internal system per study and converts only at the edges.

``lattice`` (default)
    hbar = e = a = 1 and hbar^2/(2 m) = 1 at ``mass = 1``: with ``spacing = 1`` the discretised
    Hamiltonian is the tight-binding Anderson model with hopping -1 and on-site ``2d + V``.
    Angular frequencies are energies (hbar = 1); sigma is in units of e^2/hbar * a^(2-d).
``semiconductor``
    Energies in eV, lengths in nm, effective masses in units of the electron mass m_e,
    angular frequencies omega in rad/s; sigma is reported in S/m (3D), S (2D sheet conductance)
    or S*m (1D).

Internally every frequency is carried as the photon energy hbar*omega.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

__all__ = ["LATTICE", "SEMICONDUCTOR", "UnitSystem", "get_units"]

# CODATA 2018 values.
_HBAR_EV_S = 6.582119569e-16  # eV s
_HBAR2_OVER_2ME_EV_NM2 = 0.0380998212  # hbar^2 / (2 m_e) in eV nm^2
_E2_OVER_HBAR_S = 2.434134807e-4  # e^2 / hbar in siemens


@dataclass(frozen=True)
class UnitSystem:
    """A consistent set of units for inputs and outputs.

    Attributes
    ----------
    name
        ``"lattice"`` or ``"semiconductor"``.
    kinetic
        hbar^2 / (2 m_ref) in energy * length^2, so that the Hamiltonian (eq. 3) reads
        ``-kinetic * div(grad psi / mass) + V psi`` with ``mass`` in units of m_ref.
    hbar
        Planck's constant in energy * time (converts an angular frequency to hbar*omega).
    conductance
        e^2 / hbar in the output conductance unit.
    length_si
        One length unit in metres (used for the dimension of sigma).
    """

    name: str
    kinetic: float
    hbar: float
    conductance: float
    length_si: float
    energy_unit: str
    length_unit: str
    mass_unit: str
    omega_unit: str

    def omega_to_energy(self, omega):
        """Photon energy hbar*omega from an angular frequency in this system."""
        return self.hbar * omega

    def sigma_factor(self, ndim: int) -> float:
        """Factor from e^2/hbar * length^(2-d) (the internal sigma) to the output unit."""
        if self.name == "lattice":
            return 1.0
        return self.conductance * self.length_si ** (2 - ndim)

    def sigma_unit(self, ndim: int) -> str:
        """Unit of sigma in dimension ``ndim``."""
        if self.name == "lattice":
            return "e^2/hbar" if ndim == 2 else f"e^2/hbar * a^{2 - ndim}"
        return {1: "S*m", 2: "S", 3: "S/m"}[ndim]


LATTICE = UnitSystem(
    name="lattice",
    kinetic=1.0,
    hbar=1.0,
    conductance=1.0,
    length_si=1.0,
    energy_unit="hopping t",
    length_unit="a",
    mass_unit="m (hbar^2/(2 m a^2) = t)",
    omega_unit="t/hbar",
)

SEMICONDUCTOR = UnitSystem(
    name="semiconductor",
    kinetic=_HBAR2_OVER_2ME_EV_NM2,
    hbar=_HBAR_EV_S,
    conductance=_E2_OVER_HBAR_S,
    length_si=1e-9,
    energy_unit="eV",
    length_unit="nm",
    mass_unit="m_e",
    omega_unit="rad/s",
)

_SYSTEMS = {"lattice": LATTICE, "semiconductor": SEMICONDUCTOR}


def get_units(units: str | UnitSystem) -> UnitSystem:
    """Return the :class:`UnitSystem` named ``units`` (``"lattice"`` or ``"semiconductor"``)."""
    if isinstance(units, UnitSystem):
        return units
    try:
        return _SYSTEMS[str(units).lower()]
    except KeyError:
        raise InputError(
            f"units={units!r} is not a known unit system; use one of {sorted(_SYSTEMS)}"
        ) from None
