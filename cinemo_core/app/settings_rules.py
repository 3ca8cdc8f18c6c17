"""The rules the applications' settings share (prompts, motion, steps, guidance, seed, frames, size, DCT).

Animation and motion transfer each declare their own settings class with their own defaults; both are checked
here, by composition, so that a shared setting has one rule. Each failure is a :class:`SettingError` naming
the setting's field, and the defaults it quotes are those of the settings' own class.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Sequence

import numpy as np

from ..sampling.motion import MAX_INTENSITY, MIN_INTENSITY, intensity_to_motion_id, raw_motion_id
from ..settings import (
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    MAX_FRAMES,
    MAX_SIDE,
    MAX_STEPS,
    MIN_SIDE,
    TRAINED_FRAMES,
    SettingError,
)

MAX_SEED = 2**63 - 1


def is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def default_of(settings: Any, name: str) -> object:
    """The default of setting ``name`` in ``settings``' own class (each application has its own)."""
    return {f.name: f.default for f in dataclasses.fields(settings)}[name]


def check_sampling_settings(settings: Any, *, init_modes: Sequence[str]) -> None:
    """Raise :class:`SettingError` naming the first bad shared setting, what is allowed and what to do."""
    for name in ("prompt", "negative_prompt"):
        if not isinstance(getattr(settings, name), str):
            raise SettingError(name, f"{name} must be a string, got {type(getattr(settings, name)).__name__}.")
    if settings.motion_id is None:
        if not is_int(settings.intensity) or not MIN_INTENSITY <= settings.intensity <= MAX_INTENSITY:
            raise SettingError(
                "intensity",
                f"intensity must be an integer from {MIN_INTENSITY} (least motion) to {MAX_INTENSITY} "
                f"(most motion), got {settings.intensity!r}.",
            )
    else:
        try:
            raw_motion_id(settings.motion_id)
        except ValueError as error:
            raise SettingError("motion_id", str(error)) from None
    if not is_int(settings.steps) or not 1 <= settings.steps <= MAX_STEPS:
        raise SettingError(
            "steps",
            f"steps must be an integer from 1 to {MAX_STEPS} (official {default_of(settings, 'steps')}), "
            f"got {settings.steps!r}.",
        )
    check_guidance_scale(settings, "guidance_scale", "guidance scale (cfg)")
    if settings.seed is not None and (not is_int(settings.seed) or not 0 <= settings.seed <= MAX_SEED):
        raise SettingError("seed", f"seed must be an integer from 0 to {MAX_SEED}, got {settings.seed!r}.")
    if not is_int(settings.num_frames) or not 2 <= settings.num_frames <= MAX_FRAMES:
        raise SettingError(
            "num_frames",
            f"frames must be an integer from 2 to {MAX_FRAMES} (the input image plus at least one generated "
            f"frame; the model was trained on {TRAINED_FRAMES}), got {settings.num_frames!r}.",
        )
    for name in ("width", "height"):
        value = getattr(settings, name)
        if not is_int(value) or not MIN_SIDE <= value <= MAX_SIDE or value % 8:
            raise SettingError(
                name,
                f"{name} must be a multiple of 8 from {MIN_SIDE} to {MAX_SIDE} pixels (the VAE works on 8x8 "
                f"blocks; the model was trained at {DEFAULT_WIDTH}x{DEFAULT_HEIGHT}), got {value!r}.",
            )
    if settings.init not in init_modes:
        raise SettingError("init", f"init must be one of {', '.join(init_modes)}, got {settings.init!r}.")
    low_pass = settings.dct_low_pass
    if isinstance(low_pass, bool) or not isinstance(low_pass, (int, float)) or not 0.0 <= low_pass <= 1.0:
        raise SettingError(
            "dct_low_pass",
            f"DCT low-pass fraction must be in [0, 1] (official {default_of(settings, 'dct_low_pass')}), "
            f"got {low_pass!r}.",
        )
    if not is_int(settings.dct_noise_timestep) or not 0 <= settings.dct_noise_timestep <= 999:
        raise SettingError(
            "dct_noise_timestep",
            f"DCT noise timestep must be an integer from 0 to 999 (official "
            f"{default_of(settings, 'dct_noise_timestep')}), got {settings.dct_noise_timestep!r}.",
        )


def check_motion_mask_settings(settings: Any) -> None:
    """``motion_mask``: None or a file path (read when the video is made); ``invert_mask``: a bool that needs it."""
    mask = settings.motion_mask
    if mask is not None and (not isinstance(mask, (str, os.PathLike)) or not os.fspath(mask)):
        raise SettingError("motion_mask", f"motion_mask must be the path of a mask picture or None, got {mask!r}.")
    if not isinstance(settings.invert_mask, bool):
        raise SettingError("invert_mask", f"invert_mask must be True or False, got {settings.invert_mask!r}.")
    if settings.invert_mask and mask is None:
        raise SettingError("invert_mask", "invert_mask flips a motion mask: give motion_mask too.")


def check_guidance_scale(settings: Any, name: str, label: str) -> None:
    """A text guidance scale: a finite number >= 0 (<= 1 turns guidance off)."""
    scale = getattr(settings, name)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
        raise SettingError(
            name, f"{label} must be a number >= 0 (official {default_of(settings, name):g}), got {scale!r}."
        )


def resolved_motion_id(settings: Any) -> float:
    """The raw motion id the UNet embeds: ``motion_id`` when given, else the one of ``intensity``."""
    if settings.motion_id is not None:
        return raw_motion_id(settings.motion_id)
    return intensity_to_motion_id(settings.intensity)


def size_note(settings: Any) -> str | None:
    """Advice when the size is not the one the model was trained at."""
    if (settings.width, settings.height) == (DEFAULT_WIDTH, DEFAULT_HEIGHT):
        return None
    return (
        f"{settings.width}x{settings.height}: the model was trained at {DEFAULT_WIDTH}x{DEFAULT_HEIGHT}; "
        "quality may drop at other sizes."
    )
