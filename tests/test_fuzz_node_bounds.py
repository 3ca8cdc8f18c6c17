"""Every Cinemo node's INT and FLOAT inputs at and past their bounds, through a real ComfyUI's validation and runs.

Generic: the cases come from the schema snapshot (``tests/fixtures/node_schemas.json``, kept equal to the live
schemas by ``test_workflows_comfyui.py``), so an input added later is covered once the snapshot is regenerated.
Each case sets one input of one node of a shipped API workflow (shrunk as in ``test_workflows_comfyui.py``):

- just past a bound (the next float, or +-1 for an INT), and far past it (hypothesis, derandomized): ComfyUI
  refuses the prompt with an error on that node naming that input;
- at a bound: the prompt validates, or is refused with an error naming that input; and a run of it either
  succeeds (writing complete files) or ends in a ``ValueError`` raised by the pack that names the input or the
  cause (never an exception from deep in torch, a NaN output, or a half-written file). A run still going after
  ``RUN_LIMIT_S`` after the node given the value began (999 steps, 64 frames through the full-size temporal VAE)
  is interrupted (model loading before it does not count); that node's function must have run (the harness
  records ComfyUI's "executing" messages), and Cinemo Sampler at 999 steps must report 999 as its total.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_workflows_comfyui import NAMES, TinySize, cinemo_workflows, shrink

SNAPSHOT = json.loads((Path(__file__).parent / "fixtures" / "node_schemas.json").read_text())
SIZE = TinySize(width=64, height=64, frames=3, steps=2)
#: A run still going this long after the node given the value began is interrupted; most finish before.
RUN_LIMIT_S = 5.0
FUZZ = settings(max_examples=int(os.environ.get("CINEMO_FUZZ_EXAMPLES", "10")), deadline=None, derandomize=True,
                database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _numeric_inputs() -> list[tuple[str, dict]]:
    return [
        (node_type, spec) for node_type, schema in sorted(SNAPSHOT.items()) if node_type.startswith("Cinemo")
        for spec in schema["inputs"] if spec["type"] in ("INT", "FLOAT") and spec["widget"]
    ]


NUMERIC = _numeric_inputs()
IDS = [f"{node_type}.{spec['name']}" for node_type, spec in NUMERIC]


def _workflow_with(node_type: str) -> str:
    """The first shipped workflow (image to video first: the cheapest) that has a node of ``node_type``."""
    for name in ["cinemo_image_to_video", *NAMES]:
        prompt = json.loads(cinemo_workflows.api_path(name).read_text())
        if any(node["class_type"] == node_type for node in prompt.values()):
            return name
    raise AssertionError(f"no shipped workflow uses {node_type}: add one, so that its inputs are tested here")


def _prompt(files: dict, node_type: str, name: str, value) -> tuple[dict, str, str]:
    """(prompt, id of the node set, file tag): a shrunk workflow with ``name`` of its ``node_type`` node = value."""
    tag = uuid.uuid4().hex[:8]
    prompt = shrink(json.loads(cinemo_workflows.api_path(_workflow_with(node_type)).read_text()), files, tag, SIZE)
    node_id = next(key for key, node in prompt.items() if node["class_type"] == node_type)
    prompt[node_id]["inputs"][name] = value
    return prompt, node_id, tag


def _errors_on(node_errors: dict, node_id: str) -> list[dict]:
    return node_errors.get(node_id, {}).get("errors", [])


def _refused_on_the_input(comfyui, prompt: dict, node_id: str, name: str) -> None:
    ok, error, _, node_errors = comfyui.validate(prompt)
    assert not ok, f"{name}={prompt[node_id]['inputs'][name]!r} was accepted"
    errors = _errors_on(node_errors, node_id)
    assert errors, (error, node_errors)
    assert any(e["extra_info"].get("input_name") == name for e in errors), errors


def _past(spec: dict, side: str):
    bound = spec[side]
    if spec["type"] == "INT":
        return bound - 1 if side == "min" else bound + 1
    return math.nextafter(bound, -math.inf if side == "min" else math.inf)


@pytest.mark.parametrize("side", ["min", "max"])
@pytest.mark.parametrize(("node_type", "spec"), NUMERIC, ids=IDS)
def test_just_past_a_bound_is_refused_on_the_input(comfyui, workflow_inputs, node_type, spec, side):
    assert spec[side] is not None, f"{node_type}.{spec['name']} has no {side}"
    prompt, node_id, _ = _prompt(workflow_inputs, node_type, spec["name"], _past(spec, side))
    _refused_on_the_input(comfyui, prompt, node_id, spec["name"])


@pytest.mark.parametrize(("node_type", "spec"), NUMERIC, ids=IDS)
def test_far_past_a_bound_is_refused_on_the_input(comfyui, workflow_inputs, node_type, spec):
    strategy = (st.integers if spec["type"] == "INT" else
                lambda **bounds: st.floats(**bounds, allow_nan=False, allow_infinity=True))

    @FUZZ
    @given(value=st.one_of(strategy(max_value=_past(spec, "min")), strategy(min_value=_past(spec, "max"))))
    def case(value):
        prompt, node_id, _ = _prompt(workflow_inputs, node_type, spec["name"], value)
        _refused_on_the_input(comfyui, prompt, node_id, spec["name"])

    case()


def _tagged_files(output: Path, tag: str) -> list[Path]:
    return [path for path in output.rglob("*") if path.is_file() and tag in path.name]


def _readable(path: Path) -> bool:
    if path.suffix == ".webp":
        from PIL import Image, ImageSequence

        with Image.open(path) as image:
            return sum(1 for frame in ImageSequence.Iterator(image) if frame.load() is not None) > 0
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0)) > 0


def _pack_frame(traceback_lines: list[str]) -> str:
    """The innermost traceback frame's file line."""
    frames = [line for line in traceback_lines if line.lstrip().startswith("File ")]
    return frames[-1] if frames else ""


@pytest.mark.parametrize("side", ["min", "max"])
@pytest.mark.parametrize(("node_type", "spec"), NUMERIC, ids=IDS)
def test_at_a_bound_runs_or_gives_a_clear_error(comfyui, workflow_inputs, node_type, spec, side):
    name = spec["name"]
    prompt, node_id, tag = _prompt(workflow_inputs, node_type, name, spec[side])
    ok, error, _, node_errors = comfyui.validate(prompt)
    if not ok:
        errors = _errors_on(node_errors, node_id)
        assert any(e["extra_info"].get("input_name") == name for e in errors), (error, node_errors)
        return
    run = comfyui.attempt(prompt, interrupt_after_s=RUN_LIMIT_S, counting_from=node_id)
    written = _tagged_files(comfyui.output, tag)
    assert all(_readable(path) for path in written), written  # never a half-written file
    if run.succeeded:
        assert written, "a successful run saved nothing"
        return
    failure = run.error
    if run.interrupted and failure is None:
        # still working RUN_LIMIT_S after the node given the value began: it ran with it (a sampler at 999 steps
        # reports 999 as its total)
        assert run.reached(node_id), (node_id, sorted(run.started), run.progress[-3:])
        if name == "steps" and node_type == "CinemoSampler":
            assert {total for node, _, total in run.progress if node == node_id} <= {spec[side]}, run.progress[-3:]
        return
    assert failure is not None
    where = _pack_frame(failure["traceback"])
    assert issubclass_named(failure["exception_type"]), failure["exception_type"] + ": " + failure["exception_message"]
    assert "cinemo" in where.lower() or "custom_nodes" in where, (where, failure["exception_message"])


def issubclass_named(exception_type: str) -> bool:
    """Whether the error is one the pack raises on purpose (ValueError and its subclasses, by name)."""
    import builtins
    import importlib

    module, _, name = exception_type.rpartition(".")
    try:
        kind = getattr(importlib.import_module(module) if module else builtins, name)
    except (ImportError, AttributeError):
        return exception_type.endswith(("Error",)) and "ValueError" in exception_type
    return isinstance(kind, type) and issubclass(kind, ValueError)


def test_sampler_runs_at_the_largest_seed(comfyui, workflow_inputs):
    """Found by the at-a-bound runs: ComfyUI seeds its samplers with seed + 1, which overflowed torch's 64-bit
    seed at the largest seed the input offers ("ValueError: Overflow when unpacking long long" from torch)."""
    (spec,) = [spec for node_type, spec in NUMERIC if node_type == "CinemoSampler" and spec["name"] == "seed"]
    prompt, _, tag = _prompt(workflow_inputs, "CinemoSampler", "seed", spec["max"])
    comfyui.run(prompt)
    written = _tagged_files(comfyui.output, tag)
    assert written and all(_readable(path) for path in written), written
