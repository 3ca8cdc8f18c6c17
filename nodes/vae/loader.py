"""Cinemo Load Temporal VAE: the released diffusers temporal decoder as ComfyUI's own VAE.

ComfyUI reads SVD's temporal decoder only in SGM keys; the weights are converted and handed to
``comfy.sd.VAE``, so the result works with every core VAE node.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from comfy_api.latest import io

from ...cinemo_core.model.checkpoint import WRAPPER_KEYS, CheckpointError, read_state_dict
from ...cinemo_core.model.components import HF_URL
from ...cinemo_core.model.download import COMFYUI_VAE_PARTS, DownloadError, download_cinemo
from ..comfy_compat import VAE, has_temporal_decoder
from ..model.files import download_folder
from .files import VAE_DOWNLOAD_ENTRY, available_temporal_vaes, list_temporal_vaes, weight_file
from .weights import (
    TemporalVAEFormatError,
    check_svd_architecture,
    convert_temporal_vae_state_dict,
    infer_architecture,
    is_diffusers_temporal_vae,
    is_sgm_temporal_vae,
)


class TemporalVAEFileError(ValueError):
    """A temporal VAE file that cannot be loaded (damaged, unsafe, or not SVD's temporal VAE); names the file."""


def check_weight_values(state_dict: dict[str, torch.Tensor]) -> None:
    """Raise unless every weight is a finite floating-point tensor (torch would copy integers in silently)."""
    for key, value in state_dict.items():
        if not value.is_floating_point():
            raise TemporalVAEFormatError(f"the weight {key!r} is {str(value.dtype).removeprefix('torch.')}, not "
                                         "floating point: this is not a VAE's weights.")
        if not bool(torch.isfinite(value).all()):
            raise TemporalVAEFormatError(f"the weight {key!r} holds NaN or infinite values; the file is damaged, "
                                         "download it again.")


def _build_vae(state_dict: dict[str, torch.Tensor]) -> VAE:
    try:
        return VAE(sd=state_dict)
    except RuntimeError as error:  # load_state_dict's size mismatches
        mismatches = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        if not mismatches:
            raise
        shown = " ".join(mismatches[:3]) + (" ..." if len(mismatches) > 3 else "")
        raise TemporalVAEFormatError(f"{len(mismatches)} weights do not have SVD's temporal VAE's shapes: {shown}") from None


def build_temporal_vae(state_dict: dict[str, torch.Tensor]) -> VAE:
    """A ComfyUI VAE from temporal-VAE weights in diffusers keys (converted here) or SGM keys.

    Raises:
        TemporalVAEFormatError: if the weights are not an SVD-sized temporal VAE, or some are missing, of the
            wrong shape, not floating point or not finite.
    """
    check_weight_values(state_dict)
    if is_diffusers_temporal_vae(state_dict):
        check_svd_architecture(infer_architecture(state_dict))
        state_dict = convert_temporal_vae_state_dict(state_dict)
    elif not is_sgm_temporal_vae(state_dict):
        raise TemporalVAEFormatError(
            "This file is not a temporal-decoder VAE (AutoencoderKLTemporalDecoder in diffusers keys, or SVD's VAE "
            "in SGM keys); for an ordinary VAE use ComfyUI's Load VAE node."
        )
    vae = _build_vae(state_dict)
    if not has_temporal_decoder(vae):
        raise TemporalVAEFormatError("ComfyUI did not build a temporal decoder from these weights.")
    missing = sorted(set(vae.first_stage_model.state_dict()) - set(state_dict))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise TemporalVAEFormatError(f"The temporal VAE lacks {len(missing)} weights ({shown}).")
    return vae


#: Where the README tells users to put the released temporal VAE.
README_PATH = "models/cinemo/Cinemo/vae_temporal_decoder/"


def missing_vae_error(name: str | None) -> str | None:
    """Why ``name`` cannot be loaded (None when it is listed)."""
    found = available_temporal_vaes()
    if name in found:
        return None
    listed = f"the ones found are {', '.join(found)}" if found else "none was found"
    return (
        f"there is no temporal VAE named {name!r} ({listed}). Put the released vae_temporal_decoder "
        f"folder (config.json + diffusion_pytorch_model.safetensors) at {README_PATH} (README: Weight files), "
        f"or a .safetensors of it into models/vae, then press Refresh (R); or choose {VAE_DOWNLOAD_ENTRY!r} "
        "to fetch it."
    )


def download_temporal_vae() -> Path:
    """The released ``vae_temporal_decoder/`` in models/cinemo/Cinemo, fetched first when incomplete there."""
    try:
        root = download_cinemo(download_folder(), COMFYUI_VAE_PARTS)
    except DownloadError as error:
        raise RuntimeError(f"vae_name: {error}") from error
    return root / COMFYUI_VAE_PARTS[0]


def load_temporal_vae(name: str) -> VAE:
    """Load the temporal VAE the loader lists as ``name`` (or the download entry's)."""
    if name == VAE_DOWNLOAD_ENTRY:
        path = weight_file(download_temporal_vae())
    elif error := missing_vae_error(name):
        raise FileNotFoundError(f"vae_name: {error}")
    else:
        path = weight_file(available_temporal_vaes()[name])
    logging.info("Cinemo: loading temporal VAE %s", path)
    try:
        return read_temporal_vae(path)
    except TemporalVAEFileError as error:
        raise TemporalVAEFileError(f"vae_name: {error}") from error


def read_temporal_vae(path: Path) -> VAE:
    """A ComfyUI VAE from one weight file (safetensors, or a pickle read with ``weights_only``).

    Raises:
        TemporalVAEFileError: naming ``path``, for a damaged or unsafe file or weights that are not SVD's
            temporal VAE.
    """
    try:
        state_dict = read_state_dict(Path(path))
    except CheckpointError as error:  # its messages name the file
        raise TemporalVAEFileError(str(error)) from error
    state_dict = next((inner for key in WRAPPER_KEYS if isinstance(inner := state_dict.get(key), dict) and inner),
                      state_dict)
    not_tensors = [key for key, value in state_dict.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise TemporalVAEFileError(f"{path} cannot be loaded as a temporal VAE: the entry {not_tensors[0]!r} is a "
                                   f"{type(state_dict[not_tensors[0]]).__name__}, not a tensor.")
    try:
        return build_temporal_vae(state_dict)
    except TemporalVAEFormatError as error:
        raise TemporalVAEFileError(f"{path} cannot be loaded as a temporal VAE: {error}") from error


class CinemoTemporalVAELoader(io.ComfyNode):
    """Load Cinemo's ``vae_temporal_decoder`` (diffusers format) as a normal ComfyUI VAE."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CinemoTemporalVAELoader",
            display_name="Cinemo Load Temporal VAE",
            category="Cinemo",
            description=(
                "Loads the temporal-decoder VAE Cinemo decodes with (SVD's AutoencoderKLTemporalDecoder), which "
                "ComfyUI's Load VAE cannot read in diffusers format. Lists diffusers folders (config.json + "
                "diffusion_pytorch_model.safetensors, e.g. Cinemo/vae_temporal_decoder) and single safetensors "
                "files under models/cinemo and models/vae. The VAE works with all VAE nodes; decode clips with "
                "Cinemo Temporal VAE Decode to keep the official 14-frame chunks."
            ),
            inputs=[
                io.Combo.Input(
                    "vae_name",
                    options=list_temporal_vaes(),
                    tooltip="A temporal VAE under models/cinemo or models/vae: a diffusers folder such as "
                    "Cinemo/vae_temporal_decoder, or a .safetensors file of its weights. The last entry fetches "
                    f"the released vae_temporal_decoder/ from {HF_URL} into "
                    "models/cinemo/Cinemo when it is not there yet (needs network and huggingface_hub); nothing "
                    "is downloaded unless you pick it.",
                ),
            ],
            outputs=[io.Vae.Output(display_name="vae", tooltip="The temporal VAE, usable by any VAE node.")],
        )

    @classmethod
    def validate_inputs(cls, vae_name: str | None = None) -> bool | str:
        # named, so ComfyUI leaves the (possibly empty) list to this check; it prefixes the input's name
        if vae_name is None or vae_name == VAE_DOWNLOAD_ENTRY:
            return True  # the download (or its clear failure) happens when the node runs
        return missing_vae_error(vae_name) or True

    @classmethod
    def execute(cls, vae_name: str) -> io.NodeOutput:
        return io.NodeOutput(load_temporal_vae(vae_name))


NODES: list[type[io.ComfyNode]] = [CinemoTemporalVAELoader]
