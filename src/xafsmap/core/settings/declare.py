"""How one setting is declared (:class:`Setting`), and a session's reference (:class:`ReferenceSpec`).

The declarations themselves are the fields of
:class:`~xafsmap.core.settings.schema.Settings`. Standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OFFSET_RANGE", "ReferenceSpec", "Setting", "setting"]


@dataclass(frozen=True)
class Setting:
    """The declaration of one setting (see the module docstring).

    Attributes
    ----------
    name : str
        Field of :class:`Settings`, argparse ``dest`` and TOML key (unless ``key``).
    section : str
        TOML table (:data:`SECTIONS`).
    kind : str
        How the value is written and checked: ``path``, ``paths``, ``text``,
        ``choice``, ``flag`` (bool), ``int``, ``float``, ``roi`` (4 ints), ``range``
        (low < high), ``names``, ``matrix`` (rows of fractions), ``references``,
        ``sets`` (named lists of references).
    default
        The value when not given; ``None`` means ``auto`` (derived or measured).
    help : str
        One line for ``--help``, tooltips and docs.
    unit : str
    low, high : float or None
        Bounds of a number (or of each number of a ``range``), inclusive unless
        ``open_low``/``open_high``.
    choices : tuple of str
    commands : tuple of str
        ``xafsmap`` commands that take it as an option.
    flag : str or None
        Command-line flag when not ``--name-with-dashes``.
    key : str or None
        TOML key when not ``name``.
    auto : str
        What ``None`` means, in words (GUI check boxes, help).
    label : str
        Name in the napari docks.
    decimals, step : int, float
        Precision and step of a GUI number box.
    metavar : str
    """

    name: str
    section: str
    kind: str
    default: object
    help: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple = ()
    commands: tuple = ()
    flag: str | None = None
    key: str | None = None
    auto: str = ""
    label: str = ""
    decimals: int = 4
    step: float = 1.0
    metavar: str | None = None

    @property
    def cli_flag(self) -> str:
        """``--trees`` for ``n_trees``."""
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def toml_key(self) -> str:
        return self.key or self.name

    @property
    def optional(self) -> bool:
        """``None`` is a valid value (``auto``)."""
        return self.default is None

    def describe_range(self) -> str:
        """``'lie between 1 and 10000'`` and the like (after "it must")."""
        low = f"lie above {self.low:g}" if self.open_low else None
        if self.high is None or math.isinf(self.high):
            return low or f"be at least {self.low:g}"
        if low:
            return f"{low} and {'below' if self.open_high else 'at most'} {self.high:g}"
        return f"lie between {self.low:g} and {self.high:g}"


def setting(default: object, section: str, kind: str, help: str, **declaration: object) -> Any:
    """A :class:`Settings` field with its declaration (see :class:`Setting`)."""
    return field(default=default, metadata={"setting": dict(section=section, kind=kind, help=help, **declaration)})


@dataclass(frozen=True)
class ReferenceSpec:
    """One reference of a session: ``spec`` is ``FILE`` or ``FILE:NAME``; ``name`` its name
    in the maps (default the record's); ``offset`` (eV) is added to its energies."""

    spec: str
    name: str | None = None
    offset: float = 0.0


#: Range of a reference's energy offset, eV.
OFFSET_RANGE = (-100.0, 100.0)
