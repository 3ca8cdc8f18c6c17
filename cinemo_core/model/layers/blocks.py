"""The UNet's down, mid and up stages (diffusers ``down_blocks`` / ``mid_block`` / ``up_blocks`` layout)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import CinemoUNetConfig
from . import AttentionFn, Operations
from .hooks import NO_HOOKS, UNetHooks
from .resnet import Downsample, ResnetBlock, Upsample
from .transformer import Transformer3D


def keep_skip(x: torch.Tensor, skips: list[torch.Tensor], hooks: UNetHooks) -> torch.Tensor:
    """Keep an input block's output as a skip connection; returns what continues down the UNet."""
    x = hooks.input_block_finished(x)
    skips.append(x)
    return hooks.skip_kept(x)


class DownBlock(nn.Module):
    """ResNet (+ transformer) layers, then an optional stride-2 downsample; every output is a skip.

    Each layer and the downsample is one SD-1.x input block, numbered from ``first_block_id`` (for hooks).
    """

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
        first_block_id: int = 0,
    ) -> None:
        super().__init__()
        self.first_block_id = first_block_id
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
        self,
        x: torch.Tensor,
        temb: torch.Tensor,
        context: torch.Tensor,
        num_frames: int,
        hooks: UNetHooks = NO_HOOKS,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i, resnet in enumerate(self.resnets):
            hooks.block_started("input", self.first_block_id + i)
            x = resnet(x, temb, num_frames)
            if self.attentions is not None:
                x = self.attentions[i](x, context, num_frames, hooks)
            x = keep_skip(x, skips, hooks)
        if self.downsamplers is not None:
            hooks.block_started("input", self.first_block_id + len(self.resnets))
            x = keep_skip(self.downsamplers[0](x), skips, hooks)
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

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, num_frames: int, hooks: UNetHooks = NO_HOOKS
    ) -> torch.Tensor:
        hooks.block_started("middle", 0)
        x = self.resnets[0](x, temb, num_frames)
        x = self.attentions[0](x, context, num_frames, hooks)
        x = self.resnets[1](x, temb, num_frames)
        return hooks.middle_block_finished(x)


class UpBlock(nn.Module):
    """ResNet (+ transformer) layers that each consume one skip, then an optional upsample.

    Each layer is one SD-1.x output block, numbered from ``first_block_id`` (for hooks).
    """

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
        first_block_id: int = 0,
    ) -> None:
        super().__init__()
        self.first_block_id = first_block_id
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
        hooks: UNetHooks = NO_HOOKS,
    ) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            skip = skips.pop()
            hooks.block_started("output", self.first_block_id + i)
            x, skip = hooks.output_block_inputs(x, skip)
            x = resnet(torch.cat([x, skip], dim=1), temb, num_frames)
            if self.attentions is not None:
                x = self.attentions[i](x, context, num_frames, hooks)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x
