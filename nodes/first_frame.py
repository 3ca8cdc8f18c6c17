"""Cinemo First Frame Encode: IMAGE -> first-frame LATENT, fitted to the video size like the official code.

ComfyUI's VAE returns the posterior mean, where the official code draws a posterior sample.
"""

from __future__ import annotations

import logging
import warnings

import torch
from comfy_api.latest import io

from ..cinemo_core.settings import (
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    MAX_SIDE,
    MIN_SIDE,
    SIDE_MULTIPLE,
    crop_note,
    side_problem,
)
from ..cinemo_core.finite import check_encoded_latent
from ..cinemo_core.preprocess import fit_image
from .comfy_compat import encode_images, intermediate_device
from .latents import SOURCE_SIZE_KEY


def frame_size_error(width: object, height: object) -> str | None:
    """Why the frame size is unusable, naming each side at fault (None: fine, or not known yet)."""
    bad = [
        f"{name} {value!r}" for name, value in (("width", width), ("height", height))
        if value is not None and side_problem(value)
    ]
    if not bad:
        return None
    return (
        f"the frame size must be multiples of {SIDE_MULTIPLE} from {MIN_SIDE} to {MAX_SIDE} pixels (the VAE works on 8x8 "
        f"blocks; Cinemo was trained at {DEFAULT_WIDTH}x{DEFAULT_HEIGHT}): {' and '.join(bad)} "
        f"{'is' if len(bad) == 1 else 'are'} not."
    )


class CinemoFirstFrameEncode(io.ComfyNode):
    """Fits images to the video size (official resize + centre crop) and encodes them as first frames."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoFirstFrameEncode",
            display_name="Cinemo First Frame Encode",
            category="Cinemo",
            description=(
                "Resizes each image to cover width x height, centre-crops it (as the official Cinemo code) and "
                "encodes it with the VAE. A batch of N images animates N videos."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The image(s) to animate; each image of a batch becomes one video."),
                io.Vae.Input("vae", tooltip="The Stable Diffusion 1.x VAE (Cinemo's vae/, or its temporal VAE)."),
                io.Int.Input(
                    "width", default=DEFAULT_WIDTH, min=MIN_SIDE, max=MAX_SIDE, step=SIDE_MULTIPLE,
                    tooltip="Video width in pixels, a multiple of 8. Cinemo was trained at 512.",
                ),
                io.Int.Input(
                    "height", default=DEFAULT_HEIGHT, min=MIN_SIDE, max=MAX_SIDE, step=SIDE_MULTIPLE,
                    tooltip="Video height in pixels, a multiple of 8. Cinemo was trained at 320.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    display_name="first_frame",
                    tooltip="The first-frame latent [images, 4, height/8, width/8] for Cinemo Conditioning.",
                )
            ],
        )

    @classmethod
    def validate_inputs(cls, width: int | None = None, height: int | None = None) -> bool | str:
        # ComfyUI shows the message under both inputs, so it names the side(s) at fault itself
        return frame_size_error(width, height) or True

    @classmethod
    def execute(cls, image: torch.Tensor, vae, width: int, height: int) -> io.NodeOutput:
        if error := frame_size_error(width, height):
            raise ValueError(error[0].upper() + error[1:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the off-size advice is in the tooltip; don't spam the console
            fitted = fit_image(image, width, height)  # [N, 3, height, width] in [-1, 1]
        if note := crop_note(image.shape[2], image.shape[1], width, height):
            logging.warning("Cinemo First Frame Encode: %s", note)
        pixels = ((fitted + 1.0) / 2.0).movedim(1, -1)  # back to ComfyUI's IMAGE layout, 0..1
        latent = encode_images(vae, pixels)
        if latent.ndim == 5 and latent.shape[2] == 1:
            latent = latent[:, :, 0]
        if latent.ndim != 4:
            raise ValueError(f"vae: expected an image VAE giving [images, 4, h, w] latents, got {list(latent.shape)}.")
        check_encoded_latent(latent, (height, width), "vae", "the first frame")
        # the picture's own size: Cinemo Conditioning fits a motion mask painted on it the same way
        return io.NodeOutput({"samples": latent.to(intermediate_device()),
                              SOURCE_SIZE_KEY: (int(image.shape[1]), int(image.shape[2]))})


NODES: list[type[io.ComfyNode]] = [CinemoFirstFrameEncode]
