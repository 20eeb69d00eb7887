"""Reference-spectrum readers: real XDI/.e/.nor/.prj files and synthetic edge cases."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from xafsmap.core.io.references import Reference, read_reference, read_references
from xafsmap.core.io.library import list_references, read_library, scan_library
from xafsmap.core.model.standards import resample_reference

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FE_K_EDGE = 7112.0

NOR_NAMES = ["Magnetite", "Maghemite", "Goethite", "HFO", "FeIII_sulfate", "Fe3P",
             "LiFe(II)PO4", "Fe(III)PO4", "Pyrite", "StainlessSteelNP", "Hematite_NP"]
# names read from the @args 'label' of each record (zcat FILE | grep '^@args')
PRJ_NAMES = {
    "Fe-K-ALS-10.3.2.prj": ["Chromite", "Hercynite", "Pentlandite", "Pyrrhotite", "Troilite",
                            "Olivine (Fo0)", "Olivine (Fo40)", "Olivine (Fo80)"],
    "Fe.prj": ["Fe foil", "Ferrihydrite", "Goerthite", "Hematite", "Lepidocrocite"],
    "FeO.prj": ["FeO"],
    "Mn.prj": ["Mn foil", "MnO", "MnOx", "Mn2O3x", "Li2MnO3", "MnCl2", "Mn Oxalate",
               "Rhodochrosite", "g-MnOOH", "Psilomelane", "Pyrolusite", "Ramsdellite",
               "Todorokite", "Mn3O4"],
    "NiO.prj": ["NiO.000", "Ref NiO.000", "NiO.000 (2)", "Ref NiO.000 (2)"]
               + [f"{p}NiO.{i:03d}" for i in (1, 2, 3, 4, 6, 7, 8, 9, 10) for p in ("", "Ref ")]
               + ["NiO", "Ref NiO"],
}


@pytest.fixture(scope="module")
def data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real data folder {DATA} is absent")
    return DATA


def _steepest_rise(ref: Reference, lo: float = 7090.0, hi: float = 7160.0) -> float:
    m = (ref.energies > lo) & (ref.energies < hi)
    return float(ref.energies[m][np.argmax(np.gradient(ref.mu[m], ref.energies[m]))])


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- real files -------------------------------------------------------------------------

def test_every_file_in_references_folder(data):
    files = sorted((data / "references").rglob("*.*"))
    assert len(files) == 10  # 6 Fe K (5 xdi + 1 .e), 4 other K edges
    for f in files:
        (ref,) = read_references(f)
        assert ref.name == f.stem and ref.source == str(f)
        assert ref.energies.dtype == np.float64 and ref.mu.shape == ref.energies.shape
        assert np.all(np.diff(ref.energies) > 0)
        if f.parent.name == "fe-k":
            assert ref.energies[0] < FE_K_EDGE < ref.energies[-1]
            assert 7105 < _steepest_rise(ref) < 7135


def test_xdi_mutrans_column_is_the_one_read(data):
    f = data / "references" / "fe-k" / "fe_metal_rt.xdi"  # Column.2: mutrans, Column.3: i0
    table = np.loadtxt(f)
    ref = read_reference(f)
    np.testing.assert_array_equal(ref.energies, table[:, 0])
    np.testing.assert_array_equal(ref.mu, table[:, 1])


def test_xdi_without_mu_column_uses_ln_i0_over_itrans(data):
    f = data / "references" / "other" / "zn_znse_rt.xdi"  # energy, time, i0, itrans
    table = np.loadtxt(f)
    ref = read_reference(f)
    np.testing.assert_allclose(ref.mu, np.log(table[:, 2] / table[:, 3]))


def test_als_library_reads_all_65(data):
    folder = data / "reference-library" / "als-10.3.2-fe-k"
    refs, skipped = scan_library(folder)
    assert skipped == []
    assert len(refs) == 65
    assert [r.name for r in refs] == sorted(p.stem for p in folder.glob("*.e"))
    assert "Ferrihydrite 2L_Kim FeXANES" in [r.name for r in refs]  # spaces kept
    for ref in refs:
        # a few EXAFS scans start at 6880 eV, none past 8200 eV
        assert 6850 < ref.energies[0] < FE_K_EDGE < ref.energies[-1] < 8200, ref.name
        assert 7105 < _steepest_rise(ref) < 7135, ref.name


def test_library_file_with_latin1_header_and_free_text_separator(data):
    ref = read_reference(data / "reference-library" / "als-10.3.2-fe-k" / "Biotite_Ontario_oa.e")
    assert ref.energies.size == 409 and ref.energies[0] == 7010.75


def test_athena_multicolumn_nor(data):
    f = data / "athena" / "FeLibNov2021.nor"
    assert list_references(f) == NOR_NAMES
    refs = read_references(f)
    table = np.loadtxt(f)
    for i, ref in enumerate(refs):
        assert ref.source == f"{f}:{ref.name}"
        np.testing.assert_array_equal(ref.energies, table[:, 0])
        np.testing.assert_array_equal(ref.mu, table[:, i + 1])
    assert refs[0].energies[0] == 7090.0 and refs[0].energies.size == 196


@pytest.mark.parametrize("name", sorted(PRJ_NAMES))
def test_athena_projects_parse(data, name):
    refs, skipped = scan_library(data / "athena" / name)
    assert skipped == []
    assert [r.name for r in refs] == PRJ_NAMES[name]
    for ref in refs:
        assert ref.energies.size > 200 and np.all(np.diff(ref.energies) > 0)


def test_athena_project_applies_bkg_eshift(data):
    f = data / "athena" / "Fe.prj"
    foil = read_reference(f"{f}:Fe foil")  # @x starts at 6911.98862, bkg_eshift 5.81162
    assert foil.energies[0] == pytest.approx(6911.98862 + 5.81162000000022)
    assert read_reference(f"{f}:Hematite").energies[0] == pytest.approx(6901.5234)  # shift 0
    assert 7105 < _steepest_rise(foil) < 7120


def test_stxm_r_file_is_plain_columns(data):
    ref = read_reference(data / "stxm-fe-l" / "71214078" / "oxidized.r")
    assert ref.energies.size == 123
    assert ref.energies[0] == 700.0 and ref.energies[-1] == pytest.approx(730.353)


# --- FILE:NAME selection ---------------------------------------------------------------

def test_select_by_name(data):
    nor = data / "athena" / "FeLibNov2021.nor"
    ref = read_reference(f"{nor}:Goethite")
    assert ref.name == "Goethite" and ref.source == f"{nor}:Goethite"
    assert [r.name for r in read_references(f"{nor}:LiFe(II)PO4")] == ["LiFe(II)PO4"]
    assert read_reference(f"{data / 'athena' / 'Fe-K-ALS-10.3.2.prj'}:Olivine (Fo40)").name == "Olivine (Fo40)"


def test_multi_reference_file_without_name_lists_names(data):
    with pytest.raises(ValueError, match=r"holds 11 references.*'Magnetite'.*'Hematite_NP'"):
        read_reference(data / "athena" / "FeLibNov2021.nor")


def test_unknown_name_lists_available(data):
    with pytest.raises(ValueError, match=r"no reference named 'Wustite'; available: 'Magnetite'"):
        read_reference(f"{data / 'athena' / 'FeLibNov2021.nor'}:Wustite")


def test_spec_with_spaces_and_colons(tmp_path):
    g = _write(tmp_path / "my refs 2.nor", "# energy Fe:II Fe_III\n7100 0 1\n7110 1 2\n")
    assert read_reference(f"{g}:Fe:II").mu.tolist() == [0.0, 1.0]
    assert read_reference(f"{g}:Fe_III").mu.tolist() == [1.0, 2.0]
    odd = _write(tmp_path / "a:b.dat", "7100 0.1\n7110 0.2\n")  # ':' in the file name itself
    assert read_reference(odd).name == "a:b"
    with pytest.raises(FileNotFoundError, match="no reference file"):
        read_reference(f"{tmp_path / 'missing.nor'}:Fe:II")


# --- XDI column choice and plain files -------------------------------------------------

XDI_HEAD = "# XDI/1.0\n# Element.symbol: Fe\n"


def test_xdi_i0_itrans_gives_log_ratio(tmp_path):
    f = _write(tmp_path / "t.xdi", XDI_HEAD + "# Column.1: energy eV\n# Column.2: i0\n"
               "# Column.3: itrans\n# ///\n#----\n# energy i0 itrans\n"
               "7100 1000 500\n7110 1000 250\n7120 2000 250\n")
    np.testing.assert_allclose(read_reference(f).mu, np.log([2.0, 4.0, 8.0]))


def test_xdi_prefers_mufluor_over_counts(tmp_path):
    f = _write(tmp_path / "f.xdi", XDI_HEAD + "# Column.1: energy eV\n# Column.2: i0\n"
               "# Column.3: ifluor\n# Column.4: mufluor\n#----\n"
               "7100 10 1 0.5\n7110 10 2 0.7\n")
    assert read_reference(f).mu.tolist() == [0.5, 0.7]


def test_xdi_ifluor_over_i0_and_mutrans_first(tmp_path):
    f = _write(tmp_path / "f.xdi", XDI_HEAD + "# Column.1: energy eV\n# Column.2: i0\n"
               "# Column.3: ifluor\n#----\n7100 10 1\n7110 20 5\n")
    assert read_reference(f).mu.tolist() == [0.1, 0.25]
    g = _write(tmp_path / "g.xdi", XDI_HEAD + "# Column.1: energy eV\n# Column.2: mufluor\n"
               "# Column.3: mutrans\n#----\n7100 1 3\n7110 2 4\n")
    assert read_reference(g).mu.tolist() == [3.0, 4.0]


def test_energies_in_kev_become_ev(tmp_path):
    f = _write(tmp_path / "k.xdi", XDI_HEAD + "# Column.1: energy keV\n# Column.2: mu\n"
               "#----\n7.100 0.1\n7.110 0.2\n")
    np.testing.assert_allclose(read_reference(f).energies, [7100.0, 7110.0])
    g = _write(tmp_path / "k.dat", "7.1 0.1\n7.11 0.2\n")
    np.testing.assert_allclose(read_reference(g).energies, [7100.0, 7110.0])


def test_plain_file_sorted_and_exact_duplicates_dropped(tmp_path):
    f = _write(tmp_path / "u.txt", "#%Name: test\n7120,0.3\n7100,0.1\n7110,0.2\n7110,0.9\n")
    ref = read_reference(f)
    assert ref.energies.tolist() == [7100.0, 7110.0, 7120.0]
    assert ref.mu.tolist() == [0.1, 0.2, 0.3]  # first of the duplicates kept
    assert not ref.energies.flags.writeable and not ref.mu.flags.writeable


# --- malformed files --------------------------------------------------------------------

BAD_FILES = [
    ("FeO.xdi", XDI_HEAD + "# Column.1: energy eV\n# Column.2: mutrans\n# Column.3: i0\n#----\n"
     "7100 0.1 5\n7110 abc 5\n", r"FeO.xdi line 8: expected 3 numbers, found 'abc'"),
    ("short.dat", "7100 0.1\n7110 0.2\n7120\n", r"short.dat line 3: expected 2 numbers, found 1"),
    ("empty.dat", "", r"empty.dat: no rows of numbers found; not a recognised reference file"),
    ("prose.txt", "just some notes\nabout a sample\n", r"prose.txt: no rows of numbers found"),
    ("one.dat", "# e\n7100\n7110\n", r"one.dat line 2: only 1 column"),
    ("nan.dat", "7100 0.1\nnan 0.2\n7120 0.3\n", r"nan.dat: reference 'nan' has 1 non-finite energies"),
    ("inf.dat", "7100 0.1\n7110 inf\n", r"inf.dat: reference 'inf' has 1 non-finite mu values"),
    ("single.dat", "7100 0.1\n7100 0.2\n", r"single.dat: reference 'single' has 1 distinct energies"),
    ("nomu.xdi", XDI_HEAD + "# Column.1: energy eV\n# Column.2: i0\n#----\n7100 5\n7110 6\n",
     r"nomu.xdi: no absorbance column among \['energy', 'i0'\]"),
    ("angle.xdi", XDI_HEAD + "# Column.1: angle degrees\n# Column.2: mutrans\n#----\n16 1\n15.9 2\n",
     r"angle.xdi: has an 'angle' column but no 'energy' column"),
    ("zero.xdi", XDI_HEAD + "# Column.1: energy eV\n# Column.2: i0\n# Column.3: itrans\n#----\n"
     "7100 0 5\n7110 6 5\n", r"zero.xdi: cannot compute mu from i0 and itrans: 1 rows"),
]


@pytest.mark.parametrize(("name", "text", "match"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_malformed_text_files(tmp_path, name, text, match):
    with pytest.raises(ValueError, match=match):
        read_references(_write(tmp_path / name, text))


@pytest.mark.parametrize(("name", "payload", "match"), [
    ("image.tif", b"II*\x00\x08\x00\x00\x00", r"image.tif: binary file"),
    ("data.gz", gzip.compress(b"7100 0.1\n7110 0.2\n"), r"data.gz: gzip-compressed but not an Athena project"),
    ("cut.prj", gzip.compress(b"# Athena project file\n@x = (1,2);\n")[:20], r"cut.prj: damaged gzip file"),
])
def test_unrecognised_binary_files(tmp_path, name, payload, match):
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(ValueError, match=match):
        read_references(tmp_path / name)


# --- Athena projects: synthetic records, bad Perl ------------------------------------------

PRJ_HEAD = "# Athena project file -- Demeter version 0.9.26\n"


def _record(group: str, args: str, x="(7000, 7010, 7020)", y="(0.1, 0.5, 1.0)") -> str:
    return (f"$old_group = '{group}';\n@args = ({args});\n@x = {x};\n@y = {y};\n"
            "[record]   # create object and set arrays in ifeffit\n\n")


def _prj(tmp_path: Path, body: str, *, name="p.prj", zipped=True) -> Path:
    path = tmp_path / name
    raw = (PRJ_HEAD + body + "1;\n").encode()
    path.write_bytes(gzip.compress(raw) if zipped else raw)
    return path


@pytest.mark.parametrize("zipped", [True, False])
def test_prj_records_shift_kev_duplicates_and_chi(tmp_path, zipped):
    body = (_record("aa", "'label','FeO','bkg_eshift','2.5','is_xmu',1")
            + _record("bb", "'label','FeO','is_kev',1,'is_xmu',1", x="(7.0, 7.01, 7.02)")
            + _record("cc", "'label','chi data','is_chi',1,'is_xmu',0")
            + _record("dd", "'label','','bkg_eshift',0"))
    f = _prj(tmp_path, body, zipped=zipped)
    refs, skipped = scan_library(f)
    assert [r.name for r in refs] == ["FeO", "FeO (2)", "dd"]
    np.testing.assert_allclose(refs[0].energies, [7002.5, 7012.5, 7022.5])
    np.testing.assert_allclose(refs[1].energies, [7000.0, 7010.0, 7020.0])
    assert skipped == [(f"{f}:chi data", "holds chi(k) data, not mu(E)")]
    with pytest.raises(ValueError, match=r"record 'chi data' cannot be used: holds chi\(k\)"):
        read_reference(f"{f}:chi data")


PERL_ATTACKS = [
    ('system("touch {canary}");\n', r"p.prj line 2: unsupported Perl statement 'system"),
    ("@x = (`touch {canary}`);\n", r"p.prj line 2: unsupported Perl syntax at '`touch"),
    ("$old_group = 'a';\n@args = ('label', system('touch {canary}'));\n",
     r"p.prj line 3: unsupported Perl construct 'system'"),
    ("@x = (1, 2, exec('touch {canary}'));\n", r"p.prj line 2: unsupported Perl construct 'exec'"),
    ("@x = ('1', '2'\n", r"p.prj line 2: unsupported Perl statement"),
    ("@x = ('1', '2';\n", r"p.prj line 2: unbalanced '\('"),
    ("@args = ('label');\n", r"p.prj line 2: @args must be a list of key/value pairs"),
    ("@x = ('1', 'abc');\n@y = (1, 2);\n[record]\n", r"p.prj line 2 \(record 'record at line 2'\): @x holds a non-number"),
]


@pytest.mark.parametrize(("statement", "match"), PERL_ATTACKS)
def test_prj_with_perl_code_is_rejected_not_run(tmp_path, statement, match):
    canary = tmp_path / "PWNED"
    f = _prj(tmp_path, statement.format(canary=canary))
    with pytest.raises(ValueError, match=match):
        read_references(f)
    assert not canary.exists()


def test_prj_perl_code_inside_a_string_is_just_a_name(tmp_path):
    canary = tmp_path / "PWNED"
    label = f'system("touch {canary}"); `rm -rf /`'
    f = _prj(tmp_path, _record("aa", f"'label','{label}','other',\"${{\\@{{[`id`]}}}}\""))
    (ref,) = read_references(f)
    assert ref.name == label
    assert not canary.exists()


# --- library scan -----------------------------------------------------------------------

def test_scan_library_skips_unreadable_and_dedups_names(tmp_path):
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    _write(lib / "Goethite.dat", "7100 0.1\n7110 0.2\n")
    _write(lib / "sub" / "Goethite.xmu", "7100 0.3\n7110 0.4\n")
    _write(lib / "README.txt", "reference library\n")
    _write(lib / ".hidden.dat", "7100 0.1\n7110 0.2\n")
    extra = _write(tmp_path / "two.nor", "# energy A B\n7100 1 2\n7110 3 4\n")
    refs, skipped = scan_library([lib, f"{extra}:B"])
    assert [r.name for r in refs] == ["Goethite", "Goethite (2)", "B"]
    assert [r.source for r in refs] == [str(lib / "Goethite.dat"), str(lib / "sub" / "Goethite.xmu"),
                                        f"{extra}:B"]
    assert [(Path(s).name, "no rows of numbers" in why) for s, why in skipped] == [("README.txt", True)]
    assert [r.name for r in read_library([lib])] == ["Goethite", "Goethite (2)"]
    with pytest.raises(FileNotFoundError):
        scan_library(tmp_path / "nope")


# --- resampling -------------------------------------------------------------------------

def _linear_ref() -> Reference:
    e = np.linspace(7100.0, 7200.0, 51)
    return Reference("FeO", e, 0.01 * (e - 7100.0), "synthetic")


def test_resample_linear_exact_and_offset():
    ref = _linear_ref()
    grid = np.array([7103.3, 7150.0, 7187.25])
    np.testing.assert_allclose(resample_reference(ref, grid), 0.01 * (grid - 7100.0), atol=1e-12)
    shifted = resample_reference(ref, grid, offset=2.0)  # reference axis + 2 eV
    np.testing.assert_allclose(shifted, 0.01 * (grid - 7102.0), atol=1e-12)


def test_resample_flat_extrapolation_and_replacement_mu():
    ref = _linear_ref()
    grid = np.array([7090.0, 7100.0, 7200.0, 7205.0])
    out = resample_reference(ref, grid, require=(7100.0, 7200.0))
    np.testing.assert_allclose(out, [0.0, 0.0, 1.0, 1.0])
    norm = np.full(ref.energies.shape, 2.0)
    assert resample_reference(ref, grid, mu=norm, require=(7100, 7200)).tolist() == [2.0] * 4
    with pytest.raises(ValueError, match=r"mu has 3 values but reference 'FeO' has 51 energies"):
        resample_reference(ref, grid, mu=[1.0, 2.0, 3.0])


def test_resample_coverage_and_tolerance():
    ref = _linear_ref()
    grid = np.arange(7080.0, 7181.0, 1.0)
    with pytest.raises(ValueError, match=r"reference 'FeO' covers 7100.0–7200.0 eV but the "
                                         r"measurement's edge region needs 7080.0–7180.0 eV"):
        resample_reference(ref, grid)
    with pytest.raises(ValueError, match=r"covers 7080.0–7180.0 eV but .* needs 7085.0–7190.0 eV"):
        resample_reference(ref, np.arange(7080.0, 7201.0, 1.0), offset=-20.0, require=(7085, 7190))
    assert resample_reference(ref, grid, require=(7101.0, 7180.0)).shape == grid.shape  # 1 step slack
    with pytest.raises(ValueError, match="covers"):
        resample_reference(ref, grid, require=(7098.0, 7180.0))  # 2 steps short
    resample_reference(ref, grid, offset=-20.0)  # shifted reference now covers 7080–7180
