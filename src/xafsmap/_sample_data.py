"""napari sample: a synthetic Fe K-edge stack built from real reference spectra."""

from __future__ import annotations

from .core.simulate.sample import bundled_reference_paths, make_sample


def make_fe_sample():
    """The sample measurement as an image layer, with energies and references in metadata."""
    sample = make_sample()
    paths = bundled_reference_paths()
    plane = sample.stack[-1]
    metadata = {
        "energies": sample.energies,
        "references": [str(paths[ref.name]) for ref in sample.references],
        "xafsmap": "stack",
    }
    limits = [float(v) for v in (plane[plane == plane].min(), plane[plane == plane].max())]
    return [(sample.stack, {"name": "Fe sample", "metadata": metadata, "contrast_limits": limits}, "image")]
