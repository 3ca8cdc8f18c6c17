"""Cinemo Invert Motion: DDIM inversion of a clip's motion residual, through ComfyUI's own sampling machinery.

Running it as a SAMPLER over the ascending sigmas gives the inversion ComfyUI's guidance, conditioning, memory
management, progress, previews and interruption, exactly as a sampler has them.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..cinemo_core.settings import DEFAULT_STEPS, DEFAULT_TRANSFER_GUIDANCE
from ..cinemo_core.finite import check_residual
from ..cinemo_core.sampling.schedule import CinemoSchedule
from .comfy_compat import custom_sampler, fit_latent_channels, intermediate_device, sample_with_guidance
from .latents import residual_samples
from .model.guards import require_cinemo_model
from .scheduler import official_sigmas, steps_input


def inversion_sigmas(steps: int) -> torch.Tensor:
    """The official sigmas reversed: the final alpha's, then one per inversion timestep (1, 21, ..., 981)."""
    return official_sigmas(steps).flip(0)


def ddim_inversion(model, x: torch.Tensor, sigmas: torch.Tensor, extra_args=None, callback=None, disable=None):
    """The official DDIM inversion as a k-diffusion sampler; ``x`` holds DDPM-space latents throughout.

    The model gives the denoised latent of ``x * sqrt(1 + sigma^2)`` (ComfyUI's space at sigma); its epsilon
    drives the official ``next_step`` (:meth:`CinemoSchedule.ddim_inversion_step`).
    """
    schedule = CinemoSchedule()
    steps = len(sigmas) - 1
    ones = x.new_ones([x.shape[0]])
    for index, timestep in enumerate(schedule.inversion_timesteps(steps).tolist()):
        sigma = sigmas[index + 1]
        scaled = x * (1.0 + sigma**2) ** 0.5
        denoised = model(scaled, sigma * ones, **(extra_args or {}))
        eps = (scaled - denoised) / sigma
        x = schedule.ddim_inversion_step(eps, timestep, x, steps)
        if callback is not None:
            callback({"x": x, "i": index, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
    return x


class CinemoInvertMotion(io.ComfyNode):
    """DDIM inversion of a source clip's motion residual: the latent that sampling would start from."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoInvertMotion",
            display_name="Cinemo Invert Motion",
            category="Cinemo",
            description=(
                "Runs the sampler backwards over a source clip's motion residual (DDIM inversion, as the official "
                "video-editing script), conditioned on the clip's first frame, the source prompt and the motion "
                "intensity set in the source's Cinemo Conditioning. Feed the result to Cinemo Init Noise's "
                "inverted_motion to animate another first frame with the clip's motion."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The Cinemo MODEL from Cinemo Model Loader."),
                io.Conditioning.Input(
                    "positive",
                    tooltip="The source's Cinemo Conditioning positive: a prompt describing the source clip, the "
                    "clip's first frame (Cinemo Encode Video) and the motion intensity or raw motion id.",
                ),
                io.Conditioning.Input("negative", tooltip="The source's Cinemo Conditioning negative (used when cfg > 1)."),
                io.Latent.Input("residual", tooltip="The clip's motion residual from Cinemo Encode Video."),
                steps_input(f"Inversion steps; use the same number for sampling (official {DEFAULT_STEPS})."),
                io.Float.Input(
                    "cfg", default=DEFAULT_TRANSFER_GUIDANCE, min=0.0, max=100.0, step=0.1, round=0.01,
                    tooltip="Text guidance of the inversion (official 1: none, the negative prompt is not used).",
                ),
            ],
            outputs=[io.Latent.Output(display_name="inverted_motion",
                                      tooltip="The inverted latents, for Cinemo Init Noise's inverted_motion.")],
        )

    @classmethod
    def execute(cls, model, positive: list, negative: list, residual: dict, steps: int, cfg: float) -> io.NodeOutput:
        require_cinemo_model(model, "model")
        samples = fit_latent_channels(model, residual_samples(residual, "residual"))
        inverted = sample_with_guidance(
            model, positive, negative, cfg, torch.zeros_like(samples), samples, custom_sampler(ddim_inversion),
            inversion_sigmas(steps), seed=0,
        )
        check_residual(inverted, "inverted_motion (this node's output)")
        # no first frame carried: the inverted motion is noise to animate another first frame with
        return io.NodeOutput({"samples": inverted.to(intermediate_device())})


NODES: list[type[io.ComfyNode]] = [CinemoInvertMotion]
