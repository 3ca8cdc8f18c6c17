"""End frames in the core: the loop's pull generalised to a target residual (end latent minus first latent).

On the golden tiny UNet: the last frame's residual is the target exactly, the frames before it glide towards
it, windows and a motion mask (which wins: still cells stay 0) included; bad targets are named.
"""

import pytest
import torch

from cinemo_core.sampling.context_windows import ContextWindows
from cinemo_core.sampling.loop import (
    default_end_ramp,
    default_ramp,
    end_frame_weights,
    finish_on_target,
    pull_clean_residual,
    return_weights,
    scale_clean_residual,
)
from cinemo_core.sampling.sampler import sample_residual
from cinemo_core.sampling.schedule import CinemoSchedule

from test_context_windows import MOTION_ID, golden_inputs  # noqa: F401 - the shared golden fixture


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def sample(tiny_unet, golden_inputs, frames, batch=1, steps=6, **extra):
    base, cond, uncond = golden_inputs
    with torch.no_grad():
        return sample_residual(tiny_unet, randn(batch, 4, frames, 4, 8, seed=5), base, cond, uncond, MOTION_ID,
                               steps=steps, **extra)


def test_end_frame_weights_are_the_loop_ramp_landing_on_the_last_frame():
    assert end_frame_weights(6, 4).tolist() == pytest.approx([1, 0.8, 0.6, 0.4, 0.2, 0])
    assert end_frame_weights(6, 0).tolist() == [1, 1, 1, 1, 1, 0]
    assert end_frame_weights(1, 0).tolist() == [0]
    # a loop is an end frame equal to the first image one frame past the video
    for frames in (4, 15, 63):
        ramp = default_ramp(frames)
        assert torch.equal(end_frame_weights(frames + 1, ramp)[:-1], return_weights(frames, ramp))
    assert [default_end_ramp(n) for n in (1, 2, 15, 63)] == [0, 1, 4, 16]
    with pytest.raises(ValueError, match="end frame ramp must be"):
        end_frame_weights(6, 6)


def test_pull_without_target_is_the_loop_bit_for_bit_and_weight_0_frames_become_the_target():
    clean, target = randn(2, 4, 6, 3, 5, seed=1), randn(2, 4, 1, 3, 5, seed=2)
    loop = return_weights(6, 3)
    assert torch.equal(pull_clean_residual(clean, loop), clean * loop.view(1, 1, -1, 1, 1))
    weights = end_frame_weights(6, 3)
    pulled = pull_clean_residual(clean, weights, target)
    assert torch.equal(pulled[:, :, -1:], target)
    assert torch.equal(pulled[:, :, :2], clean[:, :, :2])
    expected = clean.double() * weights.double().view(1, 1, -1, 1, 1) + target.double() * (
        1 - weights.double().view(1, 1, -1, 1, 1))
    torch.testing.assert_close(pulled.double(), expected, rtol=1e-6, atol=1e-6)
    finished = finish_on_target(clean, weights, target)
    assert torch.equal(finished[:, :, -1:], target) and torch.equal(finished[:, :, :-1], clean[:, :, :-1])


def test_eps_rewrite_gives_the_pulled_clean_residual():
    schedule = CinemoSchedule()
    x, eps, target = randn(2, 4, 6, 3, 5, seed=3), randn(2, 4, 6, 3, 5, seed=4), randn(2, 4, 1, 3, 5, seed=5)
    factor = end_frame_weights(6, 3).view(1, 1, -1, 1, 1)
    for t in (981, 501, 21, 1):
        pulled = scale_clean_residual(eps, x, t, schedule, factor, (1 - factor) * target)
        a = schedule.alphas_cumprod[t].double()
        clean = (x.double() - (1 - a).sqrt() * eps.double()) / a.sqrt()
        clean_pulled = (x.double() - (1 - a).sqrt() * pulled.double()) / a.sqrt()
        expected = clean * factor.double() + (1 - factor.double()) * target.double()
        torch.testing.assert_close(clean_pulled, expected, rtol=1e-4, atol=1e-3)
        assert torch.equal(pulled[:, :, :2], eps[:, :, :2])


def distance_to_target(residual, target):
    return (residual[:, :, -1:] - target).flatten(1).norm(dim=1)


@pytest.mark.parametrize("frames,windows", [(15, None), (26, ContextWindows())], ids=["one-pass", "windows"])
def test_video_ends_exactly_on_the_end_frame(tiny_unet, golden_inputs, frames, windows):
    """The last residual is the target exactly; the ramp frames before it come closer to it step by step."""
    target = 0.5 * randn(2, 4, 1, 4, 8, seed=7)
    plain = sample(tiny_unet, golden_inputs, frames, batch=2, windows=windows)
    ended = sample(tiny_unet, golden_inputs, frames, batch=2, windows=windows, end_target=target)
    assert torch.equal(ended[:, :, -1:], target)
    assert (distance_to_target(plain, target) > 0.5 * target.flatten(1).norm(dim=1)).all()
    ramp = default_end_ramp(frames)
    distances = (ended - target).transpose(1, 2).flatten(2).norm(dim=2)  # [videos, frames]
    ramp_part = distances[:, frames - 1 - ramp:]
    assert (ramp_part[:, 1:] < ramp_part[:, :-1]).all(), distances


def test_one_target_for_all_videos_broadcasts(tiny_unet, golden_inputs):
    target = randn(1, 4, 1, 4, 8, seed=8)
    ended = sample(tiny_unet, golden_inputs, 7, batch=2, steps=3, end_target=target)
    assert torch.equal(ended[:, :, -1:], target.expand(2, -1, -1, -1, -1))


def test_the_motion_mask_wins_over_the_end_frame(tiny_unet, golden_inputs):
    """Still cells stay exactly 0 on every frame, the end frame too; moving cells end on the target."""
    target = randn(1, 4, 1, 4, 8, seed=9)
    mask = torch.zeros(1, 4, 8)
    mask[:, :, :4] = 1.0
    mask[:, :, 4] = 0.5
    ended = sample(tiny_unet, golden_inputs, 7, steps=4, end_target=target, motion_mask=mask)
    assert torch.count_nonzero(ended[..., 5:]) == 0
    assert torch.equal(ended[:, :, -1:, :, :4], target[..., :4])
    torch.testing.assert_close(ended[:, :, -1:, :, 4], 0.5 * target[..., 4])


def test_zero_target_ends_on_the_first_frame(tiny_unet, golden_inputs):
    ended = sample(tiny_unet, golden_inputs, 7, steps=3, end_target=torch.zeros(1, 4, 1, 4, 8))
    assert torch.count_nonzero(ended[:, :, -1]) == 0
    assert ended[:, :, 0].abs().max() > 1e-3


def test_bad_end_targets_are_named(tiny_unet, golden_inputs):
    with pytest.raises(ValueError, match=r"end_target must be the end frame's residual \[videos, 4, 1, 4, 8\]"):
        sample(tiny_unet, golden_inputs, 5, steps=1, end_target=torch.zeros(1, 4, 1, 8, 8))
    with pytest.raises(ValueError, match="end_target holds NaN"):
        sample(tiny_unet, golden_inputs, 5, steps=1, end_target=torch.full((1, 4, 1, 4, 8), float("nan")))
    with pytest.raises(ValueError, match="end_target has batch 3"):
        sample(tiny_unet, golden_inputs, 5, batch=2, steps=1, end_target=torch.zeros(3, 4, 1, 4, 8))
    with pytest.raises(ValueError, match="end_target and loop_ramp"):
        sample(tiny_unet, golden_inputs, 5, steps=1, end_target=torch.zeros(1, 4, 1, 4, 8), loop_ramp=2)
