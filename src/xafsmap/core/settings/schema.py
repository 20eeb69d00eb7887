"""Every choice of a mapping session, declared once: :class:`Settings`.

Each field of :class:`Settings` carries its whole declaration beside its default
(:func:`setting`): the TOML section, how it is read (``kind``), its range or choices,
unit, help text, the command-line flag and which commands take it, and what ``None``
means. Everything else is generated from these declarations: the command-line options
(:mod:`xafsmap.cli_options`), the TOML reader, writer and their checks
(:mod:`xafsmap.core.settings.recipe`), the napari controls (``xafsmap._widgets._controls``)
and the defaults of the core functions that take the same choices (``DEFAULTS.smooth``).
A new setting is one new field here (docs/architecture.md says how).

Imports only the standard library: the command line builds its parser from it at once.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from types import MappingProxyType

from .declare import ReferenceSpec, Setting, setting

__all__ = ["COMMANDS", "DEFAULTS", "SECTIONS", "SETTINGS", "Settings"]

#: TOML sections in the order a recipe lists them.
SECTIONS = ("input", "prepare", "calibration", "normalization", "classes", "classifier", "explore", "output",
            "trust", "cluster")
#: Commands of ``xafsmap`` that take settings.
COMMANDS = ("map", "explore", "info", "calibrate", "search-references", "compare-models", "run", "export", "demo",
            "train", "series")
_INPUT = ("map", "explore", "info", "calibrate", "search-references", "compare-models", "export")
_PREPARED = ("map", "explore", "search-references", "compare-models")
_FITTED = ("map", "search-references")



@dataclass(frozen=True)
class Settings:
    """Every choice of a mapping session; a recipe file is one of these (see the module docstring).

    Frozen: derive a changed copy with :func:`dataclasses.replace`. Field values are
    checked on construction (kind and range, :func:`~xafsmap.core.settings.values.check_field`);
    whether a job can run with them (an input given, no contradiction) is
    :func:`~xafsmap.core.settings.values.check_settings`.

    Examples
    --------
    >>> s = Settings(references=(ReferenceSpec("Fe.xdi"),), stack="s.tif", n_trees=50)
    >>> s.n_trees, s.smooth, s.normalization
    (50, 9, {})
    >>> Settings(n_trees=0)
    Traceback (most recent call last):
    ValueError: n_trees = 0 is out of range: it must lie between 1 and 10000
    """

    # [input] the measurement
    stack: str | None = setting(
        None, "input", "path", "multi-page TIFF, folder or glob of one TIFF per energy, STXM .hdr, HDF5/NeXus file "
        "(FILE.h5 or FILE.h5:/path/to/dataset) or Zeiss/Xradia .txrm", commands=_INPUT, label="Stack")
    stacks: tuple[str, ...] = setting((), "input", "paths", "the stacks of a series, mapped in this order (or --list)",
                                      commands=("series",), label="Stacks", metavar="STACK")
    series_list: str | None = setting(
        None, "input", "path", "CSV of the series: a 'path' column (relative to the CSV's folder) and any others "
        "(time, temperature ...), copied into series.csv", commands=("series",), flag="--list", key="list",
        label="Series list", metavar="FILE.csv")
    sample: str | None = setting(None, "input", "choice", "the built-in synthetic sample measurement instead of a stack",
                                 choices=("fe_sample",))
    energies: str | None = setting(
        None, "input", "path", "energies file (one per line, or CSV with an 'energy' column), or FILE.h5:/path; "
        "overrides the energies an HDF5/Xradia file holds", commands=_INPUT, auto="found beside the stack",
        label="Energies")
    flat: str | None = setting(None, "input", "path", "flat (I0) image(s): the stack is then transmitted counts",
                               commands=_INPUT, label="Flat (I0) images")
    dark: str | None = setting(None, "input", "path", "dark image(s), subtracted from stack and flat",
                               commands=_INPUT, label="Dark images")
    i0: str | None = setting(None, "input", "path", "incident-intensity spectrum (energy, counts), e.g. STXM i0.xsp",
                             commands=_INPUT, label="I0 spectrum")
    axes: str | None = setting(
        None, "input", "text", "order of an HDF5 dataset's dimensions, a permutation of EYX (e.g. XYE) when it is "
        "not (energy, row, column) or not stated in the file; EZYX (or a permutation) for a volume", commands=_INPUT, auto="from the file", label="Axes")
    # [prepare] drift, energy calibration, region, binning, mask
    roi: tuple[int, int, int, int] | None = setting(
        None, "prepare", "roi", "region ROW0:ROW1,COL0:COL1 in pixels (half-open)", commands=_PREPARED,
        auto="whole image", label="ROI (rows, columns)", metavar="ROW0:ROW1,COL0:COL1")
    bin: int = setting(1, "prepare", "int", "average N x N neighbouring pixels (better S/N, fewer pixels)",
                       unit="pixels", low=1, high=64, commands=_PREPARED, label="Binning n × n", metavar="N")
    register: bool = setting(False, "prepare", "flag", "measure and correct image drift across energies",
                             commands=_PREPARED, label="correct it")
    shift_map: str | None = setting(None, "prepare", "path", "reuse an energy-shift map (shift.tif)",
                                    commands=_PREPARED, label="Shift map file", metavar="FILE")
    calibration: str | None = setting(None, "prepare", "path",
                                      "calibration stack (uniform foil) to measure the energy-shift map from",
                                      commands=_PREPARED, label="Foil stack", metavar="FOIL_STACK")
    calibration_reference: str | None = setting(
        None, "prepare", "path", "reference spectrum of the foil (absolute calibration)", commands=_PREPARED,
        auto="relative calibration (median shift 0)", label="Reference", metavar="REF")
    threshold: float | None = setting(
        None, "prepare", "float", "edge-step threshold of the no-sample mask", unit="edge steps", low=0.0,
        high=math.inf, commands=_PREPARED, auto="edge significance", label="Mask", step=0.01)
    significance: float = setting(
        5.0, "prepare", "float", "sample = an edge step this many of its own noise sigmas above zero",
        unit="sigmas", low=0.0, high=100.0, open_low=True, commands=_PREPARED, label="Edge significance",
        decimals=1, step=0.5)
    align_references: bool = setting(
        False, "prepare", "flag", "fit one common energy offset of all references to the stack and add it to "
        "their offsets", commands=_FITTED, label="Align to the stack (one common energy offset)")
    # [calibration] the foil fit (xafsmap calibrate, and a recipe's calibration foil)
    degree: int = setting(3, "calibration", "int", "degree of the smooth 2-D polynomial of the shift map",
                          low=0, high=6, commands=("calibrate",), label="Polynomial degree")
    bin_size: int = setting(4, "calibration", "int", "pixels per side of a measuring bin of the foil",
                            unit="pixels", low=1, high=256, commands=("calibrate",), label="Bin size")
    # [normalization] Larch's pre_edge parameters
    e0: float | None = setting(None, "normalization", "float", "edge energy (Larch meaning)", unit="eV", low=1.0,
                               high=1e6, commands=_PREPARED, auto="from the data", label="e0", decimals=2)
    pre1: float | None = setting(None, "normalization", "float", "start of the pre-edge fit (Larch meaning)",
                                 unit="eV from e0", low=-5000.0, high=5000.0, commands=_PREPARED,
                                 auto="from the data", label="pre1", decimals=1)
    pre2: float | None = setting(None, "normalization", "float", "end of the pre-edge fit (Larch meaning)",
                                 unit="eV from e0", low=-5000.0, high=5000.0, commands=_PREPARED,
                                 auto="from the data", label="pre2", decimals=1)
    norm1: float | None = setting(None, "normalization", "float", "start of the post-edge fit (Larch meaning)",
                                  unit="eV from e0", low=-5000.0, high=5000.0, commands=_PREPARED,
                                  auto="from the data", label="norm1", decimals=1)
    norm2: float | None = setting(None, "normalization", "float", "end of the post-edge fit (Larch meaning)",
                                  unit="eV from e0", low=-5000.0, high=5000.0, commands=_PREPARED,
                                  auto="from the data", label="norm2", decimals=1)
    nnorm: int | None = setting(None, "normalization", "int", "post-edge polynomial degree (Larch meaning)",
                                unit="degree", low=0, high=5, commands=_PREPARED, auto="from the data",
                                label="nnorm")
    # [[reference]] the standards
    references: tuple[ReferenceSpec, ...] = setting(
        (), "reference", "references", "reference file, or FILE:NAME for one record of a .prj/.nor (repeat)",
        commands=_FITTED, flag="--reference", metavar="REF")
    # [classes] what the forest learns
    mixtures: str = setting("pairs", "classes", "text", "'pairs' (25/50/75 %), 'pairs:20,40,60,80', 'none', or "
                            "'A=50,B=50;B=25,C=75'", commands=("map",), label="Mixtures")
    class_names: tuple[str, ...] | None = setting(
        None, "classes", "names", "names of the classes, in the order of --compositions", key="names",
        commands=("map",), auto="from the mixtures", metavar="NAME,NAME,...")
    compositions: tuple[tuple[float, ...], ...] | None = setting(
        None, "classes", "matrix", "fractions of the references in each class, rows separated by ';' "
        "(replaces --mixtures)", commands=("map",), auto="from the mixtures", metavar="F,F;F,F")
    noise: float | None = setting(
        None, "classes", "float", "noise per energy point of the training spectra", unit="edge steps", low=0.0,
        high=1.0, commands=("map",), auto="measured per pixel", label="Training noise (edge steps)", step=0.001)
    # [classifier] the forest, its features and the distance map
    features: str = setting("derivative", "classifier", "choice", "what the forest sees of a normalized spectrum",
                            choices=("derivative", "spectrum"), commands=("map",), label="Features")
    smooth: int = setting(9, "classifier", "int", "Savitzky-Golay window before features", unit="points", low=0,
                          high=101, commands=("map",), label="Smoothing (points)")
    n_per_class: int = setting(1000, "classifier", "int", "synthetic training spectra per class", unit="spectra",
                               low=20, high=1_000_000, commands=("map",), flag="--spectra-per-class",
                               label="Spectra per class", step=100)
    n_trees: int = setting(100, "classifier", "int", "trees of the random forest", unit="trees", low=1, high=10_000,
                           commands=("map",), flag="--trees", label="Trees", step=10)
    fit_range: tuple[float, float] = setting(
        (-30.0, 70.0), "classifier", "range", "energies relative to the stack's e0 used by features and fits",
        unit="eV from e0", low=-500.0, high=2000.0, commands=_FITTED, label="Fit range (eV from e0)",
        decimals=1, metavar=("LOW", "HIGH"))
    metric: str = setting("euclidean", "classifier", "choice", "feature-space distance of the distance map",
                          choices=("euclidean", "manhattan", "jensen-shannon"), commands=("map",),
                          label="Distance metric")
    seed: int = setting(0, "classifier", "int", "seed of the training set and forest", low=0, high=2**31 - 1,
                        commands=("map", "explore", "search-references", "demo"), label="Seed")
    thick: float | None = setting(
        None, "classifier", "float", "absorbance above which a pixel is flagged too thick", unit="absorbance",
        low=0.0, high=1000.0, open_low=True, commands=_FITTED, label="Too thick above",
        auto="measured (where the references stop explaining the surveyed pixels)", decimals=3, step=0.1)
    model: str | None = setting(
        None, "classifier", "path", "map with this saved model (xafsmap train) instead of training; refused if it "
        "was made for other references, energies or normalization", commands=("map", "series", "run"),
        auto="train on the stack", label="Saved model", metavar="MODEL")
    # [explore] components, clusters, NMF (xafsmap explore, the Explore dock)
    components: int | None = setting(
        None, "explore", "int", "principal components to keep", low=1, high=12, commands=("explore",),
        auto="those above the noise floor", label="Components", metavar="N")
    clusters: int | None = setting(
        None, "explore", "int", "clusters of the component scores", low=1, high=12, commands=("explore",),
        auto="as many as are at least 4 noise sigmas apart", label="Clusters", metavar="K")
    cluster_method: str = setting("kmeans", "explore", "choice", "k-means or a Gaussian mixture on the component "
                                  "scores", choices=("kmeans", "gmm"), commands=("explore",), label="Method")
    nmf: int | None = setting(
        None, "explore", "int", "also unmix into K non-negative spectra (NMF)", low=1, high=8, commands=("explore",),
        auto="no NMF", label="NMF spectra", metavar="K")
    # [output]
    zarr: bool = setting(False, "output", "flag", "map band by band into OUT/maps.ome.zarr (OME-Zarr 0.5) for maps "
                         "larger than memory; the TIFFs are written from it in row blocks", commands=("map", "run"),
                         label="also write maps.ome.zarr")
    # [trust] unexplained pixels, library search, parsimony
    false_alarm: float = setting(1e-3, "trust", "float", "per-pixel false-alarm rate of the unexplained map",
                                 low=0.0, high=0.5, open_low=True, commands=("search-references",),
                                 label="False-alarm rate", decimals=5, step=0.001)
    pool: int = setting(1, "trust", "int", "pool the evidence of N x N pixels (more sensitive, coarser)",
                        unit="pixels", low=1, high=64, commands=("search-references",), label="Pooling n × n")
    library: tuple[str, ...] = setting((), "trust", "paths", "folder or file of candidate spectra (repeat)",
                                       commands=("search-references",), label="Library", metavar="DIR_OR_FILE")
    criterion: str = setting("bic", "trust", "choice", "information criterion judging the reference sets",
                             choices=("bic", "aic"), commands=("compare-models",), label="Criterion")
    sets: tuple[tuple[str, tuple[str, ...]], ...] = setting(
        (), "trust", "sets", "a named set of references (repeat)", commands=("compare-models",), flag="--set",
        label="Sets", metavar="NAME=REF,REF")
    # [cluster] where the bands are mapped
    workers: int | None = setting(None, "cluster", "int", "map the bands on N local worker processes",
                                  unit="processes", low=1, high=256, commands=("map", "run"), metavar="N",
                                  auto="in this process")
    scheduler: str | None = setting(
        None, "cluster", "text", "map the bands on a running dask.distributed scheduler (tcp://host:8786 or a "
        "scheduler file .json); workers read the stack files themselves", commands=("map", "run"),
        metavar="ADDRESS", auto="in this process")

    def __post_init__(self):
        from .values import check_field, normalize_field

        for item in SETTINGS.values():
            value = normalize_field(item, getattr(self, item.name))
            object.__setattr__(self, item.name, value)
            check_field(item, value, item.name)

    @property
    def normalization(self) -> dict:
        """The given normalization parameters (Larch names), for :func:`~xafsmap.core.spectra.normalize.normalize`."""
        return {item.name: getattr(self, item.name) for item in SETTINGS.values()
                if item.section == "normalization" and getattr(self, item.name) is not None}


def _declarations() -> dict[str, Setting]:
    found = {}
    for item in fields(Settings):
        default = item.default if item.default is not MISSING else item.default_factory()
        found[item.name] = Setting(name=item.name, default=default, **item.metadata["setting"])
    return found


#: Every declaration, by name, in the order of :class:`Settings`.
SETTINGS: MappingProxyType = MappingProxyType(_declarations())
#: The defaults (``DEFAULTS.n_trees``): the core functions' keyword defaults point here.
DEFAULTS = Settings()
