"""Cinemo Scheduler: the official DDIM timesteps as ComfyUI SIGMAS."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..cinemo_core.settings import DEFAULT_STEPS, MAX_STEPS, MIN_STEPS, check_steps
from ..cinemo_core.sampling.schedule import CinemoSchedule
from .setting_inputs import check_inputs


def official_sigmas(steps: int) -> torch.Tensor:
    """One sigma per official DDIM timestep (981, 961, ... for 50 steps), then the official final alpha's."""
    check_inputs([("steps", check_steps, steps)])
    return CinemoSchedule().sigmas_for(steps)


def steps_input(tooltip: str) -> io.Int.Input:
    return io.Int.Input("steps", default=DEFAULT_STEPS, min=MIN_STEPS, max=MAX_STEPS, tooltip=tooltip)


class CinemoScheduler(io.ComfyNode):
    """SIGMAS of the official Cinemo DDIM schedule."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoScheduler",
            display_name="Cinemo Scheduler",
            category="Cinemo",
            description=(
                "The official Cinemo DDIM timesteps (leading spacing, offset 1: 981, 961, ..., 1 for 50 steps) "
                "ending at the official final alpha. With the 'ddim' sampler in SamplerCustomAdvanced this is "
                "the paper's sampler."
            ),
            inputs=[steps_input(f"Number of denoising steps (official {DEFAULT_STEPS}).")],
            outputs=[io.Sigmas.Output(display_name="sigmas", tooltip="steps + 1 sigmas for a custom sampler.")],
        )

    @classmethod
    def execute(cls, steps: int) -> io.NodeOutput:
        return io.NodeOutput(official_sigmas(steps))


NODES: list[type[io.ComfyNode]] = [CinemoScheduler]
