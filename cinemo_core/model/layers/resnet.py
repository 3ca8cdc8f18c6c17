"""ResNet blocks and resamplers with per-frame convolutions.

The ResNet GroupNorms normalise over all frames of a clip together (statistics span F x H x W), as in
LaVie and the released Cinemo weights; the convolutions see one frame at a time.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from . import Operations


def group_norm_over_frames(norm: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Apply ``norm`` to ``[(B F), C, H, W]`` with statistics shared by the F frames of each clip."""
    normed = norm(rearrange(x, "(b f) c h w -> b c f h w", f=num_frames))
    return rearrange(normed, "b c f h w -> (b f) c h w")


class ResnetBlock(nn.Module):
    """GroupNorm -> SiLU -> conv -> + time embedding -> GroupNorm -> SiLU -> conv, plus the shortcut."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        groups: int,
        eps: float,
        output_scale_factor: float = 1.0,
        *,
        operations: Operations,
        dtype=None,
        device=None,
    ) -> None:
        super().__init__()
        factory = {"dtype": dtype, "device": device}
        self.output_scale_factor = output_scale_factor
        self.norm1 = operations.GroupNorm(groups, in_channels, eps=eps, affine=True, **factory)
        self.conv1 = operations.Conv2d(in_channels, out_channels, 3, padding=1, **factory)
        self.time_emb_proj = operations.Linear(temb_channels, out_channels, **factory)
        self.norm2 = operations.GroupNorm(groups, out_channels, eps=eps, affine=True, **factory)
        self.conv2 = operations.Conv2d(out_channels, out_channels, 3, padding=1, **factory)
        self.conv_shortcut = (
            operations.Conv2d(in_channels, out_channels, 1, **factory) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor, num_frames: int) -> torch.Tensor:
        h = nn.functional.silu(group_norm_over_frames(self.norm1, x, num_frames))
        h = self.conv1(h)
        time = self.time_emb_proj(nn.functional.silu(temb))
        h = (h.unflatten(0, (-1, num_frames)) + time[:, None, :, None, None]).flatten(0, 1)
        h = nn.functional.silu(group_norm_over_frames(self.norm2, h, num_frames))
        h = self.conv2(h)
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        out = shortcut + h
        if self.output_scale_factor != 1.0:
            out = out / self.output_scale_factor
        return out


class Downsample(nn.Module):
    """A stride-2 3x3 convolution per frame."""

    def __init__(self, channels: int, padding: int, *, operations: Operations, dtype=None, device=None) -> None:
        super().__init__()
        self.conv = operations.Conv2d(channels, channels, 3, stride=2, padding=padding, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour resize to the size of the matching skip connection, then a 3x3 convolution."""

    def __init__(self, channels: int, *, operations: Operations, dtype=None, device=None) -> None:
        super().__init__()
        self.conv = operations.Conv2d(channels, channels, 3, padding=1, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        # nearest upsampling of bfloat16 is not implemented on every backend and is exact in float32
        upcast = x.dtype == torch.bfloat16
        resized = nn.functional.interpolate(x.float() if upcast else x, size=size, mode="nearest")
        return self.conv(resized.to(x.dtype) if upcast else resized)
