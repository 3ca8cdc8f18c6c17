"""Cinemo nodes: measure a clip's motion intensity (0..19) so a generation can match a reference video."""

from __future__ import annotations

import torch
from comfy_api.latest import io, ui

from ..cinemo_core.settings import MAX_FRAME_STEP, MIN_FRAME_STEP
from ..cinemo_core.sampling.motion import MAX_INTENSITY, MIN_INTENSITY, mean_consecutive_ssim, ssim_to_intensity



def select_frames(images: torch.Tensor, frame_step: int) -> torch.Tensor:
    """Every ``frame_step``-th frame of an IMAGE batch ``[F, H, W, C]``, RGB only; at least 2 frames.

    Raises:
        ValueError: if fewer than 2 frames remain, with a message saying how to fix it.
    """
    if images.dim() != 4:
        raise ValueError(f"Expected IMAGE frames [F, H, W, C], got shape {list(images.shape)}.")
    frames = images[::frame_step, :, :, :3]
    if frames.shape[0] < 2:
        stepped = f" ({frames.shape[0]} with frame_step {frame_step})" if frame_step > 1 else ""
        raise ValueError(
            f"Cinemo Motion From Video needs a clip of at least 2 frames to measure motion, got "
            f"{images.shape[0]} frame{'s' if images.shape[0] != 1 else ''}{stepped}. Pass the video's frames as "
            "one IMAGE batch (e.g. from a video loader)."
        )
    return frames


class CinemoMotionFromVideo(io.ComfyNode):
    """The motion intensity (0..19) of a clip, from the mean SSIM of its consecutive frames."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoMotionFromVideo",
            display_name="Cinemo Motion From Video",
            category="Cinemo",
            description=(
                f"Measures how much a clip moves, on Cinemo's motion-intensity scale {MIN_INTENSITY}..{MAX_INTENSITY} "
                "(0 = still), so a generation can match a reference video. It uses the mean SSIM of consecutive "
                "frames (luma, 11x11 Gaussian window) mapped as raw id = round(100 x SSIM), clamped to 80..99; "
                "the paper's exact bucketing is unpublished, so treat the value as an approximation."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The reference clip: its frames as one IMAGE batch, at least 2."),
                io.Int.Input(
                    "frame_step",
                    default=MIN_FRAME_STEP,
                    min=MIN_FRAME_STEP,
                    max=MAX_FRAME_STEP,
                    tooltip="Use every n-th frame. Cinemo's clips are 8 fps, so e.g. 3 brings a 24 fps video "
                    "to a comparable frame spacing.",
                ),
            ],
            outputs=[
                io.Int.Output(display_name="intensity", tooltip="Motion intensity 0..19 (0 = least motion)."),
                io.Float.Output(display_name="mean_ssim", tooltip="Mean SSIM of consecutive frames (1 = no change)."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images: torch.Tensor, frame_step: int = 1) -> io.NodeOutput:
        ssim = mean_consecutive_ssim(select_frames(images, frame_step))
        intensity = ssim_to_intensity(ssim)
        return io.NodeOutput(
            intensity, ssim, ui=ui.PreviewText(f"motion intensity {intensity} (mean SSIM {ssim:.4f})")
        )


NODES: list[type[io.ComfyNode]] = [CinemoMotionFromVideo]
