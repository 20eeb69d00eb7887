"""Exploration's known answers on stacks of the physical generator and make_sample (real references).

Components: three references plus the phase left out of them (Fe3O4) give 4 significant
components, over thin-to-thick grains and doses 900 to 20 000 counts. Clusters of pure
grains match the phases (ARI >= 0.9 from 3000 counts). NMF spectra match the phases
(cosine >= 0.98 over -20..+40 eV). E50 follows a known energy-shift field within
0.15 eV RMS where a pixel's noise allows it. The pre-edge centroid ranks FeO/Fe2O3
mixtures in order. Where a claim stops holding, a test says so.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from xafsmap.core.explore import edge_maps, explore_stack, find_components, sample_pixels
from xafsmap.core.io.stack import Stack
from xafsmap.core.spectra.normalize import normalize
from xafsmap.core.simulate.sample import make_sample
from xafsmap.core.simulate.generator import CONDITIONS, simulate_measurement

SHAPE = (120, 160)
PHASES = ("Fe", "FeO", "Fe2O3", "Fe3O4")


def pure_grains(dose, edge_step=(0.15, 2.4), rng=4):
    """Every grain one of the four phases, none given as a reference (so none mixed)."""
    return simulate_measurement(SHAPE, dose=dose, edge_step=edge_step, references=(), unexplained_grains=48, rng=rng)


def ari(truth, labels):
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(truth, labels)


@pytest.mark.parametrize("condition", ["narrow-3000", "thin-thick-900", "thin-thick-3000", "thin-thick-20000",
                                       "offset-3000", "fluorescence"])
@pytest.mark.parametrize("seed", [1, 2])
def test_three_references_and_one_left_out_give_four_components(condition, seed):
    m = simulate_measurement(SHAPE, rng=seed, **CONDITIONS[condition])
    found = find_components(sample_pixels(m.stack().data, m.energies))
    assert found.n_significant == 4, found.evidence
    assert found.eigenvalues[3] > found.noise_floor > found.eigenvalues[4]
    assert 0.85 < found.bulk_ratio < 1.1  # the noise model is right to within 10 %


def test_three_phases_give_three_components_and_gaussian_noise_four():
    three = simulate_measurement(SHAPE, dose=3000, phases=PHASES[:3], unexplained_grains=0, rng=1)
    assert find_components(sample_pixels(three.stack().data, three.energies)).n_significant == 3
    s = make_sample(SHAPE, rng=0)
    assert find_components(sample_pixels(s.stack, s.energies)).n_significant == 4


def test_a_harmonic_leak_adds_components_beyond_the_phases():
    """Where the claim stops: a 3 % leak distorts thick pixels non-linearly, a real extra
    spectral shape the test rightly counts."""
    m = simulate_measurement(SHAPE, rng=1, **CONDITIONS["leak-offset-20000"])
    assert find_components(sample_pixels(m.stack().data, m.energies)).n_significant >= 5


@pytest.mark.parametrize("dose, edge_step", [(3000, (0.15, 2.4)), (20000, (0.15, 2.4)), (3000, (0.6, 1.4))])
@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_pure_grains_cluster_into_the_phases(dose, edge_step, method):
    m = pure_grains(dose, edge_step)
    result = explore_stack(m.stack(), method=method)
    sample = m.truth.sample & (result.mask == 1)
    assert result.learned.clustering.k == 4
    assert ari(m.truth.fractions.argmax(axis=0)[sample], result.clusters[sample]) >= 0.9
    # each cluster's mean spectrum is its phase's
    phase = normalize(m.spectra.T, m.energies, **result.learned.sample.params).norm.T
    window = np.abs(m.energies - result.learned.sample.params["e0"] - 10) <= 30
    error = np.abs(result.cluster_spectra[:, None, window] - phase[None, :, window]).mean(axis=2)
    rows, cols = linear_sum_assignment(error)
    assert error[rows, cols].max() < 0.02


def test_pure_grains_at_900_counts_merge_the_closest_phases():
    """Where the claim stops: at 900 counts a thin pixel's noise hides the difference
    between the two closest phases, and ``auto`` stops at 3 clusters; 4 given still
    separates most pixels."""
    m = pure_grains(900)
    result = explore_stack(m.stack())
    assert result.learned.clustering.k == 3
    forced = explore_stack(m.stack(), clusters=4)
    sample = m.truth.sample & (forced.mask == 1)
    assert ari(m.truth.fractions.argmax(axis=0)[sample], forced.clusters[sample]) >= 0.75


def test_auto_clusters_count_the_distinct_compositions():
    s = make_sample(SHAPE, rng=0)
    result = explore_stack(Stack(s.stack, s.energies, {}))
    sample = s.mask & (result.mask == 1)
    compositions, truth = np.unique(np.round(s.fractions[:, sample] * 4).T, axis=0, return_inverse=True)
    assert result.learned.clustering.k == len(compositions) == 10
    assert ari(truth.ravel(), result.clusters[sample]) >= 0.95


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("dose, edge_step", [(3000, (0.15, 2.4)), (20000, (0.15, 2.4)), (3000, (0.6, 1.4))])
def test_nmf_spectra_are_the_phase_spectra(dose, edge_step):
    m = simulate_measurement(SHAPE, dose=dose, edge_step=edge_step, rng=4)
    result = explore_stack(m.stack(), nmf=4, clusters=1)
    nmf = result.learned.unmixing
    assert nmf.converged and 0.8 < nmf.misfit < 1.2  # explained to the noise
    e0 = result.learned.sample.params["e0"]
    window = (m.energies >= e0 - 20) & (m.energies <= e0 + 40)
    similarity = np.array([[cosine(h[window], t[window]) for t in m.spectra] for h in nmf.spectra])
    rows, cols = linear_sum_assignment(-similarity)
    assert similarity[rows, cols].min() >= 0.98
    # abundances of a normalized spectrum add up to about 1, and follow the true fractions
    sample = m.truth.sample & (result.mask == 1)
    total = result.nmf[:, sample].sum(axis=0)
    assert abs(np.median(total) - 1) < 0.05
    # abundances follow the true fractions (not closely: Fe3O4 is nearly a mixture of FeO and
    # Fe2O3, and NMF spectra a few per cent off the phases trade amounts between them)
    found, truth = result.nmf[rows][:, sample], m.truth.fractions[cols][:, sample]
    assert min(np.corrcoef(f, t)[0, 1] for f, t in zip(found, truth)) > (0.9 if dose == 20000 else 0.7)


def shifted_stack(m, field):
    """The generator's noise-free signal measured on a nominal grid where true = nominal +
    field, with the generator's own noise of every point; energies every pixel covers."""
    from xafsmap.core.prepare.resample import apply_shift

    e = m.energies
    keep = (e >= e[0] - field.min()) & (e <= e[-1] - field.max())
    clean = apply_shift(m.expected(), e, -field)[keep]
    sigma = apply_shift(m.sigma(), e, -field)[keep]
    noise = np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
    return Stack((clean + sigma * noise).astype(np.float32), e[keep], {}), keep


def shift_field(shape):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (-1.5 + 3.0 * xx / (shape[1] - 1) + 0.5 * (yy / (shape[0] - 1)) ** 2).astype(np.float32)


@pytest.mark.parametrize("dose, edge_step, thick, tolerance", [
    (20000, (0.15, 2.4), 0.5, 0.15),   # thick grains at 20 000 counts
    (20000, (0.6, 1.4), 0.0, 0.15),    # every pixel of 0.6-1.4 grains
    (3000, (0.6, 1.4), 0.0, 0.35),     # 3000 counts: single-pixel noise of 0.07 per point -> 0.3 eV
])
def test_e50_follows_a_known_energy_shift_field(dose, edge_step, thick, tolerance):
    m = pure_grains(dose, edge_step)
    field = shift_field(SHAPE)
    stack, keep = shifted_stack(m, field)
    found = explore_stack(stack, clusters=1)  # (the shift field spreads each phase into a continuum)
    calibrated = explore_stack(stack, shift=field, clusters=1)
    params = found.learned.sample.params
    phase = edge_maps(normalize(m.spectra.T[keep], stack.energies, **params).norm, stack.energies,
                      e0=params["e0"])["e50"]
    inside = ndimage.binary_erosion(m.truth.sample, iterations=2) & (m.truth.edge_step >= thick)
    expected = phase[m.truth.fractions.argmax(axis=0)]
    nominal = (found.edges["e50"] - (expected - field))[inside]   # E50 on the nominal scale moves by -shift
    true = (calibrated.edges["e50"] - expected)[inside]          # ... and stays put with the shift map
    assert np.sqrt(np.nanmean(nominal**2)) <= tolerance
    assert np.sqrt(np.nanmean(true**2)) <= tolerance
    assert np.mean(np.isfinite(true)) > 0.99


def test_e50_and_white_line_of_noise_free_spectra_follow_the_shift_exactly():
    m = pure_grains(20000)
    field = shift_field(SHAPE)
    e = m.energies
    clean = normalize(m.expected()[:, m.truth.sample], e, e0=7123.0).norm
    from xafsmap.core.prepare.resample import apply_shift

    shifted = apply_shift(clean[:, :, None], e, -field[m.truth.sample][:, None])[:, :, 0]
    before, after = edge_maps(clean, e, e0=7123.0), edge_maps(shifted, e, e0=7123.0, shift=field[m.truth.sample])
    for name in ("e50", "whiteline_energy"):
        assert np.nanmax(np.abs(after[name] - before[name])) < 0.05
    assert np.nanmax(np.abs(after["whiteline_height"] - before["whiteline_height"])) < 0.01


@pytest.mark.parametrize("dose", [3000, 20000])
def test_preedge_centroid_ranks_fe2_fe3_mixtures(dose):
    m = simulate_measurement(SHAPE, dose=dose, phases=("FeO", "Fe2O3"), references=("FeO", "Fe2O3"),
                             unexplained_grains=0, rng=2)
    result = explore_stack(m.stack(), clusters=1)
    sample = m.truth.sample & (result.mask == 1)
    ferric = np.round(m.truth.fractions[1][sample], 2)
    centroid = result.edges["preedge_centroid"][sample]
    shares = np.unique(ferric)
    assert shares.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    medians = [np.nanmedian(centroid[ferric == f]) for f in shares]
    assert np.all(np.diff(medians) > 0), medians
    # Fe(II) to Fe(III): 1.05 eV on the noise-free spectra; noise in the intensity (the
    # centroid's denominator) pulls single-pixel centroids toward the window's middle
    assert (0.8 if dose == 20000 else 0.3) < medians[-1] - medians[0] < 1.4
    assert np.nanmedian(result.edges["preedge_intensity"][sample]) > 0


def test_preedge_maps_only_at_the_fe_k_edge():
    e = np.linspace(700.0, 730.0, 121)
    spectra = np.stack([1 / (1 + np.exp(-(e - 708.0) / 0.5))] * 2, axis=1)
    maps = edge_maps(spectra, e, e0=708.0)
    assert set(maps) == {"e50", "whiteline_energy", "whiteline_height"}
    assert np.allclose(maps["e50"], 708.0, atol=0.02)
