"""The exploration job from settings: components, clusters, NMF and edge maps, written all-or-nothing.

``xafsmap explore`` builds :class:`~xafsmap.core.settings.schema.Settings` from its
options and calls :func:`run_explore`; the Explore dock calls
:func:`iter_explore_settings` with the measurement, drift and shift map of its session.
The stack is prepared as for a map, except that an energy-shift map is applied inside
the exploration (:mod:`~xafsmap.core.explore.calibration`) so the noise model stays that
of the measured points.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..explore import prepare_exploration, write_explore_files
from ..explore import iter_explore as explore_stack
from ..io.folders import atomic_folder, claim_output
from ..mapping.pipeline import drive
from ..settings.limits import check_maps_memory
from ..settings.recipe import missing_paths, settings_to_dict
from ..settings.schema import Settings
from .steps import FROM_SETTINGS, input_paths, open_measurement, shift_map_for

if TYPE_CHECKING:
    import numpy as np

    from ..explore.pipeline import ExploreResult
    from ..io.stack import Stack

__all__ = ["iter_explore_settings", "run_explore"]

#: Maps of one exploration besides the NMF abundances (components, scores, clusters, edge maps).
EXPLORE_MAPS = 12


def iter_explore_settings(settings: Settings, stack: Stack | None = None, *,
                          shift_map: Any = FROM_SETTINGS,  # a ShiftMap, None or FROM_SETTINGS
                          drift: np.ndarray | None = None,
                          ) -> Generator[tuple[int, int], None, tuple[ExploreResult, dict]]:
    """Explore the measurement as ``settings`` say (a generator: ``(done, total)``, returns the result).

    Parameters
    ----------
    settings : Settings
        ``components``, ``clusters``, ``cluster_method``, ``nmf``, ``seed``, the
        preparation (``register``, ``roi``, ``bin``, calibration), the mask
        (``threshold``, ``significance``) and the normalization.
    stack : Stack, optional
        The measurement; default :func:`~xafsmap.core.job.steps.open_measurement`.
    shift_map : ShiftMap or None, optional
        An energy calibration measured elsewhere (a dock); default the settings'.
    drift : ndarray, shape (E, 2), optional
        A drift measured before (with ``settings.register``).

    Yields
    ------
    (done, total) : tuple of int

    Returns
    -------
    ExploreResult
        With ``extra``: what report.json says of the preparation.
    """
    stack = open_measurement(settings) if stack is None else stack
    shift_map = shift_map_for(settings) if shift_map is FROM_SETTINGS else shift_map
    prepared, shift, extra = prepare_exploration(
        stack, shift_map=shift_map, register=settings.register, drift=drift if settings.register else None,
        roi=settings.roi, factor=settings.bin,
        calibration={"source": settings.shift_map or settings.calibration, "reference": settings.calibration_reference})
    _, rows, cols = prepared.data.shape
    check_maps_memory(rows=rows, cols=cols, k=(settings.nmf or 0) + EXPLORE_MAPS)
    result = yield from explore_stack(
        prepared, components=settings.components or "auto", clusters=settings.clusters or "auto",
        method=settings.cluster_method, nmf=settings.nmf, shift=shift, threshold=settings.threshold,
        significance=settings.significance, norm_params=settings.normalization, rng=settings.seed)
    return result, {**extra, "stack": prepared.sources}


def run_explore(settings: Settings, *, out: str | os.PathLike, overwrite: bool = False,
                progress: Callable[[int, int], None] | None = None, extra: dict | None = None) -> ExploreResult:
    """Explore a measurement and write its maps, spectra and report into ``out`` (all or nothing).

    Parameters
    ----------
    settings : Settings
    out : str or Path
        Output folder (:func:`~xafsmap.core.io.folders.atomic_folder`).
    overwrite : bool
        Replace a folder xafsmap wrote before.
    progress : callable, optional
        ``progress(done, total)``.
    extra : dict, optional
        More report.json fields (the command line adds its ``command``).

    Returns
    -------
    ExploreResult

    Raises
    ------
    FileNotFoundError
        If files the settings name do not exist.
    ValueError
        For settings or input the exploration cannot use.
    """
    if (settings.stack is None) == (settings.sample is None):
        raise ValueError("give exactly one of a stack or the built-in sample")
    missing = missing_paths(settings)
    if missing:
        raise FileNotFoundError(f"the settings name files that do not exist: {', '.join(missing)}")
    sources = input_paths(settings)
    claim_output(out, sources=sources, overwrite=overwrite)
    result, written = drive(iter_explore_settings(settings), progress)
    with atomic_folder(Path(out), overwrite=overwrite, sources=sources) as tmp:
        write_explore_files(result, tmp, extra={**written, "recipe": settings_to_dict(settings), **(extra or {})})
    return result
