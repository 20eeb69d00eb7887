"""What a full-field imaging-XANES beamline records, as raw data, with the truth behind it.

:func:`simulate_measurement` builds a sinter-like Fe sample from the bundled real
references with the grain machinery of :mod:`xafsmap.core.simulate.specimen` (Voronoi grains of Fe,
FeO, Fe2O3, their mixtures and magnetite left out of the references; holes and cracks;
grains of matrix without Fe), then measures it:

* **transmission**: counts behind the sample
  ``I = Poisson(F0 * ((1 - leak) * exp(-mu_t) + leak) + D0)``, a flat
  ``F = Poisson(n_flat * (F0 + D0)) / n_flat`` (the average of ``flat_frames`` frames)
  and a dark image ``D = Poisson(n_dark * D0) / n_dark``. ``F0(E, p) = dose *
  illumination(p) * beam(E)``: a smooth beam profile falling by ``falloff`` toward the
  field's corners and a smooth incident spectrum varying by a few %;
  ``mu_t = matrix(p) * (E / 7112 eV)**-3 + edge_step(p) * sum_k f_k(p) * norm_k(E)``;
* **fluorescence**: ``counts = Poisson(dose * edge_step(p) * sum_k f_k(p) * norm_k(E) +
  background(E, p))``, normalized by the incident beam (uniform), dilute (no
  self-absorption), no ``-ln``.

The result is a :class:`~xafsmap.core.simulate.measurement.Measurement`: raw data, settings,
truth and what follows from them (absorbance, its true noise, ideal limits). The
references handed to the user (``Measurement.references``) sit ``offset`` eV
below the stack's energy scale, as those of another beamline; the truth is built on the
stack's own scale. :func:`write_measurement` puts the raw files in a folder for
``xafsmap map stack.tif --flat flat.tif --dark dark.tif --reference ...``.
:data:`CONDITIONS` is the named grid of conditions of the tests and
``benchmarks/physics.py``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .measurement import MATRIX_ENERGY, Measurement
from ..spectra.edge import find_e0
from ..spectra.normalize import normalize
from ..io.references import Reference
from .sample import SAMPLE_PHASES, SAMPLE_REFERENCES, reference_spectra, sample_energies
from .truth import Truth
from .specimen import HOLE, make_specimen, smooth_field

__all__ = ["CONDITIONS", "simulate_measurement", "write_measurement"]

MODES = ("transmission", "fluorescence")


def simulate_measurement(
    shape: tuple[int, int] = (120, 160),
    *,
    mode: str = "transmission",
    dose: float = 3000.0,
    edge_step: tuple[float, float] = (0.15, 2.4),
    matrix: tuple[float, float] = (0.1, 1.2),
    leak: float = 0.0,
    offset: float = 0.0,
    falloff: float = 0.3,
    beam_variation: float = 0.03,
    flat_frames: int = 10,
    dark: float = 100.0,
    dark_frames: int = 10,
    background: tuple[float, float] = (0.01, 0.05),
    n_grains: int = 48,
    hole_fraction: float = 0.08,
    matrix_fraction: float = 0.1,
    unexplained_grains: int = 5,
    rim: float = 0.3,
    rim_width: float = 3.0,
    n_cracks: int = 3,
    leak_tolerance: float = 0.02,
    energies: ArrayLike | None = None,
    phases: Sequence[str] = SAMPLE_PHASES,
    references: Sequence[str] = SAMPLE_REFERENCES,
    rng: int | np.random.Generator | None = 0,
) -> Measurement:
    """Simulate a full-field XANES measurement of a sinter-like Fe sample (see module notes).

    Parameters
    ----------
    shape : (int, int)
        Rows and columns.
    mode : {"transmission", "fluorescence"}
    dose : float
        Transmission: flat counts per pixel per energy at the illumination maximum.
        Fluorescence: counts of the edge jump per unit edge step.
    edge_step, matrix : (float, float)
        Ranges of the Fe edge step (log-uniform per grain: 0.15-2.4 puts grains 16x
        apart in thickness) and of the matrix absorbance at :data:`MATRIX_ENERGY`
        (falling as E**-3); see :func:`~xafsmap.core.simulate.specimen.make_specimen`.
    leak : float
        Fraction of the flat reaching the detector unabsorbed (harmonics, scattered
        light), e.g. 0.02-0.05. Transmission only.
    offset : float
        Energy offset of the stack over the references handed out, eV: their
        energies are the bundled ones minus ``offset``.
    falloff : float
        Relative illumination lost from the beam maximum to the dimmest corner.
    beam_variation : float
        Peak-to-peak relative variation of the incident spectrum over the scan.
    flat_frames, dark_frames : int
        Frames averaged into the flat and the dark image.
    dark : float
        Mean dark counts per frame (a fixed pattern of +-5 % over the field).
    background : (float, float)
        Fluorescence: background counts as a share of ``dose`` (range over the
        sample; half the lower end in holes), rising as E**2.
    n_grains, hole_fraction, matrix_fraction, unexplained_grains, rim, rim_width, n_cracks
        The rest of the specimen (holes, Fe-free grains, grains of the phases left
        out of the references, thin rims, cracks): see
        :func:`~xafsmap.core.simulate.specimen.make_specimen`.
    leak_tolerance : float
        A pixel is *distorted* (:attr:`~xafsmap.core.simulate.truth.Truth.distorted`) when the
        leak changes its normalized spectrum by more than this (edge-step units) at some
        energy from e0 - 20 to e0 + 60 eV (noise-free spectra normalized with the same
        e0 and windows).
    energies : ndarray, optional
        Default :func:`~xafsmap.core.simulate.sample.sample_energies`.
    phases, references : sequence of str
        Bundled phases present, and those handed out as references.
    rng : int or Generator

    Returns
    -------
    Measurement

    Raises
    ------
    ValueError
        For an unknown mode, a leak in fluorescence, or an edge-step range, dose or
        falloff out of range.

    Examples
    --------
    >>> m = simulate_measurement((24, 32), n_grains=8, dose=2000, rng=1)
    >>> m.counts.dtype.name, m.flat.shape == m.counts.shape, m.dark.shape
    ('uint16', True, (24, 32))
    >>> bool(np.nanmax(m.absorbance()) > 0)
    True
    """
    _check_options(mode, dose, edge_step, falloff, leak)
    options = {k: v for k, v in locals().items() if k not in ("rng", "energies")}
    rng = np.random.default_rng(rng)
    energies = sample_energies() if energies is None else np.asarray(energies, dtype=np.float64)
    phases = tuple(phases)
    refs, spectra = reference_spectra(phases, energies)
    specimen = make_specimen(shape, phases, references, n_grains=n_grains, hole_fraction=hole_fraction,
                             matrix_fraction=matrix_fraction, unexplained_grains=unexplained_grains,
                             edge_step=edge_step, matrix=matrix, rim=rim, rim_width=rim_width, n_cracks=n_cracks,
                             rng=rng)
    handed = [_shifted(ref, offset) for ref, name in zip(refs, phases) if name in references]
    truth = Truth(phases=phases, references=tuple(r.name for r in handed), fractions=specimen.fractions,
                  edge_step=specimen.edge_step, kind=specimen.kind, distorted=np.zeros(shape, bool))
    zeros = np.zeros(shape, np.float32)
    if mode == "transmission":
        setup = dict(illumination=_illumination(shape, falloff, rng), beam=_beam(energies, beam_variation, rng),
                     dark_level=(dark * smooth_field(shape, 0.95, 1.05, rng=rng)).astype(np.float32),
                     background=zeros)
    else:
        level = np.where(specimen.kind == HOLE, 0.5 * background[0], smooth_field(shape, *background, rng=rng))
        setup = dict(illumination=np.ones(shape, np.float32), beam=np.ones(energies.size), dark_level=zeros,
                     background=level.astype(np.float32))
    unrecorded = Measurement(mode=mode, counts=None, flat=None, dark=None, energies=energies, references=handed,
                             truth=truth, spectra=spectra, matrix=specimen.matrix, dose=float(dose), leak=float(leak),
                             offset=float(offset), flat_frames=int(flat_frames), dark_frames=int(dark_frames),
                             params=options, **setup)
    return _record(unrecorded, rng, leak_tolerance=leak_tolerance)


def _check_options(mode, dose, edge_step, falloff, leak) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "fluorescence" and leak:
        raise ValueError("a harmonic leak concerns transmission; fluorescence takes leak=0")
    if not 0 < edge_step[0] <= edge_step[1]:
        raise ValueError(f"edge_step must be a range 0 < lo <= hi, got {edge_step}")
    if dose <= 0 or not 0 <= falloff < 1 or not 0 <= leak < 1:
        raise ValueError(f"need dose > 0, 0 <= falloff < 1 and 0 <= leak < 1; got {dose}, {falloff}, {leak}")


def _record(m: Measurement, rng, *, leak_tolerance: float) -> Measurement:
    """Draw the counts of a measurement set up without them, and complete its truth."""
    mean = m.mean_counts()
    if m.mode == "fluorescence":
        return replace(m, counts=rng.poisson(mean).astype(np.float32))
    d0 = m.dark_level.astype(np.float64)
    counts = rng.poisson(mean + d0)
    counts = counts.astype(np.uint16 if counts.max() < 2**16 else np.uint32)
    flat = (rng.poisson(m.flat_frames * (m.flat_mean() + d0)) / m.flat_frames).astype(np.float32)
    dark = (rng.poisson(m.dark_frames * d0) / m.dark_frames).astype(np.float32)
    mu = m.true_absorbance()
    distorted = m.truth.distorted
    if m.leak:
        distorted = _leak_distortion(mu.astype(np.float64), m.energies, m.truth.sample, m.leak, leak_tolerance)
    truth = replace(m.truth, distorted=distorted, absorbance_max=mu.max(axis=0))
    return replace(m, counts=counts, flat=flat, dark=dark, truth=truth)


def _illumination(shape, falloff, rng) -> np.ndarray:
    """A Gaussian beam profile off the centre by up to 10 %: 1 at its maximum, 1 - falloff
    at the dimmest pixel."""
    rows, cols = shape
    cy, cx = (0.5 + rng.uniform(-0.1, 0.1, 2)) * [rows, cols]
    yy, xx = np.mgrid[0:rows, 0:cols]
    r2 = ((yy - cy) / rows) ** 2 + ((xx - cx) / cols) ** 2
    g = np.exp(-r2 / (2 * 0.35**2))
    g = (g - g.min()) / (np.ptp(g) or 1.0)
    return (1 - falloff + falloff * g).astype(np.float32)


def _beam(energies, variation, rng) -> np.ndarray:
    """Incident spectrum: ring-current decay (a slope) and a monochromator ripple, mean 1."""
    t = (energies - energies[0]) / (np.ptp(energies) or 1.0)
    curve = -(t - 0.5) + 0.5 * np.sin(2 * np.pi * (1.3 * t + rng.uniform()))
    curve = (curve - curve.min()) / (np.ptp(curve) or 1.0)
    beam = 1 + variation * curve
    return beam / beam.mean()


def _shifted(ref: Reference, offset: float) -> Reference:
    energies = ref.energies - offset
    energies.setflags(write=False)
    source = ref.source if not offset else f"{ref.source} (energies {-offset:+g} eV)"
    return Reference(ref.name, energies, ref.mu, source)


def _leak_distortion(mu, energies, sample, leak, tolerance) -> np.ndarray:
    """Sample pixels whose normalized spectrum the leak changes by more than ``tolerance``."""
    out = np.zeros(sample.shape, bool)
    if not sample.any():
        return out
    clean = mu[:, sample]
    leaky = -np.log((1 - leak) * np.exp(-clean) + leak)
    e0 = float(find_e0(clean.mean(axis=1), energies))
    a = normalize(clean, energies, e0=e0).norm
    b = normalize(leaky, energies, e0=e0).norm
    window = (energies >= e0 - 20) & (energies <= e0 + 60)
    out[sample] = np.abs(a - b)[window].max(axis=0) > tolerance
    return out


def write_measurement(measurement: Measurement, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a measurement as a beamline would leave it, plus its truth.

    Files: ``stack.tif`` (transmitted counts, uint16/uint32; fluorescence: float32
    counts), ``flat.tif`` (float32, one page per energy, the average of the flat
    frames), ``dark.tif`` (float32, one page, the average of the dark frames),
    ``energies.txt`` (eV, one per line), ``references/<name>.xdi`` (the references as
    handed out: energies shifted by ``-offset``, raw mu) and ``truth.npz`` (the
    :class:`~xafsmap.core.simulate.truth.Truth` arrays, ``phases``, ``references``,
    ``illumination``, ``beam``, ``dose``, ``leak``, ``offset``). Map it with::

        xafsmap map stack.tif --flat flat.tif --dark dark.tif \\
            --reference references/Fe.xdi --reference references/FeO.xdi ...

    Parameters
    ----------
    measurement : Measurement
    folder : str or Path
        Must be absent or empty unless ``overwrite``; written under a temporary name
        and renamed when complete.
    overwrite : bool

    Returns
    -------
    Path
        The folder.
    """
    from ..io.folders import atomic_folder
    from ..mapping.output import write_tiff

    m, folder = measurement, Path(folder)
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        write_tiff(tmp / "stack.tif", m.counts)
        if m.flat is not None:
            write_tiff(tmp / "flat.tif", m.flat)
            write_tiff(tmp / "dark.tif", m.dark)
        (tmp / "energies.txt").write_text("".join(f"{e:.4f}\n" for e in m.energies))
        (tmp / "references").mkdir()
        for ref in m.references:
            header = ["XDI/1.0", "Column.1: energy eV", "Column.2: mutrans", "Element.symbol: Fe",
                      "Element.edge: K", f"Sample.name: {ref.name}", "///",
                      f"bundled xafsmap standard, energies shifted by {-m.offset:+g} eV", "----", "energy mutrans"]
            lines = [f"# {line}" for line in header] + [f"{e:.4f} {v:.8g}" for e, v in zip(ref.energies, ref.mu)]
            (tmp / "references" / f"{ref.name}.xdi").write_text("\n".join(lines) + "\n")
        t = m.truth
        np.savez_compressed(tmp / "truth.npz", fractions=t.fractions, edge_step=t.edge_step, kind=t.kind,
                            distorted=t.distorted, phases=np.array(t.phases), references=np.array(t.references),
                            illumination=m.illumination, beam=m.beam, dose=m.dose, leak=m.leak, offset=m.offset,
                            **({} if t.absorbance_max is None else {"absorbance_max": t.absorbance_max}))
    return folder


#: The named grid of conditions (options of :func:`simulate_measurement`) that tests and
#: ``benchmarks/physics.py`` run over: thin and thick grains at three doses, a harmonic
#: leak, an offset between references and stack, both, and a fluorescence map whose edge
#: jumps span 340-41 000 counts. ``narrow-3000`` keeps edge steps 0.6-1.4 (the range of
#: :func:`~xafsmap.core.simulate.sample.make_sample`) as the control.
CONDITIONS = {
    "narrow-3000": dict(dose=3000.0, edge_step=(0.6, 1.4)),
    "thin-thick-900": dict(dose=900.0),
    "thin-thick-3000": dict(dose=3000.0),
    "thin-thick-20000": dict(dose=20000.0),
    "leak-3000": dict(dose=3000.0, leak=0.03),
    "offset-3000": dict(dose=3000.0, offset=5.0),
    "leak-offset-20000": dict(dose=20000.0, leak=0.03, offset=5.0),
    "fluorescence": dict(mode="fluorescence", dose=17000.0, edge_step=(0.02, 2.4)),
}
