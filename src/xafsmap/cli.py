"""Command line: ``xafsmap map``, ``xafsmap info`` and ``xafsmap demo``.

A contract other tools script against: options and output files are documented in
docs/cli.md. Bad input ends with one line ``xafsmap: error: ...`` and a non-zero exit,
and never leaves partial output. Imports only the core (no napari, no Qt) unless the
demo is asked to open a viewer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _add_stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stack", help="multi-page TIFF, folder or glob of one TIFF per energy, or STXM .hdr")
    parser.add_argument("--energies", help="energies file (one per line, or CSV with an 'energy' column)")
    parser.add_argument("--flat", help="flat (I0) image(s): the stack is then transmitted counts")
    parser.add_argument("--dark", help="dark image(s), subtracted from stack and flat")
    parser.add_argument("--i0", help="incident-intensity spectrum (energy, counts), e.g. STXM i0.xsp")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xafsmap", description="Chemical-state maps from imaging-XAFS stacks.")
    parser.add_argument("--version", action="version", version=f"xafsmap {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    mapper = commands.add_parser("map", help="map a stack into classes, fractions and trust maps")
    _add_stack_options(mapper)
    mapper.add_argument("--reference", action="append", required=True, metavar="REF",
                        help="reference file, or FILE:NAME for one record of a .prj/.nor (repeat)")
    mapper.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    mapper.add_argument("--offset", action="append", default=[], metavar="NAME=EV",
                        help="energy offset of one reference in eV, added to its energies (repeat)")
    mapper.add_argument("--mixtures", default="pairs",
                        help="'pairs' (25/50/75 %%, default), 'pairs:20,40,60,80', 'none', "
                             "or 'A=50,B=50;B=25,C=75'")
    mapper.add_argument("--metric", default="euclidean", choices=("euclidean", "manhattan", "jensen-shannon"))
    mapper.add_argument("--features", default="derivative", choices=("derivative", "spectrum"))
    mapper.add_argument("--smooth", type=int, default=5, help="Savitzky-Golay window before features (points)")
    mapper.add_argument("--spectra-per-class", type=int, default=1000, dest="n_per_class")
    mapper.add_argument("--trees", type=int, default=100, dest="n_trees")
    mapper.add_argument("--threshold", type=float, help="edge-step threshold of the no-sample mask")
    for name in ("e0", "pre1", "pre2", "norm1", "norm2"):
        mapper.add_argument(f"--{name}", type=float, help=f"normalization {name} (eV, Larch meaning)")
    mapper.add_argument("--nnorm", type=int, help="post-edge polynomial degree (Larch meaning)")
    mapper.add_argument("--seed", type=int, default=0, help="seed of training set and forest (default 0)")
    mapper.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    mapper.add_argument("--quiet", action="store_true", help="no progress on stderr")

    info = commands.add_parser("info", help="describe a stack without reading its pixels")
    _add_stack_options(info)
    info.add_argument("--json", action="store_true", help="print JSON")

    demo = commands.add_parser("demo", help="map the built-in synthetic sample measurement")
    demo.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    demo.add_argument("--no-view", action="store_true", help="do not open napari even with a display")
    demo.add_argument("--seed", type=int, default=0)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _read_stack(args):
    from .core.io import find_energies_file, read_stack

    energies = args.energies
    if energies is None and not str(args.stack).endswith(".hdr"):
        found = find_energies_file(args.stack)
        energies = str(found) if found else None
    return read_stack(args.stack, energies=energies, flat=args.flat, dark=args.dark, i0=args.i0)


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


def _inputs(stack, reference_specs) -> dict:
    from .core.output import file_sha256

    inputs = {}
    for role, path in stack.sources.items():
        files = sorted(Path(path).glob("*")) if Path(path).is_dir() else [Path(path)]
        inputs[role] = {"path": str(path), "sha256": {f.name: file_sha256(f) for f in files if f.is_file()}}
    inputs["references"] = [
        {"spec": spec, "sha256": file_sha256(_reference_file(spec))} for spec in reference_specs
    ]
    return inputs


def _reference_file(spec: str) -> Path:
    path = Path(spec)
    if not path.exists() and ":" in spec:
        path = Path(spec.rsplit(":", 1)[0])
    return path


def _progress(quiet: bool):
    def report(done, total):
        if not quiet:
            print(f"\rxafsmap: mapping {done}/{total}", end="" if done < total else "\n",
                  file=sys.stderr, flush=True)

    return report


def run_map(args) -> Path:
    """``xafsmap map``: read, map, write; returns the output folder."""
    from .core.output import check_output_folder, write_maps
    from .core.pipeline import iter_map
    from .core.references import read_reference

    check_output_folder(args.out, overwrite=args.overwrite)
    tic = time.perf_counter()
    stack = _read_stack(args)
    references = [read_reference(spec) for spec in args.reference]
    names = [ref.name for ref in references]
    if len(set(names)) != len(names):
        raise ValueError(f"two references share a name: {names}; name records as FILE:NAME or rename a file")
    options = {name: getattr(args, name) for name in ("e0", "pre1", "pre2", "norm1", "norm2", "nnorm")}
    generator = iter_map(
        stack, references, offsets=_offsets(args.offset, names), mixtures=args.mixtures, metric=args.metric,
        features=args.features, smooth=args.smooth, n_per_class=args.n_per_class, n_trees=args.n_trees,
        threshold=args.threshold, rng=args.seed, **options,
    )
    result = _drive(generator, _progress(args.quiet))
    result.timings["total_s"] = time.perf_counter() - tic
    out = write_maps(result, args.out, overwrite=args.overwrite, inputs=_inputs(stack, args.reference),
                     extra={"command": sys.argv[1:] if sys.argv else []})
    if not args.quiet:
        counts = ", ".join(f"{name}: {n}" for name, n in result.class_counts.items())
        print(f"xafsmap: wrote {out} (held-out accuracy {result.classifier.accuracy:.3f}; {counts})",
              file=sys.stderr)
    return out


def _drive(generator, callback):
    while True:
        try:
            callback(*next(generator))
        except StopIteration as stop:
            return stop.value


def run_info(args) -> dict:
    """``xafsmap info``: shape, energies, size and memory estimate, no pixel read."""
    from .core.io import stack_info

    info = stack_info(_read_stack(args))
    if args.json:
        print(json.dumps(info, indent=1, default=str))
    else:
        for key, value in info.items():
            print(f"{key:>16}: {value}")
    return info


def run_demo(args) -> Path:
    """``xafsmap demo``: write the sample measurement, map it like ``xafsmap map``, show it."""
    from .core.io import write_stack
    from .core.output import check_output_folder
    from .core.sample import bundled_reference_paths, make_sample

    out = check_output_folder(args.out, overwrite=args.overwrite)
    sample = make_sample(rng=args.seed)
    inputs = Path(out.absolute().parent / f".{out.name}.inputs")
    inputs.mkdir(parents=True, exist_ok=True)
    stack_path = write_stack(inputs / "sample.tif", sample.stack, sample.energies)
    paths = bundled_reference_paths()
    argv = ["map", str(stack_path), "--out", str(out), "--seed", str(args.seed)]
    for ref in sample.references:
        argv += ["--reference", str(paths[ref.name])]
    if args.overwrite:
        argv.append("--overwrite")
    run_map(_parser().parse_args(argv))
    _move_inputs(inputs, out / "input")
    _write_quicklook(out)
    print(f"xafsmap: demo maps in {out}/ (quick-look: {out}/labels.png)", file=sys.stderr)
    if not args.no_view and _has_display():
        from ._view import view_maps

        view_maps(out / "input" / "sample.tif", out)
    return out


def _move_inputs(source: Path, target: Path) -> None:
    import shutil

    shutil.move(str(source), str(target))


def _write_quicklook(out: Path) -> Path:
    from .core.quicklook import write_label_png

    return write_label_png(out / "labels.png", out / "labels.tif", out / "classes.csv")


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


COMMANDS = {"map": run_map, "info": run_info, "demo": run_demo}


def main(argv=None) -> int:
    """Entry point of the ``xafsmap`` command."""
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (ValueError, OSError) as error:
        message = str(error) if not isinstance(error, OSError) or not error.filename else (
            f"{error.strerror}: {error.filename}")
        print(f"xafsmap: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xafsmap: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
