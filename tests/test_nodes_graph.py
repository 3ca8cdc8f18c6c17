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
                    frames_first_frame=None, model_name=None, conditioning_model=None, clip_name=None):
    """API-format prompt: image -> Cinemo -> frames -> VAE Decode -> animated WEBP."""
    prompt = {
        "image": {"class_type": "LoadImage", "inputs": {"image": models.image}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": models.vae}},
        "clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": clip_name or models.clip_l, "type": "stable_diffusion"}},
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


def webp_frames(path) -> list[np.ndarray]:
    with Image.open(path) as video:
        frames = []
        for index in range(video.n_frames):
            video.seek(index)
            frames.append(np.asarray(video.convert("RGB")))
    return frames


@pytest.mark.parametrize("all_in_one", [False, True], ids=["SamplerCustomAdvanced", "CinemoSampler"])
def test_graph_without_first_frame_links_makes_the_same_video(comfyui, comfy_models, all_in_one):
    """The residual LATENT carries its first frame: the links after Cinemo Conditioning are optional."""
    wired = animation_graph(comfy_models, steps=2, frames=4, all_in_one=all_in_one)
    unwired = animation_graph(comfy_models, steps=2, frames=4, all_in_one=all_in_one)
    for node in ("to_frames", "sample" if all_in_one else "noise"):
        del unwired[node]["inputs"]["first_frame"]
    expected = webp_frames(saved_webp(comfyui, comfyui.run(wired)[0]))
    frames = webp_frames(saved_webp(comfyui, comfyui.run(unwired)[0]))
    assert len(frames) == 4
    assert all(np.array_equal(frame, reference) for frame, reference in zip(frames, expected))


def test_interrupt_stops_within_one_step(comfyui, comfy_models):
    import execution
    from comfyui_harness import RecordingServer

    prompt = animation_graph(comfy_models, steps=6)
    ok, error, outputs, node_errors = comfyui.validate(prompt)
    assert ok, (error, node_errors)
    executor = execution.PromptExecutor(RecordingServer())
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


def errors_by_input(comfyui, prompt, node):
    """{input name: [error text, as the HTTP 400 and the UI show it]} of one node's validation errors."""
    ok, _, _, node_errors = comfyui.validate(prompt)
    assert not ok and node in node_errors, node_errors
    found = {}
    for error in node_errors[node]["errors"]:
        found.setdefault(error["extra_info"].get("input_name"), []).append(f"{error['message']}: {error['details']}")
    return found


@pytest.mark.parametrize("values,expected", [
    ({"intensity": 20}, {"intensity": "bigger than max of 19"}),
    ({"intensity": -1}, {"intensity": "smaller than min of 0"}),
    ({"frames": 1}, {"frames": "smaller than min of 2"}),
    ({"intensity": 25, "frames": 1, "raw_motion_id": 5000.0},
     {"intensity": "bigger than max of 19", "frames": "smaller than min of 2", "raw_motion_id": "bigger than max"}),
])
def test_conditioning_values_out_of_range_fail_validation_on_their_own_inputs(comfyui, comfy_models, values, expected):
    prompt = animation_graph(comfy_models)
    prompt["cond"]["inputs"].update(values)
    found = errors_by_input(comfyui, prompt, "cond")
    assert sorted(found) == sorted(expected)  # every failing input, and no other
    for name, text in expected.items():
        assert len(found[name]) == 1 and text in found[name][0] and found[name][0].endswith(name)


def test_conditioning_values_from_links_are_checked_when_the_node_runs(comfyui, comfy_models):
    prompt = animation_graph(comfy_models, steps=1)
    prompt["strength"] = {"class_type": "PrimitiveInt", "inputs": {"value": 25}}
    prompt["cond"]["inputs"]["intensity"] = ["strength", 0]
    assert "intensity: intensity must be an integer from 0 (least motion) to 19" in run_error(comfyui, prompt)


@pytest.mark.parametrize("all_in_one", [False, True])
def test_seed_from_a_link_is_checked_by_the_pipelines_rule(comfyui, comfy_models, all_in_one):
    """One seed range everywhere: the nodes refuse what the standalone pipeline refuses, naming the input."""
    from cinemo_core.settings import MAX_SEED, SettingError, check_seed

    prompt = animation_graph(comfy_models, steps=1, frames=2, all_in_one=all_in_one)
    prompt["seed"] = {"class_type": "PrimitiveInt", "inputs": {"value": -5}}
    prompt["sample" if all_in_one else "noise"]["inputs"]["seed"] = ["seed", 0]
    with pytest.raises(SettingError) as refused:
        check_seed(-5)
    assert f"seed: {refused.value}" in run_error(comfyui, prompt) and str(MAX_SEED) in str(refused.value)


def test_raw_motion_id_outside_the_trained_ids_and_a_wide_crop_run_with_warnings(comfyui, comfy_models, caplog):
    """Issue 18: raw_motion_id 500 and a 2000x100 image (the square crop keeps 100 of its 2000 columns) run, and say so."""
    Image.fromarray(np.full((100, 2000, 3), 128, np.uint8)).save(comfyui.input / "wide.png")
    prompt = animation_graph(comfy_models, steps=1, frames=2)
    prompt["image"]["inputs"]["image"] = "wide.png"
    prompt["cond"]["inputs"]["raw_motion_id"] = 500.0
    with caplog.at_level("WARNING"):
        comfyui.run(prompt)
    messages = [record.getMessage() for record in caplog.records]
    assert any("raw motion id 500 is outside 80..99" in message for message in messages), messages
    assert any("2000x100 image" in message and "keeps only 5% of its width" in message for message in messages)


@pytest.mark.parametrize("width,height,failing", [(100, 64, ["width 100"]), (64, 70, ["height 70"]),
                                                  (100, 70, ["width 100", "height 70"])])
def test_frame_size_that_is_not_a_multiple_of_8_fails_validation(comfyui, comfy_models, width, height, failing):
    found = errors_by_input(comfyui, animation_graph(comfy_models, width=width, height=height), "first")
    assert sorted(found) == ["height", "width"]  # ComfyUI shows a validate_inputs result under each input it names
    for name in ("width", "height"):
        (text,) = found[name]
        assert f"{name} - the frame size must be multiples of 8" in text
        assert all(side in text for side in failing) and text.endswith(f"{'is' if len(failing) == 1 else 'are'} not.")


@pytest.mark.parametrize("file_name", sorted(WRONG_FILES))
def test_wrong_files_in_the_loader_are_named(comfyui, comfy_models, file_name):
    prompt = animation_graph(comfy_models, model_name=file_name)
    found = errors_by_input(comfyui, prompt, "model")
    assert list(found) == ["model_name"]
    assert WRONG_FILES[file_name] in found["model_name"][0] and "not a Cinemo UNet" in found["model_name"][0]


def test_missing_model_file_fails_validation(comfyui, comfy_models):
    prompt = animation_graph(comfy_models, model_name="nowhere.safetensors")
    found = errors_by_input(comfyui, prompt, "model")
    assert list(found) == ["model_name"]
    assert "model_name - 'nowhere.safetensors' is not in models/cinemo" in found["model_name"][0]


def test_missing_temporal_vae_fails_validation_with_the_readme_path(comfyui, comfy_models):
    prompt = animation_graph(comfy_models)
    prompt["tvae"] = {"class_type": "CinemoTemporalVAELoader", "inputs": {"vae_name": "Cinemo/vae_temporal_decoder"}}
    prompt["decode"] = {"class_type": "CinemoTemporalVAEDecode", "inputs": {
        "vae": ["tvae", 0], "samples": ["to_frames", 0], "frames_per_clip": 16, "chunk_size": 14}}
    found = errors_by_input(comfyui, prompt, "tvae")
    assert list(found) == ["vae_name"]
    assert "models/cinemo/Cinemo/vae_temporal_decoder/" in found["vae_name"][0]
    assert "no temporal VAE named 'Cinemo/vae_temporal_decoder'" in found["vae_name"][0]


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


@pytest.mark.parametrize("all_in_one", [False, True])
def test_text_encoder_with_missing_weights_fails_instead_of_writing_black_frames(comfyui, comfy_models, all_in_one):
    prompt = animation_graph(comfy_models, steps=2, all_in_one=all_in_one, clip_name=comfy_models.clip_l_no_prefix)
    with pytest.raises(RuntimeError, match=r"positive: the text embeddings contain NaN.*'text_model\.' prefix"):
        comfyui.run(prompt)
    assert not list(comfyui.output.glob(f"{prompt['save']['inputs']['filename_prefix']}*"))
