"""``cinemo-animate``: animate an image into a short video from the command line.

Examples::

    cinemo-animate --demo --out demo.mp4                     # tiny random model, nothing to download
    cinemo-animate photo.jpg --model ./Cinemo --out clip.mp4 --prompt "waves crashing" --intensity 12

Every argument is checked, and the image, output folder and model folder are looked at, before
anything heavy is loaded. The video is written to a temporary file next to ``--out`` and renamed
only when complete, so an interrupted run leaves no broken video.

``--download`` (with ``--model DIR``) fetches the parts of ``maxin-cn/Cinemo`` missing in DIR from Hugging
Face first; nothing is downloaded without it.

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
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence, TextIO

if TYPE_CHECKING:
    import torch

    from .pipeline import AnimationSettings

PROG = "cinemo-animate"
DEFAULT_FPS = 8.0
#: Steps and size the demo uses when --steps / --size are not given: its random weights gain nothing from
#: 50 steps at 512x320, and these keep the demo within seconds on a 2-core CPU (every stage still runs).
DEMO_STEPS = 10
DEMO_SIZE = (256, 160)
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A bad argument or input: reported with exit status 2 before anything is loaded or written."""


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels such as 512x320, got {text!r}")
    return int(parts[0]), int(parts[1])


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (defaults are the official sampler's)."""
    from .components import VAE_CHOICES
    from .devices import DTYPE_CHOICES
    from .pipeline import (
        DEFAULT_DCT_LOW_PASS,
        DEFAULT_DCT_NOISE_TIMESTEP,
        DEFAULT_FRAMES,
        DEFAULT_GUIDANCE,
        DEFAULT_HEIGHT,
        DEFAULT_INTENSITY,
        DEFAULT_STEPS,
        DEFAULT_WIDTH,
    )
    from .video_io import SUPPORTED_EXTENSIONS

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Animate a still image into a short video with Cinemo (CVPR 2025).",
        epilog=(
            "Weights: download https://huggingface.co/maxin-cn/Cinemo (e.g. `hf download maxin-cn/Cinemo "
            "--local-dir ./Cinemo`) and pass --model ./Cinemo. Try --demo first: it needs no download."
        ),
    )
    parser.add_argument("image", nargs="?", metavar="IMAGE", help="the image to animate (optional with --demo)")
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
    parser.add_argument("--prompt", "-p", default="", metavar="TEXT", help="what should move and how (default: empty)")
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
    parser.add_argument("--cfg", type=float, default=DEFAULT_GUIDANCE,
                        help=f"text guidance scale, <= 1 turns guidance off (default {DEFAULT_GUIDANCE})")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"frames in the video, the input image included (default {DEFAULT_FRAMES})")
    parser.add_argument("--size", type=_size, default=None, metavar="WxH",
                        help=f"output size, multiples of 8 (default {DEFAULT_WIDTH}x{DEFAULT_HEIGHT}; "
                        f"{DEMO_SIZE[0]}x{DEMO_SIZE[1]} with --demo)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frame rate (default {DEFAULT_FPS:g})")
    init = parser.add_mutually_exclusive_group()
    init.add_argument("--init", choices=("dct", "fft", "plain"), default=None,
                      help="initial noise: dct = Cinemo's DCTInit (default), fft = FreeInit-style low-pass, "
                      "plain = Gaussian noise only")
    init.add_argument("--no-dct", action="store_true", help="turn DCTInit off (same as --init plain)")
    parser.add_argument("--dct-low-pass", type=float, default=DEFAULT_DCT_LOW_PASS, metavar="P",
                        help="DCTInit: fraction of low frequencies taken from the image "
                        f"(default {DEFAULT_DCT_LOW_PASS})")
    parser.add_argument("--dct-noise-timestep", type=int, default=DEFAULT_DCT_NOISE_TIMESTEP, metavar="T",
                        help=f"DCTInit: timestep the image is noised to, 0-999 (default {DEFAULT_DCT_NOISE_TIMESTEP})")
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
    return parser


def _settings_from(args: argparse.Namespace) -> AnimationSettings:
    from .pipeline import DEFAULT_HEIGHT, DEFAULT_STEPS, DEFAULT_WIDTH, AnimationSettings

    init = "plain" if args.no_dct else (args.init or "dct")
    steps = args.steps if args.steps is not None else (DEMO_STEPS if args.demo else DEFAULT_STEPS)
    size = args.size or (DEMO_SIZE if args.demo else (DEFAULT_WIDTH, DEFAULT_HEIGHT))
    settings = AnimationSettings(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        intensity=args.intensity,
        motion_id=args.motion_id,
        steps=steps,
        guidance_scale=args.cfg,
        seed=args.seed,
        num_frames=args.frames,
        width=size[0],
        height=size[1],
        init=init,
        dct_low_pass=args.dct_low_pass,
        dct_noise_timestep=args.dct_noise_timestep,
    )
    try:
        settings.validate()
    except ValueError as error:
        raise UsageError(_flag_names(str(error))) from None
    return settings


def _flag_names(message: str) -> str:
    """Name the command-line flag in a settings error."""
    for word, flag in (
        ("intensity", "--intensity"), ("steps", "--steps"), ("guidance scale", "--cfg"), ("seed", "--seed"),
        ("frames", "--frames"), ("width", "--size"), ("height", "--size"), ("DCT low-pass", "--dct-low-pass"),
        ("DCT noise timestep", "--dct-noise-timestep"), ("raw motion id", "--motion-id"),
    ):
        if message.startswith(word) or message.startswith(f"A {word}"):
            return f"{flag}: {message}"
    return message


def _check_inputs(
    args: argparse.Namespace,
) -> tuple[AnimationSettings, Path, float, torch.Tensor | None, torch.device, torch.dtype]:
    """Validate everything cheap to check; return (settings, output path, fps, image tensor or None, device, dtype)."""
    from .components import ModelFolderError, locate_model_files
    from .devices import resolve_device, resolve_dtype
    from .preprocess import load_image
    from .video_io import check_fps, check_output_path

    if not args.demo and not args.model:
        raise UsageError("give --model DIR (the downloaded maxin-cn/Cinemo folder), or --demo to try a tiny model.")
    if not args.demo and not args.image:
        raise UsageError("give the IMAGE to animate (only --demo runs without one).")
    if args.download and not args.model:
        raise UsageError("--download needs --model DIR: the folder to download maxin-cn/Cinemo into.")
    settings = _settings_from(args)
    try:
        out = check_output_path(args.out)
    except (ValueError, OSError) as error:
        raise UsageError(f"--out: {error}") from None
    try:
        fps = check_fps(args.fps)
    except ValueError as error:
        raise UsageError(f"--fps: {error}") from None
    image = None
    if args.image:
        try:
            image = load_image(args.image)
        except (ValueError, OSError) as error:
            raise UsageError(f"IMAGE: {error}. Give a readable PNG, JPEG or WebP file.") from None
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
    return settings, out, fps, image, device, dtype


def _download(args: argparse.Namespace) -> None:
    """Fetch the parts of the released model that ``--model`` lacks (raises ``DownloadError``)."""
    from .download import CLI_PARTS, download_cinemo, missing_parts

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


def _run(args: argparse.Namespace, stderr: TextIO, stdout: TextIO) -> int:
    settings, out, fps, image, device, dtype = _check_inputs(args)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=stderr))
    # the notes compare with what the released model was trained on; the demo's random model learned nothing
    for note in [] if args.demo else settings.quality_warnings():
        say(f"note: {note}")

    from tqdm.auto import tqdm

    from .components import ComponentLoadError, load_components
    from .pipeline import animate
    from .video_io import write_video

    if args.demo:
        from .demo import DEMO_NOTICE, DEMO_PROMPT, SAMPLE_IMAGE, build_demo_components

        print(DEMO_NOTICE, file=stderr)
        say(f"demo: {settings.num_frames} frames at {settings.width}x{settings.height}, {settings.steps} steps "
            "(without --demo the defaults are 512x320 and 50 steps)")
        if image is None:
            from .preprocess import load_image

            image = load_image(SAMPLE_IMAGE)
            if not settings.prompt:
                settings.prompt = DEMO_PROMPT
        components = build_demo_components(device=device, dtype=dtype)
    else:
        say(f"Loading Cinemo from {args.model} on {device} ({str(dtype).replace('torch.', '')}) ...")
        try:
            components = load_components(args.model, device=device, dtype=dtype, vae=args.vae)
        except ComponentLoadError as error:
            print(f"{PROG}: error: {error}", file=stderr)
            return EXIT_FAILURE

    from .devices import choose_dtype

    choice = choose_dtype(args.dtype, device)
    say(f"precision: {choice.name} ({choice.reason})")
    if args.compile:
        from .torch_compile import compile_unet

        say("--compile: the UNet is compiled during the first step (minutes on a CPU) ...")
        components.unet = compile_unet(components.unet)

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    from .download import DownloadError

    stderr, stdout = sys.stderr, sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    with warnings.catch_warnings(), _terminate_as_interrupt():
        warnings.showwarning = _show_warning(stderr)
        try:
            return _run(args, stderr, stdout)
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
