"""Cinemagraphs: a motion mask that keeps parts of the picture exactly still.

Cinemo samples a motion *residual* (each frame minus the first image), so "this part stays still" is a residual
of exactly zero there. A motion mask is 1 where the picture may move, 0 where it stays still, values between
blend (ComfyUI's own convention for ``SetLatentNoiseMask``: white = regenerate). It is fitted to the video
exactly as the image is (the official cover-resize and centre crop) and then averaged over each 8x8 pixel
block to the latent grid ("area"): a latent cell that covers only still pixels is exactly 0, one that covers
only moving pixels exactly 1, and cells on the border get the moving fraction, a soft edge by construction
(max-pooling would let border cells move fully, so the still side of the border would shimmer; nearest
would move the border by up to 4 pixels).

Exactly still means: after every step the clean residual is ``mask * residual``, and the finished sample is
``mask * sample``, so the residual is 0.0 wherever the latent mask is 0 even though the official DDIM schedule
ends at a non-zero noise level (which left up to 0.22 of residual there with the inpainting mask alone).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..settings import cover_problem

#: Core Load Image's MASK for a picture without alpha: 64x64 zeros, whatever the picture's size. On a picture of
#: another size it means "nothing painted", not "all still".
UNPAINTED_MASK_SIZE = (64, 64)
#: Pixels per latent cell (the SD VAE downsamples by 8).
LATENT_CELL = 8
#: Relative tolerance on the mask's aspect ratio against the image's (rounding of resized masks).
ASPECT_TOLERANCE = 0.02


def as_mask_batch(mask: torch.Tensor, input_name: str) -> torch.Tensor:
    """``mask`` as float32 ``[M, H, W]`` in 0..1; ``ValueError`` naming ``input_name`` if it is no usable mask."""
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3) or 0 in mask.shape:
        raise ValueError(
            f"{input_name} must be a MASK [masks, height, width] (or [height, width]); got "
            f"{list(getattr(mask, 'shape', [])) or type(mask).__name__}."
        )
    if mask.is_complex():
        raise ValueError(f"{input_name} must hold real values 0..1 (1 = moves, 0 = still), got {mask.dtype}.")
    mask = mask.float()
    if not torch.isfinite(mask).all():
        raise ValueError(f"{input_name} holds NaN or infinite values; a mask must be 0..1 (1 = moves, 0 = still).")
    mask = mask if mask.dim() == 3 else mask.unsqueeze(0)
    return mask.clamp(0.0, 1.0)


def is_unpainted(mask: torch.Tensor, image_hw: tuple[int, int]) -> bool:
    """Core Load Image's mask of a picture with no alpha (nothing was painted): 64x64 zeros (one per frame of an
    animated picture) on a picture that is not 64x64.

    Load Image gives exactly 64x64 zeros for every such picture, so their size is the only sign that tells them
    from a deliberately all-still mask: a mask made for the picture (mask editor, Solid Mask at the picture's
    size) has the picture's size. On a 64x64 picture the two cannot be told apart; that mask then counts as
    deliberate (still), like any mask of the picture's size.
    """
    return (tuple(mask.shape[-2:]) == UNPAINTED_MASK_SIZE and tuple(image_hw) != UNPAINTED_MASK_SIZE
            and not bool(mask.any()))


def check_aspect(mask: torch.Tensor, image_hw: tuple[int, int], input_name: str) -> None:
    """``ValueError`` naming ``input_name`` unless the mask has the image's aspect ratio (any size)."""
    mask_h, mask_w = mask.shape[-2:]
    image_h, image_w = image_hw
    if abs((mask_w / mask_h) / (image_w / image_h) - 1.0) > ASPECT_TOLERANCE:
        raise ValueError(
            f"{input_name} is {mask_w}x{mask_h} pixels but the image is {image_w}x{image_h}: another aspect ratio, "
            "so it cannot be placed on the picture. Paint the mask on the same image (any size of the same shape "
            "is resized)."
        )


def fit_mask(mask: torch.Tensor, width: int, height: int, input_name: str = "motion_mask") -> torch.Tensor:
    """``[M, H, W]`` -> ``[M, height, width]``: the official cover-resize and centre crop the image gets
    (``ValueError`` naming ``input_name`` for an aspect too far from the video's to cover-resize)."""
    if problem := cover_problem(mask.shape[-1], mask.shape[-2], width, height):
        raise ValueError(f"{input_name}: {problem}")
    x = mask.unsqueeze(1)
    scale = max((height + 1) / x.shape[-2], (width + 1) / x.shape[-1])
    x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    top = int(round((x.shape[-2] - height) / 2.0))
    left = int(round((x.shape[-1] - width) / 2.0))
    return x[:, 0, top:top + height, left:left + width].clamp(0.0, 1.0)


def latent_mask(mask: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """Pixel mask ``[M, H, W]`` of any size -> ``[M, h, w]`` latent mask: fitted exactly like the picture (always,
    as the picture is always fitted, even at the video's own size), then area-averaged per 8x8 cell.

    A cell is exactly 0 only when all its pixels are still (``avg_pool`` of zeros is 0.0 exactly).
    """
    height, width = latent_hw
    return average_per_cell(fit_mask(mask, width * LATENT_CELL, height * LATENT_CELL))


def average_per_cell(mask: torch.Tensor) -> torch.Tensor:
    """``[M, H, W]`` -> ``[M, H / 8, W / 8]``: the mean of each latent cell's 8x8 pixels."""
    return F.avg_pool2d(mask.unsqueeze(1), LATENT_CELL)[:, 0]


def batch_masks(mask: torch.Tensor, videos: int, input_name: str) -> torch.Tensor:
    """One mask for all videos, or one per video: ``[M, h, w]`` -> ``[videos, h, w]``."""
    if mask.shape[0] == videos:
        return mask
    if mask.shape[0] == 1:
        return mask.expand(videos, -1, -1)
    raise ValueError(
        f"{input_name} holds {mask.shape[0]} masks but there are {videos} videos (first frames); give one mask "
        "for all videos or one per video."
    )


def keep_still(residual: torch.Tensor, mask: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """``mask * residual + (1 - mask) * target`` (target 0 by default): exactly ``target`` where mask is 0.

    ``residual`` is ``[N, C, F, h, w]``; ``mask`` broadcasts to it (``[N, 1, F or 1, h, w]``).
    """
    kept = residual * mask
    return kept if target is None else kept + target * (1 - mask)


def composite_still_pixels(frames: torch.Tensor, picture: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Frames ``[N, F, H, W, C]`` with ``picture`` ``[N, H, W, C]`` put back where ``mask`` ``[N, H, W]`` is < 1.

    ``frames * mask + picture * (1 - mask)``, computed so that a pixel whose mask is 0 is the picture's value
    bit for bit (``torch.where``: no rounding of ``x * 0 + p * 1``).
    """
    m = mask[:, None, :, :, None].to(frames)
    p = picture[:, None].to(frames)
    blended = frames * m + p * (1 - m)
    return torch.where(m == 0, p.expand_as(frames), blended)


def feather(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Soften the moving region's border inwards over ``pixels``: still pixels (0) stay exactly 0.

    ``min(mask, box_blur(mask))``: the blur ramps the border, the minimum keeps every 0 a 0.
    """
    if pixels <= 0:
        return mask
    size = 2 * pixels + 1
    blurred = F.avg_pool2d(mask.unsqueeze(1), size, stride=1, padding=pixels, count_include_pad=False)[:, 0]
    return torch.minimum(mask, blurred)
