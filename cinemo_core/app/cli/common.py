"""What every ``cinemo-animate`` command shares at run time: exit codes, errors, messages, loading the model."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import TYPE_CHECKING, Callable, Iterator, TextIO

if TYPE_CHECKING:
    import argparse

    import torch

    from ...model.components import CinemoComponents
    from ..pipeline import AnimationSettings

PROG = "cinemo-animate"
DEFAULT_FPS = 8.0
#: Steps and size the demo uses when --steps / --size are not given: its random weights gain nothing from
#: 50 steps at 512x320, and these keep the demo within seconds on a 2-core CPU (every stage still runs).
DEMO_STEPS = 8
DEMO_SIZE = (256, 160)
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

Say = Callable[..., None]


class UsageError(Exception):
    """A bad argument or input: reported with exit status 2 before anything is loaded or written."""


def sayer(quiet: bool, stream: TextIO) -> Say:
    """``print`` to ``stream``, or nothing with ``--quiet``."""
    return (lambda *a: None) if quiet else (lambda *a: print(*a, file=stream))


def read_image(path: str, flag: str) -> torch.Tensor:
    from ...preprocess import load_image

    try:
        return load_image(path)
    except (ValueError, OSError) as error:
        raise UsageError(f"{flag}: {error}. Give a readable PNG, JPEG or WebP file.") from None


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
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


def show_warning(stream: TextIO):
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001 - warnings API
        print(f"note: {message}", file=stream)

    return show


def download(args: argparse.Namespace) -> None:
    """Fetch the parts of the released model that ``--model`` lacks (raises ``DownloadError``)."""
    from ...model.download import CLI_PARTS, download_cinemo, missing_parts

    parts = tuple("vae" if p == "vae_temporal_decoder" and args.vae == "kl" else p for p in CLI_PARTS)
    todo = missing_parts(args.model, parts)
    if todo and not args.quiet:
        print(f"Downloading {', '.join(todo)} of maxin-cn/Cinemo into {args.model} ...", file=sys.stderr)
    download_cinemo(args.model, parts)


def load_components(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype, stderr: TextIO, say: Say
) -> CinemoComponents | None:
    """The demo's tiny model or the model folder's, compiled with --compile; None after reporting a load
    failure."""
    from ...model.components import ComponentLoadError, load_components as load_folder
    from ...model.devices import choose_dtype

    if args.demo:
        from ..demo import build_demo_components

        components = build_demo_components(device=device, dtype=dtype)
    else:
        say(f"Loading Cinemo from {args.model} on {device} ({str(dtype).replace('torch.', '')}) ...")
        try:
            components = load_folder(args.model, device=device, dtype=dtype, vae=args.vae)
        except ComponentLoadError as error:
            print(f"{PROG}: error: {error}", file=stderr)
            return None
    choice = choose_dtype(args.dtype, device)
    say(f"precision: {choice.name} ({choice.reason})")
    if args.compile:
        from ..torch_compile import compile_unet

        say("--compile: the UNet is compiled during the first step (minutes on a CPU) ...")
        components.unet = compile_unet(components.unet)
    return components


def say_settings(args: argparse.Namespace, settings: AnimationSettings, stderr: TextIO, say: Say) -> None:
    """The demo notice (even when quiet) and its reduced size and steps, and the notes on settings that leave
    what the model was trained on."""
    if args.demo:
        from ..demo import DEMO_NOTICE

        print(DEMO_NOTICE, file=stderr)
        say(f"demo: {settings.num_frames} frames at {settings.width}x{settings.height}, {settings.steps} steps "
            "(without --demo the defaults are 512x320 and 50 steps)")
    for note in settings.quality_warnings(trained_size=not args.demo):
        say(f"note: {note}")
