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
    from xafsmap.core.sample import make_sample

    return make_sample((48, 64), n_grains=14, unexplained_grains=1, rng=3)


@pytest.fixture(scope="session")
def small_sample_file(tmp_path_factory, small_sample) -> Path:
    """The small sample written as a multi-page TIFF with its energies sidecar."""
    from xafsmap.core.io import write_stack

    folder = tmp_path_factory.mktemp("sample")
    return write_stack(folder / "sample.tif", small_sample.stack, small_sample.energies)
