"""Choosing the device and precision to run on ("auto": the GPU in float16 when there is one)."""

from __future__ import annotations

import torch

DEVICE_CHOICES_HELP = "auto, cpu, cuda, cuda:N or mps"
DTYPE_NAMES: dict[str, torch.dtype] = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}
DTYPE_CHOICES: tuple[str, ...] = ("auto", "fp16", "bf16", "fp32")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> the first CUDA GPU, else Apple MPS, else the CPU; otherwise the named device, checked.

    Raises:
        ValueError: the name is not a device, or the device is not available on this machine.
    """
    text = (name or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(f"Unknown device {name!r}; use {DEVICE_CHOICES_HELP}.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"Device {name!r} was requested but PyTorch sees no CUDA GPU here (torch.cuda.is_available() is "
                "False). Use --device cpu, or install a CUDA build of PyTorch."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"Device {name!r} was requested but only {torch.cuda.device_count()} CUDA GPU(s) exist "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})."
            )
    elif device.type == "mps":
        if not _mps_available():
            raise ValueError(f"Device {name!r} was requested but Apple MPS is not available; use --device cpu.")
    elif device.type != "cpu":
        raise ValueError(f"Unsupported device {name!r}; use {DEVICE_CHOICES_HELP}.")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``"auto"`` -> float16 on a GPU (CUDA/MPS), float32 on the CPU; else ``fp16``/``bf16``/``fp32``.

    Raises:
        ValueError: for an unknown name, or bfloat16 on a CUDA GPU without bfloat16 support.
    """
    text = (name or "auto").strip().lower()
    if text == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if text not in DTYPE_NAMES:
        raise ValueError(f"Unknown dtype {name!r}; use one of {', '.join(DTYPE_CHOICES)}.")
    dtype = DTYPE_NAMES[text]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("This GPU does not support bfloat16; use --dtype fp16 or fp32.")
    return dtype
