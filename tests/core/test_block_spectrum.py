"""One block's spectrum (the Inspect dock's) equals the prepared stack's pixel: drift, calibration, binning."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # corner pixels whose sources leave the image
@pytest.mark.parametrize(("rows", "cols"), [(slice(20, 21), slice(30, 31)), (slice(0, 2), slice(62, 64))])
def test_drift_corrected_spectrum_equals_the_prepared_stack(small_sample_file, rows, cols):
    from xafsmap.core.spectra.block import block_spectrum
    from xafsmap.core.io.stack import read_stack
    from xafsmap.core.prepare.steps import prepare_stack

    stack = read_stack(small_sample_file)
    e = stack.energies.size
    drift = np.stack([np.linspace(-1.7, 2.3, e), np.linspace(0.9, -1.4, e)], axis=1)  # px, fractional
    prepared, _ = prepare_stack(stack, drift=drift)
    want = np.nanmean(np.asarray(prepared.data[:, rows, cols]).reshape(e, -1), axis=1)
    got = block_spectrum(stack, rows, cols, drift=drift).mu
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.allclose(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)
    raw = np.nanmean(np.asarray(stack.data[:, rows, cols]).reshape(e, -1), axis=1)
    assert np.nanmax(np.abs(raw - want)) > 1e-3  # the drift matters at this pixel


def test_calibrated_and_binned_block_equals_the_prepared_stack(small_sample_file):
    from xafsmap.core.io.stack import read_stack
    from xafsmap.core.prepare.grid import pixel_block
    from xafsmap.core.prepare.steps import prepare_stack
    from xafsmap.core.spectra.block import block_spectrum

    stack = read_stack(small_sample_file)
    _, rows, cols = stack.data.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    shift = (-1.0 + 2.0 * xx / cols + 0.3 * yy / rows).astype(np.float32)
    roi, factor = (4, 44, 2, 62), 2
    prepared, _ = prepare_stack(stack, shift=shift, roi=roi, factor=factor)
    for row, col in ((3, 5), (10, 20)):
        block = pixel_block(row, col, roi, factor)
        got = block_spectrum(stack, *block, shift=shift)
        want = np.asarray(prepared.data[:, row, col])
        np.testing.assert_array_equal(got.energies, prepared.energies)
        # the block's mean shift against each pixel's own shift, then averaged: close for a smooth field
        assert np.allclose(got.mu, want, atol=2e-3)
        assert got.norm is not None and abs(float(got.norm[-1]) - 1) < 0.2


def test_a_non_finite_block_has_no_normalized_spectrum():
    import dask.array as da

    from xafsmap.core.io.stack import Stack
    from xafsmap.core.spectra.block import block_spectrum

    data = np.ones((20, 3, 3), np.float32)
    data[5, 1, 1] = np.nan
    found = block_spectrum(Stack(da.from_array(data), np.linspace(7100, 7200, 20), {}), slice(1, 2), slice(1, 2))
    assert found.norm is None and np.isnan(found.mu[5])
