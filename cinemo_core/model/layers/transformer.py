"""The spatio-temporal transformer: per-frame self- and cross-attention, then attention across frames."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ..config import CinemoUNetConfig
from . import AttentionFn, Operations
from .attention import Attention, TemporalAttention
from .hooks import NO_HOOKS, UNetHooks
from .layout import layout_of


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, *, operations: Operations, dtype=None, device=None) -> None:
        super().__init__()
        self.proj = operations.Linear(dim_in, dim_out * 2, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * nn.functional.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward with 4x expansion; ``net.1`` is the (inference-time no-op) dropout slot.

    Tokens go through in chunks of ``chunk_tokens`` rows: the 8x-wide GEGLU projection of a whole clip
    would otherwise be the largest tensor of the model (0.8 GB in fp16 for 2 x 16 frames at 320x512).
    Each row is independent, so chunking changes no result.
    """

    chunk_tokens = 4096

    def __init__(self, dim: int, *, operations: Operations, dtype=None, device=None) -> None:
        super().__init__()
        inner = dim * 4
        self.net = nn.ModuleList(
            [
                GEGLU(dim, inner, operations=operations, dtype=dtype, device=device),
                nn.Identity(),
                operations.Linear(inner, dim, dtype=dtype, device=device),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[0] <= self.chunk_tokens:
            return self._rows(rows).view(x.shape)
        out = torch.empty_like(rows)
        for start in range(0, rows.shape[0], self.chunk_tokens):
            out[start : start + self.chunk_tokens] = self._rows(rows[start : start + self.chunk_tokens])
        return out.view(x.shape)

    def _rows(self, rows: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            rows = layer(rows)
        return rows


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention, temporal attention, feed-forward; each pre-normed and residual."""

    def __init__(
        self, dim: int, config: CinemoUNetConfig, *, attention: AttentionFn, operations: Operations, dtype=None, device=None
    ) -> None:
        super().__init__()
        factory = {"dtype": dtype, "device": device}
        layers = {"attention": attention, "operations": operations, **factory}
        heads = config.num_attention_heads
        self.norm1 = operations.LayerNorm(dim, **factory)
        self.attn1 = Attention(dim, heads, **layers)
        self.norm2 = operations.LayerNorm(dim, **factory)
        self.attn2 = Attention(dim, heads, config.cross_attention_dim, **layers)
        self.norm_temp = operations.LayerNorm(dim, **factory)
        self.attn_temp = TemporalAttention(
            dim,
            heads,
            config.rotary_dim,
            config.rotary_theta,
            config.relative_position_buckets,
            config.relative_position_max_distance,
            **layers,
        )
        self.norm3 = operations.LayerNorm(dim, **factory)
        self.ff = FeedForward(dim, operations=operations, **factory)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, num_frames: int, hooks: UNetHooks = NO_HOOKS
    ) -> torch.Tensor:
        """``x``: tokens ``[(B F), N, C]``; ``context``: text ``[B, T, C_text]``, shared by a clip's frames."""
        x = hooks.attention("self", self.attn1, self.norm1(x)) + x
        x = hooks.self_attention_added(x)
        x = hooks.attention("cross", self.attn2, self.norm2(x), context, num_frames) + x
        per_location = rearrange(x, "(b f) n c -> (b n) f c", f=num_frames)
        per_location = self.attn_temp(self.norm_temp(per_location)) + per_location
        x = rearrange(per_location, "(b n) f c -> (b f) n c", n=x.shape[1])
        return self.ff(self.norm3(x)) + x


class Transformer3D(nn.Module):
    """Per-frame GroupNorm and 1x1 projections around a stack of ``TransformerBlock``s, plus the residual."""

    def __init__(
        self, channels: int, config: CinemoUNetConfig, *, attention: AttentionFn, operations: Operations, dtype=None, device=None
    ) -> None:
        super().__init__()
        factory = {"dtype": dtype, "device": device}
        self.norm = operations.GroupNorm(config.norm_num_groups, channels, eps=1e-6, affine=True, **factory)
        self.proj_in = operations.Conv2d(channels, channels, 1, **factory)
        self.transformer_blocks = nn.ModuleList(
            [
                TransformerBlock(channels, config, attention=attention, operations=operations, **factory)
                for _ in range(config.transformer_layers_per_block)
            ]
        )
        self.proj_out = operations.Conv2d(channels, channels, 1, **factory)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, num_frames: int, hooks: UNetHooks = NO_HOOKS
    ) -> torch.Tensor:
        hooks.transformer_started(x.shape)
        h = self.proj_in(self.norm(x))
        tokens = rearrange(h, "bf c h w -> bf (h w) c")
        for i, block in enumerate(self.transformer_blocks):
            hooks.transformer_block_started(i)
            tokens = block(tokens, context, num_frames, hooks)
        # back in the input's layout (the tokens are a channels-last view): a channels-last tensor in a
        # contiguous UNet makes every following convolution re-layout its weights, and the reverse
        h = rearrange(tokens, "bf (h w) c -> bf c h w", h=x.shape[2]).contiguous(memory_format=layout_of(x))
        out = self.proj_out(h) + x
        hooks.transformer_finished()
        return out
