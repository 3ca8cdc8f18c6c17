"""Template thumbnails drawn from the workflow descriptions: the title and the workflow's key steps.

``python workflows/tools/thumbnails.py`` writes ``workflows/<title>.jpg`` for every workflow of
``cinemo_workflows.SPECS`` (the template browser shows it beside the title); ``--check`` only compares. The
picture is a small diagram, not a screenshot: the workflow's title in large type, then what sets it apart as a
row of steps (the node types that make the workflow what it is, in the order the description adds them, the
plumbing every workflow shares left out), then its one-line description. Readable at the template browser's card
size (square cards about 220 pixels wide) and different for every workflow. Deterministic: the same Pillow draws the same
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

#: Square: the template browser shows each thumbnail in a square card about 220 pixels wide.
WIDTH, HEIGHT = 480, 480
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
    ends = any(node.type == "CinemoConditioning" and isinstance(node.values.get("end_frame"), Out)
               for node in graph.nodes)
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
        if node_type == "LoadImage" and ends:
            label, counts[node_type] = "First + last picture", 1
        steps.append((label + (f" x{counts[node_type]}" if counts[node_type] > 1 else ""), kind))
        if node_type == "LoadImage" and ends:
            steps.append(("End frame", "motion"))
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


def _fit_title(draw: ImageDraw.ImageDraw, heading: str, width: int) -> tuple[int, list[str]]:
    """The largest type size (52 down to 36) at which the title fits in two lines of ``width``, and its lines."""
    for size in range(52, 34, -2):
        font = _font(size)
        lines: list[str] = []
        for word in heading.split():
            if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
                lines[-1] = f"{lines[-1]} {word}"
            else:
                lines.append(word)
        if len(lines) <= 2 and all(draw.textlength(line, font=font) <= width for line in lines):
            return size, lines
    return size, lines[:2]


def draw_thumbnail(name: str) -> Image.Image:
    title, _, _, description = cinemo_workflows.SPECS[name]
    graph = cinemo_workflows.build(name)
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    margin = 28
    draw.text((margin, 22), "CINEMO", font=_font(22), fill=MUTED)
    heading = title.removeprefix("Cinemo - ")
    size, lines = _fit_title(draw, heading, WIDTH - 2 * margin)
    y = 54
    for line in lines:
        draw.text((margin, y), line, font=_font(size), fill=INK)
        y += size + 6
    font = _font(28)
    y += 16
    rows = _rows(key_steps(graph), draw, font, WIDTH - 2 * margin)
    for row_index, row in enumerate(rows):
        x = margin
        for index, (label, kind, box) in enumerate(row):
            draw.rounded_rectangle((x, y, x + box, y + 50), radius=10, fill=COLOURS[kind])
            draw.text((x + 14, y + 10), label, font=font, fill=INK)
            x += box
            if index < len(row) - 1 or row_index < len(rows) - 1:  # an arrow to the next step
                draw.text((x + 9, y + 9), ">", font=font, fill=MUTED)
            x += 34
        y += 64
    small = _font(22)
    room = max(1, (HEIGHT - y - 16) // 28)
    lines = textwrap.wrap(description, 36)
    if len(lines) > room:
        lines = lines[:room]
        lines[-1] = lines[-1].rstrip(" ,;:") + " ..."
    for line in lines:
        draw.text((margin, y + 4), line, font=small, fill=MUTED)
        y += 28
    return image


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    drawn = {cinemo_workflows.thumbnail_path(name): jpeg_bytes(draw_thumbnail(name)) for name in cinemo_workflows.SPECS}
    if "--check" not in argv:
        for path, data in drawn.items():
            path.write_bytes(data)
        return 0
    stale = [path for path, data in drawn.items() if not path.exists() or path.read_bytes() != data]
    for path in stale:
        print(f"out of date: {path} (run workflows/tools/thumbnails.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
