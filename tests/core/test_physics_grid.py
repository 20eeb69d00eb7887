"""Known answers over a grid of beamline conditions, not one point of one generator.

Stacks from :func:`xafsmap.core.simulate.generator.simulate_measurement` (Poisson counts behind a
flat with uneven illumination, dark current, grains 16x apart in thickness with thin rims,
Fe-free grains, magnetite left out of the references), mapped and searched as a user
would. Each condition asserts issue 10's targets where the counts allow them, and
otherwise what the data allow: the Cramér-Rao bound of the fractions and the power of an
ideal test for the left-out phase (``Measurement.fraction_crlb``,
``Measurement.detection_power``). ``benchmarks/physics.py`` runs the same grid larger.
"""

import numpy as np
import pytest

from xafsmap.core.mapping.maps import MASK_SAMPLE
from xafsmap.core.mapping.pipeline import map_stack
from xafsmap.core.simulate.scores import score_maps
from xafsmap.core.simulate.generator import simulate_measurement
from xafsmap.core.trust.unexplained import find_unexplained

SHAPE = (72, 96)
FAST = dict(n_per_class=300, n_trees=30)
#: condition -> simulate_measurement options
GRID = {
    "thin-thick, 900 counts": dict(dose=900.0),
    "thin-thick, 3000 counts": dict(dose=3000.0),
    "thin-thick, 20000 counts": dict(dose=20000.0),
    "3 % harmonic leak, 20000 counts": dict(dose=20000.0, leak=0.03),
    "references 5 eV off, 3000 counts": dict(dose=3000.0, offset=5.0),
    "fluorescence counts": dict(mode="fluorescence", dose=17000.0, edge_step=(0.02, 2.4)),
}


@pytest.fixture(scope="module", params=list(GRID))
def case(request):
    options = GRID[request.param]
    m = simulate_measurement(SHAPE, n_grains=24, unexplained_grains=3, rng=5, **options)
    align = bool(options.get("offset"))
    mapped = map_stack(m.stack(), m.references, rng=0, align_references=align, **FAST)
    found = find_unexplained(m.stack(), m.references, rng=0, n_calibration=3000, align_references=align)
    power = m.detection_power()
    scores = score_maps(m.truth, mask=mapped.mask == MASK_SAMPLE, fractions=mapped.fractions,
                        distance=mapped.distance, unexplained=found.flags, fraction_sigma=mapped.fraction_sigma,
                        crlb=m.fraction_crlb(), power=power)
    return request.param, m, mapped, found, scores


def test_mask_keeps_thin_grains_and_drops_fe_free_ones(case):
    name, m, mapped, found, scores = case
    assert scores["mask_iou"] >= 0.98, (name, scores["mask_iou"])


def test_dominant_phase_and_fractions_within_what_the_counts_allow(case):
    """Issue 10's 0.97 and 0.03 (0.04 at 900 counts) where the Cramér-Rao bound of the
    fractions allows them, the bound otherwise. At 900 counts per pixel the bound is
    0.15 and the dominant phase is right 0.95 of the time (measured 0.950-0.953; 2 x 2
    binning gives the 3600-count case). A 3 % leak biases pixels below the generator's
    distortion tolerance: RMSE within 10 % of the bound."""
    name, m, mapped, found, scores = case
    assert scores["dominant_accuracy"] >= (0.94 if m.dose <= 1000 else 0.97), (name, scores["dominant_accuracy"])
    target = 0.04 if m.dose <= 1000 else 0.03
    bound = scores["fraction_crlb"] * (1.1 if m.leak else 1.0)
    assert scores["fraction_rmse"] <= max(target, bound), (name, scores)


def test_fraction_sigma_is_calibrated(case):
    """Over every fraction of the known pixels (issue 10's measure): 0.75-0.84 at 1 sigma
    and 0.89-0.93 at 2 sigma in transmission, 0.86 / 0.95 in fluorescence, where the
    fit is slightly conservative. Exact zeros count as covered; over the other
    fractions alone the 1-sigma coverage is 0.58-0.71."""
    name, m, mapped, found, scores = case
    assert 0.5 <= scores["coverage_1sigma"] <= (0.87 if m.mode == "fluorescence" else 0.85), (name, scores)
    assert scores["coverage_2sigma"] >= 0.85, (name, scores["coverage_2sigma"])


def test_unexplained_map_flags_known_phases_rarely_at_any_thickness(case):
    name, m, mapped, found, scores = case
    assert scores["unexplained_known"] <= 0.02, (name, scores["unexplained_known"])
    assert scores["unexplained_known_worst_bin"] <= 0.02, (name, scores["unexplained_by_thickness"])


def test_unexplained_map_finds_the_left_out_phase_as_an_ideal_test_would(case):
    """>= 80 % where an ideal per-pixel test with the true noise could (issue 10), and
    otherwise within 10 points of that test's power: at 900-3000 counts most thin
    magnetite pixels are indistinguishable from the references' mixtures."""
    name, m, mapped, found, scores = case
    left_out = m.truth.left_out & (found.mask == MASK_SAMPLE) & ~found.thick  # too thick is not "unexplained"
    ideal = float(m.detection_power()[left_out].mean())
    found_share = float(found.flags[left_out].mean())
    assert found_share >= min(0.8, ideal - 0.10), (name, found_share, ideal)


def test_offsets_are_warned_about_and_found(case):
    name, m, mapped, found, scores = case
    alignment = mapped.params.get("alignment")
    if not m.offset:
        assert alignment is None or abs(alignment["offset_eV"]) < 0.5
        assert not any("eV" in w and "refer" in w for w in mapped.warnings), mapped.warnings
        return
    assert alignment["offset_eV"] == pytest.approx(m.offset, abs=0.5)


def test_leak_distorted_pixels_are_too_thick_not_a_new_phase(case):
    name, m, mapped, found, scores = case
    if not m.leak:
        return
    distorted = m.truth.distorted & (found.mask == MASK_SAMPLE)
    assert distorted.sum() > 50
    flagged_new = found.flags[distorted].mean()
    assert flagged_new <= 0.05, (name, flagged_new, mapped.params["thick"])
