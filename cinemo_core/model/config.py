"""Architecture settings of the Cinemo 3D UNet.

The released checkpoint ships a diffusers-style ``unet/config.json``. It inherits one diffusers quirk
from SD-1.x: ``attention_head_dim`` holds the *number of heads* (8), not the size of a head. Here the
field is called what it is, ``num_attention_heads``, and ``from_diffusers_config`` translates.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

#: Sane bounds of the integer settings: far beyond any Cinemo UNet, but small enough that a config with an
#: absurd value fails here rather than building a model of billions of layers or channels.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "in_channels": (1, 64),
    "out_channels": (1, 64),
    "layers_per_block": (1, 16),
    "transformer_layers_per_block": (1, 16),
    "num_attention_heads": (1, 256),
    "cross_attention_dim": (1, 16384),
    "norm_num_groups": (1, 1024),
    "downsample_padding": (0, 4),
    "freq_shift": (-(10**6), 10**6),
    "addition_time_embed_dim": (2, 16384),
    "rotary_dim": (2, 1024),
    "relative_position_buckets": (1, 4096),
    "relative_position_max_distance": (1, 4096),
}
MAX_LEVELS = 8
MAX_BLOCK_CHANNELS = 16384
POSITIVE_FLOATS = ("norm_eps", "rotary_theta")

CROSS_ATTN_DOWN = "CrossAttnDownBlock3D"
PLAIN_DOWN = "DownBlock3D"
CROSS_ATTN_UP = "CrossAttnUpBlock3D"
PLAIN_UP = "UpBlock3D"


@dataclass(frozen=True)
class CinemoUNetConfig:
    """Every setting the Cinemo UNet needs; defaults are the released model's."""

    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_block_types: tuple[str, ...] = (CROSS_ATTN_DOWN, CROSS_ATTN_DOWN, CROSS_ATTN_DOWN, PLAIN_DOWN)
    up_block_types: tuple[str, ...] = (PLAIN_UP, CROSS_ATTN_UP, CROSS_ATTN_UP, CROSS_ATTN_UP)
    layers_per_block: int = 2
    transformer_layers_per_block: int = 1
    num_attention_heads: int = 8
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    downsample_padding: int = 1
    mid_block_scale_factor: float = 1.0
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    addition_time_embed_dim: int = 256
    rotary_dim: int = 32
    rotary_theta: float = 10000.0
    relative_position_buckets: int = 32
    relative_position_max_distance: int = 32

    def __post_init__(self) -> None:
        self._check_types()
        levels = len(self.block_out_channels)
        if len(self.down_block_types) != levels or len(self.up_block_types) != levels:
            raise ValueError(
                f"block_out_channels has {levels} entries, down_block_types "
                f"{len(self.down_block_types)} and up_block_types {len(self.up_block_types)}; they must match."
            )
        for name in self.down_block_types:
            if name not in (CROSS_ATTN_DOWN, PLAIN_DOWN):
                raise ValueError(f"Unsupported down block type {name!r}; expected {CROSS_ATTN_DOWN} or {PLAIN_DOWN}.")
        for name in self.up_block_types:
            if name not in (CROSS_ATTN_UP, PLAIN_UP):
                raise ValueError(f"Unsupported up block type {name!r}; expected {CROSS_ATTN_UP} or {PLAIN_UP}.")
        for channels in self.block_out_channels:
            if channels % self.norm_num_groups:
                raise ValueError(f"{channels} channels cannot be split into {self.norm_num_groups} norm groups.")
            if channels % self.num_attention_heads or channels // self.num_attention_heads < self.rotary_dim:
                raise ValueError(
                    f"{channels} channels with {self.num_attention_heads} heads leaves heads smaller than the "
                    f"rotary dimension {self.rotary_dim}."
                )

    def _check_types(self) -> None:
        """Each setting of the right type and within ``INT_BOUNDS``; ``ValueError`` naming the first that is not."""
        for name, (low, high) in INT_BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}.")
        for name in ("norm_eps", "mid_block_scale_factor", "rotary_theta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                name in POSITIVE_FLOATS and value <= 0
            ):
                kind = "a positive" if name in POSITIVE_FLOATS else "a finite"
                raise ValueError(f"{name} must be {kind} number, got {value!r}.")
        if not isinstance(self.flip_sin_to_cos, bool):
            raise ValueError(f"flip_sin_to_cos must be true or false, got {self.flip_sin_to_cos!r}.")
        channels = self.block_out_channels
        if not isinstance(channels, tuple) or not 1 <= len(channels) <= MAX_LEVELS or any(
            isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= MAX_BLOCK_CHANNELS for c in channels
        ):
            raise ValueError(
                f"block_out_channels must be a list of 1 to {MAX_LEVELS} integers from 1 to {MAX_BLOCK_CHANNELS}, "
                f"got {channels!r}."
            )
        for name in ("down_block_types", "up_block_types"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name} must be a list of block names, got {value!r}.")

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    @classmethod
    def official(cls) -> "CinemoUNetConfig":
        """The configuration of the released ``maxin-cn/Cinemo`` UNet."""
        return cls()

    @classmethod
    def tiny(cls) -> "CinemoUNetConfig":
        """A tiny model of the same architecture (the golden test model): fast on any CPU."""
        return cls(
            block_out_channels=(32, 64, 64, 64),
            layers_per_block=1,
            num_attention_heads=1,
            cross_attention_dim=32,
            addition_time_embed_dim=32,
        )

    @classmethod
    def from_diffusers_config(cls, config: Mapping[str, Any]) -> "CinemoUNetConfig":
        """Read a diffusers-style ``config.json`` as the official code writes it."""
        if not isinstance(config, Mapping):
            raise ValueError(f"the config must be a JSON object of settings, got a {type(config).__name__}.")
        if config.get("addition_embed_type", "motion_ids") != "motion_ids":
            raise ValueError(
                f"addition_embed_type is {config.get('addition_embed_type')!r}; a Cinemo UNet uses 'motion_ids'."
            )
        unsupported = {
            "use_linear_projection": False,
            "only_cross_attention": False,
            "upcast_attention": False,
            "resnet_time_scale_shift": "default",
            "time_embedding_type": "positional",
            "center_input_sample": False,
            "class_embed_type": None,
            "encoder_hid_dim": None,
            "num_attention_heads": None,
            "mid_block_type": "UNetMidBlock3DCrossAttn",
            "conv_in_kernel": 3,
            "conv_out_kernel": 3,
            "act_fn": "silu",
            "dual_cross_attention": False,
            "time_cond_proj_dim": None,
            "timestep_post_act": None,
            "time_embedding_dim": None,
        }
        for key, expected in unsupported.items():
            if key in config and config[key] != expected:
                raise ValueError(f"Unsupported UNet setting {key}={config[key]!r}; Cinemo uses {expected!r}.")
        heads = config.get("attention_head_dim", 8)
        layers = config.get("layers_per_block", 2)
        transformer_layers = config.get("transformer_layers_per_block", 1)
        cross_dim = config.get("cross_attention_dim", 768)
        for key, value in (
            ("attention_head_dim", heads),
            ("layers_per_block", layers),
            ("transformer_layers_per_block", transformer_layers),
            ("cross_attention_dim", cross_dim),
        ):
            if not isinstance(value, int):
                raise ValueError(f"Per-block {key} ({value!r}) is not supported; Cinemo uses one value for all blocks.")
        defaults = cls()
        return cls(
            in_channels=config.get("in_channels", defaults.in_channels),
            out_channels=config.get("out_channels", defaults.out_channels),
            block_out_channels=_as_tuple(config.get("block_out_channels", defaults.block_out_channels)),
            down_block_types=_as_tuple(config.get("down_block_types", defaults.down_block_types)),
            up_block_types=_as_tuple(config.get("up_block_types", defaults.up_block_types)),
            layers_per_block=layers,
            transformer_layers_per_block=transformer_layers,
            num_attention_heads=heads,
            cross_attention_dim=cross_dim,
            norm_num_groups=config.get("norm_num_groups", defaults.norm_num_groups),
            norm_eps=config.get("norm_eps", defaults.norm_eps),
            downsample_padding=config.get("downsample_padding", defaults.downsample_padding),
            mid_block_scale_factor=config.get("mid_block_scale_factor", defaults.mid_block_scale_factor),
            flip_sin_to_cos=config.get("flip_sin_to_cos", defaults.flip_sin_to_cos),
            freq_shift=config.get("freq_shift", defaults.freq_shift),
            addition_time_embed_dim=config.get("addition_time_embed_dim", defaults.addition_time_embed_dim),
        )

    def to_diffusers_config(self) -> dict[str, Any]:
        """The config as the official code writes it, so a saved folder loads in either implementation."""
        return {
            "_class_name": "UNet3DConditionModel",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "block_out_channels": list(self.block_out_channels),
            "down_block_types": list(self.down_block_types),
            "up_block_types": list(self.up_block_types),
            "layers_per_block": self.layers_per_block,
            "transformer_layers_per_block": self.transformer_layers_per_block,
            "attention_head_dim": self.num_attention_heads,
            "cross_attention_dim": self.cross_attention_dim,
            "norm_num_groups": self.norm_num_groups,
            "norm_eps": self.norm_eps,
            "downsample_padding": self.downsample_padding,
            "mid_block_scale_factor": self.mid_block_scale_factor,
            "flip_sin_to_cos": self.flip_sin_to_cos,
            "freq_shift": self.freq_shift,
            "addition_embed_type": "motion_ids",
            "addition_time_embed_dim": self.addition_time_embed_dim,
        }

    def replace(self, **changes: Any) -> "CinemoUNetConfig":
        return dataclasses.replace(self, **changes)


def _as_tuple(value: Any) -> Any:
    """A JSON list as a tuple; anything else as it is, for ``_check_types`` to name."""
    return tuple(value) if isinstance(value, (list, tuple)) else value
