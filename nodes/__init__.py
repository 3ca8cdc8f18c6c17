"""ComfyUI adapters for Cinemo (V3 node schema). Each node is a thin wrapper over cinemo_core."""

from comfy_api.latest import ComfyExtension, io

from . import conditioning, first_frame, model_loader, motion, sampling, temporal_vae

NODE_MODULES = (model_loader, first_frame, conditioning, sampling, temporal_vae, motion)


class CinemoExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [node for module in NODE_MODULES for node in module.NODES]
