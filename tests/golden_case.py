"""Paths and helpers for the golden `tiny_a` case (reference outputs of the official Cinemo code)."""

from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures"
TINY_A = FIXTURES / "tiny_a"


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max|ours - reference| / max|reference|, the measure the golden README prescribes."""
    ours, reference = ours.double(), reference.double()
    return ((ours - reference).abs().max() / reference.abs().max()).item()


def run_unet(unet, golden: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The golden single forward: the noisy residual at t=741 with the positive prompt."""
    with torch.inference_mode():
        return unet(
            golden["sample"].to(dtype),
            golden["timestep"],
            golden["encoder_hidden_states"],
            base_content=golden["base_content"],
            motion_ids=golden["motion_bucket_id"],
        )
