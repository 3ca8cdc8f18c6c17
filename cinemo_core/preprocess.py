"""Loading the input image and fitting it to the model's frame size like the official sampler; picking a source
clip's frames.

Official ``animation.py`` (``SDXLCenterCrop``): scale by ``s = max((H+1)/h, (W+1)/w)`` with
``F.interpolate(scale_factor=s, mode="bilinear", align_corners=False)`` (no antialias; output
``floor(h*s) x floor(w*s)``), centre-crop H x W at ``round((h'-H)/2), round((w'-W)/2)``, map to
[-1, 1]. (The demo ``app.py`` uses a PIL Lanczos resize instead; this follows ``animation.py``.)
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .settings import DEFAULT_HEIGHT as TRAINED_HEIGHT
from .settings import DEFAULT_WIDTH as TRAINED_WIDTH
from .settings import MAX_READ_PIXELS, SIDE_MULTIPLE, cover_problem, crop_note, size_note

#: Transparent pixels are composited onto this background (white), in 0..1.
ALPHA_BACKGROUND = 1.0
#: How far outside 0..1 an IMAGE's values may be (an upscaler's overshoot, clipped); beyond is an error.
PICTURE_RANGE_SLACK = 0.5


def check_size(width: int, height: int) -> None:
    """Require positive multiples of 8; warn outside the trained 512x320."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % SIDE_MULTIPLE:
            raise ValueError(
                f"{name} must be a positive multiple of {SIDE_MULTIPLE} (the VAE downsamples by 8), got {value!r}."
            )
    if note := size_note(width, height):
        warnings.warn(note, stacklevel=3)


def _composite(rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return rgb * alpha + ALPHA_BACKGROUND * (1 - alpha)


def fit_image(
    image: torch.Tensor, width: int = TRAINED_WIDTH, height: int = TRAINED_HEIGHT, *, input_name: str = "image"
) -> torch.Tensor:
    """Resize to cover and centre-crop to ``height x width`` like the official code, then map to [-1, 1].

    Args:
        image: [B, H, W, C] in 0..1 (ComfyUI IMAGE layout); C = 3, or 1 (grey, repeated) or
            4 (RGBA, composited onto white).
        width, height: output size, positive multiples of 8.
        input_name: what the errors call ``image`` (a node's input name).

    Warns when the crop keeps less than about half of the image's width or height. Values a little outside
    0..1 (an upscaler's overshoot) are clipped; ``ValueError`` naming ``input_name`` for NaN or infinite values,
    values far outside 0..1 (0..255 given as floats), a dtype that is no picture's, and an aspect so far from
    the video's that the cover-resize would need more than ``MAX_COVER_PIXELS``.

    Returns:
        [B, 3, height, width] in [-1, 1]; float64 for float64 input, float32 otherwise.
    """
    check_size(width, height)
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{input_name} must be a tensor [B, H, W, C] with C in (1, 3, 4) and values 0..1, "
            f"got {getattr(image, 'shape', image)!r}."
        )
    if image.shape[0] == 0 or image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"{input_name} is empty: shape {list(image.shape)}.")
    if image.dtype != torch.uint8 and not image.dtype.is_floating_point:
        raise ValueError(f"{input_name} must hold floats from 0 to 1 (or uint8), got {image.dtype}.")
    if problem := cover_problem(image.shape[2], image.shape[1], width, height):
        raise ValueError(f"{input_name}: {problem}")
    dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
    x = image.to(dtype) / 255.0 if image.dtype == torch.uint8 else _in_picture_range(image.to(dtype), input_name)
    if x.shape[-1] == 1:
        x = x.expand(-1, -1, -1, 3)
    elif x.shape[-1] == 4:
        x = _composite(x[..., :3], x[..., 3:])
    x = x.permute(0, 3, 1, 2)

    h_in, w_in = x.shape[-2:]
    if note := crop_note(w_in, h_in, width, height):
        warnings.warn(note[0].upper() + note[1:], stacklevel=2)
    scale = max((height + 1) / h_in, (width + 1) / w_in)
    # Passing scale_factor (not size) matters: torch then maps coordinates with 1/scale, as the official code does.
    x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    h_out, w_out = x.shape[-2:]
    top = int(round((h_out - height) / 2.0))
    left = int(round((w_out - width) / 2.0))
    x = x[..., top : top + height, left : left + width]
    return (x - 0.5) / 0.5


def _in_picture_range(x: torch.Tensor, input_name: str) -> torch.Tensor:
    """``x`` clipped to 0..1 when it is a picture: finite and at most ``PICTURE_RANGE_SLACK`` outside 0..1."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{input_name} holds NaN or infinite values ({bad} of {x.numel()}); an IMAGE is 0..1.")
    low, high = float(x.min()), float(x.max())
    if low < -PICTURE_RANGE_SLACK or high > 1.0 + PICTURE_RANGE_SLACK:
        hint = " (0..255 given as floats? divide by 255)" if high > 2.0 else ""
        raise ValueError(f"{input_name} values run from {low:g} to {high:g}; an IMAGE is 0..1{hint}.")
    return x.clamp(0.0, 1.0)


def _to_array(img: Image.Image) -> np.ndarray:
    """Decoded PIL image -> float32 [H, W, 3] in 0..1, handling bit depth and transparency."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale (PNG/TIFF); Pillow opens some of these as 32-bit "I" holding 0..65535.
        grey = np.clip(np.asarray(img, dtype=np.float64) / 65535.0, 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
    if mode == "F":
        # 32-bit float images carry no defined range; they are taken as 0..1.
        grey = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode in ("P", "L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        return _composite(torch.from_numpy(rgba[..., :3]), torch.from_numpy(rgba[..., 3:])).numpy()
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file into a [1, H, W, 3] float32 tensor in 0..1 (ComfyUI IMAGE layout).

    Handles RGB, greyscale, palette, CMYK, 16-bit greyscale (scaled by 1/65535) and transparency
    (RGBA/LA/P with a transparent colour are composited onto a white background). The EXIF
    orientation is applied (the official code ignores it; ComfyUI's loader honours it). For
    animated files the first frame is used.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the file cannot be decoded as an image, or claims more than ``MAX_READ_PIXELS``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Image file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, by our own limit
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_READ_PIXELS:
                    raise ValueError(f"it claims {width}x{height} pixels, more than {MAX_READ_PIXELS}")
                img.load()
                img = ImageOps.exif_transpose(img)
                array = _to_array(img)
    except Exception as exc:  # noqa: BLE001 - any decoder failure (PIL's errors, DecompressionBombError) means unreadable
        raise ValueError(f"Cannot read image {path!r}: {exc}") from exc
    return torch.from_numpy(np.ascontiguousarray(array)).unsqueeze(0)


def select_source_frames(clip: torch.Tensor | np.ndarray, num_frames: int, frame_step: int = 1) -> torch.Tensor:
    """Frames 0, step, ..., (num_frames - 1) * step of ``clip`` [F, H, W, C] (uint8, or 0..1 floats).

    Raises ``ValueError`` naming both counts when the clip is too short.
    """
    if isinstance(clip, np.ndarray):
        clip = torch.from_numpy(np.ascontiguousarray(clip))
    if not isinstance(clip, torch.Tensor) or clip.dim() != 4 or clip.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"the source clip must be frames [F, H, W, C] with C in (1, 3, 4), got {getattr(clip, 'shape', clip)!r}."
        )
    needed = (num_frames - 1) * frame_step + 1
    if clip.shape[0] < needed:
        stepped = f" with a frame step of {frame_step} (source frames 0 to {needed - 1})" if frame_step > 1 else ""
        raise ValueError(
            f"the source clip has {clip.shape[0]} frames, but {num_frames} frames were asked for{stepped}; "
            "ask for fewer frames, use a smaller frame step or a longer clip."
        )
    return clip[: needed : frame_step]
