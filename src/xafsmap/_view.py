"""Open napari on a stack and its maps (used by ``xafsmap demo`` on a display)."""

from __future__ import annotations

from pathlib import Path


def view_maps(stack_path, maps_folder, *, block: bool = True):
    """Show the stack and every map of ``maps_folder`` in a napari viewer."""
    import napari

    from ._reader import get_reader, read_maps

    viewer = napari.Viewer(title="xafsmap demo")
    for data, meta, kind in get_reader(str(stack_path))(str(stack_path)) + read_maps(Path(maps_folder)):
        getattr(viewer, f"add_{kind}")(data, **meta)
    if block:
        napari.run()
    return viewer
