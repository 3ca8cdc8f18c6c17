"""The skeleton every application shares: checked settings, seed, fitting, encoding, prompts and decoding.

An application (animation, motion transfer) opens a :class:`Render` on loaded components and its settings,
and states only what differs: which pictures it encodes and how it turns their latents into a residual.
All random draws come, in the order the application makes them, from one CPU generator seeded with the
run's seed, so a seed gives the same draws on every device.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..model.components import CinemoComponents, decode_video, encode_image, encode_prompts
from ..preprocess import check_size, fit_image
from ..sampling.schedule import CinemoSchedule
from ..settings import MAX_SEED, MIN_SEED

ProgressFn = Callable[[int, int], None]
StepCallback = Callable[[int, int, int, torch.Tensor], None]


@dataclass
class ClipResult:
    """Frames ``uint8 [num_frames, height, width, 3]`` (frame 0 is the decoded first frame) and what made them."""

    frames: np.ndarray
    seed: int
    motion_id: float
    settings: Any = field(repr=False)


def new_seed() -> int:
    """A fresh random seed (reported so the run can be repeated)."""
    return MIN_SEED + secrets.randbelow(MAX_SEED - MIN_SEED + 1)


def single_image(pixels: torch.Tensor, name: str) -> torch.Tensor:
    """``pixels`` when it is one image [1, H, W, C]; a ``ValueError`` naming ``name`` otherwise."""
    if pixels.dim() != 4 or pixels.shape[0] != 1:
        raise ValueError(f"{name} must be a single image [1, H, W, C], got {list(pixels.shape)}.")
    return pixels


class Render:
    """One clip in the making: the components, the checked settings, the seed and its generator, the schedule.

    ``settings`` needs ``validate()``, ``seed``, ``width``, ``height``, ``steps`` and ``resolved_motion_id``.
    """

    def __init__(self, components: CinemoComponents, settings: Any) -> None:
        settings.validate()
        self.components = components
        self.settings = settings
        self.seed: int = settings.seed if settings.seed is not None else new_seed()
        self.motion_id: float = settings.resolved_motion_id
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)
        self.schedule = CinemoSchedule()

    @property
    def device(self) -> torch.device:
        return self.components.device

    @property
    def dtype(self) -> torch.dtype:
        return self.components.dtype

    def fit(self, frames: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Pictures [N, H, W, C] in 0..1 cover-resized and centre-cropped to the size, [N, 3, h, w] in [-1, 1]."""
        width, height = self.settings.width, self.settings.height
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # size advice is given once, by the settings' quality_warnings()
            check_size(width, height)
        return torch.cat([fit_image(frame[None], width, height) for frame in frames])  # warns of a lossy crop

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [-1, 1] -> scaled latents [1, C, N, h, w], one frame at a time (bounded memory), each
        a posterior sample from the run's generator."""
        components = self.components
        latents = [
            encode_image(components.image_encoder, frame[None], scaling_factor=components.scaling_factor,
                         generator=self.generator)
            for frame in pixels
        ]
        return torch.cat(latents, dim=2)

    def prompts(self, texts: Sequence[str], negative: str | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """CLIP embeddings of ``texts`` (one call) and of the ``negative`` prompt (None: no guidance, no call)."""
        tokenizer, text_encoder = self.components.tokenizer, self.components.text_encoder
        contexts = encode_prompts(tokenizer, text_encoder, list(texts))
        negative_context = None if negative is None else encode_prompts(tokenizer, text_encoder, [negative])
        return contexts, negative_context

    def on_model(self, latents: torch.Tensor) -> torch.Tensor:
        """``latents`` on the model's device in its dtype."""
        return latents.to(device=self.device, dtype=self.dtype)

    @staticmethod
    def step_callback(progress: ProgressFn | None, total: int, done_before: int = 0) -> StepCallback:
        """The sampler's per-step callback reporting ``progress(done_before + steps done, total)``."""

        def on_step(index: int, steps: int, timestep: int, latents: torch.Tensor) -> None:
            if progress is not None:
                progress(done_before + index + 1, total)

        return on_step

    def finish(self, base: torch.Tensor, residual: torch.Tensor) -> ClipResult:
        """Decode first frame + residual to the clip's frames."""
        components = self.components
        video = decode_video(
            components.vae, base, residual, vae_kind=components.vae_kind, scaling_factor=components.scaling_factor
        )
        return ClipResult(frames=video[0].numpy(), seed=self.seed, motion_id=self.motion_id, settings=self.settings)
