"""The UI workflows in a real browser: ComfyUI's own frontend loads each one as a drag and drop does.

Starts ComfyUI (``COMFYUI_PATH``) as a server (``comfyui_server.py``) with this pack and a models folder holding
files under exactly the names the workflows use, opens its page in headless Chromium (``/usr/bin/chromium``, driven by
Playwright), fetches each workflow from the template endpoint (``/api/workflow_templates/<pack>/<title>.json``)
and loads it with ``app.loadGraphData``; the workflows shipped with 0.1.0 are loaded too, as saved files are. Asserts: every node type is registered, no dialog (missing nodes or
models) opened, each widget shows the value the JSON gives it (so widgets_values line up with the frontend's
widgets, incl. ``control_after_generate``), and the frontend's own "Export (API)" (``app.graphToPrompt``) equals
the API twin in ``workflows/api/``; and each template is laid out with room (no overlapping nodes, the Note's
text not cut off). Screenshots go to a temporary folder (the ``workflows/<title>.jpg`` thumbnails are drawn by
``workflows/tools/thumbnails.py``). Skips when COMFYUI_PATH is unset or Chromium/Playwright is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from comfyui_harness import PACK_NAME as PACK
from comfyui_server import ComfyUIServer, comfyui_server

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
sys.path.insert(0, str(WORKFLOWS / "tools"))
import cinemo_workflows  # noqa: E402

NAMES = sorted(cinemo_workflows.SPECS)
SAVED = REPO / "tests" / "fixtures" / "shipped_workflows_0.1.0"
SCHEMAS = json.loads((REPO / "tests" / "fixtures" / "node_schemas.json").read_text())
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _requirements() -> str | None:
    if not os.environ.get("COMFYUI_PATH"):
        return "COMFYUI_PATH is not set: the browser test starts a real ComfyUI server."
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)."
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright; no browser download needed)."
    return None


pytestmark = pytest.mark.skipif(_requirements() is not None, reason=_requirements() or "")


def _lay_out(server: ComfyUIServer) -> None:
    """Models under exactly the names the workflows use (listed, never loaded) and the input files they name."""
    import av
    import numpy as np

    cinemo = server.models / "cinemo" / "Cinemo"
    cinemo.mkdir(parents=True)
    (cinemo / "unet").symlink_to(REPO / "tests" / "fixtures" / "tiny_a" / "unet", target_is_directory=True)
    temporal = cinemo / "vae_temporal_decoder"
    temporal.mkdir()
    (temporal / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLTemporalDecoder"}))
    (temporal / "diffusion_pytorch_model.safetensors").write_bytes(b"")  # listed only; never loaded here
    for folder, name in (("text_encoders", "clip_l.safetensors"), ("vae", "vae-ft-mse-840000-ema-pruned.safetensors")):
        (server.models / folder).mkdir(parents=True)
        (server.models / folder / name).write_bytes(b"")
    shutil.copy(server.comfy_path / "input" / "example.png", server.input / "example.png")
    shutil.copy(server.comfy_path / "input" / "example.png", server.input / "edited_first_frame.png")
    with av.open(str(server.input / "reference_clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for t in range(4):
            frame = np.full((48, 64, 3), 40 * t, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    shutil.copy(server.input / "reference_clip.mp4", server.input / "source_clip.mp4")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("comfyui_browser")
    with comfyui_server(Path(os.environ["COMFYUI_PATH"]), root, _lay_out) as running:
        yield running


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    # a fresh user folder would open the template browser on first start
    status, _ = server.post("/api/settings", {
        "Comfy.TutorialCompleted": True, "Comfy.Validation.Workflows": True, "Comfy.Minimap.Visible": False,
    })
    assert status == 200
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        tab = browser.new_page(viewport={"width": 1600, "height": 1000})
        errors: list[str] = []
        tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(server.url, wait_until="domcontentloaded")
        tab.wait_for_function("window.app && window.app.graph && window.LiteGraph", timeout=90_000)
        tab.wait_for_timeout(1500)
        tab.errors = errors
        yield tab
        browser.close()


def test_pack_workflows_are_listed_as_templates_by_their_titles(server):
    listed = server.get("/api/workflow_templates")
    assert sorted(listed.get(PACK, [])) == sorted(cinemo_workflows.ui_path(name).stem for name in NAMES)


LOAD_AND_INSPECT = """async ([title, saved]) => {
  const workflow = saved ?? await (await fetch(`/api/workflow_templates/%s/${encodeURIComponent(title)}.json`)).json();
  const name = title;
  document.querySelectorAll('.p-dialog-close-button').forEach((b) => b.click());
  await app.loadGraphData(workflow, true, true, name);
  await new Promise((r) => setTimeout(r, 800));
  const nodes = app.graph._nodes.map((node) => ({
    id: node.id, type: node.type, registered: !!LiteGraph.registered_node_types[node.type],
    has_errors: !!node.has_errors,
    widgets: (node.widgets || []).filter((w) => w.serialize !== false).map((w) => w.value),
  }));
  const dialogs = [...document.querySelectorAll('.p-dialog')].map((d) => d.innerText.slice(0, 300));
  const prompt = await app.graphToPrompt();
  return { workflow, nodes, dialogs, output: prompt.output, serialized: app.graph.serialize() };
}""" % PACK


def exported_inputs(result: dict) -> dict:
    """The frontend's API export, without frontend-only display widgets (LoadVideo's preview, PreviewAny's text),
    which ComfyUI drops too."""
    return {
        key: {"class_type": n["class_type"], "inputs": {
            k: v for k, v in n["inputs"].items() if k in {e["name"] for e in SCHEMAS[n["class_type"]]["inputs"]}}}
        for key, n in result["output"].items()
    }


@pytest.mark.parametrize("name", sorted(path.stem for path in SAVED.glob("*.json")))
def test_workflow_saved_with_0_1_0_loads_in_the_frontend(page, name):
    """A user's saved file: same nodes, same widget values; optional inputs added since take their defaults."""
    page.errors.clear()
    saved = json.loads((SAVED / f"{name}.json").read_text())
    result = page.evaluate(LOAD_AND_INSPECT, [name, saved])
    assert not [node["type"] for node in result["nodes"] if not node["registered"]]
    assert not result["dialogs"], result["dialogs"]
    assert not [node for node in result["nodes"] if node["has_errors"]]
    shown = {node["id"]: node["widgets"] for node in result["nodes"]}
    for node in saved["nodes"]:
        assert shown[node["id"]][:len(node["widgets_values"])] == node["widgets_values"], node["type"]
    api = json.loads((SAVED / "api" / f"{name}.json").read_text())
    for key, node in exported_inputs(result).items():
        added = {k: v for k, v in node["inputs"].items() if k not in api[key]["inputs"]}
        defaults = {e["name"]: e["default"] for e in SCHEMAS[node["class_type"]]["inputs"] if e["optional"]}
        assert added == {k: defaults[k] for k in added}, (key, added)
        assert {k: node["inputs"][k] for k in api[key]["inputs"]} == api[key]["inputs"]


@pytest.mark.parametrize("name", NAMES)
def test_workflow_loads_in_the_frontend(page, name, tmp_path):
    page.errors.clear()
    title = cinemo_workflows.ui_path(name).stem
    result = page.evaluate(LOAD_AND_INSPECT, [title, None])
    shipped = json.loads(cinemo_workflows.ui_path(name).read_text())
    assert result["workflow"] == shipped  # served as is by the template endpoint
    unregistered = [node["type"] for node in result["nodes"] if not node["registered"]]
    assert not unregistered, f"missing node types: {unregistered}"
    assert not result["dialogs"], result["dialogs"]
    assert not [node for node in result["nodes"] if node["has_errors"]]
    expected = {node["id"]: node["widgets_values"] for node in shipped["nodes"]}
    shown = {node["id"]: node["widgets"] for node in result["nodes"]}
    assert shown == expected, "widget values differ from the JSON: a widgets_values entry is misaligned"
    reserialized = {node["id"]: node.get("widgets_values", []) for node in result["serialized"]["nodes"]}
    assert reserialized == expected
    assert sorted(map(tuple, result["serialized"]["links"])) == sorted(map(tuple, shipped["links"]))
    api = json.loads(cinemo_workflows.api_path(name).read_text())
    assert exported_inputs(result) == {key: {"class_type": n["class_type"], "inputs": n["inputs"]} for key, n in api.items()}
    widget_errors = [text for text in page.errors if "widget" in text.lower() or "missing" in text.lower()]
    assert not widget_errors, widget_errors

    page.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
    page.wait_for_timeout(600)
    shot = tmp_path / f"{name}.png"
    page.locator("#graph-canvas").screenshot(path=str(shot))
    from PIL import Image, ImageStat

    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        assert max(ImageStat.Stat(rgb).stddev) > 4, "the screenshot is blank"


LAYOUT = """async (title) => {
  const workflow = await (await fetch(`/api/workflow_templates/%s/${encodeURIComponent(title)}.json`)).json();
  document.querySelectorAll('.p-dialog-close-button').forEach((b) => b.click());
  await app.loadGraphData(workflow, true, true, title);
  await new Promise((r) => setTimeout(r, 800));
  await app.extensionManager.command.execute('Comfy.Canvas.FitView');
  await new Promise((r) => setTimeout(r, 800));
  const boxes = app.graph._nodes.map((node) => {
    const box = new Float32Array(4);
    node.getBounding(box);
    return { id: node.id, type: node.type, box: Array.from(box) };
  });
  const note = app.graph._nodes.find((node) => node.type === 'Note');
  const area = note.widgets[0].element;
  const measure = async () => {  // at scale 1, where the frontend shows the textarea (it hides it when zoomed out)
    app.canvas.ds.scale = 1;
    app.canvas.ds.offset = [40 - note.pos[0], 60 - note.pos[1]];
    app.canvas.setDirty(true, true);
    await new Promise((r) => setTimeout(r, 600));
    const style = getComputedStyle(area);
    return { scroll: area.scrollHeight, client: area.clientHeight, font: style.fontSize, line: style.lineHeight,
             width: area.clientWidth };
  };
  const shown = await measure();
  const saved = [...note.size];
  note.setSize([420, 220]);  // the size the Note had before issue 18: its text did not fit
  const small = await measure();
  note.setSize(saved);
  await measure();
  return { boxes, shown, small, text: area.value.length };
}""" % PACK


#: The frontend draws a node's source badge ("cinemo_nodes") above its title bar, outside its bounding box.
BADGE_HEIGHT = 24


def overlapping(boxes: list[dict]) -> list[tuple]:
    """Pairs of nodes whose rectangles (title bar and the badge above it included) intersect."""
    pairs = []
    for index, a in enumerate(boxes):
        ax, ay, aw, ah = a["box"]
        ay, ah = ay - BADGE_HEIGHT, ah + BADGE_HEIGHT
        for b in boxes[index + 1:]:
            bx, by, bw, bh = b["box"]
            by, bh = by - BADGE_HEIGHT, bh + BADGE_HEIGHT
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                pairs.append((a["type"], a["id"], b["type"], b["id"]))
    return pairs


@pytest.mark.parametrize("name", NAMES)
def test_template_is_laid_out_with_room(page, name, tmp_path):
    """In the real frontend: no two nodes overlap (titles and badges included) and the Read me Note shows its
    whole text without scrolling. The screenshot is kept in a temporary folder to look at."""
    page.errors.clear()
    result = page.evaluate(LAYOUT, cinemo_workflows.ui_path(name).stem)
    assert not overlapping(result["boxes"]), overlapping(result["boxes"])
    shown, small = result["shown"], result["small"]
    assert shown["client"] > 0, "the Note's text box is not shown"
    assert shown["scroll"] <= shown["client"] + 2, (
        f"the Note's text is cut off: {shown['scroll']} px of text in {shown['client']} px (font {shown['font']}, "
        f"line {shown['line']}, width {shown['width']}, {result['text']} characters)")
    assert small["scroll"] > small["client"] + 2  # the check sees a Note too small for its text
    page.locator("#graph-canvas").screenshot(path=str(tmp_path / f"{name}.png"))
