"""How the Cinemo MODEL stores its weights and computes on the CPU (the GPU keeps ComfyUI's own choice).

ComfyUI (0.3.64) never computes in bfloat16 on the CPU by itself (``should_use_bf16`` is False for a CPU),
so the loader decides here, with the standalone tool's ``--dtype auto`` rule (``choose_dtype``): bfloat16
where the CPU computes it natively (about 3x float32 there), float32 where it would be emulated (many times
slower). ``weight_dtype`` fp32 forces float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ...cinemo_core.model.devices import CpuFeatures, choose_dtype

CPU = torch.device("cpu")
_logged: set[str] = set()


@dataclass(frozen=True)
class CpuPrecision:
    """The storage and compute dtypes for the Cinemo UNet on the CPU, and why (for the log).

    ``storage`` None: the dtype ComfyUI picks for the file (``unet_dtype``); ``compute`` None: what ComfyUI
    casts that storage to (``unet_manual_cast``), float32 on the CPU.
    """

    storage: torch.dtype | None
    compute: torch.dtype | None
    reason: str


def cpu_precision(weight_dtype: torch.dtype | None, cpu_features: CpuFeatures | None = None) -> CpuPrecision:
    """The precision for Cinemo Model Loader's ``weight_dtype`` (None: 'default') on this CPU.

    ``cpu_features`` defaults to this machine's (``probe_cpu_features``).
    """
    if weight_dtype == torch.float32:
        return CpuPrecision(torch.float32, None, "float32, as weight_dtype fp32 asks")
    choice = choose_dtype("auto", CPU, cpu_features)
    if choice.dtype != torch.bfloat16:
        return CpuPrecision(weight_dtype, None, f"float32: {choice.reason}")
    # default: bf16 storage too, so no weight is cast again at every step, and half the memory
    return CpuPrecision(weight_dtype or torch.bfloat16, torch.bfloat16,
                        f"bfloat16: {choice.reason} (weight_dtype fp32 forces float32)")


def log_once(precision: CpuPrecision) -> None:
    """Logs the decision once per process and reason."""
    if precision.reason not in _logged:
        _logged.add(precision.reason)
        logging.info("Cinemo Model Loader: the CPU computes in %s", precision.reason)
