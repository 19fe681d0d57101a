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

Units in NetCDF files (CF conventions)
--------------------------------------
The ``units`` attribute of a CF-1.x file must be a string that a UDUNITS parser accepts. The
physical units of the ``semiconductor`` system are written as UDUNITS strings (``"eV"``,
``"nm"``, ``"rad/s"``, ``"S/m"``, ``"S m"``, ``"1/(eV nm^3)"``; the electron mass as
``"9.1093837015e-31 kg"``). The lattice units are *not* UDUNITS units (``"a"`` would be read as
the are, 100 m^2, and ``"t"`` as the tonne), so a quantity in lattice units is written as a
pure number, ``units = "1"``, and its lattice unit goes into the attribute
:data:`LATTICE_UNITS_ATTR` (``"lattice_units"``), a product of the symbols

``t`` (the hopping energy), ``a`` (the lattice spacing), ``hbar``, ``e`` and ``m_ref`` (the
reference mass, hbar^2/(2 m_ref a^2) = t),

with integer powers written ``^n`` and one ``/``, e.g. ``"t"``, ``"a^2"``, ``"1/(t a^3)"``,
``"t/hbar"``, ``"e^2/(hbar a)"``. :meth:`UnitSystem.cf_units` gives the attributes of a named
quantity, and :func:`cf_unit_attrs` translates a unit string as found in a variable's
attributes; :func:`mottscape.netcdf.write_netcdf` applies the translation to every variable.

Units of input maps
-------------------
:func:`energy_factor` and :func:`length_factor` convert the units found in a map file
(``"meV"``, ``"angstrom"``, ...) to the study's unit system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InputError

__all__ = [
    "CF_QUANTITIES",
    "LATTICE",
    "LATTICE_UNITS_ATTR",
    "SEMICONDUCTOR",
    "UnitSystem",
    "cf_unit_attrs",
    "display_unit",
    "energy_factor",
    "get_units",
    "length_factor",
    "parse_unit",
]

#: Attribute that names the lattice unit of a variable written with ``units = "1"``.
LATTICE_UNITS_ATTR = "lattice_units"

#: The quantities :meth:`UnitSystem.cf_units` knows.
CF_QUANTITIES = ("dimensionless", "energy", "inverse_energy", "length", "volume",
                 "inverse_volume", "moment", "omega", "sigma", "dos", "mass")

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

    def unit_of(self, quantity: str, ndim: int = 1) -> str:
        """The internal unit string of ``quantity`` (one of :data:`CF_QUANTITIES`).

        ``ndim`` is the dimension d of the sample: it sets the powers of length in ``volume``
        (L^d), ``inverse_volume`` (1/L^d), ``moment`` (L^(d+2)), ``dos`` (1/(E L^d)) and in
        ``sigma``.
        """
        if isinstance(ndim, bool) or not isinstance(ndim, int) or not 1 <= ndim <= 3:
            raise InputError(f"ndim={ndim!r} must be 1, 2 or 3 (the dimension of the sample)")
        E, L = self.energy_unit, self.length_unit
        table = {
            "dimensionless": "1",
            "energy": E,
            "inverse_energy": f"1/({E})",
            "length": L,
            "volume": f"{L}^{ndim}",
            "inverse_volume": f"1/{L}^{ndim}",
            "moment": f"{L}^{ndim + 2}",
            "omega": self.omega_unit,
            "sigma": self.sigma_unit(ndim),
            "dos": f"1/({E} {L}^{ndim})",
            "mass": self.mass_unit,
        }
        try:
            return table[quantity]
        except KeyError:
            raise InputError(
                f"quantity={quantity!r} is not known; use one of {', '.join(CF_QUANTITIES)}"
            ) from None

    def cf_units(self, quantity: str, ndim: int = 1) -> dict[str, str]:
        """CF attributes for the unit of ``quantity`` in this system.

        Parameters
        ----------
        quantity
            One of :data:`CF_QUANTITIES` (``"energy"``, ``"length"``, ``"sigma"``, ...).
        ndim
            Dimension d of the sample (1 to 3).

        Returns
        -------
        dict
            ``{"units": <UDUNITS string>}``, and for the lattice system
            ``{"units": "1", "lattice_units": <lattice unit>}`` (see the module notes).

        Examples
        --------
        >>> SEMICONDUCTOR.cf_units("dos", 3)
        {'units': '1/(eV nm^3)'}
        >>> LATTICE.cf_units("sigma", 3)
        {'units': '1', 'lattice_units': 'e^2/(hbar a)'}
        """
        return cf_unit_attrs(self.unit_of(quantity, ndim), self)


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


# ---------------------------------------------------------------------- unit strings
_TOKEN = re.compile(r"\s*(?:(?P<num>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<sym>[^\W\d]\w*)"
                    r"|(?P<op>[()*/^{}]))")
#: Symbols of the lattice system, in the order they are written.
_LATTICE_SYMBOLS = ("e", "t", "m_ref", "hbar", "a")
#: UDUNITS symbols the package writes (and accepts in unit strings it translates).
_PHYSICAL_SYMBOLS = ("S", "eV", "meV", "keV", "J", "kg", "m", "cm", "mm", "um", "nm", "pm",
                     "angstrom", "rad", "s", "Hz", "K")
_ELECTRON_MASS_KG = "9.1093837015e-31 kg"
#: Whole strings replaced before parsing: the lattice mass unit and 'hopping t'.
_ALIASES = {LATTICE.mass_unit: "m_ref", "hopping t": "t", SEMICONDUCTOR.mass_unit: "m_e"}


def parse_unit(text: str) -> dict[str, int] | None:
    """Parse a product of unit symbols with integer powers into ``{symbol: power}``.

    The grammar is the one of the package's unit strings: factors separated by spaces or
    ``*``, powers written ``^n`` (or ``^{n}``), one level of ``/`` applying to the next factor,
    parentheses, and a leading ``1``; ``"hopping t"`` reads as ``t``. Returns None for a string
    outside this grammar (a scale factor other than 1, an offset, a time reference, ...).

    Examples
    --------
    >>> parse_unit("e^2/hbar * a^-1")
    {'e': 2, 'hbar': -1, 'a': -1}
    >>> parse_unit("1/(eV nm^3)")
    {'eV': -1, 'nm': -3}
    """
    if not isinstance(text, str):
        return None
    for alias, symbol in _ALIASES.items():
        text = text.replace(alias, symbol)
    tokens = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            return None
        pos = m.end()
        kind = m.lastgroup
        if kind is None:  # every alternative of _TOKEN is a named group
            return None
        tokens.append((kind, m.group(kind)))
    try:
        result, rest = _parse_product(tokens)
    except (ValueError, IndexError):
        return None
    if rest:
        return None
    return {k: v for k, v in result.items() if v != 0}


def _parse_product(tokens):
    out: dict[str, int] = {}
    sign = 1
    first = True
    while tokens:
        kind, value = tokens[0]
        if kind == "op" and value == ")":
            break
        if kind == "op" and value in "*/":
            if first:
                raise ValueError("leading operator")
            sign = -1 if value == "/" else 1
            tokens = tokens[1:]
            continue
        factor, tokens = _parse_factor(tokens)
        for k, v in factor.items():
            out[k] = out.get(k, 0) + sign * v
        sign = 1
        first = False
    if first:
        raise ValueError("empty")
    return out, tokens


def _parse_factor(tokens):
    kind, value = tokens[0]
    if kind == "op" and value == "(":
        inner, tokens = _parse_product(tokens[1:])
        if not tokens or tokens[0] != ("op", ")"):
            raise ValueError("unbalanced")
        tokens = tokens[1:]
    elif kind == "num":
        if float(value) != 1.0:
            raise ValueError("scale factor")
        inner, tokens = {}, tokens[1:]
    elif kind == "sym":
        inner, tokens = {value: 1}, tokens[1:]
    else:
        raise ValueError("unexpected operator")
    if tokens and tokens[0] == ("op", "^"):
        tokens = tokens[1:]
        brace = bool(tokens) and tokens[0] == ("op", "{")
        if brace:
            tokens = tokens[1:]
        kind, value = tokens[0]
        if kind != "num" or not float(value).is_integer():
            raise ValueError("power")
        power = int(float(value))
        tokens = tokens[1:]
        if brace:
            if not tokens or tokens[0] != ("op", "}"):
                raise ValueError("unbalanced brace")
            tokens = tokens[1:]
        inner = {k: v * power for k, v in inner.items()}
    return inner, tokens


def _format_unit(powers: dict[str, int], order: tuple[str, ...]) -> str:
    """``{symbol: power}`` as ``"num/den"`` with ``^n`` powers (``"1"`` when empty)."""
    rank = {s: i for i, s in enumerate(order)}
    keys = sorted(powers, key=lambda s: (rank.get(s, len(order)), s))

    def term(sym: str, p: int) -> str:
        return sym if p == 1 else f"{sym}^{p}"

    num = [term(s, powers[s]) for s in keys if powers[s] > 0]
    den = [term(s, -powers[s]) for s in keys if powers[s] < 0]
    top = " ".join(num) or "1"
    if not den:
        return top
    return f"{top}/{den[0]}" if len(den) == 1 else f"{top}/({' '.join(den)})"


def _system_name(system) -> str | None:
    if isinstance(system, UnitSystem):
        return system.name
    if isinstance(system, str) and system.lower() in _SYSTEMS:
        return system.lower()
    return None


def cf_unit_attrs(unit: str | None, system: str | UnitSystem | None = None) -> dict[str, str]:
    """Translate a unit string (as found in a variable's ``units``) to CF attributes.

    Parameters
    ----------
    unit
        The unit string, e.g. ``"hopping t"``, ``"1/(eV * nm^3)"``, ``"e^2/hbar * a^-1"``;
        None or ``""`` mean a pure number.
    system
        The unit system the string belongs to (``"lattice"``, ``"semiconductor"`` or a
        :class:`UnitSystem`). With None, a string made of lattice symbols only (``t``, ``a``,
        ``hbar``, ``e``, ``m_ref``) that uses at least one of ``t``, ``hbar``, ``e`` or
        ``m_ref`` counts as a lattice unit; any other string as a physical one.

    Returns
    -------
    dict
        ``{"units": "1", "lattice_units": ...}`` for a lattice unit (see the module notes);
        ``{"units": <normalised UDUNITS string>}`` for the package's physical units (``"S*m"``
        becomes ``"S m"``, ``"1/(eV * nm^3)"`` becomes ``"1/(eV nm^3)"``, ``"m_e"`` becomes
        ``"9.1093837015e-31 kg"``); ``{"units": unit}`` unchanged for any other string (a
        unit the package does not know, which it cannot check).

    Examples
    --------
    >>> cf_unit_attrs("hopping t", "lattice")
    {'units': '1', 'lattice_units': 't'}
    >>> cf_unit_attrs("S*m", "semiconductor")
    {'units': 'S m'}
    """
    if unit is None or (isinstance(unit, str) and unit.strip() in ("", "1")):
        return {"units": "1"}
    unit = str(unit)
    name = _system_name(system)
    powers = parse_unit(unit)
    if powers is None:
        return {"units": unit}
    if not powers:
        return {"units": "1"}
    symbols = set(powers)
    lattice_only = symbols <= set(_LATTICE_SYMBOLS)
    if name == "lattice" or (name is None and lattice_only
                             and symbols & {"t", "hbar", "e", "m_ref"}):
        if lattice_only:
            return {"units": "1", LATTICE_UNITS_ATTR: _format_unit(powers, _LATTICE_SYMBOLS)}
        return {"units": unit}
    if symbols == {"m_e"} and powers["m_e"] == 1:
        return {"units": _ELECTRON_MASS_KG}
    if symbols <= set(_PHYSICAL_SYMBOLS):
        return {"units": _format_unit(powers, _PHYSICAL_SYMBOLS)}
    return {"units": unit}


def display_unit(attrs) -> str:
    """The unit to show for a variable with these attributes (plot labels, tables).

    ``lattice_units`` when present (a variable written with ``units = "1"`` in lattice units),
    else ``units``, else ``""``.

    Examples
    --------
    >>> display_unit({"units": "1", "lattice_units": "e^2/hbar"})
    'e^2/hbar'
    >>> display_unit({"units": "S/m"})
    'S/m'
    """
    value = attrs.get(LATTICE_UNITS_ATTR) or attrs.get("units") or ""
    return str(value)


# ---------------------------------------------------------------------- input conversion
_EV_PER_J = 1.0 / 1.602176634e-19
#: Energy units accepted in map files, in eV.
ENERGY_UNITS_EV = {
    "eV": 1.0, "electronvolt": 1.0, "electron_volt": 1.0,
    "meV": 1e-3, "ueV": 1e-6, "\u00b5eV": 1e-6, "\u03bceV": 1e-6, "keV": 1e3,
    "J": _EV_PER_J, "joule": _EV_PER_J, "zJ": 1e-21 * _EV_PER_J,
    "Ry": 13.605693122994, "rydberg": 13.605693122994,
    "Ha": 27.211386245988, "hartree": 27.211386245988,
}
#: Length units accepted in map files, in nm.
LENGTH_UNITS_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "nanometers": 1.0, "nanometres": 1.0,
    "m": 1e9, "meter": 1e9, "metre": 1e9, "meters": 1e9, "metres": 1e9,
    "cm": 1e7, "mm": 1e6, "um": 1e3, "\u00b5m": 1e3, "\u03bcm": 1e3, "micrometer": 1e3,
    "micrometre": 1e3, "micron": 1e3, "microns": 1e3,
    "angstrom": 0.1, "Angstrom": 0.1, "angstroms": 0.1, "Angstroms": 0.1,
    "\u00c5": 0.1, "\u212b": 0.1, "pm": 1e-3, "bohr": 0.0529177210903,
}
_LATTICE_ENERGY = ("t", "hopping t")
_LATTICE_LENGTH = ("a",)


def energy_factor(unit: str | None, system: str | UnitSystem, *, where: str = "the map"
                  ) -> float:
    """Factor that converts energies given in ``unit`` to the energy unit of ``system``.

    Parameters
    ----------
    unit
        The unit found in a file (``"meV"``, ``"eV"``, ``"J"``, ``"t"``, ...); None (no unit
        given) means the study's own unit, factor 1.
    system
        The study's unit system.
    where
        Names the source in error messages.

    Raises
    ------
    InputError
        If ``unit`` is not a known energy unit, or belongs to the other unit system (a map in
        eV cannot be used in lattice units, nor a map in units of t in semiconductor units).

    Examples
    --------
    >>> energy_factor("meV", "semiconductor")
    0.001
    """
    return _factor(unit, system, where, "energy", ENERGY_UNITS_EV, _LATTICE_ENERGY)


def length_factor(unit: str | None, system: str | UnitSystem, *, where: str = "the map"
                  ) -> float:
    """Factor that converts lengths given in ``unit`` to the length unit of ``system``.

    Like :func:`energy_factor`, for lengths (``"nm"``, ``"angstrom"``, ``"m"``, ``"a"``).

    Examples
    --------
    >>> length_factor("angstrom", "semiconductor")
    0.1
    """
    return _factor(unit, system, where, "length", LENGTH_UNITS_NM, _LATTICE_LENGTH)


def _factor(unit, system, where, kind, physical, lattice) -> float:
    sys_ = get_units(system)
    if unit is None or str(unit).strip() in ("", "1"):
        return 1.0
    text = str(unit).strip()
    key = text
    if sys_.name == "lattice":
        if key in lattice:
            return 1.0
        if key in physical:
            raise InputError(
                f"{where} is in {kind} unit {text!r}, a physical unit, but the study uses "
                f"lattice units ({kind} in {lattice[0]!r}); set [grid] units = "
                "'semiconductor' or give the map in lattice units")
    else:
        if key in physical:
            return physical[key] / physical[_SI_BASE[kind]]
        if key in lattice:
            raise InputError(
                f"{where} is in the lattice {kind} unit {text!r} but the study uses "
                f"semiconductor units ({'eV' if kind == 'energy' else 'nm'}); set [grid] "
                "units = 'lattice' or give the map in physical units")
    known = ", ".join(sorted(set(physical) | set(lattice), key=str.lower))
    raise InputError(
        f"{where} has {kind} unit {text!r}, which mottscape does not know; use one of "
        f"{known} (or remove the units attribute to mean the study's unit)")


_SI_BASE = {"energy": "eV", "length": "nm"}
