"""Scores of maps against a known truth (core/scores.py), on arrays whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from xafsmap.core.simulate.measurement import detection_power, fraction_crlb
from xafsmap.core.simulate.sample import make_sample
from xafsmap.core.simulate.specimen import HOLE, MATRIX, SAMPLE
from xafsmap.core.simulate.scores import (
    TARGETS,
    check_targets,
    coverage,
    dominant_accuracy,
    fraction_rmse,
    mask_iou,
    roc_auc,
    score_maps,
    unexplained_rates,
)
from xafsmap.core.simulate.truth import Truth


@pytest.fixture
def truth():
    """4 x 5 pixels: a hole column, a matrix column, known pixels of A/B and left-out X."""
    a = np.array([[0, 0, 1.0, 0.75, 0], [0, 0, 1.0, 0.75, 0], [0, 0, 0.5, 0.25, 0], [0, 0, 0.5, 0, 0]])
    b = np.array([[0, 0, 0.0, 0.25, 0], [0, 0, 0.0, 0.25, 0], [0, 0, 0.5, 0.75, 0], [0, 0, 0.5, 1.0, 0]])
    x = np.array([[0, 0, 0, 0, 1.0], [0, 0, 0, 0, 1.0], [0, 0, 0, 0, 1.0], [0, 0, 0, 0, 0.6]])
    kind = np.full((4, 5), SAMPLE, np.uint8)
    kind[:, 0], kind[:, 1] = HOLE, MATRIX
    step = np.where(kind == SAMPLE, np.array([[0, 0, 0.2, 0.2, 0.2], [0, 0, 0.4, 0.4, 1.5],
                                                [0, 0, 1.5, 1.5, 1.5], [0, 0, 2.0, 2.0, 2.0]]), 0.0)
    distorted = np.zeros((4, 5), bool)
    distorted[3, 2] = True
    return Truth(("A", "B", "X"), ("A", "B"), np.array([a, b, x], np.float32), step.astype(np.float32), kind,
                 distorted, None)


def test_pixel_sets(truth):
    assert truth.sample.sum() == 12
    assert truth.known.sum() == 8 and truth.left_out.sum() == 4
    assert truth.reference_fractions.shape == (2, 4, 5)


def test_mask_iou_counts_misses_and_extras(truth):
    assert mask_iou(truth.sample, truth.sample) == 1.0
    mask = truth.sample.copy()
    mask[0, 2] = False          # one sample pixel missed
    mask[0, 1] = True           # one matrix pixel taken
    assert mask_iou(mask, truth.sample) == pytest.approx(11 / 13)
    scores = score_maps(truth, mask=mask)
    assert scores["mask_dropped"] == pytest.approx(1 / 12) and scores["mask_extra"] == pytest.approx(1 / 8)
    assert scores["mask_dropped_left_out"] == 0.0
    assert np.isnan(mask_iou(np.zeros(3, bool), np.zeros(3, bool)))


def test_dominant_accuracy_uses_clear_pixels_only(truth):
    true = truth.reference_fractions
    est = true.copy()
    est[:, 0, 2] = [0.2, 0.8]   # a wrong clear pixel
    est[:, 2, 2] = [0.0, 1.0]   # 50:50 pixel: not scored at min_fraction 0.7
    est[:, 1, 3] = np.nan       # not mapped: not scored
    pixels = truth.known & ~truth.distorted
    # clear, scored pixels: (0,2) (1,2) (0,3) (2,3) (3,3); (3,2) is distorted -> 4 of 5 right
    assert dominant_accuracy(est, true, pixels) == pytest.approx(4 / 5)
    assert np.isnan(dominant_accuracy(est, true, np.zeros((4, 5), bool)))


def test_fraction_rmse_and_coverage(truth):
    true = truth.reference_fractions
    est = true + np.float32(0.1) * np.array([1, -1], np.float32)[:, None, None]
    pixels = truth.known
    assert fraction_rmse(est, true, pixels) == pytest.approx(0.1, rel=1e-5)
    sigma = np.full_like(est, 0.2)
    assert coverage(est, sigma, true, pixels, k=1) == 1.0
    assert coverage(est, sigma / 4, true, pixels, k=1) == 0.0
    assert coverage(est, sigma / 3, true, pixels, k=2) == 1.0   # 0.1 <= 2 x 0.067
    with pytest.raises(ValueError, match="sigma has shape"):
        coverage(est, sigma[:1], true, pixels)
    with pytest.raises(ValueError, match="estimated fractions have shape"):
        fraction_rmse(est[:1], true, pixels)


def test_coverage_of_a_calibrated_gaussian_sigma():
    rng = np.random.default_rng(0)
    true = rng.uniform(0, 1, (3, 100, 100))
    sigma = rng.uniform(0.01, 0.1, true.shape)
    est = true + sigma * rng.standard_normal(true.shape)
    pixels = np.ones((100, 100), bool)
    assert coverage(est, sigma, true, pixels, k=1) == pytest.approx(0.6827, abs=0.01)
    assert coverage(est, sigma, true, pixels, k=2) == pytest.approx(0.9545, abs=0.005)
    # sigma half as large as the errors: under-covers
    assert coverage(est, sigma / 2, true, pixels, k=1) == pytest.approx(0.3829, abs=0.01)


def test_roc_auc_known_values():
    assert roc_auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert roc_auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert roc_auc(np.ones(5), np.ones(3)) == 0.5          # ties count one half
    assert roc_auc(np.array([0.0, np.nan]), np.array([1.0])) == 1.0
    assert np.isnan(roc_auc(np.array([]), np.array([1.0])))
    rng = np.random.default_rng(1)
    neg, pos = rng.normal(0, 1, 20000), rng.normal(1, 1, 20000)
    # binormal AUC with unit separation: Phi(1 / sqrt(2)) = 0.7602
    assert roc_auc(neg, pos) == pytest.approx(0.7602, abs=0.006)


def test_unexplained_rates_by_thickness(truth):
    flags = np.zeros((4, 5), bool)
    flags[:, 4] = True          # every left-out pixel
    flags[3, 3] = True          # a thick known pixel
    flags[3, 2] = True          # the distorted pixel
    r = unexplained_rates(flags, truth, bins=(0.0, 1.0, np.inf))
    assert r["left_out"] == 1.0
    assert r["known"] == pytest.approx(1 / 7)          # known, undistorted: 7 pixels, one flagged
    assert r["distorted"] == 1.0
    thin, thick = r["by_thickness"]["0-1"], r["by_thickness"]["1-inf"]
    assert (thin["known"], thin["known_pixels"], thin["left_out_pixels"]) == (0.0, 4, 1)
    assert (thick["known"], thick["known_pixels"], thick["left_out_pixels"]) == (pytest.approx(1 / 3), 3, 3)
    # bins with fewer than MIN_BIN_PIXELS pixels do not make a worst bin
    assert np.isnan(r["known_worst_bin"])


def test_score_maps_and_targets(truth):
    est = truth.reference_fractions.copy()
    est[:, ~truth.sample] = np.nan
    distance = np.where(truth.left_out, 2.0, 1.0)
    scores = score_maps(truth, mask=truth.sample, fractions=est, distance=distance, unexplained=truth.left_out,
                        fraction_sigma=np.full_like(est, 0.01))
    assert scores["mask_iou"] == 1.0 and scores["fraction_rmse"] == 0.0 and scores["dominant_accuracy"] == 1.0
    assert scores["distance_auc"] == 1.0 and scores["unexplained_known"] == 0.0
    assert scores["unexplained_left_out"] == 1.0 and scores["scored_pixels"] == 7
    assert scores["coverage_1sigma"] == 1.0
    verdicts = check_targets(scores)
    assert not verdicts.pop("coverage_1sigma")   # 100 % is over-covered: sigma too large
    assert all(verdicts.values())
    assert set(verdicts) <= set(TARGETS)


def test_check_targets_low_dose_rmse():
    assert check_targets({"fraction_rmse": 0.035}, dose=3000) == {"fraction_rmse": False}
    assert check_targets({"fraction_rmse": 0.035}, dose=900) == {"fraction_rmse": True}
    assert check_targets({"mask_iou": float("nan")}) == {}


def test_make_sample_truth_scores_its_own_maps():
    s = make_sample((30, 40), n_grains=10, unexplained_grains=1, rng=2)
    t = s.truth
    assert t.phases == s.phases and t.references == ("Fe", "FeO", "Fe2O3")
    assert np.array_equal(t.sample, s.mask) and not t.distorted.any()
    assert score_maps(t, mask=s.mask)["mask_iou"] == 1.0


def test_detection_power_matches_a_simulated_chi_square_test():
    from scipy.stats import chi2

    rng = np.random.default_rng(3)
    dof, lam = 60, 40.0
    direction = rng.standard_normal(dof)
    residual = np.sqrt(lam) * direction / np.linalg.norm(direction)   # sum(residual**2) = lam
    stat = ((residual + rng.standard_normal((20000, dof))) ** 2).sum(axis=1)
    found = np.mean(stat > chi2.isf(1e-2, dof))
    assert float(detection_power(np.array(lam), dof, false_alarm=1e-2)) == pytest.approx(found, abs=0.015)
    assert float(detection_power(np.array(0.0), dof, false_alarm=1e-2)) == pytest.approx(1e-2)
    # pooling 3 x 3 alike pixels raises the power
    assert detection_power(np.array(lam / 4), dof, pool=3) > detection_power(np.array(lam / 4), dof)


def test_fraction_crlb_is_the_spread_of_a_least_squares_fit():
    """Fit (constant, line, u s1 + v s2 + w s3) by weighted least squares, f = (u, v, w) / sum:
    the spread of f over noise draws is the Cramer-Rao bound (the fit is efficient)."""
    from xafsmap.core.simulate.sample import reference_spectra, sample_energies

    energies = sample_energies()
    _, spectra = reference_spectra(("Fe", "FeO", "Fe2O3"), energies)
    f_true, step = np.array([0.2, 0.5, 0.3]), 0.8
    sigma = 0.01 * (1 + spectra.sum(axis=0))           # noise that varies with energy
    bound = fraction_crlb(spectra, np.array(step), f_true, sigma)
    rng = np.random.default_rng(4)
    line = np.linspace(-1, 1, energies.size)
    design = np.column_stack([np.ones(energies.size), line, spectra.T]) / sigma[:, None]
    clean = 0.3 + 0.05 * line + step * f_true @ spectra
    y = (clean + sigma * rng.standard_normal((4000, energies.size))) / sigma
    amplitudes = np.linalg.lstsq(design, y.T, rcond=None)[0][2:]
    found = amplitudes / amplitudes.sum(axis=0)
    assert found.std(axis=1) == pytest.approx(bound, rel=0.05)
    # twice the noise, twice the bound; no edge, no information
    assert fraction_crlb(spectra, np.array(step), f_true, 2 * sigma) == pytest.approx(2 * bound)
    assert np.all(np.isnan(fraction_crlb(spectra, np.array(0.0), f_true, sigma)))


def test_score_maps_with_the_limits(truth):
    est = truth.reference_fractions.copy()
    crlb = np.full(est.shape, 0.02)
    power = np.where(truth.left_out, 0.95, 0.001)
    power[0, 4] = 0.5                                  # one left-out pixel hard to find
    flags = truth.left_out.copy()
    flags[1, 4] = False                                # a detectable one missed
    scores = score_maps(truth, fractions=est, unexplained=flags, fraction_sigma=2 * crlb, crlb=crlb, power=power)
    assert scores["fraction_crlb"] == pytest.approx(0.02) and scores["sigma_over_crlb"] == pytest.approx(2.0)
    assert scores["ideal_detection"] == pytest.approx((0.5 + 3 * 0.95) / 4)
    assert scores["detectable_share"] == 0.75 and scores["unexplained_left_out_detectable"] == pytest.approx(2 / 3)
