"""Known-answer tests of the noise model: counting statistics, white noise, fluorescence counts."""

import numpy as np
import pytest

from xafsmap.core.spectra.noise import fit_noise_model, point_residuals, smooth_levels

ENERGIES = np.concatenate([np.arange(7050.0, 7100.0, 5.0), np.arange(7100.0, 7140.0, 0.5),
                           np.arange(7140.0, 7300.1, 3.0)])


def _edge(energies, e0=7120.0):
    return 1 / (1 + np.exp(-(energies - e0) / 1.5))


def _transmission(rng, shape=(40, 60), dose=2000.0):
    """Absorbance of Poisson counts under a flat falling 40 % toward the field's corners,
    thickness (edge step) 0.1-2.5 varying pixel to pixel, matrix 0.2-1.0."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    r2 = ((yy - rows / 2) / rows) ** 2 + ((xx - cols / 2) / cols) ** 2
    illumination = dose * (1 - 0.8 * r2)
    step = rng.uniform(0.1, 2.5, shape)
    matrix = rng.uniform(0.2, 1.0, shape)
    mu = matrix[None] * (ENERGIES[:, None, None] / 7050.0) ** -3 + step[None] * _edge(ENERGIES)[:, None, None]
    flat = illumination[None] * (1 + 0.05 * np.sin(ENERGIES / 40.0))[:, None, None]
    counts = rng.poisson(flat * np.exp(-mu))
    flat_counts = rng.poisson(flat * 10) / 10.0  # a flat averaged over 10 frames
    absorbance = -np.log(counts / flat_counts)
    truth = 1 / (flat * np.exp(-mu)) + 1 / (flat * 10)
    return absorbance.astype(np.float32), truth, (yy, xx)


def _fit(absorbance, grid):
    e, rows, cols = absorbance.shape
    sample = absorbance.reshape(e, -1)
    good = np.all(np.isfinite(sample), axis=0)
    return fit_noise_model(sample[:, good], ENERGIES, e0=7120.0, rows=grid[0].ravel()[good],
                           cols=grid[1].ravel()[good])


def test_counting_statistics_are_learned_from_the_absorbance():
    rng = np.random.default_rng(1)
    absorbance, truth, grid = _transmission(rng)
    model = _fit(absorbance, grid)
    assert model.info["level_slope"] == pytest.approx(1.0, abs=0.15)  # v ~ exp(A): Poisson
    predicted = model.variance(absorbance, model.scale(*grid))
    ratio = np.sqrt(predicted / truth)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)
    # thin and thick, bright and dim: within 20 % at 90 % of the points
    assert np.percentile(np.abs(np.log(ratio)), 90) < np.log(1.2)


def test_white_noise_gives_a_flat_level_curve():
    rng = np.random.default_rng(2)
    step = rng.uniform(0.2, 2.0, 1200)
    mu = 0.5 + step[None] * _edge(ENERGIES)[:, None] + rng.normal(0, 0.02, (ENERGIES.size, 1200))
    rows, cols = np.divmod(np.arange(1200), 40)
    model = fit_noise_model(mu, ENERGIES, e0=7120.0, rows=rows, cols=cols)
    assert abs(model.info["level_slope"]) < 0.1
    sigma = np.sqrt(model.variance(mu, model.scale(rows, cols)))
    assert np.median(sigma) == pytest.approx(0.02, rel=0.05)


def test_fluorescence_counts_scale_with_the_counts():
    """Raw counts (edge jumps 360-41 000): Poisson noise sqrt(counts), level in counts."""
    rng = np.random.default_rng(3)
    jump = np.exp(rng.uniform(np.log(360), np.log(41000), 1500))
    expected = 0.1 * jump[None] + jump[None] * _edge(ENERGIES)[:, None]
    counts = rng.poisson(expected).astype(np.float32)
    rows, cols = np.divmod(np.arange(1500), 50)
    model = fit_noise_model(counts, ENERGIES, e0=7120.0, rows=rows, cols=cols)
    sigma = np.sqrt(model.variance(counts, model.scale(rows, cols)))
    ratio = sigma / np.sqrt(expected)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
    assert np.percentile(np.abs(np.log(ratio)), 90) < np.log(1.3)


def test_residuals_ignore_linear_trends_on_uneven_grids():
    y = 3.0 + 0.01 * ENERGIES
    resid, usable = point_residuals(y[:, None], ENERGIES, e0=7120.0)
    assert usable[0] and np.nanmax(np.abs(resid)) < 1e-9


def test_smooth_levels_keep_float32_and_shape():
    out = smooth_levels(np.ones((ENERGIES.size, 2, 3), np.float32))
    assert out.shape == (ENERGIES.size, 2, 3) and out.dtype == np.float32


def test_too_few_pixels_is_a_clear_error():
    with pytest.raises(ValueError, match="only 3 surveyed pixels"):
        fit_noise_model(np.ones((ENERGIES.size, 3)), ENERGIES, e0=7120.0, rows=[0, 0, 0], cols=[0, 1, 2])
