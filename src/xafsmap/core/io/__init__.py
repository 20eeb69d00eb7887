"""Reading stacks (TIFF, folders, STXM, HDF5/NeXus, Xradia) lazily as a :class:`Stack`, volumes
(E, Z, Y, X) as a :class:`Volume`, references
and libraries (XDI, columns, Athena), writing spectra (XDI, Athena), the output-folder rule.

Each name is imported from its module on first use (:mod:`xafsmap.core.lazy`).
"""

from ..lazy import lazy_names

#: Public name -> module of this package.
NAMES = {
    "Reference": "references",
    "Stack": "stack",
    "Volume": "volume",
    "atomic_folder": "folders",
    "claim_output": "folders",
    "read_reference": "references",
    "read_references": "references",
    "read_stack": "stack",
    "read_volume": "volume",
    "scan_library": "library",
    "stack_info": "stack",
    "write_spectra": "export",
    "write_stack": "tiff",
    "write_volume": "volume",
    "write_xdi": "export",
}
__all__ = sorted(NAMES)
__getattr__, __dir__ = lazy_names(__name__, NAMES)
