"""Fuzzed weight files and configs for the UNet loader (property-based, a bounded number of cases).

Every case must end in a named error (a ``CheckpointError`` subclass, or ``FileNotFoundError`` for what is not
there) or a loaded model; never another exception, a hang, or code from a pickle run. Cases are derived from the
golden tiny UNet: its safetensors truncated or with bytes changed, pickles whose reduce calls a function, and its
config.json with one value replaced. ``derandomize`` keeps the cases the same from run to run;
``CINEMO_FUZZ_EXAMPLES`` sets the cases per test (30; 300 also pass).
"""

from __future__ import annotations

import json
import pickle
import shutil
import struct
import time
from pathlib import Path

from golden_case import TINY_A
from malicious_pickle import PickledCall
from hypothesis import HealthCheck, example, given, settings  # the test extra installs it
from hypothesis import strategies as st

from cinemo_core.model.checkpoint import CheckpointError, load_unet

WEIGHTS = (TINY_A / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
CONFIG = json.loads((TINY_A / "unet" / "config.json").read_text())
HEADER_END = 8 + struct.unpack("<Q", WEIGHTS[:8])[0]
#: Seconds one case may take: loading the tiny UNet takes well under one.
CASE_LIMIT = 20.0
FUZZ = settings(max_examples=int(__import__("os").environ.get("CINEMO_FUZZ_EXAMPLES", "30")), deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def load_outcome(path: Path) -> str:
    """'loaded' or the named error's class; anything else fails the test (pytest shows the case)."""
    start = time.perf_counter()
    try:
        load_unet(path)
        outcome = "loaded"
    except (CheckpointError, FileNotFoundError) as error:
        assert str(error), "an error without a message"
        outcome = type(error).__name__
    assert time.perf_counter() - start < CASE_LIMIT
    return outcome


def fresh_folder(root: Path, name: str) -> Path:
    folder = root / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(WEIGHTS) - 1))
def test_truncated_safetensors(tmp_path, cut):
    folder = fresh_folder(tmp_path, "truncated")
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(WEIGHTS[:cut])
    assert load_outcome(folder) == "DamagedCheckpointError"


@FUZZ
@given(changes=st.lists(st.tuples(st.integers(0, HEADER_END + 256), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_safetensors_header(tmp_path, changes):
    """Bytes of the length prefix, the JSON header and the first tensor data changed."""
    data = bytearray(WEIGHTS)
    for position, value in changes:
        data[position] = value
    folder = fresh_folder(tmp_path, "corrupted")
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(bytes(data))
    load_outcome(folder)


@FUZZ
@given(
    function=st.sampled_from(["builtins.open", "builtins.exec", "builtins.eval", "os.system", "subprocess.call"]),
    wrapped=st.booleans(),
    protocol=st.integers(2, pickle.HIGHEST_PROTOCOL),
)
def test_pickles_with_code_are_refused_and_never_run(tmp_path, function, wrapped, protocol):
    import builtins
    import importlib
    import os  # noqa: F401 - the module the case may name
    import subprocess  # noqa: F401

    marker = tmp_path / "ran"
    if marker.exists():
        marker.unlink()
    module, name = function.rsplit(".", 1)
    target = getattr(builtins if module == "builtins" else importlib.import_module(module), name)
    command = {
        "builtins.open": (str(marker), "w"),
        "builtins.exec": (f"open({str(marker)!r}, 'w')",),
        "builtins.eval": (f"open({str(marker)!r}, 'w')",),
        "os.system": (f"touch '{marker}'",),
        "subprocess.call": (["touch", str(marker)],),
    }[function]
    payload = PickledCall(target, command)
    obj = {"state_dict": {"conv_in.weight": payload}} if wrapped else payload
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    assert load_outcome(path) in ("UnsafeCheckpointError", "DamagedCheckpointError")
    assert not marker.exists(), "the pickle's code ran"


ABSURD = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(-4, 10**9), max_size=6), st.dictionaries(st.text(max_size=4),
                                                                                        st.integers(), max_size=2),
)


@FUZZ
@given(key=st.sampled_from(sorted(CONFIG)), value=ABSURD)
@example(key="addition_time_embed_dim", value=None)  # found by this test: a TypeError deep in torch, before
@example(key="block_out_channels", value=None)
@example(key="layers_per_block", value=10**9)
def test_config_values_of_wrong_type_or_absurd_size(tmp_path, key, value):
    folder = fresh_folder(tmp_path, "config")
    config = dict(CONFIG, **{key: value})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(WEIGHTS)
    load_outcome(folder)


@FUZZ
@given(text=st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))))
def test_config_that_is_not_a_json_object(tmp_path, text):
    folder = fresh_folder(tmp_path, "not_json")
    (folder / "config.json").write_text(text, encoding="utf-8", errors="surrogateescape")
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(WEIGHTS)
    load_outcome(folder)
