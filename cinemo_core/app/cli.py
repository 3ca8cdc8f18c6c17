"""``cinemo-animate``: animate an image into a short video from the command line, or transfer a clip's motion.

``cinemo-animate IMAGE ...`` animates; ``cinemo-animate transfer ...`` (first argument; an image file of that
name needs ``./transfer``) runs motion transfer with the same options plus ``--video``, ``--image``,
``--source-prompt``, ``--inversion-cfg`` and ``--frame-step``. Every argument and input file is checked before
anything heavy loads, and the video is written to a temporary file renamed only when complete, so a bad or
interrupted run leaves nothing behind. Nothing is downloaded without ``--download``.

Exit status: 0 on success, 2 for a bad argument or input (nothing is written), 1 when downloading, loading
or generation fails, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence, TextIO

if TYPE_CHECKING:
    import torch

    from ..model.components import CinemoComponents
    from .pipeline import AnimationSettings
    from .transfer import TransferSettings

PROG = "cinemo-animate"
#: ``cinemo-animate transfer ...`` runs motion transfer; anything else is an animation.
TRANSFER_COMMAND = "transfer"
DEFAULT_FPS = 8.0
#: Steps and size the demo uses when --steps / --size are not given: its random weights gain nothing from
#: 50 steps at 512x320, and these keep the demo within seconds on a 2-core CPU (every stage still runs).
DEMO_STEPS = 8
DEMO_SIZE = (256, 160)
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A bad argument or input: reported with exit status 2 before anything is loaded or written."""


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels such as 512x320, got {text!r}")
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class _ModeDefaults:
    """Where animation and motion transfer differ in the options they share."""

    guidance: float
    guidance_help: str
    prompt_help: str
    init_choices: tuple[str, ...]
    init_help: str
    dct_noise_timestep: int
    dct_help: str


def _add_shared_options(parser: argparse.ArgumentParser, mode: _ModeDefaults) -> None:
    """The options animation and motion transfer share (one definition for both commands)."""
    from ..model.components import VAE_CHOICES
    from ..model.devices import DTYPE_CHOICES
    from ..settings import (
        DEFAULT_DCT_LOW_PASS,
        DEFAULT_FRAMES,
        DEFAULT_HEIGHT,
        DEFAULT_INTENSITY,
        DEFAULT_STEPS,
        DEFAULT_WIDTH,
    )
    from .video_io import SUPPORTED_EXTENSIONS

    parser.add_argument(
        "--out", "-o", required=True, metavar="FILE",
        help=f"the video to write; the format follows the extension ({', '.join(SUPPORTED_EXTENSIONS)})",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", "-m", metavar="DIR", help="the downloaded maxin-cn/Cinemo folder")
    source.add_argument(
        "--demo", action="store_true",
        help="run a tiny RANDOM-weight model offline (output is meaningless; shows the pipeline works)",
    )
    parser.add_argument(
        "--download", action="store_true",
        help="with --model DIR: first fetch the parts of maxin-cn/Cinemo missing in DIR from Hugging Face "
        "(needs network and huggingface_hub; parts already there are kept)",
    )
    parser.add_argument("--prompt", "-p", default="", metavar="TEXT", help=mode.prompt_help)
    parser.add_argument("--negative-prompt", "-n", default="", metavar="TEXT", help="what to avoid (default: empty)")
    motion = parser.add_mutually_exclusive_group()
    motion.add_argument(
        "--intensity", type=int, default=DEFAULT_INTENSITY, metavar="0-19",
        help=f"motion intensity, 0 = least motion, 19 = most (default {DEFAULT_INTENSITY})",
    )
    motion.add_argument(
        "--motion-id", type=float, default=None, metavar="ID",
        help="advanced: the raw motion id the UNet embeds, instead of --intensity (intensity i = id 99-i)",
    )
    steps_help = f"denoising steps (default {DEFAULT_STEPS}; {DEMO_STEPS} with --demo)"
    parser.add_argument("--steps", type=int, default=None, help=steps_help)
    parser.add_argument("--cfg", type=float, default=mode.guidance, help=mode.guidance_help)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"frames in the video, the first frame included (default {DEFAULT_FRAMES}; more than "
                        "16 are sampled in overlapping windows of 16)")
    parser.add_argument("--size", type=_size, default=None, metavar="WxH",
                        help=f"output size, multiples of 8 (default {DEFAULT_WIDTH}x{DEFAULT_HEIGHT}; "
                        f"{DEMO_SIZE[0]}x{DEMO_SIZE[1]} with --demo)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frame rate (default {DEFAULT_FPS:g})")
    init = parser.add_mutually_exclusive_group()
    init.add_argument("--init", choices=mode.init_choices, default=None, help=mode.init_help)
    init.add_argument("--no-dct", action="store_true", help="turn DCTInit off (same as --init plain)")
    parser.add_argument("--dct-low-pass", type=float, default=DEFAULT_DCT_LOW_PASS, metavar="P",
                        help="DCTInit: fraction of low frequencies taken from the image "
                        f"(default {DEFAULT_DCT_LOW_PASS})")
    parser.add_argument("--dct-noise-timestep", type=int, default=mode.dct_noise_timestep, metavar="T",
                        help=f"{mode.dct_help}, 0-999 (default {mode.dct_noise_timestep})")
    parser.add_argument("--vae", choices=VAE_CHOICES, default="auto",
                        help="which VAE of the model folder to use: temporal = vae_temporal_decoder/ (official), "
                        "kl = vae/, auto = temporal if present (default)")
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                        help="precision: auto = fp16 on a GPU, bf16 on a CPU with native bfloat16 "
                        "(AVX512-BF16 or AMX), else fp32")
    parser.add_argument("--compile", action="store_true",
                        help="compile the UNet with torch.compile (the first step then takes minutes on a CPU; "
                        "see the README for when it pays off)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bar or notes (errors, the demo notice and the final line still print)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (defaults are the official sampler's)."""
    from ..settings import DEFAULT_DCT_NOISE_TIMESTEP, DEFAULT_GUIDANCE

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Animate a still image into a short video with Cinemo (CVPR 2025).",
        epilog=(
            "Weights: download https://huggingface.co/maxin-cn/Cinemo (e.g. `hf download maxin-cn/Cinemo "
            "--local-dir ./Cinemo`) and pass --model ./Cinemo. Try --demo first: it needs no download. "
            f"Motion transfer (animate an edited frame with a video's motion): `{PROG} {TRANSFER_COMMAND} --help`."
        ),
    )
    parser.add_argument("image", nargs="?", metavar="IMAGE", help="the image to animate (optional with --demo)")
    _add_shared_options(parser, _ModeDefaults(
        guidance=DEFAULT_GUIDANCE,
        guidance_help=f"text guidance scale, <= 1 turns guidance off (default {DEFAULT_GUIDANCE})",
        prompt_help="what should move and how (default: empty)",
        init_choices=("dct", "fft", "plain"),
        init_help="initial noise: dct = Cinemo's DCTInit (default), fft = FreeInit-style low-pass, "
        "plain = Gaussian noise only",
        dct_noise_timestep=DEFAULT_DCT_NOISE_TIMESTEP,
        dct_help="DCTInit: timestep the image is noised to",
    ))
    parser.add_argument("--loop", action="store_true",
                        help="make the video end where it starts, to play on repeat: the last quarter of the "
                        "frames (at least 4) glides back to the input image")
    return parser


def build_transfer_parser() -> argparse.ArgumentParser:
    """The parser of ``cinemo-animate transfer`` (defaults are the official editing script's)."""
    from ..settings import DEFAULT_EDIT_NOISE_TIMESTEP, DEFAULT_TRANSFER_GUIDANCE
    from .video_io import READABLE_EXTENSIONS

    parser = argparse.ArgumentParser(
        prog=f"{PROG} {TRANSFER_COMMAND}",
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
    parser.add_argument("--source-prompt", default="", metavar="TEXT",
                        help="describes the source clip; conditions the inversion (default: empty)")
    _add_shared_options(parser, _ModeDefaults(
        guidance=DEFAULT_TRANSFER_GUIDANCE,
        guidance_help="text guidance scale of the sampling pass, <= 1 turns guidance off "
        f"(default {DEFAULT_TRANSFER_GUIDANCE:g}, as the official editing script)",
        prompt_help="describes the edited video; conditions the sampling (default: empty)",
        init_choices=("dct", "plain"),
        init_help="start latent: dct = the edited frame's low frequencies mixed into the inverted latents "
        "(official, default), plain = the inverted latents as they are",
        dct_noise_timestep=DEFAULT_EDIT_NOISE_TIMESTEP,
        dct_help="DCT mix: timestep the edited frame is noised to (the official editing script's 985)",
    ))
    parser.add_argument("--inversion-cfg", type=float, default=DEFAULT_TRANSFER_GUIDANCE, metavar="CFG",
                        help="text guidance scale of the inversion pass, with --source-prompt "
                        f"(default {DEFAULT_TRANSFER_GUIDANCE:g}, as the official editing script)")
    parser.add_argument("--frame-step", type=int, default=1, metavar="N",
                        help="use every N-th source frame (default 1; Cinemo's clips are 8 fps: use 3 for 24 fps)")
    return parser


def _shared_settings(args: argparse.Namespace) -> dict:
    from ..settings import DEFAULT_HEIGHT, DEFAULT_STEPS, DEFAULT_WIDTH

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


def _validated(settings):
    try:
        settings.validate()
    except ValueError as error:
        raise UsageError(_flag_names(str(error))) from None
    return settings


def _settings_from(args: argparse.Namespace) -> AnimationSettings:
    from .pipeline import AnimationSettings

    return _validated(AnimationSettings(**_shared_settings(args), loop=args.loop))


def _transfer_settings_from(args: argparse.Namespace) -> TransferSettings:
    from .transfer import TransferSettings

    return _validated(TransferSettings(
        **_shared_settings(args),
        source_prompt=args.source_prompt,
        inversion_guidance_scale=args.inversion_cfg,
        frame_step=args.frame_step,
    ))


def _flag_names(message: str) -> str:
    """Name the command-line flag in a settings error."""
    for word, flag in (
        ("intensity", "--intensity"), ("steps", "--steps"), ("guidance scale", "--cfg"), ("seed", "--seed"),
        ("frames", "--frames"), ("width", "--size"), ("height", "--size"), ("DCT low-pass", "--dct-low-pass"),
        ("DCT noise timestep", "--dct-noise-timestep"), ("raw motion id", "--motion-id"),
        ("inversion guidance scale", "--inversion-cfg"), ("frame step", "--frame-step"),
    ):
        if message.startswith(word) or message.startswith(f"A {word}"):
            return f"{flag}: {message}"
    return message


def _check_model_choice(args: argparse.Namespace) -> None:
    if not args.demo and not args.model:
        raise UsageError("give --model DIR (the downloaded maxin-cn/Cinemo folder), or --demo to try a tiny model.")


def _check_download_choice(args: argparse.Namespace) -> None:
    if args.download and not args.model:
        raise UsageError("--download needs --model DIR: the folder to download maxin-cn/Cinemo into.")


def _check_output(args: argparse.Namespace) -> tuple[Path, float]:
    from .video_io import check_fps, check_output_path

    try:
        out = check_output_path(args.out)
    except (ValueError, OSError) as error:
        raise UsageError(f"--out: {error}") from None
    try:
        fps = check_fps(args.fps)
    except ValueError as error:
        raise UsageError(f"--fps: {error}") from None
    return out, fps


def _check_device_and_model(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    """Resolve --device/--dtype, then download (if asked) and look at the model folder."""
    from ..model.components import ModelFolderError, locate_model_files
    from ..model.devices import resolve_device, resolve_dtype

    try:
        device = resolve_device(args.device)
        dtype = resolve_dtype(args.dtype, device)
    except ValueError as error:
        raise UsageError(f"--device/--dtype: {error}") from None
    if args.compile:
        from .torch_compile import compile_problem

        problem = compile_problem(device)
        if problem:
            raise UsageError(f"--compile: {problem}. Run without --compile.")
    if args.model:
        if args.download:
            _download(args)
        try:
            locate_model_files(args.model, vae=args.vae)
        except ModelFolderError as error:
            raise UsageError(f"--model: {error}") from None
    return device, dtype


def _read_image(path: str, flag: str) -> torch.Tensor:
    from ..preprocess import load_image

    try:
        return load_image(path)
    except (ValueError, OSError) as error:
        raise UsageError(f"{flag}: {error}. Give a readable PNG, JPEG or WebP file.") from None


def _check_inputs(
    args: argparse.Namespace,
) -> tuple[AnimationSettings, Path, float, torch.Tensor | None, torch.device, torch.dtype]:
    """Validate everything cheap to check; return (settings, output path, fps, image tensor or None, device, dtype)."""
    _check_model_choice(args)
    if not args.demo and not args.image:
        raise UsageError("give the IMAGE to animate (only --demo runs without one).")
    _check_download_choice(args)
    settings = _settings_from(args)
    out, fps = _check_output(args)
    image = _read_image(args.image, "IMAGE") if args.image else None
    device, dtype = _check_device_and_model(args)
    return settings, out, fps, image, device, dtype


def _read_source_clip(args: argparse.Namespace, settings: TransferSettings) -> tuple[torch.Tensor, float]:
    """The start of --video, long enough for the frames asked for (checked), and its frame rate (0 when unknown)."""
    import torch

    from .transfer import select_source_frames
    from .video_io import READABLE_EXTENSIONS, read_video

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


def _check_transfer_inputs(
    args: argparse.Namespace,
) -> tuple[TransferSettings, Path, float, torch.Tensor | None, float, torch.Tensor | None, torch.device, torch.dtype]:
    """Like :func:`_check_inputs` for ``transfer``: (settings, out, fps, source frames or None, source fps,
    edited image or None, device, dtype)."""
    _check_model_choice(args)
    if not args.demo and not (args.video and args.image):
        raise UsageError("give the source clip (--video) and the edited first frame (--image); only --demo runs "
                         "without them.")
    _check_download_choice(args)
    settings = _transfer_settings_from(args)
    out, fps = _check_output(args)
    clip, source_fps = _read_source_clip(args, settings) if args.video else (None, 0.0)
    image = _read_image(args.image, "--image") if args.image else None
    device, dtype = _check_device_and_model(args)
    return settings, out, fps, clip, source_fps, image, device, dtype


def _download(args: argparse.Namespace) -> None:
    """Fetch the parts of the released model that ``--model`` lacks (raises ``DownloadError``)."""
    from ..model.download import CLI_PARTS, download_cinemo, missing_parts

    parts = tuple("vae" if p == "vae_temporal_decoder" and args.vae == "kl" else p for p in CLI_PARTS)
    todo = missing_parts(args.model, parts)
    if todo and not args.quiet:
        print(f"Downloading {', '.join(todo)} of maxin-cn/Cinemo into {args.model} ...", file=sys.stderr)
    download_cinemo(args.model, parts)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so clean-up (removing the temporary video) runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001 - signal handler signature
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _show_warning(stream: TextIO):
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001 - warnings API
        print(f"note: {message}", file=stream)

    return show


def _load_components(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype, stderr: TextIO, say: Callable[..., None]
) -> CinemoComponents | None:
    """The demo's tiny model or the model folder's, compiled with --compile; None after reporting a load
    failure."""
    from ..model.components import ComponentLoadError, load_components
    from ..model.devices import choose_dtype

    if args.demo:
        from .demo import build_demo_components

        components = build_demo_components(device=device, dtype=dtype)
    else:
        say(f"Loading Cinemo from {args.model} on {device} ({str(dtype).replace('torch.', '')}) ...")
        try:
            components = load_components(args.model, device=device, dtype=dtype, vae=args.vae)
        except ComponentLoadError as error:
            print(f"{PROG}: error: {error}", file=stderr)
            return None
    choice = choose_dtype(args.dtype, device)
    say(f"precision: {choice.name} ({choice.reason})")
    if args.compile:
        from .torch_compile import compile_unet

        say("--compile: the UNet is compiled during the first step (minutes on a CPU) ...")
        components.unet = compile_unet(components.unet)
    return components


def _say_settings(
    args: argparse.Namespace, settings: AnimationSettings, stderr: TextIO, say: Callable[..., None]
) -> None:
    """The demo notice (even when quiet) and its reduced size and steps, and the notes on settings that leave
    what the model was trained on."""
    if args.demo:
        from .demo import DEMO_NOTICE

        print(DEMO_NOTICE, file=stderr)
        say(f"demo: {settings.num_frames} frames at {settings.width}x{settings.height}, {settings.steps} steps "
            "(without --demo the defaults are 512x320 and 50 steps)")
    for note in settings.quality_warnings(trained_size=not args.demo):
        say(f"note: {note}")


def _run(args: argparse.Namespace, stderr: TextIO, stdout: TextIO) -> int:
    settings, out, fps, image, device, dtype = _check_inputs(args)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=stderr))
    _say_settings(args, settings, stderr, say)

    from tqdm.auto import tqdm

    from .pipeline import animate
    from .video_io import write_video

    if args.demo and image is None:
        from .demo import DEMO_PROMPT, SAMPLE_IMAGE
        from ..preprocess import load_image

        image = load_image(SAMPLE_IMAGE)
        if not settings.prompt:
            settings.prompt = DEMO_PROMPT
    components = _load_components(args, device, dtype, stderr, say)
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


def _frame_rate_note(source_fps: float, frame_step: int) -> str | None:
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


def _run_transfer(args: argparse.Namespace, stderr: TextIO, stdout: TextIO) -> int:
    settings, out, fps, clip, source_fps, image, device, dtype = _check_transfer_inputs(args)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=stderr))
    _say_settings(args, settings, stderr, say)
    note = _frame_rate_note(source_fps, settings.frame_step)
    if note:
        say(f"note: {note}")

    from tqdm.auto import tqdm

    from .transfer import transfer_motion
    from .video_io import write_video

    if args.demo:
        from .demo import DEMO_SOURCE_PROMPT, DEMO_TRANSFER_PROMPT, demo_edited_frame, demo_source_clip

        if clip is None:
            clip = demo_source_clip(settings.source_frames_needed)
            settings.source_prompt = settings.source_prompt or DEMO_SOURCE_PROMPT
        if image is None:
            image = demo_edited_frame(clip[0])
            settings.prompt = settings.prompt or DEMO_TRANSFER_PROMPT
    components = _load_components(args, device, dtype, stderr, say)
    if components is None:
        return EXIT_FAILURE

    bar = tqdm(total=2 * settings.steps, desc="Inverting", unit="step", file=stderr, disable=args.quiet,
               leave=False)

    def progress(done: int, total: int) -> None:
        if done > settings.steps:
            bar.set_description("Denoising", refresh=False)
        bar.update(done - bar.n)

    try:
        result = transfer_motion(components, clip, image, settings, progress=progress)
    finally:
        bar.close()
    written = write_video(result.frames, out, fps=fps)
    frames, height, width = result.frames.shape[:3]
    say(f"seed {result.seed}, motion id {result.motion_id:g}, {settings.init} init, frame step {settings.frame_step}")
    print(f"Wrote {written} ({frames} frames, {width}x{height}, {fps:g} fps)", file=stdout)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    from ..model.download import DownloadError

    stderr, stdout = sys.stderr, sys.stdout
    argv = list(sys.argv[1:] if argv is None else argv)
    transfer = bool(argv) and argv[0] == TRANSFER_COMMAND
    parser, run = (build_transfer_parser(), _run_transfer) if transfer else (build_parser(), _run)
    try:
        args = parser.parse_args(argv[1:] if transfer else argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    with warnings.catch_warnings(), _terminate_as_interrupt():
        warnings.showwarning = _show_warning(stderr)
        try:
            return run(args, stderr, stdout)
        except UsageError as error:
            print(f"{PROG}: error: {error}", file=stderr)
            return EXIT_USAGE
        except DownloadError as error:
            print(f"{PROG}: error: {error}", file=stderr)
            return EXIT_FAILURE
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted; no video was written to {args.out}.", file=stderr)
            return EXIT_INTERRUPTED
        except (RuntimeError, OSError, ValueError) as error:
            print(f"{PROG}: error: {type(error).__name__}: {error}", file=stderr)
            return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
