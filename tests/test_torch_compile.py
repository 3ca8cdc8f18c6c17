"""``--compile``'s wrapper: the compiled UNet computes what the UNet computes; failures are one clear line."""

import pytest
import torch
from golden_case import relative_error

from cinemo_core.app.torch_compile import CompiledUNet, CompileError


def _inputs(golden):
    return (golden["sample"], golden["timestep"], golden["encoder_hidden_states"]), {
        "base_content": golden["base_content"], "motion_ids": golden["motion_bucket_id"],
    }


def test_traced_unet_matches_the_golden_output(tiny_unet, golden):
    # the "eager" backend runs dynamo's tracing without inductor's C++ build (minutes on two cores)
    compiled = CompiledUNet(tiny_unet, backend="eager")
    args, kwargs = _inputs(golden)
    with torch.inference_mode():
        out = compiled(*args, **kwargs)
    assert compiled.compiled_once
    assert relative_error(out, golden["out"]) <= 1e-5


def test_a_compiler_failure_is_one_line_naming_the_cause(tiny_unet, golden):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("C++ compile failed:\n/tmp/x.cpp:1: error: something\n  ... 200 more lines")

    compiled = CompiledUNet(tiny_unet, backend=broken_backend)
    args, kwargs = _inputs(golden)
    with pytest.raises(CompileError) as failure, torch.inference_mode():
        compiled(*args, **kwargs)
    message = str(failure.value)
    assert "\n" not in message
    assert "RuntimeError: C++ compile failed" in message and "run without --compile" in message
    assert not compiled.compiled_once


def test_bad_input_is_reported_as_without_compiling(tiny_unet, golden):
    compiled = CompiledUNet(tiny_unet, backend="eager")
    args, kwargs = _inputs(golden)
    kwargs["base_content"] = kwargs["base_content"][..., :8]
    with pytest.raises(ValueError, match="base_content must have shape"), torch.inference_mode():
        compiled(*args, **kwargs)
