"""Fixtures shared by the core and GUI tests: seeded, small, layered."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's real measured data beside the checkout (skips where absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_sample():
    """A 48 x 64 synthetic Fe sample (real references, known fractions)."""
    from xafsmap.core.simulate.sample import make_sample

    return make_sample((48, 64), n_grains=14, unexplained_grains=1, rng=3)


@pytest.fixture(scope="session")
def small_sample_file(tmp_path_factory, small_sample) -> Path:
    """The small sample written as a multi-page TIFF with its energies sidecar."""
    from xafsmap.core.io.tiff import write_stack

    folder = tmp_path_factory.mktemp("sample")
    return write_stack(folder / "sample.tif", small_sample.stack, small_sample.energies)


@pytest.fixture(scope="session")
def shifted(tmp_path_factory, small_sample):
    """The small sample and an Fe foil (the bundled real spectrum), both measured with the
    same smooth energy-shift field (true energy = nominal + truth), written as TIFFs."""
    import numpy as np

    from xafsmap.core.prepare.resample import apply_shift
    from xafsmap.core.io.tiff import write_stack
    from xafsmap.core.spectra.normalize import normalize
    from xafsmap.core.model.standards import resample_reference
    from xafsmap.core.simulate.sample import bundled_references

    folder = tmp_path_factory.mktemp("shifted")
    rows, cols = small_sample.stack.shape[1:]
    yy, xx = np.mgrid[0:rows, 0:cols]
    truth = (-1.5 + 3.0 * xx / (cols - 1) + 0.5 * (yy / (rows - 1)) ** 2).astype(np.float32)
    foil = bundled_references(("Fe",))[0]
    energies = small_sample.energies
    mu = resample_reference(foil, energies, mu=normalize(foil.mu, foil.energies).norm)
    flat = (0.3 + mu[:, None, None] * np.ones((1, rows, cols))).astype(np.float32)
    foil_stack = apply_shift(flat, energies, -truth)  # measured(E) = true(E + shift)
    foil_stack = foil_stack + 0.005 * np.random.default_rng(0).standard_normal(foil_stack.shape).astype(np.float32)
    sample = apply_shift(small_sample.stack, energies, -truth)
    return {"truth": truth, "foil": write_stack(folder / "foil.tif", np.nan_to_num(foil_stack, nan=0.3), energies),
            "sample": write_stack(folder / "sample.tif", sample, energies)}
