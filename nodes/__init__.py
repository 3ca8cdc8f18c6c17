"""ComfyUI adapters for Cinemo (V3 node schema): one node per module, each a thin wrapper over cinemo_core."""

from comfy_api.latest import ComfyExtension, io

from . import (
    conditioning,
    context_windows,
    first_frame,
    init_noise,
    invert_motion,
    keep_still,
    last_frame,
    loop,
    motion,
    residual_to_frames,
    sampler,
    scheduler,
    video_encode,
)
from .model import loader as model_loader
from .vae import decode as temporal_vae_decode
from .vae import loader as temporal_vae_loader

NODE_MODULES = (
    model_loader, first_frame, conditioning, init_noise, scheduler, sampler, residual_to_frames,
    temporal_vae_loader, temporal_vae_decode, motion, video_encode, invert_motion, last_frame,
    context_windows, loop, keep_still,
)


class CinemoExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [node for module in NODE_MODULES for node in module.NODES]
