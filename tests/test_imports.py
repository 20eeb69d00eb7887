"""The library and CLI must never pull in a GUI toolkit."""

import json
import subprocess
import sys
from pathlib import Path


def test_core_and_cli_import_no_qt_napari_or_magicgui():
    code = (
        "import sys, json, xafsmap, xafsmap.cli, xafsmap.core.mapping.pipeline, xafsmap.core.io.stack; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'magicgui', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'vispy', 'matplotlib')]; "
        "print(json.dumps(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_root_manifest_is_the_packaged_one():
    root = Path(__file__).resolve().parents[1]
    import xafsmap

    packaged = Path(xafsmap.__file__).parent / "napari.yaml"
    assert (root / "napari.yaml").read_text() == packaged.read_text()
