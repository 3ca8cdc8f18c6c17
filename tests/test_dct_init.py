"""DCTInit against the official golden result; the FFT init against an independent numpy version."""

from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import torch
from diffusers import DDIMScheduler
from safetensors.torch import load_file

from cinemo_core.sampling.dct_init import dct_init, fft_init, init_noise
from cinemo_core.sampling.schedule import CinemoSchedule

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_a"


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE / "case.safetensors"))


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.double() - ref.double()).abs().max() / ref.double().abs().max())


def test_reproduces_golden(golden):
    out = dct_init(golden["base_content"], golden["dct_noise"], low_pass=0.23, noise_timestep=975)
    assert out.dtype == golden["dct_noise"].dtype
    assert out.shape == golden["dct_latents"].shape
    assert rel_err(out, golden["dct_latents"]) < 1e-5


def scipy_reference(base: np.ndarray, noise: np.ndarray, p: float, t: int) -> np.ndarray:
    """The official recipe with scipy's DCT and diffusers' add_noise, for any shape."""
    sched = DDIMScheduler(beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    static = np.broadcast_to(base, noise.shape).copy()
    noised = sched.add_noise(torch.from_numpy(static), torch.from_numpy(noise), torch.tensor([t])).numpy()
    h, w = noise.shape[-2:]
    mask = np.zeros((1, 1, 1, h, w))
    mask[..., : int(h * p), : int(w * p)] = 1
    axes = (-3, -2, -1)
    low = scipy.fft.dctn(noised, axes=axes, norm="ortho") * mask
    mixed = low + scipy.fft.dctn(noise, axes=axes, norm="ortho") * (1 - mask)
    return scipy.fft.idctn(mixed, axes=axes, norm="ortho")


@pytest.mark.parametrize(
    "shape,p,t", [((2, 4, 5, 9, 13), 0.23, 975), ((1, 4, 1, 6, 10), 0.5, 985), ((3, 4, 16, 8, 8), 0.0, 500)]
)
def test_any_shape_matches_scipy_recipe(shape, p, t):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(shape)
    base = rng.standard_normal((shape[0], shape[1], 1, shape[3], shape[4]))
    ours = dct_init(torch.from_numpy(base), torch.from_numpy(noise), low_pass=p, noise_timestep=t)
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), scipy_reference(base, noise, p, t), rtol=0, atol=1e-10)


def test_batch_one_first_frame_broadcasts():
    noise = torch.randn(3, 4, 2, 8, 8, dtype=torch.float64)
    base = torch.randn(1, 4, 1, 8, 8, dtype=torch.float64)
    out = dct_init(base, noise)
    expected = scipy_reference(base.numpy(), noise.numpy(), 0.23, 975)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-10)


def numpy_fft_init(base: np.ndarray, noise: np.ndarray, t: int, d_s: float, d_t: float) -> np.ndarray:
    """FreeInit's recipe (fftshift + explicit Gaussian grid) written independently in numpy."""
    a = CinemoSchedule().alphas_cumprod.double().numpy()[t]
    noised = np.sqrt(a) * np.broadcast_to(base, noise.shape) + np.sqrt(1 - a) * noise
    T, H, W = noise.shape[-3:]
    lpf = np.zeros((T, H, W))
    for ti in range(T):
        for hi in range(H):
            for wi in range(W):
                # Centred coordinates of the shifted spectrum, normalised to [-1, 1).
                ft, fh, fw = (2 * (ti - T // 2) / T, 2 * (hi - H // 2) / H, 2 * (wi - W // 2) / W)
                lpf[ti, hi, wi] = np.exp(-(((d_s / d_t) * ft) ** 2 + fh**2 + fw**2) / (2 * d_s**2))
    axes = (-3, -2, -1)
    spec_x = np.fft.fftshift(np.fft.fftn(noised, axes=axes), axes=axes)
    spec_n = np.fft.fftshift(np.fft.fftn(noise, axes=axes), axes=axes)
    mixed = np.fft.ifftshift(spec_x * lpf + spec_n * (1 - lpf), axes=axes)
    return np.fft.ifftn(mixed, axes=axes).real


@pytest.mark.parametrize("shape,d_s,d_t", [((1, 4, 6, 8, 10), 0.25, 0.25), ((2, 4, 5, 7, 9), 0.4, 0.2)])
def test_fft_mode_matches_numpy(shape, d_s, d_t):
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(shape)
    base = rng.standard_normal((1, shape[1], 1, shape[3], shape[4]))
    ours = init_noise("fft", torch.from_numpy(base), torch.from_numpy(noise), d_s=d_s, d_t=d_t, noise_timestep=900)
    np.testing.assert_allclose(ours.numpy(), numpy_fft_init(base, noise, 900, d_s, d_t), rtol=0, atol=1e-10)
    # Same thing through the direct entry point, in float32.
    base32, noise32 = torch.from_numpy(base).float(), torch.from_numpy(noise).float()
    out32 = fft_init(base32, noise32, noise_timestep=900, d_s=d_s, d_t=d_t)
    assert out32.dtype == torch.float32


def test_init_noise_dispatch(golden):
    noise, base = golden["dct_noise"], golden["base_content"]
    assert init_noise("plain", base, noise) is noise
    assert rel_err(init_noise("dct", base, noise), golden["dct_latents"]) < 1e-5
    with pytest.raises(ValueError, match="mode"):
        init_noise("wavelet", base, noise)


def test_bad_input():
    noise = torch.randn(1, 4, 3, 8, 8)
    with pytest.raises(ValueError, match="one frame"):
        dct_init(torch.randn(1, 4, 2, 8, 8), noise)
    with pytest.raises(ValueError, match="does not match"):
        dct_init(torch.randn(1, 4, 1, 8, 9), noise)
    with pytest.raises(ValueError, match="batch"):
        dct_init(torch.randn(2, 4, 1, 8, 8), torch.randn(3, 4, 3, 8, 8))
    with pytest.raises(ValueError, match="noise_timestep"):
        dct_init(torch.randn(1, 4, 1, 8, 8), noise, noise_timestep=1000)
    with pytest.raises(ValueError, match="low_pass"):
        dct_init(torch.randn(1, 4, 1, 8, 8), noise, low_pass=1.5)
    with pytest.raises(ValueError, match="noise must be"):
        dct_init(torch.randn(1, 4, 1, 8, 8), torch.randn(4, 3, 8, 8))
