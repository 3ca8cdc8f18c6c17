"""The Cinemo MODEL's precision on a ComfyUI CPU: bfloat16 where the CPU computes it natively.

ComfyUI (0.3.64) computes every model in float32 on the CPU (``should_use_bf16`` is False for a CPU device).
On a CPU with AVX512-BF16 or AMX, bfloat16 is about 3x faster, so the Cinemo MODEL takes the same decision
as the standalone ``--dtype auto`` (``cinemo_core.model.devices.cpu_compute_dtype``). weight_dtype fp32
keeps float32; GPUs keep ComfyUI's own choice.
"""

from __future__ import annotations

import functools
import logging

import torch

from ...cinemo_core.model.devices import CpuFeatures, cpu_compute_dtype


@functools.lru_cache(maxsize=None)
def _log_once(message: str) -> None:
    logging.info(message)


def cpu_model_dtypes(
    weight_dtype: torch.dtype | None, cpu_features: CpuFeatures | None = None
) -> tuple[torch.dtype, torch.dtype | None]:
    """(storage dtype, manual-cast dtype or None) for a Cinemo MODEL on the CPU.

    ``weight_dtype`` None (Cinemo Model Loader's default) stores and computes in :func:`cpu_compute_dtype`'s
    choice; float32 forces float32; fp16, bf16 and fp8 are stored as asked and computed in the choice.
    ``cpu_features`` defaults to this machine's.
    """
    if weight_dtype == torch.float32:
        _log_once("Cinemo: the model computes in float32 on the CPU (weight_dtype fp32)")
        return torch.float32, None
    choice = cpu_compute_dtype(cpu_features)
    _log_once(f"Cinemo: the model computes in {choice.name} on the CPU ({choice.reason}; weight_dtype fp32 forces float32)")
    storage = choice.dtype if weight_dtype is None else weight_dtype
    return storage, None if storage == choice.dtype else choice.dtype
