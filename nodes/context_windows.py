"""Cinemo Context Windows: long videos through ComfyUI's own context windows, set up the way Cinemo needs.

Windows run over the residual axis (dim 2) and every window gets the same first frame and motion id (they are
per-sample conds that the handler leaves whole), so each window looks like a trained 16-frame clip. The
handler is ComfyUI's, with two fixes for 0.3.64: several videos in a batch (the timestep is per video, not
per frame) and multi-stage samplers (they evaluate between the schedule's sigmas; the step is kept).
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..cinemo_core.sampling.context_windows import BATCHED, FUSE_METHODS, OVERLAP_LINEAR, STANDARD_STATIC, STANDARD_UNIFORM
from ..cinemo_core.settings import (
    FRAME_DIM,
    CONTEXT_WINDOW_FUSE,
    CONTEXT_WINDOW_OVERLAP,
    CONTEXT_WINDOW_SCHEDULE,
    MAX_FRAMES,
    TRAINED_FRAMES,
)
from .comfy_compat import ContextHandler, ContextWindow, context_fuse_method, context_schedule, use_context_windows
from .model.guards import require_cinemo_model

#: The residual frame axis of Cinemo's latent [N, 4, F - 1, h, w].
#: Looped schedules put the last frames right after the first image: not offered (see README).
SCHEDULES = (STANDARD_UNIFORM, STANDARD_STATIC, BATCHED)


class _VideoWindow(ContextWindow):
    def get_tensor(self, full: torch.Tensor, device=None, dim=None) -> torch.Tensor:
        if dim == 0 and self.dim != 0:  # the handler fetches the timestep this way: it is per video
            return full.to(device) if device is not None else full
        return super().get_tensor(full, device, dim)


class CinemoContextHandler(ContextHandler):
    def set_step(self, timestep: torch.Tensor, model_options: dict) -> None:
        sigmas = model_options["transformer_options"]["sample_sigmas"]
        matches = torch.nonzero(torch.isclose(sigmas, timestep.flatten()[:1], rtol=1e-4))
        if matches.numel():
            self._step = int(matches[0].item())

    def get_context_windows(self, model, x_in: torch.Tensor, model_options: dict) -> list:
        return [_VideoWindow(window.index_list, dim=window.dim)
                for window in super().get_context_windows(model, x_in, model_options)]


def window_errors(frames: int, overlap: int, schedule: str, fuse: str) -> list[str]:
    """What is wrong with a window setting (window length in frames, the first image included)."""
    errors = []
    if overlap >= frames - 1:
        errors.append(f"overlap: must be smaller than the {frames - 1} generated frames of a window (window_frames "
                      f"{frames}), got {overlap}.")
    if fuse == OVERLAP_LINEAR and (schedule == BATCHED or overlap == 0):
        errors.append("fuse_method: overlap-linear needs overlapping windows; use another schedule or overlap > 0.")
    return errors


class CinemoContextWindows(io.ComfyNode):
    """Long videos: the model samples windows of 16 frames (the trained length) that overlap and are fused."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoContextWindows",
            display_name="Cinemo Context Windows",
            category="Cinemo",
            description=(
                "Lets Cinemo make videos longer than the 16 frames it was trained on: each sampling step runs the "
                "model on overlapping windows of frames (each with the first image, so each looks like a trained "
                "clip) and fuses them, with ComfyUI's context windows. Set the length in Cinemo Conditioning's "
                "frames. Videos no longer than one window are sampled exactly as without this node."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The Cinemo MODEL."),
                io.Int.Input("window_frames", default=TRAINED_FRAMES, min=3, max=MAX_FRAMES,
                             tooltip=f"Frames per window, the first image included (trained: {TRAINED_FRAMES})."),
                io.Int.Input("overlap", default=CONTEXT_WINDOW_OVERLAP, min=0, max=MAX_FRAMES,
                             tooltip="Frames shared by neighbouring windows."),
                io.Combo.Input("schedule", options=list(SCHEDULES), default=CONTEXT_WINDOW_SCHEDULE,
                               tooltip="standard_uniform (default): windows shift every step so seams move; "
                               "standard_static: the same windows every step; batched: no overlap."),
                io.Combo.Input("fuse_method", options=list(FUSE_METHODS), default=CONTEXT_WINDOW_FUSE,
                               tooltip="How overlapping windows are blended; relative (default) weighs each "
                               "window's centre most."),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The MODEL, sampling in context windows.")],
        )

    @classmethod
    def execute(cls, model, window_frames: int, overlap: int, schedule: str, fuse_method: str) -> io.NodeOutput:
        require_cinemo_model(model, "model")
        if errors := window_errors(window_frames, overlap, schedule, fuse_method):
            raise ValueError(" ".join(errors))
        patched = model.clone()
        handler = CinemoContextHandler(
            context_schedule=context_schedule(schedule), fuse_method=context_fuse_method(fuse_method),
            context_length=window_frames - 1, context_overlap=overlap, context_stride=1, closed_loop=False,
            dim=FRAME_DIM,
        )
        use_context_windows(patched, handler)
        return io.NodeOutput(patched)


NODES: list[type[io.ComfyNode]] = [CinemoContextWindows]
