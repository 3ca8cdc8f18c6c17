"""End frames in a real ComfyUI: Cinemo Conditioning's end_frame makes the video end on a second picture under
every sampler path (Cinemo Sampler, core KSampler, SamplerCustomAdvanced, context windows), with the motion mask
winning, and bad end frames refused by name.

The golden tiny case (latent 8x16). The sampled residual's last frame must be the end latent minus the first
latent (the LATENT is unscaled: equal up to the rounding of the model's latent scaling), the ramp frames before
it must come closer to it frame by frame, and without end_frame the last frame must be far from it.
"""

import pytest
import torch
from comfy_models import call_node, golden_conditioning
from test_nodes_cinemagraph import (
    MOVING_COLUMNS,
    STILL_COLUMNS,
    cinemo_sampler,
    custom_advanced,
    half_mask,
    ksampler,
)

FRAMES = 8


def end_latent(golden, batch=1, seed=4):
    first = golden["base_content"][:, :, 0] / 0.18215
    delta = 2.0 * torch.randn(batch, *first.shape[1:], generator=torch.Generator().manual_seed(seed))
    return {"samples": first + delta}


def end_conditioning(golden, end_frame, frames=FRAMES, first_frame=None, **extra):
    first_frame = first_frame or {"samples": golden["base_content"][:, :, 0] / 0.18215}
    positive, negative, latent = call_node(
        "CinemoConditioning", positive=[[golden["encoder_hidden_states"], {}]],
        negative=[[golden["negative_encoder_hidden_states"], {}]], first_frame=first_frame, intensity=0,
        frames=frames, raw_motion_id=float(golden["motion_bucket_id"].item()), end_frame=end_frame, **extra,
    )
    return positive, negative, latent, first_frame


def distances(residual, target):
    """|frame - target| per video and residual frame."""
    return (residual - target.unsqueeze(2)).transpose(1, 2).flatten(2).norm(dim=2)


def assert_ends_on(residual, target, ramp=None):
    """The last frame is the target; with ``ramp``, the ramp frames before it come closer frame by frame (checked
    for DDIM: a few steps of a higher-order sampler on the random tiny model overshoot wildly, up to 800)."""
    last = residual[:, :, -1]
    torch.testing.assert_close(last, target.expand_as(last), rtol=1e-5, atol=1e-5)
    if ramp is not None:
        gliding = distances(residual, target)[:, -1 - ramp:]
        assert (gliding[:, 1:] < gliding[:, :-1]).all(), gliding


def sample(path, model, positive, negative, latent, first_frame):
    if path == "cinemo_sampler":
        return cinemo_sampler(model, positive, negative, latent, first_frame)
    if path == "cinemo_sampler_euler":
        return cinemo_sampler(model, positive, negative, latent, first_frame, sampler="euler_ancestral",
                              scheduler="karras")
    if path == "ksampler":
        return ksampler(model, positive, negative, latent)
    return custom_advanced(model, positive, negative, latent, first_frame)


@pytest.mark.parametrize("path", ["cinemo_sampler", "cinemo_sampler_euler", "ksampler", "custom_advanced"])
def test_video_ends_on_the_end_frame_under_every_sampler(golden_model, golden, path):
    end = end_latent(golden)
    positive, negative, latent, first_frame = end_conditioning(golden, end)
    target = end["samples"] - first_frame["samples"]
    residual = sample(path, golden_model, positive, negative, latent, first_frame)
    assert_ends_on(residual, target, ramp=4 if path == "cinemo_sampler" else None)
    plain_positive, plain_negative, plain_latent, _ = golden_conditioning(golden, frames=FRAMES)
    plain = sample(path, golden_model, plain_positive, plain_negative, plain_latent, first_frame)
    assert (distances(plain, target)[:, -1] > 0.5 * target.flatten(1).norm(dim=1)).all()


def test_end_frame_with_context_windows_and_one_end_frame_for_two_videos(golden_model, golden):
    first = golden["base_content"][:, :, 0] / 0.18215
    first_frame = {"samples": torch.cat([first, first + 0.5])}
    end = end_latent(golden)
    positive, negative, latent, _ = end_conditioning(golden, end, frames=14, first_frame=first_frame)
    (windowed,) = call_node("CinemoContextWindows", model=golden_model, window_frames=6, overlap=2,
                            schedule="standard_uniform", fuse_method="relative")
    target = end["samples"] - first_frame["samples"]
    ddim = cinemo_sampler(windowed, positive, negative, latent, first_frame)
    assert ddim.shape[0] == 2
    assert_ends_on(ddim, target, ramp=4)
    assert_ends_on(custom_advanced(windowed, positive, negative, latent, first_frame), target)


def test_the_motion_mask_wins_over_the_end_frame(golden_model, golden):
    end = end_latent(golden)
    positive, negative, latent, first_frame = end_conditioning(golden, end, motion_mask=half_mask())
    target = end["samples"] - first_frame["samples"]
    for residual in (cinemo_sampler(golden_model, positive, negative, latent, first_frame),
                     ksampler(golden_model, positive, negative, latent)):
        assert torch.count_nonzero(residual[..., STILL_COLUMNS]) == 0
        torch.testing.assert_close(residual[:, :, -1, :, MOVING_COLUMNS], target[..., MOVING_COLUMNS],
                                   rtol=1e-5, atol=1e-5)


def test_end_frame_and_seamless_loop_together_are_refused(golden_model, golden):
    positive, negative, latent, first_frame = end_conditioning(golden, end_latent(golden))
    (looped,) = call_node("CinemoSeamlessLoop", model=golden_model, ramp_frames=0)
    with pytest.raises(Exception, match="Cinemo Seamless Loop and Cinemo Conditioning's end_frame"):
        ksampler(looped, positive, negative, latent)


def test_bad_end_frames_are_named(comfyui, golden):
    with pytest.raises(ValueError, match=r"end_frame is for 64x32 pixels \(latent \[1, 4, 4, 8\]\) but first_frame "
                       r"is for 128x64 \(latent \[1, 4, 8, 16\]\)"):
        end_conditioning(golden, {"samples": torch.zeros(1, 4, 4, 8)})
    with pytest.raises(ValueError, match=r"end_frame holds 3 pictures \(latent \[3, 4, 8, 16\]\) but first_frame 1 "
                       r"\(latent \[1, 4, 8, 16\]\)"):
        end_conditioning(golden, end_latent(golden, batch=3))
    with pytest.raises(ValueError, match="end_frame holds NaN or infinite values"):
        end_conditioning(golden, {"samples": torch.full((1, 4, 8, 16), float("inf"))})
    with pytest.raises(ValueError, match="end_frame must be a first-frame latent"):
        end_conditioning(golden, {"samples": torch.zeros(1, 4, 3, 8, 16)})
