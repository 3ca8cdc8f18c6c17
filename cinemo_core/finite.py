"""NaN and infinity stopped where they first appear, with their likely cause named: a black video that
reports success is the worst outcome, and the usual cause (a text encoder with missing weights) is upstream."""

from __future__ import annotations

from typing import Callable

import torch

#: Why text embeddings come out NaN: what a user sees in practice.
TEXT_ENCODER_CAUSE = (
    "the text encoder most likely loaded with missing or damaged weights, for example a CLIP-L re-saved with "
    "transformers 5, which drops the 'text_model.' prefix of its keys (ComfyUI then lists the missing keys in "
    "its console when it loads it). Use the original CLIP-L file (clip_l.safetensors) or the model's "
    "text_encoder/ folder"
)

#: Why a freshly encoded latent is NaN or absurd: what a user sees in practice.
VAE_CAUSE = (
    "the VAE is at fault. Cinemo's temporal VAE (vae_temporal_decoder) loaded with ComfyUI's Load VAE comes out "
    "with hundreds of missing weights (ComfyUI lists them in its console): load it with Cinemo Load Temporal VAE, "
    "or use an SD 1.x VAE (Cinemo's vae/, or vae-ft-mse-840000-ema-pruned)"
)
#: Pixels per latent cell along each side, and latent channels, of Stable Diffusion 1.x VAEs (Cinemo's kind).
VAE_SCALE = 8
LATENT_CHANNELS = 4
#: Far beyond what an SD 1.x VAE encodes an image to (its unscaled latents stay within a few tens).
PLAUSIBLE_LATENT_LIMIT = 1e4


class NonFiniteError(ValueError):
    """A tensor holds NaN or infinite values; the message names the input at fault and the likely cause."""


def is_finite(tensor: torch.Tensor | None) -> bool:
    return tensor is None or bool(torch.isfinite(tensor).all())


def check_text_embeddings(embeddings: torch.Tensor, input_name: str) -> None:
    if not is_finite(embeddings):
        raise NonFiniteError(
            f"{input_name}: the text embeddings contain NaN or infinite values: {TEXT_ENCODER_CAUSE}."
        )


def check_encoded_latent(latent: torch.Tensor, pixel_size: tuple[int, int], input_name: str, what: str) -> None:
    """Stop a latent that cannot have come from an SD 1.x VAE right after encoding, naming the VAE.

    Args:
        latent: the unscaled latents ``[N, C, h, w]`` just encoded.
        pixel_size: ``(height, width)`` of the encoded images.
        input_name: the node input the VAE came in on (the message starts with it).
        what: what was encoded, e.g. "the first frame".

    Raises:
        ValueError: not 4 channels at 1/8 of the image's size.
        NonFiniteError: NaN or infinite values, or values far outside an SD VAE's range.
    """
    height, width = pixel_size
    expected = (LATENT_CHANNELS, height // VAE_SCALE, width // VAE_SCALE)
    if tuple(latent.shape[-3:]) != expected:
        raise ValueError(
            f"{input_name}: {what}'s latent is {list(latent.shape[-3:])} (channels, height, width) for a "
            f"{height}x{width} image, where an SD 1.x VAE gives {list(expected)}: {VAE_CAUSE}."
        )
    if not is_finite(latent):
        problem = "contains NaN or infinite values"
    elif (peak := float(latent.abs().max())) > PLAUSIBLE_LATENT_LIMIT:
        problem = f"reaches {peak:.3g}, far outside the range of an SD VAE's latents"
    else:
        return
    raise NonFiniteError(f"{input_name}: {what}'s latent {problem} right after encoding: {VAE_CAUSE}.")


def check_model_output(
    eps: torch.Tensor,
    *,
    x: torch.Tensor,
    context: torch.Tensor | None,
    base_content: torch.Tensor | None,
    patch_cause: Callable[[], str | None] | None = None,
) -> None:
    """Raise ``NonFiniteError`` if the UNet's output is not finite, naming the first input that was not.

    ``patch_cause``, asked only then, names a host's patch that turned finite values into non-finite ones
    inside the UNet (or returns None).
    """
    if is_finite(eps):
        return
    if not is_finite(context):
        cause = TEXT_ENCODER_CAUSE
    elif not is_finite(base_content):
        cause = "the first frame's latent is not finite: check the VAE that encoded it"
    elif not is_finite(x):
        cause = "the latent given to it is not finite: check the initial noise and the sampler's settings"
    elif patch_cause is not None and (patch := patch_cause()):
        cause = (
            f"its inputs were finite, but {patch} turned finite values into NaN or infinity; the node that "
            "added it does not work at this size or with these settings (FreeU_V2, for one, divides by zero "
            "where the UNet's lowest level is 1x1: latents of at most 8x8, 64x64 pixels). Remove that node or "
            "change its settings or the size"
        )
    else:
        cause = (
            "its inputs were finite, so its weights or their precision are at fault: with fp16 or fp8 weights "
            "try bf16 or fp32, or check the UNet file"
        )
    raise NonFiniteError(f"The Cinemo UNet returned NaN or infinite values: {cause}.")


def check_residual(residual: torch.Tensor, input_name: str) -> None:
    if not is_finite(residual):
        raise NonFiniteError(
            f"{input_name}: the sampled motion residual contains NaN or infinite values, which would decode to "
            "black frames. The sampler's settings or the model's precision made them: try another sampler or "
            "scheduler, or bf16/fp32 weights."
        )
