"""Cinemo Keep Still: the picture's own pixels put back where the motion mask is still, after decoding.

The sampled residual is exactly 0 in still latent cells, but a VAE decoder sees neighbouring cells and its round
trip changes every pixel a little, so decoded still regions shimmer slightly. This node composites the picture,
fitted exactly as Cinemo First Frame Encode fits it, back where the mask is 0: such a pixel is the picture's value
bit for bit in every frame. It works on any decoder's IMAGE (Cinemo Temporal VAE Decode, core VAE Decode).
"""

from __future__ import annotations

import logging
import warnings

import torch
from comfy_api.latest import io
from einops import rearrange

from ..cinemo_core.preprocess import fit_image
from ..cinemo_core.sampling.still import (
    LATENT_CELL,
    as_mask_batch,
    batch_masks,
    check_aspect,
    composite_still_pixels,
    feather as feather_mask,
    fit_mask,
    is_unpainted,
)

LOG = logging.getLogger(__name__)

#: Default width of the soft edge, in pixels: one latent cell, the width of the latent mask's soft border.
DEFAULT_FEATHER = LATENT_CELL
MAX_FEATHER = 64


def fitted_picture(picture: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The picture as First Frame Encode feeds it to the VAE: cover-resized, centre-cropped, IMAGE layout 0..1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the off-size and crop notes are First Frame Encode's to give
        fitted = fit_image(picture, width, height, input_name="picture")
    return ((fitted + 1.0) / 2.0).clamp(0.0, 1.0).movedim(1, -1)


def clip_count(frames: int, pictures: int, masks: int) -> int:
    """How many videos the frames are: one per picture or per mask (each 1 or the same number)."""
    videos = max(pictures, masks)
    if pictures not in (1, videos):
        raise ValueError(
            f"picture holds {pictures} images but motion_mask holds {masks} masks; give one picture for all videos "
            "or one per video (the images given to Cinemo First Frame Encode)."
        )
    if frames % videos:
        raise ValueError(
            f"images holds {frames} frames, which are not {videos} videos of equal length (one per picture or "
            "mask); decode all the videos of one run, back to back."
        )
    return videos


class CinemoKeepStill(io.ComfyNode):
    """Composites the picture back where the motion mask is still, so still pixels never change."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoKeepStill",
            display_name="Cinemo Keep Still",
            category="Cinemo",
            description=(
                "Cinemagraphs: puts the picture's own pixels back where the motion mask is still (0), with a soft "
                "edge, so a still pixel is exactly the picture's in every frame. After any decoder."
            ),
            inputs=[
                io.Image.Input(
                    "images", tooltip="The decoded frames (Cinemo Temporal VAE Decode or VAE Decode), videos back "
                    "to back."
                ),
                io.Image.Input(
                    "picture", tooltip="The picture the video was made from: the same image as given to Cinemo "
                    "First Frame Encode (it is fitted the same way). One for all videos or one per video."
                ),
                io.Mask.Input(
                    "motion_mask", tooltip="The same mask as Cinemo Conditioning's motion_mask: white (1) = may "
                    "move, black (0) = stays still (the picture is put back there). Load Image's empty 64x64 "
                    "mask (nothing painted) changes nothing."
                ),
                io.Boolean.Input(
                    "invert_mask", default=False,
                    tooltip="Flip motion_mask (white = stays still); set it as on Cinemo Conditioning.",
                ),
                io.Int.Input(
                    "feather", default=DEFAULT_FEATHER, min=0, max=MAX_FEATHER,
                    tooltip="Soft edge in pixels: the moving region fades into the picture over this width, on "
                    "its own side, so still pixels stay exact. 0 = a hard edge.",
                ),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="The frames with still regions exactly still.")],
        )

    @classmethod
    def execute(
        cls, images: torch.Tensor, picture: torch.Tensor, motion_mask: torch.Tensor, invert_mask: bool,
        feather: int,
    ) -> io.NodeOutput:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or 0 in images.shape:
            raise ValueError(f"images must be an IMAGE [frames, height, width, channels], got "
                             f"{list(getattr(images, 'shape', [])) or type(images).__name__}.")
        if not isinstance(picture, torch.Tensor) or picture.dim() != 4 or 0 in picture.shape:
            raise ValueError(f"picture must be an IMAGE [images, height, width, channels], got "
                             f"{list(getattr(picture, 'shape', [])) or type(picture).__name__}.")
        frames, height, width, _ = images.shape
        if height % LATENT_CELL or width % LATENT_CELL:
            raise ValueError(f"images are {width}x{height} pixels; decoded Cinemo frames are multiples of 8 "
                             "(wire the decoder's output directly).")
        mask = as_mask_batch(motion_mask, "motion_mask")
        picture_hw = (int(picture.shape[1]), int(picture.shape[2]))
        if is_unpainted(mask, picture_hw):
            LOG.info("Cinemo Keep Still: motion_mask is Load Image's empty mask (nothing painted): frames unchanged.")
            return io.NodeOutput(images)
        if invert_mask:
            mask = 1.0 - mask
        check_aspect(mask, picture_hw, "motion_mask")
        videos = clip_count(frames, picture.shape[0], mask.shape[0])
        pixel_mask = feather_mask(fit_mask(batch_masks(mask, videos, "motion_mask"), width, height), int(feather))
        if bool((pixel_mask == 1).all()):
            return io.NodeOutput(images)
        if not bool(pixel_mask.any()):
            LOG.warning("Cinemo Keep Still: motion_mask is still everywhere: every frame is the picture.")
        pictures = fitted_picture(picture, width, height).to(images)
        pictures = pictures.expand(videos, -1, -1, -1)
        clips = rearrange(images, "(v f) h w c -> v f h w c", v=videos)
        kept = composite_still_pixels(clips, pictures, pixel_mask.to(images.device))
        return io.NodeOutput(rearrange(kept, "v f h w c -> (v f) h w c"))


NODES: list[type[io.ComfyNode]] = [CinemoKeepStill]
