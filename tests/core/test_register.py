"""Known-answer tests of the drift measurement and correction across energies."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from xafsmap.core.io import tiff
from xafsmap.core.io.stack import read_stack
from xafsmap.core.io.tiff import write_stack
from xafsmap.core.prepare.drift import correct_drift, drift_report
from xafsmap.core.prepare.register import measure_drift

E, M, N, PAD = 40, 72, 72, 20
ENERGIES = np.linspace(7090.0, 7160.0, E)


def _edge(e: np.ndarray, e0: float) -> np.ndarray:
    return np.arctan((e - e0) / 1.5) / np.pi + 0.5


@pytest.fixture(scope="module")
def scan():
    """A textured two-phase sample whose contrast changes (and inverts) across two edges,
    drifting by a sub-pixel random walk of a few pixels, with noise.

    Returns (stack as measured, the same scene without drift, true drift).
    """
    rng = np.random.default_rng(1)
    size = M + 2 * PAD
    phase = ndimage.gaussian_filter(rng.normal(size=(size, size)), 4) > 0
    thickness = 1.0 + 5.0 * ndimage.gaussian_filter(rng.normal(size=(size, size)), 2)
    matrix = ndimage.gaussian_filter(rng.random((size, size)), 1.5)
    # phase A's edge at 7112 eV, phase B's (larger) at 7130 eV: A brighter between, B above
    mu_a, mu_b = _edge(ENERGIES, 7112.0), 1.8 * _edge(ENERGIES, 7130.0)
    steps = rng.normal(0.0, 0.6, (E, 2))
    steps[0] = 0.0
    true = np.cumsum(steps, axis=0)
    inside = np.s_[PAD : PAD + M, PAD : PAD + N]
    still, moved = [], []
    for i in range(E):
        od = thickness * (0.3 + np.where(phase, mu_a[i], mu_b[i])) + 0.3 * matrix
        still.append(od[inside])
        moved.append(ndimage.shift(od, true[i], order=3, mode="nearest")[inside])
    stack = np.array(moved) + rng.normal(0.0, 0.02, (E, M, N))
    return stack.astype(np.float32), np.array(still, np.float32), true


def _rms(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(err**2, axis=1))))


def test_measure_drift_recovers_random_walk(scan):
    stack, _, true = scan
    assert np.ptp(true, axis=0).max() > 3  # a few pixels of drift
    drift = measure_drift(stack, ENERGIES)
    assert drift.shape == (E, 2)
    # relative to image 0 on both sides: the default reference is some image above the edge
    rms = _rms((drift - drift[0]) - (true - true[0]))
    assert rms <= 0.1  # reached 0.033 px (max 0.054 px)


def test_measure_drift_against_chosen_reference(scan):
    stack, _, true = scan
    drift = measure_drift(stack, ENERGIES, reference_index=0)
    np.testing.assert_array_equal(drift[0], [0.0, 0.0])
    assert _rms(drift - true) <= 0.1  # reached 0.033 px
    whole = measure_drift(stack, ENERGIES, reference_index=0, upsample=1)
    assert np.all(whole == np.round(whole))  # upsample=1: whole pixels
    assert np.abs(whole - true).max() <= 1.0


def test_default_reference_is_above_the_edge(scan):
    stack, _, _ = scan
    drift = measure_drift(stack, ENERGIES)
    zero = np.flatnonzero(np.all(drift == 0.0, axis=1))
    assert zero.size >= 1 and ENERGIES[zero[0]] > 7112.0


def test_correct_drift_realigns(scan):
    stack, still, true = scan
    corrected = correct_drift(stack, measure_drift(stack, ENERGIES, reference_index=0))
    assert corrected.dtype == np.float32 and corrected.shape == stack.shape
    inner = np.s_[:, 8:-8, 8:-8]
    before = np.sqrt(np.mean((stack[inner] - still[inner]) ** 2))
    after = np.sqrt(np.mean((corrected[inner] - still[inner]) ** 2))
    assert after < 0.15 * before  # reached 0.057 vs 0.58
    # the image that drifted most upwards (-4.8 rows) is moved down: NaN where nothing maps
    i = int(np.argmin(true[:, 0]))
    assert true[i, 0] < -4 and np.isnan(corrected[i, :4]).all()
    assert np.isfinite(corrected[i, 6:, 3:-3]).all()
    residual = measure_drift(corrected[:, 6:-6, 6:-6], ENERGIES, reference_index=0)
    assert np.abs(residual).max() < 0.2


def test_dask_equals_numpy(scan):
    stack, _, _ = scan
    lazy = da.from_array(stack, chunks=(10, 36, 72))
    drift = measure_drift(stack, ENERGIES, reference_index=3)
    np.testing.assert_allclose(measure_drift(lazy, ENERGIES, reference_index=3), drift, atol=1e-9)
    out = correct_drift(lazy, drift)
    assert isinstance(out, da.Array) and out.chunks == lazy.chunks and out.dtype == np.float32
    np.testing.assert_array_equal(out.compute(), correct_drift(stack, drift))


def _scipy_correct(stack: np.ndarray, drift: np.ndarray) -> np.ndarray:
    """The previous implementation: scipy's bilinear shift of each whole image."""
    dtype = np.result_type(stack.dtype, np.float32)
    return np.stack([
        ndimage.shift(np.asarray(img, dtype), -d, order=1, mode="constant", cval=np.nan, prefilter=False)
        for img, d in zip(stack, drift)
    ])


DRIFTS = {
    "fractional": [[0.3, -0.7], [-1.45, 2.2], [0.0, 0.0], [2.9, -0.05]],
    "integer": [[1.0, -2.0], [-3.0, 0.0], [0.0, 0.0], [2.0, 3.0]],
    "tiny": [[1e-9, -1e-12], [-1e-9, 0.999999], [4.0 - 1e-13, -4.0 + 1e-13], [0.5, -0.5]],
}


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.float64])
@pytest.mark.parametrize("kind", list(DRIFTS))
def test_correct_drift_equals_scipy_whole_image_shift(kind, dtype):
    """Bit-identical to the previous per-image scipy shift, NaN included, numpy and dask."""
    rng = np.random.default_rng(3)
    stack = (rng.random((4, 23, 17)) * 1000).astype(dtype)
    if stack.dtype.kind == "f":
        stack[rng.random(stack.shape) < 0.05] = np.nan
    drift = np.array(DRIFTS[kind])
    expected = _scipy_correct(stack, drift)
    out = correct_drift(stack, drift)
    assert out.dtype == expected.dtype == np.result_type(dtype, np.float32)
    np.testing.assert_array_equal(out, expected)
    assert np.isnan(out).any() and np.isfinite(out).any()
    # uneven chunks, some thinner than the margin, columns split too
    for chunks in [(4, 23, 17), (3, (5, 1, 2, 9, 6), (8, 9)), (1, 1, 17), (2, 7, 1)]:
        lazy = correct_drift(da.from_array(stack, chunks=chunks), drift)
        assert lazy.chunks == da.from_array(stack, chunks=chunks).chunks and lazy.dtype == expected.dtype
        np.testing.assert_array_equal(lazy.compute(), expected)


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
def test_compiled_and_numpy_loops_equal_scipy_on_wide_images(compiled, monkeypatch):
    """The compiled loop's consecutive-column stretch (negative and positive offsets, a
    block that starts inside the image) and the numpy fallback give scipy's bits."""
    from xafsmap.core.prepare import drift as drift_module

    if not compiled:
        monkeypatch.setattr(drift_module, "_compiled_shift", lambda: None)
    elif drift_module._compiled_shift() is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(8)
    stack = rng.random((6, 30, 300)).astype(np.float32)
    stack[rng.random(stack.shape) < 0.01] = np.nan
    drift = np.array([[2.7, -3.4], [-5.5, 6.25], [0.0, 0.0], [1e-13, -1e-13], [-0.5, 299.5], [3.0, -7.0]])
    expected = _scipy_correct(stack, drift)
    np.testing.assert_array_equal(correct_drift(stack, drift), expected)
    lazy = correct_drift(da.from_array(stack, chunks=(4, 7, (120, 100, 80))), drift)
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_nan_spreads_to_neighbours_only():
    image = np.ones((1, 12, 12), np.float32)
    image[0, 6, 6] = np.nan
    out = correct_drift(image, np.array([[0.4, -0.3]]))[0]
    inside = np.isfinite(out[:-1, 1:])  # the last row and first column have no source
    assert (~inside).sum() == 4 and np.isnan(out[5:7, 6:8]).all()


def test_lazy_correction_is_deterministic_for_the_cluster_check():
    lazy = da.from_array(np.zeros((3, 10, 10), np.float32), chunks=(3, 4, 10))
    drift = np.array([[0.5, 0.0], [0.0, -1.5], [1.0, 1.0]])
    assert correct_drift(lazy, drift).name == correct_drift(lazy, drift.copy()).name
    assert correct_drift(lazy, drift).name != correct_drift(lazy, drift + 0.1).name


def _bytes_read() -> int:
    for line in open("/proc/self/io"):
        if line.startswith("rchar"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_band_of_a_drift_corrected_file_reads_only_its_rows(tmp_path, monkeypatch):
    """A band of rows reads its rows plus the drift margin, not the stack; a subgrid its rows'."""
    if not Path("/proc/self/io").exists():
        pytest.skip("counting the bytes a process reads needs Linux /proc/self/io")
    e, m, n = 12, 160, 50
    rng = np.random.default_rng(5)
    path = write_stack(tmp_path / "stack.tif", rng.random((e, m, n)).astype(np.float32),
                       np.linspace(7100.0, 7200.0, e))
    # the reader's row bands (96 MB in use): 16 rows here, so the file has 10 of them
    monkeypatch.setattr(tiff, "BAND_BYTES", e * 16 * n * 4)
    stack = read_stack(path)
    assert stack.data.chunks[1] == (16,) * 10
    drift = np.column_stack([np.linspace(-2.6, 2.6, e), np.linspace(1.2, -0.4, e)])  # margin 4 rows
    corrected = correct_drift(stack.data, drift)
    assert corrected.chunks == stack.data.chunks
    whole = correct_drift(np.asarray(stack.data), drift)
    row_bytes = e * n * 4
    for r0, r1 in [(64, 80), (70, 75), (0, 16), (150, 160)]:
        before = _bytes_read()
        band = corrected[:, r0:r1].compute(scheduler="synchronous")
        read = _bytes_read() - before
        np.testing.assert_array_equal(band, whole[:, r0:r1])
        need = (min(m, r1 + 4) - max(0, r0 - 4)) * row_bytes  # the band's rows and the margin
        assert need <= read <= need + 64 * 1024, (r0, r1, read, need)
        assert read < 0.2 * m * row_bytes  # the first implementation read the whole stack
    # a sparse subgrid (the survey's) reads each asked row's margin, not the bands around them
    before = _bytes_read()
    grid = corrected[:, 5::36, 1::2].compute(scheduler="synchronous")
    read = _bytes_read() - before
    np.testing.assert_array_equal(grid, whole[:, 5::36, 1::2])
    need = sum(min(m, r + 5) - max(0, r - 4) for r in range(5, m, 36)) * row_bytes
    assert need <= read <= need + 64 * 1024, (read, need)  # 5 x 9 rows; it was the whole stack


def test_correct_drift_integer_shift_known_answer():
    img = np.arange(30, dtype=np.uint16).reshape(1, 5, 6)
    out = correct_drift(img, np.array([[1.0, -2.0]]))
    assert out.dtype == np.float32
    # image = reference moved by (+1, -2): reference(y, x) = image(y + 1, x - 2)
    np.testing.assert_array_equal(out[0, :4, 2:], img[0, 1:, :4])
    assert np.isnan(out[0, 4]).all() and np.isnan(out[0, :, :2]).all()


def test_drift_report():
    report = drift_report(np.array([[0.0, 0.0], [3.0, -4.0], [0.0, 1.0]]))
    assert report["max"] == 5.0 and report["max_dy"] == 3.0 and report["max_dx"] == 4.0
    assert report["rms"] == pytest.approx(np.sqrt(26.0 / 3.0))
    assert report["n_images"] == 3


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: measure_drift(s[0], ENERGIES), r"3-D \(E, M, N\)"),
        (lambda s: measure_drift(s, ENERGIES[:-1]), r"stack has 40 energies but energies has shape \(39,\)"),
        (lambda s: measure_drift(s, ENERGIES, reference_index=40), "reference_index 40 is outside the stack's 40 energies"),
        (lambda s: measure_drift(s, ENERGIES, upsample=0), "upsample must be a positive integer"),
        (lambda s: measure_drift(s, ENERGIES, max_size=8), "max_size must be an integer of at least 16 px"),
        (lambda s: correct_drift(s, np.zeros((39, 2))), r"drift has shape \(39, 2\) but the stack has 40 energies"),
        (lambda s: correct_drift(s, np.full((40, 2), np.nan)), "drift has 80 non-finite values"),
        (lambda s: drift_report(np.zeros(3)), r"drift must have shape \(E, 2\)"),
    ],
    ids=["not 3-D", "energies length", "reference index", "upsample", "max_size", "drift shape", "drift NaN",
         "report shape"],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.zeros((E, 8, 8), np.float32))


def test_featureless_images_get_their_neighbours_drift_not_a_wild_one():
    """A flat image has nothing to lock on to: a huge 'drift' must not be applied."""
    rng = np.random.default_rng(0)
    scene = ndimage.gaussian_filter(rng.random((64, 64)), 2)
    flat = np.full((64, 64), 0.3) + 1e-6 * rng.random((64, 64))
    moved = [ndimage.shift(scene, (d, 0.0), order=3, mode="wrap") for d in (0.0, 1.0, 2.0, 3.0)]
    stack = np.stack([moved[0], moved[1], flat, moved[3]])
    drift = measure_drift(stack, np.array([7100.0, 7150.0, 7200.0, 7250.0]), reference_index=0)
    np.testing.assert_allclose(drift[:, 0], [0, 1, 2, 3], atol=0.15)
    with pytest.raises(ValueError, match="too little structure"):
        measure_drift(np.stack([scene, flat, flat, flat]), np.arange(4.0) + 7100, reference_index=0)


# --- large images: registration on a region -------------------------------------------

BIG_DRIFT = np.array([[0.0, 0.0], [0.3, -0.7], [-1.45, 2.2], [2.9, -0.05], [-4.6, -3.35], [5.25, 4.8],
                      [-0.5, 0.5], [3.7, -5.9]])


@pytest.fixture(scope="module")
def big():
    """320 x 320 images of a two-phase textured scene whose contrast inverts, moved by
    BIG_DRIFT (sub-pixel, both signs, up to ~6 px), with noise; larger than the regions below."""
    rng = np.random.default_rng(7)
    size, pad = 320, 20
    phase = ndimage.gaussian_filter(rng.normal(size=(size + 2 * pad,) * 2), 5) > 0
    texture = ndimage.gaussian_filter(rng.random((size + 2 * pad,) * 2), 1.5)
    images = []
    for i, d in enumerate(BIG_DRIFT):
        od = 0.5 + (1.0, -0.6, 0.8, 1.3)[i % 4] * phase + 0.5 * texture
        images.append(ndimage.shift(od, d, order=3, mode="nearest")[pad:-pad, pad:-pad])
    return (np.array(images) + rng.normal(0.0, 0.03, (len(BIG_DRIFT), size, size))).astype(np.float32)


BIG_ENERGIES = np.linspace(7100.0, 7200.0, len(BIG_DRIFT))


def test_region_recovers_known_drifts_as_the_whole_image_did(big):
    """Registered on a 160 px region of 320 px images: sub-pixel, both signs, up to 6 px."""
    whole = measure_drift(big, BIG_ENERGIES, reference_index=0, max_size=None)
    region = measure_drift(big, BIG_ENERGIES, reference_index=0, max_size=160)
    # the previous (whole-image only) implementation reached 0.0037 px RMS (max 0.0073)
    # on these images; whole images now 0.0052 (max 0.0081), the 160 px region 0.0081 (max 0.0128)
    for drift, rms, worst in ((whole, 0.01, 0.015), (region, 0.02, 0.03)):
        error = np.hypot(*(drift - BIG_DRIFT).T)
        assert np.sqrt(np.mean(error**2)) <= rms and error.max() <= worst, error
    # against another reference: the same drifts relative to it
    other = measure_drift(big, BIG_ENERGIES, reference_index=4, max_size=160)
    np.testing.assert_array_equal(other[4], [0.0, 0.0])
    assert np.abs((other - BIG_DRIFT) - (other[0] - BIG_DRIFT[0])).max() <= 0.05


def test_region_with_nan_and_default_reference(big):
    stack = big.copy()
    rng = np.random.default_rng(2)
    stack[rng.random(stack.shape) < 0.002] = np.nan  # dead pixels everywhere, in the region too
    stack[3, 100:130, 140:180] = np.nan  # and a blank patch
    drift = measure_drift(stack, BIG_ENERGIES, max_size=160)
    reference = int(np.flatnonzero(np.all(drift == 0.0, axis=1))[0])
    error = np.hypot(*((drift - drift[reference]) - (BIG_DRIFT - BIG_DRIFT[reference])).T)
    assert error.max() <= 0.1, error


class _Pages:
    """An array-like stack for ``dask.array.from_array`` that records what is read from it."""

    def __init__(self, data: np.ndarray):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads: list[tuple] = []

    def __getitem__(self, key):
        box = tuple(range(*k.indices(n)) if isinstance(k, slice) else range(k, k + 1)
                    for k, n in zip(key, self.shape))
        if all(len(r) for r in box):  # not dask's empty probe for the meta
            self.reads.append(box)
        return self.data[key]


@pytest.mark.parametrize("chunks", [(1, 320, 320), (8, 40, 320)], ids=["pages", "row bands of every energy"])
@pytest.mark.parametrize("direct", [True, False], ids=["from its source", "through dask"])
def test_lazy_stack_is_read_one_image_region_at_a_time(big, chunks, direct):
    """Memory stays bounded: never more than one image at a time, the region plus its margin
    except the one reference image read whole to place the region; energies in order.
    A stack that is only ``from_array``'s chunks is read from its source, one call per
    two images whatever the chunks; any other dask stack through its chunks' tasks."""
    source = _Pages(big)
    # inline_array: the source inside every chunk's task, which hides it from measure_drift
    lazy = da.from_array(source, chunks=chunks, name=False, inline_array=not direct)
    drift = measure_drift(lazy, BIG_ENERGIES, reference_index=2, max_size=160)
    if direct:  # the reference whole, then a region of two images per read
        assert len(source.reads) == 1 + len(BIG_DRIFT) // 2
    np.testing.assert_allclose(drift, measure_drift(big, BIG_ENERGIES, reference_index=2, max_size=160), atol=1e-9)
    assert source.reads and all(len(box[0]) <= 2 for box in source.reads)  # at most two energies per read
    # the energies in the order they were read: first the reference, whole, to place the
    # region; then every image's region in energy order, two images per compute (whose
    # chunks dask reads in any order)
    sizes = np.cumsum([len(b[1]) * len(b[2]) for b in source.reads])
    first = int(np.searchsorted(sizes, 320 * 320)) + 1
    assert sizes[first - 1] == 320 * 320 and {e for b in source.reads[:first] for e in b[0]} == {2}
    energies = [e for box in source.reads[first:] for e in box[0]]
    pairs = [e // 2 for e in energies]
    assert pairs == sorted(pairs) and set(energies) == set(range(len(BIG_DRIFT)))
    pixels = sum(len(b[1]) * len(b[2]) for b in source.reads)
    assert pixels <= 320 * 320 + len(BIG_DRIFT) * (160 + 2 * 16) * 320  # row bands: whole rows


def test_noise_only_images_get_their_neighbours_drift(big):
    """A pre-edge image that is only noise correlates with the reference at a random
    place, often within the plausible drift: its low peak marks it, not its size."""
    rng = np.random.default_rng(11)
    images, true = [], []
    for i in range(24):
        k = i % len(BIG_DRIFT)
        noise_only = i % 3 == 1
        images.append(rng.normal(0.5, 0.03, big.shape[1:]).astype(np.float32) if noise_only else big[k])
        true.append(BIG_DRIFT[k])
    stack, true = np.array(images), np.array(true)
    drift = measure_drift(stack, np.linspace(7000.0, 7300.0, 24), reference_index=0)
    structured = np.arange(24) % 3 != 1
    assert np.abs(drift[structured] - true[structured]).max() <= 0.05
    # the noise images lie between structured ones: exactly their neighbours' interpolation
    for axis in range(2):
        expected = np.interp(np.flatnonzero(~structured), np.flatnonzero(structured), drift[structured, axis])
        np.testing.assert_array_equal(drift[~structured, axis], expected)


def test_compiled_feature_gives_scipy_bits(monkeypatch):
    """The compiled smoothing and gradient (no GIL) give the scipy version's feature bit for bit."""
    from xafsmap.core.prepare import register

    if register._compiled_feature() is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(2)
    for shape in [(40, 33), (7, 120), (5, 5)]:
        image = (ndimage.gaussian_filter(rng.random(shape), 1.5) * 300).astype(np.float32)
        compiled = register._feature(image)
        monkeypatch.setattr(register, "_compiled_feature", lambda: None)
        np.testing.assert_array_equal(compiled, register._feature(image))
        monkeypatch.undo()


def test_file_stack_is_read_from_its_source_and_a_computed_one_through_dask(tmp_path):
    """measure_drift and the lazy correction read a file's pixels from its reader in one
    call per part; a stack computed from it (here scaled) has no such source, and both
    ways give the same drift and the same corrected pixels."""
    from xafsmap.core._arrays import array_source

    rng = np.random.default_rng(3)
    scene = ndimage.gaussian_filter(rng.random((96, 80)), 2).astype(np.float32)
    truth = np.array([[0.0, 0.0], [0.7, -1.3], [-2.2, 0.4], [1.6, 2.5]])
    images = np.stack([ndimage.shift(scene, d, order=3, mode="nearest") for d in truth]).astype(np.float32)
    stack = read_stack(write_stack(tmp_path / "s.tif", images, np.linspace(7100.0, 7200.0, 4)))
    computed = stack.data * np.float32(1.0)
    assert array_source(stack.data) is not None
    assert array_source(computed) is None and array_source(images) is None
    assert array_source(da.from_array(images)) is None  # numpy inside the graph: nothing to read
    drift = measure_drift(stack.data, stack.energies, reference_index=0)
    np.testing.assert_array_equal(drift, measure_drift(computed, stack.energies, reference_index=0))
    assert np.abs(drift - truth).max() <= 0.1
    np.testing.assert_array_equal(correct_drift(stack.data, drift).compute(),
                                  correct_drift(computed, drift).compute())
