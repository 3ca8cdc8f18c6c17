"""The option groups the commands share (output, model and device, sampling, reporting) and their checks.

Each ``add_*`` function adds one group to a parser; each ``check_*`` turns the parsed group into checked
values or raises :class:`UsageError` naming the flag. A new command composes the groups it needs.
"""

from __future__ import annotations

import argparse
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import DEFAULT_FPS, DEMO_SIZE, DEMO_STEPS, UsageError, download

if TYPE_CHECKING:
    import torch


#: The options each parser got through :func:`recording`, by dest (argparse keeps its own list private).
_RECORDED: weakref.WeakKeyDictionary[argparse.ArgumentParser, dict[str, argparse.Action]] = weakref.WeakKeyDictionary()


class RecordingGroup:
    """An argument container (a parser or one of its groups) that records every option added through it."""

    def __init__(self, container: Any, record: dict[str, argparse.Action]) -> None:
        self._container = container
        self._record = record

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = self._container.add_argument(*args, **kwargs)
        self._record[action.dest] = action
        return action

    def add_argument_group(self, *args: Any, **kwargs: Any) -> RecordingGroup:
        return RecordingGroup(self._container.add_argument_group(*args, **kwargs), self._record)

    def add_mutually_exclusive_group(self, **kwargs: Any) -> RecordingGroup:
        return RecordingGroup(self._container.add_mutually_exclusive_group(**kwargs), self._record)


def recording(parser: argparse.ArgumentParser) -> RecordingGroup:
    """``parser``, recording the options added through it for :func:`recorded_options`."""
    return RecordingGroup(parser, _RECORDED.setdefault(parser, {}))


def recorded_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The action of each option added to ``parser`` through :func:`recording`, by dest."""
    return dict(_RECORDED.get(parser, {}))


def parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels such as 512x320, got {text!r}")
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class SamplingDefaults:
    """Where the commands differ in the sampling options they share."""

    guidance: float
    guidance_help: str
    prompt_help: str
    init_choices: tuple[str, ...]
    init_help: str
    dct_noise_timestep: int
    dct_help: str
    frames_help: str = "more than 16 are sampled in overlapping windows of 16"


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """--out FILE, --fps and --no-sidecar."""
    from ..video_io import SUPPORTED_EXTENSIONS

    parser.add_argument(
        "--out", "-o", required=True, metavar="FILE",
        help=f"the video to write; the format follows the extension ({', '.join(SUPPORTED_EXTENSIONS)})",
    )
    add_fps_option(parser)
    parser.add_argument("--no-sidecar", action="store_true",
                        help="do not write FILE.json beside the video (every setting, the seed used, the package "
                        "version and the model, to make the same clip again)")


def add_fps_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frame rate (default {DEFAULT_FPS:g})")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Where the model comes from and where it runs: --model/--demo, --download, --vae, --device, --dtype,
    --compile."""
    from ...model.components import VAE_CHOICES
    from ...model.devices import DTYPE_CHOICES

    group = parser.add_argument_group("model and device")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--model", "-m", metavar="DIR", help="the downloaded maxin-cn/Cinemo folder")
    source.add_argument(
        "--demo", action="store_true",
        help="run a tiny RANDOM-weight model offline (output is meaningless; shows the pipeline works)",
    )
    group.add_argument(
        "--download", action="store_true",
        help="with --model DIR: first fetch the parts of maxin-cn/Cinemo missing in DIR from Hugging Face "
        "(needs network and huggingface_hub; parts already there are kept)",
    )
    group.add_argument("--vae", choices=VAE_CHOICES, default="auto",
                       help="which VAE of the model folder to use: temporal = vae_temporal_decoder/ (official), "
                       "kl = vae/, auto = temporal if present (default)")
    group.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:N or mps")
    group.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                       help="precision: auto = fp16 on a GPU, bf16 on a CPU with native bfloat16 "
                       "(AVX512-BF16 or AMX), else fp32")
    group.add_argument("--compile", action="store_true",
                       help="compile the UNet with torch.compile (the first step then takes minutes on a CPU; "
                       "see the README for when it pays off)")


def add_sampling_options(parser: argparse.ArgumentParser, mode: SamplingDefaults) -> RecordingGroup:
    """Prompts, motion, steps, guidance, seed, frames, size and the initial noise; returns the group so that a
    command can add its own sampling options to it (all recorded: :func:`recorded_options`)."""
    from ...settings import DEFAULT_DCT_LOW_PASS, DEFAULT_FRAMES, DEFAULT_HEIGHT, DEFAULT_INTENSITY, DEFAULT_STEPS
    from ...settings import DEFAULT_WIDTH

    group = recording(parser).add_argument_group("sampling")
    group.add_argument("--prompt", "-p", default="", metavar="TEXT", help=mode.prompt_help)
    group.add_argument("--negative-prompt", "-n", default="", metavar="TEXT", help="what to avoid (default: empty)")
    motion = group.add_mutually_exclusive_group()
    motion.add_argument(
        "--intensity", type=int, default=DEFAULT_INTENSITY, metavar="0-19",
        help=f"motion intensity, 0 = least motion, 19 = most (default {DEFAULT_INTENSITY})",
    )
    motion.add_argument(
        "--motion-id", type=float, default=None, metavar="ID",
        help="advanced: the raw motion id the UNet embeds, instead of --intensity (intensity i = id 99-i)",
    )
    steps_help = f"denoising steps (default {DEFAULT_STEPS}; {DEMO_STEPS} with --demo)"
    group.add_argument("--steps", type=int, default=None, help=steps_help)
    group.add_argument("--cfg", type=float, default=mode.guidance, help=mode.guidance_help)
    group.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    group.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                       help=f"frames in the video, the first frame included (default {DEFAULT_FRAMES}; "
                       f"{mode.frames_help})")
    group.add_argument("--size", type=parse_size, default=None, metavar="WxH",
                       help=f"output size, multiples of 8 (default {DEFAULT_WIDTH}x{DEFAULT_HEIGHT}; "
                       f"{DEMO_SIZE[0]}x{DEMO_SIZE[1]} with --demo)")
    init = group.add_mutually_exclusive_group()
    init.add_argument("--init", choices=mode.init_choices, default=None, help=mode.init_help)
    init.add_argument("--no-dct", action="store_true", help="turn DCTInit off (same as --init plain)")
    group.add_argument("--dct-low-pass", type=float, default=DEFAULT_DCT_LOW_PASS, metavar="P",
                       help="DCTInit: fraction of low frequencies taken from the image "
                       f"(default {DEFAULT_DCT_LOW_PASS})")
    group.add_argument("--dct-noise-timestep", type=int, default=mode.dct_noise_timestep, metavar="T",
                       help=f"{mode.dct_help}, 0-999 (default {mode.dct_noise_timestep})")
    return group


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bar or notes (errors, the demo notice and the final line still print)")


def shared_settings(args: argparse.Namespace) -> dict:
    """The sampling group as keyword arguments of the settings classes (the demo's steps and size filled in)."""
    from ...settings import DEFAULT_HEIGHT, DEFAULT_STEPS, DEFAULT_WIDTH

    steps = args.steps if args.steps is not None else (DEMO_STEPS if args.demo else DEFAULT_STEPS)
    width, height = args.size or (DEMO_SIZE if args.demo else (DEFAULT_WIDTH, DEFAULT_HEIGHT))
    return dict(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        intensity=args.intensity,
        motion_id=args.motion_id,
        steps=steps,
        guidance_scale=args.cfg,
        seed=args.seed,
        num_frames=args.frames,
        width=width,
        height=height,
        init="plain" if args.no_dct else (args.init or "dct"),
        dct_low_pass=args.dct_low_pass,
        dct_noise_timestep=args.dct_noise_timestep,
    )


#: The flag of each setting the shared groups set (``SettingError.setting`` -> flag); commands add their own.
SETTING_FLAGS = {
    "prompt": "--prompt", "negative_prompt": "--negative-prompt", "intensity": "--intensity",
    "motion_id": "--motion-id", "steps": "--steps", "guidance_scale": "--cfg", "seed": "--seed",
    "num_frames": "--frames", "width": "--size", "height": "--size", "init": "--init",
    "dct_low_pass": "--dct-low-pass", "dct_noise_timestep": "--dct-noise-timestep",
}


def validated(settings, flags: dict[str, str] = SETTING_FLAGS):
    """``settings`` once its ``validate()`` passes; a :class:`SettingError` becomes a usage error naming the flag
    of its setting (``flags``: setting -> flag)."""
    from ...settings import SettingError

    try:
        settings.validate()
    except SettingError as error:
        raise UsageError(flag_message(error, flags)) from None
    return settings


def flag_message(error, flags: dict[str, str] = SETTING_FLAGS) -> str:
    """A :class:`SettingError`'s message behind the flag of its setting (as is when no flag sets it)."""
    flag = flags.get(error.setting)
    return f"{flag}: {error}" if flag else str(error)


def check_model_choice(args: argparse.Namespace) -> None:
    if not args.demo and not args.model:
        raise UsageError("give --model DIR (the downloaded maxin-cn/Cinemo folder), or --demo to try a tiny model.")


def check_download_choice(args: argparse.Namespace) -> None:
    if args.download and not args.model:
        raise UsageError("--download needs --model DIR: the folder to download maxin-cn/Cinemo into.")


def check_fps(args: argparse.Namespace) -> float:
    from ..video_io import check_fps as checked_fps

    try:
        return checked_fps(args.fps)
    except ValueError as error:
        raise UsageError(f"--fps: {error}") from None


def check_output(args: argparse.Namespace) -> tuple[Path, float]:
    from ..video_io import check_output_path

    try:
        out = check_output_path(args.out)
    except (ValueError, OSError) as error:
        raise UsageError(f"--out: {error}") from None
    return out, check_fps(args)


def check_device_and_model(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    """Resolve --device/--dtype, then download (if asked) and look at the model folder."""
    from ...model.components import ModelFolderError, locate_model_files
    from ...model.devices import resolve_device, resolve_dtype

    try:
        device = resolve_device(args.device)
        dtype = resolve_dtype(args.dtype, device)
    except ValueError as error:
        raise UsageError(f"--device/--dtype: {error}") from None
    if args.compile:
        from ..torch_compile import compile_problem

        problem = compile_problem(device)
        if problem:
            raise UsageError(f"--compile: {problem}. Run without --compile.")
    if args.model:
        if args.download:
            download(args)
        try:
            locate_model_files(args.model, vae=args.vae)
        except ModelFolderError as error:
            raise UsageError(f"--model: {error}") from None
    return device, dtype
