"""Command line: map, explore, info, calibrate, search-references, compare-models, run, export, demo, train, series.

A contract other tools script against: options and output files are documented in
docs/cli.md. Each command turns its options into
:class:`~xafsmap.core.settings.schema.Settings` (:mod:`xafsmap.cli_options`) and calls
the job (:mod:`xafsmap.core.job`) that scripts, recipes and the napari docks call too.
Bad input ends with one line ``xafsmap: error: ...`` and a non-zero exit, and never
leaves partial output. Imports only the core (no napari, no Qt) unless the demo is
asked to open a viewer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from .cli_options import build_parser, settings_from_args

__all__ = ["main"]


def _progress(args, what: str = "mapping"):
    """Progress on one rewritten line, on a terminal only (logs stay clean)."""

    def report(done, total):
        if not args.quiet and sys.stderr.isatty():
            print(f"\rxafsmap: {what} {done}/{total}", end="" if done < total else "\n",
                  file=sys.stderr, flush=True)

    return report


def _print_alignment(alignment) -> None:
    """Say on stderr (whatever --quiet says) that the references were shifted."""
    from .core.spectra.energyscale import format_offset

    if alignment:
        print(f"xafsmap: aligned the references: {format_offset(alignment['offset_eV'], alignment['sigma_eV'])}",
              file=sys.stderr)


def _print_warnings(warnings) -> None:
    """Warnings go to stderr whatever --quiet says: they are about the result."""
    start = "\n" if sys.stderr.isatty() else ""
    for warning in warnings:
        print(f"{start}xafsmap: warning: {warning}", file=sys.stderr)
        start = ""


def _report_map(args, run) -> None:
    _print_alignment(run.params.get("alignment"))
    _print_warnings(run.warnings)
    if not args.quiet:
        counts = ", ".join(f"{name}: {n}" for name, n in run.class_counts.items())
        print(f"xafsmap: wrote {args.out} (held-out accuracy {run.accuracy:.3f}; {counts})", file=sys.stderr)


def run_map(args) -> Path:
    """``xafsmap map``: the settings of the options, mapped by :func:`~xafsmap.core.job.run_map`."""
    from .core.job import run_map as map_job

    run = map_job(settings_from_args(args), out=args.out, overwrite=args.overwrite, progress=_progress(args),
                  extra={"command": sys.argv[1:]})
    _report_map(args, run)
    return run.out


def run_explore(args) -> Path:
    """``xafsmap explore``: the settings of the options, explored by :func:`~xafsmap.core.job.run_explore`."""
    from .core.job import run_explore as explore_job

    result = explore_job(settings_from_args(args), out=args.out, overwrite=args.overwrite,
                         progress=_progress(args, "exploring"), extra={"command": sys.argv[1:]})
    if not args.quiet:
        learned = result.learned
        nmf = f", {learned.unmixing.spectra.shape[0]} NMF spectra" if learned.unmixing is not None else ""
        print(f"xafsmap: wrote {args.out} ({learned.components.n} components, {learned.clustering.k} clusters{nmf})",
              file=sys.stderr)
    return Path(args.out)


def run_recipe_command(args) -> Path:
    """``xafsmap run``: the settings of a recipe (``--zarr``, ``--workers``, ``--scheduler`` override it)."""
    from .core.job import run_map as map_job
    from .core.settings.recipe import read_recipe

    settings = settings_from_args(args, base=read_recipe(args.recipe))
    run = map_job(settings, out=args.out, overwrite=args.overwrite, progress=_progress(args), sources=[args.recipe])
    _report_map(args, run)
    return run.out


def run_info(args) -> dict:
    """``xafsmap info``: shape, energies, size and memory estimate, no pixel read."""
    from .core.io.stack import stack_info
    from .core.job import open_measurement

    info = stack_info(open_measurement(settings_from_args(args)))
    if args.json:
        print(json.dumps(info, indent=1, default=str))
    else:
        for key, value in info.items():
            print(f"{key:>22}: {value}")
    return info


def run_calibrate(args) -> Path:
    """``xafsmap calibrate``: shift.tif (with uncertainty), measured shifts and a report."""
    from .core.io.folders import atomic_folder, claim_output
    from .core.io.references import read_reference
    from .core.job import input_paths, open_measurement
    from .core.mapping.output import library_versions, write_tiff
    from .core.prepare.calibrate import calibrate
    from .core.prepare.shiftmap import describe_shift_map, write_shift_map

    settings = settings_from_args(args)
    sources = input_paths(settings)
    claim_output(args.out, sources=sources, overwrite=args.overwrite)
    foil = open_measurement(settings)
    reference = settings.calibration_reference
    ref = read_reference(reference) if reference else None
    shift_map = calibrate(foil.data, foil.energies, reference=None if ref is None else ref.mu,
                          reference_energies=None if ref is None else ref.energies,
                          degree=settings.degree, bin=settings.bin_size)
    report = {"xafsmap_calibration": 1, "foil": str(args.stack), "reference": reference,
              "mode": "absolute" if ref else "relative (median shift 0)", "degree": settings.degree,
              "bin": settings.bin_size, "residual_rms_eV": shift_map.residual_rms, "model": shift_map.model,
              "shift_range_eV": [float(shift_map.shift.min()), float(shift_map.shift.max())],
              "versions": library_versions()}
    with atomic_folder(args.out, overwrite=args.overwrite, sources=sources) as tmp:
        write_shift_map(tmp / "shift.tif", shift_map)
        write_tiff(tmp / "shift_measured.tif", shift_map.measured)
        (tmp / "report.json").write_text(json.dumps(report, indent=1, default=float))
    if not args.quiet:
        print(f"xafsmap: {describe_shift_map(shift_map)}; wrote {args.out}", file=sys.stderr)
    return Path(args.out)


def run_search(args) -> dict:
    """``xafsmap search-references``: unexplained regions and library candidates."""
    from .core.job import run_search as search_job

    summary = search_job(settings_from_args(args), out=args.out, overwrite=args.overwrite, progress=_progress(args))
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
    from .core.job import run_compare as compare_job

    summary = compare_job(settings_from_args(args), out=args.out, overwrite=args.overwrite,
                          progress=_progress(args))
    print(f"preferred: {summary['preferred']}")
    for warning in summary.get("warnings", []):
        print(f"warning: {warning}")
    return summary


def run_demo(args) -> Path:
    """``xafsmap demo``: write the sample measurement, map it like ``xafsmap map``, show it.

    Everything (the measurement in ``input/``, the maps, ``labels.png``) is written
    into one temporary folder that replaces ``--out`` when complete.
    """
    from dataclasses import replace

    from .core.io.folders import atomic_folder, claim_output
    from .core.io.tiff import write_stack
    from .core.job import map_into, prepare, references_for
    from .core.mapping.quicklook import write_label_png
    from .core.settings.declare import ReferenceSpec
    from .core.simulate.sample import bundled_reference_paths, make_sample

    out = claim_output(args.out, overwrite=args.overwrite)
    settings = settings_from_args(args)
    sample = make_sample(rng=settings.seed)
    paths = bundled_reference_paths()
    with atomic_folder(out, overwrite=args.overwrite) as tmp:
        (tmp / "input").mkdir()
        stack_path = write_stack(tmp / "input" / "sample.tif", sample.stack, sample.energies)
        settings = replace(settings, stack=str(stack_path),
                           references=tuple(ReferenceSpec(str(paths[ref.name])) for ref in sample.references))
        run = map_into(settings, prepare(settings), references_for(settings), tmp, progress=_progress(args),
                       moved=(tmp, out), extra={"command": sys.argv[1:]})
        write_label_png(tmp / "labels.png", tmp / "labels.tif", tmp / "classes.csv")
    _print_warnings(run.warnings)
    print(f"xafsmap: demo maps in {out}/ (quick-look: {out}/labels.png)", file=sys.stderr)
    if not args.no_view and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        from ._view import view_maps

        view_maps(out / "input" / "sample.tif", out)
    return out


def run_export(args) -> dict:
    """``xafsmap export``: each class's mean normalized spectrum as XDI files and/or an Athena project.

    The stack is reopened from the paths in the map's report.json (or ``--stack``) and
    prepared onto the map's grid (:func:`~xafsmap.core.mapping.mapspectra.map_class_spectra`);
    everything is computed before anything is written, and the XDI folder and the
    project appear together or not at all (:func:`~xafsmap.core.io.export.write_spectra`).
    """
    from .core.io.export import write_spectra
    from .core.job import open_measurement
    from .core.mapping.mapspectra import map_class_spectra, references_element

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
    stack = open_measurement(settings_from_args(args)) if args.stack else None
    found = map_class_spectra(folder, stack=stack)
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


def run_train(args) -> Path:
    """``xafsmap train``: train on a stack as ``map`` would, and save the model (:func:`~xafsmap.core.job.run_train`)."""
    from .core.job import run_train as train_job

    run = train_job(settings_from_args(args), out=args.out, overwrite=args.overwrite, progress=_progress(args, "training"))
    _print_alignment(run.model.params.get("alignment"))
    _print_warnings(run.model.warnings)
    if not args.quiet:
        classes = run.model.classifier.classes
        print(f"xafsmap: wrote {run.path} ({len(classes)} classes over {', '.join(classes.references)}; held-out "
              f"accuracy {run.model.classifier.accuracy:.3f})", file=sys.stderr)
    return run.path


def run_series(args) -> Path:
    """``xafsmap series``: every stack mapped with one model, series.csv and series.png (:func:`~xafsmap.core.job.run_series`)."""
    from .core.job import run_series as series_job

    def note(text):
        print(f"xafsmap: {text}", file=sys.stderr)

    run = series_job(settings_from_args(args), out=args.out, overwrite=args.overwrite,
                     progress=_progress(args, "series"), note=note)
    _print_warnings(run.warnings)
    if not args.quiet:
        skipped = f", {len(run.skipped)} already done" if run.skipped else ""
        print(f"xafsmap: wrote {run.out}/series.csv ({len(run.mapped)} stacks mapped{skipped}; model "
              f"{run.model})", file=sys.stderr)
    return run.out


COMMANDS = {
    "train": run_train,
    "series": run_series,
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
