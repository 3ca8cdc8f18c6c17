"""The residual sampler against diffusers' DDIMScheduler driven by hand, and against golden data."""

from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler
from safetensors.torch import load_file

from cinemo_core.sampling.sampler import assemble_video_latents, sample_residual

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_a"


def official_scheduler() -> DDIMScheduler:
    return DDIMScheduler.from_pretrained(
        str(FIXTURE), subfolder="scheduler", beta_start=1e-4, beta_end=0.02, beta_schedule="linear"
    )


class ToyUNet:
    """Deterministic eps that depends on every input, and records what it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, timesteps, context, *, base_content, motion_ids):
        self.calls.append((x.shape[0], timesteps.clone(), context.clone(), base_content.clone(), motion_ids.clone()))
        t = timesteps.to(x.dtype).view(-1, 1, 1, 1, 1) / 1000
        c = context.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1)
        m = motion_ids.view(-1, 1, 1, 1, 1) / 100
        return torch.sin(x * 0.7 + t) * 0.5 + 0.3 * c + 0.1 * base_content + 0.05 * m


def toy_inputs(batch=2, frames=3, dtype=torch.float64):
    gen = torch.Generator().manual_seed(7)
    latents = torch.randn(batch, 4, frames, 4, 6, generator=gen, dtype=dtype)
    base = torch.randn(batch, 4, 1, 4, 6, generator=gen, dtype=dtype)
    cond = torch.randn(batch, 77, 8, generator=gen, dtype=dtype)
    uncond = torch.randn(batch, 77, 8, generator=gen, dtype=dtype)
    return latents, base, cond, uncond


def reference_loop(latents, base, cond, uncond, motion, steps, scale, eta, seed):
    """The official pipeline's loop written against diffusers, with the same toy eps."""
    sched = official_scheduler()
    sched.set_timesteps(steps)
    toy = ToyUNet()
    gen = torch.Generator().manual_seed(seed)
    ids = torch.full((latents.shape[0],), float(motion), dtype=latents.dtype)
    for t in sched.timesteps:
        tb = torch.full((2 * latents.shape[0],), int(t))
        eps = toy(torch.cat([latents] * 2), tb, torch.cat([uncond, cond]),
                  base_content=torch.cat([base, base]), motion_ids=torch.cat([ids, ids]))
        u, c = eps.chunk(2)
        latents = sched.step(u + scale * (c - u), t, latents, eta=eta, generator=gen).prev_sample
    return latents


@pytest.mark.parametrize("steps,eta", [(1, 0.0), (7, 0.0), (10, 0.5), (50, 0.0)])
def test_loop_matches_diffusers(steps, eta):
    latents, base, cond, uncond = toy_inputs()
    expected = reference_loop(latents, base, cond, uncond, 90, steps, 7.5, eta, seed=3)
    ours = sample_residual(ToyUNet(), latents, base, cond, uncond, 90.0, steps=steps, guidance_scale=7.5,
                           eta=eta, generator=torch.Generator().manual_seed(3))
    assert ours.dtype == latents.dtype
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def test_cfg_batch_layout_and_callback():
    latents, base, cond, uncond = toy_inputs(batch=1)
    toy = ToyUNet()
    seen = []
    sample_residual(toy, latents, base, cond, uncond, 85, steps=4, guidance_scale=3.0,
                    callback=lambda i, n, t, x: seen.append((i, n, t, x.shape)))
    assert [s[:3] for s in seen] == [(0, 4, 751), (1, 4, 501), (2, 4, 251), (3, 4, 1)]
    batch, timesteps, context, base_in, ids = toy.calls[0]
    assert batch == 2
    assert torch.equal(timesteps, torch.tensor([751, 751]))
    assert torch.equal(context, torch.cat([uncond, cond]))
    assert torch.equal(base_in, torch.cat([base, base]))
    assert torch.equal(ids, torch.tensor([85.0, 85.0], dtype=latents.dtype))


def test_no_cfg_single_pass_matches_diffusers():
    latents, base, cond, _ = toy_inputs()
    sched = official_scheduler()
    sched.set_timesteps(5)
    toy_ref = ToyUNet()
    expected = latents
    ids = torch.full((2,), 95.0, dtype=latents.dtype)
    for t in sched.timesteps:
        eps = toy_ref(expected, torch.full((2,), int(t)), cond, base_content=base, motion_ids=ids)
        expected = sched.step(eps, t, expected).prev_sample
    toy = ToyUNet()
    ours = sample_residual(toy, latents, base, cond, None, 95, steps=5, guidance_scale=1.0)
    assert all(call[0] == 2 for call in toy.calls)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def test_seeded_eta_is_deterministic_and_seed_dependent():
    latents, base, cond, uncond = toy_inputs()
    run = lambda seed: sample_residual(ToyUNet(), latents, base, cond, uncond, 90, steps=5, eta=1.0,
                                       generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(1), run(1))
    assert not torch.allclose(run(1), run(2))


def test_bad_inputs():
    latents, base, cond, uncond = toy_inputs()
    with pytest.raises(ValueError, match="negative_context"):
        sample_residual(ToyUNet(), latents, base, cond, None, 90, steps=2)
    with pytest.raises(ValueError, match="base_content"):
        sample_residual(ToyUNet(), latents, base[..., :3], cond, uncond, 90, steps=2)
    with pytest.raises(ValueError, match="motion ids"):
        sample_residual(ToyUNet(), latents, base, cond, uncond, [1.0, 2.0, 3.0], steps=2)
    with pytest.raises(ValueError, match="at most 999"):
        sample_residual(ToyUNet(), latents, base, cond, uncond, 90, steps=1000)
    with pytest.raises(ValueError, match="init_latents"):
        sample_residual(ToyUNet(), latents[0], base, cond, uncond, 90, steps=2)


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.double() - ref.double()).abs().max() / ref.double().abs().max())


def test_golden_sampled_residual_and_video_latents():
    from cinemo_core import load_unet

    g = load_file(str(FIXTURE / "case.safetensors"))
    unet = load_unet(FIXTURE, dtype=torch.float32)
    with torch.no_grad():
        residual = sample_residual(
            unet, g["dct_latents"], g["base_content"], g["encoder_hidden_states"],
            g["negative_encoder_hidden_states"], g["motion_bucket_id"], steps=10, guidance_scale=7.5,
        )
    assert rel_err(residual, g["sampled_residual"]) < 1e-4
    video = assemble_video_latents(g["base_content"], residual)
    assert video.shape == g["video_latents"].shape
    assert rel_err(video, g["video_latents"]) < 1e-4


def test_golden_sampled_residual_in_bf16():
    """The 10-step CFG run in bfloat16 (UNet and DDIM loop, as ``--dtype bf16`` runs) stays near the fp32 golden.

    CFG 7.5 amplifies the UNet's rounding; the official code in bf16 lands about as far from its own fp32
    result (4.6e-2 on this case, measured with diffusers 0.42 on the CPU), so 5e-2 is the bound used for
    half precision throughout.
    """
    from cinemo_core import load_unet

    g = load_file(str(FIXTURE / "case.safetensors"))
    unet = load_unet(FIXTURE, dtype=torch.bfloat16)
    with torch.no_grad():
        residual = sample_residual(
            unet, g["dct_latents"].bfloat16(), g["base_content"], g["encoder_hidden_states"],
            g["negative_encoder_hidden_states"], g["motion_bucket_id"], steps=10, guidance_scale=7.5,
        )
    assert residual.dtype == torch.bfloat16 and torch.isfinite(residual).all()
    assert rel_err(residual, g["sampled_residual"]) <= 5e-2


def test_assemble_video_latents_from_golden_residual():
    g = load_file(str(FIXTURE / "case.safetensors"))
    video = assemble_video_latents(g["base_content"], g["sampled_residual"])
    assert torch.equal(video[:, :, :1], g["base_content"])
    assert rel_err(video, g["video_latents"]) < 1e-6
    with pytest.raises(ValueError, match="base_content"):
        assemble_video_latents(g["base_content"][:, :, :, :4], g["sampled_residual"])


@pytest.mark.parametrize(
    "poisoned, cause",
    [("context", "text_model."), ("base", "first frame's latent"), ("latents", "initial noise"), ("weights", "bf16 or fp32")],
)
def test_non_finite_model_output_stops_at_the_first_step_naming_the_cause(poisoned, cause):
    from cinemo_core.finite import NonFiniteError

    shape = (1, 4, 3, 4, 4)
    latents, base, context = torch.zeros(shape), torch.zeros(1, 4, 1, 4, 4), torch.zeros(1, 77, 8)
    nan = float("nan")
    if poisoned == "context":
        context[0, 5, 3] = nan
    elif poisoned == "base":
        base[0, 1, 0, 2, 2] = nan
    elif poisoned == "latents":
        latents[0, 0, 0, 0, 0] = float("inf")
    calls = []

    def unet(x, t, ctx, *, base_content, motion_ids):
        calls.append(int(t[0]))
        eps = x + ctx.mean() + base_content.mean()
        return eps * nan if poisoned == "weights" else eps

    with pytest.raises(NonFiniteError, match=cause):
        sample_residual(unet, latents, base, context, None, 90.0, steps=5, guidance_scale=1.0)
    assert calls == [801]  # stopped at the first step, not after decoding black frames


@pytest.mark.parametrize(
    "latent, message",
    [
        (torch.full((1, 4, 8, 10), float("nan")), r"^vae: the first frame's latent contains NaN or infinite values"),
        (torch.full((1, 4, 8, 10), 3e5), r"^vae: the first frame's latent reaches 3e\+05, far outside"),
        (torch.zeros(1, 4, 16, 20), r"^vae: the first frame's latent is \[4, 16, 20\] .* 64x80 image, .* \[4, 8, 10\]"),
        (torch.zeros(1, 16, 8, 10), r"^vae: the first frame's latent is \[16, 8, 10\]"),
    ],
)
def test_an_implausible_encoded_latent_names_the_vae(latent, message):
    from cinemo_core.finite import check_encoded_latent

    with pytest.raises(ValueError, match=message) as caught:
        check_encoded_latent(latent, (64, 80), "vae", "the first frame")
    assert "the VAE is at fault" in str(caught.value) and "Cinemo Load Temporal VAE" in str(caught.value)
    check_encoded_latent(torch.randn(2, 4, 8, 10) * 30, (64, 80), "vae", "the first frame")  # an SD VAE's range
