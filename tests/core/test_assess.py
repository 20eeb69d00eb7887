"""Known-answer tests of trust in a map: unexplained pixels, reference discovery, parsimony.

The synthetic measurements are built from real reference spectra (see
:func:`xafsmap.core.simulate.sample.make_sample`); the truth of which pixels hold a phase missing
from the references is known, so detection and false-alarm rates are measured, not
assumed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from xafsmap.core.io.stack import Stack, read_stack
from xafsmap.core.spectra.normalize import normalize
from xafsmap.core.io.library import read_library
from xafsmap.core.model.standards import resample_reference
from xafsmap.core.simulate.sample import bundled_references, make_sample

LIBRARY = "reference-library/als-10.3.2-fe-k"


def _stack(sample) -> Stack:
    return Stack(sample.stack, sample.energies, {"stack": "<array>"})


def _normalized_on(ref, energies) -> np.ndarray:
    return resample_reference(ref, energies, mu=normalize(ref.mu, ref.energies).norm)


@pytest.fixture(scope="module")
def sample():
    """60 x 80 pixels, Fe/FeO/Fe2O3 grains and mixtures, 2 magnetite grains, noise 0.02."""
    return make_sample((60, 80), n_grains=20, unexplained_grains=2, noise=0.02, rng=0)


@pytest.fixture(scope="module")
def found(sample):
    from xafsmap.core.trust.unexplained import find_unexplained

    return find_unexplained(_stack(sample), sample.references, rng=0)


@pytest.fixture(scope="module")
def refs():
    return {r.name: r for r in bundled_references(["Fe", "FeO", "Fe2O3", "Fe3O4"])}


# --- unexplained pixels -------------------------------------------------------------


def test_missing_phase_is_flagged_at_the_stated_false_alarm_rate(sample, found):
    """Magnetite (not among the references) is flagged; explained pixels rarely are.

    Measured (seeds 0-4 of this layout, false_alarm=0.001, no pooling): detection
    0.92-1.00 per pixel, false alarms 0.0003-0.0013 per pixel (nominal 0.001), and no
    explained pixel inside a region of >= 5 pixels. Floors set a little below that.
    """
    sample_px = found.mask == 1
    missing = (sample.fractions[3] > 0.5) & sample_px
    explained = (sample.fractions[:3].sum(axis=0) > 0.99) & sample_px
    assert missing.sum() > 300 and explained.sum() > 3000
    detection = found.flags[missing].mean()
    false_alarm = found.flags[explained].mean()
    assert detection >= 0.95, detection  # measured 0.998
    assert false_alarm <= 0.004, false_alarm  # measured 0.0010
    assert (found.regions > 0)[missing].mean() >= 0.95
    assert (found.regions > 0)[explained].mean() <= 0.001
    assert found.regions.dtype == np.uint16
    assert found.sizes.tolist() == sorted(found.sizes.tolist(), reverse=True)


def test_region_mean_spectrum_is_the_missing_phase(sample, found, refs):
    """Up to baseline and scale (normalization differences), the region is magnetite."""
    magnetite = found.setup.prepare(_normalized_on(refs["Fe3O4"], sample.energies)[:, None])[:, 0]
    start, stop = found.setup.window
    for spectrum, variance, size in zip(found.spectra, found.spectra_variance, found.sizes):
        y, var = spectrum[start:stop, None], variance[start:stop, None]
        _, chi2 = found.setup.fit(y, var, magnetite[None, start:stop])
        _, chi2_known = found.setup.fit(y, var)
        # the mean is explained by magnetite at its noise (chi-square per point ~ 1)
        assert chi2[0] / (stop - start) < 2.0
        assert chi2[0] < 0.05 * chi2_known[0]


def test_null_model_matches_explained_pixels(sample, found):
    """The synthetic null and the explained pixels agree on the misfit's median."""
    from scipy.stats import chi2

    explained = (sample.fractions[:3].sum(axis=0) > 0.99) & (found.mask == 1)
    scale, dof = found.null.at(found.noise[explained])
    expected = np.median(scale * chi2.ppf(0.5, dof))
    assert np.median(found.chi2[explained]) == pytest.approx(expected, rel=0.08)


def test_every_reference_present_flags_nothing(refs):
    from xafsmap.core.trust.unexplained import find_unexplained

    s = make_sample((40, 48), n_grains=10, unexplained_grains=0, rng=4)
    result = find_unexplained(_stack(s), s.references, n_calibration=3000, rng=1)
    assert result.flags[result.mask == 1].mean() <= 0.004
    assert result.sizes.size == 0 and not result.regions.any()


def test_trust_fit_removes_baseline_and_scale():
    from xafsmap.core.spectra.lcf import fit_weighted, weighted_moments
    from xafsmap.core.spectra.sharedfit import BASELINE_TERMS, baseline

    e = np.linspace(7100.0, 7170.0, 71)
    edge = np.stack([1 / (1 + np.exp(-(e - 7120) / 2)), 1 / (1 + np.exp(-(e - 7126) / 3))])
    y = 1.1 * (0.4 * edge[0] + 0.6 * edge[1]) + 0.03 - 0.001 * np.minimum(e - 7122, 0)
    spectra = np.stack([y, y + 0.05 * np.exp(-((e - 7114) / 1.5) ** 2)], axis=1)
    columns = np.vstack([edge, baseline(e, 7122.0)])
    fit = fit_weighted(*weighted_moments(spectra, columns, np.full(spectra.shape, 1e4)), n_points=71,
                       sum_to_one=False, free=BASELINE_TERMS)
    assert np.allclose(fit.fractions[:, 0], [0.44, 0.66], atol=1e-6)
    assert fit.chi2[0] < 1e-8 < 1.0 < fit.chi2[1]


def test_pooling_adds_degrees_of_freedom():
    from scipy.stats import chi2

    from xafsmap.core.trust.unexplained import NullModel, score_misfit

    null = NullModel(np.array([0.01, 0.03]), np.array([1.2, 1.2]), np.array([80.0, 80.0]), 100, 1000)
    values = np.full((5, 5), 1.2 * 90.0)
    p1, _ = score_misfit(values, np.full((5, 5), 0.02), null)
    p3, z3 = score_misfit(values, np.full((5, 5), 0.02), null, pool=3)
    assert p1[2, 2] == pytest.approx(chi2.sf(90.0, 80.0))
    assert p3[2, 2] == pytest.approx(chi2.sf(9 * 90.0, 9 * 80.0))
    assert p3[2, 2] < p1[2, 2] and z3[2, 2] > 2


def test_find_regions_orders_and_drops_small():
    from xafsmap.core.trust.unexplained import find_regions

    flags = np.zeros((6, 8), bool)
    flags[0:2, 0:2] = True  # 4 px
    flags[3:6, 4:8] = True  # 12 px
    flags[0, 7] = True  # 1 px
    regions = find_regions(flags, min_size=2)
    assert regions[4, 5] == 1 and regions[0, 0] == 2 and regions[0, 7] == 0
    assert regions.max() == 2


@pytest.mark.parametrize(
    "options, match",
    [({"false_alarm": 0.0}, "false_alarm must lie between 0 and 1"),
     ({"false_alarm": 1.5}, "false_alarm must lie between 0 and 1"),
     ({"fit_range": (-1.0, 0.5)}, "energies lie within")],
)
def test_bad_unexplained_options(sample, options, match):
    from xafsmap.core.trust.unexplained import find_unexplained

    with pytest.raises(ValueError, match=match):
        find_unexplained(_stack(sample), sample.references, **options)


# --- reference discovery --------------------------------------------------------------


@pytest.fixture(scope="module")
def library(shared_data):
    return read_library(shared_data / LIBRARY)


def test_library_ranks_magnetite_first(found, library):
    """The sample's missing phase is the ALS magnetite measurement, which is in the library.

    That makes the right answer exact, so the test also asks for a clear winner (the
    runner-up, maghemite, removes ~89 % of the misfit against ~100 %).
    """
    from xafsmap.core.trust.discover import prepare_candidates, rank_candidates

    assert len(library) == 65
    candidates = prepare_candidates(library, found.setup)
    assert not candidates.skipped
    for table in rank_candidates(found.spectra, found.setup, candidates, found.spectra_variance):
        assert table[0]["name"] == "magnetite syn FeEXAFS TEY001"
        assert table[0]["score"] > 0.95 and table[0]["weight"] > 0.9
        assert table[0]["score"] - table[1]["score"] > 0.05


def test_library_finds_a_shifted_distinct_mineral(sample, library):
    """Siderite (FeCO3, Fe(II)) shifted by +1 eV replaces magnetite as the missing phase.

    Siderite is chosen because it is a common Fe(II) phase whose edge sits near FeO's,
    so it is *not* trivially separated by edge position, and because it differs from
    the bundled references and from magnetite (whose library file is the bundled one).
    The library holds two siderite measurements; either is the right answer. The +1 eV
    shift must be recovered by the candidate alignment.
    """
    from xafsmap.core.trust.discover import prepare_candidates, rank_candidates
    from xafsmap.core.trust.unexplained import find_unexplained

    by_name = {r.name: r for r in library}
    siderite = by_name["Siderite FeXANES ITFA0"]
    shifted = type(siderite)(siderite.name, siderite.energies + 1.0, siderite.mu, siderite.source)
    magnetite = _normalized_on(bundled_references(["Fe3O4"])[0], sample.energies)
    swap = sample.edge_step[None] * (_normalized_on(shifted, sample.energies) - magnetite)[:, None, None]
    stack = Stack((sample.stack + swap * sample.fractions[3][None]).astype(np.float32), sample.energies, {})
    result = find_unexplained(stack, sample.references, n_calibration=3000, rng=0)
    assert result.sizes.size >= 1
    tables = rank_candidates(result.spectra, result.setup, prepare_candidates(library, result.setup),
                             result.spectra_variance)
    for table in tables:
        assert table[0]["name"].startswith("Siderite"), [row["name"] for row in table[:3]]
        assert table[0]["offset"] == pytest.approx(1.0)
        assert table[0]["score"] > 0.9


def test_candidates_outside_the_edge_are_skipped_with_reason(found):
    from xafsmap.core.trust.discover import prepare_candidates
    from xafsmap.core.io.references import Reference

    e = np.linspace(7000.0, 7110.0, 111)
    short = Reference("pre-edge only", e, np.linspace(0, 0.1, e.size), "<test>")
    candidates = prepare_candidates([short, *bundled_references(["Fe3O4"])], found.setup)
    assert candidates.names == ("Fe3O4",)
    assert candidates.skipped[0][0] == "pre-edge only" and "covers" in candidates.skipped[0][1]


def test_search_references_writes_its_files(small_sample_file, small_sample, library, tmp_path):
    from xafsmap.core.trust.assess import search_references

    stack = read_stack(small_sample_file)  # lazy (dask), as the CLI reads it
    out = tmp_path / "search"
    summary = search_references(stack, small_sample.references, library[1::4] + bundled_references(["Fe3O4"]),
                                out=out, n_calibration=3000, rng=0)
    labels = __import__("tifffile").imread(out / "unexplained.tif")
    assert labels.dtype == np.uint16 and labels.shape == small_sample.stack.shape[1:]
    missing = small_sample.fractions[3] > 0.5
    assert (labels > 0)[missing].mean() > 0.9
    with open(out / "candidates.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:4] == ["region", "rank", "name", "score"]
    assert rows[0]["region"] == "1" and rows[0]["rank"] == "1" and rows[0]["name"] == "Fe3O4"
    scores = [float(r["score"]) for r in rows if r["region"] == "1"]
    assert scores == sorted(scores, reverse=True)
    assert summary["regions"][0]["candidates"][0]["name"] == "Fe3O4"
    with pytest.raises(ValueError, match="not empty"):
        search_references(stack, small_sample.references, library[:2], out=out)


# --- parsimony ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_phase():
    """FeO and Fe2O3 grains and their mixtures only (13 % holes, so the mask is automatic)."""
    return make_sample((48, 64), n_grains=14, phases=("FeO", "Fe2O3"), references=("FeO", "Fe2O3"),
                       unexplained_grains=0, rng=0)


def test_two_reference_set_preferred_on_two_phase_data(two_phase, refs, tmp_path):
    from xafsmap.core.trust.assess import compare_models

    sets = {"two": [refs["FeO"], refs["Fe2O3"]], "four": [refs[n] for n in ("Fe", "FeO", "Fe2O3", "Fe3O4")]}
    out = tmp_path / "compare"
    result = compare_models(_stack(two_phase), sets, out=out)
    assert result["preferred"] == "two"
    assert result["sets"]["two"]["pixels_preferring"] > 0.8
    # the dangerous case: the four-reference set fits better, but only by chance
    assert result["sets"]["four"]["chi2"] < result["sets"]["two"]["chi2"]
    assert "warning" in result and "four (4 references) fits better than two" in result["warning"]
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["preferred"] == "two" and saved["order"] == ["two", "four"]
    preferred = __import__("tifffile").imread(out / "preferred.tif")
    assert set(np.unique(preferred)) <= {0, 1, 2}
    # the mask: the sample; a background pixel at a grain's border may join it (edge_mask's neighbours)
    assert np.mean((preferred == 0) == (~two_phase.mask | two_phase.dead)) > 0.995
    assert np.mean(preferred[preferred > 0] == 1) > 0.8


def test_missing_phase_makes_the_larger_set_win_without_warning(refs):
    from xafsmap.core.trust.parsimony import compare_sets

    s = make_sample((48, 64), n_grains=14, unexplained_grains=2, rng=3)
    sets = {"three": [refs[n] for n in ("Fe", "FeO", "Fe2O3")],
            "four": [refs[n] for n in ("Fe", "FeO", "Fe2O3", "Fe3O4")]}
    result = compare_sets(_stack(s), sets)
    assert result.summary["preferred"] == "four"
    assert result.summary["warnings"] == []
    magnetite = s.fractions[3] > 0.5
    assert np.mean(result.preferred[magnetite] == 2) > 0.95
    assert np.mean(result.preferred[~magnetite & (result.mask == 1)] == 1) > 0.75


def test_judge_sets_warns_when_the_larger_set_wins_by_the_penalty_margin():
    from xafsmap.core.trust.parsimony import judge_sets

    n = 100
    chi2 = {"small": np.full(10, 100.0), "large": np.full(10, 100.0) - 0.35}
    k = {"small": np.full(10, 2), "large": np.full(10, 2)}
    k["large"][0] = 3  # one extra non-zero weight, 3.5 chi2 units gained in all: chance is 3.83
    out = judge_sets(chi2, k, {"small": 2, "large": 3}, n_energies=n, criterion="aic")
    assert out["preferred"] == "large"
    assert len(out["warnings"]) == 1
    assert "only by what its 1 extra free parameters give by chance" in out["warnings"][0]
    # 3.9 gained: beyond chance, but AIC lower by only 1.9
    chi2["large"] = np.full(10, 100.0) - 0.39
    out = judge_sets(chi2, k, {"small": 2, "large": 3}, n_energies=n, criterion="aic")
    assert out["preferred"] == "large"
    assert len(out["warnings"]) == 1 and "only by the penalty margin (AIC lower by 1.9" in out["warnings"][0]
    # a decisive gain: no warning
    chi2["large"] = chi2["large"] - 10.0
    out = judge_sets(chi2, k, {"small": 2, "large": 3}, n_energies=n, criterion="bic")
    assert out["preferred"] == "large" and out["warnings"] == []
    # a gain beyond chance that still does not pay the BIC penalty: a note
    chi2["large"] = np.full(10, 100.0)
    chi2["large"][0] = 95.5  # 4.5 > 3.83 (chance) but < ln(100) = 4.61 (BIC price)
    out = judge_sets(chi2, k, {"small": 2, "large": 3}, n_energies=n, criterion="bic")
    assert out["preferred"] == "small" and out["warnings"] == [] and len(out["notes"]) == 1


@pytest.mark.parametrize(
    "sets, options, match",
    [({"a": "x"}, {}, "at least 2 reference sets"),
     ({"a": "x", "b": []}, {}, "reference set 'b' is empty"),
     ({"a": "x", "b": "x"}, {"criterion": "r2"}, "unknown criterion 'r2'")],
)
def test_bad_comparisons(two_phase, refs, sets, options, match):
    from xafsmap.core.trust.parsimony import compare_sets

    sets = {name: ([refs["FeO"]] if value == "x" else value) for name, value in sets.items()}
    with pytest.raises(ValueError, match=match):
        compare_sets(_stack(two_phase), sets, **options)


def test_core_modules_do_not_import_gui():
    for name in ("unexplained", "discover", "parsimony", "assess"):
        text = Path(__file__).resolve().parents[2].joinpath("src", "xafsmap", "core", "trust", f"{name}.py").read_text()
        assert "napari" not in text and "qtpy" not in text and "magicgui" not in text
