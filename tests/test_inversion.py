"""DDIM inversion and the edited start latent: golden stages of the official editing script, and plain
re-derivations (the formula looped by hand over diffusers' alphas, scipy's DCT) at other sizes and step counts."""

import numpy as np
import pytest
import scipy.fft
import torch
from diffusers import DDIMScheduler
from golden_case import TINY_A, relative_error
from safetensors.torch import load_file

from cinemo_core import edit_init_latents, invert_residual, load_unet, sample_residual, split_video_latents
from cinemo_core.sampling.sampler import assemble_video_latents
from cinemo_core.sampling.schedule import CinemoSchedule


def linear_alphas() -> torch.Tensor:
    """The official schedule's cumulative alphas, from diffusers (not from cinemo_core), in float64."""
    return DDIMScheduler(beta_start=1e-4, beta_end=0.02, beta_schedule="linear").alphas_cumprod.double()


class AnalyticUNet:
    """eps as a known smooth function of every input; records each call."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, timesteps, context, *, base_content, motion_ids):
        self.calls.append(dict(batch=x.shape[0], t=timesteps.clone(), context=context.clone(),
                               base=base_content.clone(), ids=motion_ids.clone()))
        return self.formula(x, timesteps, context, base_content, motion_ids)

    @staticmethod
    def formula(x, t, context, base, ids):
        t = t.to(x.dtype).view(-1, 1, 1, 1, 1) / 1000
        c = context.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1)
        m = ids.to(x.dtype).view(-1, 1, 1, 1, 1) / 100
        return torch.sin(0.7 * x + t) * 0.5 + 0.3 * c + 0.1 * base + 0.05 * m


class ConstantEpsUNet:
    """eps that does not depend on the latents or the timestep: DDIM inverts it exactly."""

    def __call__(self, x, timesteps, context, *, base_content, motion_ids):
        return (0.3 * base_content + context.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1)).expand_as(x)


def reference_inversion(residual, base, cond, ids, steps, uncond=None, scale=1.0):
    """The official ``next_step`` looped by hand: timesteps k*(1000//steps)+1 ascending, float64."""
    alphas = linear_alphas()
    ratio = 1000 // steps
    ids = torch.as_tensor(ids, dtype=residual.dtype).expand(residual.shape[0])
    x = residual.double()
    for t in [k * ratio + 1 for k in range(steps)]:
        tb = torch.full((x.shape[0],), t)
        eps = AnalyticUNet.formula(x, tb, cond.double(), base.double(), ids.double())
        if scale > 1:
            eps_u = AnalyticUNet.formula(x, tb, uncond.double(), base.double(), ids.double())
            eps = eps_u + scale * (eps - eps_u)
        a_prev = alphas[t - ratio] if t - ratio >= 0 else alphas[0]
        a_t = alphas[t]
        x0 = (x - (1 - a_prev).sqrt() * eps) / a_prev.sqrt()
        x = a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps
    return x


def inputs(batch=1, frames=3, h=4, w=6, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    residual = torch.randn(batch, 4, frames, h, w, generator=gen, dtype=dtype)
    base = torch.randn(batch, 4, 1, h, w, generator=gen, dtype=dtype)
    cond = torch.randn(batch, 77, 8, generator=gen, dtype=dtype)
    uncond = torch.randn(batch, 77, 8, generator=gen, dtype=dtype)
    return residual, base, cond, uncond


# --- golden: the official editing script on tiny_a, 10 steps -------------------------------------------------


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(str(TINY_A / "inversion_case.safetensors"))


@pytest.fixture(scope="module")
def tiny_unet():
    return load_unet(TINY_A, dtype=torch.float32)


def test_golden_inversion(golden, tiny_unet):
    seen = []
    with torch.no_grad():
        inverted = invert_residual(
            tiny_unet, golden["source_residual"], golden["source_base"], golden["source_context"],
            golden["motion_bucket_id"], steps=10, callback=lambda i, n, t, x: seen.append(t),
        )
    assert inverted.dtype == torch.float32 and inverted.shape == golden["inverted_latents"].shape
    assert relative_error(inverted, golden["inverted_latents"]) <= 1e-4
    assert seen == golden["inversion_timesteps"].tolist()


def test_golden_dct_mix(golden):
    mixed = edit_init_latents(golden["inverted_latents"], golden["edit_base"])
    assert mixed.dtype == torch.float32
    assert relative_error(mixed, golden["edit_init_latents"]) <= 1e-5


def test_golden_edited_residual(golden, tiny_unet):
    with torch.no_grad():
        residual = sample_residual(
            tiny_unet, golden["edit_init_latents"], golden["edit_base"], golden["target_context"], None,
            golden["motion_bucket_id"], steps=10, guidance_scale=1.0,
        )
    assert relative_error(residual, golden["edited_residual"]) <= 1e-4


def test_golden_three_stages_chained(golden, tiny_unet):
    """Each stage fed with this package's previous stage, not the golden one."""
    with torch.no_grad():
        inverted = invert_residual(tiny_unet, golden["source_residual"], golden["source_base"],
                                   golden["source_context"], 8.0, steps=10)
        mixed = edit_init_latents(inverted, golden["edit_base"])
        residual = sample_residual(tiny_unet, mixed, golden["edit_base"], golden["target_context"], None, 8.0,
                                   steps=10, guidance_scale=1.0)
    assert relative_error(mixed, golden["edit_init_latents"]) <= 1e-4
    assert relative_error(residual, golden["edited_residual"]) <= 1e-4


# --- the inversion step and loop against the formula written out here ----------------------------------------


@pytest.mark.parametrize("steps", [1, 3, 10, 17, 50, 999])
def test_inversion_step_matches_the_formula(steps):
    schedule, alphas = CinemoSchedule(), linear_alphas()
    x = torch.randn(2, 4, 3, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(steps))
    eps = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(steps + 1))
    ratio = 1000 // steps
    for t in sorted({k * ratio + 1 for k in (0, 1, steps - 1) if k < steps}):
        a_prev = alphas[t - ratio] if t >= ratio else alphas[0]
        x0 = (x - (1 - a_prev).sqrt() * eps) / a_prev.sqrt()
        expected = alphas[t].sqrt() * x0 + (1 - alphas[t]).sqrt() * eps
        torch.testing.assert_close(schedule.ddim_inversion_step(eps, t, x, steps), expected, rtol=1e-6, atol=1e-6)
        # and it undoes the sampler's step when eps is the same
        torch.testing.assert_close(schedule.ddim_step(eps, t, schedule.ddim_inversion_step(eps, t, x, steps), steps),
                                   x, rtol=1e-9, atol=1e-9)


def test_inversion_timesteps_are_the_sampling_timesteps_reversed():
    schedule = CinemoSchedule()
    reference = DDIMScheduler(beta_start=1e-4, beta_end=0.02, beta_schedule="linear", steps_offset=1,
                              set_alpha_to_one=False, timestep_spacing="leading")
    for steps in (1, 2, 7, 10, 50, 333, 999):
        reference.set_timesteps(steps)
        assert schedule.inversion_timesteps(steps).tolist() == reference.timesteps.tolist()[::-1]
    assert schedule.inversion_timesteps(50).tolist() == list(range(1, 1000, 20))


@pytest.mark.parametrize(
    ("batch", "frames", "h", "w", "steps"),
    [(1, 1, 3, 5, 1), (1, 7, 8, 16, 10), (2, 3, 5, 4, 13), (3, 15, 4, 6, 50)],
)
def test_inversion_matches_the_formula_at_other_sizes(batch, frames, h, w, steps):
    residual, base, cond, _ = inputs(batch, frames, h, w, seed=steps)
    ids = torch.tensor([80.0, 90.0, 99.0][:batch])
    unet = AnalyticUNet()
    ours = invert_residual(unet, residual, base, cond, ids, steps=steps)
    assert ours.dtype == torch.float64 and ours.shape == residual.shape
    assert len(unet.calls) == steps and all(call["batch"] == batch for call in unet.calls)
    expected = reference_inversion(residual, base, cond, ids, steps)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_inversion_in_float32_broadcasts_a_single_base_and_context():
    residual, base, cond, _ = inputs(batch=2, frames=4, dtype=torch.float32, seed=4)
    ours = invert_residual(AnalyticUNet(), residual, base[:1], cond[:1], 85, steps=8)
    assert ours.dtype == torch.float32
    expected = reference_inversion(residual, base[:1].expand(2, -1, -1, -1, -1), cond[:1].expand(2, -1, -1), 85, 8)
    assert relative_error(ours, expected) < 1e-5


def test_cfg_inversion_batches_uncond_then_cond():
    residual, base, cond, uncond = inputs(batch=2, frames=2, seed=9)
    unet = AnalyticUNet()
    ours = invert_residual(unet, residual, base, cond, 90, steps=6, guidance_scale=4.0, negative_context=uncond)
    first = unet.calls[0]
    assert first["batch"] == 4
    assert torch.equal(first["context"], torch.cat([uncond, cond]))
    assert torch.equal(first["base"], torch.cat([base, base]))
    assert first["t"].tolist() == [1] * 4
    expected = reference_inversion(residual, base, cond, 90, 6, uncond=uncond, scale=4.0)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    # guidance 1 ignores the negative context: one pass per step
    unet = AnalyticUNet()
    plain = invert_residual(unet, residual, base, cond, 90, steps=6, guidance_scale=1.0, negative_context=uncond)
    assert all(call["batch"] == 2 for call in unet.calls)
    assert not torch.allclose(plain, ours)


@pytest.mark.parametrize("steps", [1, 4, 25, 50])
def test_constant_eps_round_trip_through_sampling(steps):
    """DDIM is exactly invertible when eps does not change: inversion then sampling gives the residual back."""
    residual, base, cond, _ = inputs(batch=2, frames=5, h=6, w=10, seed=steps)
    inverted = invert_residual(ConstantEpsUNet(), residual, base, cond, 90, steps=steps)
    # closed form: every step keeps the predicted x0, so x_T = sqrt(a_T) x0 + sqrt(1 - a_T) eps
    alphas, eps = linear_alphas(), ConstantEpsUNet()(residual, None, cond, base_content=base, motion_ids=None)
    x0 = (residual - (1 - alphas[0]).sqrt() * eps) / alphas[0].sqrt()
    a_last = alphas[(steps - 1) * (1000 // steps) + 1]
    torch.testing.assert_close(inverted, a_last.sqrt() * x0 + (1 - a_last).sqrt() * eps, rtol=1e-6, atol=1e-6)
    back = sample_residual(ConstantEpsUNet(), inverted, base, cond, None, 90, steps=steps, guidance_scale=1.0)
    torch.testing.assert_close(back, residual, rtol=1e-9, atol=1e-9)


# --- the DCT mix against scipy ----------------------------------------------------------------------------------


def scipy_mix(inverted: torch.Tensor, edit_base: torch.Tensor, p: float, t: int) -> np.ndarray:
    """The official exchanged_mixed_dct_freq + add_noise, with scipy's orthonormal DCT, in float64."""
    scheduler = DDIMScheduler(beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    noise = inverted.double()
    noised = scheduler.add_noise(edit_base.double().expand(noise.shape).contiguous(), noise, torch.tensor([t]))
    h, w = noise.shape[-2:]
    mask = np.zeros((1, 1, 1, h, w))
    mask[..., : int(h * p), : int(w * p)] = 1
    axes = (2, 3, 4)
    mixed = scipy.fft.dctn(noised.numpy(), axes=axes, norm="ortho") * mask \
        + scipy.fft.dctn(noise.numpy(), axes=axes, norm="ortho") * (1 - mask)
    return scipy.fft.idctn(mixed, axes=axes, norm="ortho")


@pytest.mark.parametrize(
    ("shape", "base_batch", "p", "t"),
    [((1, 4, 15, 40, 64), 1, 0.23, 985), ((2, 4, 7, 9, 13), 1, 0.23, 985), ((2, 4, 3, 8, 8), 2, 0.5, 500),
     ((1, 4, 1, 5, 7), 1, 0.0, 985), ((1, 4, 2, 6, 6), 1, 1.0, 0)],
)
def test_dct_mix_matches_scipy(shape, base_batch, p, t):
    gen = torch.Generator().manual_seed(sum(shape))
    inverted = torch.randn(shape, generator=gen, dtype=torch.float64)
    edit_base = torch.randn(base_batch, 4, 1, *shape[-2:], generator=gen, dtype=torch.float64)
    ours = edit_init_latents(inverted, edit_base, low_pass=p, noise_timestep=t)
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), scipy_mix(inverted, edit_base, p, t), rtol=0, atol=1e-12)


def test_dct_mix_defaults_are_the_official_985_and_023():
    gen = torch.Generator().manual_seed(3)
    inverted = torch.randn(1, 4, 5, 10, 16, generator=gen)
    edit_base = torch.randn(1, 4, 1, 10, 16, generator=gen)
    expected = scipy_mix(inverted, edit_base, 0.23, 985)
    ours = edit_init_latents(inverted, edit_base)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.double().numpy(), expected, rtol=0, atol=1e-6)
    assert not np.allclose(edit_init_latents(inverted, edit_base, noise_timestep=975).double().numpy(), expected,
                           atol=1e-4)


# --- splitting a clip's latents ---------------------------------------------------------------------------------


def test_split_video_latents_is_the_official_separation_and_inverts_assembly():
    video = torch.randn(2, 4, 6, 3, 5, dtype=torch.float64)
    base, residual = split_video_latents(video)
    assert torch.equal(base, video[:, :, :1])
    assert torch.equal(residual, video[:, :, 1:] - video[:, :, :1])
    torch.testing.assert_close(assemble_video_latents(base, residual), video, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="at least 2 frames"):
        split_video_latents(video[:, :, :1])


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(residual=torch.zeros(1, 4, 4, 6)), "residual must be a float tensor"),
        (dict(residual=torch.zeros(1, 4, 2, 4, 6, dtype=torch.int64)), "residual must be a float tensor"),
        (dict(steps=0), "steps must be an integer in 1..1000"),
        (dict(steps=1000), "steps must be an integer in 1..999"),
        (dict(steps=2.5), "steps"),
        (dict(base_content=torch.zeros(1, 4, 1, 4, 5)), r"base_content must be \[B, 4, 1, 4, 6\]"),
        (dict(base_content=torch.zeros(3, 4, 1, 4, 6)), "base_content has batch 3"),
        (dict(motion_ids=[80.0, 90.0, 99.0]), "motion ids"),
        (dict(guidance_scale=2.0), "negative_context is required"),
        (dict(guidance_scale=2.0, negative_context=torch.zeros(1, 76, 8)), "must match"),
    ],
)
def test_inversion_rejects_bad_input(change, message):
    residual, base, cond, _ = inputs(batch=1, frames=2)
    kwargs = dict(residual=residual, base_content=base, context=cond, motion_ids=90, steps=3)
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        invert_residual(AnalyticUNet(), **kwargs)


def test_inversion_rejects_a_unet_with_the_wrong_output():
    residual, base, cond, _ = inputs(batch=1, frames=2)
    with pytest.raises(ValueError, match="unet returned shape"):
        invert_residual(lambda x, *a, **k: x[:, :, :1], residual, base, cond, 90, steps=2)


@pytest.mark.parametrize(
    ("inverted", "edit_base", "kwargs", "message"),
    [
        ((1, 4, 7, 40, 64), (1, 4, 1, 40, 62), {}, r"first frame.s latent is 40x62 .* inverted latents are 40x64"),
        ((1, 4, 7, 40, 64), (1, 4, 1, 32, 64), {}, "32x64.*40x64"),
        ((1, 4, 7, 8, 8), (1, 4, 2, 8, 8), {}, r"edit_base must be one scaled first-frame latent"),
        ((1, 4, 7, 8, 8), (1, 3, 1, 8, 8), {}, "3 channels"),
        ((2, 4, 7, 8, 8), (3, 4, 1, 8, 8), {}, "batch 3"),
        ((1, 4, 8, 8), (1, 4, 1, 8, 8), {}, "inverted must be a float tensor"),
        ((1, 4, 2, 8, 8), (1, 4, 1, 8, 8), dict(low_pass=1.5), r"low_pass must be in \[0, 1\]"),
        ((1, 4, 2, 8, 8), (1, 4, 1, 8, 8), dict(noise_timestep=1000), "noise_timestep must be an integer"),
    ],
)
def test_dct_mix_rejects_bad_input(inverted, edit_base, kwargs, message):
    with pytest.raises(ValueError, match=message):
        edit_init_latents(torch.zeros(inverted), torch.zeros(edit_base), **kwargs)
