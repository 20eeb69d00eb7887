"""Trust in a map: the two assessment jobs of the command line, writing their files.

* :func:`search_references` — flag the pixels the references do not explain
  (:mod:`~xafsmap.core.trust.unexplained`), then rank a library for each region of them
  (:mod:`~xafsmap.core.trust.discover`).
* :func:`compare_models` — compare reference sets for parsimony
  (:mod:`~xafsmap.core.trust.parsimony`).

Both write into a temporary folder that replaces ``out`` only when complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .discover import prepare_candidates, rank_candidates
from ..io.folders import atomic_folder, claim_output
from ..mapping.output import library_versions, write_rows, write_tiff
from .parsimony import iter_compare
from ..mapping.pipeline import drive
from ..io.references import Reference
from ..io.library import scan_library
from .unexplained import iter_unexplained

if TYPE_CHECKING:
    from ..io.references import Reference
    from ..io.stack import Stack

#: ``progress(done, total)`` after each step of a long job.
Progress = Callable[[int, int], None]

__all__ = ["compare_models", "search_references"]

#: Candidates per region in the returned summary and the printed table.
TOP = 5


def _library(library) -> tuple[list[Reference], list[tuple[str, str]]]:
    if isinstance(library, (str, os.PathLike)):
        library = [library]
    library = list(library)
    if all(isinstance(item, Reference) for item in library):
        return library, []
    return scan_library(library)


def search_references(stack: Stack, references: Sequence[Reference], library: str | os.PathLike | Sequence,
                      *, out: str | os.PathLike, overwrite: bool = False, progress: Progress | None = None,
                      sources: Sequence[str] = (), **map_options: Any) -> dict:
    """Find unexplained regions and rank library spectra that could explain them.

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack
    references : sequence of Reference
        The references of the map.
    library : path, sequence of paths or sequence of Reference
        Folders / files of candidate spectra (any supported format), or references.
    out : path
        Output folder (must be absent or empty unless ``overwrite``).
    overwrite : bool
        Replace a folder xafsmap wrote (see :mod:`~xafsmap.core.io.folders`).
    progress : callable, optional
        Called with ``(done, total)``.
    sources : sequence of path, optional
        The job's input files and folders: ``out`` may not be or hold one.
    **map_options
        Options of :func:`~xafsmap.core.trust.unexplained.iter_unexplained`
        (``false_alarm``, ``pool``, ``min_size``, ``rng``, ``offsets``, ``threshold``,
        ``significance``, ``fit_range``, ``thick``, normalization parameters).

    Returns
    -------
    dict
        ``regions``: per region ``region`` (label), ``pixels``, ``candidates`` (the
        best :data:`TOP`, each ``name``, ``score``, ``offset``, ``weight``,
        ``similarity``); ``flagged_pixels``, ``sample_pixels``, ``skipped``, ``alignment``
        (the common energy offset applied, or None), ``warnings`` (energy scale) and ``out``.

    Notes
    -----
    Files: ``unexplained.tif`` (uint16 region labels, 0 = explained), ``candidates.csv``
    (``region,rank,name,score,offset_eV,weight,similarity``, best first per region),
    ``z.tif`` (float32 misfit z-score, NaN outside the sample), ``region_spectra.csv``
    (energy and each region's mean normalized spectrum), ``search.json`` (parameters,
    counts, skipped library files) and, with matplotlib, ``candidates.png``.
    """
    named = [library] if isinstance(library, (str, os.PathLike)) else [p for p in library if not isinstance(p, Reference)]
    sources = [*sources, *named]
    claim_output(out, overwrite=overwrite, sources=sources)  # fail before the work
    candidates_in, skipped = _library(library)
    found = drive(iter_unexplained(stack, references, **map_options), progress)
    candidates = prepare_candidates(candidates_in, found.setup)
    skipped = [*skipped, *candidates.skipped]
    tables = (rank_candidates(found.spectra, found.setup, candidates, found.spectra_variance)
              if found.sizes.size and candidates.names else [])
    tables = tables or [[] for _ in found.sizes]
    sample = int(np.count_nonzero(found.mask == 1))
    summary = {
        "regions": [
            {"region": r + 1, "pixels": int(size),
             "candidates": [{key: row[key] for key in ("name", "score", "offset", "weight", "similarity")}
                            for row in table[:TOP]]}
            for r, (size, table) in enumerate(zip(found.sizes, tables))
        ],
        "flagged_pixels": int(np.count_nonzero(found.flags)),
        "sample_pixels": sample,
        "skipped": [{"source": str(src), "reason": reason} for src, reason in skipped],
        "alignment": found.setup.alignment,
        "warnings": list(found.setup.warnings),
    }
    with atomic_folder(out, overwrite=overwrite, sources=sources) as tmp:
        write_tiff(tmp / "unexplained.tif", found.regions)
        write_tiff(tmp / "z.tif", found.z)
        write_rows(tmp / "candidates.csv", ["region", "rank", "name", "score", "offset_eV", "weight", "similarity"],
                   [[r + 1, rank, row["name"], f"{row['score']:.6g}", f"{row['offset']:g}", f"{row['weight']:.4g}",
                     f"{row['similarity']:.4g}"]
                    for r, table in enumerate(tables) for rank, row in enumerate(table, start=1)])
        write_rows(tmp / "region_spectra.csv", ["energy_eV", *[f"region_{r + 1}" for r in range(found.sizes.size)]],
                   [[f"{e:.4f}", *[f"{v:.6g}" for v in row]]
                    for e, row in zip(found.setup.energies, found.spectra.T)])
        report = {"xafsmap_search": 1, "parameters": found.params, "versions": library_versions(),
                  "null_model": {"noise_levels": found.null.levels.tolist(), "scale": found.null.scale.tolist(),
                                 "dof": found.null.dof.tolist(), "n_energies": found.null.n_energies},
                  "library_size": len(candidates.names), **summary}
        (tmp / "search.json").write_text(json.dumps(report, indent=1, default=float))
        _plot_candidates(tmp / "candidates.png", found, candidates, tables)
    summary["out"] = str(out)
    return summary


def _plot_candidates(path: Path, found, candidates, tables, *, n_regions: int = 4, n_best: int = 3) -> None:
    """Each region's mean spectrum with its best candidates (skipped without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return
    shown = min(len(tables), n_regions)
    if shown == 0:
        return
    energies = found.setup.energies
    start, stop = found.setup.window
    fig, axes = plt.subplots(1, shown, figsize=(4.5 * shown, 3.6), squeeze=False)
    index = {name: i for i, name in enumerate(candidates.names)}
    for r, ax in enumerate(axes[0]):
        ax.plot(energies[start:stop], found.spectra[r, start:stop], "k.", ms=3, label=f"region {r + 1}")
        for row in tables[r][:n_best]:
            s = int(np.argmin(np.abs(candidates.offsets - row["offset"])))
            ax.plot(energies[start:stop], candidates.spectra[index[row["name"]], s, start:stop],
                    label=f"{row['name'][:28]} ({row['score']:.2f})")
        ax.set_xlabel("energy (eV)")
        ax.set_ylabel("normalized absorbance")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare_models(stack: Stack, sets: dict[str, Sequence[Reference]], *, out: str | os.PathLike,
                   overwrite: bool = False, progress: Progress | None = None, sources: Sequence[str] = (),
                   **options: Any) -> dict:
    """Compare named reference sets for parsimony and write the verdict.

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack
    sets : dict of str to list of Reference
        Named sets, in the order of the ``preferred.tif`` indices (1-based).
    out : path
        Output folder (must be absent or empty unless ``overwrite``).
    overwrite : bool
        Replace a folder xafsmap wrote (see :mod:`~xafsmap.core.io.folders`).
    progress : callable, optional
        Called with ``(done, total)``.
    sources : sequence of path, optional
        The job's input files and folders: ``out`` may not be or hold one.
    **options
        Options of :func:`~xafsmap.core.trust.parsimony.iter_compare` (``criterion``,
        ``threshold``, ``significance``, ``fit_range``, normalization parameters).

    Returns
    -------
    dict
        The content of ``comparison.json``: ``preferred`` (name), ``criterion``,
        ``sets`` (per set its criterion, chi2, mean non-zero weights per pixel and the
        share of pixels preferring it), ``warnings``, ``notes``, ``warning`` (the
        warnings joined, only when there are some), ``order`` and ``parameters``.

    Notes
    -----
    Files: ``preferred.tif`` (uint8: 0 = no sample, i = the i-th set), ``margin.tif``
    (float32: criterion of the runner-up minus the preferred's; below 2 undecided) and
    ``comparison.json``.
    """
    claim_output(out, overwrite=overwrite, sources=sources)
    result = drive(iter_compare(stack, sets, **options), progress)
    summary = dict(result.summary, order=list(result.names), parameters=result.params,
                   versions=library_versions())
    if summary["warnings"]:
        summary["warning"] = " ".join(summary["warnings"])
    with atomic_folder(out, overwrite=overwrite, sources=sources) as tmp:
        write_tiff(tmp / "preferred.tif", result.preferred)
        write_tiff(tmp / "margin.tif", result.margin)
        (tmp / "comparison.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary
