"""An exploration's output folder: explore.json, the maps as TIFFs, the spectra as CSV.

Written into the temporary folder of :func:`~xafsmap.core.folders.atomic_folder` (the
output-folder rule of ``xafsmap map``), so the folder appears complete or not at all:

==========================  ===================================================================
``explore.json``            choices and evidence (:meth:`ExploreResult.report`), inputs, versions
``components.tif``          (N, rows, cols) float32 component scores (NaN: no sample)
``component_spectra.csv``   ``energy``, ``component_1`` ... (normalized-mu units)
``clusters.tif``            (rows, cols) uint16, 0 = no sample, 1 .. k
``cluster_spectra.csv``     ``energy``, ``cluster_1`` ...: mean normalized spectrum
``cluster_spread.csv``      the same columns: standard deviation over the cluster's pixels
``nmf_maps.tif``            (K, rows, cols) float32 abundances (with ``--nmf``)
``nmf_spectra.csv``         ``energy``, ``nmf_1`` ... (with ``--nmf``)
``e50.tif``                 (rows, cols) float32, eV
``whiteline.tif``           (2, rows, cols) float32: energy (eV), height (normalized mu)
``preedge.tif``             (2, rows, cols) float32: centroid (eV), intensity (eV) (Fe K only)
``mask.tif``                (rows, cols) uint8: 0 no sample, 1 sample, 2 invalid
==========================  ===================================================================
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..mapping.output import library_versions, write_tiff
from .spectra import write_spectra_csv

if TYPE_CHECKING:
    from .pipeline import ExploreResult

__all__ = ["write_explore_files"]


def write_explore_files(result: ExploreResult, folder: str | os.PathLike, *, extra: dict | None = None) -> list[Path]:
    """Write an :class:`~xafsmap.core.explore.pipeline.ExploreResult` into ``folder``.

    Parameters
    ----------
    result : ExploreResult
    folder : Path
        An existing (temporary) folder.
    extra : dict, optional
        More entries for explore.json (command, inputs, preparation).

    Returns
    -------
    list of Path
        The files written.
    """
    folder = Path(folder)
    energies = result.energies
    learned = result.learned
    written = [
        write_tiff(folder / "components.tif", result.scores),
        write_spectra_csv(folder / "component_spectra.csv", energies, learned.components.spectra,
                          [f"component_{i + 1}" for i in range(learned.components.n)]),
        write_tiff(folder / "clusters.tif", result.clusters),
    ]
    names = [f"cluster_{i + 1}" for i in range(learned.clustering.k)]
    written += [write_spectra_csv(folder / "cluster_spectra.csv", energies, result.cluster_spectra, names),
                write_spectra_csv(folder / "cluster_spread.csv", energies, result.cluster_spread, names)]
    if result.nmf is not None:
        written += [write_tiff(folder / "nmf_maps.tif", result.nmf),
                    write_spectra_csv(folder / "nmf_spectra.csv", energies, learned.unmixing.spectra,
                                      [f"nmf_{i + 1}" for i in range(learned.unmixing.spectra.shape[0])])]
    edges = result.edges
    written += [write_tiff(folder / "e50.tif", edges["e50"]),
                write_tiff(folder / "whiteline.tif", np.stack([edges["whiteline_energy"], edges["whiteline_height"]]))]
    if "preedge_centroid" in edges:
        written.append(write_tiff(folder / "preedge.tif",
                                  np.stack([edges["preedge_centroid"], edges["preedge_intensity"]])))
    written.append(write_tiff(folder / "mask.tif", result.mask))
    report = {"xafsmap_explore": 1, **result.report(), **(extra or {}), "versions": library_versions(),
              "files": sorted(p.name for p in written) + ["explore.json"]}
    if "preedge_centroid" not in edges:
        report["preedge"] = (f"not written: the edge at {learned.sample.params['e0']:.1f} eV is not Fe K "
                             "(the pre-edge windows are Fe K's)")
    path = folder / "explore.json"
    path.write_text(json.dumps(report, indent=1, default=_json_default))
    return written + [path]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
