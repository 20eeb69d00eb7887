"""The class legend travels with the labels: classes.csv and the labels TIFF itself."""

import numpy as np
import pytest
import tifffile

from xafsmap.core.mapping.legend import Legend, read_legend_csv, read_tiff_legend, write_legend_csv
from xafsmap.core.mapping.output import write_tiff


@pytest.fixture
def legend():
    compositions = np.array([[1.0, 0.0], [0.0, 1.0], [0.25, 0.75]])
    return Legend.of(["Fe", "FeO", "Fe 0.25 + FeO 0.75"], compositions, ["Fe", "FeO"])


def test_csv_round_trip_keeps_names_colours_and_compositions(tmp_path, legend):
    path = write_legend_csv(tmp_path / "classes.csv", legend)
    assert path.read_text().splitlines()[0] == "label,name,color,Fe,FeO"
    assert read_legend_csv(path) == legend


def test_a_csv_without_the_colour_column_reads_with_xafsmap_colours(tmp_path, legend):
    (tmp_path / "old.csv").write_text("label,name,Fe,FeO\n1,Fe,1,0\n2,FeO,0,1\n3,Fe 0.25 + FeO 0.75,0.25,0.75\n")
    assert read_legend_csv(tmp_path / "old.csv") == legend


def test_chosen_colours_and_non_ascii_names_survive_the_tiff(tmp_path):
    legend = Legend.of(["Fe₂O₃", "magnétite"], colors=[[10, 20, 30], [200, 100, 0]])
    write_tiff(tmp_path / "labels.tif", np.array([[0, 1], [2, 1]], np.uint16), description=legend.to_json())
    assert read_tiff_legend(tmp_path / "labels.tif") == legend
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), [[0, 1], [2, 1]])


def test_a_tiff_without_a_legend_has_none(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((3, 3), np.uint16))
    assert read_tiff_legend(tmp_path / "plain.tif") is None
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    assert read_tiff_legend(tmp_path / "broken.tif") is None


def test_a_file_that_is_not_a_legend_is_refused_in_one_line(tmp_path):
    (tmp_path / "x.csv").write_text("energy,mu\n7100,0.1\n")
    with pytest.raises(ValueError, match="not a class legend"):
        read_legend_csv(tmp_path / "x.csv")


def test_colours_must_match_the_names():
    with pytest.raises(ValueError, match="2 class names but 1 colours"):
        Legend.of(["a", "b"], colors=[[1, 2, 3]])

