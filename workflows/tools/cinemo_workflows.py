"""The example workflows, described once in Python and written in both formats.

``python workflows/tools/cinemo_workflows.py`` writes ``workflows/<title>.json`` (UI format: what users drag
into ComfyUI; its template browser shows the file name, hence a title a person reads) and
``workflows/api/<name>.json`` (API format, for ``POST /prompt``). Widget orders, input slots and output names come from the schema snapshot
``tests/fixtures/node_schemas.json`` (see ``node_schemas.py``). ``--check`` only compares.
"""

from __future__ import annotations

import json
import math
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_schemas import REPO, load_snapshot  # noqa: E402

WORKFLOWS_DIR = REPO / "workflows"
API_DIR = WORKFLOWS_DIR / "api"

#: Model and input file names, as the README tells users to name them.
UNET = "Cinemo"                                          # models/cinemo/Cinemo/ (the whole hf download)
TEMPORAL_VAE = "Cinemo/vae_temporal_decoder"             # the same download, through Cinemo Load Temporal VAE
CLIP_L = "clip_l.safetensors"                            # models/text_encoders/
SD_VAE = "vae-ft-mse-840000-ema-pruned.safetensors"      # models/vae/
IMAGE = "example.png"                                    # ComfyUI's own input/example.png
REFERENCE_VIDEO = "reference_clip.mp4"                   # input/, any short clip
SOURCE_VIDEO = "source_clip.mp4"                         # input/, the clip whose motion is transferred
EDITED_IMAGE = "edited_first_frame.png"                  # input/, the source's first frame, edited
LAST_IMAGE = "last_frame.png"                            # input/, the picture the video ends on
PROMPT = "a beautiful scene, gentle natural motion, high quality"
SOURCE_PROMPT = "a short clip of a scene with natural motion"
SEED = 42
FPS = 8.0  # Cinemo's clips are 8 fps

COLUMN = 360
MODELS_NOTE = f"""Cinemo weights (https://huggingface.co/maxin-cn/Cinemo):
- models/cinemo/Cinemo/  <- the whole download (hf download maxin-cn/Cinemo --local-dir ComfyUI/models/cinemo/Cinemo); Cinemo Model Loader lists it as "{UNET}", Cinemo Load Temporal VAE lists "{TEMPORAL_VAE}"
- models/text_encoders/{CLIP_L}  <- SD 1.x CLIP-L text encoder (e.g. Cinemo's text_encoder/model.safetensors, renamed)

Decoding uses Cinemo's temporal VAE (vae_temporal_decoder), as the official code and the paper's videos do: it decodes each clip in chunks of 14 frames that see each other, which removes the frame-to-frame flicker of decoding frames one by one. To save VRAM, replace Cinemo Load Temporal VAE with Load VAE (SD 1.x VAE, {SD_VAE}) and Cinemo Temporal VAE Decode with VAE Decode: it then decodes frame by frame (some flicker).
"""
@dataclass(frozen=True)
class Out:
    """Output ``slot`` of node ``node``."""

    node: int
    slot: int = 0


@dataclass
class Node:
    id: int
    type: str
    values: dict          # widget name -> value, or input name -> Out
    pos: tuple[float, float]
    title: str | None = None
    control: str = "fixed"
    fallbacks: dict = field(default_factory=dict)   # values kept by widgets that a link feeds
    size: tuple[float, float] | None = None


@dataclass
class Graph:
    name: str
    description: str
    note: str
    schemas: dict
    nodes: list[Node] = field(default_factory=list)

    def add(self, node_type: str, col: float, row: float, title: str | None = None, fallbacks: dict | None = None,
            **values) -> Node:
        if node_type != "Note":
            schema = self.schemas[node_type]
            known = {entry["name"] for entry in schema["inputs"]}
            unknown = set(values) - known
            if unknown:
                raise ValueError(f"{node_type} has no inputs {sorted(unknown)}")
            missing = [e["name"] for e in schema["inputs"]
                       if not e["optional"] and e["name"] not in values]
            if missing:
                raise ValueError(f"{self.name}: {node_type} needs {missing}")
            # optional widgets show their default in the frontend, which exports it
            values = {**{e["name"]: e["default"] for e in schema["inputs"]
                         if e["widget"] and e["optional"] and e.get("default") is not None}, **values}
        node = Node(len(self.nodes) + 1, node_type, values, (col * COLUMN, row), title, fallbacks=fallbacks or {})
        self.nodes.append(node)
        return node

    def out(self, node: Node, slot: int = 0) -> Out:
        return Out(node.id, slot)


# ---------------------------------------------------------------------------------------------- formats


def _estimate_size(schema: dict, linked_widgets: int) -> tuple[int, int]:
    slots = max(sum(not e["widget"] for e in schema["inputs"]) + linked_widgets, len(schema["outputs"]))
    widgets = sum(e["widget"] + e["control_after_generate"] + bool(e["upload"]) for e in schema["inputs"])
    return 320, 30 + 22 * slots + 26 * widgets


#: Layout in the frontend's canvas units: the title bar sits above a node's pos; the gap keeps titles and badges
#: clear of the node above.
TITLE_HEIGHT = 30
NODE_GAP = 40
#: Load Image and Load Video show the picture or clip below their widgets: room for a preview.
PREVIEW_NODE_SIZE = (320, 380)
PREVIEW_TYPES = ("LoadImage", "LoadVideo")
#: The Note spans the first two columns; its text (the frontend's textarea: 10 px type, about 5.6 px a character
#: on average and 13 px a line, measured in frontend 1.27 with Chromium) must fit without scrolling.
NOTE_WIDTH = 2 * COLUMN - 40
NOTE_CHAR_WIDTH = 5.6
NOTE_LINE_HEIGHT = 13
NOTE_PADDING = 40


def note_size(text: str, width: int = NOTE_WIDTH) -> tuple[int, int]:
    """A Note's size that shows all of ``text``: lines wrapped at the width's characters, plus padding."""
    per_line = max(1, int((width - 24) / NOTE_CHAR_WIDTH))
    lines = sum(max(1, math.ceil(len(line) / per_line)) for line in text.split("\n"))
    return width, NOTE_PADDING + NOTE_LINE_HEIGHT * lines


def node_size(graph: Graph, node: Node) -> tuple[int, int]:
    """The size a node is saved with: given, the Note's text, room for a preview, or estimated from its schema."""
    if node.size:
        return node.size
    if node.type == "Note":
        return note_size(node.values["text"])
    if node.type in PREVIEW_TYPES:
        return PREVIEW_NODE_SIZE
    schema = graph.schemas[node.type]
    linked_widgets = sum(1 for e in schema["inputs"] if e["widget"] and isinstance(node.values.get(e["name"]), Out))
    return _estimate_size(schema, linked_widgets)


def lay_out(graph: Graph) -> dict[int, tuple[list[float], list[int]]]:
    """{node id: (pos, size)}: each column's nodes keep their order but move down until none overlaps the one above
    (title bar and badges included); the Note sits above the graph."""
    placed: dict[int, tuple[list[float], list[int]]] = {}
    columns: dict[float, list[Node]] = {}
    for node in graph.nodes:
        if node.type != "Note":
            columns.setdefault(node.pos[0], []).append(node)
    top = 0.0
    for column in columns.values():
        bottom = None
        for node in sorted(column, key=lambda n: n.pos[1]):
            size = node_size(graph, node)
            y = node.pos[1] if bottom is None else max(node.pos[1], bottom + NODE_GAP + TITLE_HEIGHT)
            placed[node.id] = ([node.pos[0], y], list(size))
            bottom = y + size[1]
            top = min(top, y)
    for node in graph.nodes:
        if node.type == "Note":
            size = node_size(graph, node)
            placed[node.id] = ([node.pos[0], top - TITLE_HEIGHT - NODE_GAP - size[1]], list(size))
    return placed


def to_ui(graph: Graph) -> dict:
    """The frontend's workflow format (version 0.4)."""
    layout = lay_out(graph)
    links: list[list] = []
    ui_nodes = []
    inbound: dict[tuple[int, str], int] = {}
    outbound: dict[tuple[int, int], list[int]] = {}
    by_id = {node.id: node for node in graph.nodes}
    for node in graph.nodes:
        if node.type == "Note":
            continue
        for entry in graph.schemas[node.type]["inputs"]:
            value = node.values.get(entry["name"])
            if isinstance(value, Out):
                source = by_id[value.node]
                kind = graph.schemas[source.type]["outputs"][value.slot]["type"]
                link_id = len(links) + 1
                target_slot = _ui_input_names(graph.schemas[node.type], node).index(entry["name"])
                links.append([link_id, value.node, value.slot, node.id, target_slot, kind])
                inbound[(node.id, entry["name"])] = link_id
                outbound.setdefault((value.node, value.slot), []).append(link_id)
    for order, node in enumerate(graph.nodes):
        if node.type == "Note":
            ui_nodes.append({
                "id": node.id, "type": "Note", "pos": layout[node.id][0], "size": layout[node.id][1], "flags": {},
                "order": order, "mode": 0, "inputs": [], "outputs": [], "title": node.title or "Note",
                "properties": {}, "widgets_values": [node.values["text"]], "color": "#432", "bgcolor": "#653",
            })
            continue
        schema = graph.schemas[node.type]
        inputs = []
        for name in _ui_input_names(schema, node):
            entry = next(e for e in schema["inputs"] if e["name"] == name)
            slot = {"name": name, "type": entry["type"], "link": inbound.get((node.id, name))}
            if entry["widget"]:
                slot["widget"] = {"name": name}
            inputs.append(slot)
        outputs = [
            {"name": out["name"], "type": out["type"], "links": outbound.get((node.id, index), [])}
            for index, out in enumerate(schema["outputs"])
        ]
        widgets_values = []
        for entry in schema["inputs"]:
            if not entry["widget"]:
                continue
            value = node.values.get(entry["name"])
            widgets_values.append(node.fallbacks[entry["name"]] if isinstance(value, Out) else value)
            if entry["control_after_generate"]:
                widgets_values.append(node.control)
            if entry["upload"]:
                widgets_values.append("image")
        item = {
            "id": node.id, "type": node.type, "pos": layout[node.id][0], "size": layout[node.id][1], "flags": {},
            "order": order,
            "mode": 0, "inputs": inputs, "outputs": outputs, "properties": {"Node name for S&R": node.type},
            "widgets_values": widgets_values,
        }
        if node.title:
            item["title"] = node.title
        ui_nodes.append(item)
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cinemo-workflow/{graph.name}")),
        "revision": 0,
        "last_node_id": max(node.id for node in graph.nodes),
        "last_link_id": len(links),
        "nodes": ui_nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.75, "offset": [40, 40]}, "cinemo": {"description": graph.description}},
        "version": 0.4,
    }


def _ui_input_names(schema: dict, node: Node) -> list[str]:
    """Input slots of a node as frontend 1.27 orders them: link inputs, then one socket per widget."""
    return [e["name"] for e in schema["inputs"] if not e["widget"]] + [e["name"] for e in schema["inputs"] if e["widget"]]


def to_api(graph: Graph) -> dict:
    """The API (prompt) format: Note nodes dropped, control_after_generate and upload buttons not included."""
    prompt = {}
    for node in graph.nodes:
        if node.type == "Note":
            continue
        inputs = {}
        for entry in graph.schemas[node.type]["inputs"]:
            if entry["name"] not in node.values:
                continue
            value = node.values[entry["name"]]
            inputs[entry["name"]] = [str(value.node), value.slot] if isinstance(value, Out) else value
        prompt[str(node.id)] = {"inputs": inputs, "class_type": node.type, "_meta": {"title": node.title or node.type}}
    return prompt


# -------------------------------------------------------------------------------------------- workflows


def _common(g: Graph, image: str = IMAGE, image_title: str | None = None):
    """Loaders, prompt and first frame: returns (model, positive, negative, vae, first frame, image)."""
    g.add("Note", 0, -260, title="Read me", text=g.note)
    clip = g.add("CLIPLoader", 0, 0, clip_name=CLIP_L, type="stable_diffusion", device="default")
    pos = g.add("CLIPTextEncode", 1, 0, title="Prompt", text=PROMPT, clip=g.out(clip))
    neg = g.add("CLIPTextEncode", 1, 260, title="Negative prompt", text="", clip=g.out(clip))
    model = g.add("CinemoModelLoader", 0, 180, model_name=UNET, weight_dtype="default")
    vae = g.add("CinemoTemporalVAELoader", 0, 320, vae_name=TEMPORAL_VAE)
    img = g.add("LoadImage", 0, 440, title=image_title, image=image)
    first = g.add("CinemoFirstFrameEncode", 1, 480, image=g.out(img), vae=g.out(vae), width=512, height=320)
    return model, pos, neg, vae, first, img


def _conditioning(g: Graph, col, row, model, pos, neg, first, title=None, intensity=9, first_slot=0, frames=16):
    return g.add("CinemoConditioning", col, row, title=title, positive=g.out(pos), negative=g.out(neg),
                 first_frame=g.out(first, first_slot), intensity=intensity, frames=frames, raw_motion_id=-1.0,
                 model=g.out(model))


def _sampler(g: Graph, col, row, model, cond, first, title=None, seed=SEED):
    return g.add("CinemoSampler", col, row, title=title, model=g.out(model), positive=g.out(cond, 0),
                 negative=g.out(cond, 1), latent_image=g.out(cond, 2), first_frame=g.out(first), seed=seed,
                 steps=50, cfg=7.5, sampler_name="ddim", scheduler="cinemo_ddim", dct_init=True, low_pass=0.23,
                 noise_timestep=975)


def _decode(g: Graph, col, row, sample, first, vae, title=None):
    """Residual + first frame -> frames (they carry their clip length) -> the temporal decoder, 14 at a time."""
    frames = g.add("CinemoResidualToFrames", col, row, residual=g.out(sample), first_frame=g.out(first))
    return g.add("CinemoTemporalVAEDecode", col + 1, row, title=title, vae=g.out(vae), samples=g.out(frames),
                 frames_per_clip=16, chunk_size=14)


# Each format gets its own prefix: ComfyUI numbers files per prefix, so a WEBP and an MP4 sharing one would
# come out as _00001_.webp and _00002_.mp4 from the same run.
def _save_webp(g: Graph, col, row, images, prefix):
    return g.add("SaveAnimatedWEBP", col, row, images=g.out(images), filename_prefix=f"{prefix}_webp", fps=FPS,
                 lossless=False, quality=90, method="default")


def _save_mp4(g: Graph, col, row, images, prefix):
    video = g.add("CreateVideo", col, row, images=g.out(images), fps=FPS)
    return g.add("SaveVideo", col, row + 140, video=g.out(video), filename_prefix=f"{prefix}_mp4", format="mp4",
                 codec="h264")


def _custom_sampling(g: Graph, col, row, model, cond, noise, cfg=7.5, title=None):
    """SamplerCustomAdvanced with the paper's sampler: Cinemo Scheduler (50 steps) and ddim."""
    sigmas = g.add("CinemoScheduler", col - 1, row + 620, steps=50)
    sampler = g.add("KSamplerSelect", col - 1, row + 720, sampler_name="ddim")
    guider = g.add("CFGGuider", col, row, model=g.out(model), positive=g.out(cond, 0), negative=g.out(cond, 1), cfg=cfg)
    return g.add("SamplerCustomAdvanced", col, row + 200, title=title, noise=g.out(noise), guider=g.out(guider),
                 sampler=g.out(sampler), sigmas=g.out(sigmas), latent_image=g.out(cond, 2))


def image_to_video(g: Graph) -> None:
    model, pos, neg, vae, first, _ = _common(g)
    cond = _conditioning(g, 2, 0, model, pos, neg, first)
    sample = _sampler(g, 3, 0, model, cond, first)
    images = _decode(g, 4, 0, sample, first, vae)
    _save_webp(g, 6, 0, images, "cinemo/image_to_video")
    _save_mp4(g, 6, 420, images, "cinemo/image_to_video")


def paper_exact(g: Graph) -> None:
    model, pos, neg, vae, first, _ = _common(g)
    cond = _conditioning(g, 2, 0, model, pos, neg, first)
    noise = g.add("CinemoInitNoise", 2, 360, first_frame=g.out(first), seed=SEED, low_pass=0.23,
                  noise_timestep=975, mode="dct")
    sample = _custom_sampling(g, 3, 0, model, cond, noise)
    images = _decode(g, 4, 0, sample, first, vae)
    _save_webp(g, 6, 0, images, "cinemo/paper_exact")
    _save_mp4(g, 6, 420, images, "cinemo/paper_exact")


def _stitch_three(g: Graph, col, row, a, b, c):
    ab = g.add("ImageStitch", col, row, image1=g.out(a), image2=g.out(b), direction="right",
               match_image_size=True, spacing_width=8, spacing_color="white")
    return g.add("ImageStitch", col, row + 260, image1=g.out(ab), image2=g.out(c), direction="right",
                 match_image_size=True, spacing_width=8, spacing_color="white")


def motion_intensities(g: Graph) -> None:
    model, pos, neg, vae, first, _ = _common(g)
    decoded = []
    for index, intensity in enumerate((3, 9, 15)):
        row = index * 420
        cond = _conditioning(g, 2, row, model, pos, neg, first, title=f"Conditioning: intensity {intensity}",
                             intensity=intensity)
        sample = _sampler(g, 3, row, model, cond, first, title=f"Sampler: intensity {intensity}")
        decoded.append(_decode(g, 4, row, sample, first, vae, title=f"Decode: intensity {intensity}"))
    side_by_side = _stitch_three(g, 6, 0, *decoded)
    _save_webp(g, 7, 0, side_by_side, "cinemo/intensity_3_9_15")


def init_comparison(g: Graph) -> None:
    model, pos, neg, vae, first, _ = _common(g)
    cond = _conditioning(g, 2, 0, model, pos, neg, first)
    sigmas = g.add("CinemoScheduler", 2, 400, steps=50)
    sampler = g.add("KSamplerSelect", 2, 500, sampler_name="ddim")
    guider = g.add("CFGGuider", 2, 600, model=g.out(model), positive=g.out(cond, 0), negative=g.out(cond, 1), cfg=7.5)
    decoded = []
    for index, (mode, label) in enumerate((("dct", "DCTInit"), ("fft", "FFT init"), ("plain", "plain noise"))):
        row = index * 380
        noise = g.add("CinemoInitNoise", 3, row, title=f"Init noise: {label}", first_frame=g.out(first), seed=SEED,
                      low_pass=0.23, noise_timestep=975, mode=mode)
        sample = g.add("SamplerCustomAdvanced", 4, row, title=f"Sample: {label}", noise=g.out(noise),
                       guider=g.out(guider), sampler=g.out(sampler), sigmas=g.out(sigmas), latent_image=g.out(cond, 2))
        decoded.append(_decode(g, 5, row, sample, first, vae, title=f"Decode: {label}"))
    side_by_side = _stitch_three(g, 7, 0, *decoded)
    _save_webp(g, 8, 0, side_by_side, "cinemo/dct_fft_plain")


def chained_clips(g: Graph) -> None:
    model, pos, neg, vae, first, _ = _common(g)
    cond = _conditioning(g, 2, 0, model, pos, neg, first, title="Conditioning: clip 1")
    sample = _sampler(g, 3, 0, model, cond, first, title="Sampler: clip 1")
    clip1 = _decode(g, 4, 0, sample, first, vae, title="Decode: clip 1")
    last = g.add("CinemoLastFrame", 1, 760, title="Last frame of clip 1 (its latent: no drift)",
                 residual=g.out(sample), first_frame=g.out(first))
    cond2 = _conditioning(g, 2, 720, model, pos, neg, last, title="Conditioning: clip 2")
    sample2 = _sampler(g, 3, 720, model, cond2, last, title="Sampler: clip 2", seed=SEED + 1)
    clip2 = _decode(g, 4, 720, sample2, last, vae, title="Decode: clip 2")
    rest = g.add("ImageFromBatch", 6, 720, title="Clip 2 without its first frame", image=g.out(clip2), batch_index=1,
                 length=4096)
    joined = g.add("ImageBatch", 7, 360, title="Clip 1 + clip 2", image1=g.out(clip1), image2=g.out(rest))
    _save_mp4(g, 8, 360, joined, "cinemo/chained")


def motion_from_video(g: Graph) -> None:
    model, pos, neg, vae, first, _ = _common(g)
    video = g.add("LoadVideo", 2, 560, title="Reference clip", file=REFERENCE_VIDEO)
    parts = g.add("GetVideoComponents", 2, 900, video=g.out(video))
    motion = g.add("CinemoMotionFromVideo", 3, 560, images=g.out(parts), frame_step=1)
    g.add("PreviewAny", 4, 560, title="Measured intensity", source=g.out(motion))
    cond = g.add("CinemoConditioning", 3, 0, fallbacks={"intensity": 9}, positive=g.out(pos), negative=g.out(neg),
                 first_frame=g.out(first), intensity=g.out(motion), frames=16, raw_motion_id=-1.0, model=g.out(model))
    sample = _sampler(g, 4, 0, model, cond, first)
    images = _decode(g, 5, 0, sample, first, vae)
    _save_mp4(g, 7, 0, images, "cinemo/motion_from_video")


def motion_transfer(g: Graph) -> None:
    model, pos, neg, vae, first, _ = _common(g, image=EDITED_IMAGE, image_title="Edited first frame")
    video = g.add("LoadVideo", 0, 760, title="Source clip", file=SOURCE_VIDEO)
    parts = g.add("GetVideoComponents", 0, 1080, video=g.out(video))
    source = g.add("CinemoVideoEncode", 1, 760, images=g.out(parts), vae=g.out(vae), width=512, height=320,
                   frames=16, frame_step=1)
    clip = next(node for node in g.nodes if node.type == "CLIPLoader")
    source_pos = g.add("CLIPTextEncode", 1, 1080, title="Source prompt", text=SOURCE_PROMPT, clip=g.out(clip))
    source_cond = _conditioning(g, 2, 760, model, source_pos, neg, source, title="Conditioning: source clip")
    inverted = g.add("CinemoInvertMotion", 3, 760, model=g.out(model), positive=g.out(source_cond, 0),
                     negative=g.out(source_cond, 1), residual=g.out(source, 1), steps=50, cfg=1.0)
    cond = _conditioning(g, 2, 0, model, pos, neg, first, title="Conditioning: edited first frame")
    noise = g.add("CinemoInitNoise", 3, 360, first_frame=g.out(first), seed=SEED, low_pass=0.23,
                  noise_timestep=975, mode="dct", inverted_motion=g.out(inverted), inverted_noise_timestep=985)
    sample = _custom_sampling(g, 4, 0, model, cond, noise, cfg=1.0, title="Sample with the source's motion")
    images = _decode(g, 5, 0, sample, first, vae)
    _save_webp(g, 7, 0, images, "cinemo/motion_transfer")
    _save_mp4(g, 7, 420, images, "cinemo/motion_transfer")


def long_video(g: Graph) -> None:
    model, pos, neg, vae, first, _ = _common(g)
    windows = g.add("CinemoContextWindows", 1, 760, model=g.out(model), window_frames=16, overlap=4,
                    schedule="standard_uniform", fuse_method="relative")
    cond = _conditioning(g, 2, 0, model, pos, neg, first, frames=64)
    sample = _sampler(g, 3, 0, windows, cond, first)
    images = _decode(g, 4, 0, sample, first, vae)
    _save_webp(g, 6, 0, images, "cinemo/long_video")
    _save_mp4(g, 6, 420, images, "cinemo/long_video")


def seamless_loop(g: Graph) -> None:
    model, pos, neg, vae, first, _ = _common(g)
    looped = g.add("CinemoSeamlessLoop", 1, 760, model=g.out(model), ramp_frames=0)
    cond = _conditioning(g, 2, 0, model, pos, neg, first)
    sample = _sampler(g, 3, 0, looped, cond, first)
    images = _decode(g, 4, 0, sample, first, vae)
    _save_webp(g, 6, 0, images, "cinemo/loop")
    _save_mp4(g, 6, 420, images, "cinemo/loop")


def first_and_last_frame(g: Graph) -> None:
    model, pos, neg, vae, first, _ = _common(g, image_title="First frame")
    last_image = g.add("LoadImage", 0, 800, title="Last frame", image=LAST_IMAGE)
    last = g.add("CinemoFirstFrameEncode", 1, 800, title="Last Frame Encode", image=g.out(last_image),
                 vae=g.out(vae), width=512, height=320)
    cond = g.add("CinemoConditioning", 2, 0, positive=g.out(pos), negative=g.out(neg), first_frame=g.out(first),
                 intensity=9, frames=16, raw_motion_id=-1.0, model=g.out(model), end_frame=g.out(last))
    sample = _sampler(g, 3, 0, model, cond, first)
    images = _decode(g, 4, 0, sample, first, vae)
    _save_webp(g, 6, 0, images, "cinemo/first_and_last_frame")
    _save_mp4(g, 6, 420, images, "cinemo/first_and_last_frame")


def cinemagraph(g: Graph) -> None:
    """The seamless loop with Load Image's painted mask on Cinemo Conditioning and Cinemo Keep Still."""
    model, pos, neg, vae, first, img = _common(g)
    looped = g.add("CinemoSeamlessLoop", 1, 760, model=g.out(model), ramp_frames=0)
    cond = g.add("CinemoConditioning", 2, 0, title="Conditioning: motion_mask = what you painted",
                 positive=g.out(pos), negative=g.out(neg), first_frame=g.out(first), intensity=9, frames=16,
                 raw_motion_id=-1.0, model=g.out(model), motion_mask=g.out(img, 1), invert_mask=False)
    sample = _sampler(g, 3, 0, looped, cond, first)
    images = _decode(g, 4, 0, sample, first, vae)
    still = g.add("CinemoKeepStill", 6, 0, title="Keep still: the picture where nothing was painted",
                  images=g.out(images), picture=g.out(img, 0), motion_mask=g.out(img, 1), invert_mask=False,
                  feather=8)
    _save_webp(g, 7, 0, still, "cinemo/cinemagraph")
    _save_mp4(g, 7, 420, still, "cinemo/cinemagraph")


LONG_VIDEO_NOTE = """Long videos: Cinemo was trained on 16 frames and degrades past about 24 in one pass. Cinemo Context Windows makes each sampling step run the model on overlapping windows of 16 frames (each with the first image, so each looks like a trained clip) and fuses them, so the video can be longer (set the length in Cinemo Conditioning's frames, up to 64) at the memory of one window. Windows keep one continuous motion; the Chained clips workflow instead starts a new clip from the last frame (each clip its own motion and prompt, any length).

"""

LOOP_NOTE = """Seamless loop (a cinemagraph): Cinemo Seamless Loop pulls the last frames back towards the first image during sampling (the last quarter of the video by default), so the video glides back to where it starts and plays on repeat without a jump; the frames before the ramp are untouched. The animated WEBP loops forever. For longer loops put Cinemo Context Windows before it and raise frames.

"""

FIRST_LAST_NOTE = f"""First and last frame: the video starts on the First frame picture and ends exactly on the Last frame picture (input/{LAST_IMAGE}): encode both with Cinemo First Frame Encode at the same width and height, and wire the second into Cinemo Conditioning's end_frame. During sampling the last quarter of the frames glides towards it, the way Cinemo Seamless Loop glides back to the start; works with any sampler and with Cinemo Context Windows. Cinemo was never trained for this: pick a last frame close to the first (the same scene, a little later); a very different picture morphs rather than moves. Not together with Cinemo Seamless Loop (a loop ends on the first frame).

"""

CINEMAGRAPH_NOTE = """Paint what moves: right click on Load Image > Open in MaskEditor, paint over the parts that should move (water, clouds, hair), then Save. Unpainted parts stay exactly still: Cinemo Conditioning keeps their motion at zero, and Cinemo Keep Still puts the picture's own pixels back there after decoding, so they are the same in every frame (feather softens the edge). Rather paint what stays still? Switch invert_mask on in both Cinemo Conditioning and Cinemo Keep Still. Run before painting anything: the whole picture moves, and the log says that no mask was painted. Cinemo Seamless Loop makes the video end where it starts; the animated WEBP loops forever.

"""

TRANSFER_NOTE = f"""Files:
- input/{SOURCE_VIDEO}  <- the clip whose motion is transferred (Cinemo's clips are 8 fps: frame_step 3 for 24 fps footage)
- input/{EDITED_IMAGE}  <- the new first frame: best the clip's own first frame, edited (restyled, recoloured, an object replaced) in any image editor or img2img workflow, keeping its layout; another picture with a similar layout works too

How it works (the paper's video editing, as the official script): Cinemo Encode Video gives the clip's first frame and its motion residual; Cinemo Invert Motion runs the sampler backwards over the residual with the Source prompt (describe the clip); the inverted latents replace the Gaussian noise in Cinemo Init Noise, mixed with the edited first frame at t=985; sampling with the Prompt (describe the edited video) animates the edited frame with the clip's motion. Both passes use no text guidance (cfg 1), as the official script. Keep the same steps in Cinemo Invert Motion and Cinemo Scheduler, and the same size and frame count in Cinemo Encode Video, Cinemo First Frame Encode and both Cinemo Conditioning nodes.

"""

SPECS = {
    "cinemo_image_to_video": (
        "Cinemo - Image to video", image_to_video, MODELS_NOTE,
        "Image to video with the all-in-one Cinemo Sampler; saves an animated WEBP and an MP4.",
    ),
    "cinemo_paper_exact": (
        "Cinemo - Paper-exact settings", paper_exact, MODELS_NOTE,
        "The paper's settings with core SamplerCustomAdvanced: Cinemo Scheduler (50 steps), ddim, CFG 7.5, "
        "DCTInit noise (0.23, t=975), 16 frames at 512x320, and the temporal VAE decoded in 14-frame chunks.",
    ),
    "cinemo_motion_intensities": (
        "Cinemo - Motion intensities 3 vs 9 vs 15", motion_intensities, MODELS_NOTE,
        "One image at motion intensities 3, 9 and 15 (same seed), side by side in one animated WEBP.",
    ),
    "cinemo_init_comparison": (
        "Cinemo - DCTInit vs FFT init vs plain noise", init_comparison, MODELS_NOTE,
        "DCTInit vs FFT init vs plain noise on the same seed, side by side in one animated WEBP.",
    ),
    "cinemo_chained_clips": (
        "Cinemo - Chained clips", chained_clips, MODELS_NOTE,
        "A longer video from clips: clip 2 starts from the last frame of clip 1, taken as a latent (Cinemo Last "
        "Frame), not decoded and encoded again, so nothing drifts; both are joined into one MP4 (clip 2's first "
        "frame, a copy, is dropped). Copy the clip 2 nodes to chain more. Each clip follows its own prompt and "
        "motion, and the motion may change pace at the joins; for one continuous motion use context windows.",
    ),
    "cinemo_motion_from_video": (
        "Cinemo - Match the motion intensity of a video", motion_from_video,
        MODELS_NOTE + f"- input/{REFERENCE_VIDEO}  <- the reference clip whose motion to match\n",
        "Measures the motion intensity of a reference clip (Cinemo Motion From Video) and animates the image "
        "with it.",
    ),
    "cinemo_motion_transfer": (
        "Cinemo - Motion transfer", motion_transfer, TRANSFER_NOTE + MODELS_NOTE,
        "Motion transfer: animates an edited first frame with the motion of a source clip (DDIM inversion).",
    ),
    "cinemo_long_video": (
        "Cinemo - Long video with context windows", long_video, LONG_VIDEO_NOTE + MODELS_NOTE,
        "A 64-frame video (8 seconds at 8 fps) in overlapping 16-frame context windows.",
    ),
    "cinemo_loop": (
        "Cinemo - Seamless loop", seamless_loop, LOOP_NOTE + MODELS_NOTE,
        "A video that ends where it starts, to play on repeat (cinemagraph).",
    ),
    "cinemo_first_and_last_frame": (
        "Cinemo - First and last frame", first_and_last_frame, FIRST_LAST_NOTE + MODELS_NOTE,
        "A video that starts on one picture and ends exactly on a second one (Cinemo Conditioning's end_frame).",
    ),
    "cinemo_cinemagraph": (
        "Cinemo - Cinemagraph", cinemagraph, CINEMAGRAPH_NOTE + MODELS_NOTE,
        "A cinemagraph: only what you paint in Load Image's mask editor moves, the rest stays exactly still; a "
        "seamless loop saved as a looping animated WEBP and an MP4.",
    ),
}


def ui_path(name: str) -> Path:
    """The UI workflow of ``name``: its title is its file name (what ComfyUI's template browser shows)."""
    return WORKFLOWS_DIR / f"{SPECS[name][0]}.json"


def thumbnail_path(name: str) -> Path:
    return ui_path(name).with_suffix(".jpg")


def api_path(name: str) -> Path:
    return API_DIR / f"{name}.json"


def build(name: str, schemas: dict | None = None) -> Graph:
    _, builder, note, description = SPECS[name]
    graph = Graph(name, description, f"{description}\n\n{note}", schemas or load_snapshot())
    builder(graph)
    return graph


def render(name: str, schemas: dict | None = None) -> tuple[dict, dict]:
    graph = build(name, schemas)
    return to_ui(graph), to_api(graph)


def dumps(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    API_DIR.mkdir(parents=True, exist_ok=True)
    expected = {ui_path(name) for name in SPECS} | {api_path(name) for name in SPECS}
    for path in sorted({*WORKFLOWS_DIR.glob("*.json"), *API_DIR.glob("*.json")} - expected):
        if check:
            stale.append(path)
        else:
            path.unlink()
    for name in SPECS:
        ui, api = render(name)
        for path, data in ((ui_path(name), ui), (api_path(name), api)):
            text = dumps(data)
            if check:
                if not path.exists() or path.read_text() != text:
                    stale.append(path)
            else:
                path.write_text(text)
    if stale:
        print("out of date:", *map(str, stale), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
