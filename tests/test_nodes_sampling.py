"""Sampling in a real ComfyUI: our MODEL, NOISE and SIGMAS through core samplers reproduce the official sampler.

The golden ``tiny_a`` case (official Cinemo code, 10 DDIM steps, CFG 7.5) is fed in as conditioning tensors
(its text embeddings are 32 wide, so no text encoder can make them) and run through core nodes.
"""

import dataclasses
import math

import pytest
import torch
from comfy_models import call_node, golden_conditioning
from golden_case import relative_error

SCALE = 0.18215


@pytest.fixture(scope="module")
def golden_inputs(golden_model, golden):
    return golden_conditioning(golden)


def golden_noise(first_frame, golden, mode="dct"):
    """Our Init Noise node with the golden Gaussian draw in place of a seeded one."""
    (noise,) = call_node("CinemoInitNoise", first_frame=first_frame, seed=0, low_pass=0.23, noise_timestep=975, mode=mode)
    return dataclasses.replace(noise, base_noise=golden["dct_noise"])


def custom_advanced(model, positive, negative, latent, noise, sigmas, sampler_name="ddim", cfg=7.5):
    (guider,) = call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=cfg)
    (sampler,) = call_node("KSamplerSelect", sampler_name=sampler_name)
    output, _ = call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                          latent_image=latent)
    return output["samples"]


def test_init_noise_is_the_official_dct_init(golden_inputs, golden):
    _, _, latent, first_frame = golden_inputs
    x_t = golden_noise(first_frame, golden).generate_noise(latent)
    assert relative_error(x_t, golden["dct_latents"]) <= 1e-6

    def seeded(seed, mode="dct"):
        return call_node("CinemoInitNoise", first_frame=first_frame, seed=seed, low_pass=0.23, noise_timestep=975,
                         mode=mode)[0].generate_noise(latent)

    assert torch.equal(seeded(5), seeded(5))
    assert relative_error(seeded(5), seeded(6)) > 0.5
    generator = torch.Generator().manual_seed(5)
    assert torch.equal(seeded(5, "plain"), torch.randn(tuple(latent["samples"].shape), generator=generator))
    assert relative_error(seeded(5, "fft"), seeded(5)) > 1e-3


def test_scheduler_gives_the_official_ddim_timesteps(golden_model, golden):
    (sigmas,) = call_node("CinemoScheduler", steps=10)
    alphas = golden["alphas_cumprod"].double()
    timesteps = golden["timesteps_used"]
    expected = torch.cat([((1 - alphas[timesteps]) / alphas[timesteps]).sqrt(), ((1 - alphas[0]) / alphas[0]).sqrt()[None]])
    assert sigmas.shape == (11,)
    assert relative_error(sigmas, expected) <= 1e-6
    model_sampling = golden_model.get_model_object("model_sampling")
    assert torch.equal(model_sampling.timestep(sigmas[:-1]), timesteps)
    (fifty,) = call_node("CinemoScheduler", steps=50)
    assert model_sampling.timestep(fifty[:-1]).tolist() == list(range(981, 0, -20))


def test_sampler_custom_advanced_reproduces_golden(golden_model, golden_inputs, golden):
    positive, negative, latent, first_frame = golden_inputs
    (sigmas,) = call_node("CinemoScheduler", steps=10)
    residual = custom_advanced(golden_model, positive, negative, latent, golden_noise(first_frame, golden), sigmas)
    error = relative_error(residual * SCALE, golden["sampled_residual"])
    print(f"SamplerCustomAdvanced + CinemoScheduler + ddim vs golden: relative error {error:.2e}")
    assert error <= 1e-3


def test_ksampler_reproduces_golden(golden_model, golden_inputs, golden):
    """Core KSampler draws its own noise; the golden x_T reaches it through the latent it adds the noise to."""
    import comfy.sample
    import comfy.samplers

    positive, negative, latent, _ = golden_inputs
    seed = 11
    sigma0 = float(comfy.samplers.KSampler(golden_model, 10, "cpu", "ddim", "ddim_uniform").sigmas[0])
    own_noise = comfy.sample.prepare_noise(latent["samples"], seed)
    offset = (golden["dct_latents"] * math.sqrt(1 + sigma0**2) - sigma0 * own_noise) / SCALE
    (output,) = call_node("KSampler", model=golden_model, seed=seed, steps=10, cfg=7.5, sampler_name="ddim",
                          scheduler="ddim_uniform", positive=positive, negative=negative,
                          latent_image={"samples": offset}, denoise=1.0)
    error = relative_error(output["samples"] * SCALE, golden["sampled_residual"])
    print(f"KSampler ddim + ddim_uniform vs golden: relative error {error:.2e}")
    assert error <= 1e-2


def _start_probe():
    """A SAMPLER that returns its starting point unchanged: shows how ComfyUI scaled the NOISE."""
    import comfy.samplers

    return comfy.samplers.KSAMPLER(lambda model, x, sigmas, **kwargs: x)


@pytest.mark.parametrize("scheduler", ["cinemo", "ddim_uniform", "karras", "normal"])
def test_init_noise_starts_where_comfyui_scales_it(golden_model, golden_inputs, golden, scheduler):
    """x_T is handed to ComfyUI's own noise scaling: exact when the sigmas start at sigma_max, otherwise off by
    sqrt(1 + sigma_0^2) / sigma_0 - 1 (1.3e-4 at this 10-step start, t = 901; 2.9e-5 at 50 steps' 981)."""
    positive, negative, latent, first_frame = golden_inputs
    if scheduler == "cinemo":
        (sigmas,) = call_node("CinemoScheduler", steps=10)
    else:
        (sigmas,) = call_node("BasicScheduler", model=golden_model, scheduler=scheduler, steps=10, denoise=1.0)
    (guider,) = call_node("CFGGuider", model=golden_model, positive=positive, negative=negative, cfg=7.5)
    start, _ = call_node("SamplerCustomAdvanced", noise=golden_noise(first_frame, golden), guider=guider,
                         sampler=_start_probe(), sigmas=sigmas, latent_image=latent)
    sigma0 = float(sigmas[0])
    sigma_max = float(golden_model.get_model_object("model_sampling").sigma_max)
    at_max = math.isclose(sigma0, sigma_max, rel_tol=1e-5)
    assert at_max == (scheduler in ("karras", "normal"))  # both kinds of start are covered
    exact = golden["dct_latents"].double() * math.sqrt(1 + sigma0**2)  # x_T in ComfyUI's sampling space
    offset = 0.0 if at_max else math.sqrt(1 + sigma0**2) / sigma0 - 1
    assert offset < 2e-4
    assert relative_error(start["samples"] * SCALE, exact) <= offset + 1e-6
    if not at_max:
        assert relative_error(start["samples"] * SCALE, exact) >= offset / 2  # ComfyUI's scaling, not ours


def test_cinemo_sampler_equals_the_custom_graph(golden_model, golden_inputs):
    positive, negative, latent, first_frame = golden_inputs
    common = dict(model=golden_model, positive=positive, negative=negative, latent_image=latent,
                  first_frame=first_frame, seed=21, steps=6, cfg=7.5, low_pass=0.23, noise_timestep=975)
    (official,) = call_node("CinemoSampler", sampler_name="ddim", scheduler="cinemo_ddim", dct_init=True, **common)
    (noise,) = call_node("CinemoInitNoise", first_frame=first_frame, seed=21, low_pass=0.23, noise_timestep=975,
                         mode="dct")
    (sigmas,) = call_node("CinemoScheduler", steps=6)
    expected = custom_advanced(golden_model, positive, negative, latent, noise, sigmas)
    assert relative_error(official["samples"], expected) <= 1e-6

    (core,) = call_node("CinemoSampler", sampler_name="euler", scheduler="karras", dct_init=False, **common)
    (noise,) = call_node("CinemoInitNoise", first_frame=first_frame, seed=21, low_pass=0.23, noise_timestep=975,
                         mode="plain")
    (sigmas,) = call_node("BasicScheduler", model=golden_model, scheduler="karras", steps=6, denoise=1.0)
    expected = custom_advanced(golden_model, positive, negative, latent, noise, sigmas, sampler_name="euler")
    assert relative_error(core["samples"], expected) <= 1e-6
    assert relative_error(core["samples"], official["samples"]) > 1e-2


def test_residual_to_frames_matches_golden_video_latents(comfyui, golden):
    first_frame = {"samples": golden["base_content"][:, :, 0] / SCALE}
    residual = {"samples": golden["sampled_residual"] / SCALE}
    (frames,) = call_node("CinemoResidualToFrames", residual=residual, first_frame=first_frame)
    expected = (golden["video_latents"] / SCALE)[0].transpose(0, 1)  # [8 frames, 4, h, w]
    assert frames["samples"].shape == (8, 4, 8, 16)
    assert relative_error(frames["samples"], expected) <= 1e-6
    # two videos come video after video, each starting with its own first frame
    two_first = {"samples": torch.cat([first_frame["samples"], -first_frame["samples"]])}
    two_residual = {"samples": torch.cat([residual["samples"], 2 * residual["samples"]])}
    (both,) = call_node("CinemoResidualToFrames", residual=two_residual, first_frame=two_first)
    assert both["samples"].shape == (16, 4, 8, 16)
    assert torch.equal(both["samples"][:8], frames["samples"])
    assert torch.equal(both["samples"][8], -first_frame["samples"][0])
    assert torch.allclose(both["samples"][9:], -first_frame["samples"] + 2 * residual["samples"][0].transpose(0, 1))


def test_first_frame_of_another_size_is_named(golden_model, golden_inputs, golden):
    positive, negative, latent, first_frame = golden_inputs
    wrong = {"samples": torch.zeros(1, 4, 8, 8)}
    with pytest.raises(ValueError, match=r"first_frame.*64x64 pixels.*residual is for 128x64"):
        call_node("CinemoResidualToFrames", residual=latent, first_frame=wrong)
    with pytest.raises(ValueError, match=r"first_frame .*64x64.*latent_image is for 128x64"):
        call_node("CinemoSampler", model=golden_model, positive=positive, negative=negative, latent_image=latent,
                  first_frame=wrong, seed=0, steps=2, cfg=7.5, sampler_name="ddim", scheduler="cinemo_ddim",
                  dct_init=True, low_pass=0.23, noise_timestep=975)
    (noise,) = call_node("CinemoInitNoise", first_frame=wrong, seed=0, low_pass=0.23, noise_timestep=975, mode="dct")
    with pytest.raises(ValueError, match="first_frame"):
        noise.generate_noise(latent)
    # a latent of another size reaching the model through core nodes is caught when the model is conditioned
    (sigmas,) = call_node("CinemoScheduler", steps=2)
    (plain,) = call_node("RandomNoise", noise_seed=0)
    with pytest.raises(ValueError, match=r"first frame in the (positive|negative) conditioning.*latent_image"):
        custom_advanced(golden_model, positive, negative, {"samples": torch.zeros(1, 4, 7, 8, 8)}, plain, sigmas)


def test_conditioning_without_first_frame_is_explained(golden_model, golden_inputs, golden):
    positive, _, latent, _ = golden_inputs
    (sigmas,) = call_node("CinemoScheduler", steps=2)
    (noise,) = call_node("RandomNoise", noise_seed=0)
    bare_negative = [[golden["negative_encoder_hidden_states"], {}]]
    with pytest.raises(ValueError, match="negative conditioning .* no Cinemo first frame.*Cinemo Conditioning"):
        custom_advanced(golden_model, positive, bare_negative, latent, noise, sigmas)


@pytest.mark.parametrize("method", ["latent2rgb", "taesd", "auto"])
def test_progress_and_previews_come_every_step(golden_model, golden_inputs, method, monkeypatch):
    import comfy.utils
    import latent_preview
    from comfy.cli_args import LatentPreviewMethod, args

    monkeypatch.setattr(args, "preview_method", LatentPreviewMethod(method))
    # TAESD decodes 4-D latents only; a 5-D video latent must get Latent2RGB whatever is installed
    previewer = latent_preview.get_previewer(torch.device("cpu"), golden_model.model.latent_format)
    assert isinstance(previewer, latent_preview.Latent2RGBPreviewer)
    updates = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, **kwargs: updates.append((value, total, preview)))
    try:
        positive, negative, latent, first_frame = golden_inputs
        call_node("CinemoSampler", model=golden_model, positive=positive, negative=negative, latent_image=latent,
                  first_frame=first_frame, seed=1, steps=3, cfg=7.5, sampler_name="ddim", scheduler="cinemo_ddim",
                  dct_init=True, low_pass=0.23, noise_timestep=975)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    assert [(value, total) for value, total, _ in updates] == [(1, 3), (2, 3), (3, 3)]
    for _, _, (image_format, image, _) in updates:
        assert image_format == "JPEG" and image.size == (16, 8)  # latent width x height


def test_first_frame_encode_fits_like_the_official_code(comfy_models):
    from cinemo_core.preprocess import fit_image

    (vae,) = call_node("VAELoader", vae_name=comfy_models.vae)
    torch.manual_seed(0)
    images = torch.rand(2, 50, 70, 3)
    (latent,) = call_node("CinemoFirstFrameEncode", image=images, vae=vae, width=96, height=64)
    assert latent["samples"].shape == (2, 4, 8, 12)
    with pytest.warns(UserWarning, match="trained at 512x320"):
        fitted = fit_image(images, 96, 64)
    expected = vae.encode(((fitted + 1) / 2).movedim(1, -1))
    assert torch.equal(latent["samples"], expected)
    (second,) = call_node("CinemoFirstFrameEncode", image=images[1:], vae=vae, width=96, height=64)
    assert relative_error(second["samples"], latent["samples"][1:]) <= 1e-5  # image n -> video n


def test_non_finite_values_are_stopped_where_they_appear(golden_model, golden):
    positive, negative, latent, first_frame = golden_conditioning(golden)
    nan_text = golden["encoder_hidden_states"].clone()
    nan_text[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"^positive: the text embeddings contain NaN"):
        call_node("CinemoConditioning", positive=[[nan_text, {}]], negative=negative, first_frame=first_frame,
                  intensity=9, frames=8)
    bad_first = {"samples": first_frame["samples"].clone()}
    bad_first["samples"][0, 0, 0, 0] = float("nan")
    bad_positive, bad_negative, _ = call_node(
        "CinemoConditioning", positive=[[golden["encoder_hidden_states"], {}]],
        negative=[[golden["negative_encoder_hidden_states"], {}]], first_frame=bad_first, intensity=9, frames=8)
    with pytest.raises(ValueError, match="UNet returned NaN or infinite values: the first frame's latent is not finite"):
        call_node("CinemoSampler", model=golden_model, positive=bad_positive, negative=bad_negative,
                  latent_image=latent, first_frame=first_frame, seed=0, steps=2, cfg=7.5, sampler_name="ddim",
                  scheduler="cinemo_ddim", dct_init=True, low_pass=0.23, noise_timestep=975)
    nan_residual = {"samples": torch.full_like(latent["samples"], float("nan"))}
    with pytest.raises(ValueError, match=r"^residual: the sampled motion residual contains NaN"):
        call_node("CinemoResidualToFrames", residual=nan_residual, first_frame=first_frame)


def test_first_frame_is_encoded_in_float32_even_by_a_bf16_vae(comfy_models):
    """Every frame is this latent plus a residual: ComfyUI's bf16 VAE dtype must not round it."""
    import comfy.sd
    import comfy.utils
    import folder_paths

    from cinemo_core.preprocess import fit_image

    weights = comfy.utils.load_torch_file(folder_paths.get_full_path("vae", comfy_models.vae))
    rounded = {key: value.to(torch.bfloat16) for key, value in weights.items()}
    bf16_vae = comfy.sd.VAE(sd=rounded, dtype=torch.bfloat16)
    fp32_vae = comfy.sd.VAE(sd={key: value.float() for key, value in rounded.items()}, dtype=torch.float32)
    torch.manual_seed(3)
    images = torch.rand(1, 70, 100, 3)
    (latent,) = call_node("CinemoFirstFrameEncode", image=images, vae=bf16_vae, width=96, height=64)
    with pytest.warns(UserWarning):
        pixels = ((fit_image(images, 96, 64) + 1) / 2).movedim(1, -1)
    reference = fp32_vae.encode(pixels)
    assert relative_error(latent["samples"], reference) <= 1e-5
    assert relative_error(bf16_vae.encode(pixels), reference) > 1e-3  # what a bf16 encode would have given
    assert bf16_vae.vae_dtype == torch.bfloat16  # the VAE is left as it was
    assert {p.dtype for p in bf16_vae.first_stage_model.parameters()} == {torch.bfloat16}


def test_last_frame_is_the_last_frame_latent_exactly(comfyui, golden):
    first_frame = {"samples": golden["base_content"][:, :, 0] / SCALE}
    residual = {"samples": golden["sampled_residual"] / SCALE}
    (last,) = call_node("CinemoLastFrame", residual=residual, first_frame=first_frame)
    (frames,) = call_node("CinemoResidualToFrames", residual=residual, first_frame=first_frame)
    assert torch.equal(last["samples"], frames["samples"][-1:])  # what decoding the last frame starts from
    assert relative_error(last["samples"], golden["video_latents"][:, :, -1] / SCALE) <= 1e-6
    with pytest.raises(ValueError, match="residual: the sampled motion residual contains NaN"):
        call_node("CinemoLastFrame", residual={"samples": residual["samples"] * float("nan")}, first_frame=first_frame)


def test_a_run_that_cannot_fit_is_refused_before_the_first_step(golden_model, golden_inputs, monkeypatch):
    """With an injected small budget the Cinemo Sampler refuses before any UNet call, with the estimate and
    what to change; in context windows only the window has to fit."""
    from comfy_models import pack_module

    patches = pack_module("nodes.model.patches")
    positive, negative, latent, first_frame = golden_inputs
    videos, channels, frames, height, width = latent["samples"].shape
    one_pass = golden_model.model.memory_required([videos, channels, frames, height, width])
    window = golden_model.model.memory_required([videos, channels, 3, height, width])
    assert window < one_pass
    monkeypatch.setattr(patches, "activation_memory_budget", lambda device: one_pass - 1)
    calls = []
    hook = golden_model.model.diffusion_model.conv_in.register_forward_pre_hook(lambda *_: calls.append(1))
    settings = dict(positive=positive, negative=negative, latent_image=latent, first_frame=first_frame, seed=0,
                    steps=2, cfg=7.5, sampler_name="ddim", scheduler="cinemo_ddim", dct_init=True, low_pass=0.23,
                    noise_timestep=975)
    try:
        with pytest.raises(ValueError, match=r"^This run cannot fit on cpu: one denoising step needs about") as caught:
            call_node("CinemoSampler", model=golden_model, **settings)
        assert calls == []
        message = str(caught.value)
        assert f"1 video x {frames + 1} frames at {width * 8}x{height * 8} pixels" in message
        assert "half the width and height" in message and "fewer frames" in message
        (windowed,) = call_node("CinemoContextWindows", model=golden_model, window_frames=4, overlap=1,
                                schedule="standard_static", fuse_method="pyramid")
        monkeypatch.setattr(patches, "activation_memory_budget", lambda device: window)
        (out,) = call_node("CinemoSampler", model=windowed, **settings)
        assert torch.isfinite(out["samples"]).all() and calls
    finally:
        hook.remove()
