"""Motion transfer: animate an edited first frame with the motion of a source clip (the paper's video editing).

As the official ``pipelines/video_editing.py``: source frames (every ``frame_step``-th; Cinemo's clips are
8 fps) and the edited image are fitted like an animation's image and encoded; the source residual is DDIM-
inverted with the *source* prompt and first frame; the edited frame, noised to t = 985 with the inverted
latents as the noise, gives the start latent's low DCT frequencies; DDIM sampling with the edited frame and
the *target* prompt follows. Both passes run without text guidance, as the official script.

Kept from the official code to reproduce it: the inverted latents belong to the last inversion timestep
(981 for 50 steps) but are mixed as noise at 985. Decision: the frames are encoded as posterior samples, like
the official script, but from the run's seeded CPU generator (the official draws are unseeded), so a seed
repeats the video; no Gaussian noise is drawn, so the seed picks only these samples.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..model.components import CinemoComponents
from ..preprocess import load_image, select_source_frames
from ..sampling.inversion import edit_init_latents, invert_residual
from ..sampling.sampler import sample_residual, split_video_latents
from ..settings import (
    DEFAULT_EDIT_LOW_PASS,
    DEFAULT_EDIT_NOISE_TIMESTEP,
    DEFAULT_FRAMES,
    DEFAULT_HEIGHT,
    DEFAULT_INTENSITY,
    DEFAULT_STEPS,
    DEFAULT_TRANSFER_GUIDANCE,
    DEFAULT_WIDTH,
    TRAINED_FRAMES,
    SettingError,
    size_note,
)
from .render import ClipResult, ProgressFn, Render, single_image
from ..settings import check_frame_step
from .settings_rules import check_guidance_scale, check_sampling_settings, is_int, resolved_motion_id

#: ``dct`` mixes the edited frame into the inverted latents (official), ``plain`` samples from them as they are.
TRANSFER_INIT_MODES = ("dct", "plain")
#: Relative difference of aspect ratios above which source and edited image are cropped differently enough to warn.
_ASPECT_TOLERANCE = 0.02

#: What :func:`transfer_motion` returns: the frames, the seed used, the motion id and the settings.
TransferResult = ClipResult


@dataclass
class TransferSettings:
    """Every knob of :func:`transfer_motion`, with the official editing script's defaults.

    The settings it shares with animation follow the same rules (:mod:`cinemo_core.app.settings_rules`); it has
    no ``loop``, and at most 16 frames: inversion and sampling run in one pass over the clip.

    Attributes:
        source_prompt: describes the source clip; conditions the inversion.
        prompt: describes the edited video; conditions the sampling.
        negative_prompt: the unconditional prompt of whichever pass uses guidance.
        intensity, motion_id: the motion both passes are conditioned on (as in animation).
        steps: DDIM steps of each pass (official 50).
        guidance_scale: text guidance of the sampling pass (official 1.0: none).
        inversion_guidance_scale: text guidance of the inversion pass (official 1.0: none).
        seed: picks the posterior samples of the encoded frames (``None``: a random one, reported).
        num_frames: frames in the video, the first (edited) one included, 2..16; taken from the source clip.
        width, height: output size in pixels, multiples of 8 (official 512x320).
        frame_step: use every ``frame_step``-th source frame (Cinemo's clips are 8 fps).
        init: ``"dct"`` (official: the edited frame's low frequencies mixed in) or ``"plain"``.
        dct_low_pass: the mix's low-pass fraction (official 0.23).
        dct_noise_timestep: the timestep the edited frame is noised to for the mix (official 985).
    """

    source_prompt: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    intensity: int = DEFAULT_INTENSITY
    motion_id: float | None = None
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_TRANSFER_GUIDANCE
    inversion_guidance_scale: float = DEFAULT_TRANSFER_GUIDANCE
    seed: int | None = None
    num_frames: int = DEFAULT_FRAMES
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT
    frame_step: int = 1
    init: str = "dct"
    dct_low_pass: float = DEFAULT_EDIT_LOW_PASS
    dct_noise_timestep: int = DEFAULT_EDIT_NOISE_TIMESTEP

    def validate(self) -> None:
        """Raise :class:`SettingError` naming the first bad setting."""
        if self.init not in TRANSFER_INIT_MODES:
            raise SettingError(
                "init", f"init must be one of {', '.join(TRANSFER_INIT_MODES)} for motion transfer, got {self.init!r}."
            )
        if is_int(self.num_frames) and self.num_frames > TRAINED_FRAMES:
            raise SettingError(
                "num_frames",
                f"motion transfer makes at most {TRAINED_FRAMES} frames (the trained clip length), got "
                f"{self.num_frames}: its inversion and sampling run in one pass, without the context windows of "
                "long animations. Ask for fewer frames, or transfer a long clip piece by piece.",
            )
        check_sampling_settings(self, init_modes=TRANSFER_INIT_MODES)
        if not isinstance(self.source_prompt, str):
            raise SettingError("source_prompt", f"source_prompt must be a string, got {type(self.source_prompt).__name__}.")
        check_guidance_scale(self, "inversion_guidance_scale", "inversion guidance scale")
        check_frame_step(self.frame_step)

    def quality_warnings(self, *, trained_size: bool = True) -> list[str]:
        """Settings that run but leave what the model was trained on (see ``AnimationSettings``)."""
        note = size_note(self.width, self.height) if trained_size else None
        return [note] if note else []

    @property
    def resolved_motion_id(self) -> float:
        return resolved_motion_id(self)

    @property
    def source_frames_needed(self) -> int:
        """How long the source clip must be: frames 0, step, ..., (num_frames - 1) * step."""
        return (self.num_frames - 1) * self.frame_step + 1


def _load_clip(
    clip: str | os.PathLike[str] | torch.Tensor | np.ndarray, needed: int
) -> torch.Tensor | np.ndarray:
    """Frames as given, or the first ``needed`` frames of a video file (a long clip is not read whole)."""
    if isinstance(clip, (str, os.PathLike)):
        from .video_io import read_video

        clip, _ = read_video(clip, max_frames=needed)
    return clip


def _aspect_warning(source_hw: tuple[int, int], edited_hw: tuple[int, int], width: int, height: int) -> None:
    source, edited = source_hw[1] / source_hw[0], edited_hw[1] / edited_hw[0]
    if abs(source - edited) > _ASPECT_TOLERANCE * source:
        warnings.warn(
            f"the edited image ({edited_hw[1]}x{edited_hw[0]}) and the source clip ({source_hw[1]}x{source_hw[0]}) "
            f"have different aspect ratios; both are cropped to {width}x{height} around their centres, so their "
            "contents may not line up. Edit a frame of the source clip for the best match.",
            stacklevel=3,
        )


@torch.no_grad()
def transfer_motion(
    components: CinemoComponents,
    video_frames: str | os.PathLike[str] | torch.Tensor | np.ndarray,
    edited_image: str | os.PathLike[str] | torch.Tensor,
    settings: TransferSettings | None = None,
    *,
    progress: ProgressFn | None = None,
) -> TransferResult:
    """Animate ``edited_image`` with the motion of ``video_frames``.

    Reproduces the official editing script's result by default (see the module docstring for the steps,
    and for the t=985 mixing of the last inverted latent that is kept on purpose).

    Args:
        components: from :func:`cinemo_core.model.components.load_components` or the demo.
        video_frames: a video file, or its frames [F, H, W, C] (uint8, or floats in 0..1 as ComfyUI IMAGE);
            at least :attr:`TransferSettings.source_frames_needed` of them.
        edited_image: an image file, or a [1, H, W, C] tensor in 0..1: the new first frame, usually the
            source's first frame edited.
        settings: :class:`TransferSettings` (defaults: the official ones).
        progress: ``progress(done_steps, total_steps)`` after every inversion and every sampling step
            (``total_steps`` = 2 x steps).

    Returns:
        :class:`TransferResult` with the frames and the seed used.
    """
    settings = settings or TransferSettings()
    run = Render(components, settings)
    clip = select_source_frames(
        _load_clip(video_frames, settings.source_frames_needed), settings.num_frames, settings.frame_step
    )
    edited = single_image(edited_image if isinstance(edited_image, torch.Tensor) else load_image(edited_image),
                          "edited_image")
    _aspect_warning(tuple(clip.shape[1:3]), tuple(edited.shape[1:3]), settings.width, settings.height)
    source_pixels, edited_pixels = run.fit(clip), run.fit(edited)

    source_base, source_residual = split_video_latents(run.encode(source_pixels))
    edit_base = run.encode(edited_pixels)
    if edit_base.shape[-2:] != source_base.shape[-2:]:
        raise ValueError(
            f"the edited image encodes to a {tuple(edit_base.shape[-2:])} latent but the source clip to "
            f"{tuple(source_base.shape[-2:])}; both must be the same size."
        )

    guided = max(settings.guidance_scale, settings.inversion_guidance_scale) > 1.0
    prompts, negative = run.prompts([settings.source_prompt, settings.prompt],
                                    settings.negative_prompt if guided else None)
    source_context, target_context = prompts[:1], prompts[1:]
    total = 2 * settings.steps
    inverted = invert_residual(
        components.unet,
        run.on_model(source_residual),
        source_base.to(run.dtype),
        source_context,
        run.motion_id,
        steps=settings.steps,
        guidance_scale=float(settings.inversion_guidance_scale),
        negative_context=negative,
        callback=run.step_callback(progress, total),
        schedule=run.schedule,
    )
    if settings.init == "dct":
        # on the CPU in float64, as the official code mixes frequencies (and MPS has no float64)
        init_latents = run.on_model(edit_init_latents(
            inverted.cpu().double(),
            edit_base.cpu().double(),
            low_pass=settings.dct_low_pass,
            noise_timestep=settings.dct_noise_timestep,
            schedule=run.schedule,
        ))
    else:
        init_latents = inverted
    edit_base = edit_base.to(run.dtype)
    residual = sample_residual(
        components.unet,
        init_latents,
        edit_base,
        target_context,
        negative,
        run.motion_id,
        steps=settings.steps,
        guidance_scale=float(settings.guidance_scale),
        callback=run.step_callback(progress, total, done_before=settings.steps),
        schedule=run.schedule,
    )
    return run.finish(edit_base, residual)
