"""The command line's options: the parser, and every value checked before any work.

One place that says what each command accepts (argparse, with usage errors on one
line) and checks the values against :mod:`xafsmap.core.limits` (:func:`check_options`),
and which options name inputs (:func:`option_sources`, for the output-folder rule of
:mod:`xafsmap.core.folders`). Imports only the standard library until called.
"""

from __future__ import annotations

import argparse

__all__ = ["FLAGS", "Parser", "build_parser", "check_options", "flag", "option_sources", "parse_offset", "version"]


def version() -> str:
    """The installed xafsmap version."""
    from . import __version__

    return __version__


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (the contract: one line per error)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _stack_options(parser: argparse.ArgumentParser, *, prepare: bool = True) -> None:
    parser.add_argument("stack", help="multi-page TIFF, folder or glob of one TIFF per energy, STXM .hdr, HDF5/NeXus "
                                      "file (FILE.h5 or FILE.h5:/path/to/dataset) or Zeiss/Xradia .txrm")
    parser.add_argument("--energies", help="energies file (one per line, or CSV with an 'energy' column), or "
                                           "FILE.h5:/path; overrides the energies an HDF5/Xradia file holds")
    parser.add_argument("--axes", help="order of an HDF5 dataset's dimensions, a permutation of EYX (e.g. XYE) "
                                       "when it is not (energy, row, column) or not stated in the file")
    parser.add_argument("--flat", help="flat (I0) image(s): the stack is then transmitted counts")
    parser.add_argument("--dark", help="dark image(s), subtracted from stack and flat")
    parser.add_argument("--i0", help="incident-intensity spectrum (energy, counts), e.g. STXM i0.xsp")
    if not prepare:
        return
    parser.add_argument("--roi", help="region ROW0:ROW1,COL0:COL1 in pixels (half-open)")
    parser.add_argument("--bin", type=int, default=1, help="average N x N neighbouring pixels (default 1)")
    parser.add_argument("--calibration", metavar="FOIL_STACK",
                        help="calibration stack (uniform foil) to measure the energy-shift map from")
    parser.add_argument("--calibration-reference", metavar="REF",
                        help="reference spectrum of the foil (absolute calibration; default relative)")
    parser.add_argument("--shift-map", metavar="FILE", help="reuse an energy-shift map (shift.tif)")
    parser.add_argument("--register", action="store_true",
                        help="measure and correct image drift across energies")


def _map_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", action="append", required=True, metavar="REF",
                        help="reference file, or FILE:NAME for one record of a .prj/.nor (repeat)")
    parser.add_argument("--offset", action="append", default=[], metavar="NAME=EV",
                        help="energy offset of one reference in eV, added to its energies (repeat)")
    parser.add_argument("--align-references", action="store_true",
                        help="fit one common energy offset of all references to the stack and add it to --offset")
    _normalization_options(parser)


def _normalization_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, help="edge-step threshold of the no-sample mask")
    for name in ("e0", "pre1", "pre2", "norm1", "norm2"):
        parser.add_argument(f"--{name}", type=float, help=f"normalization {name} (eV, Larch meaning)")
    parser.add_argument("--nnorm", type=int, help="post-edge polynomial degree (Larch meaning)")


def _output_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--out", required=required, help="output folder (must not exist or be empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an output folder xafsmap wrote before (never one holding other files)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="map the bands on a running dask.distributed scheduler (tcp://host:8786 or a "
                              "scheduler file .json); workers read the stack files themselves")
    cluster.add_argument("--workers", type=int, metavar="N", help="map the bands on N local worker processes")


def build_parser() -> argparse.ArgumentParser:
    """The ``xafsmap`` parser and its subcommands."""
    parser = Parser(prog="xafsmap", description="Chemical-state maps from imaging-XAFS stacks.")
    parser.add_argument("--version", action="version", version=f"xafsmap {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    mapper = commands.add_parser("map", help="map a stack into classes, fractions and trust maps")
    _stack_options(mapper)
    _map_options(mapper)
    _output_options(mapper)
    mapper.add_argument("--mixtures", default="pairs",
                        help="'pairs' (25/50/75 %%, default), 'pairs:20,40,60,80', 'none', "
                             "or 'A=50,B=50;B=25,C=75'")
    mapper.add_argument("--metric", default="euclidean", choices=("euclidean", "manhattan", "jensen-shannon"))
    mapper.add_argument("--features", default="derivative", choices=("derivative", "spectrum"))
    mapper.add_argument("--smooth", type=int, default=9, help="Savitzky-Golay window before features (points)")
    mapper.add_argument("--spectra-per-class", type=int, default=1000, dest="n_per_class")
    mapper.add_argument("--trees", type=int, default=100, dest="n_trees")
    mapper.add_argument("--noise", type=float,
                        help="noise per energy point of the training spectra, in edge-step units "
                             "(default: measured in the data, pixel by pixel)")
    mapper.add_argument("--thick", type=float,
                        help="absorbance above which a pixel is flagged too thick (default: measured, where the "
                             "references stop explaining the surveyed pixels)")
    mapper.add_argument("--seed", type=int, default=0, help="seed of training set and forest (default 0)")
    mapper.add_argument("--zarr", action="store_true",
                        help="map band by band into OUT/maps.ome.zarr (OME-Zarr 0.5) for maps larger than memory; "
                             "the TIFFs are written from it in row blocks")
    _cluster_options(mapper)

    _explore_parser(commands)

    info = commands.add_parser("info", help="describe a stack without reading its pixels")
    _stack_options(info, prepare=False)
    info.add_argument("--json", action="store_true", help="print JSON")

    calibration = commands.add_parser("calibrate", help="measure the energy-shift map from a foil stack")
    _stack_options(calibration, prepare=False)
    _output_options(calibration)
    calibration.add_argument("--reference", metavar="REF", help="foil reference spectrum (absolute calibration)")
    calibration.add_argument("--degree", type=int, default=3, help="degree of the smooth 2-D polynomial (default 3)")
    calibration.add_argument("--bin-size", type=int, default=4, help="pixels per side of a measuring bin")

    search = commands.add_parser("search-references", help="flag unexplained pixels, rank library candidates")
    _stack_options(search)
    _map_options(search)
    _output_options(search)
    search.add_argument("--library", action="append", required=True, metavar="DIR_OR_FILE",
                        help="folder or file of candidate spectra (repeat)")
    search.add_argument("--false-alarm", type=float, default=1e-3, help="per-pixel false-alarm rate")
    search.add_argument("--pool", type=int, default=1, help="pool N x N pixels for sensitivity")

    compare = commands.add_parser("compare-models", help="compare reference sets for parsimony (BIC)")
    _stack_options(compare)
    _output_options(compare)
    compare.add_argument("--set", action="append", required=True, metavar="NAME=REF,REF",
                         help="a named set of references (repeat)")
    compare.add_argument("--criterion", default="bic", choices=("bic", "aic"))

    run = commands.add_parser("run", help="reproduce a recipe exported from the napari docks")
    run.add_argument("recipe", help="recipe TOML file")
    _output_options(run)
    run.add_argument("--zarr", action="store_true", help="also write maps.ome.zarr, as [output] zarr = true")
    _cluster_options(run)

    export = commands.add_parser("export", help="class spectra of a map as XDI files and an Athena project")
    export.add_argument("maps", metavar="OUTDIR", help="folder written by xafsmap map (report.json, labels.tif)")
    export.add_argument("--prj", metavar="FILE.prj", help="write every class spectrum into this Athena project")
    export.add_argument("--xdi", metavar="DIR", help="write one XDI file per class into this folder")
    export.add_argument("--element", help="absorber symbol for XDI/Athena (default: the references' XDI headers)")
    export.add_argument("--edge", help="absorption edge, e.g. K or L3 (default: the references' XDI headers)")
    export.add_argument("--stack", help="read the stack from here instead of the path in report.json")
    for name in ("energies", "flat", "dark", "i0", "axes"):
        export.add_argument(f"--{name}", help=f"with --stack: as {name} of xafsmap map")
    export.add_argument("--overwrite", action="store_true", help="replace existing --prj/--xdi outputs")
    export.add_argument("--quiet", action="store_true", help="print nothing on success")

    demo = commands.add_parser("demo", help="map the built-in synthetic sample measurement")
    _output_options(demo, required=False)
    demo.set_defaults(out="demo-output")
    demo.add_argument("--no-view", action="store_true", help="do not open napari even with a display")
    demo.add_argument("--seed", type=int, default=0)
    return parser


def _explore_parser(commands) -> None:
    """``xafsmap explore``: the stack options of map, the mask and normalization, and the
    exploration's choices (checked by :func:`xafsmap.core.explore.explore_options`)."""
    explore = commands.add_parser("explore", help="components, clusters, NMF and edge maps of a stack, no "
                                                  "references needed")
    _stack_options(explore)
    _normalization_options(explore)
    _output_options(explore)
    explore.add_argument("--components", default="auto", metavar="N|auto",
                         help="principal components to keep (default auto: those above the noise floor)")
    explore.add_argument("--clusters", default="auto", metavar="K|auto",
                         help="clusters (default auto: as many as are at least 4 noise sigmas apart)")
    explore.add_argument("--cluster-method", default="kmeans", metavar="kmeans|gmm",
                         help="k-means (default) or a Gaussian mixture on the component scores")
    explore.add_argument("--nmf", metavar="K", help="also unmix into K non-negative spectra (NMF)")
    explore.add_argument("--seed", type=int, default=0, help="seed of the clustering (default 0)")


#: Command-line flags whose name is not ``--`` + the dest with dashes.
FLAGS = {"n_per_class": "--spectra-per-class", "n_trees": "--trees"}
#: Options naming input files or folders (``out`` may not be or hold one).
SOURCE_OPTIONS = ("stack", "energies", "flat", "dark", "i0", "shift_map", "calibration", "calibration_reference",
                   "recipe")


def flag(dest: str) -> str:
    """The flag of an argparse ``dest``: ``n_trees`` -> ``--trees``."""
    return FLAGS.get(dest, "--" + dest.replace("_", "-"))


def check_options(args) -> None:
    """Every option value checked before any work (ranges from :mod:`xafsmap.core.limits`)."""
    from .core.limits import LIMITS, check_mixtures, check_value
    from .core.parallel import scheduler_address
    from .core.prepare import parse_roi

    for dest, value in vars(args).items():
        if dest in LIMITS and value is not None and not isinstance(value, list):  # --offset: NAME=EV items
            check_value(dest, value, where=flag(dest))
    if getattr(args, "mixtures", None) is not None:
        check_mixtures(args.mixtures)
    for item in getattr(args, "offset", None) or ():
        parse_offset(item)
    if getattr(args, "roi", None):
        parse_roi(args.roi)
    if getattr(args, "scheduler", None):
        scheduler_address(args.scheduler)


def option_sources(args) -> list[str]:
    """The input files and folders an invocation names (for the output-folder rule)."""
    from .core.references import split_spec

    sources = [getattr(args, name) for name in SOURCE_OPTIONS if getattr(args, name, None)]
    reference = getattr(args, "reference", None)
    specs = list(reference) if isinstance(reference, list) else [reference] if reference else []
    specs += [spec for item in getattr(args, "set", None) or () for spec in item.partition("=")[2].split(",")]
    for spec in specs:
        try:
            sources.append(str(split_spec(spec)[0]))
        except FileNotFoundError:
            sources.append(spec)
    return sources + list(getattr(args, "library", None) or ())


def parse_offset(item) -> tuple[str, float]:
    """``NAME=EV`` -> (name, offset in eV within its limit)."""
    from .core.limits import check_value

    name, eq, value = item.rpartition("=")
    if not eq or not name:
        raise ValueError(f"--offset {item!r} must read NAME=EV")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--offset {item!r}: {value!r} is not a number of eV") from None
    return name, check_value("offset", number, where=f"--offset {name}={{}}")
