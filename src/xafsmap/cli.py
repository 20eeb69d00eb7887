"""Command line: map, explore, info, calibrate, search-references, compare-models, run, export, demo.

A contract other tools script against: options and output files are documented in
docs/cli.md. Bad input ends with one line ``xafsmap: error: ...`` and a non-zero exit,
and never leaves partial output. Imports only the core (no napari, no Qt) unless the
demo is asked to open a viewer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .cli_options import build_parser, check_options, option_sources, parse_offset

__all__ = ["main"]


def _progress(args, what: str = "mapping"):
    """Progress on one rewritten line, on a terminal only (logs stay clean)."""

    def report(done, total):
        if not args.quiet and sys.stderr.isatty():
            print(f"\rxafsmap: {what} {done}/{total}", end="" if done < total else "\n",
                  file=sys.stderr, flush=True)

    return report


def _claim(args) -> Path:
    from .core.output import claim_output

    return claim_output(args.out, sources=option_sources(args), overwrite=args.overwrite)


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
        name, value = parse_offset(item)
        if name not in offsets:
            raise ValueError(f"--offset {item!r} must read NAME=EV with NAME one of {list(names)}")
        offsets[name] = value
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


def _inputs(stack, reference_specs, stop, moved=None) -> dict:
    """sha256 of every input file (stops early once ``stop`` is set); ``moved`` = (tmp, out)
    records files written into a temporary output folder at their final place."""
    from .core.output import file_sha256
    from .core.references import split_spec

    inputs = {}
    for role, path in stack.sources.items():
        path = Path(path)
        files = sorted(path.parent.glob(path.name) if "*" in path.name else
                       path.iterdir() if path.is_dir() else [path])
        shown = str(path) if moved is None else str(path).replace(str(moved[0]), str(moved[1]))
        inputs[role] = {"path": shown, "sha256": {f.name: file_sha256(f, stop=stop) for f in files if f.is_file()}}
    inputs["references"] = [{"spec": spec, "sha256": file_sha256(split_spec(spec)[0], stop=stop)}
                            for spec in reference_specs]
    return inputs


def _map_job(args) -> dict:
    """Read and check everything a map needs (headers and references; no pixel) before any work."""
    from .core.limits import check_maps_memory, check_training
    from .core.synthesize import make_classes

    stack, shift_map, extra = _prepared_stack(args)
    references = _references(args.reference)
    names = [r.name for r in references]
    options = dict(
        offsets=_offsets(args.offset, names), mixtures=args.mixtures,
        features=args.features, smooth=args.smooth, n_per_class=args.n_per_class, n_trees=args.n_trees,
        threshold=args.threshold, noise=args.noise, rng=args.seed, align_references=args.align_references,
        thick=args.thick, **_normalization(args),
    )
    e, rows, cols = stack.data.shape
    check_training(n_classes=len(make_classes(names, mixtures=args.mixtures)), n_per_class=args.n_per_class,
                   n_energies=e, n_trees=args.n_trees)
    distributed = bool(args.scheduler or args.workers)
    check_maps_memory(rows=rows, cols=cols, k=len(references), zarr=args.zarr and not distributed)
    return dict(stack=stack, shift_map=shift_map, extra=extra, references=references, options=options)


def _map_into(args, job, folder, maps, *, moved=None):
    """Map as ``job`` says and write the result into ``folder``; returns (result, class counts)."""
    from .core.output import write_map_files
    from .core.pipeline import drive, iter_map

    tic = time.perf_counter()
    stack, references, options = job["stack"], job["references"], job["options"]
    # sha256 of the inputs (seconds for GB) runs beside the job: it reads the files
    # sequentially, at the disk's own speed, while training leaves a core idle
    stop = threading.Event()
    hasher = ThreadPoolExecutor(max_workers=1)
    inputs = hasher.submit(_inputs, stack, args.reference, stop, moved)
    try:
        if args.scheduler or args.workers:
            result = _map_distributed(args, stack, references, options)
        else:
            generator = iter_map(stack, references, metric=args.metric, maps=maps, **options)
            result = drive(generator, _progress(args))
        result.timings["total_s"] = time.perf_counter() - tic
        extra = {**job["extra"], "command": sys.argv[1:]}
        write_map_files(result, folder, maps=maps, inputs=inputs.result(), extra=extra, shift_map=job["shift_map"])
        counts = ", ".join(f"{name}: {n}" for name, n in result.class_counts.items())  # before the store moves
    finally:
        stop.set()  # an error exit does not wait for the hash of a huge input
        hasher.shutdown(wait=False, cancel_futures=True)
    return result, counts


def run_map(args) -> Path:
    """``xafsmap map``: read, prepare, map, write; returns the output folder.

    With ``--zarr`` the bands are mapped straight into ``maps.ome.zarr`` in the (still
    temporary) output folder, so the maps never are in memory whole.
    """
    from .core.output import map_output
    from .core.pipeline import band_rows

    out = _claim(args)
    job = _map_job(args)
    _, rows, cols = job["stack"].data.shape
    with map_output(out, k=len(job["references"]), rows=rows, cols=cols, band=band_rows(job["stack"].data.shape),
                    zarr=args.zarr, overwrite=args.overwrite, sources=option_sources(args)) as (folder, maps):
        result, counts = _map_into(args, job, folder, maps)
    _print_alignment(result.params.get("alignment"))
    _print_warnings(result.warnings)
    if not args.quiet:
        print(f"xafsmap: wrote {args.out} (held-out accuracy {result.classifier.accuracy:.3f}; {counts})",
              file=sys.stderr)
    return Path(args.out)


def run_explore(args) -> Path:
    """``xafsmap explore``: components, clusters, NMF and edge maps, written all-or-nothing like map."""
    from .core.explore import explore_options, iter_explore, prepare_exploration, write_explore_files
    from .core.limits import check_maps_memory
    from .core.output import atomic_folder
    from .core.pipeline import drive
    from .core.prepare import parse_roi

    options = explore_options(components=args.components, clusters=args.clusters, method=args.cluster_method,
                              nmf=args.nmf)
    out = _claim(args)
    stack, shift, extra = prepare_exploration(
        _read_stack(args), shift_map=_shift_map(args), register=args.register,
        roi=parse_roi(args.roi) if args.roi else None, factor=args.bin,
        calibration={"source": args.shift_map or args.calibration, "reference": args.calibration_reference})
    _, rows, cols = stack.data.shape
    check_maps_memory(rows=rows, cols=cols, k=(options["nmf"] or 0) + 12)
    generator = iter_explore(stack, **options, shift=shift, threshold=args.threshold,
                             norm_params=_normalization(args), rng=args.seed)
    result = drive(generator, _progress(args, "exploring"))
    with atomic_folder(out, overwrite=args.overwrite, sources=option_sources(args)) as tmp:
        write_explore_files(result, tmp, extra={**extra, "command": sys.argv[1:], "stack": stack.sources})
    if not args.quiet:
        learned = result.learned
        nmf = f", {learned.unmixing.spectra.shape[0]} NMF spectra" if learned.unmixing is not None else ""
        print(f"xafsmap: wrote {args.out} ({learned.components.n} components, {learned.clustering.k} clusters{nmf})",
              file=sys.stderr)
    return Path(args.out)


def _print_alignment(alignment) -> None:
    """Say on stderr (whatever --quiet says) that the references were shifted."""
    from .core.energyscale import format_offset

    if alignment:
        print(f"xafsmap: aligned the references: {format_offset(alignment['offset_eV'], alignment['sigma_eV'])}",
              file=sys.stderr)


def _print_warnings(warnings) -> None:
    """Warnings go to stderr whatever --quiet says: they are about the result."""
    start = "\n" if sys.stderr.isatty() else ""
    for warning in warnings:
        print(f"{start}xafsmap: warning: {warning}", file=sys.stderr)
        start = ""


def _map_distributed(args, stack, references, options):
    """Train here, then map the bands on a dask.distributed cluster (same maps).

    The cluster is reached first, so an unreachable scheduler fails before training.
    The stack may be registered, calibrated, cropped and binned: workers re-read the
    files and redo that preparation (the drift and shift map travel to them once).
    """
    from .core.parallel import iter_map_distributed, open_client
    from .core.pipeline import drive
    from .core.training import train_model

    with open_client(scheduler=args.scheduler, workers=args.workers) as client:
        tic = time.perf_counter()
        model = train_model(stack, references, **options)
        train_s = time.perf_counter() - tic
        result = drive(iter_map_distributed(stack, model, client=client, metric=args.metric), _progress(args))
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
    from .core.output import atomic_folder, library_versions, write_tiff
    from .core.references import read_reference

    _claim(args)
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
    with atomic_folder(args.out, overwrite=args.overwrite, sources=option_sources(args)) as tmp:
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

    _claim(args)
    stack, _, _ = _prepared_stack(args)
    references = _references(args.reference)
    summary = search_references(
        stack, references, args.library, out=args.out, overwrite=args.overwrite, progress=_progress(args),
        sources=option_sources(args), false_alarm=args.false_alarm, pool=args.pool, threshold=args.threshold,
        offsets=_offsets(args.offset, [r.name for r in references]), align_references=args.align_references,
        **_normalization(args),
    )
    _print_alignment(summary["alignment"])
    _print_warnings(summary["warnings"])
    print(f"{summary['flagged_pixels']} of {summary['sample_pixels']} sample pixels unexplained "
          f"in {len(summary['regions'])} regions")
    for region in summary["regions"]:
        best = ", ".join(f"{c['name']} ({c['score']:.3f})" for c in region["candidates"][:3])
        print(f"region {region['region']} ({region['pixels']} px): {best or 'no candidate covers the edge'}")
    for item in summary["skipped"]:
        print(f"xafsmap: note: skipped {item['source']}: {item['reason']}", file=sys.stderr)
    return summary


def run_compare(args) -> dict:
    """``xafsmap compare-models``: per-pixel and whole-image preferred reference set."""
    from .core.assess import compare_models

    _claim(args)
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
                             sources=option_sources(args), criterion=args.criterion)
    print(f"preferred: {summary['preferred']}")
    for warning in summary.get("warnings", []):
        print(f"warning: {warning}")
    return summary


def run_recipe_command(args) -> Path:
    """``xafsmap run``: reproduce a recipe's maps, and print the warnings its report records."""
    from .core.recipe import read_recipe, recipe_paths, run_recipe

    recipe = read_recipe(args.recipe)
    if args.zarr:
        from dataclasses import replace

        recipe = replace(recipe, zarr=True)
    sources = [args.recipe, *recipe_paths(recipe)]
    out = _claim(args)
    with contextlib.ExitStack() as stack:
        client = None
        if args.scheduler or args.workers:
            from .core.parallel import open_client

            client = stack.enter_context(open_client(scheduler=args.scheduler, workers=args.workers))
        run_recipe(recipe, out=out, overwrite=args.overwrite, progress=_progress(args), client=client,
                   sources=sources)
    report = json.loads((out / "report.json").read_text())
    _print_alignment(report["parameters"].get("alignment"))
    _print_warnings(report.get("warnings", []))
    return out


def run_demo(args) -> Path:
    """``xafsmap demo``: write the sample measurement, map it like ``xafsmap map``, show it.

    Everything (the measurement in ``input/``, the maps, ``labels.png``) is written
    into one temporary folder that replaces ``--out`` when complete.
    """
    from .core.io import write_stack
    from .core.output import atomic_folder
    from .core.quicklook import write_label_png
    from .core.sample import bundled_reference_paths, make_sample

    out = _claim(args)
    sample = make_sample(rng=args.seed)
    paths = bundled_reference_paths()
    with atomic_folder(out, overwrite=args.overwrite) as tmp:
        (tmp / "input").mkdir()
        stack_path = write_stack(tmp / "input" / "sample.tif", sample.stack, sample.energies)
        argv = ["map", str(stack_path), "--out", str(out), "--seed", str(args.seed)]
        argv += [arg for ref in sample.references for arg in ("--reference", str(paths[ref.name]))]
        map_args = build_parser().parse_args(argv + ["--quiet"] * args.quiet)
        check_options(map_args)
        result, _ = _map_into(map_args, _map_job(map_args), tmp, None, moved=(tmp, out))
        write_label_png(tmp / "labels.png", tmp / "labels.tif", tmp / "classes.csv")
    _print_warnings(result.warnings)
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
    "explore": run_explore,
    "info": run_info,
    "calibrate": run_calibrate,
    "search-references": run_search,
    "compare-models": run_compare,
    "run": run_recipe_command,
    "export": run_export,
    "demo": run_demo,
}


@contextlib.contextmanager
def _notes():
    """Notes of the core (``xafsmap`` logger: a repaired output folder) as ``xafsmap: note:`` lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("xafsmap: note: %(message)s"))
    logger = logging.getLogger("xafsmap")
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def main(argv=None) -> int:
    """Entry point of the ``xafsmap`` command."""
    args = build_parser().parse_args(argv)
    try:
        with _notes():
            check_options(args)
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
