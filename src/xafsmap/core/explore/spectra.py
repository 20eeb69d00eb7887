"""Spectra found by exploring, as references and files: "use as reference", XDI, CSV.

Any cluster, NMF or region spectrum can become a :class:`~xafsmap.core.references.Reference`
(:func:`spectrum_reference`) that the mapping accepts like a standard read from a file,
and can be saved as an XDI file (:func:`save_reference`) that a recipe names and
``xafsmap map --reference`` reads back. :func:`write_spectra_csv` writes a set of
spectra as one CSV (first column ``energy``, one column per spectrum), the form of
``cluster_spectra.csv`` and ``nmf_spectra.csv``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .._files import atomic_file
from ..io.references import Reference

__all__ = ["EDGES", "guess_edge", "save_reference", "spectrum_reference", "write_spectra_csv"]

#: Edge energies (eV) of common XAFS edges, for a default element and edge where the
#: data do not say (Bearden & Burr; a guess the user confirms).
EDGES = {("Ti", "K"): 4966.0, ("V", "K"): 5465.0, ("Cr", "K"): 5989.0, ("Mn", "K"): 6539.0, ("Fe", "K"): 7112.0,
         ("Co", "K"): 7709.0, ("Ni", "K"): 8333.0, ("Cu", "K"): 8979.0, ("Zn", "K"): 9659.0, ("As", "K"): 11867.0,
         ("Se", "K"): 12658.0, ("S", "K"): 2472.0, ("Ca", "K"): 4038.0, ("Ce", "L3"): 5723.0, ("U", "L3"): 17166.0,
         ("Mn", "L3"): 638.7, ("Fe", "L3"): 706.8, ("Co", "L3"): 778.1, ("Ni", "L3"): 852.7, ("Cu", "L3"): 932.7,
         ("C", "K"): 284.2, ("N", "K"): 409.9, ("O", "K"): 543.1}


def guess_edge(e0: float) -> tuple[str, str] | None:
    """The (element, edge) of :data:`EDGES` within 25 eV (hard) or 6 eV (soft) of ``e0``, or None.

    >>> guess_edge(7123.0), guess_edge(708.2), guess_edge(3000.0)
    (('Fe', 'K'), ('Fe', 'L3'), None)
    """
    best = min(EDGES.items(), key=lambda item: abs(item[1] - e0))
    return best[0] if abs(best[1] - e0) <= (25.0 if e0 >= 2000.0 else 6.0) else None


def spectrum_reference(name: str, energies: ArrayLike, mu: ArrayLike, *, source: str) -> Reference:
    """A normalized spectrum as a :class:`~xafsmap.core.references.Reference` the mapping accepts.

    Parameters
    ----------
    name : str
        The reference's name (as the References table and the class names show it).
    energies : array_like, shape (E,)
        eV, strictly increasing.
    mu : array_like, shape (E,)
        Normalized mu; non-finite points are dropped.
    source : str
        Where it came from (``"cluster 2 of stack.tif"``).

    Returns
    -------
    Reference
        Read-only arrays, as :func:`~xafsmap.core.references.read_reference` returns.

    Raises
    ------
    ValueError
        An empty name, energies not increasing, or fewer than 8 finite points.

    Examples
    --------
    >>> ref = spectrum_reference("cluster 1", np.arange(7100.0, 7110.0), np.linspace(0, 1, 10), source="test")
    >>> ref.name, ref.mu.flags.writeable
    ('cluster 1', False)
    """
    name = " ".join(str(name).split())
    if not name:
        raise ValueError("a reference needs a name")
    e, m = np.asarray(energies, dtype=np.float64).ravel(), np.asarray(mu, dtype=np.float64).ravel()
    if e.size != m.size:
        raise ValueError(f"reference {name!r} has {e.size} energies but {m.size} values")
    keep = np.isfinite(e) & np.isfinite(m)
    e, m = e[keep].copy(), m[keep].copy()
    if e.size < 8:
        raise ValueError(f"reference {name!r} has {e.size} finite points; need at least 8")
    if np.any(np.diff(e) <= 0):
        raise ValueError(f"reference {name!r}: energies must increase strictly")
    e.setflags(write=False)
    m.setflags(write=False)
    return Reference(name, e, m, source)


def save_reference(path: str | os.PathLike, reference: Reference, *, element: str, edge: str,
                   comments: Sequence[str] = ()) -> Path:
    """Write a reference as an XDI file (``normtrans`` column) that ``--reference`` reads back.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xafsmap.core.io.references import read_reference
    >>> ref = spectrum_reference("NMF 1", np.arange(7100.0, 7110.0), np.linspace(0, 1, 10), source="test")
    >>> back = read_reference(save_reference(pathlib.Path(tempfile.mkdtemp()) / "nmf1.xdi", ref, element="Fe",
    ...                                      edge="K"))
    >>> bool(np.array_equal(back.mu, ref.mu))
    True
    """
    from ..io.export import write_xdi

    return write_xdi(path, reference.energies, reference.mu, name=reference.name, element=element, edge=edge,
                     fields={"xafsmap.source": reference.source}, comments=comments)


def write_spectra_csv(path: str | os.PathLike, energies: ArrayLike, spectra: ArrayLike, names: Sequence[str]) -> Path:
    """Spectra as one CSV: ``energy`` then one column per spectrum (all-or-nothing).

    Parameters
    ----------
    path : str or Path
    energies : array_like, shape (E,)
    spectra : array_like, shape (K, E)
    names : sequence of str, length K

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_spectra_csv(pathlib.Path(tempfile.mkdtemp()) / "s.csv", [1.0, 2.0], [[0.5, 1.0]], ["cluster_1"])
    >>> p.read_text().splitlines()
    ['energy,cluster_1', '1.0,0.5', '2.0,1.0']
    """
    import csv

    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    energies = np.asarray(energies, dtype=np.float64)
    if spectra.shape != (len(names), energies.size):
        raise ValueError(f"{spectra.shape} spectra for {len(names)} names and {energies.size} energies")
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["energy", *names])
        writer.writerows([[repr(float(e)), *(repr(float(v)) for v in row)] for e, row in zip(energies, spectra.T)])
    return path
