"""Seamless loops: make the video end where it starts, so that it can play on repeat.

Cinemo predicts the motion residual (each frame minus the first image), so "ending where it starts" means
the last residual frames return to zero. At every denoising step the predicted clean residual of the
last ``ramp`` frames is scaled down linearly, ``ramp/(ramp+1), ..., 1/(ramp+1)``, as if the first image
followed the last frame: the video glides back to the picture instead of jumping to it on repeat. The
noise prediction is rewritten to match the scaled clean residual, so the sampler stays a plain DDIM.

In ComfyUI the same pull is a ``sampler_post_cfg_function`` that multiplies ``args["denoised"]`` by
:func:`return_weights` along the residual frames (``[1, 1, F, 1, 1]``); with DDIM / Euler that is the
same update as here.
"""

from __future__ import annotations

import torch

from .schedule import CinemoSchedule

#: Shortest glide back to the first image, in frames (half a second at Cinemo's 8 fps).
MIN_RAMP = 4


def default_ramp(num_frames: int) -> int:
    """Frames that glide back to the first image for a residual of ``num_frames`` frames.

    The last quarter of the video, at least :data:`MIN_RAMP` frames, at most all of them: long enough that
    the way back is no faster than the motion before it (see README, "Long videos and loops").
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}.")
    return min(num_frames, max(MIN_RAMP, round(num_frames / 4)))


def return_weights(num_frames: int, ramp: int) -> torch.Tensor:
    """Per-frame factor (float32, ``[num_frames]``) on the clean residual: 1, then a linear ramp to the start.

    The last ``ramp`` frames get ``ramp/(ramp+1), ..., 2/(ramp+1), 1/(ramp+1)``; the first image, which
    follows on repeat, is the ramp's 0.
    """
    if isinstance(ramp, bool) or not isinstance(ramp, int) or not 0 <= ramp <= num_frames:
        raise ValueError(
            f"loop ramp must be a whole number of frames from 0 to the {num_frames} generated frames, got {ramp!r}."
        )
    weights = torch.ones(num_frames)
    if ramp:
        weights[num_frames - ramp:] = torch.arange(ramp, 0, -1, dtype=torch.float32) / (ramp + 1)
    return weights


def pull_towards_first_frame(
    eps: torch.Tensor, x: torch.Tensor, timestep: int, schedule: CinemoSchedule, weights: torch.Tensor
) -> torch.Tensor:
    """The noise prediction whose clean residual is ``weights`` (one per frame) times the one ``eps`` implies."""
    if weights.shape != (x.shape[2],):
        raise ValueError(f"weights must have one entry per frame ({x.shape[2]}), got {list(weights.shape)}.")
    return scale_clean_residual(eps, x, timestep, schedule, weights.view(1, 1, -1, 1, 1))


def scale_clean_residual(
    eps: torch.Tensor, x: torch.Tensor, timestep: int, schedule: CinemoSchedule, factor: torch.Tensor
) -> torch.Tensor:
    """The noise prediction whose clean residual is ``factor`` times the one ``eps`` implies.

    ``x`` is the current sample ``[B, 4, F, h, w]`` at ``timestep``; ``factor`` broadcasts to it (per frame for
    loops, per latent cell for a motion mask, or both). Where the factor is 1, ``eps`` is kept exactly; elsewhere
    it becomes ``eps + sqrt(a / (1 - a)) * (1 - factor) * x0``, which is ``(x - sqrt(a) * factor * x0) / sqrt(1 - a)``
    rewritten so that rounding cannot touch the unscaled entries.
    """
    alpha = schedule.alphas_cumprod[int(timestep)].to(device=x.device, dtype=torch.float64)
    x0 = (x - (1 - alpha).sqrt().to(x.dtype) * eps) / alpha.sqrt().to(x.dtype)
    pull = (1 - factor).to(device=x.device, dtype=x.dtype)
    return eps + (alpha / (1 - alpha)).sqrt().to(x.dtype) * pull * x0
