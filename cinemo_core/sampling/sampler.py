"""The DDIM sampling loop for the motion residual, as in the official ``VideoGenPipeline``.

Cinemo denoises the *motion residual* (frames minus the first frame) conditioned on the first
frame's latent (``base_content``), the text and a motion id. Classifier-free guidance applies to
the text only: one batch ``[uncond, cond]`` shares latents, base content and motion id, and the
two halves are combined as ``u + s * (c - u)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from .context_windows import ContextWindows, windowed_prediction
from ..finite import check_model_output
from .loop import default_end_ramp, end_frame_weights, finish_on_target, return_weights, scale_clean_residual
from .schedule import CinemoSchedule
from .still import keep_still


class MotionUNet(Protocol):
    """What the sampler calls: returns epsilon for the residual frames, shaped like ``x``."""

    def __call__(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, *,
                 base_content: torch.Tensor, motion_ids: torch.Tensor) -> torch.Tensor: ...


StepCallback = Callable[[int, int, int, torch.Tensor], None]


def _batched(name: str, value: torch.Tensor, batch: int, ndim: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() != ndim:
        raise ValueError(f"{name} must be a {ndim}-D tensor, got {getattr(value, 'shape', type(value).__name__)!r}.")
    if value.shape[0] == batch:
        return value
    if value.shape[0] == 1:
        return value.expand(batch, *value.shape[1:])
    raise ValueError(f"{name} has batch {value.shape[0]}; expected 1 or {batch} (the latents' batch).")


def _motion_tensor(motion_ids: float | torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    ids = torch.as_tensor(motion_ids, dtype=torch.float64).flatten()
    if ids.numel() not in (1, batch):
        raise ValueError(f"Got {ids.numel()} motion ids for a batch of {batch}; pass 1 or one per sample.")
    if not torch.isfinite(ids).all():
        raise ValueError(f"Motion ids must be finite, got {ids.tolist()}.")
    # The official pipeline builds the id tensor in the latents' dtype.
    return ids.expand(batch).to(device=like.device, dtype=like.dtype)


@dataclass(frozen=True)
class GuidedConditioning:
    """The UNet's conditioning batched for one pass, or for ``[uncond, cond]`` when guidance is on.

    Shared by the sampler and DDIM inversion (``cinemo_core.sampling.inversion``), which guide the same way.
    """

    context: torch.Tensor
    base_content: torch.Tensor
    motion_ids: torch.Tensor
    guidance_scale: float

    @property
    def uses_cfg(self) -> bool:
        return self.guidance_scale > 1.0

    @classmethod
    def build(
        cls,
        latents: torch.Tensor,
        base_content: torch.Tensor,
        context: torch.Tensor,
        negative_context: torch.Tensor | None,
        motion_ids: float | torch.Tensor,
        guidance_scale: float,
    ) -> "GuidedConditioning":
        """Check the conditioning against ``latents`` [B, C, F, h, w] and move it to their device and dtype."""
        batch, channels, _, h, w = latents.shape
        device, dtype = latents.device, latents.dtype
        base = _batched("base_content", base_content, batch, 5)
        if base.shape[1:] != (channels, 1, h, w):
            raise ValueError(f"base_content must be [B, {channels}, 1, {h}, {w}], got {list(base_content.shape)}.")
        base = base.to(device=device, dtype=dtype)
        cond = _batched("context", context, batch, 3).to(device=device, dtype=dtype)
        ids = _motion_tensor(motion_ids, batch, latents)
        if guidance_scale <= 1.0:
            return cls(cond, base, ids, float(guidance_scale))
        if negative_context is None:
            raise ValueError("negative_context is required when guidance_scale > 1 (use the empty prompt's embedding).")
        uncond = _batched("negative_context", negative_context, batch, 3).to(device=device, dtype=dtype)
        if uncond.shape != cond.shape:
            raise ValueError(f"negative_context {list(uncond.shape)} and context {list(cond.shape)} must match.")
        return cls(torch.cat([uncond, cond]), torch.cat([base, base]), torch.cat([ids, ids]), float(guidance_scale))

    def eps(self, unet: MotionUNet, latents: torch.Tensor, t: int) -> torch.Tensor:
        """The (guided) noise prediction for ``latents`` at timestep ``t``, in the latents' dtype."""
        model_input = torch.cat([latents, latents]) if self.uses_cfg else latents
        t_batch = torch.full((model_input.shape[0],), t, dtype=torch.int64, device=latents.device)
        eps = unet(model_input, t_batch, self.context, base_content=self.base_content, motion_ids=self.motion_ids)
        if eps.shape != model_input.shape:
            raise ValueError(f"unet returned shape {list(eps.shape)}; expected {list(model_input.shape)}.")
        check_model_output(eps, x=model_input, context=self.context, base_content=self.base_content)
        if self.uses_cfg:
            eps_uncond, eps_cond = eps.chunk(2)
            eps = eps_uncond + self.guidance_scale * (eps_cond - eps_uncond)
        return eps.to(latents.dtype)


def sample_residual(
    unet: MotionUNet,
    init_latents: torch.Tensor,
    base_content: torch.Tensor,
    context: torch.Tensor,
    negative_context: torch.Tensor | None,
    motion_ids: float | torch.Tensor,
    steps: int = 50,
    guidance_scale: float = 7.5,
    eta: float = 0.0,
    callback: StepCallback | None = None,
    generator: torch.Generator | None = None,
    schedule: CinemoSchedule | None = None,
    windows: ContextWindows | None = None,
    loop_ramp: int = 0,
    motion_mask: torch.Tensor | None = None,
    end_target: torch.Tensor | None = None,
    end_ramp: int | None = None,
) -> torch.Tensor:
    """Denoise the motion residual with DDIM over the official timesteps.

    Args:
        unet: callable ``unet(x, timesteps, context, base_content=..., motion_ids=...) -> eps``.
        init_latents: [B, 4, F, h, w] x_T (e.g. from :func:`cinemo_core.sampling.dct_init.dct_init`); the
            loop runs in its dtype.
        base_content: [B or 1, 4, 1, h, w] scaled first-frame latent.
        context: [B or 1, 77, C] text embedding of the prompt.
        negative_context: [B or 1, 77, C] embedding of the negative prompt; required when
            ``guidance_scale > 1``, unused otherwise.
        motion_ids: raw motion id(s) (see :mod:`cinemo_core.sampling.motion`), one or one per sample.
        steps: DDIM steps, 1..999.
        guidance_scale: text CFG scale; <= 1 runs the conditional pass only.
        eta: DDIM stochasticity (official 0).
        callback: ``callback(step_index, total_steps, timestep, latents)`` after each step.
        generator: random source for the ``eta > 0`` noise.
        schedule: the noise schedule (default: the official one).
        windows: context windows for residuals longer than ``windows.length`` frames (see
            :mod:`cinemo_core.sampling.context_windows`); shorter residuals are sampled in one pass, exactly as without.
        loop_ramp: for a seamless loop, the last ``loop_ramp`` frames glide back to the first frame
            (see :mod:`cinemo_core.sampling.loop`); 0 = off.
        motion_mask: a cinemagraph's latent mask [B or 1, h, w] (1 = moves, 0 = stays still, see
            :mod:`cinemo_core.sampling.still`); the residual is exactly 0 where it is 0. None = all moves.
        end_target: for a video that ends on a chosen picture, the target residual [B or 1, 4, 1, h, w]: the end
            picture's latent minus ``base_content`` (same scaling). The last frame's residual is exactly this
            (0 where ``motion_mask`` is 0: the mask wins) and the ``end_ramp`` frames before it glide towards it,
            with the loop's mechanism (:func:`cinemo_core.sampling.loop.end_frame_weights`). Not with ``loop_ramp``.
        end_ramp: frames before the end frame that glide towards it (None: the loop's default ramp).

    Returns:
        The denoised residual [B, 4, F, h, w] in ``init_latents``' dtype.
    """
    schedule = schedule or CinemoSchedule()
    if not isinstance(init_latents, torch.Tensor) or init_latents.dim() != 5 or not init_latents.is_floating_point():
        raise ValueError(
            "init_latents must be a float tensor [B, 4, F, h, w], "
            f"got {getattr(init_latents, 'shape', init_latents)!r}."
        )
    timesteps = schedule.ddim_timesteps(steps)
    if int(timesteps[0]) >= schedule.num_train_timesteps:
        raise ValueError(f"steps must be at most {schedule.num_train_timesteps - 1}, got {steps}.")
    conditioning = GuidedConditioning.build(
        init_latents, base_content, context, negative_context, motion_ids, guidance_scale
    )

    num_frames = init_latents.shape[2]
    factor = None  # the clean residual's scale: per frame for loops and end frames, per latent cell for a mask
    offset = None  # what the clean residual gains towards an end frame: (1 - weights) * target
    if end_target is not None:
        if loop_ramp:
            raise ValueError("end_target and loop_ramp both set where the video ends; a loop is an end frame equal to "
                             "the first frame: use one of them.")
        target = _end_target(end_target, init_latents)
        weights = end_frame_weights(num_frames, default_end_ramp(num_frames) if end_ramp is None else end_ramp)
        factor = weights.view(1, 1, -1, 1, 1).to(init_latents)
        offset = (1 - factor) * target
    elif loop_ramp:
        factor = return_weights(num_frames, loop_ramp).view(1, 1, -1, 1, 1).to(init_latents)
    mask = _mask_factor(motion_mask, init_latents) if motion_mask is not None else None
    if mask is not None:  # the mask wins: still cells are pulled to 0, also on the end frame
        factor = mask if factor is None else factor * mask
        offset = None if offset is None else offset * mask
    windowed = windows is not None and windows.applies_to(num_frames)

    latents = init_latents
    for i, t in enumerate(timesteps.tolist()):
        if windowed:  # each window is one guided UNet call on a slice of the residual frames
            eps = windowed_prediction(functools.partial(conditioning.eps, unet, t=t), latents, windows, step=i)
        else:
            eps = conditioning.eps(unet, latents, t)
        if factor is not None:
            eps = scale_clean_residual(eps, latents, t, schedule, factor, offset)
        latents = schedule.ddim_step(eps, t, latents, steps, eta=eta, generator=generator)
        if callback is not None:
            callback(i, len(timesteps), t, latents)
    # the official schedule ends at a non-zero noise level: what is left of it on the end frame and in still
    # cells goes too
    if end_target is not None:
        latents = finish_on_target(latents, weights, target)
    return latents if mask is None else keep_still(latents, mask)


def _end_target(end_target: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """The end frame's target residual [B or 1, C, 1, h, w] checked against ``latents`` [B, C, F, h, w]."""
    batch, channels, _, height, width = latents.shape
    if not isinstance(end_target, torch.Tensor) or end_target.dim() != 5 or tuple(end_target.shape[1:]) != (
        channels, 1, height, width
    ):
        raise ValueError(
            f"end_target must be the end frame's residual [videos, {channels}, 1, {height}, {width}] (end latent minus "
            f"first latent), got {list(getattr(end_target, 'shape', [])) or type(end_target).__name__}."
        )
    if not torch.isfinite(end_target).all():
        raise ValueError("end_target holds NaN or infinite values; encode the end frame again.")
    return _batched("end_target", end_target, batch, 5).to(device=latents.device, dtype=latents.dtype)


def _mask_factor(motion_mask: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """A latent motion mask [B or 1, h, w] as a factor [B, 1, 1, h, w] on ``latents`` [B, 4, F, h, w]."""
    batch, _, _, height, width = latents.shape
    if not isinstance(motion_mask, torch.Tensor) or motion_mask.dim() != 3 or tuple(motion_mask.shape[1:]) != (
        height, width
    ):
        raise ValueError(
            f"motion_mask must be a latent mask [videos, {height}, {width}] (see cinemo_core.sampling.still."
            f"latent_mask), got {list(getattr(motion_mask, 'shape', [])) or type(motion_mask).__name__}."
        )
    if not torch.isfinite(motion_mask).all() or motion_mask.min() < 0 or motion_mask.max() > 1:
        raise ValueError("motion_mask must hold values from 0 (still) to 1 (moves).")
    mask = _batched("motion_mask", motion_mask, batch, 3)
    return mask[:, None, None].to(device=latents.device, dtype=latents.dtype)


def assemble_video_latents(base_content: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Video latents [B, 4, F+1, h, w]: frame 0 is the first frame, then first frame + residual."""
    if base_content.dim() != 5 or base_content.shape[2] != 1:
        raise ValueError(f"base_content must be [B, C, 1, h, w], got {list(base_content.shape)}.")
    if residual.dim() != 5:
        raise ValueError(f"residual must be [B, C, F, h, w], got {list(residual.shape)}.")
    base = base_content.to(device=residual.device, dtype=residual.dtype)
    try:
        frames = base + residual
    except RuntimeError as exc:
        raise ValueError(
            f"base_content {list(base_content.shape)} does not fit residual {list(residual.shape)}."
        ) from exc
    return torch.cat([base.expand(frames.shape[0], -1, -1, -1, -1), frames], dim=2)


def split_video_latents(video_latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of :func:`assemble_video_latents`: [B, C, F+1, h, w] -> (first frame [B, C, 1, h, w],
    residual [B, C, F, h, w] = frames 1.. minus the first frame), as the official video editing script."""
    if not isinstance(video_latents, torch.Tensor) or video_latents.dim() != 5 or video_latents.shape[2] < 2:
        raise ValueError(
            "video_latents must be [B, C, F, h, w] with at least 2 frames (the first frame and one more), "
            f"got {list(getattr(video_latents, 'shape', []))}."
        )
    base = video_latents[:, :, :1]
    return base, video_latents[:, :, 1:] - base
