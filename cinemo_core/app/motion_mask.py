"""The standalone tool's motion mask: an image file read as a cinemagraph mask for :func:`.pipeline.animate`.

The file is any picture PIL reads; its **grayscale** is the mask, with the node's polarity: white (1) = may
move, black (0) = stays exactly still, grey blends. An alpha channel is not read as the mask: transparent
parts are composited onto white like any picture :func:`cinemo_core.preprocess.load_image` reads, so they
move (export the mask as an opaque black-and-white picture). ``invert`` flips it (paint what stays still).
It is fitted to the video like the input image and area-averaged to the latent grid
(:mod:`cinemo_core.sampling.still`). Every failure is a :class:`SettingError` of ``motion_mask``.
"""

from __future__ import annotations

import os

import torch

from ..preprocess import load_image
from ..sampling.still import check_aspect, latent_mask
from ..settings import SettingError

#: ITU-R BT.601 luma weights (PIL's own ``convert("L")``).
LUMA = (0.299, 0.587, 0.114)


def read_motion_mask(path: str | os.PathLike[str], *, invert: bool = False) -> torch.Tensor:
    """The mask file at ``path`` as ``[1, H, W]`` float32 in 0..1 (1 = moves); ``SettingError`` if unreadable."""
    try:
        pixels = load_image(path)
    except FileNotFoundError:
        raise SettingError("motion_mask", f"motion mask file not found: {os.fspath(path)}.") from None
    except ValueError as error:
        raise SettingError("motion_mask", f"{error}. Give a readable PNG, JPEG or WebP picture.") from None
    mask = (pixels[..., :3] * torch.tensor(LUMA)).sum(-1).clamp(0.0, 1.0)
    return 1.0 - mask if invert else mask


def video_latent_mask(mask: torch.Tensor, image_hw: tuple[int, int], latent_hw: tuple[int, int]) -> torch.Tensor:
    """A pixel mask ``[1, H, W]`` of the picture ``image_hw`` -> the latent mask ``[1, h, w]`` of the video."""
    try:
        check_aspect(mask, image_hw, "motion_mask")
        return latent_mask(mask, latent_hw)
    except ValueError as error:
        raise SettingError("motion_mask", str(error)) from None
