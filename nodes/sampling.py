"""Cinemo sampling nodes: initial noise, the official DDIM schedule, an all-in-one sampler, residual -> frames.

* **Cinemo Init Noise** (NOISE, for ``SamplerCustomAdvanced``): DCTInit / FFT / plain initial latents,
  scaled exactly for the first sigma of whatever schedule is used (see ``init_noise.py``).
* **Cinemo Scheduler** (SIGMAS): the official DDIM timesteps (leading spacing, offset 1) ending at the
  official final alpha, so ``SamplerCustomAdvanced`` with the ``ddim`` sampler is the paper's sampler.
* **Cinemo Sampler** (LATENT): model + conditionings + residual latent + first frame in, denoised residual
  out, with any ComfyUI sampler and scheduler (or the exact one above) and DCTInit on or off.
* **Cinemo Residual To Frames** (LATENT): residual + first frame -> frames as batch for ``VAEDecode``.

LATENT layouts are described in ``latents.py``.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview

from ..cinemo_core.dct_init import INIT_MODES
from ..cinemo_core.pipeline import (
    DEFAULT_DCT_LOW_PASS,
    DEFAULT_DCT_NOISE_TIMESTEP,
    DEFAULT_GUIDANCE,
    DEFAULT_STEPS,
)
from ..cinemo_core.schedule import CinemoSchedule
from .comfy_model import CinemoLatentFormat, require_cinemo_model
from .init_noise import CinemoNoise
from .latents import check_residual_matches_first_frame, first_frame_samples, frames_as_batch, residual_samples

#: The scheduler name of the exact official schedule in Cinemo Sampler's list.
CINEMO_SCHEDULER = "cinemo_ddim"
MAX_STEPS = 999
MAX_SEED = 0xFFFFFFFFFFFFFFFF
LOW_PASS_TOOLTIP = "DCTInit: fraction of each spatial axis whose low frequencies come from the image (official 0.23)."
NOISE_TIMESTEP_TOOLTIP = "DCTInit: how far the still first frame is noised before mixing, 0..999 (official 975)."


def _latent_scale() -> float:
    return float(CinemoLatentFormat().scale_factor)


def official_sigmas(steps: int) -> torch.Tensor:
    """The official DDIM schedule as ComfyUI sigmas: one per timestep (981, 961, ... for 50), then the final alpha."""
    return CinemoSchedule().sigmas_for(steps)


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
                "(DCTInit) keep the video's colours and layout. Scaled exactly for any sigmas; use with a "
                "Cinemo MODEL and the residual latent from Cinemo Conditioning."
            ),
            inputs=[
                io.Latent.Input("first_frame", tooltip="The first-frame latent from Cinemo First Frame Encode."),
                io.Int.Input(
                    "seed", default=0, min=0, max=MAX_SEED, control_after_generate=True,
                    tooltip="Seed of the Gaussian noise (the same seed gives the same video).",
                ),
                io.Float.Input(
                    "low_pass", default=DEFAULT_DCT_LOW_PASS, min=0.0, max=1.0, step=0.01, tooltip=LOW_PASS_TOOLTIP
                ),
                io.Int.Input(
                    "noise_timestep", default=DEFAULT_DCT_NOISE_TIMESTEP, min=0, max=999,
                    tooltip=NOISE_TIMESTEP_TOOLTIP,
                ),
                io.Combo.Input(
                    "mode", options=list(INIT_MODES), default="dct",
                    tooltip=(
                        "dct: Cinemo's DCTInit (official); fft: FreeInit-style Gaussian low-pass; plain: noise only."
                    ),
                ),
            ],
            outputs=[io.Noise.Output(display_name="noise", tooltip="Initial noise for SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(cls, first_frame: dict, seed: int, low_pass: float, noise_timestep: int, mode: str) -> io.NodeOutput:
        samples = first_frame_samples(first_frame, "first_frame")
        return io.NodeOutput(
            CinemoNoise(samples, seed, mode, float(low_pass), int(noise_timestep), _latent_scale())
        )


class CinemoScheduler(io.ComfyNode):
    """SIGMAS of the official Cinemo DDIM schedule."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoScheduler",
            display_name="Cinemo Scheduler",
            category="Cinemo",
            description=(
                "The official Cinemo DDIM timesteps (leading spacing, offset 1: 981, 961, ..., 1 for 50 steps) "
                "ending at the official final alpha. With the 'ddim' sampler in SamplerCustomAdvanced this is "
                "the paper's sampler."
            ),
            inputs=[
                io.Int.Input(
                    "steps", default=DEFAULT_STEPS, min=1, max=MAX_STEPS,
                    tooltip="Number of denoising steps (official 50).",
                ),
            ],
            outputs=[io.Sigmas.Output(display_name="sigmas", tooltip="steps + 1 sigmas for a custom sampler.")],
        )

    @classmethod
    def execute(cls, steps: int) -> io.NodeOutput:
        return io.NodeOutput(official_sigmas(steps))


class CinemoSampler(io.ComfyNode):
    """All-in-one: denoises the motion residual with DCTInit and any sampler/scheduler."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoSampler",
            display_name="Cinemo Sampler",
            category="Cinemo",
            description=(
                "Samples the motion residual in one node: DCTInit noise, classifier-free guidance on the text, and "
                "any ComfyUI sampler and scheduler. The defaults (ddim, cinemo_ddim, 50 steps, cfg 7.5) are the "
                "official sampler."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The Cinemo MODEL from Cinemo Model Loader."),
                io.Conditioning.Input("positive", tooltip="Positive output of Cinemo Conditioning."),
                io.Conditioning.Input("negative", tooltip="Negative output of Cinemo Conditioning."),
                io.Latent.Input("latent_image", tooltip="The residual latent output of Cinemo Conditioning."),
                io.Latent.Input("first_frame", tooltip="The first-frame latent (for DCTInit)."),
                io.Int.Input(
                    "seed", default=0, min=0, max=MAX_SEED, control_after_generate=True,
                    tooltip="Seed of the initial noise.",
                ),
                io.Int.Input(
                    "steps", default=DEFAULT_STEPS, min=1, max=MAX_STEPS, tooltip="Denoising steps (official 50)."
                ),
                io.Float.Input(
                    "cfg", default=DEFAULT_GUIDANCE, min=0.0, max=100.0, step=0.1, round=0.01,
                    tooltip="Text guidance scale (official 7.5); 1 disables the negative prompt.",
                ),
                io.Combo.Input(
                    "sampler_name", options=list(comfy.samplers.KSampler.SAMPLERS), default="ddim",
                    tooltip="The sampler; 'ddim' with the cinemo_ddim scheduler is the official one.",
                ),
                io.Combo.Input(
                    "scheduler", options=[CINEMO_SCHEDULER, *comfy.samplers.KSampler.SCHEDULERS],
                    default=CINEMO_SCHEDULER,
                    tooltip="cinemo_ddim: the official DDIM timesteps ending at the official final alpha.",
                ),
                io.Boolean.Input(
                    "dct_init", default=True,
                    tooltip="Start from DCTInit (official) rather than plain noise: steadier colours and layout.",
                ),
                io.Float.Input(
                    "low_pass", default=DEFAULT_DCT_LOW_PASS, min=0.0, max=1.0, step=0.01, tooltip=LOW_PASS_TOOLTIP
                ),
                io.Int.Input(
                    "noise_timestep", default=DEFAULT_DCT_NOISE_TIMESTEP, min=0, max=999,
                    tooltip=NOISE_TIMESTEP_TOOLTIP,
                ),
            ],
            outputs=[io.Latent.Output(display_name="residual", tooltip="The denoised motion residual.")],
        )

    @classmethod
    def execute(
        cls, model, positive: list, negative: list, latent_image: dict, first_frame: dict, seed: int, steps: int,
        cfg: float, sampler_name: str, scheduler: str, dct_init: bool, low_pass: float, noise_timestep: int,
    ) -> io.NodeOutput:
        require_cinemo_model(model, "model")
        residual = residual_samples(latent_image, "latent_image")
        first = first_frame_samples(first_frame, "first_frame")
        check_residual_matches_first_frame(
            residual.shape, first.shape, residual_name="latent_image", first_frame_name="first_frame"
        )
        residual = comfy.sample.fix_empty_latent_channels(model, residual)
        noise = CinemoNoise(
            first, seed, "dct" if dct_init else "plain", float(low_pass), int(noise_timestep), _latent_scale()
        )
        if scheduler == CINEMO_SCHEDULER:
            sigmas = official_sigmas(steps)
        else:
            sigmas = comfy.samplers.KSampler(
                model, steps=steps, device=model.load_device, sampler=sampler_name, scheduler=scheduler, denoise=1.0
            ).sigmas
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        callback = latent_preview.prepare_callback(model, sigmas.shape[-1] - 1)
        samples = guider.sample(
            noise.generate_noise({**latent_image, "samples": residual}),
            residual,
            comfy.samplers.sampler_object(sampler_name),
            sigmas,
            denoise_mask=latent_image.get("noise_mask"),
            callback=callback,
            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
            seed=seed,
        )
        out = {key: value for key, value in latent_image.items() if key != "noise_mask"}
        out["samples"] = samples.to(comfy.model_management.intermediate_device())
        return io.NodeOutput(out)


class CinemoResidualToFrames(io.ComfyNode):
    """Adds the first frame back: residual + first frame -> all frames, as a batch of images' latents."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoResidualToFrames",
            display_name="Cinemo Residual To Frames",
            category="Cinemo",
            description=(
                "Turns the sampled motion residual back into video frames: frame 0 is the first frame, frame k is "
                "first frame + residual k. The frames come as a batch (video after video) that VAE Decode, "
                "previews and video savers take."
            ),
            inputs=[
                io.Latent.Input("residual", tooltip="The sampled motion residual (Cinemo Sampler or a core sampler)."),
                io.Latent.Input("first_frame", tooltip="The first-frame latent the residual was sampled with."),
            ],
            outputs=[
                io.Latent.Output(
                    display_name="frames",
                    tooltip="Frames as batch [videos * frames, 4, h, w]: frames 0..F-1 of video 0, then video 1...",
                )
            ],
        )

    @classmethod
    def execute(cls, residual: dict, first_frame: dict) -> io.NodeOutput:
        res = residual_samples(residual, "residual")
        first = first_frame_samples(first_frame, "first_frame")
        check_residual_matches_first_frame(
            res.shape, first.shape, residual_name="residual", first_frame_name="first_frame"
        )
        return io.NodeOutput({"samples": frames_as_batch(first, res)})


NODES: list[type[io.ComfyNode]] = [CinemoInitNoise, CinemoScheduler, CinemoSampler, CinemoResidualToFrames]
