"""Cinemo Sampler: the whole residual sampling in one node (DCTInit, text guidance, any sampler)."""

from __future__ import annotations

from comfy_api.latest import io

from ..cinemo_core.settings import DEFAULT_GUIDANCE, DEFAULT_STEPS, MAX_SEED, MIN_GUIDANCE, check_guidance
from ..cinemo_core.finite import check_residual
from .comfy_compat import (
    fit_latent_channels,
    intermediate_device,
    sample_with_guidance,
    sampler_names,
    scheduler_names,
    scheduler_sigmas,
)
from .init_noise import CinemoNoise, check_noise_inputs, dct_inputs, seed_input
from .latents import residual_and_first_frame, residual_samples
from .model.guards import require_cinemo_model
from .scheduler import official_sigmas, steps_input
from .setting_inputs import check_inputs

#: The scheduler name of the exact official schedule in Cinemo Sampler's list.
CINEMO_SCHEDULER = "cinemo_ddim"


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
                io.Latent.Input(
                    "first_frame", optional=True,
                    tooltip="Optional: the first-frame latent (for DCTInit). Without it, the first frame "
                    "latent_image carries from Cinemo Conditioning.",
                ),
                seed_input("Seed of the initial noise."),
                steps_input(f"Denoising steps (official {DEFAULT_STEPS})."),
                io.Float.Input(
                    "cfg", default=DEFAULT_GUIDANCE, min=MIN_GUIDANCE, max=100.0, step=0.1, round=0.01,
                    tooltip=f"Text guidance scale (official {DEFAULT_GUIDANCE}); 1 disables the negative prompt.",
                ),
                io.Combo.Input(
                    "sampler_name", options=sampler_names(), default="ddim",
                    tooltip="The sampler; 'ddim' with the cinemo_ddim scheduler is the official one.",
                ),
                io.Combo.Input(
                    "scheduler", options=[CINEMO_SCHEDULER, *scheduler_names()], default=CINEMO_SCHEDULER,
                    tooltip="cinemo_ddim: the official DDIM timesteps ending at the official final alpha.",
                ),
                io.Boolean.Input(
                    "dct_init", default=True,
                    tooltip="Start from DCTInit (official) rather than plain noise: steadier colours and layout.",
                ),
                *dct_inputs(),
                io.Noise.Input(
                    "noise", optional=True,
                    tooltip="Optional initial noise instead of seed and DCTInit settings, e.g. Cinemo Init Noise with "
                    "inverted_motion for motion transfer.",
                ),
            ],
            outputs=[io.Latent.Output(display_name="residual", tooltip="The denoised motion residual.")],
        )

    @classmethod
    def execute(
        cls, model, positive: list, negative: list, latent_image: dict, seed: int, steps: int, cfg: float,
        sampler_name: str, scheduler: str, dct_init: bool, low_pass: float, noise_timestep: int,
        first_frame: dict | None = None, noise=None,
    ) -> io.NodeOutput:
        require_cinemo_model(model, "model")
        check_inputs([("cfg", check_guidance, cfg)])
        if noise is None:
            check_noise_inputs(seed, low_pass, noise_timestep)
        if noise is None or first_frame is not None:  # an own noise brings its own first frame
            residual, first = residual_and_first_frame(latent_image, first_frame, residual_name="latent_image")
        else:
            residual = residual_samples(latent_image, "latent_image")
        residual = fit_latent_channels(model, residual)
        if noise is None:
            noise = CinemoNoise(first, seed, "dct" if dct_init else "plain", float(low_pass), int(noise_timestep))
        if scheduler == CINEMO_SCHEDULER:
            sigmas = official_sigmas(steps)
        else:
            sigmas = scheduler_sigmas(model, steps, sampler_name, scheduler)
        samples = sample_with_guidance(
            model, positive, negative, cfg, noise.generate_noise({**latent_image, "samples": residual}), residual,
            # ComfyUI seeds its samplers' own noise with seed + 1, which overflows torch's 64-bit seed at MAX_SEED
            sampler_name, sigmas, seed % MAX_SEED, denoise_mask=latent_image.get("noise_mask"),
        )
        check_residual(samples, "residual (this node's output)")
        out = {key: value for key, value in latent_image.items() if key != "noise_mask"}
        out["samples"] = samples.to(intermediate_device())
        return io.NodeOutput(out)


NODES: list[type[io.ComfyNode]] = [CinemoSampler]
