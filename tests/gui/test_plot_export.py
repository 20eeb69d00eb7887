"""The spectra plots offer their normalized spectra as an Athena project and XDI files."""

import numpy as np

from xafsmap._widgets._plot import NORMALIZED, PlotCanvas
from xafsmap.core.io.references import read_reference, read_references


def test_plotted_normalized_spectra_are_exported(qtbot, tmp_path):
    canvas = PlotCanvas(2)
    qtbot.addWidget(canvas)
    energies = np.linspace(7100.0, 7200.0, 51)
    step = 1 / (1 + np.exp(-(energies - 7125.0) / 3.0))
    raw_ax, norm_ax = canvas.axes
    raw_ax.plot(energies, 0.3 + step, label="absorbance")  # not normalized: not exported
    raw_ax.set_ylabel("absorbance")
    norm_ax.plot(energies, step, label="this pixel")
    norm_ax.plot(energies, 0.9 * step, label="class Fe:FeO 25:75")
    norm_ax.plot(energies, step * 0.5)  # unnamed: not exported
    norm_ax.set_ylabel(NORMALIZED)
    canvas.draw()
    assert [r.name for r in canvas.spectra()] == ["this pixel", "class Fe:FeO 25:75"]
    assert canvas.canvas.contextMenuPolicy().name == "CustomContextMenu"
    written = canvas.export_spectra(tmp_path / "pixel.prj", element="Fe", edge="K")
    assert sorted(p.name for p in written) == ["01_this_pixel.xdi", "02_class_Fe_FeO_25_75.xdi", "pixel.prj"]
    project = read_references(tmp_path / "pixel.prj")
    assert [r.name for r in project] == ["this pixel", "class Fe:FeO 25:75"]
    np.testing.assert_array_equal(project[1].mu, 0.9 * step)
    np.testing.assert_array_equal(read_reference(tmp_path / "pixel_xdi" / "01_this_pixel.xdi").mu, step)
