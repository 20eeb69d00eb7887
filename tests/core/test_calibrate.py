"""Known-answer tests of the energy calibration across the field of view."""

from __future__ import annotations

import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from xafsmap.core.prepare.shiftmap import (
    ShiftMap,
    evaluate_shift_model,
    fit_shift,
    read_shift_map,
    write_shift_map,
)
from xafsmap.core.prepare.resample import apply_shift
from xafsmap.core.prepare.calibrate import calibrate, measure_shift

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FE_METAL = DATA / "references" / "fe-k" / "fe_metal_rt.xdi"
M, N = 60, 80
# coarse pre-edge, 0.75 eV through the edge, coarse EXAFS: 100 energies
ENERGIES = np.concatenate(
    [np.arange(7050.0, 7100.0, 5.0), np.arange(7100.0, 7160.0, 0.75), np.arange(7160.0, 7251.0, 10.0)]
)


def _read_xdi_mu(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Tiny XDI loader: the energy and mutrans columns named in the header."""
    names = {}
    for line in path.read_text().splitlines():
        if line.startswith("# Column."):
            key, value = line[2:].split(":", 1)
            names[value.split()[0].lower()] = int(key.split(".")[1]) - 1
    data = np.loadtxt(path, comments="#")
    return data[:, names["energy"]], data[:, names["mutrans"]]


@pytest.fixture(scope="module")
def fe_reference() -> tuple[np.ndarray, np.ndarray]:
    """Fe foil mu(E) (real, APS 13-BM); a synthetic arctan + white-line edge without shared/data."""
    if FE_METAL.exists():
        return _read_xdi_mu(FE_METAL)
    e = np.arange(6960.0, 7970.0, 0.5)
    mu = np.arctan((e - 7112.0) / 1.2) / np.pi + 0.5 + 0.3 * np.exp(-0.5 * ((e - 7131.0) / 4.0) ** 2)
    return e, 3.0 * mu


@pytest.fixture(scope="module")
def true_shift() -> np.ndarray:
    """Smooth quadratic field spanning -2.5..+2.5 eV, mostly a gradient along columns."""
    r, c = np.mgrid[0:M, 0:N]
    x, y = (c - 39.5) / 39.5, (r - 29.5) / 29.5
    f = 2.0 * x + 0.3 * y + 0.5 * x**2 - 0.3 * x * y
    return -2.5 + 5.0 * (f - f.min()) / (f.max() - f.min())


@pytest.fixture(scope="module")
def hole() -> np.ndarray:
    r, c = np.mgrid[0:M, 0:N]
    return (r - 20) ** 2 + (c - 55) ** 2 < 8**2


DEAD = ((5, 7), (40, 10), (50, 70))  # NaN throughout, 0 throughout, NaN at one energy


@pytest.fixture(scope="module")
def foil(fe_reference, true_shift, hole) -> np.ndarray:
    """Fe foil stack: known shift, thickness and background variation, 1 % noise, dead pixels, a hole."""
    rng = np.random.default_rng(7)
    spline = CubicSpline(*fe_reference)
    step = float(np.ptp(spline([7080.0, 7160.0])))
    r, c = np.mgrid[0:M, 0:N]
    thickness = 1.0 + 0.3 * np.sin(r / 9.0) * np.cos(c / 13.0)
    background = 0.2 + 0.1 * r / M - 2e-5 * (ENERGIES[:, None, None] - 7100.0)
    stack = thickness * spline(ENERGIES[:, None, None] + true_shift) + background
    stack[:, hole] = np.broadcast_to(background, stack.shape)[:, hole]
    stack += rng.normal(0.0, 0.01 * step, stack.shape)
    stack[:, 5, 7] = np.nan
    stack[:, 40, 10] = 0.0
    stack[3, 50, 70] = np.nan
    return stack.astype(np.float32)


@pytest.fixture(scope="module")
def absolute(foil, fe_reference) -> ShiftMap:
    e, mu = fe_reference
    return calibrate(foil, ENERGIES, reference=mu, reference_energies=e)


def test_absolute_calibration_recovers_known_field(absolute, true_shift):
    err = absolute.shift - true_shift
    rms = float(np.sqrt(np.mean(err**2)))
    assert rms <= 0.1  # reached 0.002 eV (max 0.006 eV) on this fixture
    assert absolute.residual_rms < 0.05  # bin scatter about the model: 0.02 eV
    assert absolute.shift.dtype == np.float32 and absolute.shift.shape == (M, N)
    assert np.isfinite(absolute.shift).all() and np.isfinite(absolute.uncertainty).all()


def test_uncertainty_has_the_right_magnitude(absolute, true_shift):
    err = np.abs(absolute.shift - true_shift)
    assert np.mean(err <= 3 * absolute.uncertainty) > 0.95  # reached 100 %
    # not absurdly inflated either: the typical error is a sizeable part of sigma
    assert np.median(absolute.uncertainty) < 10 * np.sqrt(np.mean(err**2))


def test_holes_and_dead_pixels_are_nan_in_measured(absolute, hole, true_shift):
    assert np.isnan(absolute.measured[hole]).all()
    for rc in DEAD:
        assert np.isnan(absolute.measured[rc])
    valid = np.isfinite(absolute.measured)
    assert valid.sum() > 0.9 * (M * N - hole.sum())
    # the per-bin estimate is exact to the bin's spread of the true field (4 px of gradient)
    assert np.abs(absolute.measured[valid] - true_shift[valid]).max() < 0.25


def test_relative_calibration_recovers_field_up_to_median(foil, true_shift):
    rel = calibrate(foil, ENERGIES)
    assert abs(float(np.nanmedian(rel.measured))) < 0.1
    diff = rel.shift - true_shift
    assert np.std(diff) < 0.05  # reached 0.002 eV
    measured_bins = np.isfinite(rel.measured)
    assert np.mean(diff) == pytest.approx(-np.median(true_shift[measured_bins]), abs=0.1)
    assert "relative" in rel.model["calibration"]


def test_measure_shift_exact_for_a_shifted_copy(fe_reference):
    e, mu = fe_reference
    spline = CubicSpline(e, mu)
    shifts = np.linspace(-4.0, 4.0, 12).reshape(3, 4)
    stack = (0.5 * spline(ENERGIES[:, None, None] + shifts) + 0.1).astype(np.float32)
    got = measure_shift(stack, ENERGIES, reference=mu, reference_energies=e, bin=1)
    assert got.dtype == np.float32 and got.shape == (3, 4)
    np.testing.assert_allclose(got, shifts, atol=0.02)


def test_measure_shift_marks_out_of_range_as_nan(fe_reference):
    e, mu = fe_reference
    spline = CubicSpline(e, mu)
    shifts = np.array([[0.0, 9.0]])  # 9 eV is beyond the -5..+5 eV search
    stack = spline(ENERGIES[:, None, None] + shifts)
    got = measure_shift(stack, ENERGIES, reference=mu, reference_energies=e, bin=1)
    assert abs(got[0, 0]) < 0.02 and np.isnan(got[0, 1])


def test_region_selects_the_calibration_phase(foil, fe_reference, true_shift):
    e, mu = fe_reference
    spoiled = foil.copy()
    spoiled[:, :, :20] = np.roll(spoiled[:, :, :20], 6, axis=0)  # another "phase": edge moved
    region = np.ones((M, N), bool)
    region[:, :20] = False
    sm = calibrate(spoiled, ENERGIES, reference=mu, reference_energies=e, region=region)
    assert np.isnan(sm.measured[:, :20]).all()
    inside = np.s_[:, 24:]
    assert np.sqrt(np.mean((sm.shift[inside] - true_shift[inside]) ** 2)) < 0.1


def test_dask_stack_gives_the_numpy_result(foil, fe_reference, absolute):
    e, mu = fe_reference
    lazy = da.from_array(foil, chunks=(25, 30, 40))
    sm = calibrate(lazy, ENERGIES, reference=mu, reference_energies=e)
    np.testing.assert_allclose(sm.shift, absolute.shift, atol=1e-5)
    np.testing.assert_array_equal(np.isnan(sm.measured), np.isnan(absolute.measured))


def test_fit_shift_is_robust_to_outliers():
    rng = np.random.default_rng(3)
    r, c = np.mgrid[0:40, 0:50]
    true = -1.0 + 0.04 * c + 0.0005 * (r - 20) ** 2
    measured = true + rng.normal(0.0, 0.02, true.shape)
    measured[rng.random(true.shape) < 0.05] += 3.0  # 5 % gross outliers
    measured[:5, :5] = np.nan
    robust = fit_shift(measured, degree=2)
    plain = fit_shift(measured, degree=2, robust=False)
    assert np.sqrt(np.mean((robust.shift - true) ** 2)) < 0.01
    assert np.sqrt(np.mean((plain.shift - true) ** 2)) > 0.05
    assert robust.model["n_outliers"] > 50


def test_fit_shift_uncertainty_matches_scatter():
    rng = np.random.default_rng(4)
    r, c = np.mgrid[0:30, 0:30]
    true = 0.05 * c - 0.02 * r
    errors = np.array(
        [fit_shift(true + rng.normal(0.0, 0.1, true.shape), degree=1).shift[0, 0] for _ in range(40)]
    )
    sigma = fit_shift(true + rng.normal(0.0, 0.1, true.shape), degree=1).uncertainty[0, 0]
    assert np.std(errors - true[0, 0]) == pytest.approx(sigma, rel=0.35)


def test_model_is_json_and_re_evaluates(absolute):
    model = json.loads(json.dumps(absolute.model))
    shift, unc = evaluate_shift_model(model)
    np.testing.assert_allclose(shift, absolute.shift, atol=1e-6)
    np.testing.assert_allclose(unc, absolute.uncertainty, rtol=1e-5)
    assert model["kind"] == "poly2d" and model["degree"] == 3 and len(model["coefficients"]) == 10


# ---------------------------------------------------------------------- apply_shift


@pytest.fixture(scope="module")
def shifted_pair(fe_reference, true_shift):
    """(true-energy stack on the nominal grid, what the detector sees with true_shift)."""
    spline = CubicSpline(*fe_reference)
    r, c = np.mgrid[0:M, 0:N]
    thickness = 1.0 + 0.2 * np.cos(r / 7.0)
    fine = np.arange(7050.0, 7250.1, 0.25)  # dense grid: interpolation error small
    truth = (thickness * spline(fine[:, None, None])).astype(np.float32)
    seen = (thickness * spline(fine[:, None, None] + true_shift)).astype(np.float32)
    return fine, truth, seen


def test_apply_shift_undoes_a_known_shift(shifted_pair, true_shift):
    fine, truth, seen = shifted_pair
    corrected = apply_shift(seen, fine, true_shift)
    assert corrected.dtype == np.float32 and corrected.shape == seen.shape
    interior = (fine > 7060.0) & (fine < 7240.0)
    err = np.abs(corrected[interior] - truth[interior])
    assert np.nanmax(err) < 0.02 * np.ptp(truth)  # linear interpolation on 0.25 eV steps
    assert np.isfinite(corrected[interior]).all()
    # the opposite sign would be wrong by the edge's full height somewhere
    wrong = apply_shift(seen, fine, -true_shift)
    assert np.nanmax(np.abs(wrong[interior] - truth[interior])) > 0.3 * np.ptp(truth)


def test_apply_shift_is_nan_where_not_covered(shifted_pair, true_shift):
    fine, _, seen = shifted_pair
    corrected = apply_shift(seen, fine, true_shift)
    # energies[k] - shift below the first nominal energy -> NaN (positive shifts, start)
    first_missing = fine[:, None, None] - true_shift[None] < fine[0]
    last_missing = fine[:, None, None] - true_shift[None] > fine[-1]
    assert np.isnan(corrected[first_missing | last_missing]).all()
    assert np.isfinite(corrected[~(first_missing | last_missing)]).all()


def test_apply_shift_dask_equals_numpy(shifted_pair, true_shift):
    fine, _, seen = shifted_pair
    eager = apply_shift(seen, fine, true_shift)
    lazy = apply_shift(da.from_array(seen, chunks=(100, 25, 30)), fine, true_shift)
    assert isinstance(lazy, da.Array) and lazy.dtype == np.float32
    np.testing.assert_array_equal(lazy.compute(), eager)
    lazy_shift = apply_shift(da.from_array(seen, chunks=(-1, 60, 16)), fine, da.from_array(true_shift))
    np.testing.assert_array_equal(lazy_shift.compute(), eager)


def test_calibrate_then_apply_shift_aligns_the_foil(foil, fe_reference, absolute):
    """End to end: the sign conventions of measure_shift and apply_shift agree."""
    e, mu = fe_reference
    corrected = apply_shift(foil, ENERGIES, absolute.shift)[1:-1]  # ends are NaN (no extrapolation)
    left = measure_shift(corrected, ENERGIES[1:-1], reference=mu, reference_energies=e)
    assert np.nanmax(np.abs(left)) < 0.1  # was up to 2.5 eV before correction


def test_apply_shift_promotes_integer_counts():
    e = np.arange(5.0)
    counts = np.arange(5, dtype=np.uint16)[:, None, None] * np.ones((1, 2, 2), np.uint16)
    out = apply_shift(counts, e, np.full((2, 2), 0.5))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[1:, 0, 0], [0.5, 1.5, 2.5, 3.5])


# --------------------------------------------------------------------------- files


def test_shift_map_tiff_round_trip(absolute, tmp_path):
    import logging

    import tifffile

    path = tmp_path / "shift.tif"
    write_shift_map(path, absolute)
    assert [p.name for p in tmp_path.iterdir()] == ["shift.tif"]  # no temporary left
    back = read_shift_map(path)
    np.testing.assert_array_equal(back.shift, absolute.shift)
    np.testing.assert_array_equal(back.uncertainty, absolute.uncertainty)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 2 and tif.pages[0].dtype == np.float32
        stored = tif.shaped_metadata[0]
        [series] = tif.series
        assert series.shape == (2, *absolute.shift.shape)
    assert stored["pages"] == ["shift_eV", "uncertainty_eV"]
    assert stored["model"]["coefficients"] == absolute.model["coefficients"]


def test_shift_tif_opens_as_one_series_without_a_complaint(absolute, tmp_path, caplog):
    import tifffile

    write_shift_map(tmp_path / "shift.tif", absolute)
    with caplog.at_level("WARNING", logger="tifffile"):
        pages = tifffile.imread(tmp_path / "shift.tif")
    assert pages.shape == (2, *absolute.shift.shape) and not caplog.records
    np.testing.assert_array_equal(pages[1], absolute.uncertainty)


def test_shift_tif_of_earlier_versions_is_still_read(absolute, tmp_path):
    """Before, shift and uncertainty were two pages under shaped metadata of one (M, N) page."""
    import tifffile

    path = tmp_path / "old.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(absolute.shift, description=json.dumps({"shape": list(absolute.shift.shape),
                                                          "model": absolute.model}), metadata=None)
        tif.write(absolute.uncertainty, metadata=None)
    back = read_shift_map(path)
    np.testing.assert_array_equal(back.shift, absolute.shift)
    np.testing.assert_array_equal(back.uncertainty, absolute.uncertainty)


# ----------------------------------------------------------------------- bad inputs


def _bad_calls(fe):
    e, mu = fe
    stack = np.ones((100, 4, 5), np.float32)
    noise = np.random.default_rng(0).normal(size=(100, 40, 40))
    return {
        "shift shape": (lambda: apply_shift(stack, ENERGIES, np.zeros((4, 6))), r"shift has shape \(4, 6\) but the stack's images are \(4, 5\)"),
        "apply energies length": (lambda: apply_shift(stack, ENERGIES[:99], np.zeros((4, 5))), "stack has 100 energies but energies has shape \\(99,\\)"),
        "measure energies length": (lambda: measure_shift(stack, ENERGIES[1:]), "stack has 100 energies but energies has shape \\(99,\\)"),
        "not increasing": (lambda: apply_shift(stack, ENERGIES[::-1], np.zeros((4, 5))), "strictly increasing"),
        "not 3-D": (lambda: measure_shift(stack[0], ENERGIES), r"3-D \(E, M, N\)"),
        "all NaN": (lambda: calibrate(np.full((100, 4, 5), np.nan, np.float32), ENERGIES), "no usable pixel: all 20 spectra"),
        "no edge": (lambda: measure_shift(noise, ENERGIES), "no 4x4 bin of the 40x40 stack gives a reliable absorption edge"),
        "no edge absolute": (lambda: measure_shift(noise, ENERGIES, reference=mu, reference_energies=e), "reliable absorption edge"),
        "counts not mu": (lambda: measure_shift(-np.abs(noise) - np.arange(100.0)[:, None, None], ENERGIES), "no pixel shows an absorption edge"),
        "region shape": (lambda: calibrate(stack, ENERGIES, region=np.ones((5, 4), bool)), r"region has shape \(5, 4\)"),
        "reference length": (lambda: measure_shift(stack, ENERGIES, reference=mu, reference_energies=e[:-1]), f"reference has {mu.size} points but reference_energies has {e.size - 1}"),
        "reference energies missing": (lambda: measure_shift(stack, ENERGIES, reference=mu), "reference_energies is None"),
        "bin": (lambda: measure_shift(stack, ENERGIES, bin=0), "bin must be a positive integer"),
        "too few for degree": (lambda: fit_shift(np.full((3, 3), np.nan), degree=3), "10 coefficients but only 0 finite"),
        "weights shape": (lambda: fit_shift(np.zeros((3, 3)), weights=np.ones((2, 2))), r"weights has shape \(2, 2\)"),
    }


@pytest.mark.parametrize(
    "case",
    ["shift shape", "apply energies length", "measure energies length", "not increasing", "not 3-D",
     "all NaN", "no edge", "no edge absolute", "counts not mu", "region shape", "reference length", "reference energies missing", "bin",
     "too few for degree", "weights shape"],
)
def test_bad_inputs_raise_clear_errors(case, fe_reference):
    call, match = _bad_calls(fe_reference)[case]
    with pytest.raises(ValueError, match=match):
        call()
