"""napari dock widgets of xafsmap, one module per dock (the manifest points at each)."""
