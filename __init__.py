"""ComfyUI entry point of the Cinemo node pack.

Only this file knows it is loaded by ComfyUI. The nodes live in ``nodes/`` and all of the model and
sampling logic in ``cinemo_core/``; importing this package without ComfyUI installed is harmless.
"""


async def comfy_entrypoint():
    from .nodes import CinemoExtension

    return CinemoExtension()
