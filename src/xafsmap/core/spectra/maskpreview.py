"""A preview of the no-sample mask on a subgrid of a stack, as the map will make it (the Prepare dock)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..prepare.grid import Subgrid, subgrid
from .mask import SIGNIFICANCE, edge_jump, edge_mask
from .normalize import normalize
from .survey import Survey, survey

if TYPE_CHECKING:
    from ..io.stack import Stack

__all__ = ["PREVIEW_PIXELS", "MaskPreview", "preview_mask"]

#: Pixels read for a mask preview (a regular subgrid of the stack).
PREVIEW_PIXELS = 40_000


@dataclass(frozen=True)
class MaskPreview:
    """Edge jumps, their sigmas and edge steps on a regular subgrid of a stack, with the
    survey whose rule makes the mask.

    Attributes
    ----------
    jump, jump_sigma, edge_step : ndarray, shape (rows, columns) of the subgrid, float32
        NaN where a value is not finite.
    grid : Subgrid
        Which pixels of the stack were read (:func:`~xafsmap.core.prepare.grid.subgrid`).
    survey : Survey
    """

    jump: np.ndarray
    jump_sigma: np.ndarray
    edge_step: np.ndarray
    grid: Subgrid
    survey: Survey

    @property
    def significance(self) -> np.ndarray:
        """Edge jump in units of its standard deviation (NaN where not finite)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.jump / self.jump_sigma

    def mask(self, threshold: float | None = None) -> np.ndarray:
        """The significance rule (or a manual edge-step ``threshold``) on the subgrid."""
        return edge_mask(self.jump, self.jump_sigma, significance=self.survey.significance, threshold=threshold,
                         neighbours=self.grid.full, edge_step=self.edge_step)


def preview_mask(stack: Stack, *, threshold: float | None = None, significance: float = SIGNIFICANCE,
                 norm_params: dict | None = None, n_pixels: int = PREVIEW_PIXELS) -> MaskPreview:
    """The mask of a stack on a regular subgrid of about ``n_pixels`` pixels, as the map will make it.

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack
    threshold, significance, norm_params
        As :func:`~xafsmap.core.spectra.survey.survey`.
    n_pixels : int

    Returns
    -------
    MaskPreview
    """
    found = survey(stack.data, stack.energies, threshold=threshold, significance=significance,
                   norm_params=norm_params)
    grid = subgrid(stack.data.shape[1:], n_pixels)
    block = grid.read(stack.data)
    finite = np.all(np.isfinite(block), axis=0)
    block = np.where(finite, block, 0.0).astype(np.float32)
    model = found.noise_model
    variance = model.variance(block, model.scale(grid.rows[:, None], grid.cols))
    jump, sigma = edge_jump(block, variance, stack.energies, found.e0)
    step = normalize(block, stack.energies, **found.normalization).edge_step

    def where_finite(values):
        return np.where(finite, values, np.nan).astype(np.float32)

    return MaskPreview(jump=where_finite(jump), jump_sigma=where_finite(sigma), edge_step=where_finite(step),
                       grid=grid, survey=found)
