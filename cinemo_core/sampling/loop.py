"""Seamless loops and end frames: pull the last frames of the video towards a chosen picture.

A loop is an end frame equal to the first image, placed one frame past the video; an end frame is a picture the
video itself ends on. One mechanism serves both: at every step the clean residual of the last frames is pulled
towards a *target residual* (the end latent minus the first latent; 0 for a loop) with per-frame weights,
``weights * residual + (1 - weights) * target`` (:func:`pull_clean_residual`).

Cinemo predicts the motion residual (each frame minus the first image), so "ending where it starts" means
the last residual frames return to zero. At every denoising step the predicted clean residual of the
last ``ramp`` frames is scaled down linearly, ``ramp/(ramp+1), ..., 1/(ramp+1)``, as if the first image
followed the last frame: the video glides back to the picture instead of jumping to it on repeat. The
noise prediction is rewritten to match the scaled clean residual, so the sampler stays a plain DDIM.

In ComfyUI the same pull is a ``sampler_post_cfg_function`` that multiplies ``args["denoised"]`` by
:func:`return_weights` along the residual frames (``[1, 1, F, 1, 1]``); with DDIM / Euler that is the
same update as here. An end frame uses the same post-CFG pull with a target (``nodes/end_frame.py``).
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


def end_frame_weights(num_frames: int, ramp: int) -> torch.Tensor:
    """Per-frame weights (float32, ``[num_frames]``) for a video that ends *on* its target: the loop's ramp over
    the frames before the last, then 0 for the last frame, which is the target itself.

    A loop's target (the first image) follows the last frame, so its ramp stops at ``1/(ramp+1)``; an end frame's
    target is the last frame, the ramp's 0.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}.")
    if isinstance(ramp, bool) or not isinstance(ramp, int) or not 0 <= ramp < num_frames:
        raise ValueError(
            f"end frame ramp must be a whole number of frames from 0 to the {num_frames - 1} generated frames before "
            f"the end frame, got {ramp!r}."
        )
    return torch.cat([return_weights(num_frames - 1, ramp), torch.zeros(1)])


def default_end_ramp(num_frames: int) -> int:
    """Frames that glide towards the end frame before it (a loop's :func:`default_ramp`, leaving the last)."""
    return min(num_frames - 1, default_ramp(num_frames))


def pull_clean_residual(
    clean: torch.Tensor, weights: torch.Tensor, target: torch.Tensor | None = None
) -> torch.Tensor:
    """``weights * clean + (1 - weights) * target`` per frame: the clean residual pulled towards ``target``.

    ``clean`` is ``[B, C, F, h, w]``, ``weights`` ``[F]``, ``target`` broadcasts to ``clean`` (``[B or 1, C, 1,
    h, w]``, the end latent minus the first latent) or is None for a loop (target 0, the first image): then the
    result is ``clean * weights``, bit for bit. Frames of weight 0 become ``target`` exactly.
    """
    factor = weights.to(clean).view(1, 1, -1, 1, 1)
    pulled = clean * factor
    return pulled if target is None else pulled + target.to(clean) * (1 - factor)


def finish_on_target(sample: torch.Tensor, weights: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sample`` with the frames of weight 0 set to ``target`` exactly (what a schedule ending at noise 0 gives:
    Cinemo's official DDIM ends at a non-zero noise level, which would leave a trace of noise on the end frame)."""
    on_target = (weights == 0).to(sample.device).view(1, 1, -1, 1, 1)
    return torch.where(on_target, target.to(sample).expand_as(sample), sample)


def scale_clean_residual(
    eps: torch.Tensor, x: torch.Tensor, timestep: int, schedule: CinemoSchedule, factor: torch.Tensor,
    offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """The noise prediction whose clean residual is ``factor`` times the one ``eps`` implies, plus ``offset``.

    ``x`` is the current sample ``[B, 4, F, h, w]`` at ``timestep``; ``factor`` broadcasts to it (per frame for
    loops and end frames, per latent cell for a motion mask, or both); ``offset`` (None = 0) is what an end
    frame adds, ``(1 - weights) * target``. Where the factor is 1 and there is no offset, ``eps`` is kept exactly;
    elsewhere it becomes ``eps + sqrt(a / (1 - a)) * ((1 - factor) * x0 - offset)``, which is
    ``(x - sqrt(a) * (factor * x0 + offset)) / sqrt(1 - a)`` rewritten so that rounding cannot touch the unscaled
    entries.
    """
    alpha = schedule.alphas_cumprod[int(timestep)].to(device=x.device, dtype=torch.float64)
    x0 = (x - (1 - alpha).sqrt().to(x.dtype) * eps) / alpha.sqrt().to(x.dtype)
    pull = (1 - factor).to(device=x.device, dtype=x.dtype)
    ratio = (alpha / (1 - alpha)).sqrt().to(x.dtype)
    if offset is None:
        return eps + ratio * pull * x0
    return eps + ratio * (pull * x0 - offset.to(device=x.device, dtype=x.dtype))
