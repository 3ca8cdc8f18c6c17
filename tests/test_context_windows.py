"""Context windows and seamless loops in the core sampler, on the golden tiny UNet and hand-derived windows."""

import pytest
import torch
from safetensors.torch import load_file

from cinemo_core.sampling.context_windows import (
    BATCHED,
    FUSE_METHODS,
    LONG_VIDEO_WINDOWS,
    LOOPED_UNIFORM,
    OVERLAP_LINEAR,
    PYRAMID,
    RELATIVE,
    SCHEDULES,
    STANDARD_STATIC,
    STANDARD_UNIFORM,
    ContextWindows,
    fuse_weights,
    ordered_halving,
    windowed_prediction,
)
from cinemo_core.sampling.loop import default_ramp, return_weights, scale_clean_residual
from cinemo_core.sampling.sampler import sample_residual
from cinemo_core.sampling.schedule import CinemoSchedule

MOTION_ID = 90.0


def span(start, stop):
    return list(range(start, stop))


def coverage(num_frames: int, options: ContextWindows, step: int) -> torch.Tensor:
    """How many windows hold each frame at ``step``."""
    counts = torch.zeros(num_frames, dtype=torch.int64)
    for window in options.windows(num_frames, step):
        counts[window] += 1
    return counts


@pytest.fixture(scope="module")
def golden_inputs(tiny_a_dir):
    """The golden first frame (its top-left 4x8 corner, to keep the runs short) and text embeddings."""
    golden = load_file(tiny_a_dir / "case.safetensors")
    base = golden["base_content"][..., :4, :8].contiguous()
    return base, golden["encoder_hidden_states"], golden["negative_encoder_hidden_states"]


def noise(frames, seed=0, batch=1):
    return torch.randn(batch, 4, frames, 4, 8, generator=torch.Generator().manual_seed(seed))


class RecordingUNet:
    """The tiny UNet, with every call's inputs and output kept."""

    def __init__(self, unet):
        self.unet = unet
        self.calls = []

    def __call__(self, x, timesteps, context, *, base_content, motion_ids):
        out = self.unet(x, timesteps, context, base_content=base_content, motion_ids=motion_ids)
        self.calls.append({"x": x.clone(), "t": timesteps.clone(), "context": context.clone(),
                           "base": base_content.clone(), "ids": motion_ids.clone(), "out": out.clone()})
        return out


# --- schedules ---------------------------------------------------------------------------------------------

def test_static_windows_end_on_the_last_frame():
    static = ContextWindows(schedule=STANDARD_STATIC)
    assert static.windows(40) == [span(0, 15), span(11, 26), span(22, 37), span(25, 40)]
    assert static.windows(40, step=3) == static.windows(40)
    assert ContextWindows(schedule=STANDARD_STATIC, overlap=0).windows(30) == [span(0, 15), span(15, 30)]
    assert static.windows(15) == [span(0, 15)]


def test_cinemo_defaults():
    assert ContextWindows() == LONG_VIDEO_WINDOWS
    assert (LONG_VIDEO_WINDOWS.length, LONG_VIDEO_WINDOWS.overlap) == (15, 4)
    assert (LONG_VIDEO_WINDOWS.schedule, LONG_VIDEO_WINDOWS.fuse) == (STANDARD_UNIFORM, RELATIVE)


def test_batched_windows_cut_without_overlap():
    assert ContextWindows(schedule=BATCHED).windows(40) == [span(0, 15), span(15, 30), span(30, 40)]


def test_ordered_halving_visits_fractions_coarse_to_fine():
    assert [ordered_halving(step) for step in range(8)] == [0, 0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875]


def test_uniform_windows_shift_from_step_to_step():
    options = ContextWindows(schedule=STANDARD_UNIFORM)
    # step 0: starts 0, 11, 22, 33; the last wraps past frame 39 and is moved back to end there
    assert options.windows(40, step=0) == [span(0, 15), span(11, 26), span(22, 37), span(25, 40)]
    # step 1: shifted by half the video (20): starts 20, 31, 42 (= 2), 53 (= 13); the window from 31 wraps,
    # is moved back to 25..39, and a window from frame 0 is added since the next one (2..16) misses frame 0
    assert options.windows(40, step=1) == [span(20, 35), span(25, 40), span(0, 15), span(2, 17), span(13, 28)]
    looped = ContextWindows(schedule=LOOPED_UNIFORM)
    assert looped.windows(40, step=1) == [
        span(20, 35), span(31, 40) + span(0, 6), span(2, 17), span(13, 28),
    ]
    closed = ContextWindows(schedule=LOOPED_UNIFORM, closed_loop=True)
    assert closed.windows(40, step=0) == [span(0, 15), span(11, 26), span(22, 37), span(33, 40) + span(0, 8)]


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("closed_loop", [False, True])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_windows_cover_every_frame(schedule, closed_loop, stride):
    for overlap in (0, 4, 14):
        options = ContextWindows(schedule=schedule, overlap=overlap, stride=stride, closed_loop=closed_loop)
        for frames in [*range(1, 70), 127]:
            for step in range(6):
                try:
                    windows = options.windows(frames, step)
                except ValueError as error:  # only strided windows wider than the video
                    assert stride > 1 and schedule in (STANDARD_UNIFORM, LOOPED_UNIFORM), error
                    assert "Use stride 1" in str(error)
                    continue
                assert (coverage(frames, options, step) >= 1).all(), (frames, step, windows)
                assert all(0 <= frame < frames for window in windows for frame in window)
                if frames > options.length:
                    assert len(windows) > 1
                    if schedule != BATCHED:
                        assert {len(window) for window in windows} == {15}


def test_bad_window_settings_are_named():
    with pytest.raises(ValueError, match="overlap must be from 0 to length - 1 = 14"):
        ContextWindows(overlap=15)
    with pytest.raises(ValueError, match="context schedule must be one of"):
        ContextWindows(schedule="uniform")
    with pytest.raises(ValueError, match="fuse method must be one of"):
        ContextWindows(fuse="gaussian")
    with pytest.raises(ValueError, match="overlap-linear"):
        ContextWindows(fuse=OVERLAP_LINEAR, overlap=0)
    with pytest.raises(ValueError, match="length must be at least 1"):
        ContextWindows(length=0)


# --- fusion ------------------------------------------------------------------------------------------------

def test_fuse_weights_follow_their_definitions():
    options = ContextWindows(fuse=PYRAMID)
    assert fuse_weights(span(0, 15), 40, options).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 7, 6, 5, 4, 3, 2, 1]
    assert fuse_weights(span(0, 4), 40, options).tolist() == [1, 2, 2, 1]
    linear = ContextWindows(fuse=OVERLAP_LINEAR)
    middle = fuse_weights(span(11, 26), 40, linear)
    expected = torch.tensor([1e-37, 1 / 3, 2 / 3] + [1.0] * 9 + [2 / 3, 1 / 3, 1e-37])
    torch.testing.assert_close(middle, expected)
    assert fuse_weights(span(0, 15), 40, linear)[:4].tolist() == [1, 1, 1, 1]  # nothing to blend with on the left
    assert fuse_weights(span(25, 40), 40, linear)[-4:].tolist() == [1, 1, 1, 1]
    relative = fuse_weights(span(10, 25), 40, ContextWindows(fuse=RELATIVE))
    centre, half = 17.0, (14 + 0.01) / 2
    assert relative.tolist() == pytest.approx([max(0.01, 1 - abs(f - centre) / half) for f in span(10, 25)])


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("fuse", FUSE_METHODS)
def test_overlap_weights_sum_to_one(schedule, fuse):
    """A prediction that returns its input slice fuses back to the input: the weights of each frame sum to 1."""
    if (schedule, fuse) == (BATCHED, OVERLAP_LINEAR):
        with pytest.raises(ValueError, match="do not overlap"):
            ContextWindows(schedule=schedule, fuse=fuse)
        return
    options = ContextWindows(schedule=schedule, fuse=fuse, closed_loop=schedule == LOOPED_UNIFORM)
    for frames in (15, 16, 26, 40, 63):
        x = torch.randn(2, 4, frames, 3, 5, dtype=torch.float64)
        for step in range(4):
            torch.testing.assert_close(windowed_prediction(lambda part: part, x, options, step), x)
            ones = windowed_prediction(lambda part: torch.ones_like(part), x, options, step)
            torch.testing.assert_close(ones, torch.ones_like(x))


def test_fusion_is_the_weighted_mean_of_the_windows():
    options = ContextWindows(schedule=STANDARD_STATIC, fuse=PYRAMID)
    x = torch.zeros(1, 1, 40, 1, 1, dtype=torch.float64)
    windows = options.windows(40)
    values = iter([10.0, 20.0, 30.0, 40.0])
    fused = windowed_prediction(lambda part: torch.full_like(part, next(values)), x, options)
    # frame 12 lies in windows 0 (position 12, weight 3) and 1 (position 1, weight 2)
    assert fused[0, 0, 12, 0, 0].item() == pytest.approx((3 * 10 + 2 * 20) / 5)
    # frame 30 lies in windows 2 (position 8, weight 7) and 3 (position 5, weight 6)
    assert fused[0, 0, 30, 0, 0].item() == pytest.approx((7 * 30 + 6 * 40) / 13)
    assert windows[1][1] == 12 and windows[3][5] == 30


# --- the windowed sampler ------------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("frames", [1, 7, 15])
def test_up_to_one_window_is_bit_identical_to_one_pass(tiny_unet, golden_inputs, schedule, frames):
    base, cond, uncond = golden_inputs
    x = noise(frames)
    with torch.no_grad():
        plain = sample_residual(tiny_unet, x, base, cond, uncond, MOTION_ID, steps=3)
        windowed = sample_residual(tiny_unet, x, base, cond, uncond, MOTION_ID, steps=3,
                                   windows=ContextWindows(schedule=schedule))
    assert torch.equal(plain, windowed)


@pytest.mark.parametrize("schedule,fuse", [(STANDARD_STATIC, PYRAMID), (STANDARD_UNIFORM, RELATIVE)])
def test_each_window_is_a_direct_unet_call_and_steps_fuse_them(tiny_unet, golden_inputs, schedule, fuse):
    """Every UNet call sees one window of the current sample with the full first frame and motion id; each
    DDIM step uses the fuse-weighted mean of the windows' guided predictions (re-derived here)."""
    base, cond, uncond = golden_inputs
    options = ContextWindows(schedule=schedule, fuse=fuse)
    frames, steps, scale = 22, 2, 7.5
    schedule_ = CinemoSchedule()
    recorder = RecordingUNet(tiny_unet)
    states = [noise(frames, seed=4)]
    with torch.no_grad():
        final = sample_residual(recorder, states[0], base, cond, uncond, MOTION_ID, steps=steps, guidance_scale=scale,
                                windows=options, callback=lambda i, n, t, x: states.append(x.clone()))
    calls = iter(recorder.calls)
    for step, t in enumerate(schedule_.ddim_timesteps(steps).tolist()):
        x = states[step]
        total = torch.zeros_like(x)
        weight_sum = torch.zeros(frames, dtype=torch.float64)
        for window in options.windows(frames, step):
            call = next(calls)
            assert torch.equal(call["x"], torch.cat([x[:, :, window]] * 2))
            assert torch.equal(call["base"], torch.cat([base, base]))
            assert call["ids"].tolist() == [MOTION_ID, MOTION_ID]
            assert call["t"].tolist() == [t, t]
            assert torch.equal(call["context"], torch.cat([uncond, cond]))
            with torch.no_grad():
                direct = tiny_unet(x[:, :, window].repeat(2, 1, 1, 1, 1), torch.tensor([t, t]),
                                   torch.cat([uncond, cond]), base_content=base.repeat(2, 1, 1, 1, 1),
                                   motion_ids=torch.tensor([MOTION_ID, MOTION_ID]))
            torch.testing.assert_close(call["out"], direct, rtol=1e-5, atol=1e-5)
            eps_u, eps_c = direct.chunk(2)
            guided = eps_u + scale * (eps_c - eps_u)
            if fuse == RELATIVE:
                first, last = window[0], window[-1]
                weights = [max(0.01, 1 - abs(f - (first + last) / 2) / ((last - first + 0.01) / 2)) for f in window]
            elif fuse == PYRAMID:
                weights = [min(p + 1, len(window) - p) for p in range(len(window))]
            else:
                weights = fuse_weights(window, frames, options).tolist()
            for position, frame in enumerate(window):
                total[:, :, frame] += weights[position] * guided[:, :, position]
                weight_sum[frame] += weights[position]
        eps = total / weight_sum.view(1, 1, -1, 1, 1).to(total.dtype)
        expected = schedule_.ddim_step(eps, t, x, steps)
        torch.testing.assert_close(states[step + 1], expected, rtol=1e-4, atol=1e-4)
    assert next(calls, None) is None
    assert torch.equal(final, states[-1])


def test_windowed_sampling_can_be_stopped_after_any_step(tiny_unet, golden_inputs):
    base, cond, uncond = golden_inputs
    recorder = RecordingUNet(tiny_unet)

    class Stop(Exception):
        pass

    def stop(i, n, t, x):
        raise Stop

    with pytest.raises(Stop), torch.no_grad():
        sample_residual(recorder, noise(40), base, cond, uncond, MOTION_ID, steps=50, windows=ContextWindows(),
                        callback=stop)
    assert len(recorder.calls) == len(ContextWindows().windows(40)) == 4


# --- loops -------------------------------------------------------------------------------------------------------

def test_return_weights_ramp_down_to_the_first_frame():
    assert return_weights(6, 4).tolist() == pytest.approx([1, 1, 0.8, 0.6, 0.4, 0.2])
    assert return_weights(6, 0).tolist() == [1] * 6
    assert [default_ramp(n) for n in (1, 3, 15, 31, 63)] == [1, 3, 4, 8, 16]
    with pytest.raises(ValueError, match="loop ramp must be"):
        return_weights(6, 7)


def test_pull_scales_the_clean_residual_and_keeps_other_frames_exact():
    schedule = CinemoSchedule()
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 6, 3, 5, generator=generator)
    eps = torch.randn(2, 4, 6, 3, 5, generator=generator)
    weights = return_weights(6, 3)
    for t in (981, 501, 21, 1):
        pulled = scale_clean_residual(eps, x, t, schedule, weights.view(1, 1, -1, 1, 1))
        a = schedule.alphas_cumprod[t].double()
        clean = (x.double() - (1 - a).sqrt() * eps.double()) / a.sqrt()
        clean_pulled = (x.double() - (1 - a).sqrt() * pulled.double()) / a.sqrt()
        torch.testing.assert_close(clean_pulled, clean * weights.double().view(1, 1, -1, 1, 1), rtol=1e-4, atol=1e-3)
        assert torch.equal(pulled[:, :, :3], eps[:, :, :3])


def seam_and_median_step(residual):
    """Per video: |last frame - first frame| and the median frame-to-frame distance, in latent space."""
    frames = residual.transpose(1, 2).flatten(2)
    with_first = torch.cat([torch.zeros_like(frames[:, :1]), frames], dim=1)  # residual 0 = the first frame
    steps = (with_first[:, 1:] - with_first[:, :-1]).norm(dim=2)
    return frames[:, -1].norm(dim=1), steps.median(dim=1).values


@pytest.mark.parametrize("frames,windows", [(15, None), (26, ContextWindows(fuse=OVERLAP_LINEAR))])
def test_loop_ends_where_it_starts(tiny_unet, golden_inputs, frames, windows):
    """The last frame comes back to the first: its residual is at most 1/(ramp+1) of the clean prediction,
    which on the tiny model is below a third of the median frame-to-frame change (without: above half)."""
    base, cond, uncond = golden_inputs
    x = noise(frames, seed=5, batch=2)
    ramp = default_ramp(frames)
    with torch.no_grad():
        plain = sample_residual(tiny_unet, x, base, cond, uncond, MOTION_ID, steps=6, windows=windows)
        looped = sample_residual(tiny_unet, x, base, cond, uncond, MOTION_ID, steps=6, windows=windows,
                                 loop_ramp=ramp)
    seam, median = seam_and_median_step(looped)
    assert (seam <= median / 3).all(), (seam, median)
    seam, median = seam_and_median_step(plain)
    assert (seam >= median / 2).all(), (seam, median)


def test_zero_ramp_is_the_plain_sampler(tiny_unet, golden_inputs):
    base, cond, uncond = golden_inputs
    x = noise(7, seed=6)
    with torch.no_grad():
        plain = sample_residual(tiny_unet, x, base, cond, uncond, MOTION_ID, steps=2)
        zero_ramp = sample_residual(tiny_unet, x, base, cond, uncond, MOTION_ID, steps=2, loop_ramp=0)
    assert torch.equal(plain, zero_ramp)
