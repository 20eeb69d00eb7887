"""The command line's options, generated from the settings' declarations.

Every option that is a setting of the session comes from
:data:`~xafsmap.core.settings.schema.SETTINGS` (flag, help, default, range, choices,
which commands take it); :func:`settings_from_args` turns the parsed options back into
:class:`~xafsmap.core.settings.schema.Settings`, checking every value before any work
and naming it by its flag. What is not a setting (``--out``, ``--overwrite``,
``--quiet`` and a few command-specific switches) is declared here. Imports only the
standard library (and the declarations) until called.
"""

from __future__ import annotations

import argparse
import math

from .core.settings.schema import COMMANDS, SETTINGS, Settings
from .core.settings.declare import ReferenceSpec, Setting

__all__ = ["Parser", "build_parser", "flag_name", "settings_from_args", "takes", "version"]

#: Help of each command.
HELP = {
    "map": "map a stack into classes, fractions and trust maps",
    "explore": "components, clusters, NMF and edge maps of a stack, no references needed",
    "info": "describe a stack without reading its pixels",
    "calibrate": "measure the energy-shift map from a foil stack",
    "search-references": "flag unexplained pixels, rank library candidates",
    "compare-models": "compare reference sets for parsimony (BIC)",
    "run": "reproduce a recipe exported from the napari docks",
    "export": "class spectra of a map as XDI files and an Athena project",
    "demo": "map the built-in synthetic sample measurement",
    "train": "train a model on a stack and save it (for --model)",
    "series": "map many stacks with one model: DIR/<stack>/ maps, series.csv and series.png",
}
#: Commands that take every setting another command takes (``xafsmap series`` takes map's options).
TAKES_OPTIONS_OF = {"series": "map", "train": "map"}
#: Settings of the command they borrow from that a borrowing command leaves out.
LEAVES_OUT = {"series": ("stack",), "train": ("metric", "zarr", "workers", "scheduler", "model")}
#: Settings given as a repeated option (``--reference A --reference B``); required where they apply.
REPEATED = {"references": True, "library": True, "sets": True}
#: Settings of which at most one may be given.
EXCLUSIVE = (("workers", "scheduler"),)


def version() -> str:
    """The installed xafsmap version."""
    from . import __version__

    return __version__


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (the contract: one line per error)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def flag_name(name: str) -> str:
    """The flag of a setting: ``n_trees`` -> ``--trees``."""
    return SETTINGS[name].cli_flag if name in SETTINGS else "--" + name.replace("_", "-")


def _range(item: Setting) -> str:
    """``'1 to 10000'``, ``'above 0, at most 1000'``, ``'at least 0'``."""
    if item.high is None or math.isinf(item.high):
        return f"{'above' if item.open_low else 'at least'} {item.low:g}"
    if item.open_low:
        return f"above {item.low:g}, {'below' if item.open_high else 'at most'} {item.high:g}"
    return f"{item.low:g} to {item.high:g}"


def _help(item: Setting) -> str:
    """The declaration's help with its range, unit and default (``%`` escaped for argparse)."""
    text = item.help
    unit = f" {item.unit}" if item.unit else ""
    if item.kind in ("int", "float") and item.low is not None:
        default = item.auto if item.optional else f"{item.default:g}"
        text += f" ({_range(item)}{unit}; default {default})"
    elif item.kind == "range":
        text += f" ({_range(item)}{unit}; default {item.default[0]:g} {item.default[1]:g})"
    elif item.optional and item.auto:
        text += f" (default: {item.auto})"
    elif item.kind in ("choice", "text"):
        text += f" (default {item.default})"
    return text.replace("%", "%%")


def _add(parser, item: Setting, command: str) -> None:
    """One setting as an option of ``command`` (argparse default None: not given)."""
    flag, help_text = item.cli_flag, _help(item)
    options = dict(dest=item.name, help=help_text, default=None)
    if item.metavar:
        options["metavar"] = item.metavar
    if item.kind == "flag":
        parser.add_argument(flag, action="store_true", **options)
    elif item.name in REPEATED:
        parser.add_argument(flag, action="append", required=REPEATED[item.name], **options)
    elif item.kind == "range":
        parser.add_argument(flag, nargs=2, type=float, **options)
    elif item.kind == "choice":
        parser.add_argument(flag, choices=item.choices, **options)
    elif item.kind == "int":
        parser.add_argument(flag, type=_int_or_auto if item.optional else int, **options)
    elif item.kind == "float":
        parser.add_argument(flag, type=float, **options)
    else:
        parser.add_argument(flag, **options)


def _int_or_auto(text: str) -> int | None:
    """A whole number, or ``auto`` (None: the setting's automatic value)."""
    if text.strip().lower() == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a whole number or auto, not {text!r}") from None


def takes(command: str, item: Setting) -> bool:
    """Whether ``xafsmap command`` takes the setting as an option (its own or borrowed, :data:`TAKES_OPTIONS_OF`)."""
    if command in item.commands:
        return True
    borrowed = TAKES_OPTIONS_OF.get(command)
    return borrowed in item.commands and item.name not in LEAVES_OUT.get(command, ())


def add_settings(parser: argparse.ArgumentParser, command: str) -> None:
    """Every setting ``command`` takes, as options; the stack positional (``--stack`` for export)."""
    groups = {}
    for pair in EXCLUSIVE:  # a group only where the command takes them: argparse's help fails on an empty one
        if all(takes(command, SETTINGS[name]) for name in pair):
            group = parser.add_mutually_exclusive_group()
            groups.update(dict.fromkeys(pair, group))
    for item in SETTINGS.values():
        if not takes(command, item):
            continue
        if item.name == "stacks":
            parser.add_argument("stacks", nargs="*", metavar="STACK", help=item.help)
            continue
        if item.name == "stack" and command != "export":
            parser.add_argument("stack", help=item.help if command != "calibrate" else
                                "calibration stack (uniform foil), as a stack of xafsmap map")
            continue
        _add(groups.get(item.name, parser), item, command)
        if item.kind == "references":
            parser.add_argument("--offset", action="append", default=None, metavar="NAME=EV",
                                help="energy offset of one reference in eV, added to its energies (repeat)")
    if command == "calibrate":
        parser.add_argument("--reference", dest="calibration_reference", metavar="REF",
                            help="foil reference spectrum (absolute calibration)")


#: What ``--out`` and ``--overwrite`` mean where they are not a map folder.
OUTPUT_HELP = {
    "train": ("model file to write (.npz)", "replace a model file"),
    "series": ("series folder: DIR/<stack name>/ maps, series.csv, series.png (new, empty, or a series folder "
               "to resume)", "map again the stacks whose maps are already done"),
}


def _output_options(parser: argparse.ArgumentParser, *, required: bool = True, command: str = "") -> None:
    out, overwrite = OUTPUT_HELP.get(command, ("output folder (must not exist or be empty)",
                                               "replace an output folder xafsmap wrote before (never one holding "
                                               "other files)"))
    parser.add_argument("--out", required=required, help=out)
    parser.add_argument("--overwrite", action="store_true", help=overwrite)
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def build_parser() -> argparse.ArgumentParser:
    """The ``xafsmap`` parser and its subcommands."""
    parser = Parser(prog="xafsmap", description="Chemical-state maps from imaging-XAFS stacks.")
    parser.add_argument("--version", action="version", version=f"xafsmap {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    sub = {name: commands.add_parser(name, help=HELP[name]) for name in COMMANDS}
    for name, command in sub.items():
        if name == "run":
            command.add_argument("recipe", help="recipe TOML file")
        if name == "export":
            command.add_argument("maps", metavar="OUTDIR", help="folder written by xafsmap map (report.json, "
                                 "labels.tif)")
        add_settings(command, name)
        if name not in ("info", "export"):
            _output_options(command, required=name != "demo", command=name)
    sub["info"].add_argument("--json", action="store_true", help="print JSON")
    sub["demo"].set_defaults(out="demo-output")
    sub["demo"].add_argument("--no-view", action="store_true", help="do not open napari even with a display")
    export = sub["export"]
    export.add_argument("--prj", metavar="FILE.prj", help="write every class spectrum into this Athena project")
    export.add_argument("--xdi", metavar="DIR", help="write one XDI file per class into this folder")
    export.add_argument("--element", help="absorber symbol for XDI/Athena (default: the references' XDI headers)")
    export.add_argument("--edge", help="absorption edge, e.g. K or L3 (default: the references' XDI headers)")
    export.add_argument("--overwrite", action="store_true", help="replace existing --prj/--xdi outputs")
    export.add_argument("--quiet", action="store_true", help="print nothing on success")
    return parser


def _value(item: Setting, raw, args):
    """A parsed option as the setting's value, checked; named by its flag."""
    from .core.settings.values import check_field, check_number, parse_compositions, parse_roi, parse_set

    where = item.cli_flag
    if item.kind == "roi":
        value = parse_roi(raw)
    elif item.kind == "range":
        value = tuple(raw)
    elif item.kind == "names":
        value = tuple(v.strip() for v in raw.split(",") if v.strip())
    elif item.kind == "matrix":
        value = parse_compositions(raw, where=where)
    elif item.kind == "paths":
        value = tuple(raw)
    elif item.kind == "sets":
        value = tuple(parse_set(text, where=where) for text in raw)
    elif item.kind == "references":
        value = _references(raw, args.offset or ())
    else:
        value = raw
    if item.kind in ("int", "float"):
        value = check_number(item, value, where)
    if item.kind == "range":
        for v in value:
            if not math.isfinite(v):
                raise ValueError(f"{where} {v} is not a finite number")
    check_field(item, value, where)
    return value


def _references(specs, offsets) -> tuple[ReferenceSpec, ...]:
    """``--reference`` specs with their ``--offset NAME=EV`` (names read from the files when needed)."""
    from .core.settings.values import parse_offset

    given = dict(parse_offset(item) for item in offsets)
    if not given:
        return tuple(ReferenceSpec(spec) for spec in specs)
    from .core.io.references import read_reference

    names = [read_reference(spec).name for spec in specs]
    for item, (name, _) in zip(offsets, (parse_offset(o) for o in offsets)):
        if name not in names:
            raise ValueError(f"--offset {item!r} must read NAME=EV with NAME one of {names}")
    return tuple(ReferenceSpec(spec, None, given.get(name, 0.0)) for spec, name in zip(specs, names))


def settings_from_args(args: argparse.Namespace, *, base: Settings | None = None) -> Settings:
    """The :class:`Settings` of a command line: ``base`` (default the defaults) with the options given.

    Every value is checked (range, choices, text forms) and named by its flag.

    Raises
    ------
    ValueError
        ``'--trees 0 is out of range: it must lie between 1 and 10000'`` and the like.
    """
    from dataclasses import replace

    from .core.mapping.parallel import scheduler_address
    from .core.settings.values import check_settings

    from .core.settings.values import parse_offset

    for item in getattr(args, "offset", None) or ():
        parse_offset(item)  # a malformed offset is named before any file is read
    given = {}
    for item in SETTINGS.values():
        raw = getattr(args, item.name, None)
        if raw is None or (item.kind == "flag" and raw is False):
            continue
        given[item.name] = _value(item, raw, args)
    if given.get("scheduler"):
        scheduler_address(given["scheduler"])
    settings = replace(base, **given) if base is not None else Settings(**given)
    if args.command in ("map", "train", "search-references", "compare-models"):
        check_settings(settings, name=flag_name, job="map" if args.command == "train" else args.command)
    return settings
