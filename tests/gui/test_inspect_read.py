"""The Inspect dock's spectrum read equals the prepared stack's pixel (drift, binning)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # corner pixels whose sources leave the image
@pytest.mark.parametrize(("rows", "cols"), [(slice(20, 21), slice(30, 31)), (slice(0, 2), slice(62, 64))])
def test_drift_corrected_spectrum_equals_the_prepared_stack(small_sample_file, rows, cols):
    from xafsmap._widgets.inspect import read_spectrum
    from xafsmap.core.io.stack import read_stack
    from xafsmap.core.prepare.steps import prepare_stack

    stack = read_stack(small_sample_file)
    e = stack.energies.size
    drift = np.stack([np.linspace(-1.7, 2.3, e), np.linspace(0.9, -1.4, e)], axis=1)  # px, fractional
    prepared, _ = prepare_stack(stack, drift=drift)
    want = np.nanmean(np.asarray(prepared.data[:, rows, cols]).reshape(e, -1), axis=1)
    _, got, _ = read_spectrum(stack, stack.energies, rows, cols, {}, drift=drift)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.allclose(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)
    raw = np.nanmean(np.asarray(stack.data[:, rows, cols]).reshape(e, -1), axis=1)
    assert np.nanmax(np.abs(raw - want)) > 1e-3  # the drift matters at this pixel
