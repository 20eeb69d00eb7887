"""The physical generator (:mod:`xafsmap.core.simulate.generator`) and the grain machinery it
shares with :func:`~xafsmap.core.simulate.sample.make_sample`."""

from __future__ import annotations

import numpy as np
import pytest

from xafsmap.core.spectra.normalize import normalize
from xafsmap.core.model.standards import resample_reference
from xafsmap.core.simulate.sample import bundled_references, make_sample


def _legacy_make_sample(shape=(120, 160), *, energies=None, phases=("Fe", "FeO", "Fe2O3", "Fe3O4"),
                        references=("Fe", "FeO", "Fe2O3"), n_grains=40, hole_fraction=0.1,
                        unexplained_grains=3, noise=0.02, edge_step=(0.6, 1.4), n_dead=5, rng=0):
    """make_sample as it was before the grain machinery was shared (commit dd39ee8), frozen."""
    from xafsmap.core.simulate.sample import sample_energies

    def smooth(shape, rng, lo, hi):
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
        a = rng.uniform(-1, 1, 5)
        field = a[0] * xx + a[1] * yy + a[2] * xx * yy + a[3] * np.sin(3 * xx + a[4]) * np.cos(2 * yy)
        field = (field - field.min()) / (np.ptp(field) or 1.0)
        return lo + (hi - lo) * field

    rng = np.random.default_rng(rng)
    energies = sample_energies() if energies is None else np.asarray(energies, dtype=np.float64)
    phases = tuple(phases)
    refs = bundled_references(phases)
    spectra = np.array([resample_reference(r, energies, mu=normalize(r.mu, r.energies).norm) for r in refs])
    known = [i for i, name in enumerate(phases) if name in references]
    unknown = [i for i, name in enumerate(phases) if name not in references]
    rows, cols = shape
    centres = rng.uniform(0, 1, (n_grains, 2)) * [rows, cols]
    yy, xx = np.mgrid[0:rows, 0:cols]
    grain = np.argmin((yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2, axis=-1)
    compositions = np.zeros((n_grains, len(phases)))
    kinds = rng.permutation(n_grains)
    n_holes = int(round(hole_fraction * n_grains))
    pure = 0
    for rank, g in enumerate(kinds):
        if rank < n_holes:
            continue
        if rank < n_holes + unexplained_grains and unknown:
            compositions[g, rng.choice(unknown)] = 1.0
        elif rank % 3 == 0 and len(known) > 1:
            i, j = rng.choice(known, 2, replace=False)
            f = rng.choice([0.25, 0.5, 0.75])
            compositions[g, i], compositions[g, j] = f, 1 - f
        else:
            compositions[g, known[pure % len(known)]] = 1.0
            pure += 1
    fractions = np.moveaxis(compositions[grain], -1, 0)
    present = fractions.sum(axis=0) > 0
    step = np.where(present, smooth(shape, rng, *edge_step), 0.0)
    matrix = np.where(present, smooth(shape, rng, 0.2, 1.2), 0.02)
    decay = (energies / energies[0]) ** -3.0
    stack = (matrix[None] * decay[:, None, None] + step[None] * np.einsum("ke,kmn->emn", spectra, fractions)
             + noise * rng.standard_normal((energies.size, rows, cols))).astype(np.float32)
    dead = np.zeros(shape, bool)
    picks = rng.choice(rows * cols, n_dead, replace=False)
    dead.ravel()[picks] = True
    stack[(rng.integers(0, energies.size, n_dead),) + np.unravel_index(picks, shape)] = np.nan
    return stack, energies, [r.name for r in (refs[i] for i in known)], phases, fractions.astype(np.float32), \
        step.astype(np.float32), dead


@pytest.mark.parametrize("options", [
    {},
    dict(shape=(48, 64), n_grains=14, unexplained_grains=1, rng=3),
    dict(shape=(48, 64), n_grains=14, phases=("FeO", "Fe2O3"), references=("FeO", "Fe2O3"), rng=5),
    dict(shape=(30, 40), n_grains=9, hole_fraction=0.3, unexplained_grains=2, noise=0.05, edge_step=(0.2, 2.0),
         n_dead=0, rng="generator"),
])
def test_make_sample_unchanged(options):
    """make_sample gives, bit for bit, what it gave before it shared its grains."""
    def seed():
        return np.random.default_rng(11) if options.get("rng") == "generator" else options.get("rng", 0)

    legacy = _legacy_make_sample(**{**options, "rng": seed()})
    s = make_sample(**{**options, "rng": seed()})
    got = (s.stack, s.energies, [r.name for r in s.references], s.phases, s.fractions, s.edge_step, s.dead)
    for a, b in zip(got, legacy):
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
        else:
            assert a == b


# --- the physical generator ----------------------------------------------------------------

from xafsmap.core.spectra.lcf import fit_fractions  # noqa: E402
from xafsmap.core.simulate.specimen import HOLE, MATRIX  # noqa: E402
from xafsmap.core.simulate.scores import dominant_accuracy, fraction_rmse, mask_iou, roc_auc, score_maps  # noqa: E402
from xafsmap.core.simulate.generator import CONDITIONS, simulate_measurement, write_measurement  # noqa: E402
from xafsmap.core.model.standards import prepare_references  # noqa: E402

SMALL = dict(shape=(40, 50), n_grains=14, unexplained_grains=2)


@pytest.fixture(scope="module")
def thin_thick():
    """Thin and thick grains, 3000 counts, dark current, 10 flat frames."""
    return simulate_measurement(**SMALL, dose=3000.0, rng=7)


def _z(m, sigma, *, min_counts):
    """(absorbance - expected) / sigma where the expected transmitted counts reach ``min_counts``."""
    f0 = m.flat_mean()
    transmitted = f0 * np.exp(-m.true_absorbance().astype(np.float64))
    keep = transmitted >= min_counts
    return ((m.absorbance() - m.expected()) / sigma)[keep]


def test_absorbance_variance_is_poisson_without_dark():
    """var(A) = 1/(I - D) + 1/((F - D) * frames), written out here (not taken from Measurement)."""
    m = simulate_measurement(**SMALL, dose=3000.0, dark=0.0, flat_frames=10, rng=1)
    f0 = m.flat_mean()
    transmitted = f0 * np.exp(-m.true_absorbance().astype(np.float64))
    z = _z(m, np.sqrt(1 / transmitted + 1 / (10 * f0)), min_counts=300)
    assert z.size > 100_000
    assert np.var(z) == pytest.approx(1.0, abs=0.03)
    assert abs(np.mean(z)) < 0.02


def test_absorbance_variance_with_dark_matches_sigma(thin_thick):
    z = _z(thin_thick, thin_thick.sigma(), min_counts=300)
    assert np.var(z) == pytest.approx(1.0, abs=0.03)
    # without the flat's and the dark's terms sigma would be too small by more than the tolerance
    f0 = thin_thick.flat_mean()
    only_sample = np.sqrt(1 / (f0 * np.exp(-thin_thick.true_absorbance().astype(np.float64))))
    assert np.var(_z(thin_thick, only_sample, min_counts=300)) > 1.08


def test_flat_is_the_average_of_its_frames(thin_thick):
    m = thin_thick
    d0 = m.dark_level.astype(np.float64)
    residual = m.flat - (m.flat_mean() + d0)
    assert np.var(residual / np.sqrt((m.flat_mean() + d0) / m.flat_frames)) == pytest.approx(1.0, abs=0.03)
    dark = (m.dark - d0) / np.sqrt(d0 / m.dark_frames)
    assert np.var(dark) == pytest.approx(1.0, abs=0.1)
    assert m.dark.mean() == pytest.approx(100.0, rel=0.06)


def test_illumination_falls_off_as_stated(thin_thick):
    m = thin_thick
    assert m.illumination.max() == pytest.approx(1.0) and m.illumination.min() == pytest.approx(0.7, abs=1e-6)
    rows, cols = m.illumination.shape
    border = np.concatenate([m.illumination[0], m.illumination[-1], m.illumination[:, 0], m.illumination[:, -1]])
    assert border.max() < 0.97 and m.illumination[rows // 2, cols // 2] > 0.9
    # the recorded flat shows it: counts at the illumination maximum = dose x beam(E)
    seen = ((m.flat - m.dark) / (m.dose * m.beam[:, None, None])).mean(axis=0)
    assert np.abs(seen - m.illumination).max() < 0.01
    assert m.beam.mean() == pytest.approx(1.0) and 0.02 < np.ptp(m.beam) < 0.04


def test_grains_differ_tenfold_in_thickness_with_holes_and_matrix(thin_thick):
    t = thin_thick.truth
    step = t.edge_step[t.sample]
    assert step.max() / step.min() >= 10 and step.min() == pytest.approx(0.15, rel=1e-5)
    assert np.all(t.edge_step[~t.sample] == 0) and np.all(t.fractions[:, ~t.sample] == 0)
    assert np.count_nonzero(t.kind == HOLE) and np.count_nonzero(t.kind == MATRIX)
    assert np.all(thin_thick.matrix[t.kind == HOLE] == 0) and np.all(thin_thick.matrix[t.kind == MATRIX] >= 0.1)
    assert np.allclose(t.fractions[:, t.sample].sum(axis=0), 1.0)
    assert t.left_out.any() and t.known.any()
    assert np.allclose(t.absorbance_max, thin_thick.true_absorbance().max(axis=0))


def test_leak_saturates_absorbance_at_minus_log_leak():
    leak = 0.03
    m = simulate_measurement(**SMALL, dose=1e6, leak=leak, edge_step=(4.0, 8.0), matrix=(2.0, 3.0), rng=2)
    mu = m.true_absorbance()
    assert np.nanmax(m.expected()) < -np.log(leak)
    very_thick = mu > 9
    assert very_thick.sum() > 1000
    measured = m.absorbance()[very_thick]
    assert np.median(measured) == pytest.approx(-np.log(leak), abs=0.01)
    assert np.all(m.truth.distorted[m.truth.sample])
    # no leak: nothing distorted, absorbance follows mu*t
    clean = simulate_measurement(**SMALL, dose=1e6, rng=2)
    assert not clean.truth.distorted.any()


def test_leak_distortion_map_marks_the_thick_pixels(thin_thick):
    m = simulate_measurement(**SMALL, dose=3000.0, leak=0.03, rng=7)
    t = m.truth
    assert np.array_equal(t.edge_step, thin_thick.truth.edge_step)  # the same specimen, measured with a leak
    assert np.nanmean(m.absorbance()) < np.nanmean(thin_thick.absorbance())
    assert 0 < np.count_nonzero(t.distorted) < np.count_nonzero(t.sample)
    assert np.median(t.absorbance_max[t.distorted]) > np.median(t.absorbance_max[t.sample & ~t.distorted])


def test_offset_shifts_only_the_references(thin_thick):
    shifted = simulate_measurement(**SMALL, dose=3000.0, offset=5.0, rng=7)
    assert np.array_equal(shifted.counts, thin_thick.counts) and np.array_equal(shifted.flat, thin_thick.flat)
    assert shifted.offset == 5.0
    for mine, theirs in zip(shifted.references, bundled_references(("Fe", "FeO", "Fe2O3"))):
        assert mine.name == theirs.name
        assert np.array_equal(mine.energies, theirs.energies - 5.0)
        assert np.array_equal(mine.mu, theirs.mu)
    for mine, theirs in zip(thin_thick.references, bundled_references(("Fe", "FeO", "Fe2O3"))):
        assert np.array_equal(mine.energies, theirs.energies)


def test_fluorescence_counts_scale_with_concentration():
    m = simulate_measurement(**SMALL, **CONDITIONS["fluorescence"], rng=3)
    t = m.truth
    assert m.flat is None and m.dark is None and m.counts.dtype == np.float32
    with pytest.raises(ValueError, match="counts, not absorbance"):
        m.absorbance()
    jump = m.dose * t.edge_step[t.sample]
    assert jump.min() == pytest.approx(340, rel=0.01) and jump.max() > 35_000
    found = normalize(m.counts, m.energies, e0=7125.0).edge_step
    noise_free = normalize(m.expected(), m.energies, e0=7125.0).edge_step
    keep = t.sample & (t.edge_step > 0.1)
    # the measured jump is the noise-free one, which is dose x edge step (to the few % by
    # which the stack's normalization windows differ from each reference's own: up to 7 %)
    assert np.median(found[keep] / noise_free[keep]) == pytest.approx(1.0, abs=0.01)
    assert np.abs(noise_free[keep] / (m.dose * t.edge_step[keep]) - 1).max() < 0.08
    assert np.corrcoef(found[keep], t.edge_step[keep])[0, 1] > 0.99
    assert np.abs(found[t.kind == HOLE]).max() < 0.05 * m.dose * 0.15
    # Poisson in counts
    z = (m.counts - m.expected()) / m.sigma()
    assert np.var(z) == pytest.approx(1.0, abs=0.02)


def test_reproducible_from_the_seed():
    a, b, c = (simulate_measurement((24, 32), n_grains=8, leak=0.02, rng=seed) for seed in (5, 5, 6))
    for name in ("counts", "flat", "dark"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(a.truth.fractions, b.truth.fractions) and np.array_equal(a.truth.distorted, b.truth.distorted)
    assert not np.array_equal(a.counts, c.counts)


@pytest.mark.parametrize("options, match", [
    (dict(mode="xrf"), "mode must be one of"),
    (dict(mode="fluorescence", leak=0.02), "leak=0"),
    (dict(edge_step=(0.0, 1.0)), "edge_step must be a range"),
    (dict(dose=-1.0), "need dose > 0"),
    (dict(falloff=1.0), "need dose > 0"),
])
def test_bad_options_say_what_is_wrong(options, match):
    with pytest.raises(ValueError, match=match):
        simulate_measurement((8, 8), n_grains=3, **options)


def test_written_files_read_back_as_the_user_would(tmp_path):
    from xafsmap.core.io.stack import read_stack
    from xafsmap.core.io.references import read_reference

    m = simulate_measurement((24, 32), n_grains=8, unexplained_grains=1, offset=4.0, leak=0.03, rng=4)
    folder = write_measurement(m, tmp_path / "scan")
    assert sorted(p.name for p in folder.iterdir()) == [".xafsmap-output.json", "dark.tif", "energies.txt",
                                                      "flat.tif", "references", "stack.tif", "truth.npz"]
    stack = read_stack(folder / "stack.tif", flat=folder / "flat.tif", dark=folder / "dark.tif")
    assert np.array_equal(stack.energies, m.energies)
    assert np.array_equal(np.asarray(stack.data), m.absorbance(), equal_nan=True)
    for ref in m.references:
        back = read_reference(folder / "references" / f"{ref.name}.xdi")
        assert np.allclose(back.energies, ref.energies, atol=1e-4, rtol=0)
        assert np.allclose(back.mu, ref.mu, rtol=1e-7, atol=0)
    truth = np.load(folder / "truth.npz")
    assert np.array_equal(truth["distorted"], m.truth.distorted) and float(truth["offset"]) == 4.0
    with pytest.raises(ValueError, match="exists and is not empty"):
        write_measurement(m, folder)


def test_cli_maps_the_written_files(tmp_path):
    from xafsmap.cli import main
    import tifffile

    m = simulate_measurement((24, 32), n_grains=8, unexplained_grains=1, dose=20000.0, rng=4)
    folder = write_measurement(m, tmp_path / "scan")
    refs = [arg for r in m.references for arg in ("--reference", str(folder / "references" / f"{r.name}.xdi"))]
    out = tmp_path / "maps"
    assert main(["map", str(folder / "stack.tif"), "--flat", str(folder / "flat.tif"), "--dark",
                 str(folder / "dark.tif"), *refs, "--out", str(out), "--threshold", "0.07",
                 "--spectra-per-class", "60", "--trees", "8", "--quiet"]) == 0
    mask = tifffile.imread(out / "mask.tif")
    assert mask_iou(mask == 1, m.truth.sample) > 0.98


# --- generator and scores together: known answers that hold with today's code ----------

def test_manual_threshold_mask_matches_the_true_sample():
    """Half the thinnest edge step separates sample from holes and Fe-free matrix at 20000 counts."""
    m = simulate_measurement((60, 80), n_grains=20, dose=20000.0, rng=11)
    step = normalize(m.absorbance(), m.energies, e0=7125.0).edge_step
    assert mask_iou(step > 0.075, m.truth.sample) > 0.98
    # a mask shifted by one column is measurably worse: the score sees the truth's geometry
    assert mask_iou(np.roll(step > 0.075, 3, axis=1), m.truth.sample) < 0.95


@pytest.fixture(scope="module")
def noise_free_fit():
    """LCF of the noise-free spectra (with a 3 % leak) with the user's references."""
    m = simulate_measurement((60, 80), n_grains=20, leak=0.03, unexplained_grains=3, rng=12)
    e0 = 7125.0
    norm = normalize(m.expected(), m.energies, e0=e0).norm
    refs = prepare_references(m.references, m.energies, e0=e0, norm_params={"e0": e0})
    fractions, residual = fit_fractions(norm, refs)
    return m, np.where(m.truth.sample, fractions, np.nan), np.where(m.truth.sample, residual, np.nan)


def test_noise_free_fractions_recover_the_truth_off_the_leak(noise_free_fit):
    m, fractions, _ = noise_free_fit
    t = m.truth
    good = t.known & ~t.distorted
    assert fraction_rmse(fractions, t.reference_fractions, good) < 0.01
    assert dominant_accuracy(fractions, t.reference_fractions, good) == 1.0
    # on the pixels the truth calls distorted the same fit is measurably off
    assert fraction_rmse(fractions, t.reference_fractions, t.known & t.distorted) > 0.015


def test_noise_free_residual_separates_the_left_out_phase(noise_free_fit):
    m, fractions, residual = noise_free_fit
    t = m.truth
    assert roc_auc(residual[t.known & ~t.distorted], residual[t.left_out]) > 0.99
    scores = score_maps(t, mask=t.sample, fractions=fractions, distance=residual,
                        unexplained=residual > 0.02)
    assert scores["mask_iou"] == 1.0 and scores["unexplained_left_out"] > 0.95


def test_fraction_crlb_grows_as_the_dose_falls_and_the_grain_thins():
    low, high = (simulate_measurement(**SMALL, dose=dose, rng=8) for dose in (900.0, 20000.0))
    t = low.truth
    a, b = low.fraction_crlb(), high.fraction_crlb()
    known = t.known
    assert np.all(np.isnan(a[:, ~t.known])) and not np.isnan(a[:, t.known]).any()
    ratio = np.nanmedian(a[:, known] / b[:, known])
    assert 3.5 < ratio < 5.5                                   # ~sqrt(20000 / 900) = 4.7
    thin, thick = known & (t.edge_step < 0.3), known & (t.edge_step > 0.6) & (t.absorbance_max < 2.0)
    assert np.median(a[:, thin]) > 2 * np.median(a[:, thick])


def test_detection_power_is_the_false_alarm_rate_on_known_pixels_and_grows_with_dose():
    low, high = (simulate_measurement(**SMALL, dose=dose, rng=8) for dose in (900.0, 20000.0))
    t = low.truth
    p_low, p_high = low.detection_power(), high.detection_power()
    assert np.all(np.isnan(p_low[~t.sample]))
    assert np.nanmedian(p_high[t.known]) == pytest.approx(1e-3, rel=0.2)    # the references explain them
    assert p_high[t.left_out].mean() > 0.1 > 20 * p_low[t.left_out].mean()
    assert high.detection_power(pool=3)[t.left_out].mean() >= p_high[t.left_out].mean()
