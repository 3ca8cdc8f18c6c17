"""The node schemas the example workflows rely on, as a JSON snapshot taken from a real ComfyUI.

``python workflows/tools/node_schemas.py`` (with ComfyUI's Python and ``COMFYUI_PATH`` set) boots ComfyUI in
process with this pack, reads ``/object_info``'s view of every node type below and writes
``tests/fixtures/node_schemas.json``. The workflow generator and the no-ComfyUI tests read that snapshot; a
ComfyUI-side test asserts that it still equals the live schemas.

Normal form of one node type: ``{"inputs": [...], "outputs": [{"name", "type"}]}``, each input
``{"name", "type", "optional", "widget", "control_after_generate", "upload", "options", "min", "max",
"default"}`` in the frontend's order (required, then optional). Combos that list files (models, input images
and videos) keep no options and no default: they depend on the machine. Node ids, input names and defaults
are what saved workflows rely on, so the snapshot pins them too.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = REPO / "tests" / "fixtures" / "node_schemas.json"

#: Core node types the workflows use (``Note`` is a frontend-only node: no schema).
CORE_TYPES = (
    "LoadImage", "LoadVideo", "GetVideoComponents", "CLIPLoader", "CLIPTextEncode", "VAELoader", "VAEDecode",
    "KSamplerSelect", "CFGGuider", "SamplerCustomAdvanced", "ImageStitch", "ImageFromBatch", "ImageBatch",
    "SaveAnimatedWEBP", "CreateVideo", "SaveVideo", "PreviewAny",
)
#: Our node types (all of them, so the snapshot also guards node_list.json's ids).
CINEMO_TYPES = (
    "CinemoModelLoader", "CinemoFirstFrameEncode", "CinemoConditioning", "CinemoInitNoise", "CinemoScheduler",
    "CinemoSampler", "CinemoResidualToFrames", "CinemoTemporalVAELoader", "CinemoTemporalVAEDecode",
    "CinemoMotionFromVideo", "CinemoVideoEncode", "CinemoInvertMotion", "CinemoLastFrame",
    "CinemoContextWindows", "CinemoSeamlessLoop", "CinemoKeepStill",
)
#: Combos whose options are file lists.
FILE_COMBOS = {
    ("LoadImage", "image"), ("LoadVideo", "file"), ("CLIPLoader", "clip_name"), ("VAELoader", "vae_name"),
    ("CinemoModelLoader", "model_name"), ("CinemoTemporalVAELoader", "vae_name"),
}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def normalize(node_type: str, info: dict) -> dict:
    """One ``/object_info`` entry in the normal form above."""
    inputs = []
    for section in ("required", "optional"):
        spec = info["input"].get(section, {})
        order = info.get("input_order", {}).get(section, list(spec))
        for name in order:
            entry = spec[name]
            kind, options = entry[0], (entry[1] if len(entry) > 1 else {}) or {}
            choices = None
            if isinstance(kind, list):
                kind, choices = "COMBO", list(kind)
            elif kind == "COMBO":
                choices = list(options.get("options", []))
            if (node_type, name) in FILE_COMBOS:
                choices = None
            upload = next((key.split("_")[0] for key in ("image_upload", "video_upload", "audio_upload")
                           if options.get(key)), None)
            inputs.append({
                "name": name,
                "type": kind,
                "optional": section == "optional",
                "widget": kind in WIDGET_TYPES and not options.get("forceInput", False),
                "control_after_generate": bool(options.get("control_after_generate"))
                or (kind == "INT" and name in ("seed", "noise_seed")),
                "upload": upload,
                "options": choices,
                "min": options.get("min") if kind in ("INT", "FLOAT") else None,
                "max": options.get("max") if kind in ("INT", "FLOAT") else None,
                "default": None if (node_type, name) in FILE_COMBOS else options.get("default"),
            })
    names = info.get("output_name") or info["output"]
    outputs = [{"name": name, "type": kind} for name, kind in zip(names, info["output"])]
    return {"inputs": inputs, "outputs": outputs, "output_node": bool(info.get("output_node"))}


def object_info(node_class, node_type: str) -> dict:
    """What ComfyUI's ``/object_info`` returns for one node class (server.py's ``node_info``)."""
    from comfy_api.internal import _ComfyNodeInternal

    if issubclass(node_class, _ComfyNodeInternal):
        return node_class.GET_NODE_INFO_V1()
    spec = node_class.INPUT_TYPES()
    return {
        "input": spec,
        "input_order": {key: list(value) for key, value in spec.items()},
        "output": list(node_class.RETURN_TYPES),
        "output_name": list(getattr(node_class, "RETURN_NAMES", node_class.RETURN_TYPES)),
        "output_node": bool(getattr(node_class, "OUTPUT_NODE", False)),
    }


def live_schemas(node_classes: dict) -> dict:
    """The normal form of every snapshotted type, from a booted ComfyUI's NODE_CLASS_MAPPINGS."""
    return {
        node_type: normalize(node_type, object_info(node_classes[node_type], node_type))
        for node_type in (*CORE_TYPES, *CINEMO_TYPES) if node_type in node_classes
    }


def load_snapshot() -> dict:
    return json.loads(SNAPSHOT.read_text())


def main() -> None:
    comfy = os.environ.get("COMFYUI_PATH")
    if not comfy:
        sys.exit("Set COMFYUI_PATH and run with ComfyUI's Python.")
    sys.path.insert(0, str(REPO / "tests"))
    from comfyui_harness import boot_comfyui

    booted = boot_comfyui(Path(comfy), Path(tempfile.mkdtemp()))
    schemas = live_schemas(booted.node_classes)
    missing = set(CORE_TYPES + CINEMO_TYPES) - set(schemas)
    if missing:
        sys.exit(f"Node types missing from this ComfyUI: {sorted(missing)}")
    SNAPSHOT.write_text(json.dumps(schemas, indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT} ({len(schemas)} node types)")


if __name__ == "__main__":
    main()
