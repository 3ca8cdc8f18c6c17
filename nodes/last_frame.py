"""Cinemo Last Frame: the last frame's latent (first frame + last residual), to start the next clip from.

Decoding the last frame and encoding it again drifts a little with every clip (the VAE round trip is not exact,
and ComfyUI's encode takes the posterior mean); the latent itself does not.
"""

from __future__ import annotations

from comfy_api.latest import io

from ..cinemo_core.finite import check_residual
from .latents import residual_and_first_frame


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
                io.Latent.Input(
                    "first_frame", optional=True,
                    tooltip="Optional: the first-frame latent that clip was sampled with. Without it, the first "
                    "frame the residual carries from Cinemo Conditioning.",
                ),
            ],
            outputs=[io.Latent.Output(display_name="first_frame",
                                      tooltip="The last frame's latent [videos, 4, h, w]: the next clip's first frame.")],
        )

    @classmethod
    def execute(cls, residual: dict, first_frame: dict | None = None) -> io.NodeOutput:
        res, first = residual_and_first_frame(residual, first_frame, residual_name="residual")
        check_residual(res, "residual")
        return io.NodeOutput({"samples": (first + res[:, :, -1]).contiguous()})


NODES: list[type[io.ComfyNode]] = [CinemoLastFrame]
