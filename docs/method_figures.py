"""Figures of docs/method.md: the noise model, the mask and the fraction uncertainties, on a
synthetic measurement with a beamline's physics (Poisson counts behind an uneven flat,
grains 16x apart in thickness, thin rims, Fe-free grains, magnetite left out).

Run:  .venv/bin/python docs/method_figures.py   (writes docs/images/method-*.png, ~1 min)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from xafsmap.core.spectra.maskpreview import preview_mask  # noqa: E402
from xafsmap.core.mapping.maps import MASK_SAMPLE  # noqa: E402
from xafsmap.core.mapping.pipeline import map_stack  # noqa: E402
from xafsmap.core.simulate.generator import simulate_measurement  # noqa: E402

IMAGES = Path(__file__).resolve().parent / "images"


def noise_figure(m, mapped, path):
    data = np.asarray(m.stack().data)
    model = mapped.survey.noise_model
    rows, cols = np.mgrid[0 : data.shape[1], 0 : data.shape[2]]
    predicted = np.sqrt(model.variance(data, model.scale(rows, cols)))
    true = m.sigma()
    good = np.isfinite(predicted) & np.isfinite(true) & m.truth.sample[None]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    ax[0].hexbin(true[good], predicted[good], gridsize=60, bins="log", xscale="log", yscale="log", cmap="viridis")
    lim = [true[good].min(), true[good].max()]
    ax[0].plot(lim, lim, "w--", lw=1)
    ax[0].set(xlabel="true sigma of a point (absorbance)", ylabel="noise model's sigma",
              title="every point of every sample pixel")
    levels = np.linspace(model.levels[0], model.info["level_range"][1], 200)
    v = model.level_variance(levels)
    ax[1].semilogy(levels, v / v[0], label="learned v(level)")
    ax[1].semilogy(levels, np.exp(levels - levels[0]), "--", label="exp(A): Poisson counts")
    ax[1].set(xlabel="absorbance level A", ylabel="relative variance", title="variance against signal level")
    ax[1].legend()
    image = ax[2].imshow(np.exp(model.field), aspect="auto", cmap="magma")
    fig.colorbar(image, ax=ax[2], label="g (variance scale)")
    ax[2].set(title="illumination field g on the survey grid", xlabel="survey column", ylabel="survey row")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    ratio = predicted[good] / true[good]
    return float(np.median(ratio)), np.percentile(ratio, [5, 95]).tolist()


def mask_figure(m, mapped, path):
    preview = preview_mask(m.stack(), n_pixels=10**7)
    truth = m.truth.sample
    sample = mapped.mask == MASK_SAMPLE
    fig, ax = plt.subplots(1, 4, figsize=(15, 3.6))
    im = ax[0].imshow(m.truth.edge_step, cmap="viridis")
    fig.colorbar(im, ax=ax[0], label="true edge step")
    ax[0].set_title("true edge step")
    im = ax[1].imshow(np.clip(preview.significance, -5, 50), cmap="magma")
    fig.colorbar(im, ax=ax[1], label="jump / its sigma")
    ax[1].set_title("edge significance")
    compare = np.zeros(truth.shape + (3,))
    compare[truth & sample] = (0.2, 0.7, 0.3)
    compare[truth & ~sample] = (1.0, 0.2, 0.2)
    compare[~truth & sample] = (1.0, 1.0, 0.2)
    ax[2].imshow(compare)
    ax[2].set_title(f"mask: {np.sum(truth & ~sample)} dropped (red), {np.sum(~truth & sample)} extra (yellow)")
    z = preview.significance[np.isfinite(preview.significance)]
    ax[3].hist(np.log10(np.clip(z, 0.1, None)), bins=100, color="#4a7ab0")
    ax[3].axvline(np.log10(5.0), color="r")
    ax[3].set(xlabel="log10 significance", ylabel="pixels", title="the cut at 5 sigma")
    for a in ax[:3]:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return float(np.sum(truth & sample) / np.sum(truth | sample))


def sigma_figure(m, mapped, path):
    t = m.truth
    pixels = t.known & (mapped.mask == MASK_SAMPLE) & ~t.distorted
    true = t.reference_fractions[:, pixels]
    fit, sigma = mapped.fractions[:, pixels], mapped.fraction_sigma[:, pixels]
    free = (true > 0) | (fit > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = ((fit - true) / sigma)[free & (sigma > 0)]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    x = np.linspace(-5, 5, 201)
    ax[0].hist(np.clip(z, -5, 5), bins=100, density=True, color="#4a7ab0", label="(f - f_true) / sigma")
    ax[0].plot(x, np.exp(-x**2 / 2) / np.sqrt(2 * np.pi), "k--", label="N(0, 1)")
    ax[0].legend(fontsize=8)
    ax[0].set_title("(f - f_true) / sigma, fractions not exactly 0")
    im = ax[1].imshow(mapped.fraction_sigma[1], cmap="magma", vmax=np.nanpercentile(mapped.fraction_sigma[1], 99))
    fig.colorbar(im, ax=ax[1], label="sigma of the FeO fraction")
    ax[1].set_title("fraction_sigma.tif (FeO)")
    ax[1].set_xticks([])
    ax[1].set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    err = np.abs(fit - true)
    return (float(np.mean(err <= sigma)), float(np.mean(err <= 2 * sigma)),
            float(np.mean(err[free] <= sigma[free])), float(np.mean(err[free] <= 2 * sigma[free])))


def main():
    IMAGES.mkdir(exist_ok=True)
    m = simulate_measurement((120, 160), dose=3000.0, rng=1)
    mapped = map_stack(m.stack(), m.references, rng=0)
    print("noise model / true sigma (median, 5-95 %):", noise_figure(m, mapped, IMAGES / "method-noise.png"))
    print("mask IoU:", mask_figure(m, mapped, IMAGES / "method-mask.png"))
    print("coverage 1/2 sigma (all; not exactly zero):", sigma_figure(m, mapped, IMAGES / "method-sigma.png"))


if __name__ == "__main__":
    main()
