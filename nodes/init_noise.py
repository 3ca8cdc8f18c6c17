"""The NOISE object of our DCTInit node, and how its noise is scaled for the first sigma of any schedule.

ComfyUI's samplers start from ``x = noise * s + latent`` with ``s = sqrt(1 + sigma_0^2)`` when the
schedule starts at the model's ``sigma_max`` and ``s = sigma_0`` otherwise (``KSAMPLER.sample`` ->
``model_sampling.noise_scaling``). That is exact for unit Gaussian noise. Cinemo's initial latent is
not unit noise: DCTInit gives x_T, a *DDPM-space* latent that the official sampler uses directly as
the latent at its first timestep; in ComfyUI's (k-diffusion) space that is ``x_T * sqrt(1 + sigma_0^2)``.

So ``generate_noise`` returns x_T tagged as :class:`DiffusedNoise`, and the Cinemo model's
``OUTER_SAMPLE`` wrapper (registered by the model loader; it sees the sigmas) replaces it with
``x_T * sqrt(1 + sigma_0^2) / s`` (:func:`noise_for_first_sigma`) before ComfyUI scales it. The start
is then exact for any scheduler. With a MODEL that is not Cinemo the tag is inert and ComfyUI's own
scaling applies (off by ``sqrt(1 + sigma_0^2) / sigma_0``, about 1e-4 at the usual first sigmas).

Latent layouts (ComfyUI convention, unscaled VAE latents):
  * ``input_latent["samples"]``: the residual latent ``[N, 4, F - 1, h, w]`` (zeros from Cinemo Conditioning);
  * ``first_frame``: ``[N or 1, 4, h, w]``;
  * the returned noise: ``[N, 4, F - 1, h, w]`` float32 on the CPU, in the model's scaled latent space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..cinemo_core.dct_init import INIT_MODES, init_noise
from ..cinemo_core.schedule import CinemoSchedule
from .latents import check_residual_matches_first_frame


class DiffusedNoise(torch.Tensor):
    """A tag on the tensor a NOISE returns: it is a DDPM-space x_T, not unit noise.

    Torch functions on it return plain tensors, so the tag never spreads beyond the object itself.
    """

    __torch_function__ = torch._C._disabled_torch_function_impl


def first_sigma_is_max(sigma0: float, sigma_max: float) -> bool:
    """ComfyUI's ``KSAMPLER.max_denoise``: does the schedule start at (or above) the model's sigma_max?"""
    return math.isclose(sigma_max, sigma0, rel_tol=1e-05) or sigma0 > sigma_max


def noise_for_first_sigma(x_t: torch.Tensor, sigma0: float, sigma_max: float) -> torch.Tensor:
    """The noise that ComfyUI's ``noise_scaling`` turns into exactly ``x_T * sqrt(1 + sigma0^2)``."""
    if sigma0 <= 0:
        return x_t
    scale = 1.0 if first_sigma_is_max(sigma0, sigma_max) else math.sqrt(1.0 + sigma0**2) / sigma0
    return (x_t.to(torch.float64) * scale).to(x_t.dtype)


@dataclass
class CinemoNoise:
    """ComfyUI NOISE: Gaussian noise from ``seed``, turned into Cinemo's initial latent by ``mode``.

    Attributes:
        first_frame: unscaled first-frame latent ``[N or 1, 4, h, w]``.
        seed: seeds a private CPU generator (ComfyUI's global RNG is left alone).
        mode: ``"dct"`` (DCTInit, official), ``"fft"`` (FreeInit-style low-pass) or ``"plain"`` (the noise).
        low_pass: DCTInit's low-pass fraction of each spatial axis.
        noise_timestep: the timestep the static first-frame video is diffused to (dct and fft).
        latent_scale: the VAE scaling factor that takes LATENT values to model space (0.18215).
        base_noise: Gaussian noise to use instead of drawing it from ``seed`` (e.g. DDIM-inverted latents
            for motion transfer, as the official editing pipeline does); shaped like the residual latent.
    """

    first_frame: torch.Tensor
    seed: int
    mode: str = "dct"
    low_pass: float = 0.23
    noise_timestep: int = 975
    latent_scale: float = 0.18215
    base_noise: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.mode not in INIT_MODES:
            raise ValueError(f"mode must be one of {', '.join(INIT_MODES)}, got {self.mode!r}.")

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        """x_T for ``input_latent["samples"]`` (the residual latent), tagged as :class:`DiffusedNoise`."""
        residual = input_latent["samples"]
        check_residual_matches_first_frame(
            residual.shape, self.first_frame.shape, residual_name="latent_image (the residual LATENT)",
            first_frame_name="first_frame (of the Cinemo Init Noise node)",
        )
        if self.base_noise is not None:
            if tuple(self.base_noise.shape) != tuple(residual.shape):
                raise ValueError(
                    f"base_noise has shape {list(self.base_noise.shape)}; expected the residual latent's "
                    f"{list(residual.shape)}."
                )
            noise = self.base_noise.detach().to(device="cpu", dtype=torch.float32)
        else:
            generator = torch.Generator(device="cpu").manual_seed(int(self.seed))
            noise = torch.randn(tuple(residual.shape), generator=generator, dtype=torch.float32)
        base = (self.first_frame.detach().to(device="cpu", dtype=torch.float64) * self.latent_scale).unsqueeze(2)
        x_t = init_noise(
            self.mode, base, noise, CinemoSchedule(), low_pass=self.low_pass, noise_timestep=self.noise_timestep
        )
        return x_t.to(torch.float32).contiguous().as_subclass(DiffusedNoise)
