"""The noise schedule Cinemo samples with: linear betas 1e-4..0.02 and DDIM.

The official sampler loads the SD-1.x scheduler config and overrides the betas to LaVie's
``linear`` schedule (not SD's ``scaled_linear``), then uses ``DDIMScheduler`` with leading
timestep spacing, ``steps_offset=1``, ``set_alpha_to_one=False`` and epsilon prediction.
Everything here reproduces diffusers' ``DDIMScheduler`` numerically: the cumulative alphas
are computed in float32 exactly like diffusers (a float64 product differs by ~2.5e-7), and
the step coefficients are float32 scalars applied in the sample's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..settings import NUM_TRAIN_TIMESTEPS

BETA_START = 1e-4
BETA_END = 0.02
STEPS_OFFSET = 1


def _linear_alphas_cumprod(num_train_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0)


@dataclass(frozen=True)
class CinemoSchedule:
    """Linear-beta DDPM schedule with the official DDIM settings.

    Attributes:
        num_train_timesteps: number of training timesteps (1000).
        beta_start, beta_end: the linear beta range (1e-4..0.02).
        steps_offset: added to every leading-spaced DDIM timestep (1).
        set_alpha_to_one: if False (official), the step after the last timestep lands on
            ``alphas_cumprod[0]`` instead of 1.
    """

    num_train_timesteps: int = NUM_TRAIN_TIMESTEPS
    beta_start: float = BETA_START
    beta_end: float = BETA_END
    steps_offset: int = STEPS_OFFSET
    set_alpha_to_one: bool = False
    alphas_cumprod: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.num_train_timesteps, int) or self.num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be a positive integer, got {self.num_train_timesteps!r}.")
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ValueError(
                f"Expected 0 < beta_start <= beta_end < 1, got beta_start={self.beta_start}, beta_end={self.beta_end}."
            )
        object.__setattr__(
            self, "alphas_cumprod", _linear_alphas_cumprod(self.num_train_timesteps, self.beta_start, self.beta_end)
        )

    @property
    def final_alpha_cumprod(self) -> torch.Tensor:
        """The cumulative alpha DDIM steps to after the last timestep (float32 scalar)."""
        return torch.tensor(1.0) if self.set_alpha_to_one else self.alphas_cumprod[0]

    def _check_steps(self, steps: int) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= self.num_train_timesteps:
            raise ValueError(f"steps must be an integer in 1..{self.num_train_timesteps}, got {steps!r}.")

    def _check_timestep(self, t: int) -> None:
        if not 0 <= t < self.num_train_timesteps:
            raise ValueError(
                f"Timestep {t} is outside the schedule (0..{self.num_train_timesteps - 1}). With leading spacing "
                f"and steps_offset={self.steps_offset}, {self.num_train_timesteps} steps reach timestep "
                f"{self.num_train_timesteps}; use at most {self.num_train_timesteps - 1} steps."
            )

    def step_ratio(self, steps: int) -> int:
        """Distance between consecutive DDIM timesteps for ``steps`` inference steps."""
        self._check_steps(steps)
        return self.num_train_timesteps // steps

    def ddim_timesteps(self, steps: int) -> torch.Tensor:
        """Descending int64 timesteps, identical to ``DDIMScheduler.set_timesteps`` (leading spacing).

        50 steps give ``[981, 961, ..., 21, 1]``. Note that 1000 steps give ``[1000, ..., 1]``
        exactly like diffusers, whose first timestep lies outside the schedule; ``ddim_step``
        rejects it.
        """
        ratio = self.step_ratio(steps)
        return torch.arange(steps - 1, -1, -1, dtype=torch.int64) * ratio + self.steps_offset

    def _step_alphas(
        self, eps: torch.Tensor, x: torch.Tensor, t: int | torch.Tensor, steps: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The cumulative alphas at ``t`` and one DDIM step before it (the final alpha before timestep 0)."""
        if eps.shape != x.shape:
            raise ValueError(f"eps has shape {tuple(eps.shape)} but the sample has {tuple(x.shape)}; they must match.")
        t = int(t)
        self._check_timestep(t)
        prev_t = t - self.step_ratio(steps)
        alphas = self.alphas_cumprod.to(x.device)
        return alphas[t], (alphas[prev_t] if prev_t >= 0 else self.final_alpha_cumprod.to(x.device))

    def ddim_step(
        self,
        eps: torch.Tensor,
        t: int | torch.Tensor,
        x: torch.Tensor,
        steps: int,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One DDIM update x_t -> x_{t - 1000/steps}, numerically like ``DDIMScheduler.step``.

        Args:
            eps: predicted noise, same shape as ``x``.
            t: the current timestep (an int or a one-element tensor).
            x: the current sample.
            steps: the number of inference steps (sets the distance to the previous timestep).
            eta: DDIM stochasticity; 0 (official) is deterministic.
            generator: draws the variance noise when ``eta > 0``.
            variance_noise: explicit variance noise instead of ``generator`` (``eta > 0`` only).
        """
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}.")
        alpha_t, alpha_prev = self._step_alphas(eps, x, t, steps)
        beta_t = 1 - alpha_t

        x0 = (x - beta_t**0.5 * eps) / alpha_t**0.5
        variance = ((1 - alpha_prev) / beta_t) * (1 - alpha_t / alpha_prev)
        std = eta * variance**0.5
        prev = alpha_prev**0.5 * x0 + (1 - alpha_prev - std**2) ** 0.5 * eps
        if eta > 0:
            if variance_noise is not None and generator is not None:
                raise ValueError("Pass either generator or variance_noise, not both.")
            if variance_noise is None:
                gen_device = generator.device if generator is not None else x.device
                variance_noise = torch.randn(
                    eps.shape, generator=generator, device=gen_device, dtype=eps.dtype
                ).to(eps.device)
            elif variance_noise.shape != x.shape:
                raise ValueError(
                    f"variance_noise has shape {tuple(variance_noise.shape)}; expected {tuple(x.shape)}."
                )
            prev = prev + std * variance_noise
        return prev

    def inversion_timesteps(self, steps: int) -> torch.Tensor:
        """Ascending timesteps DDIM inversion visits: the sampling timesteps reversed (50 steps: 1, 21, ..., 981)."""
        return self.ddim_timesteps(steps).flip(0)

    def ddim_inversion_step(
        self, eps: torch.Tensor, t: int | torch.Tensor, x: torch.Tensor, steps: int
    ) -> torch.Tensor:
        """One DDIM inversion update x_{t - 1000/steps} -> x_t: the official ``next_step``.

        ``x0 = (x - sqrt(1 - a_prev) eps) / sqrt(a_prev)``, then ``sqrt(a_t) x0 + sqrt(1 - a_t) eps``, where
        ``a_prev`` is the cumulative alpha one DDIM step before ``t`` (the final alpha when that lies before
        timestep 0). It undoes :meth:`ddim_step` (eta 0) exactly when ``eps`` is the same at both ends.
        Coefficients are float32 scalars applied in the sample's dtype, as in :meth:`ddim_step`.
        """
        alpha_t, alpha_prev = self._step_alphas(eps, x, t, steps)
        x0 = (x - (1 - alpha_prev) ** 0.5 * eps) / alpha_prev**0.5
        return alpha_t**0.5 * x0 + (1 - alpha_t) ** 0.5 * eps

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """Forward diffusion sqrt(a_t) * x0 + sqrt(1 - a_t) * noise, like ``DDIMScheduler.add_noise``.

        ``t`` is an int or an int tensor with one timestep per batch element. The coefficients are
        computed in ``x0``'s dtype, but at least float32 (diffusers uses the sample dtype, fp16 included).
        """
        try:
            torch.broadcast_shapes(noise.shape, x0.shape)
        except RuntimeError as exc:
            raise ValueError(
                f"noise shape {tuple(noise.shape)} cannot be combined with x0 shape {tuple(x0.shape)}."
            ) from exc
        t_tensor = torch.as_tensor(t, device=x0.device).flatten().long()
        if t_tensor.numel() == 0 or int(t_tensor.min()) < 0 or int(t_tensor.max()) >= self.num_train_timesteps:
            raise ValueError(f"Timesteps must be in 0..{self.num_train_timesteps - 1}, got {t!r}.")
        if t_tensor.numel() not in (1, x0.shape[0]):
            raise ValueError(
                f"Got {t_tensor.numel()} timesteps for a batch of {x0.shape[0]}; pass 1 or one per sample."
            )
        coef_dtype = x0.dtype if x0.dtype in (torch.float32, torch.float64) else torch.float32
        alphas = self.alphas_cumprod.to(device=x0.device, dtype=coef_dtype)[t_tensor]
        shape = (-1,) + (1,) * (x0.dim() - 1)
        sqrt_a = (alphas**0.5).reshape(shape)
        sqrt_1ma = ((1 - alphas) ** 0.5).reshape(shape)
        return (sqrt_a * x0 + sqrt_1ma * noise).to(torch.promote_types(x0.dtype, noise.dtype))

    def all_sigmas(self) -> torch.Tensor:
        """k-diffusion sigmas sqrt((1 - a) / a) of all training timesteps (float32, ascending)."""
        a = self.alphas_cumprod.double()
        return ((1 - a) / a).sqrt().float()

    def sigmas_for(self, steps: int) -> torch.Tensor:
        """Descending sigmas for ComfyUI samplers: one per DDIM timestep, then the final alpha's sigma.

        The last entry is not 0: the official DDIM ends at ``alphas_cumprod[0]`` (sigma ~0.01), and
        an Euler step between these sigmas is exactly the official eta-0 DDIM step.
        """
        timesteps = self.ddim_timesteps(steps)
        self._check_timestep(int(timesteps[0]))
        final = self.final_alpha_cumprod.double()
        last = ((1 - final) / final).sqrt().float().reshape(1)
        return torch.cat([self.all_sigmas()[timesteps], last])
