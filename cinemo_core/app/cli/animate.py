"""``cinemo-animate IMAGE ...``: animate one image into a video."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ...settings import cover_problem
from .clip import Clip, make_clip, wrote_line
from .common import EXIT_FAILURE, EXIT_OK, PROG, UsageError, load_components, read_image, say_settings, sayer
from .options import (
    SETTING_FLAGS,
    RecordingGroup,
    SamplingDefaults,
    add_model_options,
    add_output_options,
    add_quiet_option,
    add_sampling_options,
    check_device_and_model,
    check_download_choice,
    check_model_choice,
    check_output,
    flag_message,
    shared_settings,
    validated,
)

if TYPE_CHECKING:
    import torch

    from ..pipeline import AnimationSettings

ANIMATION_FLAGS = {**SETTING_FLAGS, "loop": "--loop", "motion_mask": "--motion-mask", "invert_mask": "--invert-mask",
                  "end_image": "--end-image"}


def animation_defaults() -> SamplingDefaults:
    """The sampling options' defaults and help of animation (the official sampler's)."""
    from ...settings import DEFAULT_DCT_NOISE_TIMESTEP, DEFAULT_GUIDANCE

    return SamplingDefaults(
        guidance=DEFAULT_GUIDANCE,
        guidance_help=f"text guidance scale, <= 1 turns guidance off (default {DEFAULT_GUIDANCE})",
        prompt_help="what should move and how (default: empty)",
        init_choices=("dct", "fft", "plain"),
        init_help="initial noise: dct = Cinemo's DCTInit (default), fft = FreeInit-style low-pass, "
        "plain = Gaussian noise only",
        dct_noise_timestep=DEFAULT_DCT_NOISE_TIMESTEP,
        dct_help="DCTInit: timestep the image is noised to",
    )


def add_animation_options(parser: argparse.ArgumentParser) -> RecordingGroup:
    """The sampling group of animation, with --loop."""
    group = add_sampling_options(parser, animation_defaults())
    group.add_argument("--loop", action="store_true",
                       help="make the video end where it starts, to play on repeat: the last quarter of the "
                       "frames (at least 4) glides back to the input image")
    group.add_argument("--motion-mask", default=None, metavar="MASK",
                       help="a cinemagraph: a picture of the image's shape (any size) whose white parts move and "
                       "black parts stay exactly still, grey blends (its grayscale; alpha is not read)")
    group.add_argument("--invert-mask", action="store_true",
                       help="flip --motion-mask: black moves, white stays still")
    group.add_argument("--end-image", default=None, metavar="PATH",
                       help="a picture the video ends on (fitted like IMAGE); the last quarter of the frames glides "
                       "towards it. The model never trained for this: keep it close to IMAGE. Not with --loop")
    return group


def animation_settings(args: argparse.Namespace) -> AnimationSettings:
    """The animation settings the parsed options ask for (unchecked)."""
    from ..pipeline import AnimationSettings

    return AnimationSettings(**shared_settings(args), loop=args.loop, motion_mask=args.motion_mask,
                             invert_mask=args.invert_mask, end_image=args.end_image)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (defaults are the official sampler's)."""
    from . import COMMANDS

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Animate a still image into a short video with Cinemo (CVPR 2025).",
        epilog=(
            "Weights: download https://huggingface.co/maxin-cn/Cinemo (e.g. `hf download maxin-cn/Cinemo "
            "--local-dir ./Cinemo`) and pass --model ./Cinemo. Try --demo first: it needs no download. "
            "Other commands (an image file of that name needs ./NAME): "
            + "; ".join(f"`{PROG} {name} --help`: {module.SUMMARY}" for name, module in COMMANDS.items())
            + "."
        ),
    )
    parser.add_argument("image", nargs="?", metavar="IMAGE", help="the image to animate (optional with --demo)")
    add_output_options(parser)
    add_model_options(parser)
    add_animation_options(parser)
    add_quiet_option(parser)
    return parser


def settings_from(args: argparse.Namespace) -> AnimationSettings:
    return validated(animation_settings(args), ANIMATION_FLAGS)


def check_motion_mask(settings: AnimationSettings, image: torch.Tensor, flags: dict[str, str] = ANIMATION_FLAGS) -> None:
    """Read ``settings``' mask and check it against ``image`` before any model loads (usage error naming the flag);
    its all-still warning is left to the run."""
    import warnings

    from ...settings import SettingError
    from ..pipeline import latent_motion_mask

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            latent_motion_mask(settings, tuple(image.shape[1:3]), (settings.height // 8, settings.width // 8))
    except SettingError as error:
        raise UsageError(flag_message(error, flags)) from None


def check_inputs(
    args: argparse.Namespace,
) -> tuple[AnimationSettings, Path, float, torch.Tensor | None, torch.device, torch.dtype]:
    """Validate everything cheap to check; return (settings, output path, fps, image tensor or None, device, dtype)."""
    check_model_choice(args)
    if not args.demo and not args.image:
        raise UsageError("give the IMAGE to animate (only --demo runs without one).")
    check_download_choice(args)
    if args.end_image is not None and args.loop:
        raise UsageError("--end-image and --loop both set where the video ends (a loop ends on the first image): "
                         "give one of them.")
    settings = settings_from(args)
    out, fps = check_output(args)
    image = read_image(args.image, "IMAGE") if args.image else None
    if image is not None and (problem := cover_problem(image.shape[2], image.shape[1], settings.width, settings.height)):
        raise UsageError(f"IMAGE: {problem}")
    if args.end_image is not None:
        end = read_image(args.end_image, "--end-image")
        if problem := cover_problem(end.shape[2], end.shape[1], settings.width, settings.height):
            raise UsageError(f"--end-image: {problem}")
    device, dtype = check_device_and_model(args)
    return settings, out, fps, image, device, dtype


def interrupted_message(args: argparse.Namespace) -> str:
    return f"interrupted; no video was written to {args.out}."


def request_of(args: argparse.Namespace, settings: AnimationSettings, fps: float, device: torch.device,
               dtype: torch.dtype) -> dict:
    """What the sidecar records as asked for one animation."""
    from ..sidecar import settings_record
    from .clip import input_identity, model_identity

    request = {"command": "animate", "image": input_identity(args.image, "demo sample image"),
               "settings": settings_record(settings), "fps": fps, "model": model_identity(args, device, dtype)}
    if settings.motion_mask is not None:
        request["motion_mask"] = input_identity(settings.motion_mask, "")
    if settings.end_image is not None:
        request["end_image"] = input_identity(settings.end_image, "")
    return request


def animation_clip(image: torch.Tensor, settings: AnimationSettings, out: Path, fps: float,
                   request: dict | None) -> Clip:
    """The clip that animates ``image`` with ``settings`` into ``out``."""
    from .. import pipeline

    return Clip(render=lambda components, progress: pipeline.animate(components, image, settings, progress=progress),
                stages=("Denoising",), steps=settings.steps, out=out, fps=fps, request=request)


def demo_input(settings: AnimationSettings) -> torch.Tensor:
    """The demo's sample image (and its prompt when none was given)."""
    from ...preprocess import load_image
    from ..demo import DEMO_PROMPT, SAMPLE_IMAGE

    if not settings.prompt:
        settings.prompt = DEMO_PROMPT
    return load_image(SAMPLE_IMAGE)


def run(args: argparse.Namespace, stderr: TextIO, stdout: TextIO) -> int:
    settings, out, fps, image, device, dtype = check_inputs(args)
    say = sayer(args.quiet, stderr)
    say_settings(args, settings, stderr, say)
    if image is None:
        image = demo_input(settings)
    check_motion_mask(settings, image)
    request = None if args.no_sidecar else request_of(args, settings, fps, device, dtype)
    components = load_components(args, device, dtype, stderr, say)
    if components is None:
        return EXIT_FAILURE
    result, written = make_clip(components, animation_clip(image, settings, out, fps, request), stderr=stderr,
                                quiet=args.quiet)
    say(f"seed {result.seed}, motion id {result.motion_id:g}, {settings.init} init")
    print(wrote_line(written, result, fps), file=stdout)
    return EXIT_OK
