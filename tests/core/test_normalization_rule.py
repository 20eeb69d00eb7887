"""Which pre-edge window the map uses: Larch's default on dense, quiet scans, the whole pre-edge on imaging stacks.

Known answers from Larch itself (``tests/core/larch_dense_values.py``, xraylarch
2026.3.1, ``pre_edge`` defaults on the spectra as ``read_reference`` returns them).
"""

import numpy as np
import pytest

from xafsmap.core.io.stack import Stack
from xafsmap.core.spectra.normalize import normalize
from xafsmap.core.mapping.maps import MASK_SAMPLE
from xafsmap.core.mapping.pipeline import map_stack
from xafsmap.core.io.references import read_reference
from xafsmap.core.simulate.sample import make_sample
from xafsmap.core.spectra.preedge import LARCH_WINDOW_ERROR, pre_edge_rule
from xafsmap.core.spectra.survey import survey

LARCH = {
    'Mn foil': dict(e0=6539.0, edge_step=1.0004325685184992, pre1=-155.0, pre2=-77.5, norm1=25.0, norm2=560.0, nnorm=2),
    'NiO': dict(e0=8345.000170000001, edge_step=0.7636983706951748, pre1=-200.0, pre2=-100.0, norm1=25.0, norm2=1225.0, nnorm=2),
    'Hematite': dict(e0=7126.909, edge_step=1.0387568561183584, pre1=-225.0, pre2=-112.5, norm1=25.0, norm2=973.7554, nnorm=2),
    'Fe2O3': dict(e0=7126.0, edge_step=0.2631601783521358, pre1=-155.0, pre2=-77.5, norm1=25.0, norm2=843.2470000000003, nnorm=2),
    'Magnetite': dict(e0=7120.6338, edge_step=0.9498610190188006, pre1=-30.0, pre2=-15.0, norm1=25.0, norm2=79.08590000000004, nnorm=1),
}
#: (spectrum, a second reference of the same edge for the map's classes)
SPECS = {
    "Mn foil": ("athena/Mn.prj:Mn foil", "athena/Mn.prj:MnO"),
    "NiO": ("athena/NiO.prj:NiO.000", "references/other/ni_metal_rt.xdi"),
    "Hematite": ("athena/Fe.prj:Hematite", "athena/Fe.prj:Fe foil"),
    "Fe2O3": ("references/fe-k/fe2o3_rt.xdi", "references/fe-k/fe_metal_rt.xdi"),
    "Magnetite": ("athena/FeLibNov2021.nor:Magnetite", "athena/FeLibNov2021.nor:Hematite_NP"),
}


def copies(mu, edge_step, rng=0):
    """A 6 x 6 stack: 24 copies of one spectrum and 12 background pixels, with noise of 1e-5 edge steps."""
    stack = np.empty((mu.size, 6, 6), np.float32)
    stack[:] = mu[:, None, None]
    stack[:, :2] = mu.min()  # no edge
    return stack + (1e-5 * edge_step * np.random.default_rng(rng).standard_normal(stack.shape)).astype(np.float32)


@pytest.mark.parametrize("name", list(SPECS))
def test_map_of_a_dense_real_scan_gives_larch_edge_step_with_larch_windows(shared_data, name):
    spectrum, partner = (read_reference(shared_data / spec) for spec in SPECS[name])
    larch = LARCH[name]
    e = spectrum.energies
    result = map_stack(Stack(copies(spectrum.mu, larch["edge_step"]), e, {}), [spectrum, partner], rng=0,
                       n_per_class=40, n_trees=4)
    sample = result.mask == MASK_SAMPLE
    assert sample.sum() == 24
    np.testing.assert_allclose(result.edge_step[sample], larch["edge_step"], rtol=0.005)  # measured < 1e-5
    assert result.params["normalization_rule"]["rule"] == "larch-default"
    assert result.survey.e0 == pytest.approx(larch["e0"], abs=1e-6)
    windows = normalize(spectrum.mu, e, **result.params["normalization"]).params
    assert windows == pytest.approx({k: larch[k] for k in ("pre1", "pre2", "norm1", "norm2", "nnorm")})
    # the e0 map follows Larch's definition where the noise allows (here: 1e-5 edge steps)
    assert result.params["e0_map"]["rule"] == "larch", result.params["e0_map"]
    np.testing.assert_allclose(result.e0[sample], larch["e0"], atol=1e-6)


@pytest.mark.parametrize("noise", [0.005, 0.02])
def test_noisy_imaging_stacks_smooth_the_e0_map(noise):
    sample = make_sample((30, 40), n_grains=10, noise=noise, rng=1)
    result = map_stack(Stack(sample.stack, sample.energies, {}), sample.references, rng=0, n_per_class=40,
                       n_trees=4)
    assert result.params["e0_map"]["rule"] == "smoothed", result.params["e0_map"]


def test_the_whole_pre_edge_would_miss_larch_on_these_scans(shared_data):
    # why the rule matters: the old whole-pre-edge window gives a 3.8 % smaller step on Hematite
    spectrum = read_reference(shared_data / SPECS["Hematite"][0])
    e0 = LARCH["Hematite"]["e0"]
    whole = normalize(spectrum.mu, spectrum.energies, e0=e0, pre1=spectrum.energies[0] - e0, pre2=-15.0)
    assert float(whole.edge_step) / LARCH["Hematite"]["edge_step"] - 1 < -0.03


@pytest.mark.parametrize("noise", [0.005, 0.02, 0.05])
def test_imaging_stacks_keep_the_whole_pre_edge(noise):
    sample = make_sample((30, 40), n_grains=10, noise=noise, rng=1)
    found = survey(sample.stack, sample.energies)
    assert found.rule["rule"] == "whole-pre-edge", found.rule
    assert found.normalization["pre1"] == pytest.approx(sample.energies[0] - found.e0)
    assert found.normalization["pre2"] == -15.0
    assert "Larch's pre-edge window e0 + [-" in found.rule["why"] and "holds 7 energies" in found.rule["why"]


def test_rule_is_the_extrapolation_error_against_the_limit():
    e = np.arange(7050.0, 7300.0, 5.0)  # Larch's window e0 + [-64, -32]: 7060-7085 eV
    x = np.arange(7060.0, 7090.0, 5.0)
    spread = np.sqrt(1 / x.size + (7120.0 - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))  # 2.31 sigma at e0
    limit = LARCH_WINDOW_ERROR / spread
    assert pre_edge_rule(e, 7120.0, noise=0.98 * limit)[1]["rule"] == "larch-default"
    assert pre_edge_rule(e, 7120.0, noise=1.02 * limit)[1]["rule"] == "whole-pre-edge"
    window, rule = pre_edge_rule(e, 7120.0)  # noise unknown: as before, the whole pre-edge
    assert window == {"pre1": -70.0, "pre2": -15.0} and "unknown" in rule["why"]
    window, rule = pre_edge_rule(np.arange(7100.0, 7300.0, 5.0), 7120.0, noise=0.02)
    assert window == {} and rule["rule"] == "larch-default" and "too few" in rule["why"]


def test_given_windows_are_recorded_as_given(small_sample):
    found = survey(small_sample.stack, small_sample.energies, norm_params={"pre1": -60.0, "pre2": -30.0})
    assert found.rule["rule"] == "given" and found.normalization["pre2"] == -30.0
    assert survey(small_sample.stack, small_sample.energies, pre_edge=False).rule["rule"] == "larch-default"
