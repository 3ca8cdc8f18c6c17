"""Cinemo Encode Video: a source clip (IMAGE batch) -> its first-frame LATENT and its motion residual LATENT.

Frames are picked with a stride (Cinemo's clips are 8 fps) and fitted like First Frame Encode's image, so the
motion of the clip can be inverted and transferred to another first frame encoded at the same size.
"""

from __future__ import annotations

import warnings

import torch
from comfy_api.latest import io
from einops import rearrange

from ..cinemo_core.settings import (
    DEFAULT_FRAMES,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    MAX_FRAME_STEP,
    MAX_FRAMES,
    MAX_SIDE,
    MIN_FRAME_STEP,
    MIN_FRAMES,
    MIN_SIDE,
    SIDE_MULTIPLE,
)
from ..cinemo_core.finite import check_encoded_latent
from ..cinemo_core.preprocess import fit_image, select_source_frames
from ..cinemo_core.sampling.sampler import split_video_latents
from .comfy_compat import encode_images, intermediate_device
from .first_frame import frame_size_error
from .latents import with_first_frame



class CinemoVideoEncode(io.ComfyNode):
    """A clip's first frame and motion residual, for DDIM inversion (motion transfer)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoVideoEncode",
            display_name="Cinemo Encode Video",
            category="Cinemo",
            description=(
                "Encodes a source clip for motion transfer: takes frames 0, s, 2s, ... (s = frame_step), fits each "
                "to width x height like Cinemo First Frame Encode, encodes them and splits them into the first "
                "frame and the motion residual (frames minus the first frame). Feed the residual to Cinemo Invert "
                "Motion and the first frame to the source's Cinemo Conditioning."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The source clip, its frames as one IMAGE batch (e.g. Load Video)."),
                io.Vae.Input("vae", tooltip="The SD 1.x VAE (or Cinemo's temporal VAE); the same as for the edited frame."),
                io.Int.Input("width", default=DEFAULT_WIDTH, min=MIN_SIDE, max=MAX_SIDE, step=SIDE_MULTIPLE,
                             tooltip="Width in pixels, a multiple of 8; the edited first frame must use the same."),
                io.Int.Input("height", default=DEFAULT_HEIGHT, min=MIN_SIDE, max=MAX_SIDE, step=SIDE_MULTIPLE,
                             tooltip="Height in pixels, a multiple of 8; the edited first frame must use the same."),
                io.Int.Input("frames", default=DEFAULT_FRAMES, min=MIN_FRAMES, max=MAX_FRAMES,
                             tooltip="Frames to take from the clip, the first included (Cinemo: 16). The clip must "
                             "have at least (frames - 1) x frame_step + 1."),
                io.Int.Input("frame_step", default=MIN_FRAME_STEP, min=MIN_FRAME_STEP, max=MAX_FRAME_STEP,
                             tooltip="Use every n-th frame. Cinemo's clips are 8 fps: 3 brings 24 fps footage close."),
            ],
            outputs=[
                io.Latent.Output(display_name="first_frame", tooltip="The clip's first-frame latent [1, 4, h, w]."),
                io.Latent.Output(display_name="residual",
                                 tooltip="The clip's motion residual [1, 4, frames - 1, h, w] to invert; it "
                                 "carries the clip's first frame (Residual To Frames needs no first_frame)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, width: int | None = None, height: int | None = None) -> bool | str:
        return frame_size_error(width, height) or True

    @classmethod
    def execute(cls, images: torch.Tensor, vae, width: int, height: int, frames: int, frame_step: int) -> io.NodeOutput:
        if error := frame_size_error(width, height):
            raise ValueError(error[0].upper() + error[1:])
        try:
            clip = select_source_frames(images, frames, frame_step)
        except ValueError as error:
            raise ValueError(f"images: {error}") from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the off-size advice is in the tooltip
            fitted = fit_image(clip[..., :3], width, height, input_name="images")
        latents = encode_images(vae, ((fitted + 1.0) / 2.0).movedim(1, -1))
        if latents.ndim == 5 and latents.shape[2] == 1:
            latents = latents[:, :, 0]
        if latents.ndim != 4:
            raise ValueError(f"vae: expected an image VAE giving [frames, 4, h, w] latents, got {list(latents.shape)}.")
        check_encoded_latent(latents, (height, width), "vae", "the clip")
        first, residual = split_video_latents(rearrange(latents, "f c h w -> 1 c f h w"))
        device = intermediate_device()
        first = first[:, :, 0].to(device)
        return io.NodeOutput({"samples": first}, with_first_frame({"samples": residual.to(device)}, first))


NODES: list[type[io.ComfyNode]] = [CinemoVideoEncode]
