"""Command line: map, info, calibrate, search-references, compare-models, run, export, demo.

A contract other tools script against: options and output files are documented in
docs/cli.md. Bad input ends with one line ``xafsmap: error: ...`` and a non-zero exit,
and never leaves partial output. Imports only the core (no napari, no Qt) unless the
demo is asked to open a viewer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["main"]


def _version() -> str:
    from . import __version__

    return __version__


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
    parser.add_argument("--threshold", type=float, help="edge-step threshold of the no-sample mask")
    for name in ("e0", "pre1", "pre2", "norm1", "norm2"):
        parser.add_argument(f"--{name}", type=float, help=f"normalization {name} (eV, Larch meaning)")
    parser.add_argument("--nnorm", type=int, help="post-edge polynomial degree (Larch meaning)")


def _output_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--out", required=required, help="output folder (must not exist or be empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="map the bands on a running dask.distributed scheduler (tcp://host:8786 or a "
                              "scheduler file .json); workers read the stack files themselves")
    cluster.add_argument("--workers", type=int, metavar="N", help="map the bands on N local worker processes")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xafsmap", description="Chemical-state maps from imaging-XAFS stacks.")
    parser.add_argument("--version", action="version", version=f"xafsmap {_version()}")
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
    mapper.add_argument("--thick", type=float, default=4.0, help="absorbance above which a pixel is flagged too thick")
    mapper.add_argument("--seed", type=int, default=0, help="seed of training set and forest (default 0)")
    mapper.add_argument("--zarr", action="store_true",
                        help="map band by band into OUT/maps.ome.zarr (OME-Zarr 0.5) for maps larger than memory; "
                             "the TIFFs are written from it in row blocks")
    _cluster_options(mapper)

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


def _progress(args, what: str = "mapping"):
    """Progress on one rewritten line, on a terminal only (logs stay clean)."""

    def report(done, total):
        if not args.quiet and sys.stderr.isatty():
            print(f"\rxafsmap: {what} {done}/{total}", end="" if done < total else "\n",
                  file=sys.stderr, flush=True)

    return report


def _read_stack(args):
    from .core.io import read_stack

    return read_stack(args.stack, energies=args.energies, flat=args.flat, dark=args.dark, i0=args.i0,
                      axes=args.axes)


def _shift_map(args):
    """The energy-shift map asked for: a file, or measured from a foil stack, or None."""
    from .core.calibrate import ShiftMap, calibrate, read_shift_map
    from .core.io import read_stack
    from .core.references import read_reference

    if args.shift_map and args.calibration:
        raise ValueError("give either --shift-map or --calibration, not both")
    if args.shift_map:
        shift = read_shift_map(args.shift_map)
        return ShiftMap(shift=shift, measured=shift, uncertainty=shift * float("nan"), residual_rms=float("nan"),
                        model={"source": str(args.shift_map)})
    if not args.calibration:
        return None
    foil = read_stack(args.calibration)
    ref = read_reference(args.calibration_reference) if args.calibration_reference else None
    return calibrate(foil.data, foil.energies, reference=None if ref is None else ref.mu,
                     reference_energies=None if ref is None else ref.energies)


def _prepared_stack(args):
    """Read, register, calibrate, crop and bin as asked; returns (stack, shift map, report)."""
    from .core.prepare import parse_roi, prepare_measurement

    stack = _read_stack(args)
    shift_map = _shift_map(args)
    prepared, extra = prepare_measurement(
        stack, shift_map=shift_map, register=args.register, roi=parse_roi(args.roi) if args.roi else None,
        factor=args.bin, calibration={"source": args.shift_map or args.calibration,
                                      "reference": getattr(args, "calibration_reference", None)},
    )
    return prepared, shift_map, extra


def _offsets(items, names) -> list[float]:
    offsets = dict.fromkeys(names, 0.0)
    for item in items:
        name, eq, value = item.rpartition("=")
        if not eq or name not in offsets:
            raise ValueError(f"--offset {item!r} must read NAME=EV with NAME one of {list(names)}")
        try:
            offsets[name] = float(value)
        except ValueError:
            raise ValueError(f"--offset {item!r}: {value!r} is not a number of eV") from None
    return list(offsets.values())


def _references(specs):
    from .core.references import read_reference

    references = [read_reference(spec) for spec in specs]
    names = [ref.name for ref in references]
    if len(set(names)) != len(names):
        raise ValueError(f"two references share a name: {names}; name records as FILE:NAME or rename a file")
    return references


def _normalization(args) -> dict:
    return {name: getattr(args, name) for name in ("e0", "pre1", "pre2", "norm1", "norm2", "nnorm")}


def _inputs(stack, reference_specs) -> dict:
    from .core.output import file_sha256
    from .core.references import split_spec

    inputs = {}
    for role, path in stack.sources.items():
        path = Path(path)
        files = sorted(path.parent.glob(path.name) if "*" in path.name else
                       path.iterdir() if path.is_dir() else [path])
        inputs[role] = {"path": str(path), "sha256": {f.name: file_sha256(f) for f in files if f.is_file()}}
    inputs["references"] = [{"spec": spec, "sha256": file_sha256(split_spec(spec)[0])} for spec in reference_specs]
    return inputs


def run_map(args) -> Path:
    """``xafsmap map``: read, prepare, map, write; returns the output folder.

    With ``--zarr`` the bands are mapped straight into ``maps.ome.zarr`` in the (still
    temporary) output folder, so the maps never are in memory whole.
    """
    from .core.output import check_output_folder, map_output, write_map_files
    from .core.pipeline import band_rows, drive, iter_map

    check_output_folder(args.out, overwrite=args.overwrite)
    tic = time.perf_counter()
    stack, shift_map, extra = _prepared_stack(args)
    references = _references(args.reference)
    options = dict(
        offsets=_offsets(args.offset, [r.name for r in references]), mixtures=args.mixtures,
        features=args.features, smooth=args.smooth, n_per_class=args.n_per_class, n_trees=args.n_trees,
        threshold=args.threshold, noise=args.noise, rng=args.seed, **_normalization(args),
    )
    # sha256 of the inputs (seconds for GB) runs beside the job: it reads the files
    # sequentially, at the disk's own speed, while training leaves a core idle
    hasher = ThreadPoolExecutor(max_workers=1)
    inputs = hasher.submit(_inputs, stack, args.reference)
    _, rows, cols = stack.data.shape
    try:
        with map_output(args.out, k=len(references), rows=rows, cols=cols, band=band_rows(stack.data.shape),
                        zarr=args.zarr, overwrite=args.overwrite) as (folder, maps):
            if args.scheduler or args.workers:
                result = _map_distributed(args, stack, references, options)
            else:
                generator = iter_map(stack, references, metric=args.metric, thick=args.thick, maps=maps,
                                     **options)
                result = drive(generator, _progress(args))
            result.timings["total_s"] = time.perf_counter() - tic
            extra["command"] = sys.argv[1:]
            write_map_files(result, folder, maps=maps, inputs=inputs.result(), extra=extra, shift_map=shift_map)
            counts = ", ".join(f"{name}: {n}" for name, n in result.class_counts.items())  # before the store moves
    finally:
        hasher.shutdown(wait=False, cancel_futures=True)
    out = Path(args.out)
    _print_warnings(result.warnings)
    if not args.quiet:
        print(f"xafsmap: wrote {out} (held-out accuracy {result.classifier.accuracy:.3f}; {counts})",
              file=sys.stderr)
    return out


def _print_warnings(warnings) -> None:
    """Warnings go to stderr whatever --quiet says: they are about the result."""
    start = "\n" if sys.stderr.isatty() else ""
    for warning in warnings:
        print(f"{start}xafsmap: warning: {warning}", file=sys.stderr)
        start = ""


def _map_distributed(args, stack, references, options):
    """Train here, then map the bands on a dask.distributed cluster (same maps).

    The stack may be registered, calibrated, cropped and binned: workers re-read the
    files and redo that preparation (the drift and shift map travel to them once).
    """
    from .core.parallel import iter_map_distributed, open_client
    from .core.pipeline import drive
    from .core.training import train_model

    tic = time.perf_counter()
    model = train_model(stack, references, **options)
    train_s = time.perf_counter() - tic
    with open_client(scheduler=args.scheduler, workers=args.workers) as client:
        result = drive(iter_map_distributed(stack, model, client=client, metric=args.metric, thick=args.thick),
                       _progress(args))
    result.timings["train_s"] = train_s
    return result


def run_info(args) -> dict:
    """``xafsmap info``: shape, energies, size and memory estimate, no pixel read."""
    from .core.io import stack_info

    info = stack_info(_read_stack(args))
    if args.json:
        print(json.dumps(info, indent=1, default=str))
    else:
        for key, value in info.items():
            print(f"{key:>22}: {value}")
    return info


def run_calibrate(args) -> Path:
    """``xafsmap calibrate``: shift.tif (with uncertainty), measured shifts and a report."""
    from .core.calibrate import calibrate, write_shift_map
    from .core.output import atomic_folder, check_output_folder, library_versions, write_tiff
    from .core.references import read_reference

    check_output_folder(args.out, overwrite=args.overwrite)
    foil = _read_stack(args)
    ref = read_reference(args.reference) if args.reference else None
    shift_map = calibrate(foil.data, foil.energies, reference=None if ref is None else ref.mu,
                          reference_energies=None if ref is None else ref.energies,
                          degree=args.degree, bin=args.bin_size)
    report = {"xafsmap_calibration": 1, "foil": str(args.stack), "reference": args.reference,
              "mode": "absolute" if ref else "relative (median shift 0)", "degree": args.degree,
              "bin": args.bin_size, "residual_rms_eV": shift_map.residual_rms, "model": shift_map.model,
              "shift_range_eV": [float(shift_map.shift.min()), float(shift_map.shift.max())],
              "versions": library_versions()}
    with atomic_folder(args.out, overwrite=args.overwrite) as tmp:
        write_shift_map(tmp / "shift.tif", shift_map)
        write_tiff(tmp / "shift_measured.tif", shift_map.measured)
        (tmp / "report.json").write_text(json.dumps(report, indent=1, default=float))
    if not args.quiet:
        print(f"xafsmap: shift {report['shift_range_eV'][0]:.2f} to {report['shift_range_eV'][1]:.2f} eV, "
              f"fit residual {shift_map.residual_rms:.3f} eV RMS; wrote {args.out}", file=sys.stderr)
    return Path(args.out)


def run_search(args) -> dict:
    """``xafsmap search-references``: unexplained regions and library candidates."""
    from .core.assess import search_references

    stack, _, _ = _prepared_stack(args)
    references = _references(args.reference)
    summary = search_references(
        stack, references, args.library, out=args.out, overwrite=args.overwrite, progress=_progress(args),
        false_alarm=args.false_alarm, pool=args.pool, threshold=args.threshold,
        offsets=_offsets(args.offset, [r.name for r in references]), **_normalization(args),
    )
    print(f"{summary['flagged_pixels']} of {summary['sample_pixels']} sample pixels unexplained "
          f"in {len(summary['regions'])} regions")
    for region in summary["regions"]:
        best = ", ".join(f"{c['name']} ({c['score']:.3f})" for c in region["candidates"][:3])
        print(f"region {region['region']} ({region['pixels']} px): {best or 'no candidate covers the edge'}")
    return summary


def run_compare(args) -> dict:
    """``xafsmap compare-models``: per-pixel and whole-image preferred reference set."""
    from .core.assess import compare_models

    sets = {}
    for item in args.set:
        name, eq, specs = item.partition("=")
        if not eq or not name or not specs:
            raise ValueError(f"--set {item!r} must read NAME=REF,REF,...")
        if name in sets:
            raise ValueError(f"two sets are named {name!r}")
        sets[name] = _references(specs.split(","))
    stack, _, _ = _prepared_stack(args)
    summary = compare_models(stack, sets, out=args.out, overwrite=args.overwrite, progress=_progress(args),
                             criterion=args.criterion)
    print(f"preferred: {summary['preferred']}")
    for warning in summary.get("warnings", []):
        print(f"warning: {warning}")
    return summary


def run_recipe_command(args) -> Path:
    """``xafsmap run``: reproduce a recipe's maps."""
    from .core.recipe import read_recipe, run_recipe

    recipe = read_recipe(args.recipe)
    if args.zarr:
        from dataclasses import replace

        recipe = replace(recipe, zarr=True)
    if not (args.scheduler or args.workers):
        return run_recipe(recipe, out=args.out, overwrite=args.overwrite, progress=_progress(args))
    from .core.parallel import open_client

    with open_client(scheduler=args.scheduler, workers=args.workers) as client:
        return run_recipe(recipe, out=args.out, overwrite=args.overwrite, progress=_progress(args), client=client)


def run_demo(args) -> Path:
    """``xafsmap demo``: write the sample measurement, map it like ``xafsmap map``, show it."""
    from .core.io import write_stack
    from .core.output import check_output_folder
    from .core.quicklook import write_label_png
    from .core.sample import bundled_reference_paths, make_sample

    out = check_output_folder(args.out, overwrite=args.overwrite)
    sample = make_sample(rng=args.seed)
    inputs = out.absolute().parent / f".{out.name}.inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    stack_path = write_stack(inputs / "sample.tif", sample.stack, sample.energies)
    paths = bundled_reference_paths()
    argv = ["map", str(stack_path), "--out", str(out), "--seed", str(args.seed)]
    argv += [arg for ref in sample.references for arg in ("--reference", str(paths[ref.name]))]
    argv += ["--overwrite"] * args.overwrite + ["--quiet"] * args.quiet
    run_map(_parser().parse_args(argv))
    shutil.move(str(inputs), str(out / "input"))
    write_label_png(out / "labels.png", out / "labels.tif", out / "classes.csv")
    print(f"xafsmap: demo maps in {out}/ (quick-look: {out}/labels.png)", file=sys.stderr)
    if not args.no_view and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        from ._view import view_maps

        view_maps(out / "input" / "sample.tif", out)
    return out


def run_export(args) -> dict:
    """``xafsmap export``: each class's mean normalized spectrum as XDI files and/or an Athena project.

    The stack is reopened from the paths in the map's report.json (or ``--stack``) and
    prepared onto the map's grid (:func:`~xafsmap.core.mapspectra.map_class_spectra`);
    everything is computed before anything is written, and the XDI folder and the
    project appear together or not at all (:func:`~xafsmap.core.export.write_spectra`).
    """
    from .core.export import write_spectra
    from .core.mapspectra import map_class_spectra, references_element

    folder = Path(args.maps)
    if not (args.prj or args.xdi):
        raise ValueError("give --prj FILE.prj and/or --xdi DIR: nothing to write")
    if not (folder / "report.json").is_file():
        raise ValueError(f"{folder} is not an xafsmap map folder (no report.json)")
    element, edge = args.element, args.edge
    if not (element and edge):
        found = references_element(json.loads((folder / "report.json").read_text()))
        element, edge = element or found[0], edge or found[1]
    if not (element and edge):
        raise ValueError("give --element and --edge (e.g. --element Fe --edge K): the references' XDI headers "
                         "do not say (or disagree)")
    for path in (args.prj, args.xdi):  # refuse before computing, not after
        if path and Path(path).exists() and not args.overwrite and (Path(path).is_file() or any(Path(path).iterdir())):
            raise ValueError(f"{path} exists and is not empty; choose another or pass --overwrite")
    found = map_class_spectra(folder, stack=_read_stack(args) if args.stack else None)
    fields = [{"xafsmap.label": entry["label"], "xafsmap.pixels": count, "xafsmap.map": folder.absolute(),
               "xafsmap.composition": ", ".join(f"{k} {v:g}" for k, v in entry.get("composition", {}).items())}
              for entry, count in zip(found.classes, found.pixels)]
    comments = [[f"mean of the normalized spectra (Larch pre_edge flat, the map's windows) of the {count} pixels "
                 f"of class {entry['name']!r}"] for entry, count in zip(found.classes, found.pixels)]
    write_spectra(found.records, element=element, edge=edge, prj=args.prj, xdi=args.xdi, overwrite=args.overwrite,
                  numbers=[entry["label"] for entry in found.classes], fields=fields, comments=comments)
    if not args.quiet:
        where = " and ".join(p for p in (args.prj, args.xdi and f"{args.xdi}/") if p)
        skipped = f"; classes without pixels: {', '.join(found.empty)}" if found.empty else ""
        print(f"xafsmap: {len(found.records)} class spectra ({element} {edge}) written to {where}{skipped}",
              file=sys.stderr)
    return {"classes": [r.name for r in found.records], "empty": found.empty, "prj": args.prj, "xdi": args.xdi}


COMMANDS = {
    "map": run_map,
    "info": run_info,
    "calibrate": run_calibrate,
    "search-references": run_search,
    "compare-models": run_compare,
    "run": run_recipe_command,
    "export": run_export,
    "demo": run_demo,
}


def main(argv=None) -> int:
    """Entry point of the ``xafsmap`` command."""
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (ValueError, OSError) as error:
        message = str(error)
        if isinstance(error, OSError) and error.filename and error.strerror:
            message = f"{error.strerror}: {error.filename}"
        start = "\n" if sys.stderr.isatty() else ""  # after a progress line
        print(f"{start}xafsmap: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xafsmap: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
