"""``cinemo-animate``: animate an image into a short video from the command line, or transfer a clip's motion.

``cinemo-animate IMAGE ...`` animates (:mod:`.animate`); a first argument naming a command runs it instead
(``transfer``: :mod:`.transfer`, ``batch``: :mod:`.batch`; an image file of that name needs ``./transfer``). The commands compose the
option groups of :mod:`.options`. Every argument and input file is checked before anything heavy loads, and
the video is written to a temporary file renamed only when complete, so a bad or interrupted run leaves
nothing behind. Nothing is downloaded without ``--download``.

Exit status: 0 on success, 2 for a bad argument or input (nothing is written), 1 when downloading, loading
or generation fails, 130 when interrupted.
"""

from __future__ import annotations

import sys
import warnings
from typing import Sequence

from . import batch, transfer
from .animate import build_parser
from .common import (
    DEFAULT_FPS,
    DEMO_SIZE,
    DEMO_STEPS,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    show_warning,
    terminate_as_interrupt,
)
from . import animate

#: The commands named by the first argument; anything else is an animation.
COMMANDS = {transfer.NAME: transfer, batch.NAME: batch}
TRANSFER_COMMAND = transfer.NAME
build_transfer_parser = transfer.build_parser

__all__ = [
    "COMMANDS", "DEFAULT_FPS", "DEMO_SIZE", "DEMO_STEPS", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK",
    "EXIT_USAGE", "PROG", "TRANSFER_COMMAND", "UsageError", "build_parser", "build_transfer_parser", "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    from ...model.download import DownloadError

    stderr, stdout = sys.stderr, sys.stdout
    argv = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(argv[0]) if argv else None
    parser, run = (command.build_parser(), command.run) if command else (build_parser(), animate.run)
    try:
        args = parser.parse_args(argv[1:] if command else argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    with warnings.catch_warnings(), terminate_as_interrupt():
        warnings.showwarning = show_warning(stderr)
        try:
            return run(args, stderr, stdout)
        except UsageError as error:
            print(f"{PROG}: error: {error}", file=stderr)
            return EXIT_USAGE
        except DownloadError as error:
            print(f"{PROG}: error: {error}", file=stderr)
            return EXIT_FAILURE
        except KeyboardInterrupt:
            print(f"{PROG}: {(command or animate).interrupted_message(args)}", file=stderr)
            return EXIT_INTERRUPTED
        except (RuntimeError, OSError, ValueError) as error:
            print(f"{PROG}: error: {type(error).__name__}: {error}", file=stderr)
            return EXIT_FAILURE
