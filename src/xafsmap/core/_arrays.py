"""Small array helpers shared by the core modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard

if TYPE_CHECKING:
    import dask.array as da


def is_dask(a: object) -> TypeGuard[da.Array]:
    """True for a dask array (lazy), without importing dask."""
    return type(a).__module__.split(".")[0] == "dask"


def array_source(a: object) -> object | None:
    """The array-like a dask array was made from by ``dask.array.from_array`` when the
    array is nothing but its chunks (a TIFF, HDF5 or Zarr stack as opened), else None.

    Indexing the source reads a part in one call (one positioned read per page of a
    TIFF), where the dask array runs a task per chunk under the part and concatenates
    them: 96 tasks for 1056 rows of a 4000 x 1700 TIFF in 11-row bands. Arrays made
    from numpy arrays, or with ``inline_array=True``, have no separate source: None.
    """
    if not is_dask(a):
        return None
    layers = a.dask.layers
    original = layers.get(f"original-{a.name}")
    if len(layers) != 2 or original is None or len(original) != 1:
        return None
    (source,) = original.values()
    if tuple(getattr(source, "shape", ())) != tuple(a.shape) or getattr(source, "dtype", None) != a.dtype:
        return None
    return source
