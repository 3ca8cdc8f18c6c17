"""The example workflows (workflows/), checked without ComfyUI against the schema snapshot.

``tests/fixtures/node_schemas.json`` is the real ComfyUI's view of every node type the workflows use
(taken by ``workflows/tools/node_schemas.py``; ``test_workflows_comfyui.py`` asserts it still equals the live
schemas). The checks here read the JSON files as the frontend and ``POST /prompt`` would, independently of
the generator: node types exist, links join matching types and slots, widget counts and values fit the
schemas, every UI workflow has an identical API twin, a Note naming its weights and a thumbnail.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
sys.path.insert(0, str(WORKFLOWS / "tools"))
import cinemo_workflows  # noqa: E402
from node_schemas import FILE_COMBOS, load_snapshot  # noqa: E402

SCHEMAS = load_snapshot()
NAMES = sorted(cinemo_workflows.SPECS)
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
#: The file names users are told to use (README), per file combo.
FILE_NAMES = {
    ("CinemoModelLoader", "model_name"): {"Cinemo"},
    ("CinemoTemporalVAELoader", "vae_name"): {"Cinemo/vae_temporal_decoder"},
    ("CLIPLoader", "clip_name"): {"clip_l.safetensors"},
    ("VAELoader", "vae_name"): {"vae-ft-mse-840000-ema-pruned.safetensors"},
    ("LoadImage", "image"): {"example.png", "edited_first_frame.png", "last_frame.png"},
    ("LoadVideo", "file"): {"reference_clip.mp4", "source_clip.mp4"},
}
#: What each workflow must contain (the issue's list).
REQUIRED_TYPES = {
    "cinemo_image_to_video": {"SaveAnimatedWEBP", "CreateVideo", "SaveVideo", "CinemoSampler"},
    "cinemo_paper_exact": {"SamplerCustomAdvanced", "CinemoScheduler", "CinemoInitNoise", "CFGGuider"},
    "cinemo_motion_intensities": {"ImageStitch", "CinemoConditioning"},
    "cinemo_init_comparison": {"CinemoInitNoise", "SamplerCustomAdvanced", "ImageStitch"},
    "cinemo_chained_clips": {"CinemoLastFrame", "ImageFromBatch", "ImageBatch", "SaveVideo"},
    "cinemo_motion_from_video": {"LoadVideo", "CinemoMotionFromVideo"},
    "cinemo_motion_transfer": {"LoadVideo", "CinemoVideoEncode", "CinemoInvertMotion", "CinemoInitNoise",
                               "SamplerCustomAdvanced"},
    "cinemo_long_video": {"CinemoContextWindows", "CinemoSampler", "CinemoTemporalVAEDecode"},
    "cinemo_loop": {"CinemoSeamlessLoop", "SaveAnimatedWEBP"},
    "cinemo_first_and_last_frame": {"CinemoConditioning", "CinemoFirstFrameEncode", "SaveAnimatedWEBP", "SaveVideo"},
    "cinemo_cinemagraph": {"CinemoSeamlessLoop", "CinemoKeepStill", "SaveAnimatedWEBP", "SaveVideo"},
}


#: Copies of the workflows shipped with 0.1.0: saved workflows must keep loading (node ids, inputs, defaults).
SAVED = REPO / "tests" / "fixtures" / "shipped_workflows_0.1.0"
SAVED_NAMES = sorted(path.stem for path in SAVED.glob("*.json"))


def load(name: str, api: bool = False, folder: Path | None = None) -> dict:
    """A shipped workflow by its name (today's UI files are named by their titles), or one saved in ``folder``."""
    if folder is not None:
        return json.loads(((folder / "api") if api else folder).joinpath(f"{name}.json").read_text())
    path = cinemo_workflows.api_path(name) if api else cinemo_workflows.ui_path(name)
    return json.loads(path.read_text())


def widget_slots(schema: dict) -> list[tuple[str, str]]:
    """The frontend's widgets_values layout: (input name or 'control'/'upload', kind) per entry."""
    slots = []
    for entry in schema["inputs"]:
        if entry["widget"]:
            slots.append((entry["name"], "value"))
            if entry["control_after_generate"]:
                slots.append((entry["name"], "control"))
            if entry["upload"]:
                slots.append((entry["name"], "upload"))
    return slots


def ui_to_api(ui: dict) -> dict:
    """What the frontend's "Export (API)" makes of a UI workflow (Note nodes dropped)."""
    links = {link[0]: link for link in ui["links"]}
    prompt = {}
    for node in ui["nodes"]:
        if node["type"] == "Note":
            continue
        schema = SCHEMAS[node["type"]]
        inputs = {}
        values = dict(
            (name, value) for (name, kind), value in zip(widget_slots(schema), node["widgets_values"]) if kind == "value"
        )
        linked = {slot["name"]: links[slot["link"]] for slot in node["inputs"] if slot["link"] is not None}
        for entry in schema["inputs"]:
            if entry["name"] in linked:
                link = linked[entry["name"]]
                inputs[entry["name"]] = [str(link[1]), link[2]]
            elif entry["widget"] and entry["name"] in values:  # a saved workflow may predate an optional widget
                inputs[entry["name"]] = values[entry["name"]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def test_every_workflow_exists_in_both_formats_under_a_title_a_person_reads():
    assert len(NAMES) >= 7
    assert sorted(path.name for path in WORKFLOWS.glob("*.json")) == sorted(
        cinemo_workflows.ui_path(name).name for name in NAMES)
    for name in NAMES:
        assert cinemo_workflows.api_path(name).is_file(), name
        title = cinemo_workflows.ui_path(name).stem
        assert title.startswith("Cinemo - ") and "_" not in title and title[9].isupper(), title
        assert set(title) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -"), title


def test_files_are_what_the_generator_writes():
    """workflows/*.json are generated; edit cinemo_workflows.py and rerun it rather than the JSON."""
    assert cinemo_workflows.main(["--check"]) == 0


@pytest.mark.parametrize("name", NAMES)
def test_node_types_exist_and_the_workflow_does_its_job(name):
    ui = load(name)
    types = {node["type"] for node in ui["nodes"]}
    assert types - {"Note"} <= set(SCHEMAS), types - set(SCHEMAS)
    assert REQUIRED_TYPES[name] <= types
    assert sum(node["type"] == "Note" for node in ui["nodes"]) == 1
    ids = [node["id"] for node in ui["nodes"]]
    assert len(set(ids)) == len(ids) and ui["last_node_id"] == max(ids)
    assert ui["last_link_id"] == max(link[0] for link in ui["links"])


def test_first_and_last_frame_feeds_a_second_picture_into_end_frame():
    api = load("cinemo_first_and_last_frame", api=True)
    (conditioning,) = [node for node in api.values() if node["class_type"] == "CinemoConditioning"]
    first, last = (api[conditioning["inputs"][name][0]] for name in ("first_frame", "end_frame"))
    assert first["class_type"] == last["class_type"] == "CinemoFirstFrameEncode"
    assert first["inputs"]["image"] != last["inputs"]["image"]
    assert (first["inputs"]["width"], first["inputs"]["height"]) == (last["inputs"]["width"], last["inputs"]["height"])
    assert first["inputs"]["vae"] == last["inputs"]["vae"]


@pytest.mark.parametrize("name", NAMES)
def test_links_join_matching_types_and_slots(name):
    ui = load(name)
    nodes = {node["id"]: node for node in ui["nodes"]}
    seen = set()
    for link_id, source, source_slot, target, target_slot, kind in ui["links"]:
        assert link_id not in seen
        seen.add(link_id)
        out = nodes[source]["outputs"][source_slot]
        schema_out = SCHEMAS[nodes[source]["type"]]["outputs"][source_slot]
        assert out["type"] == schema_out["type"] == kind, (name, link_id)
        assert link_id in out["links"]
        slot = nodes[target]["inputs"][target_slot]
        assert slot["link"] == link_id, (name, link_id)
        entry = next(e for e in SCHEMAS[nodes[target]["type"]]["inputs"] if e["name"] == slot["name"])
        assert slot["type"] == entry["type"] and entry["type"] in (kind, "*"), (name, link_id, slot, kind)
    for node in ui["nodes"]:
        if node["type"] == "Note":
            continue
        schema = SCHEMAS[node["type"]]
        linked = {slot["name"] for slot in node["inputs"] if slot["link"] is not None}
        for entry in schema["inputs"]:
            if not entry["widget"]:
                assert any(slot["name"] == entry["name"] for slot in node["inputs"]), (name, node["id"], entry)
                if not entry["optional"]:
                    assert entry["name"] in linked, f"{name}: {node['type']} #{node['id']} {entry['name']} unlinked"
        for slot in node["inputs"]:
            if slot["link"] is not None:
                assert slot["link"] in seen
        for out in node["outputs"]:
            assert set(out["links"]) <= seen
    # every output node is fed, and every non-output node's result is used
    used = {link[1] for link in ui["links"]}
    for node in ui["nodes"]:
        if node["type"] != "Note" and not SCHEMAS[node["type"]]["output_node"]:
            assert node["id"] in used, f"{name}: {node['type']} #{node['id']} leads nowhere"


def check_widget_values(workflow: dict, name: str, saved: bool = False) -> None:
    """Every widget value of a UI workflow fits today's schema of its node, slot by slot. A ``saved`` workflow
    may lack the trailing widgets of optional inputs added since (the frontend gives them their defaults)."""
    for node in workflow["nodes"]:
        if node["type"] == "Note":
            assert len(node["widgets_values"]) == 1 and isinstance(node["widgets_values"][0], str)
            continue
        schema = SCHEMAS[node["type"]]
        slots = widget_slots(schema)
        entries = {e["name"]: e for e in schema["inputs"]}
        if saved:
            assert all(entries[input_name]["optional"] for input_name, _ in slots[len(node["widgets_values"]):])
            slots = slots[:len(node["widgets_values"])]
        assert len(node["widgets_values"]) == len(slots), (name, node["type"], node["widgets_values"], slots)
        for (input_name, kind), value in zip(slots, node["widgets_values"]):
            entry = entries[input_name]
            where = f"{name}: {node['type']} #{node['id']} {input_name}={value!r}"
            if kind == "control":
                assert value in CONTROL_VALUES, where
            elif kind == "upload":
                assert value == "image", where
            elif (node["type"], input_name) in FILE_NAMES:
                assert (node["type"], input_name) in FILE_COMBOS and value in FILE_NAMES[(node["type"], input_name)], where
            elif entry["type"] == "COMBO":
                assert value in entry["options"], where
            elif entry["type"] in ("INT", "FLOAT"):
                assert isinstance(value, (int, float)) and not isinstance(value, bool), where
                assert entry["type"] == "FLOAT" or isinstance(value, int), where
                assert entry["min"] is None or value >= entry["min"], where
                assert entry["max"] is None or value <= entry["max"], where
            elif entry["type"] == "BOOLEAN":
                assert isinstance(value, bool), where
            elif entry["type"] == "STRING":
                assert isinstance(value, str), where


@pytest.mark.parametrize("name", NAMES)
def test_widget_values_fit_the_schemas(name):
    check_widget_values(load(name), name)


@pytest.mark.parametrize("name", NAMES)
def test_api_twin_describes_the_same_graph(name):
    api = load(name, api=True)
    stripped = {key: {"class_type": node["class_type"], "inputs": node["inputs"]} for key, node in api.items()}
    assert stripped == ui_to_api(load(name))
    for node in api.values():
        assert node["_meta"]["title"]


@pytest.mark.parametrize("name", SAVED_NAMES)
def test_saved_workflows_still_fit_the_schemas(name):
    """A workflow saved from 0.1.0 loads into today's nodes: same widgets, same inputs, same API export."""
    saved = load(name, folder=SAVED)
    check_widget_values(saved, name, saved=True)
    api = load(name, api=True, folder=SAVED)
    assert {key: {"class_type": node["class_type"], "inputs": node["inputs"]} for key, node in api.items()} == ui_to_api(saved)


@pytest.mark.parametrize("name", NAMES)
def test_note_names_the_weights_and_a_thumbnail_exists(name):
    ui = load(name)
    note = next(node for node in ui["nodes"] if node["type"] == "Note")["widgets_values"][0]
    used = {value for node in ui_to_api(ui).values() for value in node["inputs"].values() if isinstance(value, str)}
    for (node_type, input_name), names in FILE_NAMES.items():
        for file_name in names & used:
            if node_type != "LoadImage":
                assert file_name in note, f"{name}: the note does not mention {file_name}"
    thumbnail = cinemo_workflows.thumbnail_path(name)
    assert thumbnail.is_file(), f"{thumbnail} is missing (tests/test_workflows_browser.py takes it)"
    assert thumbnail.read_bytes()[:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize("name", NAMES)
def test_each_save_node_has_its_own_filename_prefix(name):
    """ComfyUI numbers saved files per prefix: a WEBP and an MP4 sharing one get _00001_ and _00002_."""
    prefixes = [node["inputs"]["filename_prefix"] for node in load(name, api=True).values()
                if "filename_prefix" in node["inputs"]]
    assert prefixes and len(set(prefixes)) == len(prefixes), prefixes


def test_paper_exact_settings():
    api = load("cinemo_paper_exact", api=True)
    by_type = {node["class_type"]: node["inputs"] for node in api.values()}
    assert by_type["CinemoScheduler"]["steps"] == 50
    assert by_type["KSamplerSelect"]["sampler_name"] == "ddim"
    assert by_type["CFGGuider"]["cfg"] == 7.5
    noise = by_type["CinemoInitNoise"]
    assert (noise["mode"], noise["low_pass"], noise["noise_timestep"]) == ("dct", 0.23, 975)
    assert (by_type["CinemoConditioning"]["frames"], by_type["CinemoConditioning"]["intensity"]) == (16, 9)
    assert (by_type["CinemoFirstFrameEncode"]["width"], by_type["CinemoFirstFrameEncode"]["height"]) == (512, 320)
    assert by_type["CinemoTemporalVAEDecode"]["chunk_size"] == 14


def test_init_comparison_uses_one_seed_and_three_modes():
    api = load("cinemo_init_comparison", api=True)
    noises = [node["inputs"] for node in api.values() if node["class_type"] == "CinemoInitNoise"]
    assert sorted(n["mode"] for n in noises) == ["dct", "fft", "plain"]
    assert len({n["seed"] for n in noises}) == 1


def test_intensities_differ_and_motion_from_video_feeds_conditioning():
    api = load("cinemo_motion_intensities", api=True)
    assert len({n["inputs"]["intensity"] for n in api.values() if n["class_type"] == "CinemoConditioning"}) == 3
    api = load("cinemo_motion_from_video", api=True)
    cond = next(n for n in api.values() if n["class_type"] == "CinemoConditioning")
    assert api[cond["inputs"]["intensity"][0]]["class_type"] == "CinemoMotionFromVideo"


def test_chained_clip_two_starts_from_clip_ones_last_frame_latent():
    api = load("cinemo_chained_clips", api=True)
    samplers = sorted(key for key, n in api.items() if n["class_type"] == "CinemoSampler")
    (last_key,) = [key for key, n in api.items() if n["class_type"] == "CinemoLastFrame"]
    last = api[last_key]["inputs"]
    assert last["residual"][0] == samplers[0] and last["first_frame"] == api[samplers[0]]["inputs"]["first_frame"]
    second = api[samplers[1]]["inputs"]
    assert second["first_frame"][0] == last_key
    assert api[second["positive"][0]]["inputs"]["first_frame"][0] == last_key
    assert "CinemoFirstFrameEncode" not in {api[k]["class_type"] for k in api if k != api[samplers[0]]["inputs"]["first_frame"][0]}



@pytest.mark.parametrize("name", NAMES)
def test_every_workflow_decodes_with_the_temporal_vae(name):
    """The official default and the paper's videos: no frame-by-frame decoding in the shipped workflows."""
    types = [node["class_type"] for node in load(name, api=True).values()]
    assert "CinemoTemporalVAEDecode" in types and "VAEDecode" not in types
    note = next(node for node in load(name)["nodes"] if node["type"] == "Note")["widgets_values"][0]
    assert "flicker" in note and "temporal VAE" in note


def test_motion_transfer_keeps_the_official_settings():
    api = load("cinemo_motion_transfer", api=True)
    by_type = {}
    for node in api.values():
        by_type.setdefault(node["class_type"], []).append(node["inputs"])
    (invert,), (noise,), (scheduler,) = by_type["CinemoInvertMotion"], by_type["CinemoInitNoise"], by_type["CinemoScheduler"]
    assert invert["cfg"] == 1.0 and by_type["CFGGuider"][0]["cfg"] == 1.0 and invert["steps"] == scheduler["steps"]
    assert noise["inverted_noise_timestep"] == 985 and api[noise["inverted_motion"][0]]["class_type"] == "CinemoInvertMotion"
    (encode,) = by_type["CinemoVideoEncode"]
    (first,) = by_type["CinemoFirstFrameEncode"]
    assert (encode["width"], encode["height"]) == (first["width"], first["height"])
    assert {c["frames"] for c in by_type["CinemoConditioning"]} == {encode["frames"]}


def test_long_video_and_loop_workflows_use_their_nodes_on_the_sampled_model():
    api = load("cinemo_long_video", api=True)
    (sampler,) = [n["inputs"] for n in api.values() if n["class_type"] == "CinemoSampler"]
    assert api[sampler["model"][0]]["class_type"] == "CinemoContextWindows"
    assert api[sampler["positive"][0]]["inputs"]["frames"] == 64
    api = load("cinemo_loop", api=True)
    (sampler,) = [n["inputs"] for n in api.values() if n["class_type"] == "CinemoSampler"]
    assert api[sampler["model"][0]]["class_type"] == "CinemoSeamlessLoop"


def test_cinemagraph_masks_the_motion_and_the_pixels_with_load_images_mask():
    api = load("cinemo_cinemagraph", api=True)
    by_type = {}
    for key, node in api.items():
        by_type.setdefault(node["class_type"], []).append((key, node["inputs"]))
    ((image_key, _),) = by_type["LoadImage"]
    ((_, cond),), ((_, keep),), ((_, sampler),) = (by_type["CinemoConditioning"], by_type["CinemoKeepStill"],
                                                   by_type["CinemoSampler"])
    assert cond["motion_mask"] == keep["motion_mask"] == [image_key, 1]  # Load Image's MASK
    assert keep["picture"] == [image_key, 0] and cond["invert_mask"] == keep["invert_mask"] is False
    assert api[keep["images"][0]]["class_type"] == "CinemoTemporalVAEDecode"
    assert api[sampler["model"][0]]["class_type"] == "CinemoSeamlessLoop"
    saved_from = {api[node["images"][0]]["class_type"] for _, node in by_type["SaveAnimatedWEBP"] + by_type["CreateVideo"]}
    assert saved_from == {"CinemoKeepStill"}
    note = next(node for node in load("cinemo_cinemagraph")["nodes"] if node["type"] == "Note")["widgets_values"][0]
    assert "Open in MaskEditor" in note and "invert_mask" in note


def test_thumbnails_are_the_drawn_diagrams():
    """Each thumbnail is what workflows/tools/thumbnails.py draws from the description (rerun it after a change):
    the title and the key steps, different for every workflow."""
    import io

    import thumbnails
    from PIL import Image, ImageChops, ImageStat

    drawn = {}
    for name in NAMES:
        with Image.open(cinemo_workflows.thumbnail_path(name)) as shipped:
            expected = Image.open(io.BytesIO(thumbnails.jpeg_bytes(thumbnails.draw_thumbnail(name))))
            assert shipped.size == expected.size == (thumbnails.WIDTH, thumbnails.HEIGHT)
            assert max(ImageStat.Stat(ImageChops.difference(shipped.convert("RGB"), expected)).mean) < 1.0, name
            drawn[name] = shipped.convert("L").resize((64, 38))
    for a, b in itertools.combinations(NAMES, 2):
        assert max(ImageStat.Stat(ImageChops.difference(drawn[a], drawn[b])).mean) > 1.0, (a, b)
    assert [label for label, _ in thumbnails.key_steps(cinemo_workflows.build("cinemo_cinemagraph"))] == [
        "Image + painted mask", "Seamless loop", "Cinemo Sampler", "Keep still", "WEBP + MP4"]


@pytest.mark.parametrize("name", NAMES)
def test_nodes_do_not_overlap_and_the_note_has_room_for_its_text(name):
    """By the generator's own estimates (tests/test_workflows_browser.py checks the real frontend): no two nodes'
    rectangles, title bars and the gap for the badge included, intersect; the Note is as large as its text needs."""
    nodes = load(name)["nodes"]
    top = cinemo_workflows.TITLE_HEIGHT + cinemo_workflows.NODE_GAP // 2
    boxes = [(n["pos"][0], n["pos"][1] - top, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1]) for n in nodes]
    for (a, box_a), (b, box_b) in itertools.combinations(zip(nodes, boxes), 2):
        assert not (box_a[0] < box_b[2] and box_b[0] < box_a[2] and box_a[1] < box_b[3] and box_b[1] < box_a[3]), (
            a["type"], a["id"], b["type"], b["id"])
    (note,) = [n for n in nodes if n["type"] == "Note"]
    text = note["widgets_values"][0]
    width, height = note["size"]
    per_line = (width - 24) / cinemo_workflows.NOTE_CHAR_WIDTH
    lines = sum(max(1, -(-len(line) // int(per_line))) for line in text.split("\n"))
    assert height >= lines * cinemo_workflows.NOTE_LINE_HEIGHT, (name, lines, height)
    assert cinemo_workflows.note_size(text, 420)[1] > 220  # the old fixed 420x220 Note was too small for it
