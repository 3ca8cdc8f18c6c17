"""``cinemo-animate transfer ...``: animate an edited first frame with the motion of a source clip."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .clip import Clip, make_clip, wrote_line
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

    from ..transfer import TransferSettings

NAME = "transfer"
SUMMARY = "motion transfer (animate an edited frame with a video's motion)"
TRANSFER_FLAGS = {
    **SETTING_FLAGS, "source_prompt": "--source-prompt", "inversion_guidance_scale": "--inversion-cfg",
    "frame_step": "--frame-step",
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``cinemo-animate transfer`` (defaults are the official editing script's)."""
    from ...settings import DEFAULT_EDIT_NOISE_TIMESTEP, DEFAULT_TRANSFER_GUIDANCE
    from ..video_io import READABLE_EXTENSIONS

    parser = argparse.ArgumentParser(
        prog=f"{PROG} {NAME}",
        description=(
            "Motion transfer (the Cinemo paper's video editing): invert the motion of a source clip with DDIM "
            "inversion and animate an edited first frame with it, so the new video moves like the source."
        ),
        epilog=(
            "Edit the source clip's first frame (restyle, recolour, replace an object) for the best match. "
            "Try --demo first: it needs no download, no video and no image."
        ),
    )
    parser.add_argument(
        "--video", metavar="SOURCE",
        help=f"the source clip whose motion is transferred ({', '.join(READABLE_EXTENSIONS)}; "
        "optional with --demo: a pan over the sample image)",
    )
    parser.add_argument(
        "--image", metavar="EDITED",
        help="the new first frame, e.g. the source's first frame edited (optional with --demo: a recoloured copy)",
    )
    add_output_options(parser)
    add_model_options(parser)
    group = add_sampling_options(parser, SamplingDefaults(
        guidance=DEFAULT_TRANSFER_GUIDANCE,
        guidance_help="text guidance scale of the sampling pass, <= 1 turns guidance off "
        f"(default {DEFAULT_TRANSFER_GUIDANCE:g}, as the official editing script)",
        prompt_help="describes the edited video; conditions the sampling (default: empty)",
        init_choices=("dct", "plain"),
        init_help="start latent: dct = the edited frame's low frequencies mixed into the inverted latents "
        "(official, default), plain = the inverted latents as they are",
        dct_noise_timestep=DEFAULT_EDIT_NOISE_TIMESTEP,
        dct_help="DCT mix: timestep the edited frame is noised to (the official editing script's 985)",
        frames_help="at most 16: inversion and sampling run in one pass",
    ))
    group.add_argument("--source-prompt", default="", metavar="TEXT",
                       help="describes the source clip; conditions the inversion (default: empty)")
    group.add_argument("--inversion-cfg", type=float, default=DEFAULT_TRANSFER_GUIDANCE, metavar="CFG",
                       help="text guidance scale of the inversion pass, with --source-prompt "
                       f"(default {DEFAULT_TRANSFER_GUIDANCE:g}, as the official editing script)")
    group.add_argument("--frame-step", type=int, default=1, metavar="N",
                       help="use every N-th source frame (default 1; Cinemo's clips are 8 fps: use 3 for 24 fps)")
    add_quiet_option(parser)
    return parser


def settings_from(args: argparse.Namespace) -> TransferSettings:
    from ..transfer import TransferSettings

    return validated(TransferSettings(
        **shared_settings(args),
        source_prompt=args.source_prompt,
        inversion_guidance_scale=args.inversion_cfg,
        frame_step=args.frame_step,
    ), TRANSFER_FLAGS)


def read_source_clip(args: argparse.Namespace, settings: TransferSettings) -> tuple[torch.Tensor, float]:
    """The start of --video, long enough for the frames asked for (checked), and its frame rate (0 when unknown)."""
    import torch

    from ...preprocess import select_source_frames
    from ..video_io import READABLE_EXTENSIONS, read_video

    path = Path(args.video).expanduser()
    if not path.is_file():
        raise UsageError(f"--video: video file not found: {path}")
    if path.suffix.lower() not in READABLE_EXTENSIONS:
        raise UsageError(f"--video: cannot read '{path}': expected one of {', '.join(READABLE_EXTENSIONS)}.")
    try:
        frames, source_fps = read_video(path, max_frames=settings.source_frames_needed)
    except Exception as error:  # noqa: BLE001 - any decoder failure means the file is unusable
        raise UsageError(
            f"--video: cannot read video '{path}' ({type(error).__name__}: {error}). Give a readable video file."
        ) from None
    try:
        select_source_frames(frames, settings.num_frames, settings.frame_step)
    except ValueError as error:
        raise UsageError(f"--video/--frames/--frame-step: {error}") from None
    return torch.from_numpy(frames), source_fps


def check_inputs(
    args: argparse.Namespace,
) -> tuple[TransferSettings, Path, float, torch.Tensor | None, float, torch.Tensor | None, torch.device, torch.dtype]:
    """Everything cheap to check: (settings, out, fps, source frames or None, source fps, edited image or None,
    device, dtype)."""
    check_model_choice(args)
    if not args.demo and not (args.video and args.image):
        raise UsageError("give the source clip (--video) and the edited first frame (--image); only --demo runs "
                         "without them.")
    check_download_choice(args)
    settings = settings_from(args)
    out, fps = check_output(args)
    clip, source_fps = read_source_clip(args, settings) if args.video else (None, 0.0)
    image = read_image(args.image, "--image") if args.image else None
    device, dtype = check_device_and_model(args)
    return settings, out, fps, clip, source_fps, image, device, dtype


def frame_rate_note(source_fps: float, frame_step: int) -> str | None:
    """Advice when the stepped source clip is far from Cinemo's 8 fps (its motion would play faster or slower)."""
    if source_fps <= 0:
        return None
    stepped = source_fps / frame_step
    if 6.0 <= stepped <= 11.0:
        return None
    suggestion = max(1, round(source_fps / 8.0))
    return (
        f"the source clip is {source_fps:g} fps, so --frame-step {frame_step} gives the model {stepped:g} fps motion; "
        f"Cinemo's clips are 8 fps: --frame-step {suggestion} keeps the motion's speed."
    )


def interrupted_message(args: argparse.Namespace) -> str:
    return f"interrupted; no video was written to {args.out}."


def request_of(args: argparse.Namespace, settings: TransferSettings, fps: float, device: torch.device,
               dtype: torch.dtype) -> dict:
    """What the sidecar records as asked for one motion transfer."""
    from ..sidecar import settings_record
    from .clip import input_identity, model_identity

    return {"command": NAME, "video": input_identity(args.video, "demo pan"),
            "image": input_identity(args.image, "demo recolouring"), "settings": settings_record(settings),
            "fps": fps, "model": model_identity(args, device, dtype)}


def run(args: argparse.Namespace, stderr: TextIO, stdout: TextIO) -> int:
    settings, out, fps, clip, source_fps, image, device, dtype = check_inputs(args)
    say = sayer(args.quiet, stderr)
    say_settings(args, settings, stderr, say)
    note = frame_rate_note(source_fps, settings.frame_step)
    if note:
        say(f"note: {note}")
    if args.demo:
        from ..demo import DEMO_SOURCE_PROMPT, DEMO_TRANSFER_PROMPT, demo_edited_frame, demo_source_clip

        if clip is None:
            clip = demo_source_clip(settings.source_frames_needed)
            settings.source_prompt = settings.source_prompt or DEMO_SOURCE_PROMPT
        if image is None:
            image = demo_edited_frame(clip[0])
            settings.prompt = settings.prompt or DEMO_TRANSFER_PROMPT
    request = None if args.no_sidecar else request_of(args, settings, fps, device, dtype)
    components = load_components(args, device, dtype, stderr, say)
    if components is None:
        return EXIT_FAILURE

    from .. import transfer

    def render(components, progress):
        return transfer.transfer_motion(components, clip, image, settings, progress=progress)

    result, written = make_clip(
        components, Clip(render=render, stages=("Inverting", "Denoising"), steps=settings.steps, out=out, fps=fps,
                         request=request),
        stderr=stderr, quiet=args.quiet,
    )
    say(f"seed {result.seed}, motion id {result.motion_id:g}, {settings.init} init, frame step {settings.frame_step}")
    print(wrote_line(written, result, fps), file=stdout)
    return EXIT_OK
