"""Cinemo Seamless Loop: the video ends where it starts, so it plays on repeat without a jump.

At every step the sampler's clean residual of the last frames is scaled down towards the first image (the
core's ``cinemo_core.sampling.loop``, measured against the alternatives in the README); in ComfyUI that is a post-CFG
function (``nodes/model/end_frame.py``, shared with Cinemo Conditioning's end_frame), so it works with any sampler
and with context windows.
"""

from __future__ import annotations

from typing import Callable

import torch
from comfy_api.latest import io

from ..cinemo_core.settings import MAX_FRAMES
from ..cinemo_core.sampling.loop import default_ramp, return_weights
from .comfy_compat import add_post_cfg_function
from .model.end_frame import LOOP_MARK, pull_post_cfg
from .model.guards import require_cinemo_model


def loop_weights(ramp: int) -> Callable[[int], torch.Tensor]:
    """The loop's per-frame weights for ``frames`` residual frames, gliding back over ``ramp`` of them (0: auto)."""

    def weights_for(frames: int) -> torch.Tensor:
        return return_weights(frames, min(ramp, frames) if ramp else default_ramp(frames))

    return weights_for


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
        pull = pull_post_cfg(loop_weights(int(ramp_frames)), node="Cinemo Seamless Loop")
        setattr(pull, LOOP_MARK, True)
        add_post_cfg_function(patched, pull)
        return io.NodeOutput(patched)


NODES: list[type[io.ComfyNode]] = [CinemoSeamlessLoop]
