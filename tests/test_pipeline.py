"""``animate`` wiring against an official-style reference: random draws, DCTInit, text, motion id, decoding."""

import copy

import numpy as np
import pytest
import scipy.fft
import torch
from diffusers import DDIMScheduler

from cinemo_core.app.demo import build_demo_components
from cinemo_core.app.pipeline import AnimationSettings, animate
from cinemo_core.preprocess import fit_image

SCALE = 0.18215
pytestmark = pytest.mark.filterwarnings("ignore:Cinemo was trained at")


@pytest.fixture(scope="module")
def demo():
    return build_demo_components()


@pytest.fixture
def image() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, 50, 90, 3, generator=generator)


@pytest.fixture
def captured(monkeypatch):
    """Replace the sampler: record what animate hands it and return a zero residual."""
    calls = {}

    def fake_sample_residual(unet, init_latents, base_content, context, negative_context, motion_ids, *,
                             steps, guidance_scale, callback, schedule, windows, loop_ramp, motion_mask=None,
                             end_target=None):
        calls.update(init=init_latents, base=base_content, context=context, negative=negative_context,
                     motion_ids=motion_ids, steps=steps, guidance_scale=guidance_scale, unet=unet, windows=windows,
                     loop_ramp=loop_ramp, motion_mask=motion_mask)
        for i in range(steps):
            callback(i, steps, 0, init_latents)
        return torch.zeros_like(init_latents)

    monkeypatch.setattr("cinemo_core.app.pipeline.sample_residual", fake_sample_residual)
    return calls


def official_style_reference(demo, image, seed, frames, width, height, low_pass=0.23, noise_timestep=975):
    """What the official script computes on the CPU after ``torch.manual_seed(seed)``.

    float64 VAE posterior sample x 0.18215, then ``torch.randn`` noise, then DCTInit written here with
    scipy's orthonormal DCT and diffusers' ``add_noise`` on the linear schedule.
    """
    vae64 = copy.deepcopy(demo.vae).double()
    pixels = fit_image(image, width, height).double()
    torch.manual_seed(seed)
    with torch.no_grad():
        base = (vae64.encode(pixels).latent_dist.sample() * SCALE).unsqueeze(2)
    noise = torch.randn(1, 4, frames - 1, height // 8, width // 8)
    scheduler = DDIMScheduler(beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    noised = scheduler.add_noise(base.expand(noise.shape).contiguous(), noise.double(), torch.tensor([noise_timestep]))
    h, w = noise.shape[-2:]
    mask = np.zeros((1, 1, 1, h, w))
    mask[..., : int(h * low_pass), : int(w * low_pass)] = 1
    axes = (2, 3, 4)
    mixed = scipy.fft.dctn(noised.numpy(), axes=axes, norm="ortho") * mask + scipy.fft.dctn(
        noise.double().numpy(), axes=axes, norm="ortho"
    ) * (1 - mask)
    init = torch.from_numpy(scipy.fft.idctn(mixed, axes=axes, norm="ortho"))
    return base, noise, init


def test_animate_matches_the_official_random_draws_and_dct_init(demo, image, captured):
    settings = AnimationSettings(prompt="a boat", negative_prompt="blurry", intensity=4, steps=3, seed=123,
                                 num_frames=5, width=128, height=64)
    progress = []
    result = animate(demo, image, settings, progress=lambda done, total: progress.append((done, total)))
    base_ref, _, init_ref = official_style_reference(demo, image, 123, 5, 128, 64)

    assert captured["unet"] is demo.unet
    torch.testing.assert_close(captured["base"].double(), base_ref, rtol=0, atol=1e-6)
    assert captured["init"].dtype == torch.float32 and captured["init"].shape == (1, 4, 4, 8, 16)
    torch.testing.assert_close(captured["init"].double(), init_ref, rtol=0, atol=1e-5)
    assert captured["motion_ids"] == 95.0  # intensity 4 -> raw id 99 - 4
    assert captured["steps"] == 3 and captured["guidance_scale"] == 7.5
    assert progress == [(1, 3), (2, 3), (3, 3)]

    tokens = demo.tokenizer(["a boat", "blurry"], padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        reference_text = demo.text_encoder(tokens.input_ids).last_hidden_state
    torch.testing.assert_close(captured["context"], reference_text[:1], rtol=0, atol=1e-6)
    torch.testing.assert_close(captured["negative"], reference_text[1:], rtol=0, atol=1e-6)

    # zero residual: every frame is the decoded input latent (plain VAE, rounded)
    assert result.frames.shape == (5, 64, 128, 3) and result.frames.dtype == np.uint8
    with torch.no_grad():
        decoded = demo.vae.decode(captured["base"][:, :, 0] / SCALE).sample[0]
    first = ((decoded / 2 + 0.5) * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.abs(result.frames[0].astype(int) - first).max() <= 1
    assert all(np.abs(frame.astype(int) - result.frames[0]).max() <= 1 for frame in result.frames)
    assert result.seed == 123 and result.motion_id == 95.0


def test_dct_parameters_and_plain_init_reach_the_sampler(demo, image, captured):
    animate(demo, image, AnimationSettings(seed=9, num_frames=3, width=64, height=64, steps=1,
                                           dct_low_pass=0.5, dct_noise_timestep=900))
    _, noise_ref, init_ref = official_style_reference(demo, image, 9, 3, 64, 64, low_pass=0.5, noise_timestep=900)
    torch.testing.assert_close(captured["init"].double(), init_ref, rtol=0, atol=1e-5)

    animate(demo, image, AnimationSettings(seed=9, num_frames=3, width=64, height=64, steps=1, init="plain"))
    assert torch.equal(captured["init"], noise_ref)


def test_no_guidance_skips_the_negative_prompt(demo, image, captured):
    animate(demo, image, AnimationSettings(seed=1, num_frames=2, width=64, height=64, steps=1, guidance_scale=1.0))
    assert captured["negative"] is None and captured["guidance_scale"] == 1.0


def test_raw_motion_id_overrides_intensity(demo, image, captured):
    result = animate(demo, image, AnimationSettings(seed=1, num_frames=2, width=64, height=64, steps=1,
                                                    intensity=0, motion_id=42.5))
    assert captured["motion_ids"] == 42.5 and result.motion_id == 42.5


def test_random_seed_is_reported(demo, image, captured):
    result = animate(demo, image, AnimationSettings(num_frames=2, width=64, height=64, steps=1))
    assert isinstance(result.seed, int) and 0 <= result.seed <= 2**64 - 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"intensity": 20}, "intensity"),
        ({"num_frames": 1}, "frames"),
        ({"width": 100}, "multiple of 8"),
        ({"init": "wavelet"}, "init must be one of"),
        ({"steps": 1000}, "steps"),
        ({"loop": "yes"}, "loop must be True or False"),
    ],
)
def test_bad_settings_are_refused(demo, image, changes, message):
    with pytest.raises(ValueError, match=message):
        animate(demo, image, AnimationSettings(**changes))


def test_long_videos_use_the_long_video_windows_and_loops_a_quarter(demo, image, captured):
    from cinemo_core.app.pipeline import LONG_VIDEO_WINDOWS

    animate(demo, image, AnimationSettings(seed=1, num_frames=41, width=64, height=64, steps=1))
    assert captured["windows"] is LONG_VIDEO_WINDOWS and captured["loop_ramp"] == 0
    assert (LONG_VIDEO_WINDOWS.length, LONG_VIDEO_WINDOWS.overlap) == (15, 4)
    animate(demo, image, AnimationSettings(seed=1, num_frames=41, width=64, height=64, steps=1, loop=True))
    assert captured["loop_ramp"] == 10  # a quarter of the 40 generated frames


def test_windowed_loop_runs_end_to_end(demo, image):
    """40 frames in windows: every frame decoded; with --loop the last frame comes back towards the first."""
    seams = {}
    for loop in (False, True):
        settings = AnimationSettings(seed=2, num_frames=40, width=64, height=64, steps=2, loop=loop)
        assert any("overlapping windows" in note for note in settings.quality_warnings())
        frames = animate(demo, image, settings).frames
        assert frames.shape == (40, 64, 64, 3)
        seams[loop] = np.abs(frames[-1].astype(float) - frames[0]).mean()
    assert seams[True] < 0.9 * seams[False]
