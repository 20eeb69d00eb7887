import numpy as np
import pytest
from scipy.optimize import nnls

from xafsmap.core.spectra.lcf import fit_fractions


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    e = np.linspace(-10, 20, 60)
    refs = np.array([1 / (1 + np.exp(-(e - c))) + a * np.exp(-((e - c - 3) ** 2) / 4)
                     for c, a in [(-2, 0.2), (0, 0.8), (2, 0.4), (4, 1.2)]])
    truth = rng.dirichlet(np.full(4, 0.4), size=500).T
    spectra = refs.T @ truth + 0.01 * rng.standard_normal((60, 500))
    return refs, truth, spectra


def test_free_amplitudes_equal_scipy_nnls(problem):
    refs, _, spectra = problem
    w, residual = fit_fractions(spectra, refs, sum_to_one=False)
    expected = np.stack([nnls(refs.T, column)[0] for column in spectra.T], axis=1)
    np.testing.assert_allclose(w, expected, atol=1e-5)
    misfit = np.sqrt(np.mean((refs.T @ expected - spectra) ** 2, axis=0))
    np.testing.assert_allclose(residual, misfit, rtol=1e-4)


def test_sum_to_one_fractions_recover_truth(problem):
    refs, truth, spectra = problem
    w, _ = fit_fractions(spectra, refs)
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(axis=0), 1, atol=0.01)
    assert np.sqrt(np.mean((w - truth) ** 2)) < 0.03


def test_pixel_shape_is_kept_and_nan_pixels_are_nan(problem):
    refs, _, spectra = problem
    cube = spectra[:, :20].reshape(60, 4, 5).copy()
    cube[7, 1, 2] = np.nan
    w, residual = fit_fractions(cube, refs)
    assert w.shape == (4, 4, 5) and residual.shape == (4, 5)
    assert np.isnan(w[:, 1, 2]).all() and np.isnan(residual[1, 2])
    assert np.isfinite(np.delete(w.reshape(4, -1), 7, axis=1)).all()


def test_many_references_fall_back_to_scipy():
    rng = np.random.default_rng(1)
    refs = rng.random((10, 30))
    truth = rng.dirichlet(np.ones(10), size=5).T
    w, residual = fit_fractions(refs.T @ truth, refs, sum_to_one=False)
    assert w.shape == (10, 5) and residual.max() < 1e-6


def test_energy_count_mismatch_is_named():
    with pytest.raises(ValueError, match="spectra have 5 energies but the references have 6"):
        fit_fractions(np.zeros((5, 2)), np.zeros((2, 6)))


def _heteroscedastic(problem, seed=2):
    """The problem's truth with noise that differs between energies and pixels."""
    refs, truth, _ = problem
    rng = np.random.default_rng(seed)
    sigma = 0.005 * np.exp(rng.uniform(0, 2, (1, truth.shape[1]))) * (1 + refs[1][:, None])
    spectra = refs.T @ truth + sigma * rng.standard_normal(sigma.shape)
    return refs, truth, spectra, sigma


def test_weighted_free_amplitudes_equal_scipy_nnls_on_scaled_rows(problem):
    from xafsmap.core.spectra.lcf import fit_weighted, weighted_moments

    refs, _, spectra, sigma = _heteroscedastic(problem)
    fit = fit_weighted(*weighted_moments(spectra, refs, sigma**-2), n_points=60, sum_to_one=False)
    a = refs.T[None] / sigma.T[:, :, None]
    expected = np.stack([nnls(a[i], spectra[:, i] / sigma[:, i])[0] for i in range(spectra.shape[1])], axis=1)
    np.testing.assert_allclose(fit.fractions, expected, atol=1e-6)
    rss = np.sum(((refs.T @ expected - spectra) / sigma) ** 2, axis=0)
    np.testing.assert_allclose(fit.chi2, rss, rtol=1e-6, atol=1e-8)


def test_weighted_sum_to_one_is_exact_and_its_sigma_is_calibrated(problem):
    from xafsmap.core.spectra.lcf import fit_weighted, weighted_moments

    refs, truth, spectra, sigma = _heteroscedastic(problem)
    fit = fit_weighted(*weighted_moments(spectra, refs, sigma**-2), n_points=60)
    assert (fit.fractions >= 0).all()
    np.testing.assert_allclose(fit.fractions.sum(axis=0), 1, atol=1e-9)
    inside = np.abs(fit.fractions - truth) <= fit.sigma
    interior = (truth > 0.1).all(axis=0)  # away from the w >= 0 boundary the fit is Gaussian
    assert 0.6 < inside[:, interior].mean() < 0.76
    assert (np.abs(fit.fractions - truth) <= 2 * fit.sigma).mean() > 0.9
    assert np.median(fit.chi2 / (60 - 3)) == pytest.approx(1.0, abs=0.1)


def test_weighted_fit_skips_a_singular_pair_and_respects_allowed(problem):
    from xafsmap.core.spectra.lcf import fit_weighted, weighted_moments

    refs, truth, spectra, sigma = _heteroscedastic(problem)
    twin = np.vstack([refs[:2], refs[1:2]])  # references 1 and 2 identical
    fit = fit_weighted(*weighted_moments(spectra[:, :50], twin, sigma[:, :50] ** -2), n_points=60)
    assert np.isfinite(fit.fractions).all() and np.isfinite(fit.chi2).all()
    allowed = np.zeros((4, 50), bool)
    allowed[[0, 3]] = True
    fit = fit_weighted(*weighted_moments(spectra[:, :50], refs, sigma[:, :50] ** -2), n_points=60,
                       allowed=allowed)
    assert (fit.fractions[[1, 2]] == 0).all() and np.isfinite(fit.sigma).all()
