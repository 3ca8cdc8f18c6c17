"""The three LATENT layouts of the Cinemo nodes, and checks that name the node input at fault.

All hold unscaled VAE latents, as every ComfyUI LATENT. ``N`` videos, ``F`` frames each (the first
included), latent size ``h x w``:

* first frame ``[N, 4, h, w]`` (image ``n`` animates video ``n``; a ``[N, 4, 1, h, w]`` latent is accepted);
* residual ``[N, 4, F - 1, h, w]``: frames 1..F-1 minus the first frame, what the samplers denoise; it carries
  its first frame ``[N, 4, h, w]`` under :data:`FIRST_FRAME_KEY` (video = first frame + residual), which core
  samplers keep (they copy the LATENT dict);
* frames ``[N * F, 4, h, w]``: video after video, each starting with its first frame (VAE Decode's layout).
"""

from __future__ import annotations

import torch
from einops import rearrange

from ..cinemo_core.sampling.sampler import assemble_video_latents

#: The frames LATENT says how many frames one clip has, so that decoders never need to be told again.
CLIP_FRAMES_KEY = "cinemo_frames_per_clip"
#: The residual LATENT carries the first frame it was made for, so that the nodes after the sampler need not
#: be wired to it again. Always one image per video (Cinemo Conditioning repeats a single image).
FIRST_FRAME_KEY = "cinemo_first_frame"
#: The first-frame LATENT says the (height, width) of the picture it was fitted from, for motion masks.
SOURCE_SIZE_KEY = "cinemo_source_size"


def first_frame_samples(latent: dict, input_name: str) -> torch.Tensor:
    """The ``[N, 4, h, w]`` first-frame latent in ``latent``; ``ValueError`` naming ``input_name`` otherwise."""
    samples = _samples(latent, input_name)
    if samples.ndim == 5 and samples.shape[2] == 1:
        samples = samples[:, :, 0]
    if samples.ndim != 4:
        raise ValueError(
            f"{input_name} must be a first-frame latent [images, 4, h, w] from 'Cinemo First Frame Encode' "
            f"(or VAE Encode); got shape {list(samples.shape)}."
        )
    return samples


def residual_samples(latent: dict, input_name: str) -> torch.Tensor:
    """The ``[N, 4, F - 1, h, w]`` residual latent in ``latent``; ``ValueError`` naming ``input_name`` otherwise."""
    samples = _samples(latent, input_name)
    if samples.ndim != 5:
        raise ValueError(
            f"{input_name} must be a Cinemo residual latent [videos, 4, frames - 1, h, w] (the 'latent' output of "
            f"'Cinemo Conditioning', after sampling); got a {samples.ndim}-D latent {list(samples.shape)}."
        )
    return samples


def check_residual_matches_first_frame(
    residual_shape: torch.Size | tuple, first_frame_shape: torch.Size | tuple, *, residual_name: str,
    first_frame_name: str,
) -> None:
    """Raise ``ValueError`` naming both inputs unless a ``[N,4,F,h,w]`` residual fits an ``[N or 1,4,h,w]`` frame."""
    if len(residual_shape) != 5:
        raise ValueError(
            f"{residual_name} must be a Cinemo residual latent [videos, 4, frames - 1, h, w] (the 'latent' output "
            f"of 'Cinemo Conditioning'); got a {len(residual_shape)}-D latent {list(residual_shape)}."
        )
    if len(first_frame_shape) != 4:
        raise ValueError(
            f"{first_frame_name} must be a first-frame latent [images, 4, h, w] (from 'Cinemo First Frame Encode'); "
            f"got {list(first_frame_shape)}."
        )
    videos, channels, _, height, width = residual_shape
    if tuple(first_frame_shape[1:]) != (channels, height, width):
        raise ValueError(
            f"{first_frame_name} is for {first_frame_shape[-1] * 8}x{first_frame_shape[-2] * 8} pixels "
            f"(latent {list(first_frame_shape[1:])}) but {residual_name} is for {width * 8}x{height * 8} "
            f"(latent {[channels, height, width]}). Make the residual latent with 'Cinemo Conditioning' from "
            "the same first frame."
        )
    if first_frame_shape[0] not in (1, videos):
        raise ValueError(
            f"{first_frame_name} holds {first_frame_shape[0]} images but {residual_name} holds {videos} videos; "
            "use one image per video (or one image for all)."
        )


def with_first_frame(residual_latent: dict, first_frame: torch.Tensor) -> dict:
    """``residual_latent`` carrying its first frame ``[N, 4, h, w]`` (one image per video)."""
    return {**residual_latent, FIRST_FRAME_KEY: first_frame}


def residual_and_first_frame(
    residual_latent: dict, first_frame_latent: dict | None, *, residual_name: str,
    first_frame_name: str = "first_frame",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual ``[N, 4, F - 1, h, w]`` and its first frame ``[N or 1, 4, h, w]``.

    A wired ``first_frame_latent`` wins (saved workflows that wire it run as before); otherwise the first frame
    the residual carries. ``ValueError`` naming both inputs when neither is there or they do not fit.
    """
    residual = residual_samples(residual_latent, residual_name)
    if first_frame_latent is not None:
        first = first_frame_samples(first_frame_latent, first_frame_name)
        check_residual_matches_first_frame(
            residual.shape, first.shape, residual_name=residual_name, first_frame_name=first_frame_name
        )
        return residual, first
    carried = residual_latent.get(FIRST_FRAME_KEY)
    if not isinstance(carried, torch.Tensor):
        raise ValueError(
            f"{first_frame_name} is not connected and {residual_name} carries no first frame: connect "
            f"{first_frame_name} to the first-frame latent the residual was made with (Cinemo First Frame Encode), "
            "or make the residual with Cinemo Conditioning (or Cinemo Encode Video) and pass it on through nodes "
            "that keep its LATENT dict (core samplers do; Load Latent and Cinemo Invert Motion do not)."
        )
    # the carried frame is one per video: any other batch means a node in between re-batched the residual
    if carried.ndim != 4 or tuple(carried.shape) != (residual.shape[0], residual.shape[1], *residual.shape[3:]):
        raise ValueError(
            f"{residual_name} carries a first frame {list(carried.shape)} that does not fit the residual itself "
            f"{list(residual.shape)}: a node in between changed its batch or size (e.g. a LATENT batch, repeat or "
            f"upscale node). Connect {first_frame_name} to the first-frame latent of these videos."
        )
    return residual, carried


def video_frames(first_frame: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Frames ``[N * F, 4, h, w]`` (video after video, first frame first) from a first frame and a residual."""
    video = assemble_video_latents(first_frame.unsqueeze(2), residual)
    return rearrange(video, "n c f h w -> (n f) c h w").contiguous()


def _samples(latent: dict, input_name: str) -> torch.Tensor:
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor):
        raise ValueError(f"{input_name} is not a LATENT (a dict with a 'samples' tensor).")
    return samples
