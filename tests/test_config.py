"""Tests of TOML study files (mottscape.config)."""

from __future__ import annotations

import dataclasses
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from mottscape import disorder
from mottscape.config import Study, StudyError, default_study, load_study, study_from_dict
from mottscape.errors import InputError


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def error_of(path: Path) -> StudyError:
    with pytest.raises(StudyError) as info:
        load_study(path)
    assert isinstance(info.value, InputError)
    assert str(path) in str(info.value)
    return info.value


MINIMAL = """
[conductivity]
fermi_energy = 0.5
"""


# ---------------------------------------------------------------------- the default study
def test_default_study_values():
    s = default_study()
    assert isinstance(s, Study)
    assert s.potential.model == "block"
    assert s.potential.shape == (192, 192)
    assert dict(s.potential.params) == {"block": 4, "width": 4.0, "offset": 0.0}
    assert s.grid.boundary == "dirichlet" and s.grid.units == "lattice"
    assert s.conductivity.fermi_energy == pytest.approx(0.6)
    assert s.conductivity.mott_scale == "log"
    assert s.ensemble.realizations == 16 and s.cluster.workers == 2  # a small ensemble
    assert s.output.figures is True
    user = study_from_dict({"conductivity": {"fermi_energy": 0.6}})
    assert user.ensemble.realizations == 1 and user.cluster.workers is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.potential.seed = 3  # type: ignore[misc]


def test_default_study_potential_is_a_block_band_tail():
    s = default_study()
    V = s.make_potential()
    assert V.shape == (192, 192)
    assert 0.0 <= V.min() and V.max() <= 4.0
    assert np.all(V[:4, :4] == V[0, 0])
    # E_F lies in the lower band tail: only a few per cent of the blocks are below it.
    assert 0.0 < np.mean(V < s.conductivity.fermi_energy) < 0.25
    np.testing.assert_array_equal(V, s.make_potential())


def test_default_file_is_a_complete_study():
    # Every key of the schema appears in the packaged file, so defaults are documented there.
    from importlib import resources

    text = resources.files("mottscape").joinpath("data/default_study.toml").read_text()
    data = tomllib.loads(text)
    assert set(data) == {"potential", "grid", "conductivity", "options", "ensemble", "cluster",
                         "output"}
    # every option but those whose default is None (no TOML null) is documented with its
    # default
    from mottscape.options import Options

    assert set(data["options"]) == set(Options.names()) - {"pair_window", "mott_scale",
                                                           "pair_model"}
    assert Options.from_mapping(data["options"]) == Options()
    assert "fermi_energy" in data["conductivity"]


def test_minimal_file_takes_defaults(tmp_path):
    s = load_study(write(tmp_path, MINIMAL))
    d = default_study()
    assert s.potential == d.potential
    assert s.grid == d.grid
    assert s.conductivity.fermi_energy == 0.5
    assert s.output.dir == tmp_path / "mottscape-results"
    assert s.base_dir == tmp_path.resolve()


def test_omegas_log_spaced_and_explicit(tmp_path):
    s = load_study(write(tmp_path, """
        [conductivity]
        fermi_energy = 0.5
        omega_min = 1e-4
        omega_max = 1e-2
        n_omega = 3
    """))
    np.testing.assert_allclose(s.omegas(), [1e-4, 1e-3, 1e-2])
    s = load_study(write(tmp_path, """
        [conductivity]
        fermi_energy = 0.5
        omega = [0.001, 0.002, 0.01]
    """))
    np.testing.assert_allclose(s.omegas(), [0.001, 0.002, 0.01])
    assert s.conductivity.omega_min is None


# ---------------------------------------------------------------------- potentials
def test_potential_params_and_seeds(tmp_path):
    s = load_study(write(tmp_path, """
        [potential]
        model = "anderson"
        shape = [32]
        seed = 7
        width = 2.0
        [conductivity]
        fermi_energy = 0.5
    """))
    p = s.potential_params
    assert p["shape"] == (32,) and p["width"] == 2.0
    assert "block" not in p  # the default model's parameters are not inherited
    V0 = s.make_potential()
    np.testing.assert_array_equal(V0, disorder.generate("anderson", **p))
    V1 = s.make_potential(1)
    assert not np.array_equal(V0, V1)
    children = np.random.SeedSequence(7).spawn(3)
    np.testing.assert_array_equal(V1, disorder.anderson(32, width=2.0, seed=children[1]))


def test_grid_spacing_and_periodic_are_passed_to_generators(tmp_path):
    s = load_study(write(tmp_path, """
        [potential]
        model = "gaussian"
        shape = [16, 16]
        correlation_length = 2.0
        [grid]
        spacing = [0.5, 0.25]
        boundary = "periodic"
        [conductivity]
        fermi_energy = 0.1
    """))
    p = s.potential_params
    assert p["spacing"] == (0.5, 0.25)
    assert p["periodic"] is True
    assert s.make_potential().shape == (16, 16)
    assert s.make_grid().spacing == (0.5, 0.25)


def test_white_noise_study(tmp_path):
    s = load_study(write(tmp_path, """
        [potential]
        model = "white_noise"
        shape = [100]
        strength = 0.5
        [grid]
        spacing = 0.2
        [conductivity]
        fermi_energy = 0.1
    """))
    V = s.make_potential()
    assert V.shape == (100,)
    assert s.potential_params["spacing"] == 0.2


def test_file_model_and_mass_map(tmp_path):
    V = np.random.default_rng(0).random((6, 7))
    np.save(tmp_path / "map.npy", V)
    np.save(tmp_path / "mass.npy", np.full((6, 7), 0.2))
    s = load_study(write(tmp_path, """
        [potential]
        model = "file"
        file = "map.npy"
        [grid]
        mass = "mass.npy"
        [conductivity]
        fermi_energy = 0.5
    """))
    np.testing.assert_array_equal(s.make_potential(), V)
    np.testing.assert_allclose(s.make_mass(), 0.2)
    assert s.potential.shape is None
    assert s.make_grid(V.shape).shape == (6, 7)


def test_file_model_shape_mismatch(tmp_path):
    np.save(tmp_path / "map.npy", np.zeros((6, 7)))
    s = load_study(write(tmp_path, """
        [potential]
        model = "file"
        file = "map.npy"
        shape = [6, 6]
        [conductivity]
        fermi_energy = 0.5
    """))
    with pytest.raises(StudyError, match=r"shape = \[6, 6\] but the map .* has shape \[6, 7\]"):
        s.make_potential()


def test_study_from_dict():
    s = study_from_dict({"potential": {"model": "block", "shape": [8, 8], "block": 2},
                         "conductivity": {"fermi_energy": 0.3}})
    assert s.source == "<dict>"
    assert dict(s.potential.params)["block"] == 2
    assert s.make_potential().shape == (8, 8)
    with pytest.raises(StudyError, match=r"^<dict>: unknown key 'widht'.*did you mean 'width'"):
        study_from_dict({"potential": {"widht": 1.0}, "conductivity": {"fermi_energy": 0.3}})


def test_to_dict_round_trips():
    s = default_study()
    again = study_from_dict(s.to_dict(), base_dir=s.base_dir)
    assert again.potential == s.potential
    assert again.conductivity == s.conductivity


# ---------------------------------------------------------------------- errors
def test_unknown_key_with_suggestion_and_line(tmp_path):
    path = write(tmp_path, """
        # a comment
        [potential]
        model = "block"

        [conductivity]
        fermi_energy = 0.5
        omega_mni = 1e-3
    """)
    err = error_of(path)
    msg = str(err)
    assert "line 7" in msg and err.line == 7
    assert "unknown key 'omega_mni' in [conductivity]" in msg
    assert "did you mean 'omega_min'?" in msg
    assert err.section == "conductivity" and err.key == "omega_mni"


def test_unknown_model_parameter(tmp_path):
    err = error_of(write(tmp_path, """
        [potential]
        model = "anderson"
        shape = [10]
        block = 2
        [conductivity]
        fermi_energy = 0.5
    """))
    assert err.line == 4
    assert "unknown key 'block' in [potential]" in str(err)
    assert "model 'anderson' takes width, offset" in str(err)


def test_unknown_section(tmp_path):
    err = error_of(write(tmp_path, """
        [conductivity]
        fermi_energy = 0.5
        [ouptut]
        dir = "x"
    """))
    assert err.line == 3
    assert "unknown section [ouptut]; did you mean [output]?" in str(err)


def test_key_outside_section(tmp_path):
    err = error_of(write(tmp_path, "fermi_energy = 0.5\n"))
    assert err.line == 1
    assert "outside any section; put it under [conductivity]" in str(err)


@pytest.mark.parametrize(
    "body,line,fragment",
    [
        ('[conductivity]\nfermi_energy = "half"\n', 2,
         "[conductivity] fermi_energy must be a number, got string 'half'"),
        ("[conductivity]\nfermi_energy = 0.5\nn_omega = 3.5\n", 3,
         "n_omega must be an integer, got float 3.5"),
        ("[potential]\nshape = [10, 0]\n[conductivity]\nfermi_energy = 0.5\n", 2,
         "shape must be an array of 1 to 3 positive integers"),
        ("[grid]\nboundary = 1\n[conductivity]\nfermi_energy = 0.5\n", 2,
         "boundary must be a string, got integer 1"),
        ("[output]\nfigures = \"yes\"\n[conductivity]\nfermi_energy = 0.5\n", 2,
         "figures must be a boolean"),
        ("[potential]\nwidth = true\n[conductivity]\nfermi_energy = 0.5\n", 2,
         "width must be a number, got boolean true"),
        ("[conductivity]\nfermi_energy = 0.5\n[ensemble]\nrealizations = 0\n", 4,
         "realizations = 0 must be >= 1"),
    ],
)
def test_wrong_types_and_values(tmp_path, body, line, fragment):
    err = error_of(write(tmp_path, body))
    assert err.line == line
    assert f"line {line}" in str(err)
    assert fragment in str(err)


def test_missing_fermi_energy(tmp_path):
    err = error_of(write(tmp_path, """
        [potential]
        seed = 2
        [conductivity]
        omega_min = 1e-3
    """))
    assert "fermi_energy is required" in str(err)
    assert err.line == 3  # the [conductivity] header
    err = error_of(write(tmp_path, "[potential]\nseed = 2\n"))
    assert "fermi_energy is required" in str(err)


def test_omega_and_omega_min_both_given(tmp_path):
    err = error_of(write(tmp_path, """
        [conductivity]
        fermi_energy = 0.5
        omega = [1e-3, 1e-2]
        omega_min = 1e-4
    """))
    assert err.line == 4
    assert "either omega = [...] or omega_min/omega_max/n_omega, not both" in str(err)


@pytest.mark.parametrize(
    "extra,fragment",
    [
        ("omega = [1e-2, 1e-3]", "strictly increasing"),
        ("omega_min = 1e-2\nomega_max = 1e-3", "must be > omega_min"),
        ("omega_min = 0.0", "omega_min = 0.0 must be > 0"),
        ("n_omega = 1", "n_omega = 1 must be >= 2"),
        ('mott_scale = "lamberw"', "did you mean 'lambertw'"),
    ],
)
def test_bad_frequencies(tmp_path, extra, fragment):
    err = error_of(write(tmp_path, f"[conductivity]\nfermi_energy = 0.5\n{extra}\n"))
    assert fragment in str(err)


def test_invalid_toml(tmp_path):
    err = error_of(write(tmp_path, "[conductivity]\nfermi_energy = = 0.5\n"))
    assert "invalid TOML" in str(err)
    assert "(at line 2, column" in str(err)
    assert err.line == 2


def test_missing_file(tmp_path):
    with pytest.raises(StudyError, match="does not exist"):
        load_study(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "body,fragment",
    [
        ('[potential]\nmodel = "blok"\n', "model = 'blok' is not known (did you mean 'block'?)"),
        ('[potential]\nmodel = "binary_alloy"\n', "needs concentration, v_a, v_b"),
        ("[potential]\nwidth = -1.0\n", "width=-1.0 must be >= 0"),
        ('[potential]\nmodel = "gaussian"\ncorrelation_length = 0.0\n', "correlation_length"),
        ('[potential]\nmodel = "white_noise"\nstrength = 1.0\n', "white_noise' is 1D"),
        ("[potential]\nspacing = 1.0\n", "taken from grid.spacing"),
        ("[potential]\nseed = -1\n", "seed = -1 must be >= 0"),
        ('[potential]\nfile = "a.npy"\n', "only used with model = 'file'"),
        ('[potential]\nmodel = "file"\n', "needs file = '<path>'"),
        ('[potential]\nmodel = "file"\nfile = "gone.npy"\n', "does not exist"),
        ("[grid]\nspacing = [1.0, 1.0, 1.0]\n", "spacing has 3 values but the potential has 2"),
        ("[grid]\nspacing = -1.0\n", "must be > 0"),
        ('[grid]\nboundary = "open"\n', "use one of 'dirichlet', 'periodic'"),
        ('[grid]\nunits = "SI"\n', "use one of 'lattice', 'semiconductor'"),
        ("[grid]\nmass = 0.0\n", "mass = 0.0 must be > 0"),
        ('[grid]\nmass = "m.npy"\n', "does not exist"),
    ],
)
def test_invalid_values(tmp_path, body, fragment):
    err = error_of(write(tmp_path, body + "[conductivity]\nfermi_energy = 0.5\n"))
    assert fragment in str(err)
    assert err.line is not None
