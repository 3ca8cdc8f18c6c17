"""Host-independent Cinemo: model, checkpoint loading, schedule, DCTInit, motion intensity and sampling.

Nothing in this package imports ComfyUI.
"""

from .checkpoint import (
    CheckpointError,
    CinemoWeightsWarning,
    DamagedCheckpointError,
    NotACinemoUNetError,
    UnsafeCheckpointError,
    build_unet,
    load_unet,
)
from .config import CinemoUNetConfig
from .unet import CinemoUNet3D

__all__ = [
    "CheckpointError",
    "CinemoUNet3D",
    "CinemoUNetConfig",
    "CinemoWeightsWarning",
    "DamagedCheckpointError",
    "NotACinemoUNetError",
    "UnsafeCheckpointError",
    "build_unet",
    "load_unet",
]
