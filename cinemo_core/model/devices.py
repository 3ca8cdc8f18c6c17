"""Choosing the device and precision to run on.

``auto`` precision is float16 on a GPU, bfloat16 on a CPU that computes it natively (x86 with
AVX512-BF16 or AMX: about twice the float32 matmul and convolution rate), float32 on other CPUs, where
bfloat16 is emulated and slower than float32.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

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
#: /proc/cpuinfo flags (and torch.cpu capability names) of x86 instructions that compute bfloat16 natively.
NATIVE_BF16_FLAGS: tuple[str, ...] = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuFeatures:
    """What this machine and this torch build say about bfloat16 on the CPU.

    Attributes:
        machine: ``platform.machine()``, e.g. ``x86_64``.
        cpuinfo_flags: the ``flags`` of ``/proc/cpuinfo`` (empty where there is none: macOS, Windows).
        torch_bf16_flags: the ``NATIVE_BF16_FLAGS`` torch's own CPU probe reports (None: this torch has no probe).
        aten_capability: ``torch.backends.cpu.get_cpu_capability()``, the vector ISA torch's kernels use.
        onednn: whether torch has oneDNN (mkldnn), which runs bfloat16 matmuls and convolutions.
    """

    machine: str
    cpuinfo_flags: frozenset[str]
    torch_bf16_flags: frozenset[str] | None
    aten_capability: str
    onednn: bool


@dataclass(frozen=True)
class DtypeChoice:
    """A compute dtype and why it was chosen (shown to the user)."""

    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}.get(self.dtype, str(self.dtype))


def read_cpuinfo_flags(path: Path = CPUINFO) -> frozenset[str]:
    """The CPU feature flags listed in a Linux ``/proc/cpuinfo`` (x86 ``flags``, Arm ``Features``); empty if unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def _torch_bf16_flags() -> frozenset[str] | None:
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        try:
            found = capabilities()
            return frozenset(flag for flag in NATIVE_BF16_FLAGS if found.get(flag))
        except (RuntimeError, AttributeError, TypeError):
            pass
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx_tile = getattr(torch.cpu, "_is_amx_tile_supported", None)  # AMX tiles come with AMX-BF16 on every x86 CPU
    if avx512_bf16 is None and amx_tile is None:
        return None
    flags = set()
    if avx512_bf16 is not None and avx512_bf16():
        flags.add("avx512_bf16")
    if amx_tile is not None and amx_tile():
        flags.add("amx_bf16")
    return frozenset(flags)


@functools.lru_cache(maxsize=1)
def probe_cpu_features() -> CpuFeatures:
    """This machine's :class:`CpuFeatures` (probed once per process)."""
    return CpuFeatures(
        machine=platform.machine().lower(),
        cpuinfo_flags=read_cpuinfo_flags(),
        torch_bf16_flags=_torch_bf16_flags(),
        aten_capability=str(torch.backends.cpu.get_cpu_capability()),
        onednn=bool(torch.backends.mkldnn.is_available()),
    )


def native_cpu_bf16(features: CpuFeatures) -> tuple[bool, str]:
    """Whether the CPU computes bfloat16 natively, with the evidence (a short phrase for the user)."""
    if features.machine not in ("x86_64", "amd64", "i686", "x86"):
        return False, f"auto uses bfloat16 only on x86 CPUs with AVX512-BF16 or AMX, this is {features.machine or 'unknown'}"
    found = sorted(features.cpuinfo_flags.intersection(NATIVE_BF16_FLAGS) | (features.torch_bf16_flags or frozenset()))
    if not found:
        return False, "this CPU has no AVX512-BF16 or AMX, so bfloat16 would be emulated (slower than float32)"
    if not features.onednn:
        return False, f"the CPU has {', '.join(found)} but this torch build has no oneDNN to use it"
    if not features.aten_capability.upper().startswith("AVX512"):
        return False, (
            f"the CPU has {', '.join(found)} but torch runs its {features.aten_capability} kernels "
            "(ATEN_CPU_CAPABILITY?), so bfloat16 would be partly emulated"
        )
    return True, f"this CPU computes bfloat16 natively ({', '.join(found)})"


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


def cpu_compute_dtype(cpu_features: CpuFeatures | None = None) -> DtypeChoice:
    """The dtype to compute in on the CPU unless the user says otherwise, and why: bfloat16 where
    :func:`native_cpu_bf16` says the CPU computes it natively (about 3x float32), else float32 (bfloat16 is
    emulated there, many times slower). The one decision behind the standalone ``--dtype auto`` and the
    Cinemo MODEL on a ComfyUI CPU. ``cpu_features`` defaults to this machine's (:func:`probe_cpu_features`).
    """
    native, why = native_cpu_bf16(cpu_features or probe_cpu_features())
    return DtypeChoice(torch.bfloat16 if native else torch.float32, f"auto on the CPU: {why}")


def choose_dtype(name: str, device: torch.device, cpu_features: CpuFeatures | None = None) -> DtypeChoice:
    """The compute dtype for ``name`` (``auto``, ``fp16``, ``bf16``, ``fp32``) on ``device``, and why.

    ``auto``: float16 on a GPU (CUDA/MPS); on the CPU bfloat16 where :func:`native_cpu_bf16` says so, else
    float32. ``cpu_features`` defaults to this machine's (:func:`probe_cpu_features`).

    Raises:
        ValueError: for an unknown name, or bfloat16 on a CUDA GPU without bfloat16 support.
    """
    text = (name or "auto").strip().lower()
    if text == "auto":
        if device.type in ("cuda", "mps"):
            return DtypeChoice(torch.float16, f"auto: float16 on the {device.type.upper()} GPU")
        return cpu_compute_dtype(cpu_features)
    if text not in DTYPE_NAMES:
        raise ValueError(f"Unknown dtype {name!r}; use one of {', '.join(DTYPE_CHOICES)}.")
    dtype = DTYPE_NAMES[text]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("This GPU does not support bfloat16; use --dtype fp16 or fp32.")
    reason = f"--dtype {text}"
    if dtype == torch.bfloat16 and device.type == "cpu":
        native, why = native_cpu_bf16(cpu_features or probe_cpu_features())
        if not native:
            reason += f" ({why})"
    return DtypeChoice(dtype, reason)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """:func:`choose_dtype` without the reason."""
    return choose_dtype(name, device).dtype
