"""The example workflows in a real ComfyUI: the schema snapshot is current, and every API workflow passes
ComfyUI's validation and runs on the CPU with the stand-in weights at a tiny size, writing its files.

The API JSON is loaded as shipped and only rewritten where the test must: model and input file names (to the
stand-ins), 128x64 pixels, 4 frames, 4 steps and unique filename prefixes.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
sys.path.insert(0, str(WORKFLOWS / "tools"))
import cinemo_workflows  # noqa: E402
from node_schemas import live_schemas, load_snapshot  # noqa: E402

NAMES = sorted(cinemo_workflows.SPECS)
SAVED = REPO / "tests" / "fixtures" / "shipped_workflows_0.1.0"
WIDTH, HEIGHT, FRAMES, STEPS = 128, 64, 4, 4
TEMPORAL_VAE = "workflow_test_temporal_vae"
REFERENCE_VIDEO = "workflow_test_reference.mp4"


def test_schema_snapshot_equals_the_live_schemas(comfyui):
    """If this fails, rerun workflows/tools/node_schemas.py and then workflows/tools/cinemo_workflows.py."""
    assert live_schemas(comfyui.node_classes) == load_snapshot()


@pytest.fixture(scope="module")
def workflow_inputs(comfyui, comfy_models):
    """A random SVD-sized temporal VAE (diffusers folder in models/vae) and a moving reference clip in input/."""
    import av
    from diffusers import AutoencoderKLTemporalDecoder

    folder = comfyui.models / "vae" / TEMPORAL_VAE
    if not folder.exists():
        torch.manual_seed(5)
        vae = AutoencoderKLTemporalDecoder(
            block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
            layers_per_block=2, latent_channels=4,
        )
        vae.half().save_pretrained(folder, safe_serialization=True)
    clip = comfyui.input / REFERENCE_VIDEO
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        y, x = np.mgrid[0:48, 0:64]
        for t in range(6):
            rgb = np.stack([(x * 4 + t * 20) % 256, y * 5, (x + y + t * 9) % 256], axis=-1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    import folder_paths

    folder_paths.filename_list_cache.clear()
    return {
        ("CinemoModelLoader", "model_name"): comfy_models.clip_cinemo,
        ("CLIPLoader", "clip_name"): comfy_models.clip_l,
        ("VAELoader", "vae_name"): comfy_models.vae,
        ("CinemoTemporalVAELoader", "vae_name"): TEMPORAL_VAE,
        ("LoadImage", "image"): comfy_models.image,
        ("LoadVideo", "file"): REFERENCE_VIDEO,
    }


def shrink(prompt: dict, files: dict, tag: str) -> dict:
    """The test's rewrites of a shipped API workflow (see the module docstring)."""
    prompt = json.loads(json.dumps(prompt))
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        for (node_type, name), value in files.items():
            if kind == node_type:
                inputs[name] = value
        if kind in ("CinemoFirstFrameEncode", "CinemoVideoEncode"):
            inputs.update(width=WIDTH, height=HEIGHT)
        if kind in ("CinemoConditioning", "CinemoVideoEncode"):
            inputs["frames"] = FRAMES
        if kind in ("CinemoSampler", "CinemoScheduler", "CinemoInvertMotion"):
            inputs["steps"] = STEPS
        if "filename_prefix" in inputs:
            inputs["filename_prefix"] = f"{inputs['filename_prefix']}_{tag}"
    return prompt


def saved_files(comfyui, outputs: dict, prompt: dict) -> dict[str, list[Path]]:
    """{class_type of the saving node: [files]} from the UI outputs of a run."""
    files: dict[str, list[Path]] = {}
    for node_id, ui in outputs.items():
        for value in ui.values():
            for item in value if isinstance(value, (list, tuple)) else []:
                if isinstance(item, dict) and "filename" in item:
                    path = comfyui.output / item.get("subfolder", "") / item["filename"]
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


#: (saving node type, frame count, (width, height)) each workflow must write at the test size.
EXPECTED = {
    "cinemo_image_to_video": [("SaveAnimatedWEBP", FRAMES, (WIDTH, HEIGHT)), ("SaveVideo", FRAMES, (WIDTH, HEIGHT))],
    "cinemo_paper_exact": [("SaveAnimatedWEBP", FRAMES, (WIDTH, HEIGHT)), ("SaveVideo", FRAMES, (WIDTH, HEIGHT))],
    "cinemo_motion_intensities": [("SaveAnimatedWEBP", FRAMES, (3 * WIDTH + 16, HEIGHT))],
    "cinemo_init_comparison": [("SaveAnimatedWEBP", FRAMES, (3 * WIDTH + 16, HEIGHT))],
    "cinemo_chained_clips": [("SaveVideo", 2 * FRAMES - 1, (WIDTH, HEIGHT))],
    "cinemo_motion_from_video": [("SaveVideo", FRAMES, (WIDTH, HEIGHT))],
    "cinemo_motion_transfer": [("SaveAnimatedWEBP", FRAMES, (WIDTH, HEIGHT)), ("SaveVideo", FRAMES, (WIDTH, HEIGHT))],
}


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
    files = saved_files(comfyui, outputs, prompt)
    for kind, frames, size in EXPECTED[name]:
        assert len(files.get(kind, [])) == 1, (kind, files)
        path = files[kind][0]
        assert path.is_file() and tag in path.name and path.stat().st_size > 0
        read = webp_frames if path.suffix == ".webp" else mp4_frames
        assert path.suffix == (".webp" if kind == "SaveAnimatedWEBP" else ".mp4")
        assert read(path) == (frames, size), (name, path)
    if name == "cinemo_motion_from_video":
        preview = next(ui for key, ui in outputs.items() if prompt[key]["class_type"] == "PreviewAny")
        assert 0 <= int(preview["text"][0]) <= 19
