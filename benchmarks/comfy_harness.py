"""An in-process ComfyUI for the benchmark scripts (the test suite's harness, with command-line switches).

ComfyUI reads its switches (``--cpu``, ``--bf16-unet``, ...) once, when ``comfy.cli_args`` is first
imported, so :func:`boot` must run before anything else imports ComfyUI, once per process.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def comfyui_path() -> Path:
    value = os.environ.get("COMFYUI_PATH")
    if not value:
        sys.exit("Set COMFYUI_PATH to a ComfyUI checkout and run with its Python (see README, Tests).")
    return Path(value)


def boot(switches: Sequence[str] = ("--cpu",)):
    """Boot ComfyUI in this process with ``switches`` as its command line; returns the harness's ComfyUI.

    It runs on the CPU only when ``switches`` include ``--cpu``.
    """
    path = comfyui_path()
    sys.path.insert(0, str(path))
    import comfy.options

    comfy.options.enable_args_parsing()
    saved = sys.argv
    sys.argv = ["main.py", *switches]
    try:
        import comfy.cli_args  # noqa: F401  (parses the switches now)
    finally:
        sys.argv = saved
    from comfyui_harness import boot_comfyui

    return boot_comfyui(path, Path(tempfile.mkdtemp(prefix="cinemo-bench-comfyui-")), cpu="--cpu" in switches)


def add_golden_model(comfyui) -> str:
    """Put the golden tiny Cinemo UNet (tests/fixtures/tiny_a) in the ComfyUI's models/cinemo; returns its name."""
    import folder_paths
    from comfy_models import GOLDEN_NAME, write_golden_cinemo

    write_golden_cinemo(comfyui.models)
    folder_paths.filename_list_cache.clear()
    return GOLDEN_NAME
