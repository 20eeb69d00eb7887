"""Principal components of the normalized spectra, and how many of them the noise allows.

How many chemically distinct spectra does a stack hold? The classic answer for XANES
(Wasserman 1997, Ressler 2000) is the number of components of an *uncentred* SVD of the
normalized spectra that stand above the noise: spectra that are mixtures of S species
span S dimensions. :func:`find_components` decides it against the stack's own noise
model (:class:`~xafsmap.core.noise.NoiseModel`), not by eye:

1. **Biwhitening** (Landa, Zhang & Kluger 2022). The variance of every point of every
   sample pixel is known (``PixelSample.variance``). Sinkhorn scaling finds row
   (pixel) and column (energy) factors ``a``, ``b`` with which the variance matrix
   ``a_p v_pe b_e`` averages 1 along every row and column. Scaling the data by
   ``sqrt(a_p b_e)`` keeps its rank and makes the noise part's eigenvalues follow the
   Marchenko-Pastur law of unit variance.
2. **Background shapes out.** Each pixel's normalization leaves errors shaped like the
   pre-edge line and, above e0, the post-edge polynomial (Larch's ``flat``): noise in
   the fit windows puts them in every spectrum. They are projected out (in the
   whitened metric) before the eigenvalues are taken, so they are not counted as
   species.
3. **Noise floor.** The eigenvalues ``lambda_k = s_k**2 / P`` of the whitened matrix
   are compared with the Marchenko-Pastur edge ``(1 + sqrt(D / P))**2`` (D energies
   left, P pixels), multiplied by the ratio of the eigenvalues' median to the MP median
   when the data are noisier than the model says (``bulk_ratio`` > 1), and by
   ``1 + FLOOR_MARGIN``. Components above the floor are significant.

The evidence (all eigenvalues, the edge, the bulk ratio, the floor) is returned for
the scree plot and ``explore.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..spectra.sharedfit import shared_fit
from .defaults import FLOOR_MARGIN, MAX_COMPONENTS

if TYPE_CHECKING:
    from .sampling import PixelSample

__all__ = ["Components", "background_shapes", "biwhiten", "find_components", "marchenko_pastur_median",
           "project_scores"]


@dataclass(frozen=True, eq=False)
class Components:
    """The significant components of a stack's normalized spectra and the test's evidence.

    Attributes
    ----------
    energies : ndarray, shape (E,)
    spectra : ndarray, shape (N, E), float64
        Component spectra in normalized-mu units: a pixel's spectrum is its background
        shapes plus ``sum_k score_k * spectra[k]``.
    projector : ndarray, shape (E, N), float32
        ``scores = spectra_of_pixels.T @ projector`` (energy weights times loadings).
    eigenvalues : ndarray, shape (D,)
        Every eigenvalue of the whitened sample, largest first (noise units).
    n_significant : int
        Eigenvalues above ``noise_floor``.
    noise_floor, mp_edge, bulk_ratio : float
        The floor, the Marchenko-Pastur edge of unit noise and the data's bulk
        median over the MP median.
    energy_weights : ndarray, shape (E,)
        ``sqrt(b)``: the whitening of each energy.
    pixel_noise : ndarray, shape (P,)
        Noise standard deviation of each sample pixel's scores (``1 / sqrt(a_p)``,
        times ``sqrt(bulk_ratio)`` where that exceeds 1).
    sample_scores : ndarray, shape (P, N), float64
        The scores of the sample pixels.
    evidence : dict
        What ``explore.json`` records of the test.
    """

    energies: np.ndarray
    spectra: np.ndarray
    projector: np.ndarray
    eigenvalues: np.ndarray
    n_significant: int
    noise_floor: float
    mp_edge: float
    bulk_ratio: float
    energy_weights: np.ndarray
    pixel_noise: np.ndarray
    sample_scores: np.ndarray
    evidence: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Components kept (the significant ones unless a number was asked for)."""
        return int(self.spectra.shape[0])


def biwhiten(variance: np.ndarray, *, iterations: int = 100, tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Row and column factors ``a``, ``b`` that make ``a_p v_pe b_e`` average 1 along rows and columns.

    Parameters
    ----------
    variance : ndarray, shape (P, E)
        Variance of every entry (positive).
    iterations, tol : int, float
        Sinkhorn rounds, and the largest relative change of ``b`` that stops them.

    Returns
    -------
    a : ndarray, shape (P,)
    b : ndarray, shape (E,)

    Examples
    --------
    >>> v = np.outer([1.0, 4.0], [1.0, 2.0, 3.0])
    >>> a, b = biwhiten(v)
    >>> np.round((a[:, None] * v * b).mean(axis=1), 6).tolist(), np.round((a[:, None] * v * b).mean(axis=0), 6).tolist()
    ([1.0, 1.0], [1.0, 1.0, 1.0])
    """
    v = np.asarray(variance, dtype=np.float64)
    p, e = v.shape
    b = np.ones(e)
    for _ in range(iterations):
        a = e / (v @ b)
        new = p / (a @ v)
        done = np.max(np.abs(new / b - 1)) < tol
        b = new
        if done:
            break
    return e / (v @ b), b


def background_shapes(energies: np.ndarray, params: dict) -> np.ndarray:
    """(E, q) shapes a normalization error adds to a spectrum: the pre-edge line and,
    above e0, the post-edge polynomial less its value at e0 (Larch ``flat``).

    ``params`` holds ``e0`` and the resolved windows (``pre1`` ... ``nnorm``).

    Examples
    --------
    >>> e = np.linspace(7000.0, 7300.0, 61)
    >>> params = dict(e0=7120.0, pre1=-100.0, pre2=-30.0, norm1=30.0, norm2=180.0, nnorm=1)
    >>> background_shapes(e, params).shape
    (61, 3)
    """
    energies = np.asarray(energies, dtype=np.float64)
    x = (energies - energies.mean()) / np.ptp(energies)
    fit = shared_fit(energies, float(params["e0"]), params)
    pre_terms, post_terms, ie0 = (2, 2, int(np.argmin(np.abs(energies - params["e0"])))) if fit is None else (
        fit.pinv_pre.shape[0], fit.pinv_post.shape[0], fit.ie0)
    shapes = [x**j for j in range(max(pre_terms, 2))]
    above = np.arange(energies.size) >= ie0
    shapes += [above * (x**j - x[ie0] ** j) for j in range(1, post_terms)]
    return np.stack(shapes, axis=1)


def marchenko_pastur_median(ratio: float) -> float:
    """Median of the Marchenko-Pastur law of unit variance and aspect ratio ``D / P`` <= 1.

    >>> round(marchenko_pastur_median(0.027), 3)
    0.991
    """
    lo, hi = (1 - np.sqrt(ratio)) ** 2, (1 + np.sqrt(ratio)) ** 2
    x = np.linspace(lo, hi, 20001)
    density = np.sqrt(np.maximum((hi - x) * (x - lo), 0.0)) / (2 * np.pi * ratio * x)
    cdf = np.cumsum(density)
    return float(np.interp(0.5, cdf / cdf[-1], x))


def find_components(sample: PixelSample, *, n: int | str = "auto", keep: int | None = None) -> Components:
    """Significant components of a :class:`~xafsmap.core.explore.sampling.PixelSample`.

    Parameters
    ----------
    sample : PixelSample
    n : int or "auto"
        Components to keep; ``"auto"`` keeps the significant ones (at least 1).
    keep : int, optional
        Keep this many instead (for a scree display), whatever ``n`` says.

    Returns
    -------
    Components

    Raises
    ------
    ValueError
        If ``n`` exceeds the energies left after the background shapes, or the sample
        holds fewer pixels than energies.

    Notes
    -----
    See the module notes. The SVD is uncentred: spectra that mix S species span S
    dimensions (a centred PCA would find S - 1).

    Examples
    --------
    >>> from xafsmap.core.simulate.sample import make_sample
    >>> from xafsmap.core.explore.sampling import sample_pixels
    >>> s = make_sample((60, 80), n_grains=16, rng=2)
    >>> found = find_components(sample_pixels(s.stack, s.energies))
    >>> found.n_significant
    4
    """
    y = sample.spectra.T.astype(np.float64)  # (P, E)
    p = y.shape[0]
    # the test on energies with independent noise (every other one of resampled spectra)
    step = max(1, int(getattr(sample, "stride", 1)))
    eigenvalues, vectors, dims, shapes = _whitened_spectrum(y[:, ::step], sample.variance[::step].T,
                                                            sample.energies[::step], sample.params)
    if p < dims:
        raise ValueError(f"the sample holds {p} pixels but {dims} energies: components need more pixels than "
                         "energies (read more pixels, or crop the energies)")
    ratio = dims / p
    mp_edge = (1 + np.sqrt(ratio)) ** 2
    bulk = float(np.median(eigenvalues) / marchenko_pastur_median(ratio))
    floor = mp_edge * max(1.0, bulk) * (1 + FLOOR_MARGIN)
    significant = int(np.count_nonzero(eigenvalues > floor))
    top = min(dims, MAX_COMPONENTS)
    count = int(keep) if keep is not None else min(max(significant, 1), top) if n == "auto" else int(n)
    if not 1 <= count <= top:
        raise ValueError(f"{count} components asked for; give 1 to {top}")
    if step > 1:  # the loadings on every energy
        vectors = _whitened_spectrum(y, sample.variance.T, sample.energies, sample.params)[1]
    a, b = biwhiten(sample.variance.T)
    loadings = vectors[:, :count]  # (E, N) in the whitened metric, orthogonal to the shapes
    # signs: the first component's scores positive (every pixel holds some of it), the
    # others with their largest loading positive
    signs = np.sign(loadings[np.argmax(np.abs(loadings), axis=0), np.arange(count)])
    signs[0] = np.sign(np.sum(y @ (loadings[:, 0] * np.sqrt(b)))) or 1.0
    loadings = loadings * signs[None, :]
    projector = loadings * np.sqrt(b)[:, None]
    scores = y @ projector
    noise = np.sqrt(max(1.0, bulk) / a)
    evidence = {
        "test": "eigenvalues of the biwhitened, background-projected sample above the Marchenko-Pastur edge "
                "of the noise model's unit noise (times the bulk ratio where > 1, times 1 + margin)",
        "n_significant": significant, "pixels": p, "energies": int(y[:, ::step].shape[1]), "energy_stride": step,
        "background_shapes": shapes,
        "dimensions": dims, "marchenko_pastur_edge": mp_edge, "bulk_ratio": bulk, "margin": FLOOR_MARGIN,
        "noise_floor": floor, "eigenvalues": eigenvalues[: max(20, count + 5)].tolist(),
    }
    return Components(energies=sample.energies, spectra=(loadings / np.sqrt(b)[:, None]).T, projector=projector.astype(
        np.float32), eigenvalues=eigenvalues, n_significant=significant, noise_floor=floor, mp_edge=mp_edge,
        bulk_ratio=bulk, energy_weights=np.sqrt(b), pixel_noise=noise, sample_scores=scores, evidence=evidence)


def _whitened_spectrum(y, variance, energies, params):
    """Eigenvalues (largest first, noise units) and eigenvectors (E, E) of the biwhitened,
    background-projected spectra y (P, E); the dimensions left and the shapes removed."""
    p, e = y.shape
    a, b = biwhiten(variance)
    shapes = background_shapes(energies, params) * np.sqrt(b)[:, None]
    basis = np.linalg.qr(shapes)[0]
    whitened = y * np.sqrt(a)[:, None] * np.sqrt(b)[None, :]
    whitened -= (whitened @ basis) @ basis.T
    # the (E, E) Gram matrix's eigenvectors are the SVD's right vectors, for P x E**2
    # operations instead of P x E x min(P, E) with a large constant
    values, vectors = np.linalg.eigh(whitened.T @ whitened / p)
    order = np.argsort(values)[::-1]
    dims = e - basis.shape[1]
    return np.maximum(values[order][:dims], 0.0), vectors[:, order], dims, int(basis.shape[1])


def project_scores(spectra: np.ndarray, components: Components) -> np.ndarray:
    """Component scores of normalized spectra.

    Parameters
    ----------
    spectra : ndarray, shape (E, ...)
        Normalized spectra on the components' energies.
    components : Components

    Returns
    -------
    ndarray, shape (N, ...), float32

    Examples
    --------
    >>> c = Components(np.arange(3.0), np.eye(1, 3), np.array([[1.0], [0], [0]], np.float32), np.ones(1), 1,
    ...                1.0, 1.0, 1.0, np.ones(3), np.ones(1), np.ones((1, 1)))
    >>> project_scores(np.array([[2.0, 3.0], [0, 0], [1, 1]], np.float32), c).tolist()
    [[2.0, 3.0]]
    """
    spectra = np.asarray(spectra, dtype=np.float32)
    flat = spectra.reshape(spectra.shape[0], -1)
    return (components.projector.T @ flat).reshape(components.projector.shape[1], *spectra.shape[1:])
