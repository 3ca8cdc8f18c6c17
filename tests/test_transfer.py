"""``transfer_motion`` wiring against an official-style reference (frame stride, fitting, seeded posterior samples,
prompts, the t=985 DCT mix), and its settings and bad input."""

import copy

import numpy as np
import pytest
import torch
from test_inversion import scipy_mix

from cinemo_core.app.demo import build_demo_components, demo_edited_frame, demo_source_clip
from cinemo_core.preprocess import fit_image, select_source_frames
from cinemo_core.app.transfer import TransferSettings, transfer_motion

SCALE = 0.18215
pytestmark = pytest.mark.filterwarnings("ignore:Cinemo was trained at")


@pytest.fixture(scope="module")
def demo():
    return build_demo_components()


def moving_clip(num_frames: int, height: int = 40, width: int = 72) -> np.ndarray:
    """uint8 frames [F, H, W, 3]: a colour ramp over time and a bright square moving right, one step per frame."""
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    for i in range(num_frames):
        frames[i] = (30 + 10 * i, 110, 200 - 10 * i)
        frames[i, 8:24, 2 + 4 * i : 18 + 4 * i] = 250
    return frames


@pytest.fixture
def edited() -> torch.Tensor:
    return torch.rand(1, 45, 81, 3, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def captured(monkeypatch):
    """Replace inversion and sampling: record their inputs; inversion returns known latents."""
    calls = {}

    def fake_invert(unet, residual, base_content, context, motion_ids, *, steps, guidance_scale, negative_context,
                    callback, schedule):
        inverted = torch.randn(residual.shape, generator=torch.Generator().manual_seed(5), dtype=residual.dtype)
        calls["invert"] = dict(residual=residual, base=base_content, context=context, ids=motion_ids, steps=steps,
                               guidance=guidance_scale, negative=negative_context, result=inverted)
        for i in range(steps):
            callback(i, steps, 0, residual)
        return inverted

    def fake_sample(unet, init_latents, base_content, context, negative_context, motion_ids, *, steps,
                    guidance_scale, callback, schedule):
        calls["sample"] = dict(init=init_latents, base=base_content, context=context, ids=motion_ids, steps=steps,
                               guidance=guidance_scale, negative=negative_context)
        for i in range(steps):
            callback(i, steps, 0, init_latents)
        return torch.zeros_like(init_latents)

    monkeypatch.setattr("cinemo_core.app.transfer.invert_residual", fake_invert)
    monkeypatch.setattr("cinemo_core.app.transfer.sample_residual", fake_sample)
    return calls


def prompt_embedding(demo, prompt: str) -> torch.Tensor:
    tokens = demo.tokenizer([prompt], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return demo.text_encoder(tokens.input_ids).last_hidden_state


def official_style_latents(demo, clip_frames, edited, seed, width, height):
    """float64 VAE posterior samples x 0.18215 of each frame, then of the edited image, from one seeded CPU
    generator (the official script samples the same way, without a seed)."""
    vae64 = copy.deepcopy(demo.vae).double()
    generator = torch.Generator().manual_seed(seed)
    latents = []
    with torch.no_grad():
        for image in [*clip_frames, edited]:
            pixels = fit_image(image, width, height).double()
            latents.append(vae64.encode(pixels).latent_dist.sample(generator=generator) * SCALE)
    video = torch.stack(latents[:-1], dim=2)
    return video[:, :, :1], video[:, :, 1:] - video[:, :, :1], latents[-1].unsqueeze(2)


def test_transfer_matches_the_official_recipe(demo, edited, captured):
    clip = moving_clip(9)
    settings = TransferSettings(source_prompt="a square moving", prompt="a red square moving", num_frames=4,
                                frame_step=2, width=80, height=64, steps=3, seed=11, intensity=4)
    seen = []
    result = transfer_motion(demo, clip, edited, settings, progress=lambda done, total: seen.append((done, total)))

    chosen = [torch.from_numpy(clip[i])[None] for i in (0, 2, 4, 6)]
    base, residual, edit_base = official_style_latents(demo, chosen, edited, 11, 80, 64)
    inv, smp = captured["invert"], captured["sample"]
    assert inv["residual"].shape == (1, 4, 3, 8, 10) and inv["residual"].dtype == torch.float32
    torch.testing.assert_close(inv["residual"].double(), residual, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(inv["base"].double(), base, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(inv["context"], prompt_embedding(demo, "a square moving"), rtol=1e-5, atol=1e-5)
    assert (inv["ids"], inv["steps"], inv["guidance"], inv["negative"]) == (95.0, 3, 1.0, None)

    expected_init = scipy_mix(inv["result"], edit_base, 0.23, 985)
    np.testing.assert_allclose(smp["init"].double().numpy(), expected_init, rtol=0, atol=1e-5)
    torch.testing.assert_close(smp["base"].double(), edit_base, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(smp["context"], prompt_embedding(demo, "a red square moving"), rtol=1e-5, atol=1e-5)
    assert (smp["ids"], smp["steps"], smp["guidance"], smp["negative"]) == (95.0, 3, 1.0, None)

    assert seen == [(i, 6) for i in range(1, 7)]
    assert result.frames.shape == (4, 64, 80, 3) and result.frames.dtype == np.uint8
    assert result.seed == 11


def test_plain_init_cfg_and_the_negative_prompt_reach_both_passes(demo, edited, captured):
    clip = moving_clip(3)
    settings = TransferSettings(num_frames=3, width=64, height=64, steps=2, seed=0, init="plain", guidance_scale=5.0,
                                inversion_guidance_scale=2.0, negative_prompt="blurry", motion_id=81.5)
    transfer_motion(demo, torch.from_numpy(clip).float() / 255, edited, settings)
    inv, smp = captured["invert"], captured["sample"]
    assert torch.equal(smp["init"], inv["result"])
    negative = prompt_embedding(demo, "blurry")
    torch.testing.assert_close(inv["negative"], negative, rtol=1e-5, atol=1e-5)
    assert smp["negative"] is inv["negative"]
    assert (inv["guidance"], smp["guidance"], inv["ids"], smp["ids"]) == (2.0, 5.0, 81.5, 81.5)


def test_seed_picks_the_posterior_samples(demo, edited, captured):
    clip = moving_clip(3)
    residuals = []
    for seed in (1, 1, 2):
        transfer_motion(demo, clip, edited, TransferSettings(num_frames=3, width=64, height=64, steps=1, seed=seed))
        residuals.append(captured["invert"]["residual"])
    assert torch.equal(residuals[0], residuals[1])
    assert not torch.equal(residuals[0], residuals[2])


def test_end_to_end_with_the_real_tiny_unet(demo, tmp_path):
    """No stand-ins: a file clip, the motion of the source changes the result, the seed repeats it."""
    from cinemo_core.app.video_io import write_video

    moving = write_video(moving_clip(5), tmp_path / "moving.mp4")
    still = write_video(np.repeat(moving_clip(1), 5, axis=0), tmp_path / "still.mp4")
    edited = demo_edited_frame(torch.from_numpy(moving_clip(1)[0]))
    settings = TransferSettings(num_frames=3, frame_step=2, width=64, height=64, steps=2, seed=3)
    first = transfer_motion(demo, moving, edited, settings).frames
    again = transfer_motion(demo, moving, edited, settings).frames
    other = transfer_motion(demo, still, edited, settings).frames
    assert first.shape == (3, 64, 64, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_select_source_frames_strides_and_names_both_counts():
    clip = moving_clip(10)
    picked = select_source_frames(clip, 4, 3)
    assert torch.equal(picked, torch.from_numpy(clip[[0, 3, 6, 9]]))
    assert torch.equal(select_source_frames(clip, 10, 1), torch.from_numpy(clip))
    with pytest.raises(ValueError, match="has 10 frames, but 16 frames were asked for"):
        select_source_frames(clip, 16, 1)
    with pytest.raises(ValueError, match=r"has 10 frames, but 4 frames were asked for with a frame step of 4 "
                                         r"\(source frames 0 to 12\)"):
        select_source_frames(clip, 4, 4)
    with pytest.raises(ValueError, match="frames"):
        select_source_frames(clip[0], 2, 1)


def test_settings_defaults_are_the_official_editing_script():
    settings = TransferSettings()
    assert (settings.guidance_scale, settings.inversion_guidance_scale) == (1.0, 1.0)
    assert (settings.dct_noise_timestep, settings.dct_low_pass, settings.init) == (985, 0.23, "dct")
    assert (settings.steps, settings.num_frames, settings.frame_step) == (50, 16, 1)
    assert settings.source_frames_needed == 16
    assert TransferSettings(num_frames=4, frame_step=3).source_frames_needed == 10


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(frame_step=0), "frame step must be an integer from 1"),
        (dict(frame_step=1.5), "frame step"),
        (dict(inversion_guidance_scale=-1.0), "inversion guidance scale"),
        (dict(inversion_guidance_scale=float("nan")), "inversion guidance scale"),
        (dict(init="fft"), "init must be one of dct, plain"),
        (dict(guidance_scale=-2.0), r"official 1\)"),
        (dict(dct_noise_timestep=1000), "official 985"),
        (dict(source_prompt=3), "source_prompt must be a string"),
        (dict(num_frames=1), "frames"),
        (dict(num_frames=17), "at most 16 frames"),
    ],
)
def test_bad_settings_are_refused(demo, edited, changes, message):
    with pytest.raises(ValueError, match=message):
        transfer_motion(demo, moving_clip(3), edited, TransferSettings(**changes))


def test_transfer_has_no_loop_and_names_its_settings():
    """Transfer runs in one pass: it has no loop setting, and its errors name their field for the hosts."""
    from cinemo_core.settings import SettingError

    with pytest.raises(TypeError, match="loop"):
        TransferSettings(loop=True)
    for changes, setting in ((dict(num_frames=32), "num_frames"), (dict(frame_step=0), "frame_step"),
                             (dict(inversion_guidance_scale=-1.0), "inversion_guidance_scale"),
                             (dict(steps=0), "steps")):
        with pytest.raises(SettingError) as error:
            TransferSettings(**changes).validate()
        assert error.value.setting == setting


def test_short_clip_and_bad_images_are_refused(demo, edited):
    settings = TransferSettings(num_frames=3, frame_step=2, width=64, height=64, steps=1)
    with pytest.raises(ValueError, match="has 4 frames, but 3 frames were asked for"):
        transfer_motion(demo, moving_clip(4), edited, settings)
    with pytest.raises(ValueError, match="single image"):
        transfer_motion(demo, moving_clip(5), edited[0], settings)


def test_different_aspect_ratios_are_noted(demo, edited, captured):
    settings = TransferSettings(num_frames=2, width=64, height=64, steps=1, seed=0)
    with pytest.warns(UserWarning, match="different aspect ratios"):
        transfer_motion(demo, moving_clip(2, 40, 72), torch.rand(1, 72, 40, 3), settings)


def test_demo_clip_is_a_pan_and_the_edit_a_recolouring():
    clip = demo_source_clip(5)
    assert clip.shape == (5, 280, 448, 3)
    # a pan: each frame is the previous one shifted left by the same few pixels
    shift = 16
    assert torch.equal(clip[1][:, : 448 - shift], clip[0][:, shift:])
    edited = demo_edited_frame(clip[0])
    assert edited.shape == (1, 280, 448, 3)
    assert torch.equal(edited[0, ..., 0], clip[0][..., 2]) and torch.equal(edited[0, ..., 2], clip[0][..., 0])
