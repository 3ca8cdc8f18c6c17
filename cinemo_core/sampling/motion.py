"""Motion intensity: the user's 0..19 scale, the raw id the UNet embeds, and an SSIM estimator.

Cinemo conditions the UNet on a "motion bucket id" derived from the SSIM between video frames,
embedded sinusoidally like a timestep. The released weights expect ids on a ~100*SSIM scale:

* The official demo (``app.py``, also the HF Space) feeds ``motion_bucket_id = 100 - slider``
  with its "motion intensity" slider 1..20, i.e. raw ids 80..99.
* The project page labels its results ``b = 0, 9, 18``: a 0..19 bucket scale.
* Higher SSIM between frames means less change, so a **higher raw id means less motion**.

This module exposes that as an intensity 0..19 (0 = least motion) mapped to ``99 - intensity``
(0 -> 99, 19 -> 80). The paper's exact SSIM definition and its pairing of SSIM values with
buckets is not published (no training code was released); :func:`estimate_intensity` is an
assumption-documented approximation that uses the same ~100*SSIM scale.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch
import torch.nn.functional as F

from ..settings import (
    LEAST_MOTION_ID,
    MAX_INTENSITY,
    MIN_INTENSITY,
    MOST_MOTION_ID,
    check_motion_id,
    intensity_to_motion_id,
)

__all__ = [
    "LEAST_MOTION_ID", "MAX_INTENSITY", "MIN_INTENSITY", "MOST_MOTION_ID", "estimate_intensity",
    "intensity_to_motion_id", "mean_consecutive_ssim", "raw_motion_id", "ssim_to_intensity",
]

_LUMA_BT601 = (0.299, 0.587, 0.114)
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def raw_motion_id(value: float) -> float:
    """Escape hatch: a raw motion id passed unchanged (for other checkpoints), checked by the one rule of
    :func:`cinemo_core.settings.check_motion_id` (0..1000; a warning outside the trained 80..99).

    For the released weights use :func:`intensity_to_motion_id`.
    """
    return check_motion_id(value)


def _frames_to_luma(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """[F, H, W, C] (C = 1 or 3; uint8 or float 0..1) -> float64 luma [F, 1, H, W]."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise ValueError(f"frames must be a torch tensor or numpy array [F, H, W, 3], got {type(frames).__name__}.")
    if frames.dim() != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"frames must have shape [F, H, W, 3] (or [F, H, W, 1]), got {list(frames.shape)}.")
    if frames.shape[0] < 2:
        raise ValueError(f"Measuring motion needs at least 2 frames, got {frames.shape[0]}.")
    if frames.shape[1] < _SSIM_WINDOW or frames.shape[2] < _SSIM_WINDOW:
        raise ValueError(
            f"Frames must be at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels for SSIM, "
            f"got {frames.shape[1]}x{frames.shape[2]}."
        )
    if frames.dtype == torch.uint8:
        x = frames.to(torch.float64) / 255.0
    elif frames.is_floating_point():
        x = frames.to(torch.float64)
    else:
        raise ValueError(f"frames must be uint8 (0..255) or float (0..1), got {frames.dtype}.")
    if x.shape[-1] == 3:
        weights = torch.tensor(_LUMA_BT601, dtype=torch.float64, device=x.device)
        y = (x * weights).sum(-1)
    else:
        y = x[..., 0]
    return y.unsqueeze(1)


def _gaussian_window(device: torch.device) -> torch.Tensor:
    r = _SSIM_WINDOW // 2
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64, device=device) / _SSIM_SIGMA) ** 2)
    return k / k.sum()


def _blur_valid(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur keeping only pixels whose window lies inside the image."""
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    return F.conv2d(x, k.view(1, 1, 1, -1))


def mean_consecutive_ssim(frames: torch.Tensor | np.ndarray) -> float:
    """Mean SSIM between consecutive frames, on BT.601 luma.

    Wang et al. (2004) SSIM: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 1,
    population covariance, averaged over pixels whose window fits inside the frame (the same
    as ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1.0)``), then over the F-1 frame pairs.

    Args:
        frames: [F, H, W, 3] (or [F, H, W, 1]) float in 0..1 or uint8, F >= 2, H, W >= 11.
    """
    y = _frames_to_luma(frames)
    k = _gaussian_window(y.device)
    a, b = y[:-1], y[1:]
    mu_a, mu_b = _blur_valid(a, k), _blur_valid(b, k)
    var_a = _blur_valid(a * a, k) - mu_a**2
    var_b = _blur_valid(b * b, k) - mu_b**2
    cov = _blur_valid(a * b, k) - mu_a * mu_b
    c1, c2 = _SSIM_K1**2, _SSIM_K2**2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean(dim=(1, 2, 3)).mean())


def ssim_to_intensity(mean_ssim: float) -> int:
    """Place a mean SSIM on the 0..19 intensity scale: raw id = round(100 * SSIM) clamped to 80..99.

    SSIM 1.0 (no change) -> 0; SSIM <= 0.805 -> 19. This assumes the released ids are ~100*SSIM,
    which fits the demo's 80..99 range; the paper's exact bucketing is not published.
    """
    if not isinstance(mean_ssim, Real) or not math.isfinite(mean_ssim):
        raise ValueError(f"mean_ssim must be a finite number, got {mean_ssim!r}.")
    raw = math.floor(100.0 * float(mean_ssim) + 0.5)
    raw = min(max(raw, MOST_MOTION_ID), LEAST_MOTION_ID)
    return LEAST_MOTION_ID - raw


def estimate_intensity(frames: torch.Tensor | np.ndarray) -> int:
    """Estimate a clip's motion intensity 0..19 from the mean SSIM of its consecutive frames.

    See :func:`mean_consecutive_ssim` for the measurement and :func:`ssim_to_intensity` for the
    (assumed) mapping. Useful to pick an intensity that matches a reference video.
    """
    return ssim_to_intensity(mean_consecutive_ssim(frames))
