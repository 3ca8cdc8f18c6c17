"""Cinemo Init Noise: the NOISE whose "noise" is Cinemo's initial latent x_T (DCTInit, FFT init or plain).

ComfyUI starts sampling from ``noise * s`` with ``s = sqrt(1 + sigma_0^2)`` when the schedule starts at the
model's sigma_max and ``s = sigma_0`` otherwise. For unit noise both are exact; for x_T the second is off
by ``sqrt(1 + sigma_0^2) / sigma_0 - 1``: 2.9e-5 at the official 50-step start (t = 981), 1.3e-4 at the
10-step start (t = 901). Rescaling x_T for it (a wrapper around ComfyUI's sampler) moved the golden 10-step
run by 3e-5 relative, less than that run's own float error in ComfyUI (5e-5), so x_T is handed over as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from comfy_api.latest import io

from ..cinemo_core.sampling.dct_init import INIT_MODES, init_noise
from ..cinemo_core.settings import (
    DEFAULT_DCT_LOW_PASS,
    DEFAULT_DCT_NOISE_TIMESTEP,
    DEFAULT_EDIT_NOISE_TIMESTEP,
    DEFAULT_INIT,
    MAX_SEED,
    MAX_TIMESTEP,
    MIN_SEED,
    check_dct_low_pass,
    check_noise_timestep,
    check_seed,
)
from ..cinemo_core.sampling.schedule import CinemoSchedule
from .latents import first_frame_samples, residual_and_first_frame, residual_samples
from .model.config import latent_scale
from .setting_inputs import check_inputs



def seed_input(tooltip: str) -> io.Int.Input:
    return io.Int.Input("seed", default=MIN_SEED, min=MIN_SEED, max=MAX_SEED, control_after_generate=True, tooltip=tooltip)


def dct_inputs(noise_timestep: int = DEFAULT_DCT_NOISE_TIMESTEP) -> list[io.Int.Input | io.Float.Input]:
    """DCTInit's two settings, as every node that mixes an initial latent declares them."""
    return [
        io.Float.Input(
            "low_pass", default=DEFAULT_DCT_LOW_PASS, min=0.0, max=1.0, step=0.01,
            tooltip="DCTInit: fraction of each spatial axis whose low frequencies come from the image "
            f"(official {DEFAULT_DCT_LOW_PASS}).",
        ),
        io.Int.Input(
            "noise_timestep", default=noise_timestep, min=0, max=MAX_TIMESTEP,
            tooltip=f"DCTInit: how far the still first frame is noised before mixing, 0..{MAX_TIMESTEP} "
            f"(official {noise_timestep}).",
        ),
    ]


def check_noise_inputs(seed: object, low_pass: object, noise_timestep: object, timestep_input: str = "noise_timestep") -> None:
    """The seed and DCTInit inputs of a node, by the pipeline's rules (values from links arrive unchecked)."""
    check_inputs([
        ("seed", check_seed, seed), ("low_pass", check_dct_low_pass, low_pass),
        (timestep_input, check_noise_timestep, noise_timestep),
    ])


@dataclass
class CinemoNoise:
    """ComfyUI NOISE: Gaussian noise from ``seed`` (or ``base_noise``) turned into x_T by ``mode``.

    Attributes:
        first_frame: unscaled first-frame latent ``[N or 1, 4, h, w]``; None: the one the residual LATENT that is
            sampled carries (from Cinemo Conditioning).
        seed: seeds a private CPU generator (ComfyUI's global RNG is left alone); ComfyUI's samplers read it
            modulo ``MAX_SEED`` (see ``__post_init__``).
        mode: ``"dct"`` (DCTInit, official), ``"fft"`` (FreeInit-style low-pass) or ``"plain"`` (the noise).
        low_pass: DCTInit's low-pass fraction of each spatial axis.
        noise_timestep: the timestep the static first-frame video is diffused to (dct and fft).
        base_noise: the noise to mix instead of a seeded draw (e.g. DDIM-inverted latents, as the official
            editing pipeline does), shaped like the residual latent, in the model's scaled space.
    """

    first_frame: torch.Tensor | None
    seed: int
    mode: str = DEFAULT_INIT
    low_pass: float = DEFAULT_DCT_LOW_PASS
    noise_timestep: int = DEFAULT_DCT_NOISE_TIMESTEP
    base_noise: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.mode not in INIT_MODES:
            raise ValueError(f"mode must be one of {', '.join(INIT_MODES)}, got {self.mode!r}.")
        self._draw_seed = int(self.seed)
        # SamplerCustomAdvanced hands NOISE.seed to ComfyUI's samplers, which seed their own noise with seed + 1:
        # that overflows torch's 64-bit seed at MAX_SEED. Our own draw keeps the full seed.
        self.seed = self._draw_seed % MAX_SEED

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        """x_T ``[N, 4, F - 1, h, w]`` (float32, CPU, model space) for the residual latent ``input_latent``."""
        residual, first_frame = residual_and_first_frame(
            input_latent, None if self.first_frame is None else {"samples": self.first_frame},
            residual_name="latent_image (the residual LATENT)",
            first_frame_name="first_frame (of the Cinemo Init Noise node)",
        )
        if self.base_noise is not None:
            if tuple(self.base_noise.shape) != tuple(residual.shape):
                *_, frames, height, width = self.base_noise.shape
                raise ValueError(
                    f"inverted_motion holds {frames} frames of {width * 8}x{height * 8} pixels (latent "
                    f"{list(self.base_noise.shape)}) but latent_image, the residual to sample, is "
                    f"{list(residual.shape)}: set the target's Cinemo Conditioning frames to the source clip's "
                    "frame count and encode the new first frame at the source clip's width and height."
                )
            noise = self.base_noise.detach().to(device="cpu", dtype=torch.float32)
        else:
            generator = torch.Generator(device="cpu").manual_seed(self._draw_seed)
            noise = torch.randn(tuple(residual.shape), generator=generator, dtype=torch.float32)
        base = (first_frame.detach().to(device="cpu", dtype=torch.float64) * latent_scale()).unsqueeze(2)
        x_t = init_noise(
            self.mode, base, noise, CinemoSchedule(), low_pass=self.low_pass, noise_timestep=self.noise_timestep
        )
        return x_t.to(torch.float32).contiguous()


class CinemoInitNoise(io.ComfyNode):
    """NOISE for SamplerCustomAdvanced: Cinemo's DCTInit (or FFT / plain) initial latents."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoInitNoise",
            display_name="Cinemo Init Noise (DCTInit)",
            category="Cinemo",
            description=(
                "Initial noise for SamplerCustomAdvanced: the low spatial frequencies of the noised first frame "
                "(DCTInit) keep the video's colours and layout. Use with a Cinemo MODEL and the residual latent "
                "from Cinemo Conditioning."
            ),
            inputs=[
                io.Latent.Input(
                    "first_frame", optional=True,
                    tooltip="Optional: the first-frame latent from Cinemo First Frame Encode. Without it, the first "
                    "frame the sampled residual latent carries from Cinemo Conditioning.",
                ),
                seed_input("Seed of the Gaussian noise (the same seed gives the same video)."),
                *dct_inputs(),
                io.Combo.Input(
                    "mode", options=list(INIT_MODES), default=DEFAULT_INIT,
                    tooltip="dct: Cinemo's DCTInit (official); fft: FreeInit-style Gaussian low-pass; plain: noise only.",
                ),
                io.Latent.Input(
                    "inverted_motion", optional=True,
                    tooltip="Motion transfer: the output of Cinemo Invert Motion. It takes the place of the Gaussian "
                    "noise (the seed is then unused) and first_frame is the new first frame, as the official "
                    "video-editing script does.",
                ),
                io.Int.Input(
                    "inverted_noise_timestep", default=DEFAULT_EDIT_NOISE_TIMESTEP, min=0, max=MAX_TIMESTEP,
                    optional=True,
                    tooltip="With inverted_motion: how far the new first frame is noised before the DCT mix "
                    f"(official {DEFAULT_EDIT_NOISE_TIMESTEP}; noise_timestep applies without inverted_motion).",
                ),
            ],
            outputs=[io.Noise.Output(display_name="noise", tooltip="Initial noise for SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(
        cls, seed: int, low_pass: float, noise_timestep: int, mode: str, first_frame: dict | None = None,
        inverted_motion: dict | None = None, inverted_noise_timestep: int = DEFAULT_EDIT_NOISE_TIMESTEP,
    ) -> io.NodeOutput:
        samples = None if first_frame is None else first_frame_samples(first_frame, "first_frame")
        timestep_input = "noise_timestep" if inverted_motion is None else "inverted_noise_timestep"
        check_noise_inputs(seed, low_pass, noise_timestep if inverted_motion is None else inverted_noise_timestep, timestep_input)
        if inverted_motion is None:
            return io.NodeOutput(CinemoNoise(samples, seed, mode, float(low_pass), int(noise_timestep)))
        inverted = residual_samples(inverted_motion, "inverted_motion") * latent_scale()
        return io.NodeOutput(
            CinemoNoise(samples, seed, mode, float(low_pass), int(inverted_noise_timestep), base_noise=inverted)
        )


NODES: list[type[io.ComfyNode]] = [CinemoInitNoise]
