"""Athena project (``.prj``) files: the Perl-data records are parsed, never evaluated.

An Athena/Demeter project is a (usually gzip'd) text file of one-line Perl
statements. Each data group is a record::

    $old_group = 'bapw';
    @args = ('label','FeO', 'bkg_eshift',0, 'is_xmu',1, ...);
    @x = ('6911.7671','6916.873', ...);
    @y = ('-0.03599259','-0.039081634', ...);
    [record]   # create object and set arrays in ifeffit

Only string, number, ``undef``, list ``(...)``/``[...]`` and hash ``{...}``
literals are understood; anything else (a function call, backticks, an
unknown statement) is a ``ValueError`` naming the line. Nothing is executed.
Parsing is bounded: at most :data:`~xafsmap.core.io.bounds.MAX_PROJECT_VALUES` values,
lists nested at most :data:`~xafsmap.core.io.bounds.MAX_NESTING` deep, and
:data:`~xafsmap.core.io.bounds.PARSE_SECONDS` seconds.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np

from .bounds import MAX_NESTING, MAX_PROJECT_VALUES, PARSE_SECONDS

__all__ = ["parse_athena_project", "athena_records"]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<sq>'(?:[^'\\]|\\.)*')
     |(?P<dq>"(?:[^"\\]|\\.)*")
     |(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
     |(?P<arrow>=>)
     |(?P<punct>[()\[\]{},])
     |(?P<word>[A-Za-z_]\w*)
    )""",
    re.X | re.S,
)
_ASSIGN = re.compile(r"^([$@%])(\w+)\s*=\s*(.*);$", re.S)
_CLOSE = {"(": ")", "[": "]", "{": "}"}
#: Tokens of one statement read by the general parser (number arrays take a faster path).
MAX_STATEMENT_TOKENS = 1_000_000
_WANTED = {("$", "old_group"), ("@", "args"), ("@", "x"), ("@", "y")}
# Athena's group flags for data that is not mu(E); see Demeter's Data attributes.
_NUMBER_ITEM = re.compile(r"\s*(?:'([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)'|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))\s*")
_NOT_MU_FLAGS = {"is_chi": "chi(k)", "is_rsp": "chi(R)", "is_qsp": "chi(q)", "not_data": "detector/non-data"}
_MU_DATATYPES = {"xmu", "xanes", "norm", "xmudat"}


class _Budget:
    """What is left of a project's parse: values and time."""

    def __init__(self, label: str):
        self.label, self.values = label, MAX_PROJECT_VALUES
        self.deadline = time.monotonic() + PARSE_SECONDS

    def spend(self, n: int) -> None:
        self.values -= n
        if self.values < 0:
            raise ValueError(f"{self.label} holds more than {MAX_PROJECT_VALUES} values: too large for a "
                             "reference project (or damaged)")
        if time.monotonic() > self.deadline:
            raise ValueError(f"{self.label} takes more than {PARSE_SECONDS:g} s to read: too large for a "
                             "reference project (or damaged)")


def _tokens(text: str, where: str, budget: _Budget | None = None) -> list[tuple[str, str]]:
    out, pos, text = [], 0, text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            snippet = text[pos:].strip()[:30]
            raise ValueError(f"{where}: unsupported Perl syntax at {snippet!r} "
                             "(project files are parsed as data, never run)")
        out.append((m.lastgroup, m.group(m.lastgroup)))
        pos = m.end()
        if budget is not None and len(out) % 4096 == 0:
            budget.spend(4096)
            if len(out) > MAX_STATEMENT_TOKENS:  # ~110 MB as tuples; an array is read by _number_list
                raise ValueError(f"{where}: a statement of more than {MAX_STATEMENT_TOKENS} items; not an "
                                 "Athena project, or a damaged one")
    if budget is not None:
        budget.spend(len(out) % 4096)
    return out


def _number_list(rhs: str) -> list | None:
    """``('1.5','2',3)`` as ``['1.5', '2', 3.0]`` without tokenizing (the arrays are most of a
    project); None for anything else, which the general parser then reads."""
    body = rhs.strip()
    if len(body) < 2 or body[0] != "(" or body[-1] != ")" or any(c in body[1:-1] for c in "()[]{}\"\\=>"):
        return None
    items = body[1:-1].split(",")
    if items and not items[-1].strip():
        items.pop()  # a trailing comma
    out = []
    for item in items:
        m = _NUMBER_ITEM.fullmatch(item)
        if m is None:
            return None
        out.append(m[1] if m[1] is not None else float(m[2]))
    return out


def _unquote(kind: str, tok: str) -> str:
    body = tok[1:-1]
    if kind == "sq":  # Perl single quotes: only \\ and \' are escapes
        return re.sub(r"\\([\\'])", r"\1", body)
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _parse_value(toks: list[tuple[str, str]], i: int, where: str, depth: int = 0) -> tuple[Any, int]:
    if depth > MAX_NESTING:
        raise ValueError(f"{where}: lists nested more than {MAX_NESTING} levels deep (not an Athena project, "
                         "or a damaged one)")
    if i >= len(toks):
        raise ValueError(f"{where}: statement ends in the middle of a value")
    kind, tok = toks[i]
    if kind in ("sq", "dq"):
        return _unquote(kind, tok), i + 1
    if kind == "num":
        return float(tok), i + 1
    if kind == "word":
        if tok == "undef":
            return None, i + 1
        if i + 1 < len(toks) and toks[i + 1][0] == "arrow":  # bareword hash key
            return tok, i + 1
        raise ValueError(f"{where}: unsupported Perl construct {tok!r} "
                         "(project files are parsed as data, never run)")
    if kind == "punct" and tok in _CLOSE:
        items, i = [], i + 1
        while i < len(toks) and toks[i] != ("punct", _CLOSE[tok]):
            if toks[i][0] == "arrow" or toks[i] == ("punct", ","):
                i += 1
                continue
            value, i = _parse_value(toks, i, where, depth + 1)
            items.append(value)
        if i >= len(toks):
            raise ValueError(f"{where}: unbalanced {tok!r}")
        if tok == "{":
            return dict(zip(items[::2], items[1::2])), i + 1
        return items, i + 1
    raise ValueError(f"{where}: unexpected {tok!r}")


def _parse_rhs(rhs: str, where: str, budget: _Budget | None = None) -> Any:
    if budget is not None:
        if rhs.count(",") > budget.values:  # refused before any list is built
            budget.spend(rhs.count(","))
        fast = _number_list(rhs)
        if fast is not None:
            budget.spend(len(fast))
            return fast
    toks = _tokens(rhs, where, budget)
    value, end = _parse_value(toks, 0, where)
    if end != len(toks):
        raise ValueError(f"{where}: unexpected {toks[end][1]!r} after the value")
    return value


def parse_athena_project(text: str, *, label: str = "project") -> list[dict[str, Any]]:
    """Parse the records of an Athena project without evaluating any Perl.

    Parameters
    ----------
    text : str
        The decompressed project text.
    label : str
        File name used in error messages.

    Returns
    -------
    list of dict
        One dict per record with keys ``group`` (str), ``args`` (dict of the
        ``@args`` pairs), ``x`` and ``y`` (lists of str/float, when present)
        and ``line`` (1-based line of the record's first statement).

    Raises
    ------
    ValueError
        For any line that is not a comment, an assignment of a literal, the
        ``[record]`` marker or ``1;`` (the message names the line), and for a project
        beyond the parser's bounds (values, nesting, time).

    Examples
    --------
    >>> recs = parse_athena_project("$old_group = 'ab';\\n@args = ('label','FeO');\\n"
    ...                             "@x = ('1','2');\\n@y = (3,4);\\n[record]\\n")
    >>> recs[0]['args']['label'], recs[0]['x'], recs[0]['y']
    ('FeO', ['1', '2'], [3.0, 4.0])
    """
    records: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    budget = _Budget(label)
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#") or s == "1;":
            continue
        if s.startswith("[record]"):
            if current is not None:
                records.append(current)
            current = None
            continue
        where = f"{label} line {lineno}"
        m = _ASSIGN.match(s)
        if m is None:
            raise ValueError(f"{where}: unsupported Perl statement {s[:40]!r} "
                             "(project files are parsed as data, never run)")
        sigil, var, rhs = m.groups()
        if (sigil, var) not in _WANTED:
            continue  # journal, plot features, LCF state, $xdi: not needed
        if current is None:
            current = {"group": "", "args": {}, "line": lineno}
        value = _parse_rhs(rhs, where, budget)
        if var == "old_group":
            current["group"] = str(value)
        elif var == "args":
            if not isinstance(value, list) or len(value) % 2:
                raise ValueError(f"{where}: @args must be a list of key/value pairs")
            current["args"] = dict(zip(map(str, value[::2]), value[1::2]))
        else:
            if not isinstance(value, list):
                raise ValueError(f"{where}: @{var} must be a list of numbers")
            current[var] = value
    if current is not None and ("x" in current or "y" in current):
        records.append(current)
    return records


def _truthy(value: Any) -> bool:
    return value not in (None, "", 0, 0.0, "0")


def _not_mu_reason(args: dict[str, Any]) -> str | None:
    datatype = str(args.get("datatype") or "").lower()
    if datatype and datatype not in _MU_DATATYPES:
        return f"datatype {datatype!r} is not mu(E)"
    for flag, what in _NOT_MU_FLAGS.items():
        if _truthy(args.get(flag)):
            return f"holds {what} data, not mu(E)"
    recordtype = str(args.get("recordtype") or "").lower()
    if recordtype and not any(w in recordtype for w in ("mu", "xanes", "nor")):
        return f"record type {recordtype!r} is not mu(E)"
    if ("is_xmu" in args and not _truthy(args["is_xmu"]) and not datatype
            and not any(_truthy(args.get(f)) for f in ("is_xanes", "is_nor", "is_xmudat"))):
        return "is_xmu is 0 (not mu(E) data)"
    return None


def _floats(values: list[Any], what: str, where: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: @{what} holds a non-number ({err})") from None


def athena_records(text: str, *, label: str = "project") -> tuple[list, list]:
    """mu(E) spectra of an Athena project, and the records skipped.

    Parameters
    ----------
    text : str
        Decompressed project text.
    label : str
        File name used in messages.

    Returns
    -------
    spectra : list of (name, energies, mu)
        ``name`` is the record's ``label`` (stripped; the group name when
        empty), ``energies`` (n,) float64 eV are ``@x + bkg_eshift`` (times
        1000 when ``is_kev``), ``mu`` (n,) float64 is ``@y`` as stored (raw or
        normalized mu(E), whatever Athena saved). Names may repeat.
    skipped : list of (name, reason)
        Records that are not mu(E) (chi(k), detector groups) or lack arrays.

    Notes
    -----
    Athena keeps the measured energies in ``@x`` and the calibration shift in
    ``bkg_eshift``, adding it whenever it plots or exports the group; we apply
    it the same way so references come out on their calibrated axis.

    Examples
    --------
    >>> spectra, skipped = athena_records(
    ...     "@args = ('label','Fe foil','bkg_eshift','1.5');\\n@x = (7000, 7010);\\n"
    ...     "@y = (0.1, 0.2);\\n[record]\\n")
    >>> spectra[0][0], spectra[0][1].tolist(), skipped
    ('Fe foil', [7001.5, 7011.5], [])
    """
    spectra, skipped = [], []
    for rec in parse_athena_project(text, label=label):
        args = rec["args"]
        name = str(args.get("label") or "").strip() or rec["group"] or f"record at line {rec['line']}"
        where = f"{label} line {rec['line']} (record {name!r})"
        reason = _not_mu_reason(args)
        if reason is None and ("x" not in rec or "y" not in rec):
            reason = "has no @x/@y arrays"
        if reason is not None:
            skipped.append((name, reason))
            continue
        x, y = _floats(rec["x"], "x", where), _floats(rec["y"], "y", where)
        if x.size != y.size:
            skipped.append((name, f"has {x.size} energies in @x but {y.size} values in @y"))
            continue
        if _truthy(args.get("is_kev")):
            x = x * 1000.0
        try:
            shift = float(args.get("bkg_eshift") or 0.0)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: bkg_eshift {args['bkg_eshift']!r} is not a number") from None
        spectra.append((name, x + shift, y))
    return spectra, skipped
