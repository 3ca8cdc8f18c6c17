"""ComfyUI adapters for Cinemo (V3 node schema). Each node is a thin wrapper over cinemo_core."""

from comfy_api.latest import ComfyExtension, io


class CinemoExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return []
