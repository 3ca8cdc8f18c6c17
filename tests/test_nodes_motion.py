"""Cinemo Motion From Video in a real ComfyUI: its output is cinemo_core's estimate on the frames it received."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

from cinemo_core.sampling.motion import estimate_intensity, mean_consecutive_ssim


def _texture(seed: int, size: int = 48, smooth: int = 8) -> np.ndarray:
    """A smooth random RGB texture (noise upsampled ``smooth`` times), uint8 [size, size + 16, 3]."""
    shape = (size // smooth, (size + 16) // smooth, 3)
    small = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size + 16, size), Image.BICUBIC))


def _save_clip(path, frames: list[np.ndarray]) -> None:
    """An animated PNG; LoadImage returns all of its frames as one IMAGE batch."""
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=125)


def _motion_prompt(load: dict, frame_step: int = 1) -> dict:
    return {
        **load,
        "9": {"class_type": "CinemoMotionFromVideo", "inputs": {"images": ["2", 0], "frame_step": frame_step}},
    }


def test_still_clip_has_intensity_zero(comfyui):
    Image.fromarray(_texture(0)).save(comfyui.input / "still.png")
    load = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "still.png"}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 5}},
    }
    values, ui = comfyui.execute(_motion_prompt(load))
    frames = values["2"][0]
    assert frames.shape[0] == 5
    intensity, ssim = values["9"]
    assert intensity == estimate_intensity(frames) == 0
    assert ssim == pytest.approx(1.0, abs=1e-12)
    assert ui["9"]["text"] == ["motion intensity 0 (mean SSIM 1.0000)"]


def test_moving_clip_matches_the_core_estimator(comfyui):
    texture = np.tile(_texture(1), (1, 2, 1))
    frames = [np.ascontiguousarray(texture[:, i : i + 64]) for i in range(7)]  # pans 1 px per frame
    _save_clip(comfyui.input / "pan.png", frames)
    load = {"2": {"class_type": "LoadImage", "inputs": {"image": "pan.png"}}}
    values, ui = comfyui.execute(_motion_prompt(load))
    received = values["2"][0]
    assert received.shape == (7, 48, 64, 3)
    intensity, ssim = values["9"]
    assert isinstance(intensity, int) and 0 < intensity < 19  # not clamped
    assert intensity == estimate_intensity(received)
    assert ssim == pytest.approx(mean_consecutive_ssim(received), abs=1e-12)
    assert ui["9"]["text"] == [f"motion intensity {intensity} (mean SSIM {ssim:.4f})"]

    step_values, _ = comfyui.execute(_motion_prompt(load, frame_step=2))
    assert intensity < step_values["9"][0] == estimate_intensity(received[::2])
    assert step_values["9"][1] == pytest.approx(mean_consecutive_ssim(received[::2]), abs=1e-12)
    assert step_values["9"][1] < ssim  # frames further apart differ more


def test_one_frame_is_rejected_with_a_clear_message(comfyui):
    Image.fromarray(_texture(2)).save(comfyui.input / "single.png")
    load = {"2": {"class_type": "LoadImage", "inputs": {"image": "single.png"}}}
    with pytest.raises(RuntimeError, match="needs a clip of at least 2 frames to measure motion, got 1 frame"):
        comfyui.run(_motion_prompt(load))


def test_schema(comfyui):
    node = comfyui.node_classes["CinemoMotionFromVideo"]
    assert node.CATEGORY == "Cinemo" and node.OUTPUT_NODE
    inputs = node.INPUT_TYPES()["required"]
    assert set(inputs) == {"images", "frame_step"}
    assert all(spec[1].get("tooltip") for spec in inputs.values())
    assert tuple(node.RETURN_TYPES) == ("INT", "FLOAT")
