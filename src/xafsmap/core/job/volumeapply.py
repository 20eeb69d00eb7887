"""A volume mapped with a model made elsewhere, and 3-D maps mapped elsewhere written as ``xafsmap map`` writes them.

The volume job (:mod:`~xafsmap.core.job.volumejob`) trains on the volume it maps and
writes its maps itself. The napari docks need its two halves apart: the Series dock
maps an open volume with the session's model (:func:`iter_apply_volume`, the volume
counterpart of :func:`~xafsmap.core.job.series.iter_apply`), and the Map dock saves the
3-D maps it mapped (:func:`write_volume_result`, the counterpart of
:func:`~xafsmap.core.job.mapjob.write_result`). Both use the job's own steps: the
slices prepared by :func:`~xafsmap.core.job.volumejob.prepare_volume`, the survey of
their :func:`~xafsmap.core.mapping.volume.tall_stack`, the slice-by-slice
:func:`~xafsmap.core.mapping.volume.iter_map_volume`, the files of
:func:`~xafsmap.core.mapping.volume.write_volume_files`.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io.folders import atomic_folder
from ..mapping.volume import iter_map_volume, tall_stack, write_volume_files
from ..settings.recipe import settings_to_dict
from ..settings.schema import Settings
from .steps import input_paths
from .volumejob import PreparedVolume, hash_volume, prepare_volume

if TYPE_CHECKING:
    from ..io.volume import Volume
    from ..mapping.pipeline import MapResult
    from ..model.training import Model

__all__ = ["iter_apply_volume", "write_volume_result"]


def iter_apply_volume(settings: Settings, model: Model, volume: Volume,
                      maps: dict) -> Generator[tuple[int, int], None, tuple[MapResult, dict]]:
    """Map an open volume with a trained model (its classes), surveyed on its own voxels.

    Parameters
    ----------
    settings : Settings
        The preparation, mask rule, thick limit and metric (the model fixes the rest).
    model : Model
        Trained (a session's) or read from a file, on the volume's energies.
    volume : Volume
        As :func:`~xafsmap.core.io.volume.read_volume` opens it, (E, Z, Y, X).
    maps : dict
        Empty 3-D maps to fill (:func:`~xafsmap.core.mapping.volume.open_volume_store`, or
        arrays of the same shapes).

    Yields
    ------
    (done, total) : tuple of int
        Bands mapped over all slices.

    Returns
    -------
    (MapResult, dict)
        The 3-D maps and the volume's row of series.csv (its counts are voxels).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xafsmap.core.io.volume import read_volume, write_volume
    >>> from xafsmap.core.job.steps import references_for, train
    >>> from xafsmap.core.mapping.pipeline import drive
    >>> from xafsmap.core.mapping.volume import open_volume_store
    >>> from xafsmap.core.settings import ReferenceSpec
    >>> from xafsmap.core.simulate.sample import bundled_reference_paths
    >>> from xafsmap.core.simulate.volume import make_volume
    >>> v = make_volume((2, 16, 16), n_grains=4, rng=3)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> volume = read_volume(write_volume(folder / "v.tif", v.absorbance(), v.energies))
    >>> refs = tuple(ReferenceSpec(str(bundled_reference_paths()[n])) for n in ("Fe", "FeO", "Fe2O3"))
    >>> settings = Settings(references=refs, n_per_class=20, n_trees=3)
    >>> prepared = prepare_volume(settings, volume)
    >>> model = train(settings, tall_stack(prepared.stacks), references_for(settings))
    >>> maps = open_volume_store(folder / "m.zarr", 3, 2, 16, 16)
    >>> result, row = drive(iter_apply_volume(settings, model, volume, maps))
    >>> result.labels.shape, row["pixels"]
    ((2, 16, 16), 512)
    """
    from ..model.reuse import model_for_stack
    from .seriestable import summarize

    prepared = prepare_volume(settings, volume)
    own = model_for_stack(model, tall_stack(prepared.stacks), threshold=settings.threshold,
                          significance=settings.significance, normalization=settings.normalization,
                          thick=settings.thick)
    result = yield from iter_map_volume(prepared.stacks, own, maps, metric=settings.metric)
    classes = result.classifier.classes
    row = summarize(*(np.asarray(getattr(result, name)) for name in ("labels", "mask", "fractions", "fraction_sigma",
                                                                     "e0")),
                    references=classes.references, classes=classes.names)
    return result, row


def write_volume_result(settings: Settings, result: MapResult, out: str | os.PathLike, *, prepared: PreparedVolume,
                        overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write 3-D maps mapped elsewhere (the Map dock's) as :func:`~xafsmap.core.job.volumejob.run_volume`
    writes its own: the same files, the report with the settings and the inputs' sha256, all-or-nothing.

    ``result``'s maps must be Zarr arrays (:func:`~xafsmap.core.mapping.volume.open_volume_store`):
    the TIFFs are written from them a slice at a time.
    """
    from ..io.volume import Volume

    volume = prepared.volume
    # a volume made in memory (a napari layer of an array) names no file to hash
    files = {role: spec for role, spec in volume.sources.items() if role == "axes" or _exists(spec)}
    inputs = hash_volume(Volume(volume.data, volume.energies, files, volume.notes),
                         [ref.spec for ref in settings.references])
    report = {**prepared.extra, "volume": {"shape": list(volume.data.shape), "notes": list(volume.notes)},
              "recipe": settings_to_dict(settings), **(extra or {})}
    with atomic_folder(out, overwrite=overwrite, sources=input_paths(settings)) as folder:
        write_volume_files(result, folder, inputs=inputs, extra=report, shift_map=prepared.slices[0].shift_map)
    return Path(out)


def _exists(spec) -> bool:
    """A file or folder, or ``FILE.h5:/dataset`` of an existing file."""
    text = str(spec)
    return Path(text).exists() or (":" in text and Path(text.rsplit(":", 1)[0]).is_file())
