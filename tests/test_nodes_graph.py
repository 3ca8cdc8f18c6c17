"""Whole graphs in a real ComfyUI: core loaders, text encoder, samplers, VAE and video saver around our nodes.

Also: what ``/object_info`` shows for our nodes, and the errors a user can act on, as ComfyUI reports them.
"""

import uuid
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from comfy_models import WRONG_FILES
from PIL import Image

OUR_NODES = (
    "CinemoModelLoader", "CinemoFirstFrameEncode", "CinemoConditioning", "CinemoInitNoise", "CinemoScheduler",
    "CinemoSampler", "CinemoResidualToFrames",
)
SIZE = 64  # pixels: keeps the full-size SD VAE quick on two CPU cores


def animation_graph(models, *, steps=3, frames=16, all_in_one=False, width=SIZE, height=SIZE, intensity=9,
                    frames_first_frame=None, model_name=None, conditioning_model=None):
    """API-format prompt: image -> Cinemo -> frames -> VAE Decode -> animated WEBP."""
    prompt = {
        "image": {"class_type": "LoadImage", "inputs": {"image": models.image}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": models.vae}},
        "clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": models.clip_l, "type": "stable_diffusion"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a river flowing", "clip": ["clip", 0]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["clip", 0]}},
        "model": {"class_type": "CinemoModelLoader",
                  "inputs": {"model_name": model_name or models.clip_cinemo, "weight_dtype": "default"}},
        "first": {"class_type": "CinemoFirstFrameEncode",
                  "inputs": {"image": ["image", 0], "vae": ["vae", 0], "width": width, "height": height}},
        "cond": {"class_type": "CinemoConditioning",
                 "inputs": {"positive": ["pos", 0], "negative": ["neg", 0], "first_frame": ["first", 0],
                            "intensity": intensity, "frames": frames, "raw_motion_id": -1.0,
                            "model": conditioning_model or ["model", 0]}},
        "to_frames": {"class_type": "CinemoResidualToFrames",
                      "inputs": {"residual": ["sample", 0], "first_frame": frames_first_frame or ["first", 0]}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["to_frames", 0], "vae": ["vae", 0]}},
        "save": {"class_type": "SaveAnimatedWEBP",
                 "inputs": {"images": ["decode", 0], "filename_prefix": f"cinemo_{uuid.uuid4().hex[:8]}", "fps": 8.0,
                            "lossless": False, "quality": 50, "method": "fastest"}},
    }
    if all_in_one:
        prompt["sample"] = {"class_type": "CinemoSampler", "inputs": {
            "model": ["model", 0], "positive": ["cond", 0], "negative": ["cond", 1], "latent_image": ["cond", 2],
            "first_frame": ["first", 0], "seed": 4, "steps": steps, "cfg": 7.5, "sampler_name": "ddim",
            "scheduler": "cinemo_ddim", "dct_init": True, "low_pass": 0.23, "noise_timestep": 975}}
    else:
        prompt.update({
            "noise": {"class_type": "CinemoInitNoise", "inputs": {
                "first_frame": ["first", 0], "seed": 4, "low_pass": 0.23, "noise_timestep": 975, "mode": "dct"}},
            "sigmas": {"class_type": "CinemoScheduler", "inputs": {"steps": steps}},
            "sampler": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "ddim"}},
            "guider": {"class_type": "CFGGuider", "inputs": {
                "model": ["model", 0], "positive": ["cond", 0], "negative": ["cond", 1], "cfg": 7.5}},
            "sample": {"class_type": "SamplerCustomAdvanced", "inputs": {
                "noise": ["noise", 0], "guider": ["guider", 0], "sampler": ["sampler", 0], "sigmas": ["sigmas", 0],
                "latent_image": ["cond", 2]}},
        })
    return prompt


@contextmanager
def progress_hook(interrupt_at=None):
    """Records progress like the server's hook (main.hijack_progress) does; can interrupt at a given step."""
    import comfy.model_management
    import comfy.utils

    seen = []

    def hook(value, total, preview, node_id=None, prompt_id=None):
        comfy.model_management.throw_exception_if_processing_interrupted()
        seen.append((value, total))
        if interrupt_at is not None and value == interrupt_at:
            comfy.model_management.interrupt_current_processing(True)

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        yield seen
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        comfy.model_management.interrupt_current_processing(False)


def saved_webp(comfyui, outputs):
    (entry,) = outputs["save"]["images"]
    return comfyui.output / entry["subfolder"] / entry["filename"]


@pytest.mark.parametrize("all_in_one", [False, True], ids=["SamplerCustomAdvanced", "CinemoSampler"])
def test_full_graph_writes_a_16_frame_video(comfyui, comfy_models, all_in_one):
    steps = 3
    with progress_hook() as progress:
        outputs, _ = comfyui.run(animation_graph(comfy_models, steps=steps, all_in_one=all_in_one))
    with Image.open(saved_webp(comfyui, outputs)) as video:
        assert video.n_frames == 16
        assert video.size == (SIZE, SIZE)
        first = torch.from_numpy(np.asarray(video.convert("RGB"), dtype=np.float32))
        video.seek(15)
        last = torch.from_numpy(np.asarray(video.convert("RGB"), dtype=np.float32))
    assert (first - last).abs().mean() > 0.5  # the random model moved something
    assert [value for value, total in progress if total == steps] == list(range(1, steps + 1))


def test_interrupt_stops_within_one_step(comfyui, comfy_models):
    import execution
    from comfyui_harness import _ServerStub

    prompt = animation_graph(comfy_models, steps=6)
    ok, error, outputs, node_errors = comfyui.validate(prompt)
    assert ok, (error, node_errors)
    executor = execution.PromptExecutor(_ServerStub())
    with progress_hook(interrupt_at=2) as progress:
        executor.execute(prompt, str(uuid.uuid4()), {}, outputs)
    assert not executor.success
    events = [event for event, _ in executor.status_messages]
    assert "execution_interrupted" in events
    interrupted = dict(executor.status_messages)["execution_interrupted"]
    assert interrupted["node_type"] == "SamplerCustomAdvanced"
    assert [value for value, total in progress if total == 6] == [1, 2]


def test_object_info_lists_every_node_with_tooltips(comfyui):
    import nodes

    for node_id in OUR_NODES:
        node_class = nodes.NODE_CLASS_MAPPINGS[node_id]
        info = node_class.GET_NODE_INFO_V1()  # what GET /object_info serves for a V3 node
        assert info["name"] == node_id and info["category"] == "Cinemo"
        assert info["display_name"] and info["description"]
        inputs = {**info["input"]["required"], **info["input"].get("optional", {})}
        assert inputs
        for name, (_, options) in inputs.items():
            assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert info["output_tooltips"] and all(info["output_tooltips"]), node_id


def node_error_text(comfyui, prompt, node):
    ok, error, _, node_errors = comfyui.validate(prompt)
    assert not ok
    assert node in node_errors, node_errors
    return " ".join(f"{e['message']}: {e['details']}" for e in node_errors[node]["errors"])


@pytest.mark.parametrize("field,value,message", [
    ("intensity", 20, "intensity must be a whole number from 0 (least motion) to 19"),
    ("intensity", -1, "intensity must be"),
    ("frames", 1, "frames must be from 2"),
])
def test_conditioning_values_out_of_range_fail_validation(comfyui, comfy_models, field, value, message):
    prompt = animation_graph(comfy_models)
    prompt["cond"]["inputs"][field] = value
    text = node_error_text(comfyui, prompt, "cond")
    assert message in text and field in text


def test_frame_size_that_is_not_a_multiple_of_8_fails_validation(comfyui, comfy_models):
    prompt = animation_graph(comfy_models, width=100)
    assert "width must be a multiple of 8" in node_error_text(comfyui, prompt, "first")


@pytest.mark.parametrize("file_name", sorted(WRONG_FILES))
def test_wrong_files_in_the_loader_are_named(comfyui, comfy_models, file_name):
    prompt = animation_graph(comfy_models, model_name=file_name)
    text = node_error_text(comfyui, prompt, "model")
    assert "model_name" in text and WRONG_FILES[file_name] in text and "not a Cinemo UNet" in text


def test_missing_model_file_fails_validation(comfyui, comfy_models):
    prompt = animation_graph(comfy_models, model_name="nowhere.safetensors")
    assert "model_name: 'nowhere.safetensors' is not in models/cinemo" in node_error_text(comfyui, prompt, "model")


def run_error(comfyui, prompt):
    with pytest.raises(RuntimeError) as failure:
        comfyui.run(prompt)
    return str(failure.value)


def test_first_frame_of_another_size_fails_at_first_use(comfyui, comfy_models):
    prompt = animation_graph(comfy_models, steps=1, frames_first_frame=["other_first", 0])
    prompt["other_first"] = {"class_type": "CinemoFirstFrameEncode",
                             "inputs": {"image": ["image", 0], "vae": ["vae", 0], "width": 128, "height": SIZE}}
    message = run_error(comfyui, prompt)
    assert "CinemoResidualToFrames" in message
    assert "first_frame is for 128x64 pixels" in message and "residual is for 64x64" in message


def test_sd15_model_is_refused_by_name(comfyui, comfy_models):
    prompt = animation_graph(comfy_models, steps=1, conditioning_model=["sd15", 0])
    prompt["sd15"] = {"class_type": "UNETLoader", "inputs": {"unet_name": comfy_models.sd15_unet, "weight_dtype": "default"}}
    message = run_error(comfyui, prompt)
    assert "model: got a SD15 model" in message and "not a Cinemo model" in message

    prompt = animation_graph(comfy_models, steps=1, all_in_one=True)
    prompt["sd15"] = {"class_type": "UNETLoader", "inputs": {"unet_name": comfy_models.sd15_unet, "weight_dtype": "default"}}
    prompt["sample"]["inputs"]["model"] = ["sd15", 0]
    prompt["cond"]["inputs"].pop("model")
    message = run_error(comfyui, prompt)
    assert "CinemoSampler" in message and "model: got a SD15 model" in message
