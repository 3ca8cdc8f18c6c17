"""Cinemo Model Loader: a Cinemo UNet from ``models/cinemo/`` (or ``models/diffusers/``) as a ComfyUI MODEL.

Listed entries:
* every weights file under ``models/cinemo/`` (``.safetensors``, ``.pt``, ``.pth``, ``.bin``; the released
  ``cinemo.pt`` is one), the architecture being inferred from the weights;
* every diffusers UNet folder under ``models/cinemo/`` (``config.json`` + ``diffusion_pytorch_model.*``), and
  every folder holding such a ``unet/`` folder (the released ``maxin-cn/Cinemo`` layout) as that folder;
* Cinemo folders directly under ``models/diffusers/`` (their UNet config has ``addition_embed_type:
  motion_ids``), listed as ``diffusers/<name>``;
* always, last, ``DOWNLOAD_ENTRY``: only when the user picks it is the released UNet fetched from Hugging
  Face into ``models/cinemo/Cinemo/unet`` (skipped when already there), then loaded like the ``Cinemo`` entry.
  When no model is installed, ``NO_MODEL_ENTRY`` comes first, so the download is never the preselected value.

Reading, identification of foreign weights and key checks are ``cinemo_core.checkpoint``'s; building the
ComfyUI model is ``comfy_model.build_model_patcher``'s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from comfy_api.latest import io
from safetensors import safe_open

import folder_paths

from ..cinemo_core.checkpoint import (
    DIFFUSERS_INDEX_NAMES,
    DIFFUSERS_WEIGHT_NAMES,
    KEY_PREFIXES,
    WEIGHT_SUFFIXES,
    WEIGHTS_SOURCE,
    CheckpointError,
    locate_unet,
    read_state_dict,
    reject_foreign_checkpoint,
)
from ..cinemo_core.download import COMFYUI_PARTS, DownloadError, download_cinemo
from .comfy_model import build_model_patcher

FOLDER = "cinemo"
DIFFUSERS_FOLDER = "diffusers"
DIFFUSERS_PREFIX = "diffusers/"
#: The released model folder's name under models/cinemo (what the download entry fills).
DOWNLOAD_FOLDER_NAME = "Cinemo"
#: The model_name entry that downloads; nothing is downloaded unless it is chosen.
DOWNLOAD_ENTRY = "download maxin-cn/Cinemo unet from Hugging Face (if missing)"
#: Listed first when no model is installed, so that the download entry is never preselected on its own.
NO_MODEL_ENTRY = "(no Cinemo model in models/cinemo)"
WEIGHT_DTYPES: dict[str, torch.dtype | None] = {
    "default": None,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp32": torch.float32,
    "fp8_e4m3fn": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}


def register_model_folder() -> None:
    """Make ``models/cinemo`` a ComfyUI model folder (kept if extra_model_paths.yaml already added paths)."""
    default = os.path.join(folder_paths.models_dir, FOLDER)
    if FOLDER in folder_paths.folder_names_and_paths:
        paths, _ = folder_paths.folder_names_and_paths[FOLDER]
        if default not in paths:
            paths.append(default)
    else:
        folder_paths.folder_names_and_paths[FOLDER] = ([default], set(WEIGHT_SUFFIXES))


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


def _folder_paths(name: str) -> list[str]:
    return folder_paths.get_folder_paths(name) if name in folder_paths.folder_names_and_paths else []


def list_models(*, download_entry: bool = True) -> list[str]:
    """The loader's choices: every Cinemo model, as names relative to its model folder, sorted (or
    ``NO_MODEL_ENTRY`` when there is none); then ``DOWNLOAD_ENTRY`` last. ``download_entry=False``: the
    models only."""
    names: list[str] = []
    for root in map(Path, _folder_paths(FOLDER)):
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
    for root in map(Path, _folder_paths(DIFFUSERS_FOLDER)):
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
    candidates = [Path(root) / relative for root in _folder_paths(FOLDER)]
    if name.startswith(DIFFUSERS_PREFIX):
        inner = os.path.relpath(os.path.join("/", name[len(DIFFUSERS_PREFIX):]), "/")
        candidates += [Path(root) / inner for root in _folder_paths(DIFFUSERS_FOLDER)]
    for path in candidates:
        if path.is_file() or (path.is_dir() and _model_folder(path)):
            return path
    return None


def download_folder() -> Path:
    """Where the download entry puts the released folder: ``<first models/cinemo folder>/Cinemo``."""
    roots = _folder_paths(FOLDER) or [os.path.join(folder_paths.models_dir, FOLDER)]
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


class CinemoModelLoader(io.ComfyNode):
    """Loads a Cinemo UNet as a MODEL for KSampler, SamplerCustomAdvanced and the Cinemo sampler."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoModelLoader",
            display_name="Cinemo Model Loader",
            category="Cinemo",
            description=(
                "Loads the Cinemo motion UNet (models/cinemo, or a Cinemo folder in models/diffusers) as a MODEL. "
                f"Weights: {WEIGHTS_SOURCE} (unet/ folder or cinemo.pt)."
            ),
            inputs=[
                io.Combo.Input(
                    "model_name",
                    options=list_models(),
                    tooltip=(
                        "A Cinemo UNet: a weights file or diffusers folder in models/cinemo, the released model "
                        "folder (with unet/), or a Cinemo folder in models/diffusers (listed as diffusers/...). "
                        f"The last entry fetches the released UNet from {WEIGHTS_SOURCE} into "
                        f"models/{FOLDER}/{DOWNLOAD_FOLDER_NAME} when it is not there yet (needs network and "
                        "huggingface_hub); nothing is downloaded unless you pick it."
                    ),
                ),
                io.Combo.Input(
                    "weight_dtype",
                    options=list(WEIGHT_DTYPES),
                    default="default",
                    tooltip=(
                        "How the weights are stored in memory. 'default' lets ComfyUI choose for your device; "
                        "fp8 halves the memory of fp16 and computes in fp16/bf16 (slight quality loss)."
                    ),
                ),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The Cinemo UNet, ready for any sampler.")],
        )

    @classmethod
    def validate_inputs(cls, model_name: str | None = None, weight_dtype: str | None = None) -> bool | str:
        if weight_dtype is not None and weight_dtype not in WEIGHT_DTYPES:
            return f"weight_dtype: {weight_dtype!r} is not one of {', '.join(WEIGHT_DTYPES)}."
        if model_name is None or model_name == DOWNLOAD_ENTRY:
            return True  # the download (or its clear failure) happens when the node runs
        path = resolve_model(model_name)
        if path is None:
            return (
                f"model_name: {model_name!r} is not in models/{FOLDER} (nor a Cinemo folder in models/"
                f"{DIFFUSERS_FOLDER}). Put the Cinemo UNet there ({WEIGHTS_SOURCE}: the whole folder as "
                f"models/{FOLDER}/{DOWNLOAD_FOLDER_NAME}, or its unet/ folder) and refresh, or choose "
                f"{DOWNLOAD_ENTRY!r} to fetch it."
            )
        try:
            quick_check(path)
        except CheckpointError as error:
            return f"model_name: {error}"
        return True

    @classmethod
    def execute(cls, model_name: str, weight_dtype: str = "default") -> io.NodeOutput:
        if model_name == DOWNLOAD_ENTRY:
            try:
                path = download_cinemo(download_folder(), COMFYUI_PARTS)
            except DownloadError as error:
                raise RuntimeError(f"model_name: {error}") from error
        else:
            path = resolve_model(model_name)
        if path is None:
            raise FileNotFoundError(f"model_name: {model_name!r} is not in models/{FOLDER}.")
        try:
            weights, config = locate_unet(path)
            state_dict = read_state_dict(weights)
            patcher = build_model_patcher(
                state_dict, config, weight_dtype=WEIGHT_DTYPES[weight_dtype], source=str(path)
            )
        except CheckpointError as error:
            raise ValueError(f"model_name: {error}") from error
        return io.NodeOutput(patcher)


register_model_folder()
NODES: list[type[io.ComfyNode]] = [CinemoModelLoader]
