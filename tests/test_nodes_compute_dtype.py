"""The dtype the Cinemo MODEL computes in on the CPU, through the real ComfyUI.

ComfyUI (0.3.64) never computes in bfloat16 on the CPU by itself (``should_use_bf16`` is False for a CPU
device). Cinemo Model Loader decides instead, with the standalone ``--dtype auto`` rule (``choose_dtype``):
bfloat16 on a CPU that computes it natively, float32 elsewhere; ``weight_dtype`` fp32 (or core
ModelComputeDtype fp32) forces float32.
"""

import logging

import pytest
import torch
from comfy_models import call_node, pack_module
from golden_case import relative_error
from test_nodes_model import golden_eps
from torch.utils._python_dispatch import TorchDispatchMode

from cinemo_core.model.devices import choose_dtype

#: Convolutions, matmuls and attention as they reach dispatch in inference mode (not yet decomposed)
CONVOLUTIONS = ("aten.conv", "aten.mkldnn_convolution")
MATMULS = ("aten.linear", "aten.addmm", "aten.mm", "aten.bmm", "aten.baddbmm", "aten.matmul", "aten.einsum",
           "aten.scaled_dot_product", "aten._scaled_dot_product")
#: The golden bound for a half-precision forward (as standalone); float32 reproduces the golden to 1e-5.
TOLERANCE = {torch.bfloat16: 5e-2, torch.float32: 1e-5}


def this_cpus_auto_dtype() -> torch.dtype:
    """What the standalone ``--dtype auto`` picks on this machine's CPU."""
    return choose_dtype("auto", torch.device("cpu")).dtype


class OperandDtypes(TorchDispatchMode):
    """Records the dtypes of the two main operands (input and weight, or query and key) of every heavy op."""

    def __init__(self):
        super().__init__()
        self.seen: dict[str, set[torch.dtype]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if name.startswith(CONVOLUTIONS + MATMULS):
            operands = [a for a in args[:2] if isinstance(a, torch.Tensor)]
            self.seen.setdefault(name, set()).update(a.dtype for a in operands)
        return func(*args, **(kwargs or {}))


def forward_dtypes_and_eps(patcher, golden):
    """(dtype of the latent entering the UNet's forward, dtypes of every heavy op's operands, epsilon)."""
    unet = patcher.model.diffusion_model
    entering: list[torch.dtype] = []
    handle = unet.register_forward_pre_hook(lambda module, args: entering.append(args[0].dtype))
    try:
        with OperandDtypes() as recorder:
            eps = golden_eps(patcher, golden)
    finally:
        handle.remove()
    assert entering, "the UNet's forward did not run"
    assert any(name.startswith(CONVOLUTIONS) for name in recorder.seen)
    assert any(name.startswith(MATMULS) for name in recorder.seen)
    return set(entering), set().union(*recorder.seen.values()), eps


@pytest.mark.parametrize("weight_dtype", ["default", "bf16", "fp16", "fp8_e4m3fn"])
def test_the_loader_computes_in_the_standalone_auto_dtype(comfy_models, golden, weight_dtype):
    expected = this_cpus_auto_dtype()
    (patcher,) = call_node("CinemoModelLoader", model_name=comfy_models.golden, weight_dtype=weight_dtype)
    entering, operands, eps = forward_dtypes_and_eps(patcher, golden)
    assert entering == {expected}
    assert operands == {expected}
    assert torch.isfinite(eps).all()
    if weight_dtype in ("default", "bf16"):
        assert relative_error(eps, golden["out"]) <= TOLERANCE[expected]
    if weight_dtype == "default" and expected == torch.bfloat16:  # stored as it computes: no cast per step
        assert patcher.model.diffusion_model.conv_in.weight.dtype == torch.bfloat16


def test_weight_dtype_fp32_forces_float32(comfy_models, golden):
    (patcher,) = call_node("CinemoModelLoader", model_name=comfy_models.golden, weight_dtype="fp32")
    entering, operands, eps = forward_dtypes_and_eps(patcher, golden)
    assert entering == operands == {torch.float32}
    assert relative_error(eps, golden["out"]) <= 1e-5


@pytest.mark.parametrize(("weight_dtype", "forced"), [("fp32", "bf16"), ("default", "fp32")])
def test_model_compute_dtype_overrides_the_loader(comfy_models, golden, weight_dtype, forced):
    (loaded,) = call_node("CinemoModelLoader", model_name=comfy_models.golden, weight_dtype=weight_dtype)
    (patcher,) = call_node("ModelComputeDtype", model=loaded, dtype=forced)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[forced]
    entering, operands, eps = forward_dtypes_and_eps(patcher, golden)
    assert entering == operands == {dtype}
    assert torch.isfinite(eps).all()
    # exact only with float32 weights: ModelComputeDtype fp32 computes in float32 from what the loader stored
    stored = loaded.model.diffusion_model.conv_in.weight.dtype
    assert relative_error(eps, golden["out"]) <= TOLERANCE[dtype if stored == torch.float32 else torch.bfloat16]
    # the loaded MODEL itself is unchanged: without the node it computes as the loader decided
    _, operands, _ = forward_dtypes_and_eps(loaded, golden)
    assert operands == {torch.float32 if weight_dtype == "fp32" else this_cpus_auto_dtype()}


def _features(devices, native: bool):
    """A Zen 4 (AVX512-BF16) or a Zen 3 (AVX2 only) as torch and /proc/cpuinfo would describe it."""
    flags = {"avx2", "avx512f", "avx512_bf16"} if native else {"avx2", "fma"}
    return devices.CpuFeatures(machine="x86_64", cpuinfo_flags=frozenset(flags),
                               torch_bf16_flags=frozenset(flags & {"avx512_bf16"}),
                               aten_capability="AVX512" if native else "AVX2", onednn=True)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("weight_dtype", [None, torch.bfloat16, torch.float8_e4m3fn, torch.float32])
def test_the_cpu_decision_for_both_capabilities(comfyui, native, weight_dtype):
    precision_module = pack_module("nodes.model.precision")
    devices = pack_module("cinemo_core.model.devices")
    cpu = _features(devices, native)
    precision = precision_module.cpu_precision(weight_dtype, cpu)
    standalone = devices.choose_dtype("auto", torch.device("cpu"), cpu)  # the same rule, not a copy of it
    assert standalone.dtype == (torch.bfloat16 if native else torch.float32)
    if weight_dtype == torch.float32:
        assert (precision.storage, precision.compute) == (torch.float32, None)  # ComfyUI's float32 path
        assert "weight_dtype fp32" in precision.reason
    elif native:
        assert precision.compute == torch.bfloat16
        assert precision.storage == (weight_dtype or torch.bfloat16)
        assert standalone.reason in precision.reason and "weight_dtype fp32 forces float32" in precision.reason
    else:
        assert (precision.storage, precision.compute) == (weight_dtype, None)  # ComfyUI's choice: float32
        assert precision.reason.startswith("float32") and "no AVX512-BF16 or AMX" in precision.reason


def test_the_decision_is_logged_once(comfyui, caplog):
    precision_module = pack_module("nodes.model.precision")
    decision = precision_module.CpuPrecision(torch.bfloat16, torch.bfloat16, "bfloat16: a reason seen once")
    with caplog.at_level(logging.INFO):
        precision_module.log_once(decision)
        precision_module.log_once(decision)
    assert [record.getMessage() for record in caplog.records].count(
        "Cinemo Model Loader: the CPU computes in bfloat16: a reason seen once") == 1
