"""The Cinemo 3D UNet: predicts the noise in a clip's motion residual, given its first frame."""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from torch import nn

from .config import CROSS_ATTN_DOWN, CROSS_ATTN_UP, CinemoUNetConfig
from .layers import AttentionFn, Operations
from .layers.blocks import DownBlock, MidBlock, UpBlock, keep_skip
from .layers.embeddings import EmbeddingMLP, sinusoidal_embedding
from .layers.hooks import NO_HOOKS, UNetHooks
from .layers.layout import activation_format
from .layers.resnet import group_norm_over_frames


def _per_sample(values: torch.Tensor | float | int, batch: int, device: torch.device) -> torch.Tensor:
    """A scalar, ``[1]`` or ``[B]`` value as a ``[B]`` tensor."""
    tensor = torch.as_tensor(values, device=device).flatten()
    if tensor.numel() == 1:
        return tensor.expand(batch)
    if tensor.numel() != batch:
        raise ValueError(f"Expected 1 or {batch} values (one per sample), got {tensor.numel()}.")
    return tensor


class CinemoUNet3D(nn.Module):
    """LaVie-style UNet over ``[B, C, F, h, w]`` latents with a motion-intensity embedding.

    The state-dict keys are those of the released checkpoint. ``operations`` supplies the layer classes
    (``torch.nn`` or ComfyUI's ``comfy.ops``) and ``attention`` the attention kernel, with the signature of
    ``torch.nn.functional.scaled_dot_product_attention``. ``channels_last`` picks the activations' layout
    (None: channels-last for bfloat16 and float16 on the CPU, see ``layers.layout``); it changes no result
    beyond floating-point rounding.
    """

    channels_last: bool | None = None

    def __init__(
        self,
        config: CinemoUNetConfig | None = None,
        *,
        operations: Operations = nn,
        attention: AttentionFn = nn.functional.scaled_dot_product_attention,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        config = config or CinemoUNetConfig.official()
        self.config = config
        factory = {"dtype": dtype, "device": device}
        layers = {"attention": attention, "operations": operations, **factory}
        channels = config.block_out_channels

        self.conv_in = operations.Conv2d(config.in_channels, channels[0], 3, padding=1, **factory)
        self.time_embedding = EmbeddingMLP(channels[0], config.time_embed_dim, operations=operations, **factory)
        self.add_embedding = EmbeddingMLP(
            config.addition_time_embed_dim, config.time_embed_dim, operations=operations, **factory
        )

        self.down_blocks = nn.ModuleList()
        input_block_id = 1  # SD-1.x numbering (for hooks): input block 0 is conv_in
        for i, block_type in enumerate(config.down_block_types):
            add_downsample = i < len(channels) - 1
            self.down_blocks.append(
                DownBlock(
                    channels[max(i - 1, 0)],
                    channels[i],
                    has_attention=block_type == CROSS_ATTN_DOWN,
                    add_downsample=add_downsample,
                    config=config,
                    first_block_id=input_block_id,
                    **layers,
                )
            )
            input_block_id += config.layers_per_block + int(add_downsample)
        self.mid_block = MidBlock(channels[-1], config, **layers)

        reversed_channels = list(reversed(channels))
        self.up_blocks = nn.ModuleList()
        for i, block_type in enumerate(config.up_block_types):
            self.up_blocks.append(
                UpBlock(
                    skip_channels=reversed_channels[min(i + 1, len(channels) - 1)],
                    prev_channels=reversed_channels[max(i - 1, 0)],
                    out_channels=reversed_channels[i],
                    has_attention=block_type == CROSS_ATTN_UP,
                    add_upsample=i < len(channels) - 1,
                    config=config,
                    first_block_id=i * (config.layers_per_block + 1),
                    **layers,
                )
            )

        self.conv_norm_out = operations.GroupNorm(config.norm_num_groups, channels[0], eps=config.norm_eps, **factory)
        self.conv_out = operations.Conv2d(channels[0], config.out_channels, 3, padding=1, **factory)

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor | float | int,
        context: torch.Tensor | None = None,
        base_content: torch.Tensor | None = None,
        motion_ids: torch.Tensor | float | int | None = None,
        hooks: UNetHooks = NO_HOOKS,
        **unused: Any,
    ) -> torch.Tensor:
        """Predict epsilon for the noisy residual.

        Args:
            x: noisy motion residual ``[B, C, F, h, w]``; its dtype is the compute dtype.
            timesteps: diffusion timestep(s), a scalar or ``[B]`` (int or float).
            context: text embeddings ``[B, T, cross_attention_dim]``.
            base_content: the first-frame latent ``[B, C, 1, h, w]``, already scaled by 0.18215.
            motion_ids: raw motion ids (see ``cinemo_core.sampling.motion``), a scalar or ``[B]``.
            hooks: callbacks at the points where hosts patch the UNet (see ``layers.hooks``); the default
                changes nothing.
            unused: extra keyword arguments a host passes (ComfyUI's ``transformer_options``, ...), ignored.

        Returns:
            epsilon for the residual, ``[B, C, F, h, w]`` in ``x.dtype``.
        """
        if x.ndim != 5:
            raise ValueError(f"x must be a 5-D residual latent [B, C, F, h, w]; got shape {tuple(x.shape)}.")
        if context is None or base_content is None or motion_ids is None:
            raise ValueError("The Cinemo UNet needs context, base_content and motion_ids.")
        batch, channels, residual_frames, height, width = x.shape
        if base_content.shape != (batch, channels, 1, height, width):
            raise ValueError(
                f"base_content must have shape {(batch, channels, 1, height, width)} to match x; "
                f"got {tuple(base_content.shape)}."
            )
        dtype = x.dtype
        config = self.config
        num_frames = residual_frames + 1
        base_content = base_content.to(dtype)
        clip = torch.cat([base_content, base_content + x], dim=2)
        frames = rearrange(clip, "b c f h w -> (b f) c h w").contiguous(
            memory_format=activation_format(x.device, dtype, self.channels_last)
        )
        hooks.unet_started(frames.shape)

        timesteps = _per_sample(timesteps, batch, x.device)
        emb = self.time_embedding(
            sinusoidal_embedding(timesteps, config.block_out_channels[0], config.flip_sin_to_cos, config.freq_shift).to(
                dtype
            )
        )
        emb = hooks.time_embedding(emb)
        motion_ids = _per_sample(motion_ids, batch, x.device)
        emb = emb + self.add_embedding(
            sinusoidal_embedding(motion_ids, config.addition_time_embed_dim, config.flip_sin_to_cos, config.freq_shift).to(
                dtype
            )
        )
        context = context.to(dtype)

        hooks.block_started("input", 0)
        skips: list[torch.Tensor] = []
        h = keep_skip(self.conv_in(frames), skips, hooks)
        for block in self.down_blocks:
            h, block_skips = block(h, emb, context, num_frames, hooks)
            skips.extend(block_skips)
        h = self.mid_block(h, emb, context, num_frames, hooks)
        for block in self.up_blocks:
            block_skips = skips[-len(block.resnets) :]
            del skips[-len(block.resnets) :]
            upsample_size = tuple(skips[-1].shape[-2:]) if skips else None
            h = block(h, block_skips, emb, context, num_frames, upsample_size, hooks)

        h = nn.functional.silu(group_norm_over_frames(self.conv_norm_out, h, num_frames))
        # the first frame is the clean conditioning frame: only the residual frames are predicted
        h = rearrange(rearrange(h, "(b f) c h w -> b f c h w", b=batch)[:, 1:], "b f c h w -> (b f) c h w")
        out = self.conv_out(h)
        return rearrange(out, "(b f) c h w -> b c f h w", b=batch).contiguous()
