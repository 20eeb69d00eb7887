"""Volumes (E, Z, Y, X): every input form reads to the same voxels and energies; bad input is one clear line."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from xafsmap.cli import main
from xafsmap.core.io.stack import read_stack
from xafsmap.core.io.volume import read_volume, volume_kind, volume_slice, write_volume
from xafsmap.core.simulate.sample import bundled_reference_paths
from xafsmap.core.simulate.volume import make_volume


@pytest.fixture(scope="module")
def volume():
    """A small synthetic volume (141 energies, 3 slices of 20 x 24) and its absorbance."""
    v = make_volume((3, 20, 24), n_grains=6, rng=4)
    return v, v.absorbance()


def write_folders(root, data, energies, *, drop=None):
    """One folder per energy (``7112.0eV``) of slice TIFFs; ``drop`` = (energy, slice) left out."""
    for e, energy in enumerate(energies):
        folder = root / f"{energy:.1f}eV"
        folder.mkdir(parents=True)
        for z in range(data.shape[1]):
            if drop != (e, z):
                tifffile.imwrite(folder / f"slice_{z:03d}.tif", data[e, z])
    return root


@pytest.fixture(scope="module")
def forms(tmp_path_factory, volume):
    """The volume in every form: 4-D TIFF, energy folders, HDF5 (E, Z, Y, X) and (Z, E, Y, X), 4-D TIFF (Z, E, Y, X)."""
    v, data = volume
    root = tmp_path_factory.mktemp("forms")
    tiff = write_volume(root / "volume.tif", data, v.energies)
    folders = write_folders(root / "scan", data, v.energies)
    with h5py.File(root / "tomo.h5", "w") as f:
        f["xanes/volume"] = data
        f["xanes/energy"] = v.energies / 1000.0  # keV, as FXI writes
        f["xanes/energy"].attrs["units"] = "keV"
        f["other/zeyx"] = np.moveaxis(data, 0, 1)
        f["other/zeyx"].attrs["axes"] = "z:energy:y:x"
        f["other/eng_list"] = v.energies
    zeyx = root / "zeyx" / "zeyx.tif"
    zeyx.parent.mkdir()
    tifffile.imwrite(zeyx, np.moveaxis(data, 0, 1))
    np.savetxt(zeyx.parent / "energies.txt", v.energies)
    return {"tiff": (str(tiff), {}), "folders": (str(folders), {}), "hdf5": (f"{root}/tomo.h5:/xanes/volume", {}),
            "hdf5 @axes": (f"{root}/tomo.h5:/other/zeyx", {}), "tiff ZEYX": (str(zeyx), {"axes": "ZEYX"})}


@pytest.mark.parametrize("form", ["tiff", "folders", "hdf5", "hdf5 @axes", "tiff ZEYX"])
@pytest.mark.parametrize("planes", [False, True])
def test_every_form_reads_the_same_voxels_and_energies(forms, volume, form, planes):
    v, data = volume
    path, options = forms[form]
    read = read_volume(path, planes=planes, **options)
    assert read.data.shape == data.shape and read.data.dtype == np.float32
    np.testing.assert_array_equal(read.data.compute(), data)
    np.testing.assert_allclose(read.energies, v.energies, rtol=0, atol=1e-6)


def test_mapping_chunks_hold_every_energy_of_one_slice(forms, volume):
    data = read_volume(forms["tiff"][0]).data
    assert len(data.chunks[0]) == 1 and set(data.chunks[1]) == {1}
    np.testing.assert_array_equal(np.asarray(data[:, 1, ::7, ::3]), volume[1][:, 1, ::7, ::3])  # strided rows read


def test_a_slice_is_a_stack(forms, volume):
    stack = volume_slice(read_volume(forms["hdf5"][0]), 2)
    assert stack.data.shape == (141, 20, 24)
    np.testing.assert_array_equal(stack.data.compute(), volume[1][:, 2])


def test_volume_kind_reads_headers_only(forms, small_sample_file):
    kinds = {form: volume_kind(path, **options) for form, (path, options) in forms.items()}
    assert kinds == {"tiff": "tiff", "folders": "folders", "hdf5": "hdf5", "hdf5 @axes": "hdf5", "tiff ZEYX": "tiff"}
    assert volume_kind(small_sample_file) is None  # a 3-D stack is no volume
    assert volume_kind(small_sample_file.parent) is None  # nor a folder of TIFFs


def test_read_stack_names_a_volume(forms):
    with pytest.raises(ValueError, match=r"volume.tif is a volume \(E, Z, Y, X\), not a stack"):
        read_stack(forms["tiff"][0])


def _ragged(root, volume):
    return str(write_folders(root / "ragged", volume[1][:3], volume[0].energies[:3], drop=(1, 2)))


def _odd_shape(root, volume):
    path = write_folders(root / "odd", volume[1][:2], volume[0].energies[:2])
    tifffile.imwrite(path / "7055.0eV" / "slice_001.tif", np.zeros((20, 23), np.float32))
    return str(path)


def _wrong_count(root, volume):
    path = write_volume(root / "v.tif", volume[1], volume[0].energies)
    np.savetxt(root / "v.energies.txt", volume[0].energies[:-1])
    tifffile.imwrite(path, volume[1])  # no energies in its metadata: the sidecar counts
    return str(path)


def _three_d(root, volume):
    with h5py.File(root / "s.h5", "w") as f:
        f["stack"] = volume[1][:, 0]
    return f"{root}/s.h5:/stack"


def _no_energies(root, volume):
    tifffile.imwrite(root / "bare.tif", volume[1])
    return str(root / "bare.tif")


@pytest.mark.parametrize("make, options, message", [
    (_ragged, {}, r"energy folder 7055.0eV holds 2 slice TIFFs but 7050.0eV holds 3: every energy needs the same"),
    (_odd_shape, {}, r"slice_001.tif has shape \(20, 23\) but slice_000.tif has shape \(20, 24\)"),
    (_wrong_count, {}, r"volume v.tif has 141 energies but v.energies.txt lists 140"),
    (_three_d, {"axes": "EZYX"}, r"s.h5:/stack is not a 4-D dataset \(found shape \(141, 20, 24\)\)"),
    (_no_energies, {}, r"no energies for volume bare.tif: give energies=\.\.\. \(--energies\), or put energies.txt"),
    (_no_energies, {"axes": "EZY"}, r"bare.tif is not a volume"),
    (_ragged, {"axes": "ZEYX"}, r"axes= applies to 4-D TIFF and HDF5 volumes"),
])
def test_bad_volumes_give_one_clear_line(tmp_path, volume, make, options, message):
    with pytest.raises(ValueError, match=message):
        read_volume(make(tmp_path, volume), **options)


def test_bad_axes_are_named(forms):
    with pytest.raises(ValueError, match=r"axes 'EZXX' must name the 4 dimensions of a volume as a permutation of EZYX"):
        read_volume(forms["tiff"][0], axes="EZXX")


@pytest.mark.parametrize("args, message", [
    (["--flat", "{tiff}"], "a volume is mapped as reconstructed absorbance: flat do not apply"),
    (["--model", "{tiff}"], "a volume trains its own model on all its slices: --model"),
])
def test_cli_refuses_what_does_not_apply_to_a_volume(forms, tmp_path, capsys, args, message):
    paths = bundled_reference_paths()
    tiff = forms["tiff"][0]
    code = main(["map", tiff, "--reference", str(paths["Fe"]), "--out", str(tmp_path / "maps"),
                 *[a.format(tiff=tiff) for a in args]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "maps").exists()


def test_cli_names_ragged_folders_in_one_line(tmp_path, volume, capsys):
    paths = bundled_reference_paths()
    code = main(["map", _ragged(tmp_path, volume), "--reference", str(paths["Fe"]), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and err == ["xafsmap: error: energy folder 7055.0eV holds 2 slice TIFFs but 7050.0eV holds 3: "
                                 "every energy needs the same slices"]
    assert not (tmp_path / "m").exists()
