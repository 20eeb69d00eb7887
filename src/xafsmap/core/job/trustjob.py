"""The trust jobs from settings: search a library for what the references miss, compare reference sets.

``xafsmap search-references`` and ``xafsmap compare-models`` build
:class:`~xafsmap.core.settings.schema.Settings` from their options and call these; the
stack is prepared exactly as for a map (:func:`~xafsmap.core.job.steps.prepare`), and
the files are written by :mod:`xafsmap.core.trust.assess`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from ..io.folders import claim_output
from ..io.references import read_reference
from ..settings.schema import Settings
from ..settings.values import check_settings
from ..trust.assess import compare_models, search_references
from .steps import input_paths, prepare, references_for

__all__ = ["run_compare", "run_search"]


def run_search(settings: Settings, *, out: str | os.PathLike, overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None, sources: Iterable[str | os.PathLike] = ()) -> dict:
    """Flag the pixels the references do not explain and rank ``settings.library`` for them.

    Returns :func:`~xafsmap.core.trust.assess.search_references`'s summary; the files are
    written into ``out`` (all-or-nothing).
    """
    check_settings(settings, job="search-references")
    sources = [*map(str, sources), *input_paths(settings)]
    claim_output(out, sources=sources, overwrite=overwrite)
    prepared = prepare(settings)
    references = references_for(settings)
    return search_references(
        prepared.stack, references, list(settings.library), out=out, overwrite=overwrite, progress=progress,
        sources=sources, false_alarm=settings.false_alarm, pool=settings.pool, threshold=settings.threshold,
        significance=settings.significance, fit_range=settings.fit_range, thick=settings.thick,
        offsets=[ref.offset for ref in settings.references], align_references=settings.align_references,
        rng=settings.seed, **settings.normalization,
    )


def run_compare(settings: Settings, *, out: str | os.PathLike, overwrite: bool = False,
                progress: Callable[[int, int], None] | None = None, sources: Iterable[str | os.PathLike] = ()) -> dict:
    """Fit every named set of ``settings.sets`` at every pixel and judge them (``settings.criterion``).

    Returns :func:`~xafsmap.core.trust.assess.compare_models`'s summary; the files are
    written into ``out`` (all-or-nothing).
    """
    check_settings(settings, job="compare-models")
    sources = [*map(str, sources), *input_paths(settings)]
    claim_output(out, sources=sources, overwrite=overwrite)
    sets = {}
    for name, specs in settings.sets:
        refs = [read_reference(spec) for spec in specs]
        names = [ref.name for ref in refs]
        if len(set(names)) != len(names):
            raise ValueError(f"two references of set {name!r} share a name: {names}")
        sets[name] = refs
    prepared = prepare(settings)
    return compare_models(prepared.stack, sets, out=out, overwrite=overwrite, progress=progress, sources=sources,
                          criterion=settings.criterion, threshold=settings.threshold,
                          significance=settings.significance, fit_range=settings.fit_range,
                          **settings.normalization)
