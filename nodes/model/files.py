"""Where Cinemo models live in ComfyUI's model folders: listing, resolving and a cheap identity check.

Listed: weights files and diffusers UNet folders under ``models/cinemo/`` (a folder holding ``unet/`` counts as
one model, the released layout), Cinemo folders under ``models/diffusers/`` as ``diffusers/<name>``, and last
``DOWNLOAD_ENTRY``, after ``NO_MODEL_ENTRY`` when nothing is installed so that the download is never preselected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import safe_open

from ...cinemo_core.model.checkpoint import (
    DIFFUSERS_INDEX_NAMES,
    DIFFUSERS_WEIGHT_NAMES,
    KEY_PREFIXES,
    WEIGHT_SUFFIXES,
    CheckpointError,
    locate_unet,
    reject_foreign_checkpoint,
)
from ..comfy_compat import model_folder_paths, models_dir
from ..comfy_compat import register_model_folder

FOLDER = "cinemo"
DIFFUSERS_FOLDER = "diffusers"
DIFFUSERS_PREFIX = "diffusers/"
#: The released model folder's name under models/cinemo (what the download entry fills).
DOWNLOAD_FOLDER_NAME = "Cinemo"
#: The model_name entry that downloads; nothing is downloaded unless it is chosen.
DOWNLOAD_ENTRY = "download maxin-cn/Cinemo unet from Hugging Face (if missing)"
#: Listed first when no model is installed, so that the download entry is never preselected on its own.
NO_MODEL_ENTRY = "(no Cinemo model in models/cinemo)"


def register_cinemo_folder() -> None:
    """Make ``models/cinemo`` a ComfyUI model folder (kept if extra_model_paths.yaml already added paths)."""
    register_model_folder(FOLDER, os.path.join(models_dir(), FOLDER), set(WEIGHT_SUFFIXES))


def _is_diffusers_unet(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        (folder / name).is_file() for name in DIFFUSERS_WEIGHT_NAMES + DIFFUSERS_INDEX_NAMES
    )


def _model_folder(folder: Path) -> bool:
    """A folder the loader takes as one model: a diffusers UNet, or a parent of a ``unet/`` one."""
    return _is_diffusers_unet(folder) or _is_diffusers_unet(folder / "unet")


def _is_cinemo_config(folder: Path) -> bool:
    unet = folder if _is_diffusers_unet(folder) else folder / "unet"
    try:
        return json.loads((unet / "config.json").read_text()).get("addition_embed_type") == "motion_ids"
    except (OSError, ValueError, AttributeError):
        return False


def list_models(*, download_entry: bool = True) -> list[str]:
    """The loader's choices: every Cinemo model, as names relative to its model folder, sorted (or
    ``NO_MODEL_ENTRY`` when there is none); then ``DOWNLOAD_ENTRY`` last. ``download_entry=False``: the
    models only."""
    names: list[str] = []
    for root in map(Path, model_folder_paths(FOLDER)):
        if not root.is_dir():
            continue
        for directory, subdirs, files in os.walk(root, followlinks=True):
            here = Path(directory)
            if here != root and _model_folder(here):
                names.append(here.relative_to(root).as_posix())
                subdirs[:] = []
                continue
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            names.extend(
                (here / f).relative_to(root).as_posix() for f in sorted(files) if f.lower().endswith(WEIGHT_SUFFIXES)
            )
    for root in map(Path, model_folder_paths(DIFFUSERS_FOLDER)):
        if root.is_dir():
            names.extend(
                DIFFUSERS_PREFIX + child.name for child in sorted(root.iterdir())
                if child.is_dir() and _model_folder(child) and _is_cinemo_config(child)
            )
    models = sorted(dict.fromkeys(names))
    if not download_entry:
        return models
    return (models or [NO_MODEL_ENTRY]) + [DOWNLOAD_ENTRY]


def resolve_model(name: str) -> Path | None:
    """The file or folder behind a listed name (``models/cinemo`` first, then ``diffusers/`` entries)."""
    relative = os.path.relpath(os.path.join("/", name), "/")  # no escaping the model folders
    candidates = [Path(root) / relative for root in model_folder_paths(FOLDER)]
    if name.startswith(DIFFUSERS_PREFIX):
        inner = os.path.relpath(os.path.join("/", name[len(DIFFUSERS_PREFIX):]), "/")
        candidates += [Path(root) / inner for root in model_folder_paths(DIFFUSERS_FOLDER)]
    for path in candidates:
        if path.is_file() or (path.is_dir() and _model_folder(path)):
            return path
    return None


def download_folder() -> Path:
    """Where the download entry puts the released folder: ``<first models/cinemo folder>/Cinemo``."""
    roots = model_folder_paths(FOLDER) or [os.path.join(models_dir(), FOLDER)]
    return Path(roots[0]) / DOWNLOAD_FOLDER_NAME


def _safetensors_keys(path: Path) -> list[str]:
    with safe_open(str(path), framework="pt") as handle:
        return list(handle.keys())


def quick_check(path: Path) -> None:
    """Cheap identification before loading: reads only safetensors headers. Raises ``CheckpointError``."""
    weights, _ = locate_unet(path)
    for file in weights if isinstance(weights, list) else [weights]:
        if file.suffix.lower() != ".safetensors" or not file.is_file():
            continue
        try:
            keys = _safetensors_keys(file)
        except Exception as error:  # safetensors raises its own error types for damaged headers
            raise CheckpointError(
                f"{file} is damaged or not a safetensors file ({error}); download it again."
            ) from error
        names = []
        for key in keys:
            while key.startswith(KEY_PREFIXES):
                key = key.split(".", 1)[1]
            names.append(key)
        reject_foreign_checkpoint(dict.fromkeys(names), file)
