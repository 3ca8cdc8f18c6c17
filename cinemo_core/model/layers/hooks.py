"""Optional callbacks at the points where a host patches the UNet (ComfyUI's model patches, for one).

The UNet always calls them; the defaults change nothing (:data:`NO_HOOKS` is what it runs with unless a host
gives its own), so a host overrides only what it needs. Blocks are numbered as an SD-1.x UNet
numbers them, which Cinemo's layout follows: input block 0 is ``conv_in``, then each ResNet (+ transformer)
layer and each downsample is one input block; the mid block is the one middle block; each up layer is one
output block, the upsample belonging to the last layer of its level.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Stage = Literal["input", "middle", "output"]
AttentionKind = Literal["self", "cross"]


class UNetHooks:
    """No-op callbacks; activations are ``[(B F), C, H, W]`` (frames folded into the batch), tokens ``[(B F), N, C]``."""

    def unet_started(self, frames_shape: torch.Size) -> None:
        """Once per forward, with the shape of the frame batch entering ``conv_in`` (first frame included)."""

    def time_embedding(self, emb: torch.Tensor) -> torch.Tensor:
        """The timestep embedding ``[B, time_embed_dim]``, before the motion embedding is added to it."""
        return emb

    def block_started(self, stage: Stage, index: int) -> None:
        """Before each SD-1.x block."""

    def input_block_finished(self, h: torch.Tensor) -> torch.Tensor:
        """After an input block, before its output is kept as a skip connection."""
        return h

    def skip_kept(self, h: torch.Tensor) -> torch.Tensor:
        """After the skip is kept: what continues down the UNet."""
        return h

    def middle_block_finished(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def output_block_inputs(self, h: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Before an output block concatenates ``h`` with its skip connection."""
        return h, skip

    def transformer_started(self, shape: torch.Size) -> None:
        """Before a spatio-temporal transformer, with its input shape ``[(B F), C, H, W]``."""

    def transformer_block_started(self, index: int) -> None:
        """Before the ``index``-th transformer block of the current transformer."""

    def transformer_finished(self) -> None:
        pass

    def attention(
        self,
        kind: AttentionKind,
        module: nn.Module,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        context_repeats: int = 1,
    ) -> torch.Tensor:
        """The per-frame self-attention (``module`` is ``attn1``) or cross-attention (``attn2``, ``context`` the
        text ``[B, T, C]`` shared by ``context_repeats`` frames), from normed tokens to its output, before the
        residual. An override may project with ``module.to_q/to_k/to_v``, attend, and finish with
        ``module.to_out[0]``, or call ``module(x, context, context_repeats, value=...)``."""
        return module(x, context, context_repeats)

    def self_attention_added(self, x: torch.Tensor) -> torch.Tensor:
        """The tokens once the self-attention output has been added to them."""
        return x


#: The callbacks a UNet runs with when no host patches it: all no-ops.
NO_HOOKS = UNetHooks()
