"""Cinemo Model Loader: a Cinemo UNet from ComfyUI's model folders as a native MODEL."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ...cinemo_core.model.checkpoint import WEIGHTS_SOURCE, CheckpointError, locate_unet, read_state_dict
from ...cinemo_core.model.download import COMFYUI_PARTS, DownloadError, download_cinemo
from .base_model import build_model_patcher
from .files import (
    DIFFUSERS_FOLDER,
    DOWNLOAD_ENTRY,
    DOWNLOAD_FOLDER_NAME,
    FOLDER,
    download_folder,
    list_models,
    quick_check,
    register_cinemo_folder,
    resolve_model,
)

WEIGHT_DTYPES: dict[str, torch.dtype | None] = {
    "default": None,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp32": torch.float32,
    "fp8_e4m3fn": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}


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
                        "huggingface_hub); nothing is downloaded unless you pick it. Cinemo Load Temporal VAE has "
                        "the same entry for the vae_temporal_decoder/ every workflow also needs."
                    ),
                ),
                io.Combo.Input(
                    "weight_dtype",
                    options=list(WEIGHT_DTYPES),
                    default="default",
                    tooltip=(
                        "How the weights are stored in memory. 'default' lets ComfyUI choose for your device (on a CPU with "
                        "AVX512-BF16 or AMX: bf16, about 3x faster than fp32; fp32 forces float32); "
                        "fp8 halves the memory of fp16 and computes in fp16/bf16 (slight quality loss)."
                    ),
                ),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The Cinemo UNet, ready for any sampler.")],
        )

    @classmethod
    def validate_inputs(cls, model_name: str | None = None) -> bool | str:
        # ComfyUI attaches the message to model_name and prefixes it with the input's name
        if model_name is None or model_name == DOWNLOAD_ENTRY:
            return True  # the download (or its clear failure) happens when the node runs
        path = resolve_model(model_name)
        if path is None:
            return (
                f"{model_name!r} is not in models/{FOLDER} (nor a Cinemo folder in models/{DIFFUSERS_FOLDER}). "
                f"Put the Cinemo UNet there ({WEIGHTS_SOURCE}: the whole folder as models/{FOLDER}/"
                f"{DOWNLOAD_FOLDER_NAME}, or its unet/ folder) and refresh, or choose {DOWNLOAD_ENTRY!r} to fetch it."
            )
        try:
            quick_check(path)
        except CheckpointError as error:
            return str(error)
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


register_cinemo_folder()
NODES: list[type[io.ComfyNode]] = [CinemoModelLoader]
