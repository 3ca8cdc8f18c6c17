"""ComfyUI's attention kernels behind the ``scaled_dot_product_attention`` signature the Cinemo UNet calls."""

from __future__ import annotations

import torch
from einops import rearrange

from ..comfy_compat import attention_kernel


class ComfyAttention:
    """``[B, heads, N, D]`` in and out; unmasked attention goes to ComfyUI's optimised kernel, the temporal
    attention's additive bias ``[1, heads, F, F]`` to the kernel ComfyUI picks for small masked inputs.

    ``options`` holds the current ``transformer_options`` so that attention overrides of other nodes apply.
    """

    def __init__(self) -> None:
        self.options: dict = {}

    def __call__(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        heads = q.shape[1]
        kernel = attention_kernel(q.device, masked=attn_mask is not None)
        if attn_mask is not None and attn_mask.ndim == 3:
            attn_mask = attn_mask.unsqueeze(0)  # ComfyUI reads a 3-D mask as [batch, F, F]
        out = kernel(q, k, v, heads, mask=attn_mask, skip_reshape=True, transformer_options=self.options)
        return rearrange(out, "b n (heads d) -> b heads n d", heads=heads)
