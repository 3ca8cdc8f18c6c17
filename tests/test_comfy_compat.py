"""Each reliance of ``nodes/comfy_compat.py`` on ComfyUI's internals, pinned by one test of the entry's name.

When a ComfyUI update breaks one of them, the test named after it fails and says what changed.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from comfy_models import pack_module
from torch import nn


@pytest.fixture(scope="module")
def compat(comfyui):
    return pack_module("nodes.comfy_compat")


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


class RecordingUNet(nn.Module):
    """A stand-in diffusion model that records how BaseModel builds it."""

    built_with: dict = {}

    def __init__(self, **kwargs) -> None:
        super().__init__()
        RecordingUNet.built_with = kwargs
        self.weight = nn.Parameter(torch.zeros(1, dtype=kwargs.get("dtype")))

    @property
    def dtype(self) -> torch.dtype:
        return self.weight.dtype


def test_base_model_builds_unet_model_from_the_config(compat):
    config = compat.ModelConfig({"width": 3})
    config.set_inference_dtype(torch.float32, None)
    model = compat.BaseModel(config, compat.EPS_PREDICTION, device="cpu", unet_model=RecordingUNet)
    assert isinstance(model.diffusion_model, RecordingUNet)
    assert RecordingUNet.built_with["width"] == 3
    assert {"dtype", "device", "operations"} <= set(RecordingUNet.built_with)
    assert model.get_dtype() == torch.float32 and model.manual_cast_dtype is None


def test_base_model_extra_conds_gets_noise_device_and_the_conditioning_keys(compat):
    import comfy.samplers

    seen = {}

    def extra_conds(**kwargs):
        seen.update(kwargs)
        return {}

    noise = torch.zeros(1, 4, 3, 8, 16)
    conds = [{"cross_attn": torch.zeros(1, 77, 8), "cinemo_first_frame": torch.ones(1, 4, 8, 16), "model_conds": {}}]
    comfy.samplers.encode_model_conds(extra_conds, conds, noise, "cpu", "negative")
    assert seen["noise"] is noise and seen["device"] == "cpu" and seen["prompt_type"] == "negative"
    assert seen["cinemo_first_frame"] is conds[0]["cinemo_first_frame"] and "cross_attn" in seen


def test_base_model_memory_required_is_called_with_the_latent_shape_and_cond_shapes(compat):
    import comfy.sampler_helpers

    assert parameters(compat.BaseModel.memory_required)[1:] == ["input_shape", "cond_shapes"]
    assert "cond_shapes=" in inspect.getsource(comfy.sampler_helpers.estimate_memory)
    assert parameters(compat.BaseModel.extra_conds_shapes)[1:] == ["kwargs"]


def test_model_config_takes_unet_config_and_inference_dtypes(compat):
    config = compat.ModelConfig({"anything": 1})
    config.set_inference_dtype(torch.float8_e4m3fn, torch.float32)
    assert config.unet_config["anything"] == 1
    assert config.unet_config["dtype"] == torch.float8_e4m3fn and config.manual_cast_dtype == torch.float32
    assert {"sampling_settings", "latent_format", "supported_inference_dtypes"} <= set(dir(compat.ModelConfig))


def test_sd15_latent_format_scale_and_preview_layout(compat, monkeypatch):
    import latent_preview
    from comfy.cli_args import LatentPreviewMethod, args

    monkeypatch.setattr(args, "preview_method", LatentPreviewMethod.Latent2RGB)
    latent_format = compat.SD15LatentFormat()
    assert latent_format.scale_factor == 0.18215
    assert len(latent_format.latent_rgb_factors) == 4
    latent_format.latent_dimensions = 3
    latent_format.taesd_decoder_name = None
    previewer = latent_preview.get_previewer(torch.device("cpu"), latent_format)
    image = previewer.decode_latent_to_preview(torch.zeros(1, 4, 3, 8, 16))
    assert image.size == (16, 8)


def test_model_sampling_discrete_set_sigmas(compat):
    class Sampling(compat.ModelSamplingDiscrete, compat.EpsilonPrediction):
        pass

    sampling = Sampling(None)
    sigmas = torch.linspace(0.1, 10.0, 100)
    sampling.set_sigmas(sigmas)
    assert float(sampling.sigma_max) == pytest.approx(10.0) and float(sampling.sigma_min) == pytest.approx(0.1)
    assert float(sampling.timestep(sigmas[42])) == pytest.approx(42.0)


def test_default_operations_embedding_takes_out_dtype(compat):
    import comfy.ops

    assert compat.default_operations.Embedding(4, 3)(torch.tensor([1]), out_dtype=torch.float32).dtype == torch.float32
    casting = comfy.ops.manual_cast.Embedding(4, 3, dtype=torch.float16)  # what fp8 / manual-cast weights use
    nn.init.ones_(casting.weight)
    assert casting(torch.tensor([1]), out_dtype=torch.float32).dtype == torch.float32
    for layer in ("Conv2d", "Linear", "GroupNorm", "LayerNorm"):
        assert issubclass(getattr(compat.default_operations, layer), getattr(nn, layer))


def test_cond_regular_batches_per_sample_and_cond_constant_stays_one_value(compat):
    first, second = compat.CONDRegular(torch.zeros(1, 2)), compat.CONDRegular(torch.ones(1, 2))
    assert torch.equal(first.concat([second]), torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    constant = compat.CONDConstant(90.0)
    assert constant.can_concat(compat.CONDConstant(90.0)) and constant.concat([compat.CONDConstant(90.0)]) == 90.0
    assert not constant.can_concat(compat.CONDConstant(80.0))


def test_model_patcher_takes_load_and_offload_devices(compat):
    assert {"model", "load_device", "offload_device"} <= set(parameters(compat.ModelPatcher.__init__))


def test_storage_and_manual_cast_dtype(compat):
    state_dict = {"w": torch.zeros(3, dtype=torch.float16)}
    dtype = compat.storage_dtype(state_dict, [torch.float16, torch.bfloat16, torch.float32])
    assert dtype in (torch.float16, torch.bfloat16, torch.float32)
    assert compat.manual_cast_dtype(torch.float8_e4m3fn, torch.device("cpu"), [torch.float32]) == torch.float32
    assert compat.manual_cast_dtype(torch.float32, torch.device("cpu"), [torch.float32]) is None
    assert isinstance(compat.load_device(), torch.device) and isinstance(compat.offload_device(), torch.device)
    assert isinstance(compat.intermediate_device(), torch.device)


def test_throw_if_interrupted(compat):
    import comfy.model_management

    compat.throw_if_interrupted()
    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            compat.throw_if_interrupted()
    finally:
        comfy.model_management.interrupt_current_processing(False)


def test_load_models(compat):
    import comfy.model_management

    assert {"memory_required", "force_full_load"} <= set(parameters(comfy.model_management.load_models_gpu))


def test_run_diffusion_model_wrappers(compat):
    import comfy.patcher_extension

    calls = []

    def wrapper(executor, x, *args, **kwargs):
        calls.append("wrapper")
        return executor(x + 1, *args, **kwargs)

    options = {}
    comfy.patcher_extension.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test", wrapper,
                                                 options, is_model_options=False)
    result = compat.run_diffusion_model_wrappers(lambda x, scale: x * scale, object(), options, 1, scale=10)
    assert calls == ["wrapper"] and result == 20


class _Stop(Exception):
    pass


def _post_cfg(args):
    return args["denoised"]


def test_add_sampling_check(compat, golden_model, golden):
    import comfy.controlnet
    import comfy.patcher_extension
    from comfy_models import call_node, golden_conditioning

    seen = []

    def check(setup):
        seen.append(setup)
        raise _Stop

    post_cfg = _post_cfg
    control = comfy.controlnet.ControlBase()
    model = golden_model.clone()
    # without the pack's own check, which would refuse the ControlNet first
    model.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "cinemo_sampling_check")
    model.set_model_sampler_post_cfg_function(post_cfg)
    model.set_model_attn1_patch(post_cfg)
    compat.add_sampling_check(model, "test_check", check)
    positive, negative, latent, _ = golden_conditioning(golden)
    controlled = [[positive[0][0], {**positive[0][1], "control": control}]]
    (sigmas,) = call_node("CinemoScheduler", steps=2)
    (noise,) = call_node("RandomNoise", noise_seed=0)
    (sampler,) = call_node("KSamplerSelect", sampler_name="ddim")
    cache = dict(reuse_threshold=0.2, start_percent=0.15, end_percent=0.95, verbose=False)
    easycache = call_node("EasyCache", model=model, **cache)[0]
    keeps_negative = easycache.clone()
    keeps_negative.set_model_sampler_post_cfg_function(post_cfg, disable_cfg1_optimization=True)
    for sampling, cfg in ((model, 7.5), (call_node("ModelSamplingSD3", model=model, shift=3.0)[0], 7.5),
                          (call_node("TorchCompileModel", model=model, backend="inductor")[0], 7.5),
                          (easycache, 1.0), (call_node("LazyCache", model=model, **cache)[0], 7.5),
                          (keeps_negative, 1.0)):
        (guider,) = call_node("CFGGuider", model=sampling, positive=controlled, negative=negative, cfg=cfg)
        with pytest.raises(_Stop):
            call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                      latent_image=latent)
    plain, flow, compiled, easy, lazy, kept = seen
    assert plain.negative_pass and not easy.negative_pass and kept.negative_pass
    assert easy.easycache and kept.easycache and not lazy.easycache and not plain.easycache
    assert plain.conds["positive"][0]["control"] is control
    assert "control" not in plain.conds["negative"][0]
    assert post_cfg in plain.sampler_functions
    assert plain.transformer_options["patches"]["attn1_patch"] == [post_cfg]
    assert not plain.flow_prediction and flow.flow_prediction
    assert not plain.compiled and compiled.compiled and compiled.device == golden_model.load_device
    assert plain.latent_shape == tuple(latent["samples"].shape) and plain.window_frames is None
    assert plain.memory_required(list(plain.latent_shape)) == golden_model.model.memory_required(
        list(plain.latent_shape))


def test_activation_memory_budget(compat):
    import comfy.model_management

    device = torch.device("cpu")
    budget = compat.activation_memory_budget(device)
    assert budget == comfy.model_management.get_total_memory(device) - comfy.model_management.extra_reserved_memory()
    assert budget > 0


def test_add_sampling_check_runs_with_the_options_it_returns(compat, golden_model, golden):
    import comfy.patcher_extension
    from comfy_models import call_node, golden_conditioning

    seen = []

    def recording_post_cfg(args):
        seen.append("adapted")
        return args["denoised"]

    def adapt(setup):
        assert setup.model_options is guider.model_options
        return {**setup.model_options, "sampler_post_cfg_function": [recording_post_cfg]}

    model = golden_model.clone()
    model.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "cinemo_sampling_check")
    compat.add_sampling_check(model, "test_adapt", adapt)
    positive, negative, latent, _ = golden_conditioning(golden)
    (sigmas,) = call_node("CinemoScheduler", steps=2)
    (noise,) = call_node("RandomNoise", noise_seed=0)
    (sampler,) = call_node("KSamplerSelect", sampler_name="ddim")
    (guider,) = call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=7.5)
    own = guider.model_options
    call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas, latent_image=latent)
    assert seen == ["adapted", "adapted"] and guider.model_options is own
    assert "sampler_post_cfg_function" not in own


def test_has_easycache_wrapper(compat, golden_model, golden):
    """Seen from inside a model call, where the sampler has put the MODEL's wrappers into transformer_options."""
    import comfy.patcher_extension
    from comfy_models import call_node, golden_conditioning

    seen = []

    def probe(executor, *args, **kwargs):
        seen.append(compat.has_easycache_wrapper(args[-1]))
        return executor(*args, **kwargs)

    cache = dict(reuse_threshold=0.0, start_percent=0.15, end_percent=0.95, verbose=False)
    positive, negative, latent, _ = golden_conditioning(golden)
    (sigmas,) = call_node("CinemoScheduler", steps=1)
    (noise,) = call_node("RandomNoise", noise_seed=0)
    (sampler,) = call_node("KSamplerSelect", sampler_name="ddim")
    for node in ("EasyCache", "LazyCache"):
        (model,) = call_node(node, model=golden_model, **cache)
        model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "probe", probe)
        (guider,) = call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=1.0)
        call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                  latent_image=latent)
    assert seen == [True, False]
    assert not compat.has_easycache_wrapper({})


def test_closure_values(compat, golden_model):
    from comfy_models import call_node

    (patched,) = call_node("SelfAttentionGuidance", model=golden_model, scale=0.7, blur_sigma=1.5)
    (post_cfg,) = patched.model_options["sampler_post_cfg_function"]
    values = compat.closure_values(post_cfg)
    assert values["scale"] == 0.7 and values["blur_sigma"] == 1.5
    assert compat.closure_values(_post_cfg) == {}


def test_calc_cond_batch_and_model_cond(compat, golden_model, golden):
    """A post-cfg function's ``uncond`` is a processed conditioning list: ``calc_cond_batch`` predicts for it
    and its ``model_conds`` hold what Cinemo's ``extra_conds`` made (the scaled first frame)."""
    from comfy_models import call_node, golden_conditioning

    seen = {}

    def post_cfg(args):
        seen["base"] = compat.model_cond(args["uncond"], "base_content")
        (seen["again"],) = compat.calc_cond_batch(args["model"], [args["uncond"]], args["input"], args["sigma"],
                                                  args["model_options"])
        seen["uncond_denoised"] = args["uncond_denoised"]
        return args["denoised"]

    model = golden_model.clone()
    model.set_model_sampler_post_cfg_function(post_cfg)
    positive, negative, latent, first_frame = golden_conditioning(golden)
    (sigmas,) = call_node("CinemoScheduler", steps=1)
    (noise,) = call_node("RandomNoise", noise_seed=0)
    (sampler,) = call_node("KSamplerSelect", sampler_name="ddim")
    (guider,) = call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=7.5)
    call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas, latent_image=latent)
    assert torch.allclose(seen["base"][:, :, 0], first_frame["samples"] * 0.18215, atol=1e-6)
    assert (seen["again"] - seen["uncond_denoised"]).abs().max() < 1e-5
    assert compat.model_cond(None, "base_content") is None
    assert compat.model_cond([{"model_conds": {}}], "base_content") is None


def test_defining_node(compat, golden_model):
    from comfy_models import call_node

    def sampler_functions(options):
        return [options.get("sampler_cfg_function"), options.get("sampler_calc_cond_batch_function"),
                *options.get("sampler_post_cfg_function", ())]

    for node, settings in {
        "SelfAttentionGuidance": dict(scale=0.5, blur_sigma=2.0),
        "SkipLayerGuidanceDiT": dict(double_layers="7", single_layers="7", scale=3.0, start_percent=0.0,
                                     end_percent=1.0, rescaling_scale=0.0),
        "SkipLayerGuidanceDiTSimple": dict(double_layers="7", single_layers="7", start_percent=0.0, end_percent=1.0),
        "VideoLinearCFGGuidance": dict(min_cfg=1.0),
        "VideoTriangleCFGGuidance": dict(min_cfg=1.0),
        "RenormCFG": dict(cfg_trunc=100, renorm_cfg=1.0),
    }.items():
        (patched,) = call_node(node, model=golden_model, **settings)
        found = {compat.defining_node(function) for function in sampler_functions(patched.model_options)}
        assert node in found, (node, found)
    (sd3,) = call_node("SkipLayerGuidanceSD3", model=golden_model, layers="7", scale=3.0, start_percent=0.0,
                       end_percent=1.0)
    assert "SkipLayerGuidanceDiT" in {compat.defining_node(f) for f in sampler_functions(sd3.model_options)}
    assert compat.defining_node(_post_cfg) is None  # not a closure of a node's method


@pytest.mark.parametrize("masked", [False, True])
def test_attention_kernel(compat, masked):
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 5, 4) for _ in range(3))
    bias = torch.randn(1, 2, 5, 5) if masked else None
    kernel = compat.attention_kernel(torch.device("cpu"), masked=masked)
    out = kernel(q, k, v, 2, mask=bias, skip_reshape=True, transformer_options={})
    expected = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    assert out.shape == (3, 5, 8)  # [B, N, heads * D]
    assert torch.allclose(out, expected.transpose(1, 2).reshape(3, 5, 8), atol=1e-5)


def test_attention_is_memory_efficient(compat):
    from comfy.ldm.modules import attention

    for name in ("optimized_attention", "attention_sub_quad", "attention_split", "attention_basic"):
        assert callable(getattr(attention, name))
    assert isinstance(compat.attention_is_memory_efficient(), bool)


def test_sampler_and_scheduler_names(compat):
    assert {"ddim", "euler", "dpmpp_2m", "uni_pc"} <= set(compat.sampler_names())
    assert {"karras", "ddim_uniform", "normal"} <= set(compat.scheduler_names())


def test_scheduler_sigmas(compat, golden_model):
    euler = compat.scheduler_sigmas(golden_model, 5, "euler", "karras")
    uni_pc = compat.scheduler_sigmas(golden_model, 5, "uni_pc", "karras")
    assert euler.shape == uni_pc.shape == (6,) and float(euler[-1]) == 0.0
    assert not torch.allclose(euler, uni_pc)  # the sampler takes part: uni_pc drops the penultimate sigma


def test_fit_latent_channels(compat, golden_model):
    wrong = torch.zeros(1, 16, 3, 8, 8)
    assert compat.fit_latent_channels(golden_model, wrong).shape == (1, 4, 3, 8, 8)
    right = torch.ones(1, 4, 3, 8, 8)
    assert compat.fit_latent_channels(golden_model, right) is right


def test_sample_with_guidance(compat):
    import comfy.samplers
    import latent_preview

    assert parameters(comfy.samplers.CFGGuider.sample)[1:9] == [
        "noise", "latent_image", "sampler", "sigmas", "denoise_mask", "callback", "disable_pbar", "seed"
    ]
    assert parameters(latent_preview.prepare_callback)[:2] == ["model", "steps"]
    assert callable(comfy.samplers.sampler_object)


def test_conditioning_with(compat):
    text = torch.zeros(1, 77, 8)
    conditioning = [[text, {"pooled_output": None}]]
    out = compat.conditioning_with(conditioning, {"cinemo_motion_id": 90.0})
    assert out[0][0] is text and out[0][1] == {"pooled_output": None, "cinemo_motion_id": 90.0}
    assert conditioning[0][1] == {"pooled_output": None}


def test_progress_bar(compat):
    import comfy.utils

    updates = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, **kwargs: updates.append((value, total)))
    try:
        bar = compat.ProgressBar(3)
        bar.update(1)
        bar.update(1)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    assert updates == [(1, 3), (2, 3)]


def test_model_folders(compat, tmp_path):
    import folder_paths

    assert isinstance(compat.models_dir(), str)
    compat.register_model_folder("cinemo_compat_test", str(tmp_path), {".safetensors"})
    compat.register_model_folder("cinemo_compat_test", str(tmp_path), {".safetensors"})
    paths, extensions = folder_paths.folder_names_and_paths["cinemo_compat_test"]
    assert paths == [str(tmp_path)] and extensions == {".safetensors"}
    assert compat.model_folder_paths("cinemo_compat_test") == [str(tmp_path)]
    assert compat.model_folder_paths("no_such_folder_here") == []


@pytest.fixture(scope="module")
def svd_vae(compat):
    """ComfyUI's SVD VAE, built from nothing but its SGM marker key, with random weights."""
    vae = compat.VAE(sd={"decoder.mid.block_1.mix_factor": torch.zeros(1)})
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in vae.first_stage_model.parameters():  # missing weights are left uninitialised
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return vae


def test_has_temporal_decoder(compat, svd_vae):
    assert compat.has_temporal_decoder(svd_vae)
    assert not compat.has_temporal_decoder(object())


def test_decode_as_one_clip(compat, svd_vae):
    frames = compat.decode_as_one_clip(svd_vae, torch.zeros(3, 4, 2, 2))
    assert frames.shape == (3, 3, 16, 16) and frames.dtype == torch.float32
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0


def test_load_vae_for_decoding(compat, svd_vae):
    compat.load_vae_for_decoding(svd_vae, (3, 4, 2, 2), 3)
    assert svd_vae.memory_used_decode((3, 4, 2, 2), svd_vae.vae_dtype) > 0


def test_encode_and_decode_images_and_latent_layout(compat, svd_vae):
    assert compat.vae_latent_layout(svd_vae) == (4, 2)
    latents = compat.encode_images(svd_vae, torch.rand(1, 16, 16, 3))
    assert latents.shape == (1, 4, 2, 2)
    assert compat.decode_images(svd_vae, latents).shape == (1, 16, 16, 3)


def test_custom_sampler(compat, golden_model, golden):
    from comfy_models import golden_conditioning

    positive, negative, latent, _ = golden_conditioning(golden)
    start = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(1))
    sigmas = torch.tensor([0.5, 2.0, 7.0])
    seen = {}

    def function(model, x, sigmas, extra_args=None, callback=None, disable=None):
        seen["x"] = x.clone()
        denoised = model(x, sigmas[1] * x.new_ones([x.shape[0]]), **(extra_args or {}))
        callback({"x": x, "i": 0, "sigma": sigmas[1], "sigma_hat": sigmas[1], "denoised": denoised})
        seen["denoised"] = denoised
        return x * 2

    out = compat.sample_with_guidance(golden_model, positive, negative, 1.0, torch.zeros_like(start), start,
                                      compat.custom_sampler(function), sigmas, seed=0)
    assert torch.allclose(seen["x"], start * 0.18215)  # the latent in model space, zero noise added
    assert seen["denoised"].shape == start.shape and not torch.equal(seen["denoised"], seen["x"])
    assert torch.allclose(out, start * 2, atol=1e-6)  # back in LATENT space, not rescaled by the last sigma


def test_add_sampled_latent_function(compat, golden_model, golden):
    """The function gets the latent and the prepared mask in the model's space and its result is the sample."""
    import comfy.patcher_extension
    from comfy_models import call_node, golden_conditioning

    seen = {}

    def finish(samples, latent_image, denoise_mask):
        seen.update(samples=samples, latent_image=latent_image, denoise_mask=denoise_mask)
        return torch.full_like(samples, 0.18215)

    model = golden_model.clone()
    model.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, "cinemo_keep_masked_residual")
    compat.add_sampled_latent_function(model, "test_finish", finish)
    positive, negative, latent, _ = golden_conditioning(golden)
    latent = {"samples": torch.ones_like(latent["samples"]), "noise_mask": torch.rand(1, 1, 8, 16)}
    (sigmas,) = call_node("CinemoScheduler", steps=2)
    (noise,) = call_node("RandomNoise", noise_seed=0)
    (sampler,) = call_node("KSamplerSelect", sampler_name="euler")
    (guider,) = call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=7.5)
    out, _ = call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                       latent_image=latent)
    assert torch.allclose(out["samples"], torch.ones_like(out["samples"]))  # process_latent_out follows
    assert torch.allclose(seen["latent_image"], torch.full_like(seen["latent_image"], 0.18215))  # model space
    assert seen["denoise_mask"].shape == seen["samples"].shape == latent["samples"].shape
