"""The Cinemo MODEL in a real ComfyUI: loading, numerics against golden data, ComfyUI's machinery, memory."""

import pytest
import torch
from comfy_models import WRONG_FILES, call_node, pack_module
from golden_case import relative_error

SCALE = 0.18215


def golden_eps(patcher, golden, batch_context=None, base=None, motion=None, sample=None):
    """Epsilon for the golden single forward (t = 741), through ComfyUI's ``apply_model``."""
    import comfy.model_management

    comfy.model_management.load_models_gpu([patcher])
    model = patcher.model
    sigma = model.model_sampling.sigmas[int(golden["timestep"])].reshape(1)
    sample = golden["sample"] if sample is None else sample
    sigma = sigma.expand(sample.shape[0])
    x = sample * (1 + sigma[:, None, None, None, None] ** 2).sqrt()  # the DDPM sample in ComfyUI's space
    with torch.inference_mode():
        denoised = model.apply_model(
            x, sigma,
            c_crossattn=golden["encoder_hidden_states"] if batch_context is None else batch_context,
            base_content=golden["base_content"] if base is None else base,
            motion_ids=golden["motion_bucket_id"] if motion is None else motion,
        )
    return (x - denoised) / sigma[:, None, None, None, None]


def test_loader_lists_files_and_folders(comfy_models):
    listed = pack_module("nodes.model.loader").list_models()
    for name in (comfy_models.golden, comfy_models.clip_cinemo, "diffusers/cinemo_golden", *WRONG_FILES):
        assert name in listed
    assert "diffusers/not_cinemo" not in listed  # another model's diffusers folder
    assert not [name for name in listed if name.startswith(f"{comfy_models.golden}/")]  # a folder is one entry
    import nodes

    options = nodes.NODE_CLASS_MAPPINGS["CinemoModelLoader"].INPUT_TYPES()["required"]["model_name"][1]["options"]
    assert options == listed


@pytest.mark.parametrize("name", ["tiny_a", "diffusers/cinemo_golden"])
def test_loaded_model_reproduces_golden_forward(comfy_models, golden, name):
    model_base = pack_module("nodes.model.base_model")
    (patcher,) = call_node("CinemoModelLoader", model_name=name, weight_dtype="fp32")
    assert isinstance(patcher.model, model_base.CinemoModel)
    assert patcher.model.get_dtype() == torch.float32
    eps = golden_eps(patcher, golden)
    assert relative_error(eps, golden["out"]) <= 1e-5


@pytest.mark.parametrize("weight_dtype,stored,tolerance", [
    ("fp16", torch.float16, 5e-2),
    ("bf16", torch.bfloat16, 5e-2),
    ("fp8_e4m3fn", torch.float8_e4m3fn, 0.3),
    ("fp8_e5m2", torch.float8_e5m2, 0.5),
])
def test_weight_dtypes(comfy_models, golden, weight_dtype, stored, tolerance):
    (patcher,) = call_node("CinemoModelLoader", model_name=comfy_models.golden, weight_dtype=weight_dtype)
    weights = patcher.model.diffusion_model.conv_in.weight
    assert weights.dtype == stored
    # the CPU computes in float32 or (where it is native) bfloat16: cast on the fly, or bf16 weights as stored
    assert (patcher.model.manual_cast_dtype or stored) in (torch.float32, torch.bfloat16)
    eps = golden_eps(patcher, golden)
    error = relative_error(eps, golden["out"])
    print(f"{weight_dtype}: relative error vs golden fp32 {error:.2e}")
    assert torch.isfinite(eps).all()
    assert error <= tolerance
    bias = patcher.model.diffusion_model.mid_block.attentions[0].transformer_blocks[0].attn_temp.time_rel_pos_bias
    assert bias.relative_attention_bias.weight.dtype == stored
    assert bias(8, torch.device("cpu")).dtype == torch.float32  # looked up in float, whatever the storage


def test_sampling_settings_are_the_official_schedule(golden_model, golden):
    import comfy.model_sampling

    model = golden_model.model
    assert model.model_type.name == "EPS"
    assert model.latent_format.scale_factor == SCALE
    alphas = golden["alphas_cumprod"].double()
    assert relative_error(model.model_sampling.sigmas, ((1 - alphas) / alphas).sqrt()) <= 1e-6
    # ComfyUI's own construction from the sampling settings gives the same schedule (float64 instead of float32)
    settings = model.model_config.sampling_settings
    assert (settings["beta_schedule"], settings["linear_start"], settings["linear_end"]) == ("sqrt_linear", 1e-4, 0.02)
    rebuilt = comfy.model_sampling.ModelSamplingDiscrete(model.model_config)
    assert relative_error(rebuilt.sigmas, model.model_sampling.sigmas) <= 1e-5


def test_layers_are_comfy_ops_and_low_vram_loading_works(comfy_models, golden):
    (patcher,) = call_node("CinemoModelLoader", model_name=comfy_models.golden, weight_dtype="fp32")
    weighted = [m for m in patcher.model.diffusion_model.modules() if list(m.parameters(recurse=False))]
    assert weighted and all(hasattr(m, "comfy_cast_weights") for m in weighted)
    full = golden_eps(patcher, golden)

    # a LoRA-style weight patch on our key names, applied by ComfyUI
    delta = torch.tensor([0.5, -1.0, 2.0, 0.25])
    patched = patcher.clone()
    patched.add_patches({"diffusion_model.conv_out.bias": (delta,)}, strength_patch=1.0)
    assert torch.allclose(golden_eps(patched, golden) - full, delta.view(1, 4, 1, 1, 1).expand_as(full), atol=1e-4)

    # partial (low-VRAM) loading: every weighted layer then casts its weight per call
    import comfy.model_management

    comfy.model_management.unload_all_models()
    lowvram = patcher.clone()
    lowvram.patch_model(device_to=torch.device("cpu"), lowvram_model_memory=1, load_weights=True)
    try:
        assert lowvram.model.model_lowvram
        model = lowvram.model
        sigma = model.model_sampling.sigmas[741].reshape(1)
        x = golden["sample"] * (1 + sigma**2).sqrt()
        with torch.inference_mode():
            denoised = model.apply_model(x, sigma, c_crossattn=golden["encoder_hidden_states"],
                                         base_content=golden["base_content"], motion_ids=golden["motion_bucket_id"])
        assert relative_error((x - denoised) / sigma, full) <= 1e-6
    finally:
        lowvram.unpatch_model()


@pytest.mark.parametrize("kernel", ["attention_basic", "attention_sub_quad", "attention_split", "attention_pytorch"])
def test_every_comfy_attention_kernel_gives_golden(golden_model, golden, kernel, monkeypatch):
    import comfy.cli_args
    from comfy.ldm.modules import attention

    # as if asked for on the command line: on the CPU the pack otherwise takes SDPA over sub-quadratic attention
    monkeypatch.setattr(comfy.cli_args.args, "use_quad_cross_attention", True)
    chosen = getattr(attention, kernel)
    monkeypatch.setattr(attention, "optimized_attention", chosen)
    monkeypatch.setattr(attention, "optimized_attention_for_device", lambda *args, **kwargs: chosen)
    assert relative_error(golden_eps(golden_model, golden), golden["out"]) <= 1e-5


def test_pytorch_attention_split_into_sub_batches_gives_golden(golden_model, golden, monkeypatch):
    """Above SDP_BATCH_LIMIT (2**15 on NVIDIA) ComfyUI's PyTorch attention runs in sub-batches, another output path."""
    from comfy.ldm.modules import attention

    monkeypatch.setattr(attention, "SDP_BATCH_LIMIT", 4)
    monkeypatch.setattr(attention, "optimized_attention", attention.attention_pytorch)
    monkeypatch.setattr(attention, "optimized_attention_for_device", lambda *args, **kwargs: attention.attention_pytorch)
    assert relative_error(golden_eps(golden_model, golden), golden["out"]) <= 1e-5


def test_attention_override_from_transformer_options_is_used(golden_model, golden):
    calls = []

    def override(kernel, *args, **kwargs):
        calls.append(kwargs.get("mask") is not None)
        return kernel(*args, **kwargs)

    model = golden_model.model
    sigma = model.model_sampling.sigmas[741].reshape(1)
    x = golden["sample"] * (1 + sigma**2).sqrt()
    with torch.inference_mode():
        model.apply_model(x, sigma, c_crossattn=golden["encoder_hidden_states"], base_content=golden["base_content"],
                          motion_ids=golden["motion_bucket_id"],
                          transformer_options={"optimized_attention_override": override})
    assert True in calls and False in calls  # temporal (masked) and spatial attention both went through it


def test_batched_samples_keep_their_own_conditions(golden_model, golden):
    """cond and uncond (in either order) are rows of one batch: each row uses its own first frame and motion id."""
    sample = torch.cat([golden["sample"], golden["sample"].flip(-1)])
    context = torch.cat([golden["negative_encoder_hidden_states"], golden["encoder_hidden_states"]])
    base = torch.cat([golden["base_content"], -golden["base_content"]])
    motion = torch.tensor([8.0, 95.0])
    both = golden_eps(golden_model, golden, batch_context=context, base=base, motion=motion, sample=sample)
    for i in range(2):
        single = golden_eps(golden_model, golden, batch_context=context[i:i + 1], base=base[i:i + 1],
                            motion=motion[i:i + 1], sample=sample[i:i + 1])
        assert relative_error(both[i:i + 1], single) <= 1e-5
    assert relative_error(both[:1], both[1:]) > 1e-2


def test_extra_conds_turn_the_conditioning_into_unet_inputs(golden_model, golden):
    from comfy_models import golden_conditioning

    positive, _, latent, _ = golden_conditioning(golden)
    conds = golden_model.model.extra_conds(noise=latent["samples"], device=torch.device("cpu"),
                                           cross_attn=golden["encoder_hidden_states"], prompt_type="positive",
                                           **positive[0][1])
    assert relative_error(conds["base_content"].cond, golden["base_content"]) <= 1e-6
    # a plain float: ComfyUI casts float tensors among the conds to the compute dtype, which would round ids
    assert isinstance(conds["motion_ids"].cond, float) and conds["motion_ids"].cond == float(golden["motion_bucket_id"])
    exact = golden_model.model.extra_conds(noise=latent["samples"], device=torch.device("cpu"),
                                           cross_attn=golden["encoder_hidden_states"], prompt_type="positive",
                                           **{**positive[0][1], "cinemo_motion_id": 257.3})
    assert exact["motion_ids"].cond == 257.3  # bf16 would make it 256.0
    with pytest.raises(ValueError, match="positive conditioning has an area set"):
        golden_model.model.extra_conds(noise=latent["samples"], device=torch.device("cpu"),
                                       cross_attn=golden["encoder_hidden_states"], prompt_type="positive",
                                       **{**positive[0][1], "area": (8, 16, 0, 0)})
    with pytest.raises(ValueError, match="768|32"):
        golden_model.model.extra_conds(noise=latent["samples"], device=torch.device("cpu"),
                                       cross_attn=torch.zeros(1, 77, 768), prompt_type="positive", **positive[0][1])


def test_memory_required_is_the_measured_cost_of_a_step(golden_model):
    """memory_required equals the peak a real ComfyUI forward allocates (CPU: SDPA, taken over ComfyUI's
    sub-quadratic attention)."""
    import comfy.model_management

    from cinemo_core.model.memory import PeakTracker, step_memory_bytes

    comfy.model_management.load_models_gpu([golden_model])
    model = golden_model.model
    for batch, frames, height, width in [(2, 15, 16, 16), (1, 7, 8, 16)]:  # a 16-frame CFG step; the golden shape
        estimate = model.memory_required([batch, 4, frames, height, width], {"c_crossattn": [[1, 77, 32]] * batch})
        tracker = PeakTracker()
        with torch.inference_mode(), tracker:
            model.apply_model(torch.randn(batch, 4, frames, height, width), torch.full((batch,), 5.0),
                              c_crossattn=torch.randn(batch, 77, 32), base_content=torch.randn(batch, 4, 1, height, width),
                              motion_ids=torch.full((batch,), 90.0))
        print(f"{batch}x{frames + 1} frames at {height}x{width}: memory_required {estimate / 2**20:.2f} MiB, "
              f"measured {tracker.peak / 2**20:.2f} MiB")
        assert 0.9 <= tracker.peak / estimate <= 1.05
    # it grows with frames and batch like the real step, and uses the compute dtype
    one = model.memory_required([1, 4, 15, 40, 64])
    assert model.memory_required([2, 4, 15, 40, 64]) > 1.8 * one
    assert model.memory_required([1, 4, 31, 40, 64]) > 1.8 * one
    assert one == step_memory_bytes(model.cinemo_config, 1, 15, 40, 64, torch.float32, memory_efficient_attention=True)


def test_load_time_memory_estimate_sees_the_prompt_length(golden_model):
    from comfy.sampler_helpers import estimate_memory

    noise_shape = [1, 4, 7, 8, 16]
    short = {"positive": [{"cross_attn": torch.zeros(1, 77, 32)}]}
    long = {"positive": [{"cross_attn": torch.zeros(1, 3 * 77, 32)}]}
    assert estimate_memory(golden_model, noise_shape, long)[0] > estimate_memory(golden_model, noise_shape, short)[0]


def test_a_model_call_stops_when_interrupted(golden_model, golden):
    import comfy.model_management

    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            golden_eps(golden_model, golden)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert torch.isfinite(golden_eps(golden_model, golden)).all()


def test_official_config_builds_with_the_released_keys_and_shapes(comfyui):
    """The ComfyUI model for the released config has exactly the released checkpoint's keys and shapes."""
    import json

    import comfy.ops
    from golden_case import FIXTURES

    from cinemo_core import CinemoUNetConfig

    model = pack_module("nodes.model.base_model").CinemoDiffusionModel(
        CinemoUNetConfig.official(), dtype=torch.float16, device="meta", operations=comfy.ops.manual_cast
    )
    released = json.loads((FIXTURES / "cinemo_unet_full_keys.json").read_text())
    assert {key: list(value.shape) for key, value in model.state_dict().items()} == released
    assert model.dtype == torch.float16


def test_core_model_save_round_trips_through_the_loader(comfyui, comfy_models, golden):
    import shutil

    outputs, _ = comfyui.run({
        "load": {"class_type": "CinemoModelLoader", "inputs": {"model_name": comfy_models.golden, "weight_dtype": "fp32"}},
        "save": {"class_type": "ModelSave", "inputs": {"model": ["load", 0], "filename_prefix": "diffusion_models/cinemo_saved"}},
    })
    (saved,) = (comfyui.output / "diffusion_models").glob("cinemo_saved_*.safetensors")
    shutil.copy(saved, comfyui.models / "cinemo" / "round_trip.safetensors")
    (patcher,) = call_node("CinemoModelLoader", model_name="round_trip.safetensors", weight_dtype="fp32")
    assert relative_error(golden_eps(patcher, golden), golden["out"]) <= 1e-5
