"""Every setting is declared once: the command line and the recipe expose it with the declared
default, range and choices (the docks: tests/gui/test_settings_controls.py).

The test walks :data:`SETTINGS`; a new setting is covered without a line here.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re

import pytest

from xafsmap.cli_options import build_parser, settings_from_args
from xafsmap.core.settings import DEFAULTS, SETTINGS, ReferenceSpec, Settings, read_recipe, write_recipe
from xafsmap.core.settings.recipe import settings_to_dict
from xafsmap.core.settings.schema import COMMANDS, SECTIONS

#: Settings no command line takes, and why.
NOT_ON_THE_COMMAND_LINE = {"sample": "the built-in sample is mapped by `xafsmap demo`"}
#: What each command needs besides its options, to parse.
REQUIRED = {
    "map": ["s.tif", "--reference", "Fe.xdi", "--out", "o"], "explore": ["s.tif", "--out", "o"],
    "search-references": ["s.tif", "--reference", "Fe.xdi", "--library", "lib", "--out", "o"],
    "compare-models": ["s.tif", "--set", "a=Fe.xdi", "--set", "b=FeO.xdi", "--out", "o"],
    "calibrate": ["foil.tif", "--out", "o"], "info": ["s.tif"], "run": ["r.toml", "--out", "o"],
    "export": ["maps"], "demo": [],
    "train": ["s.tif", "--reference", "Fe.xdi", "--out", "m.npz"], "series": ["--reference", "Fe.xdi", "--out", "o"],
}


def _action(command: str, name: str):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return next((a for a in sub._actions if a.dest == name), None)


def _sample_value(item):
    """A valid value of a setting other than its default."""
    kind = item.kind
    if kind == "int":
        high = item.high if item.high is not None else item.low + 10
        return int(min(high, item.low + 1 if item.default != item.low + 1 else item.low + 2))
    if kind == "float":
        high = item.high if item.high is not None and math.isfinite(item.high) else item.low + 10
        return float(item.low + (high - item.low) / 3)
    if kind == "choice":
        return item.choices[-1]
    return {"flag": True, "path": "/data/file.tif", "paths": ("/data/lib",),
            "range": (-20.0, 60.0), "roi": (1, 9, 2, 12), "names": ("a", "b"), "matrix": ((1.0, 0.0), (0.5, 0.5)),
            "references": (ReferenceSpec("/refs/Fe.xdi", "metal", 0.5), ReferenceSpec("/refs/FeO.xdi")),
            "sets": (("two", ("/refs/Fe.xdi", "/refs/FeO.xdi")),),
            "text": {"mixtures": "pairs:50", "axes": "XYE", "scheduler": "tcp://host:8786"}.get(item.name)}[kind]


def test_every_declaration_is_complete():
    for item in SETTINGS.values():
        assert item.section in (*SECTIONS, "reference"), item.name
        assert item.help and item.kind, item.name
        assert set(item.commands) <= set(COMMANDS), item.name
        if item.kind in ("int", "float"):
            assert item.low is not None, item.name
        if item.kind == "choice":
            assert item.default is None or item.default in item.choices, item.name
        if item.name not in NOT_ON_THE_COMMAND_LINE:
            assert item.commands, f"{item.name} is on no command"


@pytest.mark.parametrize("name", [n for n in SETTINGS if n not in NOT_ON_THE_COMMAND_LINE])
def test_the_command_line_takes_every_setting_with_its_default_and_range(name):
    item = SETTINGS[name]
    for command in item.commands:
        action = _action(command, name)
        assert action is not None, f"xafsmap {command} has no option for {name}"
        if item.name != "stack" or command == "export":
            assert item.cli_flag in action.option_strings or action.option_strings == [], (command, name)
        if item.kind == "choice":
            assert tuple(action.choices) == item.choices
        args = build_parser().parse_args([command, *REQUIRED[command]])
        given = settings_from_args(args)
        if name not in ("stack", "references", "library", "sets"):  # the required ones
            assert getattr(given, name) == item.default, (command, name)
        if item.kind in ("int", "float") and command == item.commands[0]:
            for value, ok in ((item.low, not item.open_low), (item.high, not item.open_high)):
                if value is None or not math.isfinite(value):
                    continue
                text = str(int(value)) if item.kind == "int" else repr(float(value))
                argv = [command, *REQUIRED[command], item.cli_flag, text]
                if ok:
                    assert getattr(settings_from_args(build_parser().parse_args(argv)), name) == value
                else:
                    with pytest.raises(ValueError, match="out of range"):
                        settings_from_args(build_parser().parse_args(argv))
            outside = (item.high + 1) if item.high is not None and math.isfinite(item.high) else item.low - 1
            argv = [command, *REQUIRED[command], item.cli_flag, str(int(outside)) if item.kind == "int" else
                    repr(float(outside))]
            with pytest.raises(ValueError, match=rf"{item.cli_flag} .* is out of range: it must "):
                settings_from_args(build_parser().parse_args(argv))


def test_the_help_shows_each_default_and_range():
    text = build_parser()._subparsers._group_actions[0].choices["map"].format_help()
    assert "--trees N_TREES" in text and "(1 to 10000 trees; default 100)" in " ".join(text.split())
    assert "--fit-range LOW HIGH" in text


@pytest.mark.parametrize("name", list(SETTINGS))
def test_a_recipe_writes_and_reads_every_setting(tmp_path, name):
    item = SETTINGS[name]
    base = dict(references=(ReferenceSpec("/refs/Fe.xdi"), ReferenceSpec("/refs/FeO.xdi")), stack="/data/s.tif")
    value = _sample_value(item)
    changes = {name: value}
    if name == "sample":
        changes["stack"] = None
    if name == "calibration_reference":
        changes["calibration"] = "/data/foil.tif"
    if name in ("class_names", "compositions"):
        changes.update(class_names=("a", "b"), compositions=((1.0, 0.0), (0.5, 0.5)))
    settings = Settings(**{**base, **changes})
    if item.kind == "references":
        assert [r["spec"] for r in settings_to_dict(settings)["reference"]] == [r.spec for r in value]
    else:
        assert settings_to_dict(settings)[item.section][item.toml_key] is not None
    assert read_recipe(write_recipe(tmp_path / "r.toml", settings)) == settings
    # the default is what a recipe without the key reads
    assert getattr(read_recipe(write_recipe(tmp_path / "d.toml", Settings(**base))), name) == \
        getattr(DEFAULTS, name) if name not in base else True


@pytest.mark.parametrize("name", [n for n, s in SETTINGS.items() if s.kind in ("int", "float")])
def test_a_recipe_refuses_what_the_range_refuses(tmp_path, name):
    item = SETTINGS[name]
    outside = (item.high + 1) if item.high is not None and math.isfinite(item.high) else item.low - 1
    value = int(outside) if item.kind == "int" else float(outside)
    text = (f'xafsmap_recipe = 1\n[input]\nstack = "s.tif"\n[[reference]]\nspec = "a.xdi"\n'
            f"[{item.section}]\n{item.toml_key} = {value}\n")
    if item.section == "input":
        text = text.replace("[input]\nstack", f"[input]\n{item.toml_key} = {value}\nstack")
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"\[{item.section}\] {item.toml_key} = .* is out of range: it must "
                                         + re.escape(item.describe_range())):
        read_recipe(path)


def test_core_defaults_are_the_declared_ones():
    """Functions that take the same choices default to the declarations (DEFAULTS)."""
    from xafsmap.core.mapping.pipeline import iter_classify
    from xafsmap.core.model.features import FEATURES, METRICS
    from xafsmap.core.model.training import train_model
    from xafsmap.core.trust.parsimony import CRITERIA, iter_compare
    from xafsmap.core.trust.unexplained import iter_unexplained

    signature = inspect.signature(train_model).parameters
    for name in ("mixtures", "features", "smooth", "n_per_class", "n_trees", "threshold", "significance",
                 "fit_range", "noise", "align_references", "thick"):
        assert signature[name].default == getattr(DEFAULTS, name), name
    assert inspect.signature(iter_classify).parameters["metric"].default == DEFAULTS.metric
    assert inspect.signature(iter_unexplained).parameters["false_alarm"].default == DEFAULTS.false_alarm
    assert inspect.signature(iter_unexplained).parameters["pool"].default == DEFAULTS.pool
    assert inspect.signature(iter_compare).parameters["criterion"].default == DEFAULTS.criterion
    assert FEATURES == SETTINGS["features"].choices and METRICS == SETTINGS["metric"].choices
    assert CRITERIA == SETTINGS["criterion"].choices


def test_settings_are_checked_on_construction():
    with pytest.raises(ValueError, match=r"seed = -1 is out of range"):
        Settings(seed=-1)
    with pytest.raises(ValueError, match=r"metric = 'cosine' is not one of"):
        Settings(metric="cosine")
    assert dataclasses.replace(Settings(), fit_range=[-20, 60]).fit_range == (-20.0, 60.0)
