"""Host-independent Cinemo: model, checkpoint loading, schedule, DCTInit, motion intensity, sampling and inversion.

Nothing in this package imports ComfyUI.
"""

from .model.checkpoint import (
    CheckpointError,
    CinemoWeightsWarning,
    DamagedCheckpointError,
    NotACinemoUNetError,
    UnsafeCheckpointError,
    build_unet,
    load_unet,
    prepare_unet_state_dict,
)
from .model.config import CinemoUNetConfig
from .sampling.dct_init import INIT_MODES, dct_init, fft_init, init_noise
from .sampling.inversion import edit_init_latents, invert_residual
from .sampling.motion import estimate_intensity, intensity_to_motion_id, raw_motion_id
from .preprocess import fit_image, load_image
from .sampling.sampler import assemble_video_latents, sample_residual, split_video_latents
from .sampling.schedule import CinemoSchedule
from .model.unet import CinemoUNet3D

# The standalone pipeline pulls in diffusers and transformers; import it only when asked for.
_PIPELINE_EXPORTS = {
    "animate": "app.pipeline",
    "AnimationSettings": "app.pipeline",
    "AnimationResult": "app.pipeline",
    "load_components": "model.components",
    "CinemoComponents": "model.components",
    "write_video": "app.video_io",
    "transfer_motion": "app.transfer",
    "TransferSettings": "app.transfer",
    "TransferResult": "app.transfer",
}


def __getattr__(name: str):
    if name in _PIPELINE_EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_PIPELINE_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "INIT_MODES",
    "CheckpointError",
    "CinemoUNet3D",
    "CinemoSchedule",
    "CinemoUNetConfig",
    "CinemoWeightsWarning",
    "DamagedCheckpointError",
    "NotACinemoUNetError",
    "UnsafeCheckpointError",
    "assemble_video_latents",
    "build_unet",
    "dct_init",
    "edit_init_latents",
    "estimate_intensity",
    "fft_init",
    "fit_image",
    "init_noise",
    "intensity_to_motion_id",
    "invert_residual",
    "load_image",
    "load_unet",
    "prepare_unet_state_dict",
    "raw_motion_id",
    "sample_residual",
    "split_video_latents",
]
