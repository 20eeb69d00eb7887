"""Energy-scale checks and alignment on known answers; the figure of docs/method.md.

Stacks from the real bundled references (``make_sample``) mapped with the same references
on a scale ``shift`` eV low (their energies lowered by ``shift``: the offset to find is
``+shift``), over compositions, noise levels and thicknesses, and the real STXM Fe L stack
with its own references shifted by +-2 eV. Prints one row per condition and writes
``docs/images/energy-alignment.png``::

    .venv/bin/python benchmarks/energyscale.py [--no-figure]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from xafsmap.core.spectra.energyscale import check_energy_scale
from xafsmap.core.io.stack import Stack
from xafsmap.core.simulate.sample import bundled_references, make_sample
from xafsmap.core.spectra.survey import survey

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
COMPOSITIONS = {
    "mixed": dict(phases=("Fe", "FeO", "Fe2O3", "Fe3O4"), references=("Fe", "FeO", "Fe2O3"), unexplained_grains=3),
    "Fe only": dict(phases=("Fe",), references=("Fe",), unexplained_grains=0),
    "FeO only": dict(phases=("FeO",), references=("FeO",), unexplained_grains=0),
    "Fe2O3 only": dict(phases=("Fe2O3",), references=("Fe2O3",), unexplained_grains=0),
}
CONDITIONS = {"0.005": dict(noise=0.005), "0.02": dict(noise=0.02), "0.06": dict(noise=0.06),
              "0.03 thick/thin": dict(noise=0.03, edge_step=(0.15, 2.4))}
SHIFTS = (0.0, -8.0, -5.0, -3.0, -2.0, 2.0, 3.0, 5.0, 8.0)


def shifted(references, shift):
    return [dataclasses.replace(ref, energies=ref.energies - shift) for ref in references]


def check(found, energies, references, *, align=False):
    inside = np.flatnonzero((energies >= found.e0 - 30) & (energies <= found.e0 + 70))
    return check_energy_scale(found.spectra, energies, references, norm_params=found.normalization,
                              window=(int(inside[0]), int(inside[-1]) + 1), align=align, rng=0)


def grid(seed: int = 100) -> None:
    refs = bundled_references(("Fe", "FeO", "Fe2O3"))
    print("composition | noise (absorbance) | matched: offset / ratio / warnings | shifted 2-8 eV: warned / "
          "max |error| eV / max sigma eV / ratio before -> after")
    for composition, options in COMPOSITIONS.items():
        for condition, extra in CONDITIONS.items():
            sample = make_sample((60, 80), n_grains=20, rng=seed, **options, **extra)
            found = survey(sample.stack, sample.energies)
            rows = {shift: check(found, sample.energies, shifted(refs, shift)) for shift in SHIFTS}
            matched = rows.pop(0.0)
            warned = sum(bool(r.warnings) for r in rows.values())
            error = max(abs(r.fit.offset - s) for s, r in rows.items())
            sigma = max(r.fit.sigma for r in rows.values())
            before = min(r.fit.ratio_given for r in rows.values()), max(r.fit.ratio_given for r in rows.values())
            after = max(r.fit.ratio_best for r in rows.values())
            print(f"{composition} | {condition} | {matched.fit.offset:+.3f} / {matched.fit.ratio_given:.2f} / "
                  f"{len(matched.warnings)} | {warned}/{len(rows)} / {error:.3f} / {sigma:.3f} / "
                  f"{before[0]:.1f}-{before[1]:.1f} -> {after:.2f}")


def physics(seed: int = 0) -> None:
    """The physical generator's conditions (counts, thick and thin grains, leak, fluorescence),
    references as handed out and, where they carry no offset, shifted by -3 and +2 eV."""
    from xafsmap.core.simulate.generator import CONDITIONS, simulate_measurement

    for name, options in CONDITIONS.items():
        m = simulate_measurement((80, 100), **options, rng=seed)
        stack = m.stack()
        found = survey(stack.data, stack.energies)
        energies = np.asarray(stack.energies)
        given = options.get("offset", 0.0)
        for extra in (0.0,) if given else (0.0, -3.0, 2.0):
            result = check(found, energies, shifted(m.references, extra))
            f = result.fit
            print(f"{name} (references {given + extra:+g} eV off): found {f.offset:+.3f} ± {f.sigma:.3f} eV, ratio "
                  f"{f.ratio_given:.2f} -> {f.ratio_best:.2f}, warnings {len(result.warnings)}")


def fractions(seed: int = 100) -> None:
    from xafsmap.core.mapping.pipeline import map_stack

    sample = make_sample(rng=seed)
    stack = Stack(sample.stack, sample.energies, {"stack": "<array>"})
    known = sample.mask & (sample.fractions[3] == 0)
    for align in (False, True):
        result = map_stack(stack, shifted(sample.references, 5.0), rng=0, align_references=align)
        sample_px = known & (result.mask == 1)
        rmse = np.sqrt(np.mean((result.fractions[:, sample_px] - sample.fractions[:3, sample_px]) ** 2))
        metal = float(np.nanmean(result.fractions[0][sample_px]))
        print(f"5 eV offset, align={align}: fraction RMSE {rmse:.4f}, mean Fe fraction {metal:.3f} (true "
              f"{sample.fractions[0][sample_px].mean():.3f}), median residual "
              f"{np.nanmedian(result.residual[sample_px]):.4f}, warnings {len(result.warnings)}, "
              f"alignment {result.params['alignment']}")


def stxm() -> None:
    from xafsmap.core.io.stack import read_stack
    from xafsmap.core.prepare.steps import prepare_stack
    from xafsmap.core.io.references import read_reference

    folder = DATA / "stxm-fe-l" / "71214078"
    stack, _ = prepare_stack(read_stack(folder / "71214078.hdr", i0=folder / "i0.xsp"), factor=2)
    data, energies = np.asarray(stack.data, dtype=np.float32), np.asarray(stack.energies)
    refs = [read_reference(folder / name) for name in ("oxidized.r", "reduced.r")]
    keep = (energies >= 702.5) & (energies <= 727.5)
    for label, d, e in (("700-730 eV", data, energies), ("702.5-727.5 eV", data[keep], energies[keep])):
        found = survey(d, e)
        for shift in (0.0, 2.0, -2.0):
            try:
                result = check(found, e, shifted(refs, shift), align=True)
            except ValueError as error:
                print(f"STXM {label} shift {shift:+}: {error}")
                continue
            f = result.fit
            print(f"STXM (2x2 bin, {label}) shift {shift:+.1f}: found {f.offset:+.3f} ± {f.sigma:.3f} eV, ratio "
                  f"{f.ratio_given:.2f} -> {f.ratio_best:.2f}, {f.n_pixels} pixels")


def figure(path: Path, seed: int = 100) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xafsmap.core.spectra.offsets import shifted_references

    sample = make_sample(rng=seed)
    found = survey(sample.stack, sample.energies)
    e = sample.energies
    low = shifted(sample.references, 5.0)
    result = check(found, e, low)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(result.fit.grid, result.fit.misfit / result.fit.misfit.min(), "o-", ms=3)
    left.axvline(result.fit.offset, color="gray", ls="--", lw=0.8)
    left.set_yscale("log")
    left.set_xlabel("common offset added to the references (eV)")
    left.set_ylabel("total χ² / minimum")
    left.set_title(f"found {result.fit.offset:+.2f} ± {result.fit.sigma:.2f} eV (truth +5)", fontsize=9)
    mean = found.spectra.mean(axis=1)
    before, after = shifted_references(low, e, [0.0, result.fit.offset], norm_params=found.normalization)
    window = (e > found.e0 - 25) & (e < found.e0 + 40)
    right.plot(e[window], mean[window], color="black", lw=2, label="mean sample spectrum")
    for k, ref in enumerate(low):
        line, = right.plot(e[window], before[k][window], lw=0.8, ls=":")
        right.plot(e[window], after[k][window], lw=1, color=line.get_color(), label=ref.name)
    right.set_xlabel("energy (eV)")
    right.set_ylabel("normalized μ")
    right.set_title("references 5 eV low (dotted) and aligned (solid)", fontsize=9)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-figure", action="store_true")
    args = parser.parse_args()
    grid()
    physics()
    fractions()
    if (DATA / "stxm-fe-l").is_dir():
        stxm()
    if not args.no_figure:
        figure(ROOT / "docs" / "images" / "energy-alignment.png")


if __name__ == "__main__":
    main()
