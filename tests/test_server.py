"""The pack in ComfyUI's server, driven over HTTP as the frontend and API users drive it.

One ``main.py`` subprocess per module (see ``comfyui_server.py``) with the stand-in models of
``comfy_models.py``; workflows are the shipped API twins, shrunk as in ``test_workflows_comfyui.py``.
Covers what the in-process tests cannot see: the HTTP answers (``/prompt``, ``/history``, ``/interrupt``),
the websocket progress stream, a queue of several prompts, and the memory of a server that keeps running.
Validation errors must land on the input at fault, each naming it (the width/height pair shares one message,
which names the side(s) at fault: ComfyUI shows a validate_inputs result under every input the function names).
"""

from __future__ import annotations

import json
import uuid

import pytest
from cinemo_core.settings import MAX_FRAMES
from comfy_models import (
    ComfyModels, write_clip_cinemo, write_clip_l, write_image, write_reference_clip, write_sd_vae,
    write_temporal_vae,
)
from comfyui_harness import SKIP_REASON, comfyui_path
from comfyui_server import ComfyUIServer, Messages, comfyui_server
from test_workflows_comfyui import NAMES, TinySize, check_outputs, cinemo_workflows, shrink, stand_in_files

pytestmark = pytest.mark.skipif(comfyui_path() is None, reason=SKIP_REASON)

FILES = stand_in_files(ComfyModels())
#: smaller than the in-process workflow test: here the point is the server, and the full-size random SD VAE
#: decoding every frame is most of the time
SIZE = TinySize(width=64, height=64, frames=3, steps=2)
BASIC = "cinemo_image_to_video"


def _write_stand_ins(server: ComfyUIServer) -> None:
    write_clip_cinemo(server.models)
    write_clip_l(server.models)
    write_sd_vae(server.models)
    write_temporal_vae(server.models)
    write_image(server.input)
    write_reference_clip(server.input)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with comfyui_server(comfyui_path(), tmp_path_factory.mktemp("comfyui_server"), _write_stand_ins) as running:
        yield running


def workflow(name: str, tag: str | None = None) -> tuple[dict, str]:
    """A shipped API workflow shrunk for the test, with a unique tag in its file names; returns (prompt, tag)."""
    tag = tag or uuid.uuid4().hex[:8]
    return shrink(json.loads(cinemo_workflows.api_path(name).read_text()), FILES, tag, SIZE), tag


def node_of(prompt: dict, class_type: str) -> str:
    (node_id,) = [key for key, node in prompt.items() if node["class_type"] == class_type]
    return node_id


def reseeded(prompt: dict, seed: int) -> dict:
    """The prompt with another sampler seed: ComfyUI's cache cannot answer it, the sampler must run again."""
    prompt = json.loads(json.dumps(prompt))
    prompt[node_of(prompt, "CinemoSampler")]["inputs"]["seed"] = seed
    return prompt


def test_server_lists_the_stand_ins(server):
    """The folders the server was given are the ones it reads (guards every test below against a wrong layout)."""
    info = server.get("/object_info/CinemoModelLoader")["CinemoModelLoader"]
    options = info["input"]["required"]["model_name"][1]["options"]  # V3 combo: ["COMBO", {"options": [...]}]
    assert FILES[("CinemoModelLoader", "model_name")] in options


@pytest.mark.parametrize("name", NAMES)
def test_shipped_workflow_runs_through_the_http_api(server, name):
    prompt, tag = workflow(name)
    entry = server.run(prompt)
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"]
    check_outputs(server.output, entry["outputs"], prompt, name, tag, SIZE)


def test_three_prompts_queued_at_once_all_finish(server):
    prompts = []
    for seed in (11, 12, 13):
        prompt, tag = workflow(BASIC)
        prompts.append((reseeded(prompt, seed), tag))
    ids = [server.queue(prompt) for prompt, _ in prompts]  # all queued before the first finishes
    assert len(set(ids)) == 3
    assert server.get("/queue")["queue_pending"], "the prompts should have queued behind each other"
    videos = []
    for prompt_id, (prompt, tag) in zip(ids, prompts):
        entry = server.wait(prompt_id)
        assert entry["status"]["status_str"] == "success", entry["status"]
        check_outputs(server.output, entry["outputs"], prompt, BASIC, tag, SIZE)
        (image,) = entry["outputs"][node_of(prompt, "SaveAnimatedWEBP")]["images"]
        videos.append((server.output / image["subfolder"] / image["filename"]).read_bytes())
    assert len(set(videos)) == 3, "three seeds must give three different videos"


def _sampler_steps(messages: Messages, prompt_id: str, sampler: str) -> list[int]:
    """The steps the sampler reported done, from the websocket's progress messages."""
    return [
        message["data"]["value"] for message in list(messages.received)
        if message["type"] == "progress" and message["data"].get("prompt_id") == prompt_id
        and message["data"].get("node") == sampler
    ]


def test_interrupt_ends_a_long_run_within_one_step(server):
    prompt, _ = workflow(BASIC)
    prompt = reseeded(prompt, 21)
    sampler = node_of(prompt, "CinemoSampler")
    steps = 200
    prompt[sampler]["inputs"]["steps"] = steps
    # the most frames make each step long (the first frame is still encoded once): the client's reaction is short
    prompt[node_of(prompt, "CinemoConditioning")]["inputs"]["frames"] = MAX_FRAMES
    client = uuid.uuid4().hex
    with server.messages(client) as messages:
        prompt_id = server.queue(prompt, client)
        messages.wait_for(lambda m: m["type"] == "progress" and m["data"].get("prompt_id") == prompt_id
                          and m["data"].get("node") == sampler and m["data"]["value"] >= 2)
        done_before = max(_sampler_steps(messages, prompt_id, sampler))
        status, _ = server.post("/interrupt", {"prompt_id": prompt_id})
        assert status == 200
        entry = server.wait(prompt_id)
        messages.wait_for(lambda m: m["type"] == "execution_interrupted" and m["data"].get("prompt_id") == prompt_id)
        steps_seen = _sampler_steps(messages, prompt_id, sampler)
    assert entry["status"]["status_str"] == "error"
    interrupted = dict(entry["status"]["messages"])["execution_interrupted"]
    assert interrupted["node_id"] == sampler, interrupted
    assert max(steps_seen) <= done_before + 1 < steps, (done_before, steps_seen)
    follow_up, tag = workflow(BASIC)
    follow_up = reseeded(follow_up, 22)
    check_outputs(server.output, server.run(follow_up)["outputs"], follow_up, BASIC, tag, SIZE)


def _rejected(server: ComfyUIServer, prompt: dict) -> dict:
    """POSTs a prompt that must fail validation; returns ``node_errors``; checks that nothing was queued."""
    status, answer = server.post("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
    assert status == 400, (status, answer)
    assert answer["error"]["type"] == "prompt_outputs_failed_validation", answer
    assert server.get("/queue") == {"queue_running": [], "queue_pending": []}
    return answer["node_errors"]


def _errors_by_input(node_errors: dict, node_id: str) -> dict[str, list[str]]:
    """{input name: [the text a user reads for it]}, ComfyUI's "<input> - " prefix of ``details`` removed."""
    found: dict[str, list[str]] = {}
    for error in node_errors.get(node_id, {}).get("errors", []):
        name = error["extra_info"]["input_name"]
        details = error.get("details", "")
        details = details[len(name) + 3:] if details.startswith(f"{name} - ") else details
        found.setdefault(name, []).append(f"{error['message']}: {details}")
    return found


def _still_serves(server: ComfyUIServer) -> None:
    prompt, tag = workflow(BASIC)  # cached up to the savers: cheap, and proves the queue still runs prompts
    check_outputs(server.output, server.run(prompt)["outputs"], prompt, BASIC, tag, SIZE)


def _unknown_model(server: ComfyUIServer) -> dict[str, list[str]]:
    prompt, _ = workflow(BASIC)
    loader = node_of(prompt, "CinemoModelLoader")
    prompt[loader]["inputs"]["model_name"] = "not_a_cinemo_model.safetensors"
    return _errors_by_input(_rejected(server, prompt), loader)


def test_unknown_model_is_refused_on_model_name(server):
    errors = _unknown_model(server)
    assert any("not_a_cinemo_model.safetensors" in text for text in errors["model_name"]), errors
    _still_serves(server)


def test_unknown_model_is_refused_on_model_name_only(server):
    errors = _unknown_model(server)
    assert list(errors) == ["model_name"], errors  # not on weight_dtype, which is fine


def _intensity_25(server: ComfyUIServer) -> dict[str, list[str]]:
    prompt, _ = workflow(BASIC)
    conditioning = node_of(prompt, "CinemoConditioning")
    prompt[conditioning]["inputs"]["intensity"] = 25
    return _errors_by_input(_rejected(server, prompt), conditioning)


def test_intensity_25_is_refused_on_intensity(server):
    errors = _intensity_25(server)
    assert any("intensity" in text and "25" in text for text in errors["intensity"]), errors
    _still_serves(server)


def test_intensity_25_is_refused_on_intensity_only(server):
    errors = _intensity_25(server)
    assert list(errors) == ["intensity"], errors  # not on frames or raw_motion_id, which are fine


def _odd_size(server: ComfyUIServer) -> dict[str, list[str]]:
    prompt, _ = workflow(BASIC)
    encode = node_of(prompt, "CinemoFirstFrameEncode")
    prompt[encode]["inputs"].update(width=100, height=70)
    return _errors_by_input(_rejected(server, prompt), encode)


def test_first_frame_size_not_a_multiple_of_8_is_refused(server):
    errors = _odd_size(server)
    assert any("width" in text and "100" in text for text in errors["width"]), errors
    _still_serves(server)


def test_first_frame_size_reports_width_and_height_each_on_its_own(server):
    errors = _odd_size(server)
    assert sorted(errors) == ["height", "width"], errors
    for name, value in (("width", "100"), ("height", "70")):
        assert errors[name] and all(name in text and value in text for text in errors[name]), errors


def test_five_runs_in_a_row_do_not_grow_memory(server):
    prompt, _ = workflow(BASIC)
    rss = []
    for seed in range(31, 36):
        server.run(reseeded(prompt, seed))
        rss.append(server.rss_bytes())
    assert rss[-1] <= 1.10 * rss[0], [f"{value / 2**20:.0f} MiB" for value in rss]
