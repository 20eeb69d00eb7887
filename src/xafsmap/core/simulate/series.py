"""A synthetic series with a known answer: an iron oxide reduced step by step.

Each step is a :func:`~xafsmap.core.simulate.sample.make_sample` whose grains hold only
that step's phases (pure grains and 25/50/75 % mixtures of them): hematite, then
hematite with magnetite, magnetite, magnetite with wüstite, wüstite — the reduction
Fe2O3 → Fe3O4 → FeO of a sinter. Every step has its own grains, thickness and noise
(its own seed) on the same energies; :func:`series_truth` is the mean fraction of each
phase over a step's sample pixels, what ``series.csv`` should report.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .sample import Sample, bundled_reference_paths, make_sample

__all__ = ["REDUCTION", "SERIES_REFERENCES", "make_reduction_series", "reference_files", "series_truth",
           "write_reduction_series"]

#: The phases of each step of the reduction.
REDUCTION = (("Fe2O3",), ("Fe2O3", "Fe3O4"), ("Fe3O4",), ("Fe3O4", "FeO"), ("FeO",))
#: The references a series is mapped with, in the order of the fraction maps.
SERIES_REFERENCES = ("Fe2O3", "Fe3O4", "FeO")


def make_reduction_series(shape: tuple[int, int] = (120, 160), *, steps: int = len(REDUCTION), noise: float = 0.02,
                          rng: int = 0) -> list[Sample]:
    """The stacks of a reduction series (see the module docstring).

    Parameters
    ----------
    shape : (int, int)
        Rows and columns of every stack.
    steps : int
        How many of the :data:`REDUCTION` steps, from the first (at most 5).
    noise : float
        Gaussian noise of the absorbance at every energy.
    rng : int
        Seed of the first step; step ``i`` uses ``rng + i``.

    Returns
    -------
    list of Sample

    Examples
    --------
    >>> series = make_reduction_series((20, 24), steps=2)
    >>> [s.phases for s in series]
    [('Fe2O3',), ('Fe2O3', 'Fe3O4')]
    """
    if not 1 <= steps <= len(REDUCTION):
        raise ValueError(f"steps = {steps}: the reduction has 1 to {len(REDUCTION)} steps")
    return [make_sample(shape, phases=phases, references=phases, unexplained_grains=0, n_dead=0, noise=noise,
                        n_grains=max(6, shape[0] * shape[1] // 600), rng=int(rng) + i)
            for i, phases in enumerate(REDUCTION[:steps])]


def series_truth(sample: Sample, mask: np.ndarray | None = None) -> dict[str, float]:
    """Mean fraction of each of :data:`SERIES_REFERENCES` over the sample pixels of one step.

    Parameters
    ----------
    sample : Sample
    mask : ndarray of bool, shape (M, N), optional
        The pixels to average over (a map's sample pixels); default where the truth
        holds sample.

    >>> truth = series_truth(make_reduction_series((20, 24), steps=1)[0])
    >>> truth == {"Fe2O3": 1.0, "Fe3O4": 0.0, "FeO": 0.0}
    True
    """
    mask = sample.fractions.sum(axis=0) > 0 if mask is None else np.asarray(mask, bool)
    found = {}
    for name in SERIES_REFERENCES:
        if name in sample.phases:
            found[name] = float(np.mean(sample.fractions[sample.phases.index(name)][mask]))
        else:
            found[name] = 0.0
    return found


def write_reduction_series(folder: str | os.PathLike, samples: list[Sample]) -> Path:
    """Write the stacks (``step_1.tif`` ...) and their list ``series.csv`` (path, step, reduction_h).

    Returns
    -------
    Path
        The list, for ``xafsmap series --list``.
    """
    from ..io.tiff import write_stack

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["path,step,reduction_h"]
    for i, sample in enumerate(samples, start=1):
        write_stack(folder / f"step_{i}.tif", sample.stack, sample.energies)
        lines.append(f"step_{i}.tif,{i},{(i - 1) * 0.5:g}")
    (folder / "series.csv").write_text("\n".join(lines) + "\n")
    return folder / "series.csv"


def reference_files() -> list[Path]:
    """The bundled files of :data:`SERIES_REFERENCES`, in order."""
    paths = bundled_reference_paths()
    return [paths[name] for name in SERIES_REFERENCES]
