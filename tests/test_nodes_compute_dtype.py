"""The dtype the Cinemo MODEL computes in on the CPU, and the core switch that makes it bfloat16.

ComfyUI (0.3.64) never computes in bfloat16 on the CPU by itself: ``should_use_bf16`` is False for a CPU
device, so bf16 (and fp16, fp8) weights are cast to float32 layer by layer, and no command-line switch
changes that (``--bf16-unet`` only changes how weights are stored). Core **ModelComputeDtype** (dtype bf16)
after Cinemo Model Loader does: every convolution and matmul then runs in bfloat16.
"""

import pytest
import torch
from comfy_models import call_node
from golden_case import relative_error
from test_nodes_model import golden_eps
from torch.utils._python_dispatch import TorchDispatchMode

#: Convolutions, matmuls and attention as they reach dispatch in inference mode (not yet decomposed)
CONVOLUTIONS = ("aten.conv", "aten.mkldnn_convolution")
MATMULS = ("aten.linear", "aten.addmm", "aten.mm", "aten.bmm", "aten.baddbmm", "aten.matmul", "aten.einsum",
           "aten.scaled_dot_product", "aten._scaled_dot_product")


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


@pytest.mark.parametrize("weight_dtype", ["bf16", "fp16", "fp8_e4m3fn"])
def test_reduced_precision_weights_compute_in_float32_on_the_cpu(comfy_models, golden, weight_dtype):
    (patcher,) = call_node("CinemoModelLoader", model_name=comfy_models.golden, weight_dtype=weight_dtype)
    assert patcher.model.manual_cast_dtype == torch.float32
    dtypes, _ = operand_dtypes_and_eps(patcher, golden)
    assert dtypes == {torch.float32}


@pytest.mark.parametrize("weight_dtype", ["bf16", "default"])
def test_model_compute_dtype_bf16_makes_the_cpu_compute_in_bf16(comfy_models, golden, weight_dtype):
    (loaded,) = call_node("CinemoModelLoader", model_name=comfy_models.golden, weight_dtype=weight_dtype)
    (patcher,) = call_node("ModelComputeDtype", model=loaded, dtype="bf16")
    dtypes, eps = operand_dtypes_and_eps(patcher, golden)
    assert dtypes == {torch.bfloat16}
    assert torch.isfinite(eps).all()
    assert relative_error(eps, golden["out"]) <= 5e-2  # the bound for half precision, as standalone
    # the loaded MODEL itself is unchanged: without the node it computes in float32 again
    dtypes, _ = operand_dtypes_and_eps(loaded, golden)
    assert dtypes == {torch.float32}
