"""Small array helpers shared by the core modules."""

from __future__ import annotations


def is_dask(a: object) -> bool:
    """True for a dask array (lazy), without importing dask."""
    return type(a).__module__.split(".")[0] == "dask"
