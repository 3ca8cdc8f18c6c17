"""The schedule against diffusers' DDIMScheduler (configured like the official sampler) and golden data."""

from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler
from safetensors.torch import load_file

from cinemo_core.sampling.schedule import CinemoSchedule

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_a"


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE / "case.safetensors"))


def official_scheduler() -> DDIMScheduler:
    return DDIMScheduler.from_pretrained(
        str(FIXTURE), subfolder="scheduler", beta_start=1e-4, beta_end=0.02, beta_schedule="linear"
    )


def test_alphas_cumprod_match_golden_and_diffusers(golden):
    schedule = CinemoSchedule()
    assert schedule.alphas_cumprod.dtype == torch.float32
    assert torch.allclose(schedule.alphas_cumprod.double(), golden["alphas_cumprod"].double(), rtol=0, atol=1e-7)
    assert torch.equal(schedule.alphas_cumprod, official_scheduler().alphas_cumprod)
    assert torch.equal(schedule.final_alpha_cumprod, schedule.alphas_cumprod[0])


def test_golden_timesteps(golden):
    assert torch.equal(CinemoSchedule().ddim_timesteps(10), golden["timesteps_used"])


def test_timesteps_match_diffusers_for_every_step_count():
    schedule = CinemoSchedule()
    reference = official_scheduler()
    for steps in range(1, 1001):
        reference.set_timesteps(steps)
        ours = schedule.ddim_timesteps(steps)
        assert torch.equal(ours, reference.timesteps), steps


@pytest.mark.parametrize("steps", [0, 1001, 2.5, True])
def test_bad_step_count(steps):
    with pytest.raises(ValueError, match="steps"):
        CinemoSchedule().ddim_timesteps(steps)


@pytest.mark.parametrize("steps", [1, 7, 50, 333])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ddim_step_eta0_matches_diffusers(steps, dtype):
    schedule = CinemoSchedule()
    reference = official_scheduler()
    reference.set_timesteps(steps)
    gen = torch.Generator().manual_seed(steps)
    x = torch.randn(2, 4, 3, 5, 6, generator=gen, dtype=dtype)
    for t in reference.timesteps[:3]:
        eps = torch.randn(x.shape, generator=gen, dtype=dtype)
        expected = reference.step(eps, t, x).prev_sample
        ours = schedule.ddim_step(eps, t, x, steps)
        assert ours.dtype == dtype
        torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
        x = expected


@pytest.mark.parametrize("eta", [0.3, 1.0])
def test_ddim_step_with_eta_matches_diffusers(eta):
    schedule = CinemoSchedule()
    reference = official_scheduler()
    reference.set_timesteps(20)
    x = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    for t in (int(reference.timesteps[0]), int(reference.timesteps[-1])):
        expected = reference.step(eps, t, x, eta=eta, generator=torch.Generator().manual_seed(5)).prev_sample
        ours = schedule.ddim_step(eps, t, x, 20, eta=eta, generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
        expected = reference.step(eps, t, x, eta=eta, variance_noise=noise).prev_sample
        torch.testing.assert_close(schedule.ddim_step(eps, t, x, 20, eta=eta, variance_noise=noise), expected)


def test_ddim_step_rejects_out_of_schedule_timestep():
    x = torch.zeros(1, 4, 1, 2, 2)
    with pytest.raises(ValueError, match="outside the schedule"):
        CinemoSchedule().ddim_step(x, 1000, x, 1000)


def test_add_noise_matches_diffusers():
    schedule = CinemoSchedule()
    reference = official_scheduler()
    x0 = torch.randn(3, 4, 2, 5, 5, dtype=torch.float64)
    noise = torch.randn(3, 4, 2, 5, 5)
    t = torch.tensor([975, 0, 500])
    expected = reference.add_noise(x0, noise, t)
    ours = schedule.add_noise(x0, noise, t)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    expected32 = reference.add_noise(x0.float(), noise, torch.tensor([975]))
    torch.testing.assert_close(schedule.add_noise(x0.float(), noise, 975), expected32)
    with pytest.raises(ValueError, match="Timesteps"):
        schedule.add_noise(x0, noise, 1000)


def test_sigmas():
    schedule = CinemoSchedule()
    a = official_scheduler().alphas_cumprod.double()
    expected_all = ((1 - a) / a).sqrt()
    torch.testing.assert_close(schedule.all_sigmas().double(), expected_all, rtol=1e-6, atol=0)
    sigmas = schedule.sigmas_for(50)
    assert sigmas.shape == (51,)
    torch.testing.assert_close(sigmas[:-1].double(), expected_all[torch.arange(981, 0, -20)], rtol=1e-6, atol=0)
    torch.testing.assert_close(sigmas[-1].double(), expected_all[0], rtol=1e-6, atol=0)
    assert torch.all(sigmas[:-1] > sigmas[1:])


def test_euler_step_in_sigma_space_equals_ddim():
    # A k-diffusion Euler step between consecutive sigmas is the eta-0 DDIM step; this is what
    # makes sigmas_for usable by ComfyUI samplers.
    schedule = CinemoSchedule()
    reference = official_scheduler()
    reference.set_timesteps(10)
    sigmas = schedule.sigmas_for(10).double()
    x = torch.randn(1, 4, 2, 3, 3, dtype=torch.float64)
    eps = torch.randn_like(x)
    for i, t in enumerate(reference.timesteps):
        a_t = reference.alphas_cumprod[t].double()
        a_prev = reference.alphas_cumprod[t - 100].double() if t >= 100 else reference.final_alpha_cumprod.double()
        expected = reference.step(eps, t, x).prev_sample / a_prev.sqrt()
        euler = x / a_t.sqrt() + (sigmas[i + 1] - sigmas[i]) * eps
        torch.testing.assert_close(euler, expected, rtol=1e-5, atol=1e-5)
