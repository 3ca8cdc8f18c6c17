"""``cinemo-animate IMAGE ...``: animate one image into a video."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .common import EXIT_FAILURE, EXIT_OK, PROG, UsageError, load_components, read_image, say_settings, sayer
from .options import (
    SETTING_FLAGS,
    SamplingDefaults,
    add_model_options,
    add_output_options,
    add_quiet_option,
    add_sampling_options,
    check_device_and_model,
    check_download_choice,
    check_model_choice,
    check_output,
    shared_settings,
    validated,
)

if TYPE_CHECKING:
    import torch

    from ..pipeline import AnimationSettings

ANIMATION_FLAGS = {**SETTING_FLAGS, "loop": "--loop"}


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


def add_animation_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The sampling group of animation, with --loop."""
    group = add_sampling_options(parser, animation_defaults())
    group.add_argument("--loop", action="store_true",
                       help="make the video end where it starts, to play on repeat: the last quarter of the "
                       "frames (at least 4) glides back to the input image")
    return group


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
    from ..pipeline import AnimationSettings

    return validated(AnimationSettings(**shared_settings(args), loop=args.loop), ANIMATION_FLAGS)


def check_inputs(
    args: argparse.Namespace,
) -> tuple[AnimationSettings, Path, float, torch.Tensor | None, torch.device, torch.dtype]:
    """Validate everything cheap to check; return (settings, output path, fps, image tensor or None, device, dtype)."""
    check_model_choice(args)
    if not args.demo and not args.image:
        raise UsageError("give the IMAGE to animate (only --demo runs without one).")
    check_download_choice(args)
    settings = settings_from(args)
    out, fps = check_output(args)
    image = read_image(args.image, "IMAGE") if args.image else None
    device, dtype = check_device_and_model(args)
    return settings, out, fps, image, device, dtype


def run(args: argparse.Namespace, stderr: TextIO, stdout: TextIO) -> int:
    settings, out, fps, image, device, dtype = check_inputs(args)
    say = sayer(args.quiet, stderr)
    say_settings(args, settings, stderr, say)

    from tqdm.auto import tqdm

    from ..pipeline import animate
    from ..video_io import write_video

    if args.demo and image is None:
        from ...preprocess import load_image
        from ..demo import DEMO_PROMPT, SAMPLE_IMAGE

        image = load_image(SAMPLE_IMAGE)
        if not settings.prompt:
            settings.prompt = DEMO_PROMPT
    components = load_components(args, device, dtype, stderr, say)
    if components is None:
        return EXIT_FAILURE

    bar = tqdm(total=settings.steps, desc="Denoising", unit="step", file=stderr, disable=args.quiet, leave=False)

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        result = animate(components, image, settings, progress=progress)
    finally:
        bar.close()
    written = write_video(result.frames, out, fps=fps)
    frames, height, width = result.frames.shape[:3]
    say(f"seed {result.seed}, motion id {result.motion_id:g}, {settings.init} init")
    print(f"Wrote {written} ({frames} frames, {width}x{height}, {fps:g} fps)", file=stdout)
    return EXIT_OK
