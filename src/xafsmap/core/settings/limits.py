"""The bounds that keep a job's memory and time finite, derived from this machine.

The range of every option is declared with the option (:mod:`xafsmap.core.settings.schema`).
The caps that depend on the job (training set size, forest, maps in memory) are derived
from this machine's memory (:func:`machine_memory`) and checked with
:func:`check_training` and :func:`check_maps_memory` after the stack's header and the
references are read, before any pixel is.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CONNECT_SECONDS",
    "MEMORY_SHARE",
    "check_maps_memory",
    "check_training",
    "machine_memory",
    "training_bytes",
]

#: Share of the machine's memory one job may plan to use.
MEMORY_SHARE = 0.5
#: Bytes per value of the training spectra while they are made, normalized and turned
#: into features (three float64 copies live at once; measured 23 B at 141 energies).
TRAINING_VALUE_BYTES = 32
#: Bytes per node of a scikit-learn tree (64) and per class of its value array (8).
TREE_NODE_BYTES, TREE_CLASS_BYTES = 64, 8
#: Tree-spectra (trees x training spectra) one training may take: about an hour on
#: two cores (0.45 s per tree of 120 000 spectra measured, i.e. ~0.27 M/s).
MAX_TRAINING_WORK = 1e9
#: Float32 maps a mapping job holds in memory per pixel and reference (labels,
#: probability, distance, residual, edge step, e0, mask, flags, plus K fractions).
MAP_VALUES_PER_PIXEL = 8

#: Seconds to wait for a dask scheduler to answer.
CONNECT_SECONDS = 10.0


def machine_memory() -> int:
    """Bytes of memory this process can use: physical memory, or a lower container limit.

    >>> machine_memory() > 2**28
    True
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        try:
            import psutil

            total = psutil.virtual_memory().total
        except ImportError:
            total = 8 * 2**30
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def training_bytes(*, n_classes: int, n_per_class: int, n_energies: int, n_trees: int,
                   max_samples: float = 0.25, test_fraction: float = 0.25) -> int:
    """Upper estimate of the memory of one training: spectra, features and a fully grown forest.

    >>> training_bytes(n_classes=12, n_per_class=1000, n_energies=141, n_trees=100) < 2**28
    True
    """
    spectra = n_classes * n_per_class * (1 + test_fraction)
    nodes = n_trees * 2 * max_samples * n_classes * n_per_class  # a grown tree: 2 nodes per sample drawn
    return int(TRAINING_VALUE_BYTES * n_energies * spectra + nodes * (TREE_NODE_BYTES + TREE_CLASS_BYTES * n_classes))


def check_training(*, n_classes: int, n_per_class: int, n_energies: int, n_trees: int) -> None:
    """Refuse a training that would not fit in memory or would run for hours.

    Raises
    ------
    ValueError
        Naming the counts, the estimate and what to lower.

    Examples
    --------
    >>> check_training(n_classes=12, n_per_class=1000, n_energies=141, n_trees=100)
    >>> check_training(n_classes=12, n_per_class=1_000_000, n_energies=141, n_trees=10)
    Traceback (most recent call last):
    ValueError: training 12 classes x 1000000 spectra x 10 trees needs ...
    """
    counts = f"{n_classes} classes x {n_per_class} spectra x {n_trees} trees"
    work = n_trees * n_classes * n_per_class
    if work > MAX_TRAINING_WORK:
        raise ValueError(f"training {counts} is {work:.2g} tree-spectra, more than the {MAX_TRAINING_WORK:.0g} "
                         "(about an hour) allowed: lower --spectra-per-class or --trees")
    need = training_bytes(n_classes=n_classes, n_per_class=n_per_class, n_energies=n_energies, n_trees=n_trees)
    have = MEMORY_SHARE * machine_memory()
    if need > have:
        raise ValueError(f"training {counts} needs up to {_gib(need)} of memory at {n_energies} energies; "
                         f"this machine allows {_gib(have)} (half its memory): lower --spectra-per-class "
                         "or --trees")


def check_maps_memory(*, rows: int, cols: int, k: int, zarr: bool = False) -> None:
    """Refuse maps that would not fit in memory (unless they go to a Zarr store band by band).

    >>> check_maps_memory(rows=100_000, cols=100_000, k=3)
    Traceback (most recent call last):
    ValueError: the maps of 100000 x 100000 pixels need 409.8 GiB of memory, more than the ...GiB this machine allows: ...
    """
    need = 4 * rows * cols * (MAP_VALUES_PER_PIXEL + k)
    have = MEMORY_SHARE * machine_memory()
    if need > have and not zarr:
        raise ValueError(f"the maps of {rows} x {cols} pixels need {_gib(need)} of memory, more than the "
                         f"{_gib(have)} this machine allows: map into a Zarr store with --zarr, or crop "
                         "(--roi) or bin (--bin)")
