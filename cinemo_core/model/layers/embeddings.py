"""Sinusoidal embeddings of timesteps and motion ids, and the MLP that lifts them."""

from __future__ import annotations

import math

import torch
from torch import nn

from . import Operations


def sinusoidal_embedding(
    values: torch.Tensor, dim: int, flip_sin_to_cos: bool = True, shift: float = 0.0, max_period: float = 10000.0
) -> torch.Tensor:
    """Embed a 1-D tensor of (possibly fractional) positions as ``[N, dim]`` float32, like diffusers ``Timesteps``."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device)
    exponent = exponent / (half - shift)
    angles = values[:, None].float() * torch.exp(exponent)[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if flip_sin_to_cos:
        embedding = torch.cat([embedding[:, half:], embedding[:, :half]], dim=-1)
    if dim % 2:
        embedding = nn.functional.pad(embedding, (0, 1))
    return embedding


class EmbeddingMLP(nn.Module):
    """``linear_1 -> SiLU -> linear_2`` (diffusers ``TimestepEmbedding`` key names)."""

    def __init__(self, in_dim: int, out_dim: int, *, operations: Operations, dtype=None, device=None) -> None:
        super().__init__()
        self.linear_1 = operations.Linear(in_dim, out_dim, dtype=dtype, device=device)
        self.linear_2 = operations.Linear(out_dim, out_dim, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(nn.functional.silu(self.linear_1(x)))
