"""Where temporal VAEs live in ComfyUI's model folders (``models/cinemo`` and ``models/vae``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from safetensors import safe_open

from ..comfy_compat import model_folder_paths
from .weights import DIFFUSERS_CLASS_NAME, DIFFUSERS_MARKER_KEY, DIFFUSERS_WEIGHT_NAMES, SGM_MARKER_KEY

#: Model folders searched for temporal VAEs, in this order (``cinemo`` is registered by the model loader).
MODEL_FOLDERS = ("cinemo", "vae")
#: The vae_name entry that downloads the released vae_temporal_decoder/; nothing is downloaded unless it is chosen.
VAE_DOWNLOAD_ENTRY = "download maxin-cn/Cinemo vae_temporal_decoder from Hugging Face (if missing)"
#: Listed first when no temporal VAE is installed, so that the download entry is never preselected on its own.
NO_VAE_ENTRY = "(no temporal VAE in models/cinemo or models/vae)"


def model_roots() -> list[str]:
    """The directories of the ``cinemo`` and ``vae`` model folders."""
    return [root for name in MODEL_FOLDERS for root in model_folder_paths(name)]


def available_temporal_vaes() -> dict[str, Path]:
    """``{name: path}`` of the temporal VAEs under the model folders, as the loader lists them."""
    return find_temporal_vaes(model_roots())


def list_temporal_vaes(*, download_entry: bool = True) -> list[str]:
    """The loader's choices: the temporal VAEs found (or ``NO_VAE_ENTRY``), then ``VAE_DOWNLOAD_ENTRY`` last;
    ``download_entry=False``: the VAEs only."""
    names = list(available_temporal_vaes())
    if not download_entry:
        return names
    return (names or [NO_VAE_ENTRY]) + [VAE_DOWNLOAD_ENTRY]


def _is_temporal_vae_folder(folder: Path) -> Path | None:
    """The weight file of a diffusers AutoencoderKLTemporalDecoder folder, or None."""
    config = folder / "config.json"
    if not config.is_file():
        return None
    try:
        class_name = json.loads(config.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None
    if class_name != DIFFUSERS_CLASS_NAME:
        return None
    return next((folder / name for name in DIFFUSERS_WEIGHT_NAMES if (folder / name).is_file()), None)


def _is_temporal_vae_file(path: Path) -> bool:
    """A .safetensors file whose header names a temporal VAE (diffusers or SGM keys); reads only the header."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())
    except Exception:  # a damaged or foreign file is simply not listed
        return False
    return DIFFUSERS_MARKER_KEY in keys or SGM_MARKER_KEY in keys


def find_temporal_vaes(roots: Sequence[str | os.PathLike], max_depth: int = 3) -> dict[str, Path]:
    """Temporal VAEs under ``roots``: ``{name: path}`` with ``name`` relative to its root (``/``-separated).

    A diffusers folder (``config.json`` naming ``AutoencoderKLTemporalDecoder`` plus a weight file) is listed
    by its folder name and maps to the folder; a single ``.safetensors`` whose keys are a temporal VAE
    (diffusers or SGM layout) is listed by its file name. Folders are searched ``max_depth`` levels deep
    (so ``Cinemo/vae_temporal_decoder`` is found under a models folder); hidden entries are skipped.
    The first root wins when two hold the same name.
    """
    found: dict[str, Path] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for current, dirs, files in os.walk(root, followlinks=True):
            here = Path(current)
            depth = len(here.relative_to(root).parts)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < max_depth else []
            if depth > 0 and _is_temporal_vae_folder(here) is not None:
                found.setdefault(here.relative_to(root).as_posix(), here)
                dirs[:] = []
                continue
            for name in sorted(files):
                if name.startswith(".") or not name.endswith(".safetensors") or name in DIFFUSERS_WEIGHT_NAMES:
                    continue
                path = here / name
                if _is_temporal_vae_file(path):
                    found.setdefault(path.relative_to(root).as_posix(), path)
    return dict(sorted(found.items()))


def weight_file(path: str | os.PathLike) -> Path:
    """The weight file behind a :func:`find_temporal_vaes` entry (the folder's, or the file itself)."""
    path = Path(path)
    if path.is_dir():
        weights = _is_temporal_vae_folder(path)
        if weights is None:
            raise FileNotFoundError(
                f"'{path}' is not a diffusers {DIFFUSERS_CLASS_NAME} folder (config.json naming that class and "
                f"one of {', '.join(DIFFUSERS_WEIGHT_NAMES)})."
            )
        return weights
    if not path.is_file():
        raise FileNotFoundError(f"No temporal VAE at '{path}'.")
    return path
