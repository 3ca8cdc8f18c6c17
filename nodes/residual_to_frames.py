"""Cinemo Residual To Frames: first frame + residual -> the video's frames, as VAE Decode takes them."""

from __future__ import annotations

from comfy_api.latest import io

from ..cinemo_core.finite import check_residual
from .latents import CLIP_FRAMES_KEY, residual_and_first_frame, video_frames


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
                io.Latent.Input(
                    "first_frame", optional=True,
                    tooltip="Optional: the first-frame latent the residual was sampled with. Without it, the first "
                    "frame the residual carries from Cinemo Conditioning.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    display_name="frames",
                    tooltip="Frames as batch [videos * frames, 4, h, w]: frames 0..F-1 of video 0, then video 1... "
                    "The latent carries its clip length for Cinemo Temporal VAE Decode.",
                )
            ],
        )

    @classmethod
    def execute(cls, residual: dict, first_frame: dict | None = None) -> io.NodeOutput:
        res, first = residual_and_first_frame(residual, first_frame, residual_name="residual")
        check_residual(res, "residual")
        return io.NodeOutput({"samples": video_frames(first, res), CLIP_FRAMES_KEY: res.shape[2] + 1})


NODES: list[type[io.ComfyNode]] = [CinemoResidualToFrames]
