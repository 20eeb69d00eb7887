"""Regenerate the Larch values hard-coded in ``test_normalization_rule.py``.

Not a test and never imported by the tests. Run it with xraylarch's Python, with
xafsmap's sources on the path (``xafsmap.core.io.references`` needs only numpy), from
outside the xraylarch source tree::

    cd /tmp && PYTHONPATH=/path/to/src /tmp/larchenv/bin/python /path/to/tests/core/larch_dense_values.py

The values in the tests were produced with xraylarch 2026.3.1: ``pre_edge`` with default
arguments on the energies and mu that ``read_reference`` returns (Athena's
``bkg_eshift`` applied to .prj records).
"""

from pathlib import Path

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPECS = {
    "Mn foil": "athena/Mn.prj:Mn foil",
    "NiO": "athena/NiO.prj:NiO.000",
    "Hematite": "athena/Fe.prj:Hematite",
    "Fe2O3": "references/fe-k/fe2o3_rt.xdi",
    "Magnetite": "athena/FeLibNov2021.nor:Magnetite",
}


def main() -> None:
    import larch
    from larch import Group
    from larch.xafs import pre_edge

    from xafsmap.core.io.references import read_reference

    print(f"# xraylarch {larch.__version__}")
    for name, spec in SPECS.items():
        ref = read_reference(DATA / spec)
        group = Group(energy=ref.energies, mu=ref.mu)
        pre_edge(group)
        d = group.pre_edge_details
        print(f"    {name!r}: dict(e0={float(group.e0)!r}, edge_step={float(group.edge_step)!r}, "
              f"pre1={d.pre1!r}, pre2={d.pre2!r}, norm1={d.norm1!r}, norm2={d.norm2!r}, nnorm={int(d.nnorm)}),")


if __name__ == "__main__":
    main()
