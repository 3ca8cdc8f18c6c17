"""Loops and end frames in ComfyUI: the core's pull of the last frames (``cinemo_core.sampling.loop``) as a
post-CFG function, and the end frame that Cinemo Conditioning puts in the conditioning.

A post-CFG function sees the whole residual after guidance, and after Cinemo Context Windows fused their
windows, so its per-frame weights and target are indexed by absolute frame whatever the sampler and windows.
Cinemo Seamless Loop adds one to its MODEL; an end frame adds one to the sampling run of every Cinemo MODEL
whose positive conditioning carries ``END_FRAME_KEY`` (``prepare_end_frame``, a ``SAMPLER_SAMPLE`` wrapper), and
sets the end frame's residual exactly once the run is done (the official schedule ends at a non-zero noise level).
"""

from __future__ import annotations

from typing import Callable

import torch

from ...cinemo_core.sampling.loop import default_end_ramp, end_frame_weights, finish_on_target, pull_clean_residual
from ..comfy_compat import post_cfg_functions, with_post_cfg_function

#: Conditioning key Cinemo Conditioning sets: the end frame's latent [N or 1, 4, h, w] (unscaled, as a LATENT).
END_FRAME_KEY = "cinemo_end_frame"
#: Set on the loop's post-CFG function, so that an end frame on the same run is refused (two ends for one video).
LOOP_MARK = "cinemo_seamless_loop"

Weights = Callable[[int], torch.Tensor]


def pull_post_cfg(weights_for: Weights, target: torch.Tensor | None = None, *, node: str) -> Callable[[dict], torch.Tensor]:
    """A post-CFG function pulling ``args["denoised"]`` ``[N, 4, F, h, w]`` towards ``target`` (None: the first
    frame) with ``weights_for(F)`` (:func:`cinemo_core.sampling.loop.pull_clean_residual`)."""

    def post_cfg(args: dict) -> torch.Tensor:
        denoised = args["denoised"]
        if denoised.ndim != 5:
            raise ValueError(f"{node} works on Cinemo's residual latent [videos, 4, frames, h, w].")
        return pull_clean_residual(denoised, weights_for(denoised.shape[2]), target)

    return post_cfg


def end_frame_weights_for(frames: int) -> torch.Tensor:
    """The end frame's per-frame weights for ``frames`` residual frames: the loop's default ramp, landing on it."""
    return end_frame_weights(frames, default_end_ramp(frames))


def prepare_end_frame(
    positive: list[dict], model_options: dict, model, *, first_frame_key: str
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """For a run whose positive conditioning carries an end frame: add its pull to this run's post-CFG functions
    and return the finish that sets the last frame to it exactly; None (nothing changes) without one.

    The target is the end latent minus the first latent (``first_frame_key``), both in the model's space."""
    first_cond = positive[0] if positive else {}
    end = first_cond.get(END_FRAME_KEY)
    if end is None:
        return None
    if any(getattr(function, LOOP_MARK, False) for function in post_cfg_functions(model_options)):
        raise ValueError(
            "Cinemo Seamless Loop and Cinemo Conditioning's end_frame both set where the video ends (a loop ends on the "
            "first frame). Remove the Seamless Loop node, or disconnect end_frame."
        )
    first = first_cond[first_frame_key]
    target = (model.process_latent_in(end.float()) - model.process_latent_in(first.float())).unsqueeze(2)
    with_post_cfg_function(model_options, pull_post_cfg(end_frame_weights_for, target, node="Cinemo end_frame"))
    return lambda samples: finish_on_target(samples, end_frame_weights_for(samples.shape[2]), target)
