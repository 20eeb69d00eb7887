"""Read XANES tomography volumes (E, Z, Y, X) lazily, and hand out their slices as stacks.

A volume is a reconstructed 3-D image at every energy. :func:`read_volume` opens one of
the three forms of :mod:`xafsmap.core.io.volumefiles` (a 4-D TIFF, a folder per energy of
slice TIFFs, a 4-D HDF5 dataset) as a :class:`Volume`: a float32 dask array (E, Z, Y, X)
of absorbance per voxel, never read up front, and its energies in eV.
:func:`volume_slice` is slice ``z`` as an ordinary :class:`~xafsmap.core.io.stack.Stack`
(E, Y, X), so every per-pixel function of xafsmap maps a volume slice by slice.
:func:`~xafsmap.core.io.volumefiles.volume_kind` (re-exported here) tells whether an input is a volume at all (``xafsmap map`` maps
volumes voxel by voxel), reading headers only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .energies import energies_from_names, find_energies_file, read_energies, validate_energies
from .stack import IN_MEMORY, Stack
from .volumefiles import (VOLUME_AXES, energy_folders, open_volume_folders, open_volume_hdf5, open_volume_tiff,
                          parse_volume_axes, volume_kind)

if TYPE_CHECKING:
    import dask.array as da

    from .volumefiles import RawVolume

__all__ = ["VOLUME_AXES", "Volume", "read_volume", "volume_kind", "volume_slice", "write_volume"]


@dataclass(frozen=True, eq=False)
class Volume:
    """A lazily read volume and where it came from.

    Attributes
    ----------
    data : dask.array.Array, shape (E, Z, Y, X), float32
        Absorbance per voxel, not computed.
    energies : ndarray, shape (E,), float64
        Energies in eV, strictly increasing.
    sources : dict of str to str
        ``"stack"`` (the path given), ``"energies"``, and ``"axes"`` when given.
    notes : tuple of str
        What reading decided that the user should know.
    """

    data: object
    energies: np.ndarray
    sources: dict
    notes: tuple = ()

    def __repr__(self) -> str:
        e = self.energies
        return (f"Volume(shape={tuple(self.data.shape)}, energies={e[0]:g}–{e[-1]:g} eV ({e.size}), "
                f"stack={self.sources.get('stack')!r})")


def read_volume(path: str | Path, *, energies: str | Path | ArrayLike | None = None,
                axes: str | None = None, planes: bool = False) -> Volume:
    """Open a volume (E, Z, Y, X) lazily as absorbance with its energies.

    Parameters
    ----------
    path : str or Path
        A 4-D TIFF, a folder holding one folder of slice TIFFs per energy, or an HDF5
        dataset ``FILE.h5:/path`` of 4 dimensions (:mod:`~xafsmap.core.io.volumefiles`).
    energies : str, Path or array-like of float, optional
        Energies in eV or a file of them (or ``FILE.h5:/path``). Default: those the
        file holds (TIFF metadata, an ``energy`` dataset beside the HDF5 one), else a
        sidecar ``energies.txt`` (:func:`~xafsmap.core.io.energies.find_energies_file`), else
        the numbers in the energy folders' names (``7112.5eV``).
    axes : str, optional
        The stored order of a 4-D TIFF or HDF5 dataset, a permutation of ``"EZYX"``.
    planes : bool
        One image per chunk (display) instead of every energy of one slice and a band
        of rows (mapping).

    Returns
    -------
    Volume

    Raises
    ------
    FileNotFoundError
        If the input or an energies file is missing.
    ValueError
        Not a volume, ragged energy folders, energies missing, invalid or not one per
        energy of the volume.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = write_volume(pathlib.Path(tempfile.mkdtemp()) / "v.tif", np.ones((3, 2, 4, 5), np.float32),
    ...                  [7100.0, 7110.0, 7120.0])
    >>> v = read_volume(f)
    >>> v.data.shape, v.energies.tolist()
    ((3, 2, 4, 5), [7100.0, 7110.0, 7120.0])
    """
    kind = volume_kind(path, axes=axes)
    if kind is None:
        if not Path(str(path)).exists() and ":" not in str(path):
            raise FileNotFoundError(f"volume not found: {path}")
        raise ValueError(f"{path} is not a volume: give a 4-D TIFF, a folder of energy folders of slice TIFFs, "
                         "or a 4-D HDF5 dataset FILE.h5:/path")
    if axes is not None:
        axes = parse_volume_axes(axes)
        if kind == "folders":
            raise ValueError(f"axes= applies to 4-D TIFF and HDF5 volumes; {Path(path).name} is read as (E, Z, Y, X)")
    if kind == "tiff":
        raw = open_volume_tiff(path, axes=axes, planes=planes)
    elif kind == "hdf5":
        raw = open_volume_hdf5(path, axes=axes, planes=planes)
    else:
        raw = open_volume_folders(path)
    sources = {"stack": str(path), **({"axes": axes} if axes else {})}
    values, source = _volume_energies(path, kind, raw, energies, sources)
    n_e = raw.data.shape[0]
    if values.size != n_e:
        raise ValueError(f"volume {Path(str(path)).name} has {n_e} energies but {source} lists {values.size}")
    return Volume(raw.data, values, sources, raw.notes)


def _volume_energies(path: str | Path, kind: str, raw: RawVolume, energies: str | Path | ArrayLike | None,
                     sources: dict) -> tuple[np.ndarray, str]:
    """The energies of a volume and where they came from (see :func:`read_volume`)."""
    from .formats import format_kind

    if energies is not None and isinstance(energies, (str, Path)) and format_kind(energies) == "hdf5":
        from .hdf5 import read_energies_dataset

        sources["energies"] = str(energies)
        return read_energies_dataset(energies), str(energies)
    if energies is not None and isinstance(energies, (str, Path)):
        sources["energies"] = str(energies)
        return read_energies(energies), Path(energies).name
    if energies is not None:
        sources["energies"] = IN_MEMORY
        return validate_energies(energies, source="energies"), "energies"
    if raw.energies is not None:
        sources["energies"] = str(path)
        return validate_energies(raw.energies, source=raw.energies_source), raw.energies_source
    from .hdf5 import split_spec

    found = find_energies_file(split_spec(str(path))[0])
    if found is not None:
        sources["energies"] = str(found)
        return read_energies(found), found.name
    if kind == "folders":
        sources["energies"] = str(path)
        # a folder's whole name carries its energy ("7112.5eV" has no suffix ".5eV")
        names = [Path(f"{folder.name}.folder") for folder in energy_folders(path)]
        return energies_from_names(names, where=Path(path).name), "its folder names"
    raise ValueError(f"no energies for volume {Path(str(path)).name}: give energies=... (--energies), or put "
                     "energies.txt beside it")


def volume_slice(volume: Volume, z: int) -> Stack:
    """Slice ``z`` of a volume as a lazy :class:`~xafsmap.core.io.stack.Stack` (E, Y, X).

    >>> import dask.array as da
    >>> v = Volume(da.zeros((3, 2, 4, 5), dtype=np.float32), np.array([1.0, 2.0, 3.0]), {"stack": "v.tif"})
    >>> volume_slice(v, 1).data.shape
    (3, 4, 5)
    """
    n = volume.data.shape[1]
    if not 0 <= z < n:
        raise ValueError(f"slice {z} is outside the volume's {n} slices")
    return Stack(volume.data[:, z], volume.energies, dict(volume.sources), notes=volume.notes)


def write_volume(path: str | os.PathLike, data: np.ndarray | da.Array, energies: ArrayLike, *,
                 bigtiff: bool | None = None) -> Path:
    """Write a volume as a 4-D float32 TIFF (E, Z, Y, X) with a ``<stem>.energies.txt`` sidecar.

    Parameters
    ----------
    path : str or Path
        Output ``.tif``; written under a temporary name, then renamed into place.
    data : array or dask array, shape (E, Z, Y, X)
        Computed one energy (Z, Y, X) at a time: a dask volume larger than memory is
        written in bounded memory.
    energies : array-like, shape (E,)
        Energies in eV, strictly increasing; also stored in the TIFF's metadata.
    bigtiff : bool, optional
        Default: BigTIFF when the data approach 4 GB.

    Returns
    -------
    Path
    """
    import tifffile

    from .._files import atomic_file

    path = Path(path)
    if len(data.shape) != 4:
        raise ValueError(f"a volume must be (E, Z, Y, X), got shape {tuple(data.shape)}")
    values = validate_energies(energies, source="write_volume energies")
    if values.size != data.shape[0]:
        raise ValueError(f"volume has {data.shape[0]} energies but {values.size} energies were given")

    def pages() -> Iterator[np.ndarray]:
        for e in range(data.shape[0]):
            yield from np.asarray(data[e], dtype=np.float32)

    bigtiff = int(np.prod(data.shape)) * 4 > 2**32 - 2**26 if bigtiff is None else bigtiff
    with atomic_file(path) as tmp:
        tifffile.imwrite(tmp, pages(), shape=tuple(data.shape), dtype=np.float32, photometric="minisblack",
                         metadata={"energies": values.tolist()}, bigtiff=bigtiff)
    with atomic_file(path.with_name(f"{path.stem}.energies.txt")) as tmp:
        tmp.write_text("".join(f"{value!r}\n" for value in values.tolist()))
    return path
