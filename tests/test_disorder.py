"""Tests of the potential generators (mottscape.disorder)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mottscape import disorder
from mottscape.errors import InputError

CHEAP = {
    "anderson": {},
    "block": {"block": 2},
    "gaussian": {"correlation_length": 1.5},
    "binary_alloy": {"concentration": 0.3, "v_a": -1.0, "v_b": 0.0},
}


def autocorrelation(field: np.ndarray) -> np.ndarray:
    """Periodic sample autocovariance of a field, by FFT."""
    x = field - field.mean()
    f = np.fft.rfftn(x)
    return np.fft.irfftn(np.abs(f) ** 2, s=x.shape, axes=range(x.ndim)) / x.size


# ---------------------------------------------------------------------- common behaviour
@pytest.mark.parametrize("model", sorted(CHEAP))
@pytest.mark.parametrize("shape", [(17,), (9, 11), (5, 6, 7)])
def test_shape_dtype_and_reproducibility(model, shape):
    params = dict(CHEAP[model], shape=shape)
    a = disorder.generate(model, seed=12, **params)
    b = disorder.generate(model, seed=12, **params)
    c = disorder.generate(model, seed=13, **params)
    assert a.shape == shape
    assert a.dtype == np.float64
    assert a.flags.c_contiguous
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("model", sorted(CHEAP))
def test_generator_seed_is_used_and_advanced(model):
    params = dict(CHEAP[model], shape=(8, 8))
    rng = np.random.default_rng(5)
    first = disorder.generate(model, seed=rng, **params)
    second = disorder.generate(model, seed=rng, **params)
    again = disorder.generate(model, seed=np.random.default_rng(5), **params)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


def test_seed_sequence_accepted():
    ss = np.random.SeedSequence(3, spawn_key=(1,))
    a = disorder.anderson(10, seed=ss)
    b = disorder.anderson(10, seed=np.random.SeedSequence(3).spawn(2)[1])
    np.testing.assert_array_equal(a, b)


def test_int_shape_means_1d():
    assert disorder.anderson(7, seed=0).shape == (7,)


# ---------------------------------------------------------------------- anderson
def test_anderson_statistics():
    V = disorder.anderson((400, 500), width=3.0, offset=-1.0, seed=1)
    assert V.min() >= -1.0 and V.max() <= 2.0
    assert V.mean() == pytest.approx(0.5, abs=0.01)
    assert V.var() == pytest.approx(9.0 / 12.0, rel=0.01)


# ---------------------------------------------------------------------- block
def test_block_is_constant_on_blocks_and_cropped():
    V = disorder.block((10, 7), block=(4, 3), width=2.0, offset=1.0, seed=3)
    assert V.shape == (10, 7)
    for i0 in range(0, 10, 4):
        for j0 in range(0, 7, 3):
            tile = V[i0:i0 + 4, j0:j0 + 3]
            assert np.all(tile == tile[0, 0])
    coarse = V[::4, ::3]
    assert coarse.shape == (3, 3)
    assert len(np.unique(coarse)) == coarse.size  # independent values differ
    assert coarse.min() >= 1.0 and coarse.max() <= 3.0


def test_block_one_equals_anderson():
    np.testing.assert_array_equal(disorder.block((6, 5), block=1, seed=9),
                                  disorder.anderson((6, 5), seed=9))


def test_block_statistics_of_block_values():
    V = disorder.block((1200, 1200), block=4, width=4.0, seed=2)
    values = V[::4, ::4]
    assert values.mean() == pytest.approx(2.0, abs=0.02)
    assert values.var() == pytest.approx(16.0 / 12.0, rel=0.02)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       size=st.integers(1, 5))
def test_block_structure_property(shape, size):
    V = disorder.block(tuple(shape), block=size, seed=0)
    assert V.shape == tuple(shape)
    for axis, n in enumerate(shape):
        idx = np.arange(n)
        same = (idx[:-1] // size) == (idx[1:] // size)
        diff = np.diff(V, axis=axis)
        moved = np.moveaxis(diff, axis, 0)
        assert np.all(moved[same] == 0.0)


# ---------------------------------------------------------------------- gaussian
def test_gaussian_mean_std_and_correlation_length():
    ell, amp, mean = 4.0, 2.0, 1.0
    fields = [disorder.gaussian((256, 256), ell, amplitude=amp, mean=mean, seed=s,
                                periodic=True) for s in range(4)]
    allv = np.stack(fields)
    assert allv.mean() == pytest.approx(mean, abs=0.1)
    assert allv.std() == pytest.approx(amp, rel=0.05)
    C = np.mean([autocorrelation(f) for f in fields], axis=0)
    r = np.arange(1, 9)
    for profile in (C[r, 0], C[0, r]):
        ratio = profile / C[0, 0]
        np.testing.assert_allclose(ratio, np.exp(-(r**2) / (2 * ell**2)), atol=0.04)
        # Fit l from -log C(r)/C(0) = r^2 / (2 l^2) on the well-measured part.
        sel = ratio > 0.2
        slope = np.sum(r[sel] ** 2 * -np.log(ratio[sel])) / np.sum(r[sel] ** 4)
        assert np.sqrt(1 / (2 * slope)) == pytest.approx(ell, rel=0.05)


def test_gaussian_correlation_length_in_physical_units():
    # l = 1.5 length units on a grid of spacing 0.5 is 3 cells.
    V = disorder.gaussian(65536, correlation_length=1.5, spacing=0.5, seed=4, periodic=True)
    C = autocorrelation(V)
    assert C[3] / C[0] == pytest.approx(np.exp(-0.5), abs=0.03)
    assert C[6] / C[0] == pytest.approx(np.exp(-2.0), abs=0.03)


def test_gaussian_anisotropic():
    fields = [disorder.gaussian((256, 256), (2.0, 6.0), seed=s, periodic=True)
              for s in range(3)]
    C = np.mean([autocorrelation(f) for f in fields], axis=0)
    assert C[2, 0] / C[0, 0] == pytest.approx(np.exp(-0.5), abs=0.05)
    assert C[0, 6] / C[0, 0] == pytest.approx(np.exp(-0.5), abs=0.05)


def test_gaussian_padding_removes_wraparound():
    # Correlation of the two end cells across many independent 1D realizations.
    n, ell, m = 64, 5.0, 3000
    per = np.stack([disorder.gaussian(n, ell, seed=s, periodic=True) for s in range(m)])
    pad = np.stack([disorder.gaussian(n, ell, seed=s) for s in range(m)])

    def end_corr(v):
        return np.corrcoef(v[:, 0], v[:, -1])[0, 1]

    # On a torus the end cells are neighbours: exp(-1 / (2 l^2)) = 0.98.
    assert end_corr(per) == pytest.approx(np.exp(-1 / (2 * ell**2)), abs=0.02)
    # Padded: they are 63 cells apart, correlation exp(-79) ~ 0 (standard error ~ 0.02).
    assert abs(end_corr(pad)) < 0.07
    assert pad.std() == pytest.approx(1.0, rel=0.05)
    assert np.corrcoef(pad[:, 0], pad[:, 5])[0, 1] == pytest.approx(np.exp(-0.5), abs=0.05)


def test_gaussian_3d_shape():
    assert disorder.gaussian((6, 7, 8), 1.0, seed=0).shape == (6, 7, 8)


# ---------------------------------------------------------------------- binary alloy
def test_binary_alloy_mean_range_and_smoothing_variance():
    c, va, vb, sigma = 0.25, -0.6, 0.2, 2.0
    V = disorder.binary_alloy((512, 512), c, va, vb, spacing=0.5, smoothing_length=1.0,
                              seed=7, periodic=True)
    assert V.mean() == pytest.approx(c * va + (1 - c) * vb, abs=0.005)
    assert V.min() >= va - 1e-12 and V.max() <= vb + 1e-12
    # sigma = smoothing_length / spacing = 2 cells; a normalised Gaussian kernel in 2D has
    # sum of squares ~ 1 / (4 pi sigma^2), so var = c (1 - c) (va - vb)^2 / (4 pi sigma^2).
    expected = c * (1 - c) * (va - vb) ** 2 / (4 * np.pi * sigma**2)
    assert V.var() == pytest.approx(expected, rel=0.1)


def test_binary_alloy_without_smoothing_is_binary():
    V = disorder.binary_alloy((300, 300), 0.3, 1.0, 0.0, smoothing_length=0.0, seed=1)
    assert set(np.unique(V)) == {0.0, 1.0}
    assert V.mean() == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("c,value", [(0.0, 0.2), (1.0, -0.6)])
def test_binary_alloy_pure_limits(c, value):
    V = disorder.binary_alloy((20, 20), c, -0.6, 0.2, seed=0)
    np.testing.assert_allclose(V, value)


# ---------------------------------------------------------------------- white noise
def test_white_noise_statistics():
    D, h = 2.0, 0.25
    V = disorder.white_noise(200_000, D, spacing=h, mean=0.5, seed=3)
    assert V.shape == (200_000,)
    assert V.mean() == pytest.approx(0.5, abs=0.02)
    assert V.var() == pytest.approx(D / h, rel=0.02)
    C = autocorrelation(V)
    assert abs(C[1] / C[0]) < 0.01


def test_white_noise_integral_variance_independent_of_spacing():
    # The integral of V over a length L has variance D * L for every discretisation.
    D, L = 1.0, 4.0
    for h in (0.5, 0.1):
        n = round(L / h)
        V = disorder.white_noise(n * 5000, D, spacing=h, seed=1).reshape(5000, n)
        integral = V.sum(axis=1) * h
        assert integral.var() == pytest.approx(D * L, rel=0.06)


def test_white_noise_rejects_2d():
    with pytest.raises(InputError, match="one-dimensional"):
        disorder.white_noise((4, 4), 1.0, seed=0)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call,fragment",
    [
        (lambda: disorder.anderson((4,), width=-1.0, seed=0), "width=-1.0 must be >= 0"),
        (lambda: disorder.anderson((), seed=0), "0 axes"),
        (lambda: disorder.anderson((2, 2, 2, 2), seed=0), "4 axes"),
        (lambda: disorder.anderson((4, 0), seed=0), "int >= 1"),
        (lambda: disorder.anderson((4, 2.5), seed=0), "int >= 1"),
        (lambda: disorder.anderson(4, seed=None), "seed is required"),
        (lambda: disorder.anderson(4, seed=-3), "seed=-3"),
        (lambda: disorder.anderson(4, seed=1.5), "seed=1.5"),
        (lambda: disorder.anderson(4, width=float("nan"), seed=0), "finite"),
        (lambda: disorder.block((8,), block=0, seed=0), "block=0"),
        (lambda: disorder.block((8,), block=2.5, seed=0), "int >= 1"),
        (lambda: disorder.block((8, 8), block=(2, 2, 2), seed=0), "one such int per axis"),
        (lambda: disorder.block((8,), block=True, seed=0), "block=True"),
        (lambda: disorder.gaussian((8,), 0.0, seed=0), "correlation_length=0.0 must be > 0"),
        (lambda: disorder.gaussian((8,), -2.0, seed=0), "correlation_length"),
        (lambda: disorder.gaussian((8,), 1.0, amplitude=-1, seed=0), "amplitude"),
        (lambda: disorder.gaussian((8,), 1.0, spacing=0.0, seed=0), "spacing"),
        (lambda: disorder.gaussian((8, 8), (1.0, 2.0, 3.0), seed=0), "one per axis"),
        (lambda: disorder.binary_alloy((8,), 1.5, 0, 1, seed=0), "concentration=1.5"),
        (lambda: disorder.binary_alloy((8,), -0.1, 0, 1, seed=0), "[0, 1]"),
        (lambda: disorder.binary_alloy((8,), 0.5, 0, 1, smoothing_length=-1, seed=0),
         "smoothing_length"),
        (lambda: disorder.white_noise(8, -1.0, seed=0), "strength"),
        (lambda: disorder.white_noise(8, 1.0, spacing=0.0, seed=0), "spacing=0.0 must be > 0"),
    ],
)
def test_invalid_arguments(call, fragment):
    with pytest.raises(InputError) as info:
        call()
    assert fragment in str(info.value)


# ---------------------------------------------------------------------- registry
def test_models_registry():
    assert set(disorder.MODELS) == {"anderson", "block", "gaussian", "binary_alloy",
                                    "white_noise"}


def test_generate_dispatches():
    np.testing.assert_array_equal(
        disorder.generate("block", shape=(8, 8), block=4, width=2.0, seed=1),
        disorder.block((8, 8), block=4, width=2.0, seed=1))
    np.testing.assert_array_equal(
        disorder.generate("white_noise", shape=(50,), strength=1.0, seed=2),
        disorder.white_noise(50, 1.0, seed=2))


def test_generate_unknown_model_suggests():
    with pytest.raises(InputError, match=r"did you mean 'gaussian'\?.*anderson"):
        disorder.generate("gausian", shape=(4,), seed=0)


def test_generate_unknown_parameter_lists_accepted():
    with pytest.raises(InputError) as info:
        disorder.generate("block", shape=(8,), blok=2, seed=0)
    msg = str(info.value)
    assert "'blok' (did you mean 'block'?)" in msg
    assert "it accepts shape, block, width, offset, seed" in msg


def test_generate_missing_parameter():
    with pytest.raises(InputError, match=r"needs parameter.*correlation_length"):
        disorder.generate("gaussian", shape=(8,), seed=0)
    with pytest.raises(InputError, match=r"needs parameter.*seed"):
        disorder.generate("anderson", shape=(8,))
