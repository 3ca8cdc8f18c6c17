"""DDIM inversion of a motion residual and the edited start latent: the core of motion transfer.

The paper's video-editing application (official ``pipelines/video_editing.py`` with
``pipeline_inversion.py``) runs the sampler backwards over a source clip's motion residual, with
the source's first frame and prompt, so the resulting latent encodes the clip's motion. That latent
then stands in for the Gaussian noise of DCTInit with an *edited* first frame, and ordinary
sampling from the mix animates the edited frame with the source's motion.

Official oddity kept on purpose: the inverted latent belongs to the last inversion timestep (981
for 50 steps) but is mixed as if it were noise at t = 985 (``DEFAULT_EDIT_NOISE_TIMESTEP``).
"""

from __future__ import annotations

import torch

from .dct_init import dct_init
from ..settings import DEFAULT_EDIT_LOW_PASS, DEFAULT_EDIT_NOISE_TIMESTEP
from .sampler import GuidedConditioning, MotionUNet, StepCallback
from .schedule import CinemoSchedule



def _check_video_latents(name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() != 5 or not value.is_floating_point():
        raise ValueError(f"{name} must be a float tensor [B, 4, F, h, w], got {getattr(value, 'shape', value)!r}.")
    if value.shape[2] < 1:
        raise ValueError(f"{name} has no frames: {list(value.shape)}.")
    return value


def invert_residual(
    unet: MotionUNet,
    residual: torch.Tensor,
    base_content: torch.Tensor,
    context: torch.Tensor,
    motion_ids: float | torch.Tensor,
    steps: int = 50,
    guidance_scale: float = 1.0,
    negative_context: torch.Tensor | None = None,
    callback: StepCallback | None = None,
    schedule: CinemoSchedule | None = None,
) -> torch.Tensor:
    """DDIM inversion of a clip's motion residual to the latent that sampling would start from.

    Visits the sampling timesteps in reverse (1, 21, ..., 981 for 50 steps); at each one the UNet
    predicts eps for the current latent and :meth:`CinemoSchedule.ddim_inversion_step` (the official
    ``next_step``) moves it one DDIM step up. Guidance works as in
    :func:`cinemo_core.sampling.sampler.sample_residual` (text only); the official script uses none.

    Args:
        unet: callable ``unet(x, timesteps, context, base_content=..., motion_ids=...) -> eps``.
        residual: [B, 4, F, h, w] the source clip's frames 1..F minus its first frame (scaled latents,
            see :func:`cinemo_core.sampling.sampler.split_video_latents`); the loop runs in its dtype.
        base_content: [B or 1, 4, 1, h, w] the source clip's scaled first-frame latent.
        context: [B or 1, 77, C] text embedding of a prompt describing the source clip.
        motion_ids: raw motion id(s), one or one per sample.
        steps: DDIM steps, 1..999; use the same number for the sampling pass.
        guidance_scale: text CFG scale; <= 1 (official 1.0) runs the conditional pass only.
        negative_context: [B or 1, 77, C]; required when ``guidance_scale > 1``.
        callback: ``callback(step_index, total_steps, timestep, latents)`` after each step.
        schedule: the noise schedule (default: the official one).

    Returns:
        The inverted latents [B, 4, F, h, w] (at the last inversion timestep) in ``residual``'s dtype.
    """
    schedule = schedule or CinemoSchedule()
    residual = _check_video_latents("residual", residual)
    timesteps = schedule.inversion_timesteps(steps)
    if int(timesteps[-1]) >= schedule.num_train_timesteps:
        raise ValueError(f"steps must be an integer in 1..{schedule.num_train_timesteps - 1}, got {steps!r}.")
    conditioning = GuidedConditioning.build(
        residual, base_content, context, negative_context, motion_ids, guidance_scale
    )

    latents = residual
    for i, t in enumerate(timesteps.tolist()):
        eps = conditioning.eps(unet, latents, t)
        latents = schedule.ddim_inversion_step(eps, t, latents, steps)
        if callback is not None:
            callback(i, len(timesteps), t, latents)
    return latents


def edit_init_latents(
    inverted: torch.Tensor,
    edit_base: torch.Tensor,
    low_pass: float = DEFAULT_EDIT_LOW_PASS,
    noise_timestep: int = DEFAULT_EDIT_NOISE_TIMESTEP,
    schedule: CinemoSchedule | None = None,
) -> torch.Tensor:
    """The start latent x_T for sampling the edited video: DCTInit with the inverted latents as the noise.

    The edited first frame is repeated over the frames, diffused to ``noise_timestep`` with the
    inverted latents as the noise, and its low spatial DCT frequencies replace those of the inverted
    latents (float64, as the official code).

    Args:
        inverted: [B, 4, F, h, w] from :func:`invert_residual`.
        edit_base: [B or 1, 4, 1, h, w] the edited first frame's scaled latent, the same latent size as
            the source clip.
        low_pass: fraction of each spatial axis taken from the edited frame (official 0.23).
        noise_timestep: the timestep the edited frame is diffused to (official 985).
        schedule: the noise schedule (default: the official one).

    Returns:
        [B, 4, F, h, w] in ``inverted``'s dtype: pass it to ``sample_residual`` with
        ``base_content=edit_base``.
    """
    inverted = _check_video_latents("inverted", inverted)
    if not isinstance(edit_base, torch.Tensor) or edit_base.dim() != 5 or edit_base.shape[2] != 1:
        raise ValueError(
            "edit_base must be one scaled first-frame latent [B, 4, 1, h, w], "
            f"got {getattr(edit_base, 'shape', edit_base)!r}."
        )
    (_, c, _, h, w), (eb, ec, _, eh, ew) = inverted.shape, edit_base.shape
    if (eh, ew) != (h, w):
        raise ValueError(
            f"The edited first frame's latent is {eh}x{ew} (h x w) but the source clip's inverted latents are "
            f"{h}x{w}; encode the edited frame at the source clip's size ({w * 8}x{h * 8} pixels for an 8x VAE)."
        )
    if ec != c:
        raise ValueError(f"edit_base has {ec} channels but the inverted latents have {c}.")
    if eb not in (1, inverted.shape[0]):
        raise ValueError(f"edit_base has batch {eb}; expected 1 or the inverted latents' batch {inverted.shape[0]}.")
    return dct_init(edit_base, inverted, schedule, low_pass=low_pass, noise_timestep=noise_timestep)
