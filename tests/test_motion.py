"""Motion-intensity mapping and the SSIM estimator (checked against scikit-image)."""

import logging

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from cinemo_core.settings import SettingError
from cinemo_core.sampling.motion import (
    estimate_intensity,
    intensity_to_motion_id,
    mean_consecutive_ssim,
    raw_motion_id,
    ssim_to_intensity,
)


def test_intensity_mapping_matches_demo_app():
    # app.py feeds 100 - slider for slider 1..20; intensity = slider - 1.
    for slider in range(1, 21):
        assert intensity_to_motion_id(slider - 1) == 100 - slider
    assert intensity_to_motion_id(0) == 99.0
    assert intensity_to_motion_id(19) == 80.0
    assert intensity_to_motion_id(np.int64(5)) == 94.0
    assert intensity_to_motion_id(3.0) == 96.0


@pytest.mark.parametrize("bad", [-1, 20, 2.5, float("nan"), True, "3", None])
def test_intensity_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="intensity"):
        intensity_to_motion_id(bad)


def test_raw_motion_id():
    assert raw_motion_id(8) == 8.0
    assert raw_motion_id(25.5) == 25.5
    for bad in (float("inf"), float("nan"), "8", None, -1, 1000.5, True):
        with pytest.raises(SettingError, match="raw motion id must be a number from 0 to 1000") as error:
            raw_motion_id(bad)
        assert error.value.setting == "motion_id"


def test_raw_motion_id_outside_the_trained_ids_warns_naming_them(caplog):
    with caplog.at_level(logging.WARNING, logger="cinemo_core.settings"):
        assert raw_motion_id(90) == 90.0 and raw_motion_id(80) == 80.0 and raw_motion_id(99) == 99.0
        assert not caplog.records
        assert raw_motion_id(500) == 500.0
    (record,) = caplog.records
    assert "500" in record.getMessage() and "outside 80..99" in record.getMessage()


def reference_ssim(frames: np.ndarray) -> float:
    frames = frames.astype(np.float64) / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float64)
    luma = frames @ np.array([0.299, 0.587, 0.114])
    values = [
        structural_similarity(
            luma[i], luma[i + 1], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
        )
        for i in range(len(luma) - 1)
    ]
    return float(np.mean(values))


def moving_clip(frames: int, shift: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.random((24 + frames * shift, 30, 3))
    # Smooth the texture a little so SSIM sits in a realistic range.
    base = (base + np.roll(base, 1, 0) + np.roll(base, 1, 1)) / 3
    clip = np.stack([base[i * shift : i * shift + 24] for i in range(frames)])
    return np.clip(clip + noise * rng.standard_normal(clip.shape), 0, 1)


@pytest.mark.parametrize("shift,noise", [(0, 0.0), (0, 0.02), (1, 0.01), (3, 0.05)])
def test_ssim_matches_skimage(shift, noise):
    clip = moving_clip(4, shift, noise)
    ours = mean_consecutive_ssim(torch.from_numpy(clip).float())
    assert abs(ours - reference_ssim(clip.astype(np.float32))) < 1e-4
    assert abs(mean_consecutive_ssim(clip) - reference_ssim(clip)) < 1e-4


def test_ssim_accepts_uint8():
    clip = (moving_clip(3, 1, 0.02, seed=3) * 255).round().astype(np.uint8)
    assert abs(mean_consecutive_ssim(clip) - reference_ssim(clip)) < 1e-4
    assert abs(mean_consecutive_ssim(torch.from_numpy(clip)) - reference_ssim(clip)) < 1e-4


def test_estimate_intensity_follows_ssim():
    static = moving_clip(3, 0, 0.0)
    assert estimate_intensity(static) == 0
    moving = moving_clip(3, 4, 0.1)
    expected = 99 - min(max(round(100 * reference_ssim(moving)), 80), 99)
    assert estimate_intensity(moving) == expected
    assert expected > 0
    assert ssim_to_intensity(0.9) == 9
    assert ssim_to_intensity(0.2) == 19
    assert ssim_to_intensity(1.0) == 0


def test_estimator_rejects_bad_clips():
    with pytest.raises(ValueError, match="at least 2 frames"):
        mean_consecutive_ssim(np.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match="shape"):
        mean_consecutive_ssim(np.zeros((3, 32, 32)))
    with pytest.raises(ValueError, match="11x11"):
        mean_consecutive_ssim(np.zeros((3, 8, 32, 3)))
    with pytest.raises(ValueError, match="uint8"):
        mean_consecutive_ssim(np.zeros((3, 32, 32, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="finite"):
        ssim_to_intensity(float("nan"))
