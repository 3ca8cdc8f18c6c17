"""Self-Attention Guidance (core SelfAttentionGuidance) on Cinemo, with its settings.

Core SAG records the uncond pass's self-attention in the middle block, blurs the predicted image where that
attention is high, and guides away from the model's prediction on the blurred image. Its code assumes image
latents ``[B, C, H, W]``; Cinemo samples motion residuals ``[B, C, F, H, W]`` and its UNet sees the frames
``first frame + residual`` folded into the batch. So, for a MODEL carrying SAG, its two functions are swapped
for these before sampling (same scale and blur sigma): the attention map comes from the same place (middle
block, first transformer block, ``attn1``) for each frame, and each predicted frame is blurred on its own.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from einops import rearrange

from ..comfy_compat import attention_kernel, calc_cond_batch, closure_values, defining_node, model_cond

SAG_NODE = "SelfAttentionGuidance"
#: Where core SAG records the attention (``set_model_attn1_replace(..., "middle", 0, 0)``).
SAG_BLOCK = ("middle", 0, 0)
#: SAG's constants: a key counts as attended when its attention summed over queries exceeds 1 (averaged over
#: heads); a 9-tap Gaussian; no guidance on latents of 4 or fewer cells a side (too small to pad).
THRESHOLD = 1.0
KERNEL_SIZE = 9
MIN_SIDE = 4
#: The key under which Cinemo's ``extra_conds`` puts the first-frame latent (see base_model.py).
BASE_CONTENT = "base_content"


def gaussian_blur(frames: torch.Tensor, sigma: float, kernel_size: int = KERNEL_SIZE) -> torch.Tensor:
    """Each channel of ``[N, C, H, W]`` blurred with a separable Gaussian (reflected borders); sigma 0: as is."""
    if sigma <= 0:
        return frames
    offsets = torch.arange(kernel_size, dtype=torch.float32) - (kernel_size - 1) / 2
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    taps = (taps / taps.sum()).to(device=frames.device, dtype=frames.dtype)
    channels = frames.shape[1]
    pad = kernel_size // 2
    out = F.pad(frames, (pad, pad, pad, pad), mode="reflect")
    out = F.conv2d(out, taps.view(1, 1, 1, -1).expand(channels, 1, 1, kernel_size), groups=channels)
    return F.conv2d(out, taps.view(1, 1, -1, 1).expand(channels, 1, kernel_size, 1), groups=channels)


def degrade_frames(frames: torch.Tensor, attended: torch.Tensor, sigma: float) -> torch.Tensor:
    """``frames`` ``[N, C, H, W]`` blurred where ``attended`` ``[N, h, w]`` (each frame's attended middle-block
    cells, scaled up to the frame) is True, as they are elsewhere."""
    where = F.interpolate(attended[:, None].to(frames.dtype), size=tuple(frames.shape[-2:]), mode="nearest")
    return torch.lerp(frames, gaussian_blur(frames, sigma), where)


class AttentionRecorder:
    """The ``attn1`` replacement at the middle block: ComfyUI's attention, plus, for the uncond chunk, which
    keys each frame attends to (``mask`` ``[(B F), h, w]``, F counting the first frame)."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra: dict) -> torch.Tensor:
        heads = extra["n_heads"]
        split = [rearrange(t, "b n (h d) -> b h n d", h=heads) for t in (q, k, v)]
        out = attention_kernel(q.device, masked=False)(*split, heads, skip_reshape=True)
        chunks = extra.get("cond_or_uncond") or []
        if 1 in chunks:
            per_chunk = q.shape[0] // len(chunks)
            start = per_chunk * chunks.index(1)
            query, key = (t[start : start + per_chunk].float() for t in split[:2])
            scores = torch.softmax(query @ key.transpose(-1, -2) * query.shape[-1] ** -0.5, dim=-1)
            height, width = extra["activations_shape"][-2:]
            attended = scores.mean(1).sum(1) > THRESHOLD  # [(B F), keys]
            self.mask = rearrange(attended, "b (h w) -> b h w", h=height, w=width)
        return out


def guidance(recorder: AttentionRecorder, scale: float, sigma: float) -> Callable[[dict], torch.Tensor]:
    """SAG's post-cfg step for Cinemo's residual latents."""

    def cinemo_self_attention_guidance(args: dict) -> torch.Tensor:
        denoised = args["denoised"]
        mask, recorder.mask = recorder.mask, None
        uncond_x0, x = args["uncond_denoised"], args["input"]
        if mask is None or uncond_x0 is None or min(denoised.shape[-2:]) <= MIN_SIDE:
            return denoised
        videos, _, residual_frames = uncond_x0.shape[:3]
        if mask.shape[0] != videos * (residual_frames + 1):
            raise ValueError(
                f"Self-Attention Guidance on Cinemo needs each video's frames in one model call, but the "
                f"middle block saw {mask.shape[0]} frames for {videos} video(s) of {residual_frames + 1}: it "
                "cannot run with context windows. Remove one of the two."
            )
        base = model_cond(args["uncond"], BASE_CONTENT)
        if base is None:
            raise ValueError("Self-Attention Guidance: the negative conditioning carries no Cinemo first frame.")
        base = base.to(uncond_x0).expand(videos, -1, -1, -1, -1) if base.shape[0] == 1 else base.to(uncond_x0)
        frames = rearrange(base + uncond_x0, "b c f h w -> (b f) c h w")
        attended = rearrange(mask, "(b f) h w -> b f h w", b=videos)[:, 1:].flatten(0, 1)  # frame 0 is clean
        blurred = degrade_frames(frames, attended, sigma)
        degraded = rearrange(blurred, "(b f) c h w -> b c f h w", b=videos) - base
        (prediction,) = calc_cond_batch(args["model"], [args["uncond"]], degraded + x - uncond_x0, args["sigma"],
                                        args["model_options"])
        return denoised + (degraded - prediction) * scale

    return cinemo_self_attention_guidance


def _is_sag(function: Any) -> bool:
    return defining_node(function) == SAG_NODE


def adapt_self_attention_guidance(model_options: dict) -> dict | None:
    """A copy of ``model_options`` with core SAG's post-cfg functions and attention recorder replaced by
    Cinemo's (same settings), or None when SAG is not there.

    Raises:
        ValueError: another node has replaced the attention SAG records.
    """
    post_cfg = list(model_options.get("sampler_post_cfg_function", ()))
    if not any(_is_sag(function) for function in post_cfg):
        return None
    transformer_options = dict(model_options.get("transformer_options", {}))
    replacements = dict(transformer_options.get("patches_replace", {}))
    attn1 = dict(replacements.get("attn1", {}))
    if not _is_sag(attn1.get(SAG_BLOCK)):
        raise ValueError(
            "Self-Attention Guidance records the middle block's self-attention, but another node replaced that "
            f"attention after it ({getattr(attn1.get(SAG_BLOCK), '__qualname__', 'nothing')}); put "
            "SelfAttentionGuidance last on the MODEL's path."
        )
    recorder = AttentionRecorder()
    attn1[SAG_BLOCK] = recorder
    replacements["attn1"] = attn1
    transformer_options["patches_replace"] = replacements
    adapted = dict(model_options, transformer_options=transformer_options)
    adapted["sampler_post_cfg_function"] = [
        guidance(recorder, float(settings["scale"]), float(settings["blur_sigma"]))
        if _is_sag(function) and {"scale", "blur_sigma"} <= (settings := closure_values(function)).keys()
        else function
        for function in post_cfg
    ]
    if any(_is_sag(function) for function in adapted["sampler_post_cfg_function"]):
        raise ValueError("Self-Attention Guidance: its settings could not be read from this ComfyUI version.")
    return adapted
