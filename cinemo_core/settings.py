"""The method's settings as the paper and the official code use them: every default, every limit, and one
checker per setting. Every host (the standalone pipeline and CLI, the ComfyUI nodes) takes them from here.

Each ``check_*`` function returns the value as the method uses it, or raises :class:`SettingError` naming the
setting by its ``AnimationSettings`` field name; the message starts with the setting's words ("frames must
be ...") so that a host can put its own name (a CLI flag, a node input) in front.
"""

from __future__ import annotations

import logging
import math
from numbers import Integral, Real

_log = logging.getLogger(__name__)

# --- motion --------------------------------------------------------------------------------------------------
MIN_INTENSITY = 0
MAX_INTENSITY = 19
#: The demo app's default slider position (10 of 1..20), i.e. raw motion id 90.
DEFAULT_INTENSITY = 9
#: Raw id of intensity 0 (least motion); intensity i maps to ``LEAST_MOTION_ID - i``.
LEAST_MOTION_ID = 99
MOST_MOTION_ID = LEAST_MOTION_ID - MAX_INTENSITY
#: A raw motion id is embedded like a diffusion timestep, so any id of the timestep range 0..1000 runs; the
#: released weights were trained on MOST_MOTION_ID..LEAST_MOTION_ID (80..99) only, and ids outside it warn.
MIN_MOTION_ID = 0.0
MAX_MOTION_ID = 1000.0

# --- sampling ------------------------------------------------------------------------------------------------
DEFAULT_STEPS = 50
MIN_STEPS = 1
MAX_STEPS = 999
DEFAULT_GUIDANCE = 7.5
MIN_GUIDANCE = 0.0
#: Seeds 0..2**64 - 1: what ``torch.Generator.manual_seed`` takes and what ComfyUI's own seed widgets (KSampler,
#: RandomNoise) accept, so a seed from any ComfyUI node works here and a saved workflow's seed stays valid.
MIN_SEED = 0
MAX_SEED = 2**64 - 1
DEFAULT_INIT = "dct"
DEFAULT_DCT_LOW_PASS = 0.23
DEFAULT_DCT_NOISE_TIMESTEP = 975
#: Diffusion timesteps are 0..NUM_TRAIN_TIMESTEPS - 1.
NUM_TRAIN_TIMESTEPS = 1000
MAX_TIMESTEP = NUM_TRAIN_TIMESTEPS - 1

# --- frames and size -----------------------------------------------------------------------------------------
#: Frames per video, the input image included: what the model was trained on.
TRAINED_FRAMES = 16
DEFAULT_FRAMES = TRAINED_FRAMES
#: Frames per video, the input image included: at least the image and one generated frame; at most 64 (longer
#: than TRAINED_FRAMES is sampled in context windows).
MIN_FRAMES = 2
MAX_FRAMES = 64
#: Frames per clip the temporal VAE decode node takes (any latent video, not only a Cinemo one).
MAX_DECODE_FRAMES = 4096
#: The frame axis of a video latent ``[B, C, F, h, w]``.
FRAME_DIM = 2
#: Motion transfer and Cinemo Estimate Motion: use every ``frame_step``-th source frame.
MIN_FRAME_STEP = 1
MAX_FRAME_STEP = 64
DEFAULT_WIDTH = 512
DEFAULT_HEIGHT = 320
#: Width and height: multiples of SIDE_MULTIPLE (the VAE works on 8x8 blocks) from MIN_SIDE to MAX_SIDE.
SIDE_MULTIPLE = 8
MIN_SIDE = 64
MAX_SIDE = 2048
#: The centre crop to the target aspect warns when it keeps less than this fraction of the image.
MIN_KEPT_BY_CROP = 0.5

# --- the model -----------------------------------------------------------------------------------------------
#: SD 1.x VAE latents times this are the model's latents.
LATENT_SCALE = 0.18215
#: CLIP's context length: prompts are padded or truncated to this many tokens.
CLIP_TOKENS = 77
HF_REPO_ID = "maxin-cn/Cinemo"
HF_URL = f"https://huggingface.co/{HF_REPO_ID}"
#: Weight files the loaders read (safetensors first; the others are read without unpickling code).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")

#: Frames the official code decodes per call of the temporal VAE decoder (16 frames decode as 14 + 2).
OFFICIAL_DECODE_CHUNK = 14
#: Motion transfer (the official video-editing script): the edited first frame is noised to t = 985 before the
#: DCT mix, and neither pass uses text guidance.
DEFAULT_EDIT_NOISE_TIMESTEP = 985
DEFAULT_EDIT_LOW_PASS = DEFAULT_DCT_LOW_PASS
DEFAULT_TRANSFER_GUIDANCE = 1.0
#: Videos longer than TRAINED_FRAMES are sampled in context windows of TRAINED_FRAMES - 1 generated frames (every
#: window also gets the input image); overlap, schedule and fuse method (ComfyUI's names) chosen by measurement
#: (README, "Long videos and loops").
CONTEXT_WINDOW_OVERLAP = 4
CONTEXT_WINDOW_SCHEDULE = "standard_uniform"
CONTEXT_WINDOW_FUSE = "relative"


class SettingError(ValueError):
    """A setting outside its rule. ``setting`` is its field name in ``AnimationSettings`` (``"num_frames"``,
    ``"seed"``, ...), so that each host can name it its own way (a CLI flag, a node input)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


def is_whole(value: object) -> bool:
    """An integer (Python's or NumPy's), not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def check_intensity(value: object) -> int:
    """Motion intensity 0..19 (0 = least motion; a whole float such as 3.0 counts); the raw id is ``99 - intensity``."""
    whole = is_whole(value) or (_is_number(value) and float(value).is_integer())
    if not whole or not MIN_INTENSITY <= value <= MAX_INTENSITY:
        raise SettingError(
            "intensity",
            f"intensity must be an integer from {MIN_INTENSITY} (least motion) to {MAX_INTENSITY} (most motion), "
            f"got {value!r}.",
        )
    return int(value)


def intensity_to_motion_id(intensity: int) -> float:
    """The raw id the released weights expect for an intensity: ``99 - intensity`` (0 -> 99, 19 -> 80)."""
    return float(LEAST_MOTION_ID - check_intensity(intensity))


def check_motion_id(value: object, *, warn: bool = True) -> float:
    """A raw motion id (advanced: it overrides the intensity): a number from 0 to 1000; outside the trained
    80..99 it runs but logs a warning."""
    if not _is_number(value) or not MIN_MOTION_ID <= value <= MAX_MOTION_ID:
        raise SettingError(
            "motion_id",
            f"raw motion id must be a number from {MIN_MOTION_ID:g} to {MAX_MOTION_ID:g} (the released weights were "
            f"trained on {MOST_MOTION_ID}..{LEAST_MOTION_ID}; intensity 0..{MAX_INTENSITY} maps there), got {value!r}.",
        )
    if warn and not MOST_MOTION_ID <= value <= LEAST_MOTION_ID:
        _log.warning(
            "raw motion id %g is outside %d..%d, the ids the released Cinemo weights were trained on; the motion "
            "may be unpredictable (intensity 0..%d gives ids %d..%d).",
            value, MOST_MOTION_ID, LEAST_MOTION_ID, MAX_INTENSITY, LEAST_MOTION_ID, MOST_MOTION_ID,
        )
    return float(value)


def check_steps(value: object) -> int:
    if not is_whole(value) or not MIN_STEPS <= value <= MAX_STEPS:
        raise SettingError(
            "steps", f"steps must be an integer from {MIN_STEPS} to {MAX_STEPS} (official {DEFAULT_STEPS}), got {value!r}."
        )
    return int(value)


def check_guidance(
    value: object, setting: str = "guidance_scale", *, official: float = DEFAULT_GUIDANCE, label: str | None = None
) -> float:
    """A classifier-free guidance scale >= 0 (<= 1 disables guidance). ``setting`` names which one."""
    if not _is_number(value) or value < MIN_GUIDANCE:
        words = label or ("inversion guidance scale" if setting == "inversion_guidance_scale" else "guidance scale (cfg)")
        raise SettingError(setting, f"{words} must be a number >= {MIN_GUIDANCE:g} (official {official:g}), got {value!r}.")
    return float(value)


def check_seed(value: object) -> int:
    if not is_whole(value) or not MIN_SEED <= value <= MAX_SEED:
        raise SettingError("seed", f"seed must be an integer from {MIN_SEED} to {MAX_SEED} (2**64 - 1), got {value!r}.")
    return int(value)


def check_frames(value: object) -> int:
    """Frames per video, the input image included."""
    if not is_whole(value) or not MIN_FRAMES <= value <= MAX_FRAMES:
        raise SettingError(
            "num_frames",
            f"frames must be an integer from {MIN_FRAMES} to {MAX_FRAMES} (the input image plus at least one generated "
            f"frame; the model was trained on {TRAINED_FRAMES}), got {value!r}.",
        )
    return int(value)


def side_problem(value: object) -> str | None:
    """Why a width or height is unusable, as the end of a sentence (None: fine)."""
    if not is_whole(value) or not MIN_SIDE <= value <= MAX_SIDE or value % SIDE_MULTIPLE:
        return (
            f"must be a multiple of {SIDE_MULTIPLE} from {MIN_SIDE} to {MAX_SIDE} pixels (the VAE works on 8x8 "
            f"blocks; the model was trained at {DEFAULT_WIDTH}x{DEFAULT_HEIGHT}), got {value!r}."
        )
    return None


def check_side(setting: str, value: object) -> int:
    """``width`` or ``height`` in pixels."""
    if problem := side_problem(value):
        raise SettingError(setting, f"{setting} {problem}")
    return int(value)


def check_dct_low_pass(value: object, setting: str = "dct_low_pass") -> float:
    """DCTInit's low-pass fraction of each spatial axis, in [0, 1]."""
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise SettingError(
            setting, f"DCT low-pass fraction must be in [0, 1] (official {DEFAULT_DCT_LOW_PASS}), got {value!r}."
        )
    return float(value)


def check_noise_timestep(
    value: object, setting: str = "dct_noise_timestep", *, official: int = DEFAULT_DCT_NOISE_TIMESTEP
) -> int:
    """How far DCTInit (or the FFT init) noises the still first frame: a timestep 0..999."""
    if not is_whole(value) or not 0 <= value <= MAX_TIMESTEP:
        raise SettingError(
            setting, f"DCT noise timestep must be an integer from 0 to {MAX_TIMESTEP} (official {official}), got {value!r}."
        )
    return int(value)


def check_frame_step(value: object) -> int:
    """Use every ``frame_step``-th source frame (1 = every frame)."""
    if not is_whole(value) or not MIN_FRAME_STEP <= value <= MAX_FRAME_STEP:
        raise SettingError(
            "frame_step",
            f"frame step must be an integer from {MIN_FRAME_STEP} (every source frame) to {MAX_FRAME_STEP}, "
            f"got {value!r}.",
        )
    return int(value)


def size_note(width: int, height: int) -> str | None:
    """Advice when ``width x height`` is not the size the model was trained at."""
    if (width, height) == (DEFAULT_WIDTH, DEFAULT_HEIGHT):
        return None
    return f"Cinemo was trained at {DEFAULT_WIDTH}x{DEFAULT_HEIGHT}; at {width}x{height} quality may drop."


#: Pixels a picture (image or mask) may be read with: decoders would otherwise allocate whatever a header claims.
MAX_READ_PIXELS = 8192 * 8192
#: Pixels the official cover-resize may make of one picture before its centre crop (a 1x20000 image covering a
#: 64x64 video would be resized to 65x1300000 pixels first, gigabytes; a picture cropped that much is no input).
MAX_COVER_PIXELS = 4096 * 4096


def cover_size(source_width: int, source_height: int, width: int, height: int) -> tuple[int, int]:
    """(width, height) the official cover-resize makes of a picture before centre-cropping it to ``width x height``."""
    scale = max((height + 1) / source_height, (width + 1) / source_width)
    return int(source_width * scale), int(source_height * scale)


def cover_problem(source_width: int, source_height: int, width: int, height: int) -> str | None:
    """Why a ``source_width x source_height`` picture cannot be fitted to ``width x height`` (None: it can)."""
    covered_width, covered_height = cover_size(source_width, source_height, width, height)
    if covered_width * covered_height <= MAX_COVER_PIXELS:
        return None
    return (
        f"the {source_width}x{source_height} picture's aspect is too far from the {width}x{height} video's: covering "
        f"the video it would be resized to {covered_width}x{covered_height} pixels (more than {MAX_COVER_PIXELS}) and "
        f"cropped to {width}x{height}. Crop it to about the video's aspect first."
    )


def crop_note(source_width: int, source_height: int, width: int, height: int) -> str | None:
    """Advice when the centre crop to ``width x height``'s aspect keeps less than about half of the image."""
    kept = min(source_width * height, source_height * width) / max(source_width * height, source_height * width)
    if kept >= MIN_KEPT_BY_CROP:
        return None
    axis = "width" if source_width * height > source_height * width else "height"
    return (
        f"the {source_width}x{source_height} image is centre-cropped to the {width}x{height} aspect, which keeps only "
        f"{kept:.0%} of its {axis}; crop it yourself, or choose a width and height closer to its aspect."
    )
