"""Cinemo Conditioning: the first frame and the motion id join both text conditionings.

The official sampler gives cond and uncond the same first frame and motion id, so both outputs carry them.
"""

from __future__ import annotations

import logging

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
from .model.end_frame import END_FRAME_KEY
from .comfy_compat import conditioning_with, intermediate_device
from .latents import SOURCE_SIZE_KEY, first_frame_samples, with_first_frame
from ..cinemo_core.sampling.still import (
    LATENT_CELL, as_mask_batch, batch_masks, check_aspect, is_unpainted, latent_mask,
)
from .setting_inputs import InputCheck, input_problems
from .model.guards import require_cinemo_model

LOG = logging.getLogger(__name__)

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
                io.Mask.Input(
                    "motion_mask", optional=True,
                    tooltip="Optional cinemagraph mask: white (1) = may move, black (0) = stays exactly still, grey "
                    "blends; ComfyUI's convention (as Set Latent Noise Mask). Load Image's MASK is white where you "
                    "painted in the mask editor, so paint what should move. Any size of the image's shape; one mask "
                    "for all videos or one per video. Load Image's empty 64x64 mask (nothing painted, on a picture that "
                    "is not 64x64) animates everything; any other all-black mask gives a still video.",
                ),
                io.Boolean.Input(
                    "invert_mask", default=False, optional=True,
                    tooltip="Flip motion_mask: then white = stays still and black = moves (paint what stays still).",
                ),
                io.Latent.Input(
                    "end_frame", optional=True,
                    tooltip="Optional end frame: the latent of a second picture from Cinemo First Frame Encode (same "
                    "width and height). The video starts on first_frame and ends exactly on this one; the last "
                    "quarter of the frames glide towards it, as Cinemo Seamless Loop glides back to the start. The "
                    "model was never trained for this: large changes between the two pictures morph rather than move.",
                ),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="Positive conditioning with the first frame."),
                io.Conditioning.Output(display_name="negative", tooltip="Negative conditioning with the first frame."),
                io.Latent.Output(
                    display_name="latent", tooltip="The empty motion residual [videos, 4, frames-1, h, w] to sample. It "
                    "carries the first frame, so the nodes after the sampler need no first_frame link."
                ),
            ],
        )

    @classmethod
    def execute(
        cls, positive: list, negative: list, first_frame: dict, intensity: int, frames: int,
        raw_motion_id: float = RAW_ID_OFF, model=None, motion_mask: torch.Tensor | None = None,
        invert_mask: bool = False, end_frame: dict | None = None,
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
        if end_frame is not None:
            values[END_FRAME_KEY] = end_frame_samples(end_frame, samples)
        positive = conditioning_with(positive, values)
        negative = conditioning_with(negative, values)
        videos, channels, height, width = samples.shape
        residual = torch.zeros(
            [videos, channels, frames - 1, height, width], device=intermediate_device()
        )
        latent = with_first_frame({"samples": residual}, samples.to(residual.device))
        if motion_mask is not None:
            noise_mask = residual_noise_mask(motion_mask, bool(invert_mask), samples.shape, frames - 1,
                                             first_frame.get(SOURCE_SIZE_KEY))
            if noise_mask is not None:
                latent["noise_mask"] = noise_mask.to(residual.device)
        return io.NodeOutput(positive, negative, latent)


def end_frame_samples(end_frame: dict, first: torch.Tensor) -> torch.Tensor:
    """The end frame's latent [N or 1, 4, h, w] checked against the first frame's [N, 4, h, w]."""
    end = first_frame_samples(end_frame, "end_frame")
    if end.shape[1:] != first.shape[1:]:
        raise ValueError(
            f"end_frame is for {end.shape[-1] * 8}x{end.shape[-2] * 8} pixels (latent {list(end.shape)}) but "
            f"first_frame is for {first.shape[-1] * 8}x{first.shape[-2] * 8} (latent {list(first.shape)}). Encode both "
            "pictures with Cinemo First Frame Encode at the same width and height."
        )
    if end.shape[0] not in (1, first.shape[0]):
        raise ValueError(
            f"end_frame holds {end.shape[0]} pictures (latent {list(end.shape)}) but first_frame {first.shape[0]} "
            f"(latent {list(first.shape)}), one per video; give one end frame for all videos or one per video."
        )
    if not bool(torch.isfinite(end).all()):
        raise ValueError("end_frame holds NaN or infinite values; encode the end picture again with Cinemo First "
                         "Frame Encode.")
    return end


def residual_noise_mask(
    motion_mask: torch.Tensor, invert: bool, first_frame_shape: torch.Size, residual_frames: int,
    source_hw: tuple[int, int] | None,
) -> torch.Tensor | None:
    """The residual LATENT's ``noise_mask`` [videos, 1, F - 1, h, w] (1 = moves), or None when all may move.

    None keeps a run without a mask bit for bit: for Load Image's empty mask (nothing painted) and for a mask
    of all ones. The sampler keeps the residual exactly 0 where it is 0 (``keep_masked_residual``).
    """
    mask = as_mask_batch(motion_mask, "motion_mask")
    videos, _, height, width = first_frame_shape
    # a first frame from elsewhere (Last Frame, Encode Video) has no picture behind it: the video's size stands in
    picture_hw = source_hw or (height * LATENT_CELL, width * LATENT_CELL)
    if is_unpainted(mask, picture_hw):
        LOG.info("Cinemo Conditioning: motion_mask is Load Image's empty mask (nothing painted): the whole picture "
                 "moves. Paint what should move in the mask editor (right click on Load Image > Open in MaskEditor).")
        return None
    if invert:
        mask = 1.0 - mask
    if source_hw is not None:
        check_aspect(mask, source_hw, "motion_mask")
    mask = batch_masks(latent_mask(mask, (height, width)), videos, "motion_mask")
    if bool((mask == 1).all()):
        return None
    if not bool(mask.any()):
        LOG.warning("Cinemo Conditioning: motion_mask is still everywhere (all 0%s): the video will be the still "
                    "picture. To animate, paint what moves (white) or unlink motion_mask.",
                    " after invert_mask" if invert else "")
    return mask[:, None, None].expand(videos, 1, residual_frames, height, width).contiguous()


NODES: list[type[io.ComfyNode]] = [CinemoConditioning]
