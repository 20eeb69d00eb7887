"""Regenerate the Larch values hard-coded in ``test_normalize.py``.

Not a test (the name does not start with ``test_``) and never imported by the tests.
It needs xraylarch, which is not a dependency of xafsmap; run it from a scratch venv::

    python3 -m venv /tmp/larchenv
    /tmp/larchenv/bin/pip install --only-binary=:all: xraylarch
    cd /tmp && /tmp/larchenv/bin/python /path/to/tests/core/larch_reference_values.py

(run it outside the xraylarch source tree: ``larch/math`` shadows the stdlib ``math``).
The values in the tests were produced with xraylarch 2026.3.1. For each reference it
runs ``pre_edge`` with default arguments and prints a ``LARCH`` dict entry: e0,
edge_step, the resolved pre1/pre2/norm1/norm2/nnorm and ``norm`` / ``flat`` at ten
energies (chosen from the energy grid between e0 - 20 and e0 + 80 eV).
"""

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FILES = [
    "references/fe-k/fe_metal_rt.xdi",
    "references/fe-k/feo_rt1.xdi",
    "references/fe-k/fe2o3_rt.xdi",
    "references/fe-k/fe3c_rt.xdi",
    "references/fe-k/fen_rt.xdi",
    "stxm-fe-l/71214078/oxidized.r",
    "stxm-fe-l/71214078/reduced.r",
]


def main() -> None:
    import larch
    from larch import Group
    from larch.xafs import pre_edge

    print(f"# xraylarch {larch.__version__}")
    print("LARCH = {")
    for name in FILES:
        data = np.loadtxt(DATA / name, comments="#")
        energy, mu = data[:, 0], data[:, 1]
        group = Group(energy=energy, mu=mu)
        pre_edge(group)
        d = group.pre_edge_details
        inside = np.flatnonzero((energy >= group.e0 - 20) & (energy <= group.e0 + 80))
        pick = inside[np.linspace(0, inside.size - 1, 10).round().astype(int)]
        print(f"    {name!r}: dict(")
        print(f"        e0={float(group.e0)!r}, edge_step={float(group.edge_step)!r},")
        print(f"        pre1={d.pre1!r}, pre2={d.pre2!r}, norm1={d.norm1!r}, "
              f"norm2={d.norm2!r}, nnorm={int(d.nnorm)},")
        print(f"        energy={[float(v) for v in energy[pick]]!r},")
        print(f"        norm={[round(float(v), 6) for v in group.norm[pick]]!r},")
        print(f"        flat={[round(float(v), 6) for v in group.flat[pick]]!r},")
        print("    ),")
    print("}")


if __name__ == "__main__":
    main()
