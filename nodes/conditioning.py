"""Cinemo Conditioning: the first frame and the motion id join both text conditionings.

The official sampler gives cond and uncond the same first frame and motion id, so both outputs carry them.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..cinemo_core.finite import check_text_embeddings
from ..cinemo_core.settings import (
    DEFAULT_FRAMES,
    DEFAULT_INTENSITY,
    MAX_FRAMES,
    MAX_INTENSITY,
    MAX_MOTION_ID,
    MIN_FRAMES,
    MIN_INTENSITY,
    TRAINED_FRAMES,
    check_frames,
    check_intensity,
    check_motion_id,
    intensity_to_motion_id,
)
from .model.base_model import FIRST_FRAME_KEY, MOTION_ID_KEY
from .comfy_compat import conditioning_with, intermediate_device
from .latents import first_frame_samples
from .setting_inputs import InputCheck, input_problems
from .model.guards import require_cinemo_model

#: ``raw_motion_id`` values below 0 mean "use intensity".
RAW_ID_OFF = -1.0


def input_errors(intensity: object, frames: object, raw_motion_id: object) -> list[str]:
    """What is wrong with the given settings, by the rules of :mod:`cinemo_core.settings` (None = not known yet;
    a negative ``raw_motion_id`` means "use intensity")."""
    checks: list[InputCheck] = [("intensity", check_intensity, intensity), ("frames", check_frames, frames)]
    if not isinstance(raw_motion_id, (int, float)) or isinstance(raw_motion_id, bool) or raw_motion_id >= 0:
        checks.append(("raw_motion_id", lambda value: check_motion_id(value, warn=False), raw_motion_id))
    return input_problems(checks)


def _check_text_width(conditioning: list, input_name: str, expected: int) -> None:
    for tensor, _ in conditioning:
        if tensor.shape[-1] != expected:
            raise ValueError(
                f"{input_name}: the text embeddings have {tensor.shape[-1]} channels but the Cinemo model expects "
                f"{expected} (CLIP ViT-L/14). Use CLIPLoader with type 'stable_diffusion' and a CLIP-L text encoder."
            )


class CinemoConditioning(io.ComfyNode):
    """Adds the first frame and motion intensity to the conditioning and makes the residual latent."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoConditioning",
            display_name="Cinemo Conditioning",
            category="Cinemo",
            description=(
                "Gives the sampler what Cinemo is conditioned on besides text: the first frame and the motion "
                "intensity. Outputs the conditionings to sample with and the empty residual latent to denoise."
            ),
            inputs=[
                io.Conditioning.Input("positive", tooltip="The prompt, encoded with CLIPTextEncode (CLIP-L)."),
                io.Conditioning.Input(
                    "negative", tooltip="The negative prompt (the official default is the empty prompt)."
                ),
                io.Latent.Input("first_frame", tooltip="The first-frame latent from Cinemo First Frame Encode."),
                io.Int.Input(
                    "intensity", default=DEFAULT_INTENSITY, min=MIN_INTENSITY, max=MAX_INTENSITY,
                    tooltip="Motion intensity: 0 = almost still, 19 = strongest motion (raw id 99 - intensity).",
                ),
                io.Int.Input(
                    "frames", default=DEFAULT_FRAMES, min=MIN_FRAMES, max=MAX_FRAMES,
                    tooltip=f"Frames per video including the first image. The model was trained on {TRAINED_FRAMES}.",
                ),
                io.Float.Input(
                    "raw_motion_id", default=RAW_ID_OFF, min=RAW_ID_OFF, max=MAX_MOTION_ID, step=1.0, optional=True,
                    tooltip="Advanced: a raw motion id for the model (0..1000), overriding intensity; the released weights were "
                    "trained on 80..99 (others log a warning). -1 = use intensity.",
                ),
                io.Model.Input(
                    "model", optional=True,
                    tooltip="Optional: the Cinemo MODEL, to check the model and the text encoder fit together.",
                ),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="Positive conditioning with the first frame."),
                io.Conditioning.Output(display_name="negative", tooltip="Negative conditioning with the first frame."),
                io.Latent.Output(
                    display_name="latent", tooltip="The empty motion residual [videos, 4, frames-1, h, w] to sample."
                ),
            ],
        )

    @classmethod
    def execute(
        cls, positive: list, negative: list, first_frame: dict, intensity: int, frames: int,
        raw_motion_id: float = RAW_ID_OFF, model=None,
    ) -> io.NodeOutput:
        # ComfyUI checks the widgets' ranges input by input before the run; values from links arrive unchecked
        if errors := input_errors(intensity, frames, raw_motion_id):
            raise ValueError(" ".join(errors))
        samples = first_frame_samples(first_frame, "first_frame")
        for name, conditioning in (("positive", positive), ("negative", negative)):
            for embeddings, _ in conditioning:
                check_text_embeddings(embeddings, name)
        if model is not None:
            require_cinemo_model(model, "model")
            width = model.model.cinemo_config.cross_attention_dim
            _check_text_width(positive, "positive", width)
            _check_text_width(negative, "negative", width)
        if raw_motion_id >= 0:
            motion_id = check_motion_id(float(raw_motion_id))
        else:
            motion_id = intensity_to_motion_id(intensity)
        values = {FIRST_FRAME_KEY: samples, MOTION_ID_KEY: motion_id}
        positive = conditioning_with(positive, values)
        negative = conditioning_with(negative, values)
        videos, channels, height, width = samples.shape
        residual = torch.zeros(
            [videos, channels, frames - 1, height, width], device=intermediate_device()
        )
        return io.NodeOutput(positive, negative, {"samples": residual})


NODES: list[type[io.ComfyNode]] = [CinemoConditioning]
