"""Cinemo's temporal VAE weights in the layout ComfyUI builds SVD's VAE from: diffusers -> SGM keys.

The released ``vae_temporal_decoder/`` is SVD-xt's VAE in diffusers keys; ComfyUI builds that network only
from SGM keys. SGM has no ``quant_conv``, so it is folded into the encoder's last convolution. The temporal
blend needs no rewriting: diffusers' ``AlphaBlender`` (``switch_spatial_to_temporal_mix``) and SGM's
``VideoResBlock`` both compute ``(1 - s) * spatial + s * temporal`` with ``s = sigmoid(mix_factor)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch

DIFFUSERS_CLASS_NAME = "AutoencoderKLTemporalDecoder"
#: A key only the diffusers layout has (the temporal output conv).
DIFFUSERS_MARKER_KEY = "decoder.time_conv_out.weight"
#: The key ComfyUI (and SGM) use to recognise the temporal decoder.
SGM_MARKER_KEY = "decoder.mid.block_1.mix_factor"
#: Weight files a diffusers folder may hold, in order of preference.
DIFFUSERS_WEIGHT_NAMES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.fp16.bin",
)


class TemporalVAEFormatError(ValueError):
    """The weights are not an SVD temporal-decoder VAE this converter understands."""


@dataclass(frozen=True)
class TemporalVAEArchitecture:
    """The sizes that shape an SVD-style temporal VAE, as read from its weights."""

    block_out_channels: tuple[int, ...]
    layers_per_block: int
    latent_channels: int
    in_channels: int
    out_channels: int


#: SVD / SVD-xt's VAE (and so Cinemo's ``vae_temporal_decoder``); the only one ComfyUI 0.3.x can build.
SVD_ARCHITECTURE = TemporalVAEArchitecture(
    block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, in_channels=3, out_channels=3
)

_ATTENTION_NAMES = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
    # names of diffusers < 0.15 checkpoints
    "query": "q",
    "key": "k",
    "value": "v",
    "proj_attn": "proj_out",
}
_SPATIAL_RESNET_PARTS = {"norm1", "conv1", "norm2", "conv2", "conv_shortcut"}
_TEMPORAL_RESNET_NAMES = {
    "norm1": "time_stack.in_layers.0",
    "conv1": "time_stack.in_layers.2",
    "norm2": "time_stack.out_layers.0",
    "conv2": "time_stack.out_layers.3",
}
_PARAM = r"(weight|bias)"


def is_diffusers_temporal_vae(keys: Iterable[str]) -> bool:
    """True for a diffusers ``AutoencoderKLTemporalDecoder`` state dict (by its temporal output conv)."""
    return DIFFUSERS_MARKER_KEY in set(keys)


def is_sgm_temporal_vae(keys: Iterable[str]) -> bool:
    """True for a temporal VAE already in SGM / ComfyUI keys."""
    return SGM_MARKER_KEY in set(keys)


def _count_indices(keys: Iterable[str], pattern: str) -> int:
    found = {int(m.group(1)) for key in keys if (m := re.match(pattern, key))}
    return max(found) + 1 if found else 0


def infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> TemporalVAEArchitecture:
    """Read block widths, depth and channel counts from diffusers ``AutoencoderKLTemporalDecoder`` weights.

    Raises:
        TemporalVAEFormatError: if the weights are not in that layout.
    """
    if not is_diffusers_temporal_vae(state_dict):
        raise TemporalVAEFormatError(
            f"Not a diffusers {DIFFUSERS_CLASS_NAME} state dict: '{DIFFUSERS_MARKER_KEY}' is missing."
        )
    keys = list(state_dict)
    levels = _count_indices(keys, r"encoder\.down_blocks\.(\d+)\.")
    if levels == 0:
        raise TemporalVAEFormatError("The encoder has no down_blocks; the weights are incomplete.")
    try:
        widths = tuple(
            int(state_dict[f"encoder.down_blocks.{i}.resnets.0.conv1.weight"].shape[0]) for i in range(levels)
        )
        layers = _count_indices(keys, r"encoder\.down_blocks\.0\.resnets\.(\d+)\.")
        latent = int(state_dict["decoder.conv_in.weight"].shape[1])
        in_channels = int(state_dict["encoder.conv_in.weight"].shape[1])
        out_channels = int(state_dict["decoder.conv_out.weight"].shape[0])
    except KeyError as error:
        raise TemporalVAEFormatError(f"The weights are incomplete: {error.args[0]!r} is missing.") from None
    return TemporalVAEArchitecture(widths, layers, latent, in_channels, out_channels)


def _attention_key(prefix: str, rest: str) -> str | None:
    names = "|".join(re.escape(name) for name in _ATTENTION_NAMES)
    match = re.fullmatch(rf"attentions\.0\.({names})\." + _PARAM, rest)
    if match is None:
        return None
    return f"{prefix}.mid.attn_1.{_ATTENTION_NAMES[match.group(1)]}.{match.group(2)}"


def _spatial_resnet_key(target: str, part: str, param: str) -> str | None:
    """A diffusers ResnetBlock2D weight under an SGM ResnetBlock at ``target`` (``None`` if unknown)."""
    if part not in _SPATIAL_RESNET_PARTS:
        return None
    return f"{target}.{'nin_shortcut' if part == 'conv_shortcut' else part}.{param}"


def _decoder_resnet_key(target: str, rest: str) -> str | None:
    """``spatial_res_block.*`` / ``temporal_res_block.*`` / ``time_mixer.mix_factor`` under an SGM VideoResBlock."""
    if rest == "time_mixer.mix_factor":
        return f"{target}.mix_factor"
    match = re.fullmatch(r"(spatial_res_block|temporal_res_block)\.(\w+)\." + _PARAM, rest)
    if match is None:
        return None
    block, part, param = match.groups()
    if block == "spatial_res_block":
        return _spatial_resnet_key(target, part, param)
    if block == "temporal_res_block" and part in _TEMPORAL_RESNET_NAMES:
        return f"{target}.{_TEMPORAL_RESNET_NAMES[part]}.{param}"
    return None


def _encoder_key(rest: str) -> str | None:
    if re.fullmatch(r"(conv_in|conv_out)\." + _PARAM, rest):
        return f"encoder.{rest}"
    if m := re.fullmatch(r"conv_norm_out\." + _PARAM, rest):
        return f"encoder.norm_out.{m.group(1)}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\." + _PARAM, rest):
        level, block, part, param = m.groups()
        return _spatial_resnet_key(f"encoder.down.{level}.block.{block}", part, param)
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\." + _PARAM, rest):
        return f"encoder.down.{m.group(1)}.downsample.conv.{m.group(2)}"
    if m := re.fullmatch(r"mid_block\.resnets\.([01])\.(\w+)\." + _PARAM, rest):
        block, part, param = m.groups()
        return _spatial_resnet_key(f"encoder.mid.block_{int(block) + 1}", part, param)
    if rest.startswith("mid_block."):
        return _attention_key("encoder", rest[len("mid_block."):])
    return None


def _decoder_key(rest: str, levels: int) -> str | None:
    if re.fullmatch(r"(conv_in|conv_out)\." + _PARAM, rest):
        return f"decoder.{rest}"
    if m := re.fullmatch(r"conv_norm_out\." + _PARAM, rest):
        return f"decoder.norm_out.{m.group(1)}"
    if m := re.fullmatch(r"time_conv_out\." + _PARAM, rest):
        return f"decoder.conv_out.time_mix_conv.{m.group(1)}"
    if m := re.fullmatch(r"mid_block\.resnets\.([01])\.(.+)", rest):
        return _decoder_resnet_key(f"decoder.mid.block_{int(m.group(1)) + 1}", m.group(2))
    if rest.startswith("mid_block."):
        return _attention_key("decoder", rest[len("mid_block."):])
    if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest):
        level = levels - 1 - int(m.group(1))
        return _decoder_resnet_key(f"decoder.up.{level}.block.{m.group(2)}", m.group(3)) if level >= 0 else None
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\." + _PARAM, rest):
        level = levels - 1 - int(m.group(1))
        return f"decoder.up.{level}.upsample.conv.{m.group(2)}" if level >= 0 else None
    return None


def sgm_key(diffusers_key: str, levels: int) -> str | None:
    """The SGM name of one diffusers ``AutoencoderKLTemporalDecoder`` key (``None`` if unknown).

    ``levels`` is the number of resolution levels (``len(block_out_channels)``); the decoder's up blocks are
    numbered in reverse in the SGM layout. ``quant_conv`` has no SGM counterpart (it is folded, see
    :func:`fold_quant_conv`) and maps to ``None`` too.
    """
    section, _, rest = diffusers_key.partition(".")
    if section == "encoder":
        return _encoder_key(rest)
    if section == "decoder":
        return _decoder_key(rest, levels)
    return None


def fold_quant_conv(
    conv_weight: torch.Tensor, conv_bias: torch.Tensor, quant_weight: torch.Tensor, quant_bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge a 1x1 ``quant_conv`` into the encoder's output conv: ``Q(conv(x))`` as one conv.

    ``W' = Q @ W`` over output channels and ``b' = Q @ b + b_q``; computed in float64 and returned in the
    conv's dtype.
    """
    if quant_weight.dim() != 4 or quant_weight.shape[2:] != (1, 1) or quant_weight.shape[1] != conv_weight.shape[0]:
        raise TemporalVAEFormatError(
            f"quant_conv {list(quant_weight.shape)} does not fit the encoder's conv_out {list(conv_weight.shape)}."
        )
    q = quant_weight[:, :, 0, 0].double()
    weight = torch.einsum("oc,cikl->oikl", q, conv_weight.double())
    bias = q @ conv_bias.double() + quant_bias.double()
    return weight.to(conv_weight.dtype), bias.to(conv_bias.dtype)


def convert_temporal_vae_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers ``AutoencoderKLTemporalDecoder`` weights -> SGM / ComfyUI temporal-VAE weights.

    Every key must be understood: an unknown one raises instead of being dropped silently. Attention
    projections become 1x1 conv weights and ``quant_conv`` is folded into ``encoder.conv_out``.

    Raises:
        TemporalVAEFormatError: if the weights are not in the diffusers temporal-VAE layout.
    """
    levels = len(infer_architecture(state_dict).block_out_channels)
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        if key.startswith("quant_conv."):
            continue
        new_key = sgm_key(key, levels)
        if new_key is None:
            unknown.append(key)
            continue
        if ".mid.attn_1." in new_key and new_key.endswith(".weight") and value.dim() == 2:
            value = value[:, :, None, None]
        converted[new_key] = value
    if unknown:
        shown = ", ".join(sorted(unknown)[:8])
        raise TemporalVAEFormatError(
            f"{len(unknown)} weights of the file are not part of a {DIFFUSERS_CLASS_NAME} ({shown}"
            f"{', ...' if len(unknown) > 8 else ''})."
        )
    has_weight, has_bias = "quant_conv.weight" in state_dict, "quant_conv.bias" in state_dict
    if has_weight != has_bias:
        raise TemporalVAEFormatError("quant_conv has a weight but no bias, or a bias but no weight.")
    if has_weight:
        try:
            conv_w, conv_b = converted["encoder.conv_out.weight"], converted["encoder.conv_out.bias"]
        except KeyError:
            raise TemporalVAEFormatError("quant_conv is present but the encoder's conv_out is missing.") from None
        converted["encoder.conv_out.weight"], converted["encoder.conv_out.bias"] = fold_quant_conv(
            conv_w, conv_b, state_dict["quant_conv.weight"], state_dict["quant_conv.bias"]
        )
    return converted


def check_svd_architecture(architecture: TemporalVAEArchitecture) -> None:
    """Raise unless ``architecture`` is SVD's, the only temporal VAE ComfyUI can build (its sizes are fixed)."""
    if architecture != SVD_ARCHITECTURE:
        raise TemporalVAEFormatError(
            f"This temporal VAE has block_out_channels={list(architecture.block_out_channels)}, "
            f"layers_per_block={architecture.layers_per_block}, latent_channels={architecture.latent_channels}, "
            f"in/out channels={architecture.in_channels}/{architecture.out_channels}; ComfyUI builds temporal VAEs "
            f"only with SVD's sizes ({list(SVD_ARCHITECTURE.block_out_channels)}, "
            f"{SVD_ARCHITECTURE.layers_per_block}, {SVD_ARCHITECTURE.latent_channels}, 3/3), "
            "which Cinemo's released vae_temporal_decoder has."
        )
