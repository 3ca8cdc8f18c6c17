"""The rules the applications' settings share (prompts, motion, steps, guidance, seed, frames, size, DCT).

Animation and motion transfer each declare their own settings class with their own defaults; both are checked
here, by composition, so that a shared setting has one rule. Each failure is a :class:`SettingError` naming
the setting's field, and the defaults it quotes are those of the settings' own class.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

from ..sampling.motion import intensity_to_motion_id, raw_motion_id
from ..settings import (
    MAX_SEED,
    SettingError,
    check_dct_low_pass,
    check_frames,
    check_guidance,
    check_intensity,
    check_motion_id,
    check_noise_timestep,
    check_seed,
    check_side,
    check_steps,
    is_whole,
)

__all__ = ["MAX_SEED", "check_guidance_scale", "check_sampling_settings", "default_of", "is_int", "resolved_motion_id"]

is_int = is_whole


def default_of(settings: Any, name: str) -> object:
    """The default of setting ``name`` in ``settings``' own class (each application has its own)."""
    return {f.name: f.default for f in dataclasses.fields(settings)}[name]


def check_sampling_settings(settings: Any, *, init_modes: Sequence[str]) -> None:
    """Raise :class:`SettingError` naming the first bad shared setting, what is allowed and what to do; each rule is
    :mod:`cinemo_core.settings`' checker, the one the nodes use."""
    for name in ("prompt", "negative_prompt"):
        if not isinstance(getattr(settings, name), str):
            raise SettingError(name, f"{name} must be a string, got {type(getattr(settings, name)).__name__}.")
    if settings.motion_id is None:
        check_intensity(settings.intensity)
    else:
        check_motion_id(settings.motion_id)
    check_steps(settings.steps)
    check_guidance_scale(settings, "guidance_scale", "guidance scale (cfg)")
    if settings.seed is not None:
        check_seed(settings.seed)
    check_frames(settings.num_frames)
    check_side("width", settings.width)
    check_side("height", settings.height)
    if settings.init not in init_modes:
        raise SettingError("init", f"init must be one of {', '.join(init_modes)}, got {settings.init!r}.")
    check_dct_low_pass(settings.dct_low_pass)
    check_noise_timestep(settings.dct_noise_timestep, official=default_of(settings, "dct_noise_timestep"))


def check_motion_mask_settings(settings: Any) -> None:
    """``motion_mask``: None or a file path (read when the video is made); ``invert_mask``: a bool that needs it."""
    mask = settings.motion_mask
    if mask is not None and (not isinstance(mask, (str, os.PathLike)) or not os.fspath(mask)):
        raise SettingError("motion_mask", f"motion_mask must be the path of a mask picture or None, got {mask!r}.")
    if not isinstance(settings.invert_mask, bool):
        raise SettingError("invert_mask", f"invert_mask must be True or False, got {settings.invert_mask!r}.")
    if settings.invert_mask and mask is None:
        raise SettingError("invert_mask", "invert_mask flips a motion mask: give motion_mask too.")


def check_end_image_settings(settings: Any) -> None:
    """``end_image``: None or a file path (read when the video is made), not with ``loop`` (which ends on the
    first image)."""
    end = settings.end_image
    if end is not None and (not isinstance(end, (str, os.PathLike)) or not os.fspath(end)):
        raise SettingError("end_image", f"end_image must be the path of a picture or None, got {end!r}.")
    if end is not None and settings.loop:
        raise SettingError("end_image", "end_image and loop both set where the video ends (a loop ends on the first "
                           "image); use one of them.")


def check_guidance_scale(settings: Any, name: str, label: str) -> None:
    """A text guidance scale: a finite number >= 0 (<= 1 turns guidance off)."""
    check_guidance(getattr(settings, name), name, official=default_of(settings, name), label=label)


def resolved_motion_id(settings: Any) -> float:
    """The raw motion id the UNet embeds: ``motion_id`` when given, else the one of ``intensity``."""
    if settings.motion_id is not None:
        return raw_motion_id(settings.motion_id)
    return intensity_to_motion_id(settings.intensity)
