"""Fuzzed weight files for Cinemo Load Temporal VAE (property-based, a bounded number of cases, real ComfyUI).

Every case must end in a ``TemporalVAEFileError`` whose message names the file, or a loaded temporal VAE; never
another exception (a traceback deep in torch or safetensors), a hang, or code from a pickle run. Cases are derived
from two temporal VAEs in diffusers keys: a tiny one (refused for its sizes before any model is built, so
damaged-file cases are cheap) and the SVD-sized stand-in of ``comfy_models.py`` (for wrong keys, shapes and dtypes,
which reach ComfyUI's VAE). ``derandomize`` keeps the cases the same from run to run; ``CINEMO_FUZZ_EXAMPLES``
sets the cases per test (20; a third of them for the SVD-sized cases, which build a 100M-parameter VAE).
"""

from __future__ import annotations

import os
import pickle
import struct
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings  # the test extra installs it
from hypothesis import strategies as st
from safetensors.torch import save, save_file

from comfy_models import pack_module
from malicious_pickle import PickledCall

CASE_LIMIT = 30.0
FUZZ = settings(max_examples=int(os.environ.get("CINEMO_FUZZ_EXAMPLES", "20")), deadline=None, derandomize=True,
                database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: SVD-sized cases write and read a 200 MB file and may build the VAE: fewer of them.
FUZZ_SVD = settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 3))

tv = SimpleNamespace()


@pytest.fixture(autouse=True, scope="module")
def pack_modules(comfyui):
    vars(tv).update(vars(pack_module("nodes.vae.loader")))


def _tiny_weights() -> bytes:
    from diffusers import AutoencoderKLTemporalDecoder

    torch.manual_seed(0)
    model = AutoencoderKLTemporalDecoder(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                                         layers_per_block=1)
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


TINY = _tiny_weights()
TINY_HEADER_END = 8 + struct.unpack("<Q", TINY[:8])[0]


@pytest.fixture(scope="module")
def svd_state_dict(comfyui) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from comfy_models import TEMPORAL_VAE_NAME, write_temporal_vae

    write_temporal_vae(comfyui.models)
    return load_file(comfyui.models / "vae" / TEMPORAL_VAE_NAME / "diffusion_pytorch_model.safetensors")


def load_outcome(path: Path) -> str:
    """'loaded' or 'refused' (a TemporalVAEFileError naming the file); anything else fails the test."""
    start = time.perf_counter()
    try:
        vae = tv.read_temporal_vae(path)
        assert tv.has_temporal_decoder(vae)
        outcome = "loaded"
    except tv.TemporalVAEFileError as error:
        assert str(path) in str(error), f"the error does not name the file: {error}"
        outcome = "refused"
    assert time.perf_counter() - start < CASE_LIMIT
    return outcome


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(TINY) - 1))
@example(cut=0)
def test_truncated_safetensors(tmp_path, cut):
    assert load_outcome(write(tmp_path, "truncated.safetensors", TINY[:cut])) == "refused"


@FUZZ
@given(changes=st.lists(st.tuples(st.integers(0, TINY_HEADER_END + 64), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_safetensors_header(tmp_path, changes):
    data = bytearray(TINY)
    for position, value in changes:
        data[position] = value
    assert load_outcome(write(tmp_path, "corrupted.safetensors", bytes(data))) == "refused"  # tiny: never loads


@FUZZ
@given(data=st.binary(max_size=64), suffix=st.sampled_from([".safetensors", ".bin", ".pt"]))
def test_garbage_files(tmp_path, data, suffix):
    assert load_outcome(write(tmp_path, "garbage" + suffix, data)) == "refused"


@FUZZ
@given(function=st.sampled_from(["builtins.exec", "builtins.eval", "os.system"]), wrapped=st.booleans(),
       protocol=st.integers(2, pickle.HIGHEST_PROTOCOL), zipped=st.booleans())
def test_pickles_with_code_are_refused_and_never_run(tmp_path, function, wrapped, protocol, zipped):
    import builtins

    marker = tmp_path / "ran"
    marker.unlink(missing_ok=True)
    target = {"builtins.exec": builtins.exec, "builtins.eval": builtins.eval, "os.system": os.system}[function]
    command = (f"touch '{marker}'",) if function == "os.system" else (f"open({str(marker)!r}, 'w')",)
    payload = PickledCall(target, command)
    obj = {"state_dict": {"decoder.time_conv_out.weight": payload}} if wrapped else payload
    path = tmp_path / "vae.bin"
    if zipped:  # torch.save's zip container around the pickle
        torch.save(obj, path, pickle_protocol=protocol)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
    assert load_outcome(path) == "refused"
    assert not marker.exists(), "the pickle's code ran"


@FUZZ_SVD
@given(index=st.integers(0, 10**6), change=st.sampled_from(["drop", "shape", "int", "bool", "nan", "rename", "extra"]))
@example(index=0, change="shape")  # found by this test: a size-mismatch RuntimeError from torch's load_state_dict
@example(index=0, change="int")
def test_svd_sized_weights_with_a_wrong_key_shape_or_dtype(tmp_path, svd_state_dict, index, change):
    keys = sorted(svd_state_dict)
    key = keys[index % len(keys)]
    sd = dict(svd_state_dict)
    value = sd[key]
    if change == "drop":
        del sd[key]
    elif change == "shape":
        sd[key] = torch.zeros(*value.shape[:-1], value.shape[-1] + 1, dtype=value.dtype)
    elif change == "int":
        sd[key] = value.to(torch.int32)
    elif change == "bool":
        sd[key] = value > 0
    elif change == "nan":
        sd[key] = value.clone().fill_(float("nan"))
    elif change == "rename":
        sd[key + "_renamed"] = sd.pop(key)
    else:
        sd["decoder.unexpected.weight"] = torch.zeros(2)
    path = tmp_path / "svd.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    assert load_outcome(path) == "refused"


def test_the_unchanged_svd_sized_file_loads(tmp_path, svd_state_dict):
    """The reference case of the test above: its changes, not the file, are what is refused."""
    path = tmp_path / "svd.safetensors"
    save_file(svd_state_dict, str(path))
    assert load_outcome(path) == "loaded"
