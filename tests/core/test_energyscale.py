"""Energy scales: references off the stack's scale are warned about and, when asked, aligned.

Known answers: stacks synthesized from the real bundled references (Fe, FeO, Fe2O3;
``make_sample``), mapped with those references shifted by a known offset (their energies
lowered by ``shift``, so the offset to find is ``+shift``), over compositions, noise levels
and thicknesses; and the real STXM Fe L stack with its own references shifted by +-2 eV.
"""

import dataclasses
import json
import re

import numpy as np
import pytest

from xafsmap.core.spectra.energyscale import EDGE_MARGIN, check_energy_scale, energy_scale_warnings
from xafsmap.core.spectra.offsets import fit_common_offset, reference_edges
from xafsmap.core.io.stack import Stack
from xafsmap.core.simulate.sample import bundled_references, make_sample
from xafsmap.core.spectra.survey import survey
from xafsmap.core.model.training import train_model

OFFSETS = (-8.0, -5.0, -2.0, 2.0, 5.0, 8.0)
#: (phases present, phases among the references' classes): a mixed sample with an
#: unexplained magnetite phase, and single-phase samples of the two extreme edges
COMPOSITIONS = {
    "mixed": dict(phases=("Fe", "FeO", "Fe2O3", "Fe3O4"), references=("Fe", "FeO", "Fe2O3"), unexplained_grains=2),
    "Fe only": dict(phases=("Fe",), references=("Fe",), unexplained_grains=0),
    "Fe2O3 only": dict(phases=("Fe2O3",), references=("Fe2O3",), unexplained_grains=0),
}
#: noise in absorbance (edge steps 0.6-1.4: 0.4-0.8 % and 3-7 %), and thick and thin grains
CONDITIONS = {"quiet": dict(noise=0.005), "noisy": dict(noise=0.05),
              "thick and thin": dict(noise=0.03, edge_step=(0.15, 2.4))}
FAST = dict(n_per_class=100, n_trees=10)


def shifted(references, shift):
    """The references as measured on a scale ``shift`` eV low (the stack's edge lies above theirs)."""
    return [dataclasses.replace(ref, energies=ref.energies - shift) for ref in references]


def surveyed(composition, condition, seed=0):
    sample = make_sample((40, 50), n_grains=12, rng=seed, **COMPOSITIONS[composition], **CONDITIONS[condition])
    found = survey(sample.stack, sample.energies)
    e = sample.energies
    inside = np.flatnonzero((e >= found.e0 - 30) & (e <= found.e0 + 70))
    return found, e, (int(inside[0]), int(inside[-1]) + 1)


def check(found, energies, window, references, **options):
    return check_energy_scale(found.spectra, energies, references, norm_params=found.normalization,
                              window=window, rng=0, **options)


@pytest.fixture(scope="module")
def references():
    return bundled_references(("Fe", "FeO", "Fe2O3"))


@pytest.mark.parametrize("condition", list(CONDITIONS))
@pytest.mark.parametrize("composition", list(COMPOSITIONS))
def test_offsets_of_2_to_8_eV_are_warned_about_and_found_within_half_an_eV(composition, condition, references):
    found, energies, window = surveyed(composition, condition)
    matched = check(found, energies, window, references)
    assert matched.warnings == (), matched.warnings  # matched data: no warning
    assert abs(matched.fit.offset) < 0.15 and matched.fit.ratio_given < 1.3  # measured <= 0.1 eV, <= 1.02
    for shift in OFFSETS:
        result = check(found, energies, window, shifted(references, shift))
        assert any("--align-references" in w for w in result.warnings), (shift, result.fit)
        assert abs(result.fit.offset - shift) < 0.5, (shift, result.fit)  # measured within 0.1 eV
        assert result.alignment is None and result.offsets == [0.0, 0.0, 0.0]
    aligned = check(found, energies, window, shifted(references, 5.0), align=True)
    assert aligned.warnings == ()
    assert np.allclose(aligned.offsets, 5.0, atol=0.5) and aligned.alignment["offset_eV"] == pytest.approx(5.0, abs=0.5)


@pytest.mark.parametrize("condition", ["thin-thick-900", "thin-thick-20000", "leak-3000", "offset-3000",
                                       "leak-offset-20000", "fluorescence"])
def test_physical_measurements_counts_leak_fluorescence(condition):
    # Poisson counts behind an uneven flat, grains 16x apart in thickness, a harmonic leak,
    # a fluorescence map; the references handed out `offset` eV below the stack (+5 in the
    # offset conditions), or shifted by -3 eV here
    from xafsmap.core.simulate.generator import CONDITIONS, simulate_measurement

    given = CONDITIONS[condition].get("offset", 0.0)
    m = simulate_measurement((48, 64), n_grains=16, rng=0, **CONDITIONS[condition])
    stack = m.stack()
    found = survey(stack.data, stack.energies)
    e = np.asarray(stack.energies)
    inside = np.flatnonzero((e >= found.e0 - 30) & (e <= found.e0 + 70))
    window = (int(inside[0]), int(inside[-1]) + 1)
    as_handed = check(found, e, window, m.references)
    if given:
        assert any("shifted by" in w for w in as_handed.warnings), as_handed.warnings
        assert abs(as_handed.fit.offset - given) < 0.5  # measured within 0.05 eV
    else:
        assert as_handed.warnings == () and abs(as_handed.fit.offset) < 0.3  # measured -0.18 at 900 counts
        moved = check(found, e, window, shifted(m.references, -3.0))
        assert any("shifted by" in w for w in moved.warnings) and abs(moved.fit.offset + 3.0) < 0.5


def test_single_reference_of_the_sample_s_phase_gives_no_warning_even_noisy():
    # pure Fe at 7 % noise: the pixels' own e0 jump to the second derivative peak (7118.5 eV),
    # the mean sample spectrum's stays at Fe's edge
    sample = make_sample((40, 50), n_grains=12, phases=("Fe",), references=("Fe",), unexplained_grains=0,
                         noise=0.1, rng=1)
    found = survey(sample.stack, sample.energies)
    assert found.e0 > 7116  # the median pixel e0 is off Fe's first inflection
    inside = np.flatnonzero((sample.energies >= found.e0 - 30) & (sample.energies <= found.e0 + 70))
    result = check(found, sample.energies, (inside[0], inside[-1] + 1), bundled_references(("Fe",)))
    assert result.warnings == () and abs(result.stack_edge - 7111.0) <= 0.5


def test_edge_outside_every_reference_is_named_with_the_numbers():
    [warning] = energy_scale_warnings(7126.1, [7112.0, 7116.9, 7120.8], None)
    assert warning.startswith("the stack's edge at 7126.1 eV lies 5.3 eV above every reference's edge "
                              "(7112.0-7120.8 eV)")
    assert "--align-references" in warning and "--offset NAME=EV" in warning
    [below] = energy_scale_warnings(7105.0, [7111.0], None)
    assert "6.0 eV below every reference's edge (7111.0 eV)" in below
    assert energy_scale_warnings(7111.0 + EDGE_MARGIN - 0.1, [7111.0], None) == ()


def test_a_missing_phase_is_not_taken_for_an_offset(references):
    # a quiet magnetite sample mapped with Fe, FeO and Fe2O3: misfit 10x the noise, best offset +0.8 eV
    sample = make_sample((40, 50), n_grains=12, phases=("Fe3O4",), references=("Fe3O4",), unexplained_grains=0,
                         noise=0.002, rng=0)
    found = survey(sample.stack, sample.energies)
    inside = np.flatnonzero((sample.energies >= found.e0 - 30) & (sample.energies <= found.e0 + 70))
    result = check(found, sample.energies, (inside[0], inside[-1] + 1), references)
    [warning] = result.warnings
    assert "no common energy offset explains it" in warning and "a phase may be missing" in warning
    assert result.fit.ratio_given > 5


def test_reference_edges_are_larch_e0_plus_offset(references):
    np.testing.assert_allclose(reference_edges(references), [7111.0, 7122.9272, 7126.0])  # Larch 2026.3.1
    np.testing.assert_allclose(reference_edges(references, offsets=[1, -1, 0.5]), [7112.0, 7121.9272, 7126.5])


@pytest.mark.parametrize("bad, match", [
    (dict(search=(3.0, 3.0)), "search range"),
    (dict(noise=np.full(5, np.nan)), "no sample spectrum has a finite noise level"),
])
def test_bad_offset_fit_inputs(references, bad, match):
    found, energies, window = surveyed("mixed", "quiet")
    with pytest.raises(ValueError, match=match):
        fit_common_offset(found.spectra[:, :5], energies, references, norm_params=found.normalization,
                          window=window, **bad)


def test_offset_fit_is_reproducible_and_its_sigma_covers_pixel_scatter(references):
    found, energies, window = surveyed("mixed", "noisy")
    a = fit_common_offset(found.spectra, energies, shifted(references, 3.0), norm_params=found.normalization,
                          window=window, rng=5)
    b = fit_common_offset(found.spectra, energies, shifted(references, 3.0), norm_params=found.normalization,
                          window=window, rng=5)
    assert (a.offset, a.sigma) == (b.offset, b.sigma)
    half = fit_common_offset(found.spectra[:, ::2], energies, shifted(references, 3.0),
                             norm_params=found.normalization, window=window, rng=5)
    assert 0 < a.sigma < 0.1 and abs(half.offset - a.offset) < 5 * max(a.sigma, half.sigma) + 0.02


def test_train_model_warns_then_aligns_and_the_map_is_right_again(references):
    sample = make_sample((40, 50), n_grains=12, unexplained_grains=0, rng=4)
    stack = Stack(sample.stack, sample.energies, {"stack": "<array>"})
    low = shifted(references, -4.0)  # references 4 eV above the stack's scale
    model = train_model(stack, low, rng=0, **FAST)
    assert any("shifted by -4.0" in w or "shifted by -3.9" in w for w in model.warnings), model.warnings
    assert model.params["alignment"] is None and model.params["offsets"] == [0.0, 0.0, 0.0]
    from xafsmap.core.mapping.pipeline import map_stack

    result = map_stack(stack, low, rng=0, align_references=True, offsets=[0.5, 0.0, 0.0], **FAST)
    assert result.warnings == ()
    common = result.params["alignment"]["offset_eV"]
    assert common == pytest.approx(-4.5, abs=0.5)  # on top of the given +0.5 for Fe: Fe lands at -4 too
    np.testing.assert_allclose(result.params["offsets"], [common + 0.5, common, common], atol=1e-3)
    assert result.params["alignment"]["pixels"] > 1000 and result.params["alignment"]["search_eV"] == [-10.0, 10.0]
    known = (result.mask == 1) & sample.mask
    rmse = np.sqrt(np.mean((result.fractions[:, known] - sample.fractions[:3, known]) ** 2))
    assert rmse < 0.03, rmse  # measured 0.01 (0.3 without alignment)


def test_setup_fit_aligns_like_the_map(references):
    from xafsmap.core.trust.fitsetup import setup_fit

    sample = make_sample((40, 50), n_grains=12, rng=2)
    stack = Stack(sample.stack, sample.energies, {"stack": "<array>"})
    plain = setup_fit(stack, shifted(references, 6.0))
    assert plain.alignment is None and any("shifted by +6" in w for w in plain.warnings)
    aligned = setup_fit(stack, shifted(references, 6.0), align_references=True)
    assert aligned.alignment["offset_eV"] == pytest.approx(6.0, abs=0.5) and aligned.warnings == ()
    assert np.allclose(aligned.offsets, aligned.alignment["offset_eV"], atol=1e-3)


@pytest.fixture(scope="module")
def stxm(shared_data):
    from xafsmap.core.io.stack import read_stack
    from xafsmap.core.prepare.steps import prepare_stack
    from xafsmap.core.io.references import read_reference

    folder = shared_data / "stxm-fe-l" / "71214078"
    if not (folder / "71214078.hdr").is_file():
        pytest.skip(f"STXM stack {folder} is absent")
    stack, _ = prepare_stack(read_stack(folder / "71214078.hdr", i0=folder / "i0.xsp"), factor=2)
    data = np.asarray(stack.data, dtype=np.float32)
    refs = [read_reference(folder / name) for name in ("oxidized.r", "reduced.r")]
    return Stack(data, np.asarray(stack.energies), stack.sources), refs


@pytest.mark.parametrize("shift", [2.0, -2.0])
def test_real_stxm_fe_l_offset_is_recovered(stxm, shift):
    from xafsmap.core.trust.fitsetup import setup_fit

    stack, refs = stxm
    assert stack.data.shape == (123, 62, 62)
    # the references share the stack's 700-730 eV grid: shifted, they no longer cover it,
    # so the unaligned check runs on 702.5-727.5 eV, the alignment on everything
    keep = (stack.energies >= 702.5) & (stack.energies <= 727.5)
    inner = Stack(stack.data[keep], stack.energies[keep], stack.sources)
    plain = setup_fit(inner, shifted(refs, shift))
    [warning] = [w for w in plain.warnings if "shifted by" in w]
    found = float(re.search(r"shifted by ([+-][\d.]+) ±", warning).group(1))
    assert abs(found - shift) < 0.5, warning  # measured +1.99, -2.01
    model = train_model(stack, shifted(refs, shift), align_references=True, rng=0, n_per_class=100, n_trees=10)
    assert model.params["alignment"]["offset_eV"] == pytest.approx(shift, abs=0.5)  # measured within 0.08 eV
    assert not any("shifted by" in w for w in model.warnings)


def test_matched_real_stxm_references_give_no_energy_warning(stxm):
    from xafsmap.core.trust.fitsetup import setup_fit

    stack, refs = stxm
    setup = setup_fit(stack, refs)
    assert setup.warnings == ()


def test_cli_map_aligns_records_and_says_so(tmp_path, capsys, references, small_sample_file):
    from xafsmap.cli import main

    specs = []
    for ref in shifted(references, 5.0):
        path = tmp_path / f"{ref.name}.dat"
        np.savetxt(path, np.c_[ref.energies, ref.mu], header="energy mu")
        specs += ["--reference", str(path)]
    common = [str(small_sample_file), *specs, "--spectra-per-class", "60", "--trees", "8", "--quiet"]
    assert main(["map", *common, "--out", str(tmp_path / "plain")]) == 0
    err = capsys.readouterr().err
    found = re.search(r"xafsmap: warning: the references fit the stack best shifted by ([+-][\d.]+) ±", err)
    assert found and abs(float(found.group(1)) - 5.0) < 0.5, err
    report = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert any("--align-references" in w for w in report["warnings"])
    assert report["parameters"]["alignment"] is None
    assert report["parameters"]["normalization_rule"]["rule"] == "whole-pre-edge"

    assert main(["map", *common, "--align-references", "--out", str(tmp_path / "aligned")]) == 0
    err = capsys.readouterr().err
    found = re.search(r"xafsmap: aligned the references: ([+-][\d.]+) ± [\d.]+ eV", err)
    assert found and abs(float(found.group(1)) - 5.0) < 0.5 and "warning" not in err, err
    report = json.loads((tmp_path / "aligned" / "report.json").read_text())
    alignment = report["parameters"]["alignment"]
    assert alignment["offset_eV"] == pytest.approx(5.0, abs=0.5) and alignment["sigma_eV"] < 0.1
    assert np.allclose(report["parameters"]["offsets"], alignment["offset_eV"], atol=1e-3)
    assert report["warnings"] == []


def test_recipe_keeps_the_alignment_choice(tmp_path, references):
    from xafsmap.core.settings import ReferenceSpec, Settings, read_recipe, write_recipe

    recipe = Settings(references=(ReferenceSpec(str(tmp_path / "Fe.xdi")),), sample="fe_sample",
                    align_references=True)
    path = write_recipe(tmp_path / "r.toml", recipe)
    assert "align_references = true" in path.read_text()
    assert read_recipe(path).align_references is True
    assert "align_references" not in write_recipe(tmp_path / "s.toml", Settings(references=recipe.references,
                                                                               sample="fe_sample")).read_text()
    path.write_text(path.read_text().replace("align_references = true", "align_references = 1"))
    with pytest.raises(ValueError, match=r"\[prepare\] align_references must be true or false"):
        read_recipe(path)
