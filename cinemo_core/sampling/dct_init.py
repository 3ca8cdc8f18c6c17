"""Initial noise for sampling: Cinemo's DCTInit, the FFT low-pass init it replaces, or plain noise.

DCTInit (official ``animation.py`` + ``utils.exchanged_mixed_dct_freq``): the first-frame latent
is repeated over all frames and diffused to ``noise_timestep`` with the same Gaussian noise that
the sampler will start from. The low spatial frequencies of that noised static video replace
those of the noise. The official code applies an orthonormal 3-D DCT over (frames, h, w) with a
mask whose frame dimension is 1, so every temporal frequency is kept and only a top-left
``int(h*p) x int(w*p)`` block of spatial frequencies is swapped. It works in float64.

Unlike the official code (whose noise shape is hard-coded to 1x4x15x40x64), any batch size,
frame count and latent size is accepted.
"""

from __future__ import annotations

from typing import Literal

import torch

from .dct import dct, idct
from .schedule import CinemoSchedule

InitMode = Literal["dct", "fft", "plain"]
INIT_MODES = ("dct", "fft", "plain")


def _check_inputs(first_frame_latent: torch.Tensor, noise: torch.Tensor, noise_timestep: int,
                  schedule: CinemoSchedule) -> None:
    if not isinstance(noise, torch.Tensor) or noise.dim() != 5 or not noise.is_floating_point():
        raise ValueError(f"noise must be a float tensor [B, C, F, h, w], got {getattr(noise, 'shape', noise)!r}.")
    if not isinstance(first_frame_latent, torch.Tensor) or first_frame_latent.dim() != 5:
        raise ValueError(
            f"first_frame_latent must be a tensor [B, C, 1, h, w], got {getattr(first_frame_latent, 'shape', None)!r}."
        )
    b, c, f, h, w = first_frame_latent.shape
    if f != 1:
        raise ValueError(f"first_frame_latent must hold exactly one frame (dim 2 = 1), got {f}.")
    if (c, h, w) != (noise.shape[1], noise.shape[3], noise.shape[4]):
        raise ValueError(
            f"first_frame_latent [B, {c}, 1, {h}, {w}] does not match noise {list(noise.shape)} "
            "in channels/height/width."
        )
    if b not in (1, noise.shape[0]):
        raise ValueError(f"first_frame_latent has batch {b}; expected 1 or the noise batch {noise.shape[0]}.")
    if isinstance(noise_timestep, bool) or not isinstance(noise_timestep, int) \
            or not 0 <= noise_timestep < schedule.num_train_timesteps:
        raise ValueError(
            f"noise_timestep must be an integer in 0..{schedule.num_train_timesteps - 1}, got {noise_timestep!r}."
        )


def _noised_static_video(first_frame_latent: torch.Tensor, noise: torch.Tensor, noise_timestep: int,
                         schedule: CinemoSchedule) -> torch.Tensor:
    """The first frame repeated over the noise's frames and diffused to ``noise_timestep`` (float64)."""
    static = first_frame_latent.to(torch.float64).expand(noise.shape).contiguous()
    return schedule.add_noise(static, noise.to(torch.float64), noise_timestep)


def dct_init(
    first_frame_latent: torch.Tensor,
    noise: torch.Tensor,
    schedule: CinemoSchedule | None = None,
    low_pass: float = 0.23,
    noise_timestep: int = 975,
) -> torch.Tensor:
    """Cinemo's DCTInit: low DCT frequencies of the noised first frame, high ones of ``noise``.

    Args:
        first_frame_latent: [B or 1, C, 1, h, w] scaled latent of the input image.
        noise: [B, C, F, h, w] Gaussian noise (the same noise diffuses the first frame).
        schedule: the noise schedule (default: the official linear schedule).
        low_pass: fraction p in [0, 1] of each spatial axis kept from the image
            (top-left ``int(h*p) x int(w*p)`` DCT block, as the official code).
        noise_timestep: the timestep the static video is diffused to (official 975; the
            demo app uses 985).

    Returns:
        [B, C, F, h, w] initial latents in ``noise``'s dtype, computed in float64.
    """
    schedule = schedule or CinemoSchedule()
    _check_inputs(first_frame_latent, noise, noise_timestep, schedule)
    if not 0.0 <= low_pass <= 1.0:
        raise ValueError(f"low_pass must be in [0, 1], got {low_pass}.")
    noised = _noised_static_video(first_frame_latent, noise, noise_timestep, schedule)
    h, w = noise.shape[-2:]
    mask = torch.zeros(1, 1, 1, h, w, dtype=torch.float64, device=noise.device)
    mask[..., : int(h * low_pass), : int(w * low_pass)] = 1
    dims = (-3, -2, -1)
    mixed = dct(noised, dims) * mask + dct(noise.to(torch.float64), dims) * (1 - mask)
    return idct(mixed, dims).to(noise.dtype)


def gaussian_low_pass_3d(frames: int, height: int, width: int, d_s: float = 0.25, d_t: float = 0.25,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """FreeInit-style Gaussian low-pass filter in unshifted FFT layout, float64 [frames, height, width].

    ``exp(-((d_s/d_t * f_t)^2 + f_h^2 + f_w^2) / (2 d_s^2))`` with each frequency normalised to
    [-1, 1) (``2 * fftfreq(n)``). For even sizes this equals FreeInit's filter after its fftshift;
    for odd sizes FreeInit's grid is off-centre by half a bin, here it stays symmetric so the
    filtered spectrum keeps the Hermitian symmetry of a real signal.
    """
    if d_s <= 0 or d_t <= 0:
        raise ValueError(f"d_s and d_t must be > 0, got d_s={d_s}, d_t={d_t}.")
    ft = 2 * torch.fft.fftfreq(frames, dtype=torch.float64, device=device)
    fh = 2 * torch.fft.fftfreq(height, dtype=torch.float64, device=device)
    fw = 2 * torch.fft.fftfreq(width, dtype=torch.float64, device=device)
    d2 = ((d_s / d_t) * ft)[:, None, None] ** 2 + fh[None, :, None] ** 2 + fw[None, None, :] ** 2
    return torch.exp(-d2 / (2 * d_s**2))


def fft_init(
    first_frame_latent: torch.Tensor,
    noise: torch.Tensor,
    schedule: CinemoSchedule | None = None,
    noise_timestep: int = 975,
    d_s: float = 0.25,
    d_t: float = 0.25,
) -> torch.Tensor:
    """The FFT low-pass init (FreeInit / ConsistI2V FrameInit style) that the paper compares with.

    Mixes the Gaussian-low-passed 3-D spectrum (over frames, h, w) of the noised static video with
    the complementary high band of ``noise`` and keeps the real part. Same inputs and output as
    :func:`dct_init`; ``d_s``/``d_t`` are the spatial/temporal normalised cut-offs.
    """
    schedule = schedule or CinemoSchedule()
    _check_inputs(first_frame_latent, noise, noise_timestep, schedule)
    noised = _noised_static_video(first_frame_latent, noise, noise_timestep, schedule)
    lpf = gaussian_low_pass_3d(*noise.shape[-3:], d_s=d_s, d_t=d_t, device=noise.device)
    dims = (-3, -2, -1)
    mixed = torch.fft.fftn(noised, dim=dims) * lpf + torch.fft.fftn(noise.to(torch.float64), dim=dims) * (1 - lpf)
    return torch.fft.ifftn(mixed, dim=dims).real.to(noise.dtype)


def init_noise(
    mode: InitMode,
    first_frame_latent: torch.Tensor,
    noise: torch.Tensor,
    schedule: CinemoSchedule | None = None,
    low_pass: float = 0.23,
    noise_timestep: int = 975,
    d_s: float = 0.25,
    d_t: float = 0.25,
) -> torch.Tensor:
    """Initial latents by ``mode``: ``"dct"`` (Cinemo), ``"fft"`` (FreeInit-style) or ``"plain"`` (noise as is).

    ``low_pass`` is used by ``"dct"``, ``d_s``/``d_t`` by ``"fft"``; see :func:`dct_init` and
    :func:`fft_init`.
    """
    if mode == "dct":
        return dct_init(first_frame_latent, noise, schedule, low_pass=low_pass, noise_timestep=noise_timestep)
    if mode == "fft":
        return fft_init(first_frame_latent, noise, schedule, noise_timestep=noise_timestep, d_s=d_s, d_t=d_t)
    if mode == "plain":
        if not isinstance(noise, torch.Tensor):
            raise ValueError(f"noise must be a tensor, got {type(noise).__name__}.")
        return noise
    raise ValueError(f"mode must be one of {INIT_MODES}, got {mode!r}.")
