"""Building blocks of the Cinemo 3D UNet.

Conventions shared by every layer here:
- Video activations travel with the frames folded into the batch, ``[(B F), C, H, W]``, because almost
  every operation (convolutions, spatial attention, the transformer's input norm) works per frame. A
  layer that needs the frame axis (ResNet GroupNorms, temporal attention) takes ``num_frames``.
- Layers are built from an ``operations`` namespace (``torch.nn`` by default; ComfyUI passes
  ``comfy.ops``) and take ``dtype``/``device`` like torch layers, so weights can be created on ``meta``.
- Attention goes through one injectable function with the signature of
  ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=None)`` on ``[B, heads, N, D]``.
- A host patches the UNet through an optional ``hooks.UNetHooks`` passed down the forward (None: plain run).
"""

from typing import Any, Callable

import torch

AttentionFn = Callable[..., torch.Tensor]
Operations = Any  # a namespace with Linear, Conv2d, GroupNorm, LayerNorm and Embedding, like torch.nn
