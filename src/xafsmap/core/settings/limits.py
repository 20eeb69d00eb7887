"""Every option's allowed range, and the bounds that keep a job's memory and time finite.

One table (:data:`LIMITS`) holds the range of each numeric option, by the name the
command line (argparse ``dest``), recipes (field names) and the docks share; both the
command line and :mod:`xafsmap.core.settings.recipe` check values with :func:`check_value`, so a
range is declared once. The caps that depend on the job (training set size, forest,
maps in memory) are derived from this machine's memory (:func:`machine_memory`) and
checked with :func:`check_training` and :func:`check_maps_memory` after the stack's
header and the references are read, before any pixel is.

The file-format bounds (:data:`MAX_PROJECT_BYTES` …) keep a hostile or damaged input
from taking unbounded memory or time; readers raise a ``ValueError`` naming the file.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LIMITS",
    "Limit",
    "check_mixtures",
    "check_training",
    "check_maps_memory",
    "check_value",
    "machine_memory",
    "training_bytes",
]


@dataclass(frozen=True)
class Limit:
    """The allowed values of one numeric option.

    Attributes
    ----------
    low, high : float
        Bounds, inclusive unless ``open_low``/``open_high``.
    kind : type
        ``int`` (whole numbers) or ``float`` (finite numbers).
    unit : str
        Unit or meaning shown in messages (``"eV"``, ``"trees"``).
    """

    low: float
    high: float
    kind: type = float
    unit: str = ""
    open_low: bool = False
    open_high: bool = False

    def describe(self) -> str:
        """``'lie between 1 and 10000'`` and the like (after "it must")."""
        low = f"lie above {self.low:g}" if self.open_low else None
        if math.isinf(self.high):
            return low or f"be at least {self.low:g}"
        if low:
            return f"{low} and {'below' if self.open_high else 'at most'} {self.high:g}"
        return f"lie between {self.low:g} and {self.high:g}"


#: Range of each option (command-line ``dest`` = recipe field name). Counts that drive
#: memory and time have a fixed ceiling here and a machine-derived one in :func:`check_training`.
LIMITS: dict[str, Limit] = {
    "bin": Limit(1, 64, int, "pixels"),
    "threshold": Limit(0, math.inf, float, "edge steps"),
    "e0": Limit(1, 1e6, float, "eV"),
    "pre1": Limit(-5000, 5000, float, "eV from e0"),
    "pre2": Limit(-5000, 5000, float, "eV from e0"),
    "norm1": Limit(-5000, 5000, float, "eV from e0"),
    "norm2": Limit(-5000, 5000, float, "eV from e0"),
    "nnorm": Limit(0, 5, int, "degree"),  # Larch's MAX_NNORM
    "smooth": Limit(0, 101, int, "points"),
    "n_per_class": Limit(20, 1_000_000, int, "spectra"),
    "n_trees": Limit(1, 10_000, int, "trees"),
    "seed": Limit(0, 2**32 - 1, int),
    "offset": Limit(-100, 100, float, "eV"),
    "noise": Limit(0, 1, float, "edge steps"),
    "thick": Limit(0, 1000, float, "absorbance", open_low=True),
    "false_alarm": Limit(0, 0.5, float, open_low=True),
    "pool": Limit(1, 64, int, "pixels"),
    "degree": Limit(0, 6, int),
    "bin_size": Limit(1, 256, int, "pixels"),
    "workers": Limit(1, 256, int, "processes"),
}

#: Energies of a stack or reference, eV: X-ray absorption edges lie far inside.
ENERGY_RANGE_EV = (1.0, 1e6)

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

#: Largest Athena project (decompressed) or reference file read, bytes.
MAX_PROJECT_BYTES = 64 * 2**20
#: Most values (numbers, strings) one Athena project may hold: 200 records of 10 000
#: points in two arrays need 4 M; as Python objects they take ~250 MB.
MAX_PROJECT_VALUES = 4_000_000
#: Seconds one reference file may take to parse.
PARSE_SECONDS = 20.0
#: Deepest nesting of lists in a project file or a recipe.
MAX_NESTING = 32
#: Largest recipe file, bytes.
MAX_RECIPE_BYTES = 2**20
#: Largest ratio of decompressed to compressed bytes a TIFF may claim for codecs whose
#: ratio is bounded (Deflate ~1032, LZW ~1400, PackBits 64).
MAX_COMPRESSION = 2000
#: Seconds to wait for a dask scheduler to answer.
CONNECT_SECONDS = 10.0


def check_value(name: str, value, *, where: str | None = None):
    """Check one option against :data:`LIMITS`; return it as its kind.

    Parameters
    ----------
    name : str
        Key of :data:`LIMITS` (e.g. ``"n_trees"``).
    value : int or float
    where : str, optional
        How the user wrote it; the value follows, or takes the place of ``{}``
        (``"--trees"``, ``"r.toml: [classifier] n_trees ="``, ``"--offset Fe={}"``);
        default ``name``.

    Raises
    ------
    ValueError
        If the value is not finite, not whole where it must be, or out of range.

    Examples
    --------
    >>> check_value("n_trees", 50)
    50
    >>> check_value("n_trees", 10**9, where="--trees")
    Traceback (most recent call last):
    ValueError: --trees 1000000000 is out of range: it must lie between 1 and 10000
    """
    limit, where = LIMITS[name], where or name
    shown = where.replace("{}", str(value)) if "{}" in where else f"{where} {value}"
    what = "a whole number" if limit.kind is int else "a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{shown} is not {what}")
    if limit.kind is int and value != int(value):
        raise ValueError(f"{shown} is not {what}")
    below = value <= limit.low if limit.open_low else value < limit.low
    above = value >= limit.high if limit.open_high else value > limit.high
    if below or above:
        raise ValueError(f"{shown} is out of range: it must {limit.describe()}")
    return limit.kind(value)


_TERM = re.compile(r"^\s*([^=]+?)\s*=\s*(\S+)\s*$")


def check_mixtures(spec: str, *, where: str = "--mixtures") -> str:
    """Check a mixture specification before any work (the names are checked with the references).

    Each explicit mixture must mix at least two references, with finite, non-negative
    fractions (or percentages) summing to 1 (100 %): ``"Fe=50"`` alone is refused
    rather than read as pure Fe.

    Examples
    --------
    >>> check_mixtures("Fe=50,FeO=50;FeO=0.25,Fe2O3=0.75")
    'Fe=50,FeO=50;FeO=0.25,Fe2O3=0.75'
    >>> check_mixtures("Fe=50")
    Traceback (most recent call last):
    ValueError: --mixtures 'Fe=50' sums to 50 %, not 100 %: give every part, e.g. Fe=50,FeO=50
    """
    text = spec.strip()
    if text.lower() in ("none", "pairs"):
        return spec
    if text.lower().startswith("pairs:"):
        for part in text.partition(":")[2].split(","):
            value = _number(part, where, text)
            if not 0 < value < 100:
                raise ValueError(f"{where} {text!r}: {part.strip()} must lie strictly between 0 and 100 (%)")
        return spec
    for item in filter(None, (s.strip() for s in text.split(";"))):
        values = []
        for term in item.split(","):
            match = _TERM.match(term)
            if match is None:
                raise ValueError(f"{where} {item!r} must read NAME=PERCENT,NAME=PERCENT (e.g. Fe=50,FeO=50)")
            values.append(_number(match[2], where, item))
        if any(v < 0 for v in values):
            raise ValueError(f"{where} {item!r} has a negative fraction")
        total = sum(v / 100 if v > 1 else v for v in values)
        if abs(total - 1) > 0.01:
            raise ValueError(f"{where} {item!r} sums to {100 * total:g} %, not 100 %: give every part, "
                             "e.g. Fe=50,FeO=50")
        if sum(v > 0 for v in values) < 2:
            raise ValueError(f"{where} {item!r} is a pure reference, which is always a class; "
                             "a mixture needs two or more references")
    return spec


def _number(text: str, where: str, context: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where} {context!r}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where} {context!r}: {text.strip()!r} is not a finite number")
    return value


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
