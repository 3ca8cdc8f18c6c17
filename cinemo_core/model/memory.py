"""How much memory one denoising step of the Cinemo UNet needs, measured rather than guessed.

A host (ComfyUI's ``memory_required``) must know the activation memory of a step to decide whether
cond and uncond fit in one batch and how much of the model may stay on the GPU. The cost depends on
the architecture, the frame count, the latent size and the attention kernel, so instead of a fitted
formula the step is *traced*: the UNet is built on PyTorch's ``meta`` device (no memory, no compute)
and run once under :class:`PeakTracker`, which adds up the bytes of every tensor storage alive at
each operation and keeps the maximum. On a real device the same forward reaches exactly this
tensor-level peak (checked on the CPU in ``tests/test_memory.py``); allocator slack and kernel
workspaces come on top and are the host's business (ComfyUI adds its own headroom).

Results are cached per configuration and shape, so a sampler may ask every step.
"""

from __future__ import annotations

import math
import weakref
from functools import lru_cache
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..settings import CLIP_TOKENS
from .config import CinemoUNetConfig
from .unet import CinemoUNet3D

#: Queries per chunk when attention is not memory-efficient: ComfyUI's sub-quadratic and split kernels
#: materialise float32 scores for a block of queries against all keys (they pick 256..4096 rows from the
#: free memory; 1024 is a middle value).
QUADRATIC_QUERY_CHUNK = 1024
#: Text tokens of one CLIP chunk.
DEFAULT_CONTEXT_TOKENS = CLIP_TOKENS


class PeakTracker(TorchDispatchMode):
    """Tracks the bytes of live tensor storages across every ATen call made inside the mode.

    ``peak`` is the largest total seen. Tensors created before entering the mode (weights, inputs) are
    only counted once an operation inside returns them, so create the inputs inside when they should count.
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in tree_flatten(out)[0]:
            if isinstance(item, torch.Tensor):
                self._count(item)
        return out

    def _count(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata  # unique per storage, also on the meta device (where data_ptr() is 0)
        if key in self._live:
            return
        size = storage.nbytes()
        self._live[key] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        size = self._live.pop(key, None)
        if size is not None:
            self.current -= size


def chunked_quadratic_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Plain softmax attention over blocks of ``QUADRATIC_QUERY_CHUNK`` queries with float32 scores.

    Numerically ordinary attention; it exists to trace the memory of kernels that are not memory-efficient.
    """
    scale = q.shape[-1] ** -0.5
    blocks = []
    for start in range(0, q.shape[-2], QUADRATIC_QUERY_CHUNK):
        scores = (q[..., start : start + QUADRATIC_QUERY_CHUNK, :].float() @ k.float().transpose(-1, -2)) * scale
        if attn_mask is not None:
            scores = scores + attn_mask[..., start : start + QUADRATIC_QUERY_CHUNK, :].float()
        blocks.append(scores.softmax(dim=-1).to(v.dtype) @ v)
    return torch.cat(blocks, dim=-2)


def step_memory_bytes(
    config: CinemoUNetConfig,
    batch: int,
    residual_frames: int,
    height: int,
    width: int,
    dtype: torch.dtype,
    *,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    memory_efficient_attention: bool = True,
) -> int:
    """Peak activation bytes of one UNet forward on ``[batch, C, residual_frames, height, width]`` latents.

    Args:
        config: the UNet architecture.
        batch: samples in the forward (cond and uncond batched together count twice).
        residual_frames: residual frames per sample (the UNet adds the first frame internally).
        height, width: latent size.
        dtype: the compute dtype (activations); weights are not included.
        context_tokens: text tokens per sample (77 per CLIP chunk).
        memory_efficient_attention: False when the attention kernel materialises score blocks (ComfyUI's
            sub-quadratic or split attention); those blocks are then traced too.
    """
    for name, value in (("batch", batch), ("residual_frames", residual_frames), ("height", height),
                        ("width", width), ("context_tokens", context_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return _traced_peak(
        config, batch, residual_frames, height, width, dtype, context_tokens, memory_efficient_attention
    )


@lru_cache(maxsize=64)
def _traced_peak(
    config: CinemoUNetConfig,
    batch: int,
    residual_frames: int,
    height: int,
    width: int,
    dtype: torch.dtype,
    context_tokens: int,
    memory_efficient_attention: bool,
) -> int:
    attention = torch.nn.functional.scaled_dot_product_attention if memory_efficient_attention \
        else chunked_quadratic_attention
    meta = torch.device("meta")
    model = CinemoUNet3D(config, attention=attention, dtype=dtype, device=meta).eval()
    tracker = PeakTracker()
    with torch.inference_mode(), tracker:
        x = torch.empty(batch, config.in_channels, residual_frames, height, width, dtype=dtype, device=meta)
        base = torch.empty(batch, config.in_channels, 1, height, width, dtype=dtype, device=meta)
        context = torch.empty(batch, context_tokens, config.cross_attention_dim, dtype=dtype, device=meta)
        timesteps = torch.empty(batch, dtype=torch.float32, device=meta)
        motion_ids = torch.empty(batch, dtype=dtype, device=meta)
        model(x, timesteps, context, base_content=base, motion_ids=motion_ids)
    return int(math.ceil(tracker.peak))


#: Frames per context window to suggest when a clip does not fit (the trained length, the first included).
SUGGESTED_WINDOW_FRAMES = 16
_GIB = 1024**3


class StepTooLargeError(ValueError):
    """One denoising step needs more memory than the device has; the message says what to change."""


def check_step_fits(
    need: Callable[[int, int, int], int],
    residual_frames: int,
    height: int,
    width: int,
    budget: int,
    *,
    videos: int = 1,
    window_frames: int | None = None,
    device: str = "the device",
) -> None:
    """Refuse, before the first step, a step whose activations exceed what ``device`` has at all.

    Args:
        need: bytes of one pass ``need(residual_frames, height, width)`` (e.g. :func:`step_memory_bytes` for
            the host's batch and dtype).
        residual_frames, height, width: the sampled latent's frames and size.
        budget: bytes the device can give to activations in the best case (all weights offloaded).
        videos: videos in the batch (for the message).
        window_frames: residual frames per context window, when sampling in windows.
        device: the device's name, for the message.

    Raises:
        StepTooLargeError: naming the estimate, the budget, and the estimates of smaller settings.
    """
    frames = min(window_frames, residual_frames) if window_frames else residual_frames
    required = need(frames, height, width)
    if required <= budget:
        return
    clip = f"{videos} video{'s' if videos != 1 else ''} x {residual_frames + 1} frames at {width * 8}x{height * 8} pixels"
    if window_frames:
        clip += f" in windows of {frames + 1} frames"
    options = []
    window = SUGGESTED_WINDOW_FRAMES - 1
    if frames > window:
        options.append(
            f"Cinemo Context Windows with {SUGGESTED_WINDOW_FRAMES}-frame windows (about "
            f"{need(window, height, width) / _GIB:.1f} GiB a step)"
        )
    half = (max(1, height // 2), max(1, width // 2))
    options.append(f"half the width and height ({half[1] * 8}x{half[0] * 8}: about "
                   f"{need(frames, *half) / _GIB:.1f} GiB)")
    options.append("fewer frames" if not window_frames else "shorter windows")
    raise StepTooLargeError(
        f"This run cannot fit on {device}: one denoising step needs about {required / _GIB:.1f} GiB for the UNet's "
        f"activations ({clip}), but {device} has {budget / _GIB:.1f} GiB for them at most. Change one of: "
        f"{'; '.join(options)}. fp8 weights (Cinemo Model Loader's weight_dtype) save the weights' memory only, "
        "not this."
    )
