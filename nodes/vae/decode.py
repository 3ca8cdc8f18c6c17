"""Cinemo Temporal VAE Decode: each clip on its own, in chunks of at most 14 frames, like the official code.

Core VAE Decode treats a whole batch as one clip and splits it wherever memory says, which may mix clips.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io
from einops import rearrange

from ...cinemo_core.settings import MAX_DECODE_FRAMES, OFFICIAL_DECODE_CHUNK, TRAINED_FRAMES
from ..comfy_compat import (
    ProgressBar,
    decode_as_one_clip,
    decode_images,
    has_temporal_decoder,
    load_vae_for_decoding,
    throw_if_interrupted,
    vae_latent_layout,
)
from ..latents import CLIP_FRAMES_KEY



def clip_chunks(total_frames: int, frames_per_clip: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` frame ranges to decode: each clip in pieces of at most ``chunk_size`` frames.

    ``total_frames`` frames are ``total_frames / frames_per_clip`` clips back to back; no piece crosses a clip
    boundary. With the official 16 frames and chunks of 14, a clip decodes as 14 + 2 frames.

    Raises:
        ValueError: on non-positive sizes, or if the frames are not a whole number of clips.
    """
    for name, value in (("frames_per_clip", frames_per_clip), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if isinstance(total_frames, bool) or not isinstance(total_frames, int) or total_frames < 1:
        raise ValueError(f"There must be at least one frame to decode, got {total_frames!r}.")
    if total_frames % frames_per_clip:
        raise ValueError(
            f"The latent holds {total_frames} frames, which is not a whole number of clips of {frames_per_clip} "
            f"frames; set frames per clip to the length of one clip (e.g. {total_frames} for a single clip)."
        )
    return [
        (start, min(start + chunk_size, clip + frames_per_clip))
        for clip in range(0, total_frames, frames_per_clip)
        for start in range(clip, clip + frames_per_clip, chunk_size)
    ]


def frame_batch(samples: torch.Tensor, frames_per_clip: int) -> tuple[torch.Tensor, int]:
    """``[N, C, h, w]`` (clips back to back) or ``[B, C, F, h, w]`` -> frames ``[N, C, h, w]`` and frames per clip."""
    if samples.dim() == 5:
        return rearrange(samples, "b c f h w -> (b f) c h w"), samples.shape[2]
    if samples.dim() == 4:
        return samples, frames_per_clip
    raise ValueError(
        f"Expected a latent of frames [N, C, h, w] (or [B, C, F, h, w]), got shape {list(samples.shape)}."
    )


def decode_clips(vae, latents: torch.Tensor, frames_per_clip: int, chunk_size: int) -> torch.Tensor:
    """Decode frames ``[N, C, h, w]`` clip by clip, ``chunk_size`` frames at a time -> IMAGE ``[N, H, W, 3]``.

    Each chunk is decoded as a short video of its own frame count (diffusers' ``decode(z, num_frames=n)``), so
    chunks never mix clips. An image VAE decodes frame by frame, where chunking does not matter.
    """
    channels, latent_dim = vae_latent_layout(vae)
    if latents.shape[1] != channels:
        raise ValueError(f"The latent has {latents.shape[1]} channels; this VAE expects {channels}.")
    chunks = clip_chunks(int(latents.shape[0]), frames_per_clip, chunk_size)
    if not has_temporal_decoder(vae):
        if latent_dim != 2:
            raise ValueError("This node decodes with the SVD/Cinemo temporal VAE or an image VAE, not a video VAE.")
        return decode_images(vae, latents)
    load_vae_for_decoding(vae, tuple(latents.shape), max(stop - start for start, stop in chunks))
    progress = ProgressBar(len(chunks))
    images: torch.Tensor | None = None
    with torch.inference_mode():
        for start, stop in chunks:
            throw_if_interrupted()
            pixels = decode_as_one_clip(vae, latents[start:stop])
            if images is None:
                images = torch.empty((latents.shape[0],) + tuple(pixels.shape[1:]), device=pixels.device)
            images[start:stop] = pixels
            progress.update(1)
    return rearrange(images, "n c h w -> n h w c")


class CinemoTemporalVAEDecode(io.ComfyNode):
    """Decode a latent video clip by clip in chunks of 14 frames, like the official Cinemo code."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoTemporalVAEDecode",
            display_name="Cinemo Temporal VAE Decode",
            category="Cinemo",
            description=(
                "Decodes video latents with the temporal VAE the way Cinemo does: each clip separately, in chunks "
                "of at most 14 frames, each chunk decoded as a short video. Core VAE Decode instead splits the "
                "batch wherever memory allows and may mix clips. With an ordinary image VAE it decodes normally."
            ),
            inputs=[
                io.Vae.Input("vae", tooltip="The VAE; the Cinemo/SVD temporal VAE for the official decode."),
                io.Latent.Input(
                    "samples",
                    tooltip="Unscaled latents, frames as the batch ([clips x frames, 4, h, w], as VAE Decode takes); "
                    "a [B, 4, F, h, w] latent is read as B clips of F frames.",
                ),
                io.Int.Input(
                    "frames_per_clip",
                    default=TRAINED_FRAMES,
                    min=1,
                    max=MAX_DECODE_FRAMES,
                    tooltip="Frames in one clip, for latents that do not say it themselves (from VAE Encode or a "
                    "latent file): the frames from Cinemo Residual To Frames carry their clip length, and a 5D "
                    "latent's frame axis is its clip length; both are used instead of this value.",
                ),
                io.Int.Input(
                    "chunk_size",
                    default=OFFICIAL_DECODE_CHUNK,
                    min=1,
                    max=MAX_DECODE_FRAMES,
                    tooltip="Most frames decoded together (official: 14, so 16 frames decode as 14 + 2). Larger "
                    "needs more memory.",
                ),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="The decoded frames, clips back to back.")],
        )

    @classmethod
    def execute(cls, vae, samples: dict, frames_per_clip: int, chunk_size: int) -> io.NodeOutput:
        latents, per_clip = frame_batch(samples["samples"], int(samples.get(CLIP_FRAMES_KEY, frames_per_clip)))
        return io.NodeOutput(decode_clips(vae, latents, per_clip, chunk_size))


NODES: list[type[io.ComfyNode]] = [CinemoTemporalVAEDecode]
