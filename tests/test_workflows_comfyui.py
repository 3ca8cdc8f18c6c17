"""The example workflows in a real ComfyUI: the schema snapshot is current, and every API workflow passes
ComfyUI's validation and runs on the CPU with the stand-in weights at a tiny size, writing its files.

The API JSON is loaded as shipped and only rewritten where the test must: model and input file names (to the
stand-ins), 128x64 pixels, 4 frames, 4 steps and unique filename prefixes.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from comfy_models import stand_in_files  # noqa: F401  (test_server and others take it from here)

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
sys.path.insert(0, str(WORKFLOWS / "tools"))
import cinemo_workflows  # noqa: E402
from node_schemas import live_schemas, load_snapshot  # noqa: E402

NAMES = sorted(cinemo_workflows.SPECS)
SAVED = REPO / "tests" / "fixtures" / "shipped_workflows_0.1.0"


@dataclass(frozen=True)
class TinySize:
    """What a shipped workflow is shrunk to: pixels, frames per clip and sampling steps."""

    width: int = 128
    height: int = 64
    frames: int = 4
    steps: int = 4


DEFAULT_SIZE = TinySize()


def test_schema_snapshot_equals_the_live_schemas(comfyui):
    """If this fails, rerun workflows/tools/node_schemas.py and then workflows/tools/cinemo_workflows.py."""
    assert live_schemas(comfyui.node_classes) == load_snapshot()


def shrink(prompt: dict, files: dict, tag: str, size: TinySize = DEFAULT_SIZE) -> dict:
    """The test's rewrites of a shipped API workflow (see the module docstring)."""
    prompt = json.loads(json.dumps(prompt))
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        for (node_type, name), value in files.items():
            if kind == node_type:
                inputs[name] = value
        if kind in ("CinemoFirstFrameEncode", "CinemoVideoEncode"):
            inputs.update(width=size.width, height=size.height)
        if kind in ("CinemoConditioning", "CinemoVideoEncode"):
            inputs["frames"] = size.frames
        if kind in ("CinemoSampler", "CinemoScheduler", "CinemoInvertMotion"):
            inputs["steps"] = size.steps
        if kind == "CinemoContextWindows":  # windows shorter than the shrunk video, so that they are used
            inputs.update(window_frames=max(3, size.frames - 1), overlap=1)
        if "filename_prefix" in inputs:
            inputs["filename_prefix"] = f"{inputs['filename_prefix']}_{tag}"
    return prompt


def saved_files(output_dir: Path, outputs: dict, prompt: dict) -> dict[str, list[Path]]:
    """{class_type of the saving node: [files]} from the UI outputs of a run."""
    files: dict[str, list[Path]] = {}
    for node_id, ui in outputs.items():
        for value in ui.values():
            for item in value if isinstance(value, (list, tuple)) else []:
                if isinstance(item, dict) and "filename" in item:
                    path = output_dir / item.get("subfolder", "") / item["filename"]
                    files.setdefault(prompt[node_id]["class_type"], []).append(path)
    return files


def webp_frames(path: Path) -> tuple[int, tuple[int, int]]:
    from PIL import Image

    with Image.open(path) as image:
        return image.n_frames, image.size


def mp4_frames(path: Path) -> tuple[int, tuple[int, int]]:
    import av

    with av.open(str(path)) as container:
        frames = [frame for frame in container.decode(video=0)]
    return len(frames), (frames[0].width, frames[0].height)


def expected_outputs(size: TinySize = DEFAULT_SIZE) -> dict[str, list[tuple[str, int, tuple[int, int]]]]:
    """{workflow: [(saving node type, frame count, (width, height))]} each workflow must write at ``size``."""
    frames, one, three = size.frames, (size.width, size.height), (3 * size.width + 16, size.height)
    return {
        "cinemo_image_to_video": [("SaveAnimatedWEBP", frames, one), ("SaveVideo", frames, one)],
        "cinemo_paper_exact": [("SaveAnimatedWEBP", frames, one), ("SaveVideo", frames, one)],
        "cinemo_motion_intensities": [("SaveAnimatedWEBP", frames, three)],
        "cinemo_init_comparison": [("SaveAnimatedWEBP", frames, three)],
        "cinemo_chained_clips": [("SaveVideo", 2 * frames - 1, one)],
        "cinemo_motion_from_video": [("SaveVideo", frames, one)],
        "cinemo_motion_transfer": [("SaveAnimatedWEBP", frames, one), ("SaveVideo", frames, one)],
        "cinemo_long_video": [("SaveAnimatedWEBP", frames, one), ("SaveVideo", frames, one)],
        "cinemo_loop": [("SaveAnimatedWEBP", frames, one), ("SaveVideo", frames, one)],
        "cinemo_first_and_last_frame": [("SaveAnimatedWEBP", frames, one), ("SaveVideo", frames, one)],
        "cinemo_cinemagraph": [("SaveAnimatedWEBP", frames, one), ("SaveVideo", frames, one)],
    }


EXPECTED = expected_outputs()


def check_outputs(
    output_dir: Path, outputs: dict, prompt: dict, name: str, tag: str, size: TinySize = DEFAULT_SIZE
) -> None:
    """The run of workflow ``name`` saved exactly the files ``expected_outputs`` lists, with their frames and size."""
    files = saved_files(output_dir, outputs, prompt)
    for kind, frames, pixels in expected_outputs(size)[name]:
        assert len(files.get(kind, [])) == 1, (kind, files)
        path = files[kind][0]
        assert path.is_file() and tag in path.name and path.stat().st_size > 0
        read = webp_frames if path.suffix == ".webp" else mp4_frames
        assert path.suffix == (".webp" if kind == "SaveAnimatedWEBP" else ".mp4")
        assert read(path) == (frames, pixels), (name, path)
    numbers = {re.search(r"_(\d{5})_\.\w+$", path.name).group(1) for paths in files.values() for path in paths}
    assert len(numbers) == 1, (name, files)  # one run's WEBP and MP4 carry the same number
    if name == "cinemo_motion_from_video":
        preview = next(ui for key, ui in outputs.items() if prompt[key]["class_type"] == "PreviewAny")
        assert 0 <= int(preview["text"][0]) <= 19


def test_every_workflow_has_an_expectation():
    assert sorted(EXPECTED) == NAMES


@pytest.mark.parametrize("name", sorted(path.stem for path in SAVED.glob("*.json")))
def test_saved_api_workflow_still_validates(comfyui, workflow_inputs, name):
    """An API prompt saved from 0.1.0 passes today's validation unchanged (but for the model file names)."""
    saved = json.loads((SAVED / "api" / f"{name}.json").read_text())
    for node in saved.values():
        for (node_type, input_name), file_name in workflow_inputs.items():
            if node["class_type"] == node_type:
                node["inputs"][input_name] = file_name
    ok, error, _, node_errors = comfyui.validate(saved)
    assert ok, (error, node_errors)


@pytest.mark.parametrize("name", NAMES)
def test_api_workflow_validates_and_runs(comfyui, workflow_inputs, name):
    shipped = json.loads(cinemo_workflows.api_path(name).read_text())
    tag = uuid.uuid4().hex[:8]
    prompt = shrink(shipped, workflow_inputs, tag)
    ok, error, outputs_to_run, node_errors = comfyui.validate(prompt)
    assert ok, (error, node_errors)
    assert {prompt[key]["class_type"] for key in outputs_to_run} >= {kind for kind, _, _ in EXPECTED[name]}
    outputs, _ = comfyui.run(prompt)
    check_outputs(comfyui.output, outputs, prompt, name, tag)
