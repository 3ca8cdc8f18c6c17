"""The traced step memory equals what a real forward allocates, and it scales as a video UNet should."""

import pytest
import torch

from cinemo_core import CinemoUNet3D, CinemoUNetConfig
from cinemo_core.model.memory import PeakTracker, chunked_quadratic_attention, step_memory_bytes

MID = CinemoUNetConfig(
    block_out_channels=(64, 128, 256, 256), num_attention_heads=2, cross_attention_dim=64, addition_time_embed_dim=64
)


def measured_peak(config, batch, frames, height, width, attention=torch.nn.functional.scaled_dot_product_attention):
    """Peak bytes of a real CPU forward as PyTorch's own profiler records them (random weights, inputs created
    inside the profiled region): the tracer under test plays no part in this measurement."""
    torch.manual_seed(0)
    model = CinemoUNet3D(config, attention=attention).eval()
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.inference_mode(), torch.profiler.profile(activities=activities, profile_memory=True) as profile:
        x = torch.randn(batch, 4, frames, height, width)
        base = torch.randn(batch, 4, 1, height, width)
        context = torch.randn(batch, 77, config.cross_attention_dim)
        out = model(x, torch.full((batch,), 500.0), context, base_content=base, motion_ids=torch.full((batch,), 90.0))
        assert torch.isfinite(out).all()
    # each event's own allocations minus frees, in the order they happened
    events = sorted((e for e in profile.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    live = peak = 0
    for event in events:
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


@pytest.mark.parametrize("config,shape", [
    (CinemoUNetConfig.tiny(), (2, 15, 16, 16)),   # a 16-frame step, cond + uncond
    (CinemoUNetConfig.tiny(), (1, 7, 8, 16)),     # the golden case's shape
    (MID, (2, 7, 16, 24)),                        # two layers per block, two heads
])
def test_trace_equals_a_real_forward(config, shape):
    traced = step_memory_bytes(config, *shape, torch.float32)
    real = measured_peak(config, *shape)
    assert traced == real


def test_quadratic_attention_trace_equals_a_real_forward():
    config, shape = CinemoUNetConfig.tiny(), (2, 3, 40, 32)   # 1280 tokens: more than one query chunk
    traced = step_memory_bytes(config, *shape, torch.float32, memory_efficient_attention=False)
    real = measured_peak(config, *shape, attention=chunked_quadratic_attention)
    assert traced == real
    assert traced > step_memory_bytes(config, *shape, torch.float32)


def test_chunked_quadratic_attention_is_attention():
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, 1500, 8) for _ in range(3))
    mask = torch.randn(1, 3, 1500, 1500)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(chunked_quadratic_attention(q, k, v, attn_mask=mask), expected, rtol=1e-5, atol=1e-5)


def test_official_step_scales_with_frames_batch_and_dtype():
    official = CinemoUNetConfig.official()
    fp16 = step_memory_bytes(official, 2, 15, 40, 64, torch.float16)   # 16 frames at 320x512, cond + uncond
    print(f"official 16-frame CFG step at 320x512, fp16: {fp16 / 2**20:.0f} MiB")
    assert 300 * 2**20 < fp16 < 2 * 2**30
    assert step_memory_bytes(official, 2, 15, 40, 64, torch.float32) == pytest.approx(2 * fp16, rel=0.02)
    assert step_memory_bytes(official, 1, 15, 40, 64, torch.float16) == pytest.approx(fp16 / 2, rel=0.1)
    assert step_memory_bytes(official, 2, 7, 40, 64, torch.float16) == pytest.approx(fp16 / 2, rel=0.1)
    assert step_memory_bytes(official, 2, 15, 40, 64, torch.float16, memory_efficient_attention=False) > 2 * fp16


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="residual_frames"):
        step_memory_bytes(CinemoUNetConfig.tiny(), 1, bad, 8, 8, torch.float32)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_tracker_counts_live_bytes_by_hand(device):
    tracker = PeakTracker()
    with tracker:
        a = torch.empty(1000, device=device)            # 4000 bytes
        b = torch.empty(500, device=device)             # 2000
        view = a[10:20]                                 # a view shares a's storage: no new bytes
        del a, view                                     # 4000 freed
        c = torch.empty(250, dtype=torch.float64, device=device)   # 2000
        assert tracker.current == 4000
        d = torch.empty(10, 100, device=device)         # 4000: 8000 live, above the earlier 6000
        assert tracker.current == 8000
        del b, c, d
    assert tracker.peak == 8000
    assert tracker.current == 0


def test_a_step_that_cannot_fit_is_refused_with_the_estimate_and_what_to_change():
    from cinemo_core.model.memory import StepTooLargeError, check_step_fits

    config = CinemoUNetConfig.official()

    def need(frames, height, width):
        return step_memory_bytes(config, 1, frames, height, width, torch.float16)

    full = need(63, 80, 128)  # 64 frames at 1024x640 pixels
    assert full > 3 * need(15, 80, 128)  # windows of 16 frames need about a quarter of it
    check_step_fits(need, 63, 80, 128, budget=full)  # exactly enough
    with pytest.raises(StepTooLargeError) as caught:
        check_step_fits(need, 63, 80, 128, budget=full // 2, device="cuda:0")
    message = str(caught.value)
    assert message.startswith(f"This run cannot fit on cuda:0: one denoising step needs about {full / 2**30:.1f} GiB")
    assert "1 video x 64 frames at 1024x640 pixels" in message and f"{full / 2**31:.1f} GiB for them at most" in message
    assert f"16-frame windows (about {need(15, 80, 128) / 2**30:.1f} GiB a step)" in message
    assert f"half the width and height (512x320: about {need(63, 40, 64) / 2**30:.1f} GiB)" in message
    assert "fp8" in message
    # already in windows: the window is what must fit, and shorter windows are the advice
    check_step_fits(need, 63, 80, 128, budget=need(15, 80, 128), window_frames=15)
    with pytest.raises(StepTooLargeError, match="in windows of 16 frames.*shorter windows"):
        check_step_fits(need, 63, 80, 128, budget=need(15, 80, 128) - 1, window_frames=15)
