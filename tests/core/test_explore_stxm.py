"""Exploring the real STXM Fe L stack: its clusters are the Fe(III) and Fe(II) references, mixed."""

from __future__ import annotations

import numpy as np
import pytest

from xafsmap.core.explore import explore_stack
from xafsmap.core.io.stack import read_stack
from xafsmap.core.io.references import read_reference


@pytest.fixture(scope="module")
def stxm(shared_data):
    folder = shared_data / "stxm-fe-l" / "71214078"
    if not (folder / "71214078.hdr").is_file():
        pytest.skip(f"STXM stack {folder} is absent")
    stack = read_stack(folder / "71214078.hdr", i0=folder / "i0.xsp")
    references = [read_reference(folder / name) for name in ("oxidized.r", "reduced.r")]
    return stack, references


def l3_fit(spectrum, energies, references):
    """Least squares of a spectrum over the L3 edge (704-714 eV) by the two references' raw
    optical density plus a constant: R**2 and the Fe(II) share of the two amounts."""
    window = (energies >= 704.0) & (energies <= 714.0)
    design = np.stack([np.interp(energies, r.energies, r.mu)[window] for r in references] + [np.ones(window.sum())], 1)
    coef = np.linalg.lstsq(design, spectrum[window], rcond=None)[0]
    residual = spectrum[window] - design @ coef
    r2 = 1 - residual @ residual / np.sum((spectrum[window] - spectrum[window].mean()) ** 2)
    return r2, coef[1] / (coef[0] + coef[1])


def test_stxm_clusters_are_mixtures_of_the_oxidized_and_reduced_references(stxm):
    stack, references = stxm
    result = explore_stack(stack, nmf=2)
    energies = stack.energies
    assert result.mask.shape == (125, 125) and 1000 < np.count_nonzero(result.mask == 1) < 3000
    fits = [l3_fit(s, energies, references) for s, n in zip(result.cluster_spectra, result.cluster_pixels) if n >= 50]
    assert len(fits) >= 2
    r2, ferrous = np.array(fits).T
    assert np.all(r2 > 0.85) and np.median(r2) > 0.95  # every large cluster is explained by the two references
    assert ferrous.min() < 0.1 and ferrous.max() > 0.5  # Fe(III)-rich and Fe(II)-rich clusters
    # the Fe(II)-rich cluster looks more like the reduced reference than the oxidized one
    window = (energies >= 704.0) & (energies <= 714.0)
    ox, red = (np.interp(energies, r.energies, r.mu)[window] for r in references)
    richest = result.cluster_spectra[np.flatnonzero(result.cluster_pixels >= 50)[np.argmax(ferrous)]][window]
    assert np.corrcoef(richest, red)[0, 1] > np.corrcoef(richest, ox)[0, 1] > 0.8
    # the NMF spectrum of the Fe(III) part is the oxidized reference's shape
    assert max(np.corrcoef(h[window], ox)[0, 1] for h in result.learned.unmixing.spectra) > 0.98
