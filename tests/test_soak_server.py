"""Soak: one real ComfyUI ``main.py`` takes a long mixed series of prompts and stays well.

Good prompts (the shipped image-to-video workflow, tiny and one step, each with its own seed so that the sampler
and the decoder really run), invalid ones (refused at ``POST /prompt`` on the input at fault) and interrupted ones
(stopped at their first sampling step), interleaved. Every good prompt must succeed with its files, every invalid
one be refused with its message, the server must still serve after each interruption, its resident memory after
the last prompt must be within 10 % of after the tenth (the first ones load the models and warm the allocator),
and no temporary file may be left: no hidden ``.partial`` video in the output folder, nothing in ComfyUI's temp
folder, nothing in the server's own ``TMPDIR``. ``CINEMO_SOAK_PROMPTS`` sets how many prompts (100, as issue 18 asks).

A good prompt is as cheap as a real run gets: 64x64 pixels, 2 frames, 1 step, and CFG 1 (one UNet pass a step,
ComfyUI skips the negative pass); most of its time is the full-size temporal VAE decoding its 2 frames. About
half the prompts are invalid ones (refused at validation, nearly free), so 100 prompts (40 good ones) take about
what 50 (36 good ones at CFG 7.5) took before.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from comfyui_harness import SKIP_REASON, comfyui_path
from comfyui_server import comfyui_server
from test_server import BASIC, _errors_by_input, _rejected, _write_stand_ins, node_of, reseeded, workflow
from test_workflows_comfyui import TinySize, check_outputs

import test_server

pytestmark = pytest.mark.skipif(comfyui_path() is None, reason=SKIP_REASON)

PROMPTS = int(os.environ.get("CINEMO_SOAK_PROMPTS", "100"))
SIZE = TinySize(width=64, height=64, frames=2, steps=1)
#: Every how many prompts one is interrupted; of the others, every how many ones are invalid (the rest are good:
#: 40 of 100, 12 interrupted, 48 invalid).
INTERRUPTED_EVERY, INVALID_EVERY = 8, (2, 5)
WARM_UP = 10


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("comfyui_soak")
    server_tmp = root / "server_tmp"
    server_tmp.mkdir()
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(server_tmp)  # the subprocess inherits it: its tempfile calls land there
    try:
        with comfyui_server(comfyui_path(), root, _write_stand_ins) as running:
            if saved is None:
                del os.environ["TMPDIR"]
            else:
                os.environ["TMPDIR"] = saved
            running.server_tmp = server_tmp
            yield running
    finally:
        if saved is not None:
            os.environ["TMPDIR"] = saved


def _invalid(index: int) -> tuple[dict, str, str, str]:
    """(prompt, node id, input at fault, text its message must hold), one of three kinds in turn."""
    prompt, _ = workflow(BASIC)
    kind = index % 3
    if kind == 0:
        node = node_of(prompt, "CinemoConditioning")
        prompt[node]["inputs"]["intensity"] = 25
        return prompt, node, "intensity", "25"
    if kind == 1:
        node = node_of(prompt, "CinemoFirstFrameEncode")
        prompt[node]["inputs"]["width"] = 100
        return prompt, node, "width", "100"
    node = node_of(prompt, "CinemoModelLoader")
    prompt[node]["inputs"]["model_name"] = "not_a_cinemo_model.safetensors"
    return prompt, node, "model_name", "not_a_cinemo_model.safetensors"


def _interrupt(server, seed: int) -> None:
    """Queue a run of many steps, interrupt it at its first step; it must end interrupted, at the sampler."""
    prompt, _ = workflow(BASIC)
    prompt = reseeded(prompt, seed)
    sampler = node_of(prompt, "CinemoSampler")
    prompt[sampler]["inputs"]["steps"] = 500
    client = uuid.uuid4().hex
    with server.messages(client) as messages:
        prompt_id = server.queue(prompt, client)
        messages.wait_for(lambda m: m["type"] == "progress" and m["data"].get("prompt_id") == prompt_id
                          and m["data"].get("node") == sampler)
        status, _ = server.post("/interrupt", {"prompt_id": prompt_id})
        assert status == 200
        entry = server.wait(prompt_id)
    assert entry["status"]["status_str"] == "error"
    assert dict(entry["status"]["messages"])["execution_interrupted"]["node_id"] == sampler


def _leftovers(server) -> list[Path]:
    partial = [path for path in server.output.rglob("*") if path.name.startswith(".") or ".partial" in path.name]
    temp = [path for path in (server.root / "temp").rglob("*") if path.is_file()]
    return partial + temp + sorted(path for path in server.server_tmp.rglob("*") if path.is_file())


def test_a_long_mixed_series_of_prompts(server, monkeypatch):
    monkeypatch.setattr(test_server, "SIZE", SIZE)  # workflow() shrinks to the soak's size
    kinds = {"good": 0, "invalid": 0, "interrupted": 0}
    rss_after: dict[int, int] = {}
    for index in range(1, PROMPTS + 1):
        if index % INTERRUPTED_EVERY == 0:
            _interrupt(server, seed=10_000 + index)
            kinds["interrupted"] += 1
        elif any(index % every == 0 for every in INVALID_EVERY):
            prompt, node, name, text = _invalid(index)
            errors = _errors_by_input(_rejected(server, prompt), node)
            assert any(text in message for message in errors.get(name, [])), (index, errors)
            kinds["invalid"] += 1
        else:
            prompt, tag = workflow(BASIC)
            prompt = reseeded(prompt, seed=index)
            prompt[node_of(prompt, "CinemoSampler")]["inputs"]["cfg"] = 1.0
            entry = server.run(prompt)
            check_outputs(server.output, entry["outputs"], prompt, BASIC, tag, SIZE)
            kinds["good"] += 1
            if kinds["good"] >= WARM_UP:
                rss_after.setdefault(WARM_UP, server.rss_bytes())
        assert not _leftovers(server), (index, _leftovers(server))
    last = server.rss_bytes()
    assert kinds["good"] >= WARM_UP and kinds["invalid"] and kinds["interrupted"], kinds
    early = rss_after[WARM_UP]
    print(f"soak: {kinds}; RSS {early / 2**20:.0f} MiB after {WARM_UP} good runs, {last / 2**20:.0f} MiB after all")
    assert last <= 1.10 * early, f"RSS {early / 2**20:.0f} MiB after {WARM_UP} good runs, {last / 2**20:.0f} MiB after all"
    assert server.get("/queue") == {"queue_running": [], "queue_pending": []}
