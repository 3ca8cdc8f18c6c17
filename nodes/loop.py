"""Cinemo Seamless Loop: the video ends where it starts, so it plays on repeat without a jump.

At every step the sampler's clean residual of the last frames is scaled down towards the first image (the
core's ``cinemo_core.sampling.loop``, measured against the alternatives in the README); in ComfyUI that is a post-CFG
function, so it works with any sampler and with context windows.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..cinemo_core.settings import MAX_FRAMES
from ..cinemo_core.sampling.loop import default_ramp, return_weights
from .comfy_compat import add_post_cfg_function
from .model.guards import require_cinemo_model


def pull_to_first_frame(ramp: int):
    """A post-CFG function scaling the denoised residual [N, 4, F, h, w] of the last ``ramp`` frames (0: auto)."""

    def post_cfg(args: dict) -> torch.Tensor:
        denoised = args["denoised"]
        if denoised.ndim != 5:
            raise ValueError("Cinemo Seamless Loop works on Cinemo's residual latent [videos, 4, frames, h, w].")
        frames = denoised.shape[2]
        weights = return_weights(frames, min(ramp, frames) if ramp else default_ramp(frames))
        return denoised * weights.to(denoised).view(1, 1, -1, 1, 1)

    return post_cfg


class CinemoSeamlessLoop(io.ComfyNode):
    """MODEL -> MODEL whose videos glide back to their first image in the last frames."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoSeamlessLoop",
            display_name="Cinemo Seamless Loop",
            category="Cinemo",
            description=(
                "Makes the video end where it starts, for a seamless loop (a cinemagraph): during sampling the last "
                "frames are pulled back towards the first image, so the video glides back to it instead of jumping "
                "on repeat. Frames before the ramp are untouched. Combine with Cinemo Context Windows for long loops."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The Cinemo MODEL (after Cinemo Context Windows, if used)."),
                io.Int.Input("ramp_frames", default=0, min=0, max=MAX_FRAMES,
                             tooltip="Frames that glide back to the first image; 0 = the last quarter of the video, "
                             "at least 4 (half a second at 8 fps)."),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The MODEL, making looping videos.")],
        )

    @classmethod
    def execute(cls, model, ramp_frames: int) -> io.NodeOutput:
        require_cinemo_model(model, "model")
        patched = model.clone()
        add_post_cfg_function(patched, pull_to_first_frame(int(ramp_frames)))
        return io.NodeOutput(patched)


NODES: list[type[io.ComfyNode]] = [CinemoSeamlessLoop]
