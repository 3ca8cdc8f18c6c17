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
import secrets
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..model.components import CinemoComponents, decode_video, encode_image, encode_prompts
from ..sampling.context_windows import LONG_VIDEO_WINDOWS
from ..sampling.dct_init import INIT_MODES, init_noise
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
    MAX_SEED,
    MIN_SEED,
    TRAINED_FRAMES,
    SettingError,
    check_dct_low_pass,
    check_frames,
    check_guidance,
    check_intensity,
    check_motion_id,
    check_noise_timestep,
    check_seed,
    check_side,
    check_steps,
)
from ..sampling.loop import default_ramp
from ..sampling.motion import intensity_to_motion_id, raw_motion_id
from ..preprocess import check_size, fit_image, load_image
from ..sampling.sampler import sample_residual
from ..sampling.schedule import CinemoSchedule

ProgressFn = Callable[[int, int], None]


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
        num_frames: frames in the video including the input image (official 16).
        width, height: output size in pixels, multiples of 8 (official 512x320).
        init: ``"dct"`` (Cinemo's DCTInit, official), ``"fft"`` (FreeInit-style) or ``"plain"`` noise.
        dct_low_pass: DCTInit's low-pass fraction in [0, 1] (official 0.23).
        dct_noise_timestep: DCTInit's / FFT init's noise timestep, 0..999 (official 975).
        loop: end where the video starts, to play on repeat (see :mod:`cinemo_core.sampling.loop`).
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

    @classmethod
    def _official(cls, name: str) -> object:
        """The default of a setting (subclasses such as the motion-transfer settings have their own)."""
        return cls.__dataclass_fields__[name].default

    def validate(self) -> None:
        """Raise :class:`SettingError` naming the first bad setting, what is allowed and what to do (the rules
        are :mod:`cinemo_core.settings`' checkers, the ones the nodes use)."""
        for name in ("prompt", "negative_prompt"):
            if not isinstance(getattr(self, name), str):
                raise SettingError(name, f"{name} must be a string, got {type(getattr(self, name)).__name__}.")
        if self.motion_id is None:
            check_intensity(self.intensity)
        else:
            check_motion_id(self.motion_id)
        check_steps(self.steps)
        check_guidance(self.guidance_scale, official=self._official("guidance_scale"))
        if self.seed is not None:
            check_seed(self.seed)
        check_frames(self.num_frames)
        check_side("width", self.width)
        check_side("height", self.height)
        if self.init not in INIT_MODES:
            raise SettingError("init", f"init must be one of {', '.join(INIT_MODES)}, got {self.init!r}.")
        check_dct_low_pass(self.dct_low_pass)
        check_noise_timestep(self.dct_noise_timestep, official=self._official("dct_noise_timestep"))
        if not isinstance(self.loop, bool):
            raise SettingError("loop", f"loop must be True or False, got {self.loop!r}.")

    def quality_warnings(self, *, trained_size: bool = True) -> list[str]:
        """Settings that run but leave what the model was trained on (the size too, unless ``trained_size`` is
        False: the demo's random model was trained on nothing)."""
        notes = []
        if self.num_frames > TRAINED_FRAMES:
            notes.append(
                f"{self.num_frames} frames: the model was trained on {TRAINED_FRAMES}, so the video is sampled in "
                f"overlapping windows of {TRAINED_FRAMES} frames that all start from the input image."
            )
        if trained_size and (self.width, self.height) != (DEFAULT_WIDTH, DEFAULT_HEIGHT):
            notes.append(
                f"{self.width}x{self.height}: the model was trained at {DEFAULT_WIDTH}x{DEFAULT_HEIGHT}; "
                "quality may drop at other sizes."
            )
        return notes

    @property
    def resolved_motion_id(self) -> float:
        return raw_motion_id(self.motion_id) if self.motion_id is not None else intensity_to_motion_id(self.intensity)


@dataclass
class AnimationResult:
    """Frames ``uint8 [num_frames, height, width, 3]`` (frame 0 is the decoded input) and what made them."""

    frames: np.ndarray
    seed: int
    motion_id: float
    settings: AnimationSettings = field(repr=False)


def new_seed() -> int:
    """A fresh random seed (reported so the run can be repeated)."""
    return MIN_SEED + secrets.randbelow(MAX_SEED - MIN_SEED + 1)


def _image_tensor(image: str | os.PathLike[str] | torch.Tensor) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image
    return load_image(image)


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
    settings.validate()
    seed = settings.seed if settings.seed is not None else new_seed()
    motion_id = settings.resolved_motion_id
    device, dtype = components.device, components.dtype

    pixels = _image_tensor(image)
    if pixels.dim() != 4 or pixels.shape[0] != 1:
        raise ValueError(f"image must be a single image [1, H, W, C], got {list(pixels.shape)}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # size advice is given once, by quality_warnings()
        check_size(settings.width, settings.height)
    fitted = fit_image(pixels, settings.width, settings.height)  # warns when the crop drops most of the image

    generator = torch.Generator(device="cpu").manual_seed(seed)
    base = encode_image(
        components.image_encoder, fitted, scaling_factor=components.scaling_factor, generator=generator
    )
    latent_h, latent_w = base.shape[-2:]
    noise = torch.randn(
        (1, components.latent_channels, settings.num_frames - 1, latent_h, latent_w),
        generator=generator,
        dtype=torch.float32,
    )
    schedule = CinemoSchedule()
    # on the CPU in float64, as the official code mixes frequencies (and MPS has no float64)
    init_latents = init_noise(
        settings.init,
        base.cpu().double(),
        noise.double(),
        schedule,
        low_pass=settings.dct_low_pass,
        noise_timestep=settings.dct_noise_timestep,
    ).to(device=device, dtype=dtype)
    base = base.to(dtype)

    context = encode_prompts(components.tokenizer, components.text_encoder, [settings.prompt])
    negative = None
    if settings.guidance_scale > 1.0:
        negative = encode_prompts(components.tokenizer, components.text_encoder, [settings.negative_prompt])

    def _on_step(index: int, total: int, timestep: int, latents: torch.Tensor) -> None:
        if progress is not None:
            progress(index + 1, total)

    residual = sample_residual(
        components.unet,
        init_latents,
        base,
        context,
        negative,
        motion_id,
        steps=settings.steps,
        guidance_scale=float(settings.guidance_scale),
        callback=_on_step,
        schedule=schedule,
        windows=LONG_VIDEO_WINDOWS,
        loop_ramp=default_ramp(settings.num_frames - 1) if settings.loop else 0,
    )
    video = decode_video(
        components.vae,
        base,
        residual,
        vae_kind=components.vae_kind,
        scaling_factor=components.scaling_factor,
    )
    return AnimationResult(frames=video[0].numpy(), seed=seed, motion_id=motion_id, settings=settings)
