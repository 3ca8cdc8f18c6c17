"""Spatial/cross attention and Cinemo's temporal attention (rotary + T5-style relative position bias)."""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from . import AttentionFn, Operations


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[B, N, heads * D] -> [B, heads, N, D]`` (a view)."""
    return rearrange(x, "b n (heads d) -> b heads n d", heads=heads)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, heads, N, D] -> [B, N, heads * D]``."""
    return rearrange(x, "b heads n d -> b n (heads d)")


class Attention(nn.Module):
    """Multi-head attention with diffusers key names (``to_q``, ``to_k``, ``to_v``, ``to_out.0``).

    Self-attention when ``context_dim`` is None. For cross-attention the context is given once per clip
    (``[B, T, context_dim]``) and shared by the clip's ``context_repeats`` frames, so keys and values are
    projected once per clip rather than once per frame.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        context_dim: int | None = None,
        *,
        attention: AttentionFn,
        operations: Operations,
        dtype=None,
        device=None,
    ) -> None:
        super().__init__()
        factory = {"dtype": dtype, "device": device}
        self.heads = heads
        self.attention = attention
        kv_dim = dim if context_dim is None else context_dim
        self.to_q = operations.Linear(dim, dim, bias=False, **factory)
        self.to_k = operations.Linear(kv_dim, dim, bias=False, **factory)
        self.to_v = operations.Linear(kv_dim, dim, bias=False, **factory)
        self.to_out = nn.ModuleList([operations.Linear(dim, dim, **factory)])

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        context_repeats: int = 1,
        value: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``value``: what the values are projected from, when not from the keys' source (host patches)."""
        source = x if context is None else context
        queries = self.to_q(x)
        keys = self.to_k(source)
        values = self.to_v(source if value is None else value)
        if context_repeats == 1 and keys.shape[0] != queries.shape[0]:
            # a host patch tiled the queries only (HyperTile): SD 1.x attention views the keys and values at the
            # queries' batch, token-major, and patches written for it rely on that
            keys = keys.reshape(queries.shape[0], -1, keys.shape[-1])
            values = values.reshape(queries.shape[0], -1, values.shape[-1])
        q = split_heads(queries, self.heads)
        k = split_heads(keys, self.heads)
        v = split_heads(values, self.heads)
        if context_repeats > 1:
            k = k.repeat_interleave(context_repeats, dim=0)
            v = v.repeat_interleave(context_repeats, dim=0)
        return self.to_out[0](merge_heads(self.attention(q, k, v)))


def rotary_frequencies(dim: int, theta: float = 10000.0, device=None) -> torch.Tensor:
    """The fixed rotary frequencies ``theta ** (-2i / dim)`` for ``i < dim / 2``, float32."""
    exponents = torch.arange(0, dim, 2, device=device)[: dim // 2].float() / dim
    return 1.0 / (theta**exponents)


class RotaryEmbedding(nn.Module):
    """Rotates the first ``dim`` channels of each head by frame position (interleaved pairs).

    ``freqs`` is kept as a buffer only because the released checkpoint stores it; the rotation is always
    computed from freshly derived float32 frequencies, whatever the model's dtype.
    """

    def __init__(self, dim: int, theta: float = 10000.0, device=None) -> None:
        super().__init__()
        self.dim = dim
        self.theta = theta
        self.register_buffer("freqs", rotary_frequencies(dim, theta, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x * cos + swap_pairs(x) * signed_sin over the whole head (cos 1, sin 0 past ``dim``): one gather
        # and three elementwise passes, each rounding as the pairwise formula does, so the result is the same
        cos, signed_sin, swapped = self.tables(x.shape[-2], x.shape[-1], x.device, x.dtype)
        return x * cos + x[..., swapped] * signed_sin

    def tables(
        self, positions: int, head_dim: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``cos`` and ``signed_sin`` ``[positions, head_dim]`` in ``dtype``, and the channel index that swaps
        each rotated pair (``(a, b) -> (b, a)``) and keeps the other channels."""
        frames = torch.arange(positions, device=device, dtype=torch.float32)
        angles = (frames[:, None] * rotary_frequencies(self.dim, self.theta, device=device)[None, :]).repeat_interleave(2, dim=-1)
        passed = head_dim - self.dim
        sign = torch.tensor([-1.0, 1.0], device=device).repeat(self.dim // 2)
        cos = nn.functional.pad(angles.cos(), (0, passed), value=1.0)
        signed_sin = nn.functional.pad(angles.sin() * sign, (0, passed))
        swapped = torch.arange(head_dim, device=device)
        swapped[: self.dim] = swapped[: self.dim].view(-1, 2).flip(-1).flatten()
        return cos.to(dtype), signed_sin.to(dtype), swapped


def relative_position_buckets(num_frames: int, num_buckets: int, max_distance: int, device=None) -> torch.Tensor:
    """T5-style buckets ``[query, key]`` of the frame offset; keys after the query use the upper half."""
    positions = torch.arange(num_frames, device=device)
    offset = positions[:, None] - positions[None, :]
    half = num_buckets // 2
    max_exact = half // 2
    distance = offset.abs()
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    far = (max_exact + (log_ratio * (half - max_exact)).long()).clamp(max=half - 1)
    return (offset < 0).long() * half + torch.where(distance < max_exact, distance, far)


class RelativePositionBias(nn.Module):
    """A learned additive attention bias per head and bucket of frame offset."""

    def __init__(
        self, heads: int, num_buckets: int, max_distance: int, *, operations: Operations, dtype=None, device=None
    ) -> None:
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.relative_attention_bias = operations.Embedding(num_buckets, heads, dtype=dtype, device=device)

    def forward(self, num_frames: int, device: torch.device) -> torch.Tensor:
        buckets = relative_position_buckets(num_frames, self.num_buckets, self.max_distance, device=device)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)


class TemporalAttention(Attention):
    """Self-attention across the frames of each spatial location: ``[(B N), F, C] -> [(B N), F, C]``."""

    def __init__(
        self,
        dim: int,
        heads: int,
        rotary_dim: int,
        rotary_theta: float,
        num_buckets: int,
        max_distance: int,
        *,
        attention: AttentionFn,
        operations: Operations,
        dtype=None,
        device=None,
    ) -> None:
        super().__init__(dim, heads, attention=attention, operations=operations, dtype=dtype, device=device)
        self.time_rel_pos_bias = RelativePositionBias(
            heads, num_buckets, max_distance, operations=operations, dtype=dtype, device=device
        )
        self.rotary_emb = RotaryEmbedding(rotary_dim, rotary_theta, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.rotary_emb(split_heads(self.to_q(x), self.heads))
        k = self.rotary_emb(split_heads(self.to_k(x), self.heads))
        v = split_heads(self.to_v(x), self.heads)
        # [1, heads, F, F]: a 3-D mask sends CPU SDPA to its unfused path (6x slower in bf16)
        bias = self.time_rel_pos_bias(x.shape[1], x.device).to(q.dtype).unsqueeze(0)
        return self.to_out[0](merge_heads(self.attention(q, k, v, attn_mask=bias)))
