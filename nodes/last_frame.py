"""Cinemo Last Frame: the last frame's latent (first frame + last residual), to start the next clip from.

Decoding the last frame and encoding it again drifts a little with every clip (the VAE round trip is not exact,
and ComfyUI's encode takes the posterior mean); the latent itself does not.
"""

from __future__ import annotations

from comfy_api.latest import io

from ..cinemo_core.finite import check_residual
from .latents import check_residual_matches_first_frame, first_frame_samples, residual_samples


class CinemoLastFrame(io.ComfyNode):
    """The last frame's latent of each video, as a first frame for the next clip (chaining without drift)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoLastFrame",
            display_name="Cinemo Last Frame",
            category="Cinemo",
            description=(
                "Chains clips without drift: gives the last frame of each video as a first-frame latent (first "
                "frame + last residual), for the next clip's Cinemo Conditioning and Init Noise, without decoding "
                "and re-encoding it. Decode the next clip and drop its first frame (a copy of this one) when "
                "joining the clips."
            ),
            inputs=[
                io.Latent.Input("residual", tooltip="The sampled motion residual of the clip that ends here."),
                io.Latent.Input("first_frame", tooltip="The first-frame latent that clip was sampled with."),
            ],
            outputs=[io.Latent.Output(display_name="first_frame",
                                      tooltip="The last frame's latent [videos, 4, h, w]: the next clip's first frame.")],
        )

    @classmethod
    def execute(cls, residual: dict, first_frame: dict) -> io.NodeOutput:
        res = residual_samples(residual, "residual")
        check_residual(res, "residual")
        first = first_frame_samples(first_frame, "first_frame")
        check_residual_matches_first_frame(res.shape, first.shape, residual_name="residual", first_frame_name="first_frame")
        return io.NodeOutput({"samples": (first + res[:, :, -1]).contiguous()})


NODES: list[type[io.ComfyNode]] = [CinemoLastFrame]
