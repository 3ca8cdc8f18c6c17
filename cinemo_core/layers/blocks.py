"""The UNet's down, mid and up stages (diffusers ``down_blocks`` / ``mid_block`` / ``up_blocks`` layout)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import CinemoUNetConfig
from . import AttentionFn, Operations
from .resnet import Downsample, ResnetBlock, Upsample
from .transformer import Transformer3D


class DownBlock(nn.Module):
    """ResNet (+ transformer) layers, then an optional stride-2 downsample; every output is a skip."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        has_attention: bool,
        add_downsample: bool,
        config: CinemoUNetConfig,
        *,
        attention: AttentionFn,
        operations: Operations,
        dtype=None,
        device=None,
    ) -> None:
        super().__init__()
        factory = {"operations": operations, "dtype": dtype, "device": device}
        self.resnets = nn.ModuleList(
            [
                ResnetBlock(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    config.time_embed_dim,
                    config.norm_num_groups,
                    config.norm_eps,
                    **factory,
                )
                for i in range(config.layers_per_block)
            ]
        )
        self.attentions = (
            nn.ModuleList(
                [
                    Transformer3D(out_channels, config, attention=attention, **factory)
                    for _ in range(config.layers_per_block)
                ]
            )
            if has_attention
            else None
        )
        self.downsamplers = (
            nn.ModuleList([Downsample(out_channels, config.downsample_padding, **factory)]) if add_downsample else None
        )

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, num_frames: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb, num_frames)
            if self.attentions is not None:
                x = self.attentions[i](x, context, num_frames)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class MidBlock(nn.Module):
    """ResNet, transformer, ResNet at the lowest resolution."""

    def __init__(
        self, channels: int, config: CinemoUNetConfig, *, attention: AttentionFn, operations: Operations, dtype=None, device=None
    ) -> None:
        super().__init__()
        factory = {"operations": operations, "dtype": dtype, "device": device}
        self.resnets = nn.ModuleList(
            [
                ResnetBlock(
                    channels,
                    channels,
                    config.time_embed_dim,
                    config.norm_num_groups,
                    config.norm_eps,
                    config.mid_block_scale_factor,
                    **factory,
                )
                for _ in range(2)
            ]
        )
        self.attentions = nn.ModuleList([Transformer3D(channels, config, attention=attention, **factory)])

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = self.resnets[0](x, temb, num_frames)
        x = self.attentions[0](x, context, num_frames)
        return self.resnets[1](x, temb, num_frames)


class UpBlock(nn.Module):
    """ResNet (+ transformer) layers that each consume one skip, then an optional upsample."""

    def __init__(
        self,
        skip_channels: int,
        prev_channels: int,
        out_channels: int,
        has_attention: bool,
        add_upsample: bool,
        config: CinemoUNetConfig,
        *,
        attention: AttentionFn,
        operations: Operations,
        dtype=None,
        device=None,
    ) -> None:
        super().__init__()
        factory = {"operations": operations, "dtype": dtype, "device": device}
        num_layers = config.layers_per_block + 1
        resnets = []
        for i in range(num_layers):
            incoming = prev_channels if i == 0 else out_channels
            skip = skip_channels if i == num_layers - 1 else out_channels
            resnets.append(
                ResnetBlock(
                    incoming + skip, out_channels, config.time_embed_dim, config.norm_num_groups, config.norm_eps, **factory
                )
            )
        self.resnets = nn.ModuleList(resnets)
        self.attentions = (
            nn.ModuleList(
                [Transformer3D(out_channels, config, attention=attention, **factory) for _ in range(num_layers)]
            )
            if has_attention
            else None
        )
        self.upsamplers = nn.ModuleList([Upsample(out_channels, **factory)]) if add_upsample else None

    def forward(
        self,
        x: torch.Tensor,
        skips: list[torch.Tensor],
        temb: torch.Tensor,
        context: torch.Tensor,
        num_frames: int,
        upsample_size: tuple[int, int] | None,
    ) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb, num_frames)
            if self.attentions is not None:
                x = self.attentions[i](x, context, num_frames)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x
