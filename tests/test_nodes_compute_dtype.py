"""The dtype the Cinemo MODEL computes in on a ComfyUI CPU: bfloat16 where the CPU computes it natively.

ComfyUI (0.3.64) computes every model in float32 on the CPU. Cinemo Model Loader takes the standalone
``--dtype auto`` decision instead (``cpu_compute_dtype``): bf16 on CPUs with AVX512-BF16/AMX, float32
elsewhere; weight_dtype fp32 forces float32. The CPU's capability is injected into ``build_model_patcher``
to test both kinds of CPU on this one; what the forward really computes in is recorded at dispatch.
"""

import logging

import pytest
import torch
from comfy_models import call_node, pack_module
from golden_case import relative_error
from test_nodes_model import golden_eps
from torch.utils._python_dispatch import TorchDispatchMode

#: Convolutions, matmuls and attention as they reach dispatch in inference mode (not yet decomposed)
CONVOLUTIONS = ("aten.conv", "aten.mkldnn_convolution")
MATMULS = ("aten.linear", "aten.addmm", "aten.mm", "aten.bmm", "aten.baddbmm", "aten.matmul", "aten.einsum",
           "aten.scaled_dot_product", "aten._scaled_dot_product")
HALF_PRECISION_BOUND = 5e-2  # relative error vs the official fp32 output, as standalone


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


def operand_dtypes_and_eps(patcher, golden):
    with OperandDtypes() as recorder:
        eps = golden_eps(patcher, golden)
    assert any(name.startswith(CONVOLUTIONS) for name in recorder.seen)
    assert any(name.startswith(MATMULS) for name in recorder.seen)
    return set().union(*recorder.seen.values()), eps


def cpu(native: bool):
    """An x86 CPU with or without native bfloat16, as the pack's ``CpuFeatures``."""
    devices = pack_module("cinemo_core.model.devices")
    return devices.CpuFeatures(
        machine="x86_64", cpuinfo_flags=frozenset({"avx512f", *(["avx512_bf16", "amx_bf16"] if native else [])}),
        torch_bf16_flags=None, aten_capability="AVX512", onednn=True,
    )


def patcher_for(golden_state_dict, weight_dtype, native):
    build = pack_module("nodes.model.base_model").build_model_patcher
    return build(dict(golden_state_dict), weight_dtype=weight_dtype, cpu_features=cpu(native))


@pytest.mark.parametrize("native,expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_default_computes_in_bf16_only_where_the_cpu_has_it(golden_state_dict, golden, comfyui, native, expected):
    patcher = patcher_for(golden_state_dict, None, native)
    dtypes, eps = operand_dtypes_and_eps(patcher, golden)
    assert dtypes == {expected}
    assert torch.isfinite(eps).all()
    assert relative_error(eps, golden["out"]) <= (HALF_PRECISION_BOUND if native else 1e-5)


@pytest.mark.parametrize("weight_dtype", [torch.bfloat16, torch.float16, torch.float8_e4m3fn])
@pytest.mark.parametrize("native,expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_reduced_precision_weights_compute_in_the_cpu_choice(golden_state_dict, golden, comfyui, weight_dtype,
                                                             native, expected):
    patcher = patcher_for(golden_state_dict, weight_dtype, native)
    assert patcher.model.diffusion_model.conv_in.weight.dtype == weight_dtype
    dtypes, _ = operand_dtypes_and_eps(patcher, golden)
    assert dtypes == {expected}


@pytest.mark.parametrize("native", [True, False])
def test_fp32_weights_force_float32(golden_state_dict, golden, comfyui, native):
    patcher = patcher_for(golden_state_dict, torch.float32, native)
    dtypes, eps = operand_dtypes_and_eps(patcher, golden)
    assert dtypes == {torch.float32}
    assert relative_error(eps, golden["out"]) <= 1e-5


def test_the_loader_node_takes_this_cpu_choice_and_logs_it_once(comfy_models, golden, caplog):
    precision = pack_module("nodes.model.cpu_precision")
    choice = pack_module("cinemo_core.model.devices").cpu_compute_dtype()  # this machine's capability
    precision._log_once.cache_clear()
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            (patcher,) = call_node("CinemoModelLoader", model_name=comfy_models.golden, weight_dtype="default")
    dtypes, eps = operand_dtypes_and_eps(patcher, golden)
    assert dtypes == {choice.dtype}
    assert relative_error(eps, golden["out"]) <= HALF_PRECISION_BOUND
    logged = [r.getMessage() for r in caplog.records if "computes in" in r.getMessage()]
    assert logged == [f"Cinemo: the model computes in {choice.name} on the CPU ({choice.reason}; "
                      "weight_dtype fp32 forces float32)"]
    (forced,) = call_node("CinemoModelLoader", model_name=comfy_models.golden, weight_dtype="fp32")
    dtypes, _ = operand_dtypes_and_eps(forced, golden)
    assert dtypes == {torch.float32}


def test_model_compute_dtype_bf16_still_makes_a_float32_model_compute_in_bf16(comfy_models, golden):
    (loaded,) = call_node("CinemoModelLoader", model_name=comfy_models.golden, weight_dtype="fp32")
    (patcher,) = call_node("ModelComputeDtype", model=loaded, dtype="bf16")
    dtypes, eps = operand_dtypes_and_eps(patcher, golden)
    assert dtypes == {torch.bfloat16}
    assert torch.isfinite(eps).all()
    assert relative_error(eps, golden["out"]) <= HALF_PRECISION_BOUND
    # the loaded MODEL itself is unchanged: without the node it computes in float32 again
    dtypes, _ = operand_dtypes_and_eps(loaded, golden)
    assert dtypes == {torch.float32}
