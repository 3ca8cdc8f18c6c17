"""Cinemo nodes: the released temporal-decoder VAE as a ComfyUI VAE, and a decoder that keeps clips intact.

ComfyUI reads SVD's temporal decoder only in SGM keys; Cinemo ships it in diffusers keys. The loader converts
the weights (``cinemo_core.temporal_vae``) and builds ComfyUI's own ``comfy.sd.VAE`` from them, so the VAE it
returns works with every core node (VAE Encode included). ComfyUI's own VAE Decode treats a whole batch as one
clip and splits it wherever memory says; the decode node here decodes each clip in chunks of at most 14
frames with the chunk's frame count, like the official code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import comfy.model_management
import comfy.sd
import comfy.utils
import folder_paths
import torch
from comfy.ldm.modules.temporal_ae import VideoDecoder
from comfy_api.latest import io

from ..cinemo_core.temporal_vae import (
    OFFICIAL_CLIP_FRAMES,
    OFFICIAL_DECODE_CHUNK,
    TemporalVAEFormatError,
    check_svd_architecture,
    clip_chunks,
    convert_temporal_vae_state_dict,
    find_temporal_vaes,
    infer_architecture,
    is_diffusers_temporal_vae,
    is_sgm_temporal_vae,
    weight_file,
)

#: Model folders searched for temporal VAEs, in this order (``cinemo`` only if some pack registered it).
MODEL_FOLDERS = ("cinemo", "vae")
MAX_FRAMES = 4096


def model_roots() -> list[str]:
    """The directories of the registered ``cinemo`` and ``vae`` model folders (unregistered ones skipped)."""
    roots: list[str] = []
    for name in MODEL_FOLDERS:
        try:
            roots.extend(folder_paths.get_folder_paths(name))
        except KeyError:
            continue
    return roots


def available_temporal_vaes() -> dict[str, Path]:
    """``{name: path}`` of the temporal VAEs under the model folders, as the loader lists them."""
    return find_temporal_vaes(model_roots())


def is_temporal_vae(vae: comfy.sd.VAE) -> bool:
    """True for a VAE whose decoder is ComfyUI's temporal ``VideoDecoder`` (SVD / Cinemo)."""
    return isinstance(getattr(vae.first_stage_model, "decoder", None), VideoDecoder)


def build_temporal_vae(state_dict: dict[str, torch.Tensor]) -> comfy.sd.VAE:
    """A ComfyUI VAE from temporal-VAE weights in diffusers keys (converted here) or SGM keys.

    Raises:
        TemporalVAEFormatError: if the weights are not an SVD-sized temporal VAE, or some are missing.
    """
    if is_diffusers_temporal_vae(state_dict):
        check_svd_architecture(infer_architecture(state_dict))
        state_dict = convert_temporal_vae_state_dict(state_dict)
    elif not is_sgm_temporal_vae(state_dict):
        raise TemporalVAEFormatError(
            "This file is not a temporal-decoder VAE (AutoencoderKLTemporalDecoder in diffusers keys, or SVD's VAE "
            "in SGM keys); for an ordinary VAE use ComfyUI's Load VAE node."
        )
    vae = comfy.sd.VAE(sd=state_dict)
    if not is_temporal_vae(vae):
        raise TemporalVAEFormatError("ComfyUI did not build a temporal decoder from these weights.")
    missing = sorted(set(vae.first_stage_model.state_dict()) - set(state_dict))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise TemporalVAEFormatError(f"The temporal VAE lacks {len(missing)} weights ({shown}).")
    return vae


def load_temporal_vae(name: str) -> comfy.sd.VAE:
    """Load the temporal VAE the loader lists as ``name``."""
    found = available_temporal_vaes()
    if name not in found:
        raise FileNotFoundError(
            f"No temporal VAE named '{name}' under the model folders {model_roots()}; put the diffusers "
            "'vae_temporal_decoder' folder (config.json + diffusion_pytorch_model.safetensors) or a single "
            "safetensors file into models/vae or models/cinemo."
        )
    path = weight_file(found[name])
    logging.info("Cinemo: loading temporal VAE %s", path)
    return build_temporal_vae(comfy.utils.load_torch_file(str(path), safe_load=True))


def frames_as_batch(samples: torch.Tensor, frames_per_clip: int) -> tuple[torch.Tensor, int]:
    """``[N, C, h, w]`` (clips back to back) or ``[B, C, F, h, w]`` -> frames ``[N, C, h, w]`` and frames per clip."""
    if samples.dim() == 5:
        batch, channels, frames, height, width = samples.shape
        return samples.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width), frames
    if samples.dim() == 4:
        return samples, frames_per_clip
    raise ValueError(
        f"Expected a latent of frames [N, C, h, w] (or [B, C, F, h, w]), got shape {list(samples.shape)}."
    )


def decode_clips(vae: comfy.sd.VAE, latents: torch.Tensor, frames_per_clip: int, chunk_size: int) -> torch.Tensor:
    """Decode frames ``[N, C, h, w]`` clip by clip, ``chunk_size`` frames at a time -> IMAGE ``[N, H, W, 3]``.

    Each chunk is decoded by its own call, so the temporal decoder sees it as one short video of its own
    frame count (what diffusers' ``decode(z, num_frames=n)`` does) and chunks never mix clips; the output is
    post-processed like ``comfy.sd.VAE.decode`` (to 0..1, on the intermediate device).
    A VAE without a temporal decoder decodes frame by frame, so chunking does not matter and
    ``VAE.decode`` is used as is.
    """
    vae.throw_exception_if_invalid()
    if latents.shape[1] != vae.latent_channels:
        raise ValueError(f"The latent has {latents.shape[1]} channels; this VAE expects {vae.latent_channels}.")
    chunks = clip_chunks(int(latents.shape[0]), frames_per_clip, chunk_size)
    if not is_temporal_vae(vae):
        if vae.latent_dim != 2:
            raise ValueError("This node decodes with the SVD/Cinemo temporal VAE or an image VAE, not a video VAE.")
        return vae.decode(latents)
    largest = max(stop - start for start, stop in chunks)
    # memory_used_decode is per frame (VAE.decode divides free memory by it to size its batches)
    memory = vae.memory_used_decode(tuple(latents.shape), vae.vae_dtype) * largest
    comfy.model_management.load_models_gpu([vae.patcher], memory_required=memory, force_full_load=vae.disable_offload)
    progress = comfy.utils.ProgressBar(len(chunks))
    images: torch.Tensor | None = None
    with torch.inference_mode():
        for start, stop in chunks:
            comfy.model_management.throw_exception_if_processing_interrupted()
            z = latents[start:stop].to(device=vae.device, dtype=vae.vae_dtype)
            # One call per chunk: the temporal layers take the clip length from the batch size. (Passing
            # timesteps= explicitly fails in ComfyUI 0.3.64: the mid attention block accepts no keywords.)
            decoded = vae.first_stage_model.decode(z)
            pixels = vae.process_output(decoded.to(vae.output_device).float())
            if images is None:
                images = torch.empty((latents.shape[0],) + tuple(pixels.shape[1:]), device=vae.output_device)
            images[start:stop] = pixels
            progress.update(1)
    return images.movedim(1, -1)


class CinemoTemporalVAELoader(io.ComfyNode):
    """Load Cinemo's ``vae_temporal_decoder`` (diffusers format) as a normal ComfyUI VAE."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoTemporalVAELoader",
            display_name="Cinemo Load Temporal VAE",
            category="Cinemo",
            description=(
                "Loads the temporal-decoder VAE Cinemo decodes with (SVD's AutoencoderKLTemporalDecoder), which "
                "ComfyUI's Load VAE cannot read in diffusers format. Lists diffusers folders (config.json + "
                "diffusion_pytorch_model.safetensors, e.g. Cinemo/vae_temporal_decoder) and single safetensors "
                "files under models/cinemo and models/vae. The VAE works with all VAE nodes; decode clips with "
                "Cinemo Temporal VAE Decode to keep the official 14-frame chunks."
            ),
            inputs=[
                io.Combo.Input(
                    "vae_name",
                    options=list(available_temporal_vaes()),
                    tooltip="A temporal VAE under models/cinemo or models/vae: a diffusers folder such as "
                    "Cinemo/vae_temporal_decoder, or a .safetensors file of its weights.",
                ),
            ],
            outputs=[io.Vae.Output(display_name="vae", tooltip="The temporal VAE, usable by any VAE node.")],
        )

    @classmethod
    def execute(cls, vae_name: str) -> io.NodeOutput:
        return io.NodeOutput(load_temporal_vae(vae_name))


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
                    default=OFFICIAL_CLIP_FRAMES,
                    min=1,
                    max=MAX_FRAMES,
                    tooltip="Frames in one clip (Cinemo: 16). The batch must be a whole number of clips; ignored "
                    "for a 5D latent, whose frame axis says it.",
                ),
                io.Int.Input(
                    "chunk_size",
                    default=OFFICIAL_DECODE_CHUNK,
                    min=1,
                    max=MAX_FRAMES,
                    tooltip="Most frames decoded together (official: 14, so 16 frames decode as 14 + 2). Larger "
                    "needs more memory.",
                ),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="The decoded frames, clips back to back.")],
        )

    @classmethod
    def execute(cls, vae: comfy.sd.VAE, samples: dict, frames_per_clip: int, chunk_size: int) -> io.NodeOutput:
        latents, per_clip = frames_as_batch(samples["samples"], frames_per_clip)
        return io.NodeOutput(decode_clips(vae, latents, per_clip, chunk_size))


NODES: list[type[io.ComfyNode]] = [CinemoTemporalVAELoader, CinemoTemporalVAEDecode]
