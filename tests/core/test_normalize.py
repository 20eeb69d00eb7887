"""Tests for xafsmap.core.spectra.normalize: Larch agreement, vectorization, dask, bad inputs.

The Larch numbers below were produced by ``tests/core/larch_reference_values.py``
(xraylarch 2026.3.1, ``pre_edge`` with default arguments) and are hard-coded so the
tests need no Larch. Acceptance criterion: e0 within 0.5 eV, edge step within 2 %,
``norm`` and ``flat`` within 0.02 at ten energies between e0 - 20 and e0 + 80 eV. The
implementation reproduces Larch to rounding (1e-6), so the tests hold it to that.
"""

from __future__ import annotations

import numpy as np
import pytest

from xafsmap.core.spectra.normalize import Normalized, estimate_noise, normalize
from xafsmap.core.spectra.edge import find_e0
from xafsmap.core.spectra.sharedfit import step_weights

FE_K = ["fe_metal_rt", "feo_rt1", "fe2o3_rt", "fe3c_rt", "fen_rt"]

LARCH = {
    'references/fe-k/fe_metal_rt.xdi': dict(
        e0=7111.0, edge_step=3.002319340836766,
        pre1=-140.0, pre2=-70.0, norm1=25.0, norm2=858.2470000000003, nnorm=2,
        energy=[7092.0, 7099.0, 7106.0, 7113.0, 7120.0, 7126.5, 7134.707, 7149.606, 7168.246, 7190.624],
        norm=[0.004615, 0.007684, 0.016807, 0.295863, 0.614298, 0.901273, 0.926001, 1.010854, 0.990969, 0.981061],
        flat=[0.004615, 0.007684, 0.016807, 0.29673, 0.618188, 0.907952, 0.936181, 1.027324, 1.01519, 1.014415],
    ),
    'references/fe-k/feo_rt1.xdi': dict(
        e0=7122.9272, edge_step=1.3543642063221588,
        pre1=-205.0, pre2=-102.5, norm1=25.0, norm2=960.0, nnorm=2,
        energy=[7103.1906, 7109.5068, 7115.8132, 7122.5507, 7128.9244, 7135.2559, 7141.5451, 7151.9661, 7174.1587, 7201.3452],
        norm=[0.011938, 0.028143, 0.149959, 0.902413, 1.469788, 0.996905, 1.025283, 0.88529, 1.105125, 0.970276],
        flat=[0.011938, 0.028143, 0.149959, 0.902413, 1.471528, 1.00047, 1.030651, 0.89362, 1.119662, 0.992228],
    ),
    'references/fe-k/fe2o3_rt.xdi': dict(
        e0=7126.0, edge_step=0.2631601783521358,
        pre1=-155.0, pre2=-77.5, norm1=25.0, norm2=843.2470000000003, nnorm=2,
        energy=[7106.0, 7112.0, 7117.5, 7123.5, 7129.5, 7137.584, 7150.814, 7166.791, 7183.849, 7205.09],
        norm=[0.022809, 0.054297, 0.091726, 0.571983, 1.376176, 1.28334, 0.990795, 0.898979, 1.104873, 1.017436],
        flat=[0.022809, 0.054297, 0.091726, 0.571983, 1.375932, 1.282448, 0.988597, 0.894798, 1.098081, 1.006684],
    ),
    'references/fe-k/fe3c_rt.xdi': dict(
        e0=7122.0, edge_step=2.424699023458169,
        pre1=-150.0, pre2=-75.0, norm1=25.0, norm2=845.0, nnorm=2,
        energy=[7102.0, 7108.0, 7114.5, 7120.5, 7126.5, 7133.785, 7146.099, 7161.16, 7180.575, 7201.359],
        norm=[0.009491, 0.023653, 0.264539, 0.563437, 0.984164, 1.024844, 0.985936, 0.986626, 0.942804, 1.023835],
        flat=[0.009491, 0.023653, 0.264539, 0.563437, 0.985913, 1.029405, 0.995195, 1.001536, 0.964846, 1.053321],
    ),
    'references/fe-k/fen_rt.xdi': dict(
        e0=7111.0, edge_step=3.019204751713831,
        pre1=-140.0, pre2=-70.0, norm1=25.0, norm2=858.2470000000003, nnorm=2,
        energy=[7092.0, 7099.0, 7106.0, 7113.0, 7120.0, 7126.5, 7134.707, 7149.606, 7168.246, 7190.624],
        norm=[0.007767, 0.012414, 0.026634, 0.324548, 0.6934, 0.96801, 1.031767, 1.022478, 0.938203, 1.029303],
        flat=[0.007767, 0.012414, 0.026634, 0.324799, 0.694523, 0.969935, 1.034694, 1.027189, 0.94509, 1.038714],
    ),
    'stxm-fe-l/71214078/oxidized.r': dict(
        e0=709.06, edge_step=0.20135410211165916,
        pre1=-9.059999999999945, pre2=-4.529999999999973, norm1=5.0, norm2=20.0, nnorm=0,
        energy=[700.0, 704.212, 706.838, 709.666, 712.292, 715.12, 717.746, 720.714, 725.355, 730.353],
        norm=[0.025959, 0.00336, 0.329269, 5.732922, 2.024107, 1.052498, 0.678182, 1.171052, 0.989017, 0.679399],
        flat=[0.025959, 0.00336, 0.329269, 5.732922, 2.024107, 1.052498, 0.678182, 1.171052, 0.989017, 0.679399],
    ),
    'stxm-fe-l/71214078/reduced.r': dict(
        e0=707.242, edge_step=0.016671635291220177,
        pre1=-5.0, pre2=-2.5, norm1=10.0, norm2=23.11099999999999, nnorm=0,
        energy=[700.0, 704.212, 706.838, 709.666, 712.292, 715.12, 717.746, 720.714, 725.355, 730.353],
        norm=[1.586176, -0.205639, 22.549963, 43.472859, 10.729057, 1.612848, -1.833593, 10.903757, -3.550876, -7.059323],
        flat=[1.586176, -0.205639, 22.549963, 43.472859, 10.729057, 1.612848, -1.833593, 10.903757, -3.550876, -7.059323],
    ),
}


def load_two_columns(folder, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Energy (column 1) and mu (column 2, ``mutrans`` in the XDI files)."""
    data = np.loadtxt(folder / name, comments="#")
    return data[:, 0], data[:, 1]


@pytest.fixture(scope="module")
def fe2o3(shared_data):
    return load_two_columns(shared_data, "references/fe-k/fe2o3_rt.xdi")


@pytest.mark.parametrize("name", list(LARCH))
def test_matches_larch_pre_edge(shared_data, name):
    energy, mu = load_two_columns(shared_data, name)
    ref = LARCH[name]
    flat = normalize(mu, energy)
    norm = normalize(mu, energy, flatten=False)
    assert float(flat.e0) == pytest.approx(ref["e0"], abs=1e-6)
    assert float(flat.edge_step) == pytest.approx(ref["edge_step"], rel=1e-6)
    for key in ("pre1", "pre2", "norm1", "norm2", "nnorm"):
        assert flat.params[key] == pytest.approx(ref[key], abs=1e-9), key
    at = np.searchsorted(energy, ref["energy"])
    np.testing.assert_allclose(energy[at], ref["energy"])
    np.testing.assert_allclose(flat.norm[at], ref["flat"], atol=2e-6)
    np.testing.assert_allclose(norm.norm[at], ref["norm"], atol=2e-6)
    assert float(find_e0(mu, energy)) == pytest.approx(ref["e0"], abs=1e-6)


def test_returns_frozen_dataclass_with_shapes(fe2o3):
    energy, mu = fe2o3
    out = normalize(np.stack([mu, 2 * mu], axis=1).reshape(-1, 1, 2), energy)
    assert isinstance(out, Normalized)
    assert out.norm.shape == (energy.size, 1, 2)
    assert out.e0.shape == out.edge_step.shape == (1, 2)
    with pytest.raises(AttributeError):
        out.e0 = None  # type: ignore[misc]


def test_float32_stays_float32(fe2o3):
    energy, mu = fe2o3
    out32 = normalize(mu.astype(np.float32), energy)
    out64 = normalize(mu, energy)
    assert out32.norm.dtype == np.float32
    assert out32.e0 == out64.e0
    np.testing.assert_allclose(out32.norm, out64.norm, atol=1e-5)
    assert normalize((mu * 1000).astype(np.int64), energy).norm.dtype == np.float64


def test_stack_equals_one_spectrum_at_a_time(shared_data):
    """(E, M, N) results equal per-spectrum (E,) calls, pixel by pixel."""
    spectra = [load_two_columns(shared_data, f"references/fe-k/{n}.xdi") for n in
               ("fe_metal_rt", "fe2o3_rt", "fe3c_rt", "fen_rt")]
    energy = spectra[0][0]
    mus = np.stack([mu for _, mu in spectra] + [0.5 * spectra[1][1] + 0.1,
                                                3 * spectra[2][1] - 0.2], axis=1)
    stack = mus.reshape(energy.size, 2, 3)
    windows = dict(pre1=-120.0, pre2=-40.0, norm1=40.0, norm2=600.0)
    out = normalize(stack, energy, **windows)
    for k in range(6):
        one = normalize(mus[:, k], energy, **windows)
        i, j = divmod(k, 3)
        assert out.e0[i, j] == one.e0
        assert out.edge_step[i, j] == pytest.approx(float(one.edge_step), rel=1e-10)
        np.testing.assert_allclose(out.norm[:, i, j], one.norm, atol=1e-10)
    # with default windows, copies of one spectrum resolve the same defaults
    copies = np.stack([mus[:, 1], 0.5 * mus[:, 1] + 1, 2 * mus[:, 1]], axis=1)
    out = normalize(copies.reshape(-1, 3, 1), energy)
    one = normalize(mus[:, 1], energy)
    assert out.params == one.params
    np.testing.assert_allclose(out.norm[:, :, 0], np.repeat(one.norm[:, None], 3, 1),
                               atol=1e-10)
    np.testing.assert_allclose(out.edge_step[:, 0], [1, 0.5, 2] * one.edge_step)


@pytest.mark.parametrize("e0", [None, "map"])
def test_dask_equals_numpy(fe2o3, e0):
    da = pytest.importorskip("dask.array")
    energy, mu = fe2o3
    rng = np.random.default_rng(0)
    stack = (mu[:, None, None] * rng.uniform(0.5, 2, (1, 4, 5))
             + rng.normal(0, 0.002, (energy.size, 4, 5))).astype(np.float32)
    e0_map = None if e0 is None else find_e0(stack, energy)
    lazy = da.from_array(stack, chunks=(100, 2, 3))  # energy split: gets rechunked
    got = normalize(lazy, energy, e0=e0_map)
    want = normalize(stack, energy, e0=e0_map)
    assert isinstance(got.norm, da.Array) and got.norm.dtype == np.float32
    assert got.params == want.params
    np.testing.assert_array_equal(got.e0.compute(), want.e0)
    np.testing.assert_allclose(got.edge_step.compute(), want.edge_step, rtol=1e-6)
    np.testing.assert_allclose(got.norm.compute(), want.norm, atol=1e-6)
    np.testing.assert_array_equal(find_e0(lazy, energy).compute(),
                                  find_e0(stack, energy))


def test_dask_fully_lazy_with_all_windows(fe2o3):
    da = pytest.importorskip("dask.array")
    energy, mu = fe2o3
    lazy = da.from_array(np.repeat(mu[:, None], 4, axis=1), chunks=(-1, 2))
    windows = dict(pre1=-150.0, pre2=-75.0, norm1=25.0, norm2=800.0, nnorm=2)
    got = normalize(lazy, energy, **windows)
    assert got.params == windows
    want = normalize(mu, energy, **windows)
    np.testing.assert_allclose(got.norm.compute()[:, 3], want.norm, atol=1e-12)


def test_explicit_parameters_are_respected(fe2o3):
    """Known answer by hand: np.polyfit over Larch's slices, step at e0."""
    energy, mu = fe2o3
    e0 = 7118.5
    win = dict(pre1=-100.0, pre2=-30.0, norm1=40.0, norm2=500.0, nnorm=1)
    out = normalize(mu, energy, e0=e0, flatten=False, **win)
    assert out.params == win and float(out.e0) == e0
    pre_sel = (energy >= energy[energy <= e0 - 100][-1]) & (energy < e0 - 30)
    post_sel = (energy >= energy[energy <= e0 + 40][-1]) & (energy < e0 + 500)
    line = np.polyval(np.polyfit(energy[pre_sel], mu[pre_sel], 1), energy)
    poly = np.polyfit(energy[post_sel], (mu - line)[post_sel], 1)
    step = np.polyval(poly, e0)
    assert float(out.edge_step) == pytest.approx(step, rel=1e-9)
    np.testing.assert_allclose(out.norm, (mu - line) / step, atol=1e-9)
    flat = normalize(mu, energy, e0=e0, **win).norm
    above = energy >= e0
    np.testing.assert_allclose(flat[~above], out.norm[~above])
    np.testing.assert_allclose(
        flat[above], out.norm[above] - (np.polyval(poly, energy[above]) - step) / step,
        atol=1e-9)
    # e0 is respected per pixel too
    e0_map = np.array([7118.5, 7126.0])
    two = normalize(np.stack([mu, mu], 1), energy, e0=e0_map, **win)
    np.testing.assert_array_equal(two.e0, e0_map)
    assert two.edge_step[0] == pytest.approx(step, rel=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(cut=1), "mu has 347 energies .* but energies lists 348"),
        (dict(e0=6000.0), "e0 = 6000.0 eV lies outside the energy range"),
        (dict(pre1=-3.0, pre2=-2.9), r"pre-edge window e0 \+ \[-3, -2.9\] eV .* holds 0"),
        (dict(norm1=400.0, norm2=402.0), r"post-edge window .* holds 1 energy points"),
        (dict(reverse=1), "energies must be strictly increasing"),
    ],
)
def test_bad_inputs_raise(fe2o3, kwargs, match):
    energy, mu = fe2o3
    if kwargs.pop("cut", 0):
        mu = mu[:-1]
    if kwargs.pop("reverse", 0):
        energy, mu = energy[::-1], mu[::-1]
    with pytest.raises(ValueError, match=match):
        normalize(mu, energy, e0=kwargs.pop("e0", 7126.0), **kwargs)


def test_find_e0_rejects_wrong_energies(fe2o3):
    energy, mu = fe2o3
    with pytest.raises(ValueError, match="mu has 348 energies .* energies lists 347"):
        find_e0(mu, energy[:-1])


def test_nan_pixels_do_not_poison_others(fe2o3):
    energy, mu = fe2o3
    clean = np.stack([mu, 2 * mu, mu + 0.3], axis=1)
    dirty = clean.copy()
    dirty[:, 1] = np.nan  # an all-NaN pixel
    dirty[[5, 150, 300], 2] = np.nan  # a few dead points
    ref = normalize(clean, energy)
    with np.errstate(all="raise"):
        out = normalize(dirty, energy)
    assert np.isnan(out.e0[1]) and np.isnan(out.edge_step[1])
    assert np.isnan(out.norm[:, 1]).all()
    np.testing.assert_allclose(out.norm[:, 0], ref.norm[:, 0], rtol=0, atol=1e-12)  # shared-window fast path vs per-pixel path
    assert out.e0[2] == ref.e0[2]
    assert out.edge_step[2] == pytest.approx(ref.edge_step[2], rel=1e-3)
    ok = np.isfinite(out.norm[:, 2])
    assert ok.sum() == energy.size - 3
    np.testing.assert_allclose(out.norm[ok, 2], ref.norm[ok, 2], atol=2e-3)


def test_find_e0_sigma_steadies_noisy_pixels(shared_data):
    """Fe metal has two similar derivative peaks: noise flips Larch's choice."""
    energy, mu = load_two_columns(shared_data, "references/fe-k/fe_metal_rt.xdi")
    norm = normalize(mu, energy, flatten=False).norm
    noisy = norm[:, None] + np.random.default_rng(1).normal(0, 0.01, (energy.size, 200))
    spread = {s: np.ptp(np.percentile(find_e0(noisy, energy, sigma=s), [5, 95]))
              for s in (None, 2.0)}
    assert spread[2.0] <= 1.0 < spread[None]


@pytest.mark.parametrize("name", FE_K)
@pytest.mark.parametrize("sigma", [0.01, 0.03])
def test_estimate_noise_recovers_added_noise(shared_data, name, sigma):
    energy, mu = load_two_columns(shared_data, f"references/fe-k/{name}.xdi")
    ref = normalize(mu, energy)
    rng = np.random.default_rng(7)
    noisy = ref.norm[:, None] + rng.normal(0, sigma, (energy.size, 16))
    est = estimate_noise(noisy, energy, e0=ref.e0)
    assert est.shape == (16,)
    assert np.median(est) == pytest.approx(sigma, rel=0.15)
    assert np.all(np.abs(est / sigma - 1) < 0.35)  # single spectra: about +-10 % (1 sd)
    assert estimate_noise(ref.norm, energy) < 0.2 * 0.01  # the references are clean


def test_estimate_noise_on_non_uniform_grid_with_slope():
    """Linear trends cancel exactly on any grid; only the noise remains."""
    rng = np.random.default_rng(3)
    energy = np.sort(rng.uniform(6900, 7600, 400))
    base = 0.2 + 1e-3 * (energy - 6900)
    est = estimate_noise(base[:, None] + rng.normal(0, 0.02, (400, 8)), energy, e0=7112.0)
    assert np.median(est) == pytest.approx(0.02, rel=0.15)
    assert estimate_noise(base, energy, e0=7112.0) < 1e-9


def test_edge_mask_keeps_thin_grains_at_five_sigma():
    """Edge steps 0.05-2.4 (thin rims and thick grains) with noise 0.008: every grain is
    sample and no hole is, where a histogram split cut into the thin grains."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[:96, :96]
    truth = np.zeros((96, 96), bool)
    for cy, cx, r in rng.uniform([10, 10, 6], [86, 86, 18], (12, 3)):
        truth |= (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    sigma = np.full(truth.shape, 0.008)
    step = np.where(truth, np.exp(rng.uniform(np.log(0.05), np.log(2.4), truth.shape)), 0.0)
    step += rng.normal(0, 1, truth.shape) * sigma
    step[0, :3] = [np.nan, np.inf, -np.inf]
    from xafsmap.core.spectra.mask import edge_mask

    mask = edge_mask(step, sigma)
    assert mask.dtype == bool and mask.shape == truth.shape
    assert not mask[0, :3].any()
    assert (mask == truth).mean() > 0.999
    manual = edge_mask(step, sigma, threshold=-1.0)
    positive = np.isfinite(step) & (step > 0)
    assert not manual[~positive].any() and manual[positive].all()


def test_step_weights_give_the_edge_step_of_shared_windows():
    e = np.linspace(7000.0, 7400.0, 401)
    mu = np.stack([0.1 + s / (1 + np.exp(-(e - 7112.0) / 2.0)) for s in (0.3, 1.0, 2.0)], axis=1)
    result = normalize(mu, e, e0=7112.0)
    np.testing.assert_allclose(step_weights(e, 7112.0, result.params) @ mu, result.edge_step, rtol=1e-10)
