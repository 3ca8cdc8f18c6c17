"""Image in, frames out: the complete Cinemo animation pipeline on loaded components.

Order of work (and of random draws, all from one CPU ``torch.Generator`` seeded with ``seed``, so a
seed gives the same draws on every device; the video itself differs slightly between devices and dtypes):

1. fit the image to ``width x height`` like the official ``animation.py`` (cover-resize, centre crop,
   [-1, 1]);
2. encode it in float64 and draw the posterior sample (first random draw), times 0.18215;
3. draw Gaussian noise for the ``num_frames - 1`` residual frames (second draw) and turn it into the
   initial latents with DCTInit (official), the FFT low-pass init, or plain noise;
4. encode the prompt and negative prompt with CLIP and run DDIM with text guidance on the residual;
5. decode first frame + residuals to uint8 frames.

On the CPU and at the official settings, the two draws are the ones ``torch.manual_seed(seed)`` gives
the official script, in the same order.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch

from ..model.components import CinemoComponents
from ..preprocess import load_image
from ..sampling.context_windows import LONG_VIDEO_WINDOWS
from ..sampling.dct_init import INIT_MODES, init_noise
from ..sampling.loop import default_ramp
from ..sampling.sampler import sample_residual
from ..settings import (
    DEFAULT_DCT_LOW_PASS,
    DEFAULT_DCT_NOISE_TIMESTEP,
    DEFAULT_FRAMES,
    DEFAULT_GUIDANCE,
    DEFAULT_HEIGHT,
    DEFAULT_INIT,
    DEFAULT_INTENSITY,
    DEFAULT_STEPS,
    DEFAULT_WIDTH,
    TRAINED_FRAMES,
    SettingError,
    size_note,
)
from .motion_mask import read_motion_mask, video_latent_mask
from .render import ClipResult, ProgressFn, Render, new_seed, single_image
from .settings_rules import (
    MAX_SEED,
    check_end_image_settings,
    check_motion_mask_settings,
    check_sampling_settings,
    resolved_motion_id,
)

__all__ = ["AnimationResult", "AnimationSettings", "MAX_SEED", "ProgressFn", "animate", "new_seed"]

#: What :func:`animate` returns: the frames, the seed used, the motion id and the settings.
AnimationResult = ClipResult


@dataclass
class AnimationSettings:
    """Every user-facing knob of :func:`animate`, with the official defaults.

    Attributes:
        prompt, negative_prompt: text; the official negative prompt is empty.
        intensity: motion intensity 0..19 (0 = least motion), mapped to the raw id ``99 - intensity``.
        motion_id: a raw motion id that overrides ``intensity`` (advanced; the released weights know ~80..99).
        steps: DDIM steps (1..999, official 50).
        guidance_scale: text classifier-free guidance (official 7.5; <= 1 disables it).
        seed: random seed (``None``: a random one, reported in the result).
        num_frames: frames in the video including the input image (official 16; more are sampled in windows).
        width, height: output size in pixels, multiples of 8 (official 512x320).
        init: ``"dct"`` (Cinemo's DCTInit, official), ``"fft"`` (FreeInit-style) or ``"plain"`` noise.
        dct_low_pass: DCTInit's low-pass fraction in [0, 1] (official 0.23).
        dct_noise_timestep: DCTInit's / FFT init's noise timestep, 0..999 (official 975).
        loop: end where the video starts, to play on repeat (see :mod:`cinemo_core.sampling.loop`).
        motion_mask: a cinemagraph's mask picture (a file; its grayscale, white = moves, black = stays exactly
            still; see :mod:`cinemo_core.app.motion_mask`), or None to animate everything.
        invert_mask: flip the mask (black = moves).
        end_image: a picture (a file) the video ends on, fitted like the input image; the last frames glide
            towards it (:func:`cinemo_core.sampling.loop.end_frame_weights`). The model was never trained for
            this. Not with ``loop``.
    """

    prompt: str = ""
    negative_prompt: str = ""
    intensity: int = DEFAULT_INTENSITY
    motion_id: float | None = None
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int | None = None
    num_frames: int = DEFAULT_FRAMES
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT
    init: str = DEFAULT_INIT
    dct_low_pass: float = DEFAULT_DCT_LOW_PASS
    dct_noise_timestep: int = DEFAULT_DCT_NOISE_TIMESTEP
    loop: bool = False
    motion_mask: str | None = None
    invert_mask: bool = False
    end_image: str | None = None

    def validate(self) -> None:
        """Raise :class:`SettingError` naming the first bad setting, what is allowed and what to do."""
        check_sampling_settings(self, init_modes=INIT_MODES)
        if not isinstance(self.loop, bool):
            raise SettingError("loop", f"loop must be True or False, got {self.loop!r}.")
        check_motion_mask_settings(self)
        check_end_image_settings(self)

    def quality_warnings(self, *, trained_size: bool = True) -> list[str]:
        """Settings that run but leave what the model was trained on (the size too, unless ``trained_size`` is
        False: the demo's random model was trained on nothing)."""
        notes = []
        if self.num_frames > TRAINED_FRAMES:
            notes.append(
                f"{self.num_frames} frames: the model was trained on {TRAINED_FRAMES}, so the video is sampled in "
                f"overlapping windows of {TRAINED_FRAMES} frames that all start from the input image."
            )
        note = size_note(self.width, self.height) if trained_size else None
        return notes + ([note] if note else [])

    @property
    def resolved_motion_id(self) -> float:
        return resolved_motion_id(self)


def _image_tensor(image: str | os.PathLike[str] | torch.Tensor) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image
    return load_image(image)


def latent_motion_mask(settings: AnimationSettings, image_hw: tuple[int, int],
                        latent_hw: tuple[int, int]) -> torch.Tensor | None:
    """The settings' mask file as the latent mask of the video (None without one); warns when all is still."""
    if settings.motion_mask is None:
        return None
    mask = video_latent_mask(read_motion_mask(settings.motion_mask, invert=settings.invert_mask), image_hw, latent_hw)
    if not bool(mask.any()):
        flipped = " once inverted" if settings.invert_mask else ""
        warnings.warn(f"motion_mask {settings.motion_mask}: the mask is black everywhere{flipped}, so nothing "
                      "moves: the video is the still picture.",
                      stacklevel=3)
    return mask


def read_end_image(settings: AnimationSettings) -> torch.Tensor | None:
    """The settings' end picture [1, H, W, C] (None without one); ``SettingError`` of ``end_image`` if unreadable."""
    if settings.end_image is None:
        return None
    try:
        return single_image(load_image(settings.end_image), "end_image")
    except FileNotFoundError:
        raise SettingError("end_image", f"end image file not found: {os.fspath(settings.end_image)}.") from None
    except ValueError as error:
        raise SettingError("end_image", f"{error}. Give a readable PNG, JPEG or WebP picture.") from None


@torch.no_grad()
def animate(
    components: CinemoComponents,
    image: str | os.PathLike[str] | torch.Tensor,
    settings: AnimationSettings | None = None,
    *,
    progress: ProgressFn | None = None,
) -> AnimationResult:
    """Animate one image.

    Args:
        components: from :func:`cinemo_core.model.components.load_components` or the demo.
        image: an image file, or a ``[1, H, W, 3]`` tensor in 0..1 (ComfyUI IMAGE layout).
        settings: :class:`AnimationSettings` (defaults: the official ones).
        progress: ``progress(done_steps, total_steps)`` after every denoising step.

    Returns:
        :class:`AnimationResult` with the frames and the seed used.
    """
    settings = settings or AnimationSettings()
    run = Render(components, settings)
    picture = single_image(_image_tensor(image), "image")
    base = run.encode(run.fit(picture))
    latent_h, latent_w = base.shape[-2:]
    motion_mask = latent_motion_mask(settings, tuple(picture.shape[1:3]), (latent_h, latent_w))
    end_picture = read_end_image(settings)
    noise = torch.randn(
        (1, components.latent_channels, settings.num_frames - 1, latent_h, latent_w),
        generator=run.generator,
        dtype=torch.float32,
    )
    # encoded after the noise is drawn, so that a seed draws the same first frame and noise with or without it
    end_target = None if end_picture is None else run.encode(run.fit(end_picture)) - base
    # on the CPU in float64, as the official code mixes frequencies (and MPS has no float64)
    init_latents = run.on_model(init_noise(
        settings.init,
        base.cpu().double(),
        noise.double(),
        run.schedule,
        low_pass=settings.dct_low_pass,
        noise_timestep=settings.dct_noise_timestep,
    ))
    base = base.to(run.dtype)
    guided = settings.guidance_scale > 1.0
    context, negative = run.prompts([settings.prompt], settings.negative_prompt if guided else None)
    residual = sample_residual(
        components.unet,
        init_latents,
        base,
        context,
        negative,
        run.motion_id,
        steps=settings.steps,
        guidance_scale=float(settings.guidance_scale),
        callback=run.step_callback(progress, settings.steps),
        schedule=run.schedule,
        windows=LONG_VIDEO_WINDOWS,
        loop_ramp=default_ramp(settings.num_frames - 1) if settings.loop else 0,
        motion_mask=motion_mask,
        end_target=None if end_target is None else end_target.to(base),
    )
    return run.finish(base, residual)
