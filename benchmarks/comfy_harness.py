"""An in-process ComfyUI for the benchmark scripts: needs only this package, ComfyUI and the switches given.

It does not use the test suite's harness (that one needs pytest): a ComfyUI environment without the test
requirements runs the benchmarks. ComfyUI reads its switches (``--cpu``, ``--bf16-unet``, ...) once, when
``comfy.cli_args`` is first imported, so :func:`boot` must run before anything else imports ComfyUI, once per
process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
#: The golden tiny Cinemo case (data only: the official code's output for a tiny random-weight UNet).
TINY_A = REPO / "tests" / "fixtures" / "tiny_a"
GOLDEN_NAME = "tiny_a"
PACK_NAME = "cinemo_nodes"


@dataclass
class BenchComfyUI:
    """A booted in-process ComfyUI with its own scratch models folder."""

    root: Path
    models: Path


def comfyui_path() -> Path:
    value = os.environ.get("COMFYUI_PATH")
    if not value:
        sys.exit("Set COMFYUI_PATH to a ComfyUI checkout and run with its Python (see README, Tests).")
    return Path(value)


def _parse_switches(path: Path, switches: Sequence[str]):
    sys.path.insert(0, str(path))
    import comfy.options

    comfy.options.enable_args_parsing()
    saved = sys.argv
    sys.argv = ["main.py", *switches]
    try:
        from comfy.cli_args import args  # parses the switches now, before comfy.model_management
    finally:
        sys.argv = saved
    return args


def boot(switches: Sequence[str] = ("--cpu",)) -> BenchComfyUI:
    """Boot ComfyUI in this process with ``switches`` as its command line and load this repository as a pack.

    It runs on the CPU only when ``switches`` include ``--cpu``.
    """
    args = _parse_switches(comfyui_path(), switches)
    args.disable_api_nodes = True
    import utils.extra_config  # noqa: F401  (before `nodes`, which would otherwise shadow `utils`)
    import folder_paths

    root = Path(tempfile.mkdtemp(prefix="cinemo-bench-comfyui-"))
    packs, models = root / "custom_nodes", root / "models"
    packs.mkdir()
    (packs / PACK_NAME).symlink_to(REPO, target_is_directory=True)
    for name in ("input", "output", "temp"):
        (root / name).mkdir()
    folder_paths.set_output_directory(str(root / "output"))
    folder_paths.set_input_directory(str(root / "input"))
    folder_paths.set_temp_directory(str(root / "temp"))
    folder_paths.add_model_folder_path("custom_nodes", str(packs))
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    if "CinemoModelLoader" not in nodes.NODE_CLASS_MAPPINGS:
        sys.exit(f"ComfyUI did not load the pack from {REPO}; see the log above for the import error.")
    for kind in ("cinemo", "diffusers"):  # after the pack registered its folders, so these are added to them
        (models / kind).mkdir(parents=True)
        folder_paths.add_model_folder_path(kind, str(models / kind), is_default=True)
    return BenchComfyUI(root=root, models=models)


def add_golden_model(comfyui: BenchComfyUI) -> str:
    """Put the golden tiny Cinemo UNet in the ComfyUI's models/cinemo; returns its name."""
    import folder_paths

    shutil.copytree(TINY_A / "unet", comfyui.models / "cinemo" / GOLDEN_NAME / "unet")
    folder_paths.filename_list_cache.clear()
    return GOLDEN_NAME


def call_node(class_type: str, **inputs) -> tuple:
    """Run one node's function in the booted ComfyUI (V3 or V1) and return its outputs as a tuple."""
    import nodes

    node_class = nodes.NODE_CLASS_MAPPINGS[class_type]
    if hasattr(node_class, "define_schema"):
        result = node_class.execute(**inputs)
        return tuple(getattr(result, "args", result))
    return tuple(getattr(node_class(), node_class.FUNCTION)(**inputs))


def relative_error(ours, reference) -> float:
    """max|ours - reference| / max|reference| (the golden README's measure)."""
    ours, reference = ours.double(), reference.double()
    return ((ours - reference).abs().max() / reference.abs().max()).item()
