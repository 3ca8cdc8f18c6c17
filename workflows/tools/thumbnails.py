"""Template thumbnails drawn from the workflow descriptions: the title and the workflow's key steps.

``python workflows/tools/thumbnails.py`` writes ``workflows/<title>.jpg`` for every workflow of
``cinemo_workflows.SPECS`` (the template browser shows it beside the title); ``--check`` only compares. The
picture is a small diagram, not a screenshot: the workflow's title in large type, then what sets it apart as a
row of steps (the node types that make the workflow what it is, in the order the description adds them, the
plumbing every workflow shares left out), then its one-line description. Readable at the template browser's card
size (about 300 pixels wide) and different for every workflow. Deterministic: the same Pillow draws the same
bytes (its built-in font, no system fonts).
"""

from __future__ import annotations

import io
import sys
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cinemo_workflows  # noqa: E402
from cinemo_workflows import Graph, Out  # noqa: E402

WIDTH, HEIGHT = 640, 384
BACKGROUND = (24, 26, 32)
INK = (238, 238, 238)
MUTED = (170, 176, 190)
#: A colour per step kind, so the rows differ at a glance.
COLOURS = {
    "input": (62, 110, 160), "motion": (150, 92, 40), "sample": (86, 120, 60), "pixels": (120, 70, 130),
    "output": (70, 76, 92),
}
#: Node type -> (step label, kind). Types not listed are plumbing that every workflow has.
STEPS = {
    "LoadImage": ("Image", "input"),
    "LoadVideo": ("Video clip", "input"),
    "CinemoVideoEncode": ("Encode clip", "motion"),
    "CinemoMotionFromVideo": ("Measure motion", "motion"),
    "CinemoInvertMotion": ("Invert motion", "motion"),
    "CinemoContextWindows": ("Context windows", "motion"),
    "CinemoSeamlessLoop": ("Seamless loop", "motion"),
    "CinemoInitNoise": ("Init noise", "sample"),
    "CinemoSampler": ("Cinemo Sampler", "sample"),
    "SamplerCustomAdvanced": ("Core sampler", "sample"),
    "CinemoLastFrame": ("Last frame", "motion"),
    "ImageBatch": ("Join clips", "pixels"),
    "ImageStitch": ("Side by side", "pixels"),
    "CinemoKeepStill": ("Keep still", "pixels"),
}
OUTPUTS = {"SaveAnimatedWEBP": "WEBP", "SaveVideo": "MP4"}


def key_steps(graph: Graph) -> list[tuple[str, str]]:
    """(label, kind) of the workflow's distinctive steps, repeated types counted ("Cinemo Sampler x3")."""
    masked = any(isinstance(value, Out) and value.slot == 1 and graph.nodes[value.node - 1].type == "LoadImage"
                 for node in graph.nodes for value in node.values.values())
    counts: dict[str, int] = {}
    order: list[str] = []
    for node in graph.nodes:
        if node.type in STEPS:
            counts[node.type] = counts.get(node.type, 0) + 1
            if node.type not in order:
                order.append(node.type)
    steps = []
    for node_type in order:
        label, kind = STEPS[node_type]
        if node_type == "LoadImage" and masked:
            label = "Image + painted mask"
        if node_type == "ImageStitch":
            counts[node_type] = 1  # two stitches make one picture
        steps.append((label + (f" x{counts[node_type]}" if counts[node_type] > 1 else ""), kind))
    saved = [label for node_type, label in OUTPUTS.items() if any(node.type == node_type for node in graph.nodes)]
    steps.append((" + ".join(saved), "output"))
    return steps


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _rows(steps: list[tuple[str, str]], draw: ImageDraw.ImageDraw, font, width: int) -> list[list[tuple]]:
    """Steps as boxes, wrapped into rows that fit ``width``."""
    rows: list[list[tuple]] = [[]]
    used = 0
    for label, kind in steps:
        box = draw.textlength(label, font=font) + 28
        if rows[-1] and used + box + 34 > width:
            rows.append([])
            used = 0
        rows[-1].append((label, kind, box))
        used += box + 34
    return rows


def draw_thumbnail(name: str) -> Image.Image:
    title, _, _, description = cinemo_workflows.SPECS[name]
    graph = cinemo_workflows.build(name)
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    margin = 28
    draw.text((margin, 22), "CINEMO", font=_font(22), fill=MUTED)
    heading = title.removeprefix("Cinemo - ")
    size = 54
    while draw.textlength(heading, font=_font(size)) > WIDTH - 2 * margin and size > 30:
        size -= 2
    lines = textwrap.wrap(heading, 22) if draw.textlength(heading, font=_font(size)) > WIDTH - 2 * margin else [heading]
    y = 52
    for line in lines[:2]:
        draw.text((margin, y), line, font=_font(size), fill=INK)
        y += size + 6
    font = _font(26)
    y += 18
    rows = _rows(key_steps(graph), draw, font, WIDTH - 2 * margin)
    for row_index, row in enumerate(rows):
        x = margin
        for index, (label, kind, box) in enumerate(row):
            draw.rounded_rectangle((x, y, x + box, y + 48), radius=10, fill=COLOURS[kind])
            draw.text((x + 14, y + 10), label, font=font, fill=INK)
            x += box
            if index < len(row) - 1 or row_index < len(rows) - 1:  # an arrow to the next step
                draw.text((x + 9, y + 8), ">", font=font, fill=MUTED)
            x += 34
        y += 62
    small = _font(20)
    room = max(1, (HEIGHT - y - 16) // 26)
    lines = textwrap.wrap(description, 56)
    if len(lines) > room:
        lines = lines[:room]
        lines[-1] = lines[-1].rstrip(" ,;:") + " ..."
    for line in lines:
        draw.text((margin, y + 4), line, font=small, fill=MUTED)
        y += 26
    return image


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in cinemo_workflows.SPECS:
        data = jpeg_bytes(draw_thumbnail(name))
        path = cinemo_workflows.thumbnail_path(name)
        if check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(path)
        else:
            path.write_bytes(data)
    if stale:
        print("out of date:", *map(str, stale), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
