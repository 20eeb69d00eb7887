"""read_pixel_spectrum returns exactly what the lazy stack holds, reading only E values."""

from __future__ import annotations

import numpy as np
import pytest

from xafsmap.core.io.pixel import _raw_file, read_pixel_spectrum
from xafsmap.core.io.stack import Stack, read_stack


@pytest.fixture(scope="module")
def stack(small_sample_file):
    return read_stack(small_sample_file)


@pytest.mark.parametrize(("row", "col"), [(0, 0), (47, 63), (20, 31), (-1, -2)])
def test_equals_the_lazy_stack(stack, row, col):
    assert _raw_file(stack) is not None  # the direct path is the one tested
    got = read_pixel_spectrum(stack, row, col)
    assert got.dtype == np.float32 and got.shape == (stack.energies.size,)
    assert np.array_equal(got, stack.data[:, row, col].compute(), equal_nan=True)


def test_dead_pixel_keeps_its_nan(stack, small_sample):
    rows, cols = np.nonzero(small_sample.dead)
    got = read_pixel_spectrum(stack, int(rows[0]), int(cols[0]))
    assert np.isnan(got).sum() == 1


def test_derived_stacks_go_through_dask(stack):
    counts = read_stack(stack.sources["stack"], flat=np.full(stack.data.shape[1:], 2.0, np.float32))
    cropped = Stack(data=stack.data[:, 5:], energies=stack.energies, sources=stack.sources)
    for derived, (row, col) in [(counts, (3, 4)), (cropped, (3, 4))]:
        assert _raw_file(derived) is None
        assert np.array_equal(read_pixel_spectrum(derived, row, col), derived.data[:, row, col].compute(), equal_nan=True)


@pytest.mark.parametrize(("row", "col"), [(48, 0), (0, 64), (-49, 0)])
def test_outside_the_image(stack, row, col):
    with pytest.raises(IndexError, match=r"outside the 48 x 64 image"):
        read_pixel_spectrum(stack, row, col)
