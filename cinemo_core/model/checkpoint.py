"""Loading Cinemo UNet weights from the formats they are published in, safely and with helpful errors.

Accepted:
- a diffusers folder: ``config.json`` + ``diffusion_pytorch_model.safetensors`` (or ``.bin``, or a sharded
  ``*.index.json``);
- a parent folder holding such a ``unet/`` folder (the released ``maxin-cn/Cinemo`` layout);
- one weights file (``.safetensors``, ``.pt``, ``.pth``, ``.bin``; the released ``cinemo.pt`` is one): a
  plain state dict or one wrapped in ``state_dict``/``model``/``ema``, keys possibly prefixed ``module.``
  or ``unet.``. The architecture is then inferred from the weights.

Pickle-based files are only ever read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..settings import HF_URL as WEIGHTS_SOURCE
from ..settings import WEIGHT_SUFFIXES
from .config import CROSS_ATTN_DOWN, CROSS_ATTN_UP, PLAIN_DOWN, PLAIN_UP, CinemoUNetConfig
from .layers import AttentionFn, Operations
from .layers.attention import rotary_frequencies
from .unet import CinemoUNet3D

DIFFUSERS_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
DIFFUSERS_INDEX_NAMES = ("diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.bin.index.json")
WRAPPER_KEYS = ("ema", "state_dict", "model")
KEY_PREFIXES = ("module.", "unet.")
ROTARY_SUFFIX = "attn_temp.rotary_emb.freqs"
_REPORTED_KEYS = 5


class CheckpointError(ValueError):
    """A weights file or folder that cannot be used as a Cinemo UNet."""


class NotACinemoUNetError(CheckpointError):
    """The weights are of another model (an SD UNet, SVD, AnimateDiff, a VAE, ...)."""


class DamagedCheckpointError(CheckpointError):
    """The file is truncated or corrupt."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that holds more than tensors; it is not unpickled."""


class CinemoWeightsWarning(UserWarning):
    """Something in the weights is unusual but loading can go on."""


def load_unet(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    operations: Operations = nn,
    attention: AttentionFn = nn.functional.scaled_dot_product_attention,
) -> CinemoUNet3D:
    """Load a Cinemo UNet, ready for inference, from a diffusers folder, a parent folder or a weights file."""
    weights, config = locate_unet(path)
    state_dict = read_state_dict(weights)
    return build_unet(state_dict, config, source=weights, dtype=dtype, device=device, operations=operations, attention=attention)


def build_unet(
    state_dict: Mapping[str, torch.Tensor],
    config: CinemoUNetConfig | None = None,
    *,
    source: str | os.PathLike = "<state dict>",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    operations: Operations = nn,
    attention: AttentionFn = nn.functional.scaled_dot_product_attention,
) -> CinemoUNet3D:
    """Build a UNet from an in-memory state dict (unwrapped and checked here); infers the config if None."""
    config, state_dict = prepare_unet_state_dict(state_dict, config, source=source)
    model = CinemoUNet3D(config, operations=operations, attention=attention, dtype=dtype, device="meta")
    for key, value in state_dict.items():
        state_dict[key] = value.to(device=device, dtype=dtype) if value.is_floating_point() else value.to(device)
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def prepare_unet_state_dict(
    state_dict: Mapping[str, object],
    config: CinemoUNetConfig | None = None,
    *,
    source: str | os.PathLike = "<state dict>",
) -> tuple[CinemoUNetConfig, dict[str, torch.Tensor]]:
    """Unwrap, identify and check a state dict; return its config and the exact key set of the model.

    The rotary frequencies are set to their computed values (a warning says when the file disagreed).
    Raises ``CheckpointError`` subclasses for anything that is not a complete Cinemo UNet.
    """
    tensors = unwrap_state_dict(state_dict, source)
    reject_foreign_checkpoint(tensors, source)
    config = config or infer_config(tensors, source)
    rotary = _checked_rotary_frequencies(tensors, config, source)
    expected_shapes = {
        key: tuple(value.shape) for key, value in CinemoUNet3D(config, device="meta").state_dict().items()
    }
    for key in expected_shapes:
        if key.endswith(ROTARY_SUFFIX):
            tensors[key] = rotary
    _check_keys(tensors, expected_shapes, source)
    return config, tensors


def locate_unet(path: str | os.PathLike) -> tuple[Path | list[Path], CinemoUNetConfig | None]:
    """The weights file(s) behind ``path`` and the config that goes with them (None: infer from weights)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No Cinemo UNet at {path}. Give a diffusers folder (config.json + diffusion_pytorch_model.safetensors), "
            f"the released model folder containing unet/, or a single weights file ({', '.join(WEIGHT_SUFFIXES)}). "
            f"The released weights are at {WEIGHTS_SOURCE}."
        )
    if path.is_file():
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise CheckpointError(
                f"{path} is not a weights file this loader reads: expected one of {', '.join(WEIGHT_SUFFIXES)}."
            )
        return path, None
    if (path / "config.json").is_file():
        return _diffusers_weights(path), read_config(path / "config.json")
    if (path / "unet").is_dir():
        return locate_unet(path / "unet")
    raise CheckpointError(
        f"{path} is a folder but holds neither a diffusers UNet (config.json + diffusion_pytorch_model.safetensors) "
        f"nor a unet/ subfolder. Download the released weights from {WEIGHTS_SOURCE}, or point at the weights file."
    )


def _diffusers_weights(folder: Path) -> Path | list[Path]:
    for name in DIFFUSERS_WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    for name in DIFFUSERS_INDEX_NAMES:
        index = folder / name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError) as error:
                raise DamagedCheckpointError(f"{index} is damaged: it is not a shard index ({error}).") from error
            return [folder / shard for shard in sorted(set(weight_map.values()))]
    raise CheckpointError(
        f"{folder} has config.json but no weights: expected {' or '.join(DIFFUSERS_WEIGHT_NAMES)} "
        f"(or a sharded {DIFFUSERS_INDEX_NAMES[0]}). Re-download the unet/ folder from {WEIGHTS_SOURCE}."
    )


def read_config(path: Path) -> CinemoUNetConfig:
    try:
        raw = json.loads(path.read_text())
    except ValueError as error:
        raise DamagedCheckpointError(f"{path} is damaged: it is not valid JSON ({error}).") from error
    try:
        return CinemoUNetConfig.from_diffusers_config(raw)
    except ValueError as error:
        raise CheckpointError(f"{path} does not describe a Cinemo UNet: {error}") from error


def read_state_dict(weights: Path | list[Path]) -> dict[str, torch.Tensor]:
    """Read one weights file (or the shards of one), without unpickling anything but tensors."""
    if isinstance(weights, list):
        merged: dict[str, torch.Tensor] = {}
        for shard in weights:
            if not shard.is_file():
                raise CheckpointError(f"Shard {shard} listed in the index is missing; re-download the unet/ folder.")
            merged.update(read_state_dict(shard))
        return merged
    if weights.suffix.lower() == ".safetensors":
        try:
            return load_file(weights)
        except SafetensorError as error:
            raise DamagedCheckpointError(
                f"{weights} is damaged or truncated ({error}); download it again."
            ) from error
    return _read_pickle_checkpoint(weights)


def _read_pickle_checkpoint(weights: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(weights, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(weights))
    except pickle.UnpicklingError as error:
        if "weights only load failed" in str(error).lower():
            raise UnsafeCheckpointError(
                f"{weights} contains Python objects other than tensors. For your safety it is only read with "
                "torch.load(weights_only=True), which refused it. Use a .safetensors file, or re-save just the "
                "state dict of a file you trust."
            ) from error
        raise DamagedCheckpointError(f"{weights} is damaged or truncated ({error}); download it again.") from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise DamagedCheckpointError(f"{weights} is damaged or truncated ({error}); download it again.") from error
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{weights} holds a {type(loaded).__name__}, not a state dict of tensors.")
    return dict(loaded)


def unwrap_state_dict(state_dict: Mapping[str, object], source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Take the weights out of a training-checkpoint wrapper and strip ``module.``/``unet.`` prefixes."""
    for key in WRAPPER_KEYS:
        inner = state_dict.get(key)
        if isinstance(inner, Mapping) and inner:
            state_dict = inner
            break
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor; expected a UNet state dict "
                f"(optionally wrapped in one of {', '.join(WRAPPER_KEYS)})."
            )
        name = key
        while name.startswith(KEY_PREFIXES):
            name = name.split(".", 1)[1]
        tensors[name] = value
    return tensors


def reject_foreign_checkpoint(state_dict: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Raise ``NotACinemoUNetError`` naming the kind of model when the weights are not a Cinemo UNet."""
    kind = identify_foreign_checkpoint(state_dict.keys())
    if kind is not None:
        raise NotACinemoUNetError(
            f"{source} is {kind}, not a Cinemo UNet. Use the Cinemo UNet weights "
            f"(unet/ or cinemo.pt from {WEIGHTS_SOURCE})."
        )


def identify_foreign_checkpoint(keys) -> str | None:
    """Name the kind of model a state dict belongs to, or None when it looks like a Cinemo UNet."""
    keys = list(keys)

    def any_key(pattern: str) -> bool:
        regex = re.compile(pattern)
        return any(regex.search(key) for key in keys)

    if any_key(r"^model\.diffusion_model\."):
        if any_key(r"time_stack|time_mixer"):
            return "a Stable Video Diffusion (SVD) checkpoint"
        return "a Stable Diffusion checkpoint in the original (LDM) format"
    if any_key(r"^(first_stage_model\.|encoder\.|decoder\.|quant_conv\.|post_quant_conv\.)"):
        if any_key(r"temporal|time_mixer|time_stack"):
            return "a VAE with a temporal decoder (SVD's), not a UNet"
        return "a VAE"
    if any_key(r"motion_modules\."):
        return "an AnimateDiff motion module"
    if any_key(r"^text_model\.|^transformer\.text_model\."):
        return "a CLIP text encoder"
    if any_key(r"temporal_res_block|temporal_transformer_blocks|time_mixer"):
        return "a Stable Video Diffusion (SVD) UNet"
    has_unet = "conv_in.weight" in keys and any_key(r"^down_blocks\.0\.resnets\.0\.")
    if not has_unet:
        sample = ", ".join(sorted(keys)[:_REPORTED_KEYS])
        return f"not a diffusion UNet at all (its keys start with: {sample})"
    if not any_key(r"attn_temp\."):
        return "a Stable Diffusion (image) UNet without temporal layers"
    if "add_embedding.linear_1.weight" not in keys:
        return "a LaVie-style video UNet without Cinemo's motion embedding (add_embedding)"
    return None


def infer_config(state_dict: Mapping[str, torch.Tensor], source: str | os.PathLike = "<state dict>") -> CinemoUNetConfig:
    """Recover the architecture from tensor shapes (GroupNorm groups, not stored, stay at 32)."""
    try:
        block_out = []
        while f"down_blocks.{len(block_out)}.resnets.0.conv1.weight" in state_dict:
            block_out.append(state_dict[f"down_blocks.{len(block_out)}.resnets.0.conv1.weight"].shape[0])
        levels = range(len(block_out))
        down_types = tuple(
            CROSS_ATTN_DOWN if f"down_blocks.{i}.attentions.0.norm.weight" in state_dict else PLAIN_DOWN for i in levels
        )
        up_types = tuple(
            CROSS_ATTN_UP if f"up_blocks.{i}.attentions.0.norm.weight" in state_dict else PLAIN_UP for i in levels
        )
        mid = "mid_block.attentions.0.transformer_blocks"
        bias = state_dict[f"{mid}.0.attn_temp.time_rel_pos_bias.relative_attention_bias.weight"]
        rotary = state_dict.get(f"{mid}.0.{ROTARY_SUFFIX}")
        config = CinemoUNetConfig(
            in_channels=state_dict["conv_in.weight"].shape[1],
            out_channels=state_dict["conv_out.weight"].shape[0],
            block_out_channels=tuple(block_out),
            down_block_types=down_types,
            up_block_types=up_types,
            layers_per_block=_count_indices(state_dict, "down_blocks.0.resnets."),
            transformer_layers_per_block=_count_indices(state_dict, f"{mid}."),
            num_attention_heads=bias.shape[1],
            relative_position_buckets=bias.shape[0],
            cross_attention_dim=state_dict[f"{mid}.0.attn2.to_k.weight"].shape[1],
            addition_time_embed_dim=state_dict["add_embedding.linear_1.weight"].shape[1],
            rotary_dim=2 * rotary.shape[0] if rotary is not None else CinemoUNetConfig.rotary_dim,
        )
    except (KeyError, IndexError, ValueError) as error:
        raise CheckpointError(
            f"{source}: cannot infer the UNet architecture from its weights ({error}). Use the released "
            f"unet/ folder with its config.json from {WEIGHTS_SOURCE}."
        ) from error
    return config


def _count_indices(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    indices = {key[len(prefix) :].split(".", 1)[0] for key in state_dict if key.startswith(prefix)}
    return len(indices)


def _checked_rotary_frequencies(
    state_dict: Mapping[str, torch.Tensor], config: CinemoUNetConfig, source: str | os.PathLike
) -> torch.Tensor:
    """The computed rotary frequencies; warns when the file carries different ones."""
    expected = rotary_frequencies(config.rotary_dim, config.rotary_theta)
    worst = 0.0
    for key, stored in state_dict.items():
        if not key.endswith(ROTARY_SUFFIX):
            continue
        if stored.shape != expected.shape:
            worst = float("inf")
            continue
        precision = torch.finfo(stored.dtype).eps if stored.is_floating_point() else 1.0
        difference = ((stored.float() - expected).abs() / expected).max().item()
        if difference > 4 * precision:
            worst = max(worst, difference)
    if worst:
        warnings.warn(
            f"{source}: the stored rotary frequencies (attn_temp.rotary_emb.freqs) differ from the fixed values "
            f"1/{config.rotary_theta:g}^(2i/{config.rotary_dim}) (largest relative difference {worst:.3g}). "
            "They are not learned, so the computed values are used.",
            CinemoWeightsWarning,
            stacklevel=3,
        )
    return expected


def _check_keys(
    state_dict: Mapping[str, torch.Tensor], expected_shapes: Mapping[str, tuple[int, ...]], source: str | os.PathLike
) -> None:
    missing = sorted(set(expected_shapes) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected_shapes))
    mismatched = sorted(
        f"{key} {tuple(state_dict[key].shape)} (expected {expected_shapes[key]})"
        for key in set(expected_shapes) & set(state_dict)
        if tuple(state_dict[key].shape) != expected_shapes[key]
    )
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", mismatched)):
        if items:
            shown = ", ".join(items[:_REPORTED_KEYS])
            more = f", ... ({len(items)} in all)" if len(items) > _REPORTED_KEYS else ""
            problems.append(f"{len(items)} keys {label}: {shown}{more}")
    if problems:
        raise CheckpointError(
            f"{source} does not match the Cinemo UNet architecture: " + "; ".join(problems) + ". "
            f"Check that the file and its config.json belong together, or re-download from {WEIGHTS_SOURCE}."
        )
