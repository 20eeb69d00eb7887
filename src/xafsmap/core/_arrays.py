"""Small array helpers shared by the core modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard

if TYPE_CHECKING:
    import dask.array as da


def is_dask(a: object) -> TypeGuard[da.Array]:
    """True for a dask array (lazy), without importing dask."""
    return type(a).__module__.split(".")[0] == "dask"
