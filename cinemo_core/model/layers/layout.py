"""The memory layout of the ``[(B F), C, H, W]`` activations between layers.

On the CPU, bfloat16 and float16 convolutions run up to 2x (3x3) and 4x (1x1) faster on channels-last
activations, and channels-last makes the frame-spanning GroupNorm, the transformer's token view and the
skip concatenations free of layout copies (``docs/speed-and-memory.md``). float32 convolutions on the CPU
are as fast or faster on the default layout, and GPUs are left as they were.
"""

from __future__ import annotations

import torch

REDUCED_PRECISION = (torch.bfloat16, torch.float16)


def activation_format(device: torch.device, dtype: torch.dtype, channels_last: bool | None = None) -> torch.memory_format:
    """The layout for activations on ``device`` in ``dtype``; ``channels_last`` None decides as above."""
    if channels_last is None:
        channels_last = device.type == "cpu" and dtype in REDUCED_PRECISION
    return torch.channels_last if channels_last else torch.contiguous_format


def layout_of(x: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` when a 4-D ``x`` is laid out channels-last (and not also plain contiguous)."""
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
