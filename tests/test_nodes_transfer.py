"""Motion transfer through ComfyUI: Encode Video, Invert Motion, Init Noise's inverted_motion and core samplers
reproduce the official video-editing script's three golden stages (``tiny_a/inversion_case``)."""

from __future__ import annotations

import pytest
import torch
from comfy_models import call_node
from golden_case import TINY_A, relative_error
from safetensors.torch import load_file

SCALE = 0.18215


@pytest.fixture(scope="module")
def case() -> dict[str, torch.Tensor]:
    return load_file(TINY_A / "inversion_case.safetensors")


def conditioning(base: torch.Tensor, context: torch.Tensor, frames: int):
    """Cinemo Conditioning with the golden text embeddings (32 wide: no text encoder makes them) and raw id 8."""
    first_frame = {"samples": base[:, :, 0] / SCALE}
    positive, negative, latent = call_node(
        "CinemoConditioning", positive=[[context, {}]], negative=[[torch.zeros_like(context), {}]],
        first_frame=first_frame, intensity=0, frames=frames, raw_motion_id=8.0,
    )
    return positive, negative, latent, first_frame


def invert(model, case, steps=10):
    positive, negative, _, _ = conditioning(case["source_base"], case["source_context"], 8)
    (inverted,) = call_node("CinemoInvertMotion", model=model, positive=positive, negative=negative,
                            residual={"samples": case["source_residual"] / SCALE}, steps=steps, cfg=1.0)
    return inverted


def custom_advanced(model, positive, negative, latent, noise, steps=10):
    (guider,) = call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=1.0)
    (sampler,) = call_node("KSamplerSelect", sampler_name="ddim")
    (sigmas,) = call_node("CinemoScheduler", steps=steps)
    output, _ = call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                          latent_image=latent)
    return output["samples"]


def test_inversion_reproduces_the_golden_inverted_latents(golden_model, case):
    inverted = invert(golden_model, case)
    assert set(inverted) == {"samples"}  # no first frame: the inverted motion animates another one
    error = relative_error(inverted["samples"] * SCALE, case["inverted_latents"])
    print(f"Cinemo Invert Motion vs golden: relative error {error:.2e}")
    assert error <= 1e-4


def test_init_noise_mixes_the_inverted_latents_at_985(golden_model, case):
    _, _, latent, edit_first = conditioning(case["edit_base"], case["target_context"], 8)
    (noise,) = call_node("CinemoInitNoise", first_frame=edit_first, seed=123, low_pass=0.23, noise_timestep=975,
                         mode="dct", inverted_motion={"samples": case["inverted_latents"] / SCALE})
    assert noise.noise_timestep == 985  # the node's default for this path, not noise_timestep
    assert relative_error(noise.generate_noise(latent), case["edit_init_latents"]) <= 1e-5
    # unwired, the edited first frame comes from the target's residual latent
    (unwired,) = call_node("CinemoInitNoise", seed=123, low_pass=0.23, noise_timestep=975, mode="dct",
                           inverted_motion={"samples": case["inverted_latents"] / SCALE})
    assert torch.equal(unwired.generate_noise(latent), noise.generate_noise(latent))
    (at_975,) = call_node("CinemoInitNoise", first_frame=edit_first, seed=0, low_pass=0.23, noise_timestep=985,
                          mode="dct", inverted_motion={"samples": case["inverted_latents"] / SCALE},
                          inverted_noise_timestep=975)
    assert relative_error(at_975.generate_noise(latent), case["edit_init_latents"]) > 5e-5  # 975 is told apart


@pytest.mark.parametrize("sampler_node", ["SamplerCustomAdvanced", "CinemoSampler"])
def test_edited_residual_through_the_nodes_matches_golden(golden_model, case, sampler_node):
    inverted = invert(golden_model, case)
    positive, negative, latent, edit_first = conditioning(case["edit_base"], case["target_context"], 8)
    (noise,) = call_node("CinemoInitNoise", first_frame=edit_first, seed=0, low_pass=0.23, noise_timestep=975,
                         mode="dct", inverted_motion=inverted)
    if sampler_node == "SamplerCustomAdvanced":
        residual = custom_advanced(golden_model, positive, negative, latent, noise)
    else:
        (out,) = call_node("CinemoSampler", model=golden_model, positive=positive, negative=negative,
                           latent_image=latent, first_frame=edit_first, seed=0, steps=10, cfg=1.0, sampler_name="ddim",
                           scheduler="cinemo_ddim", dct_init=True, low_pass=0.23, noise_timestep=975, noise=noise)
        residual = out["samples"]
    error = relative_error(residual * SCALE, case["edited_residual"])
    print(f"motion transfer through {sampler_node} vs golden edited residual: relative error {error:.2e}")
    assert error <= 1e-3


def test_inversion_reports_progress_every_step_and_stops_when_interrupted(golden_model, case):
    import comfy.model_management
    import comfy.utils

    seen = []

    def hook(value, total, preview, node_id=None, prompt_id=None):
        seen.append((value, total))
        if value == 2:
            comfy.model_management.interrupt_current_processing(True)

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            invert(golden_model, case, steps=6)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        comfy.model_management.interrupt_current_processing(False)
    assert seen == [(1, 6), (2, 6)]


def test_source_and_new_first_frame_of_other_sizes_are_named(golden_model, case):
    inverted = invert(golden_model, case, steps=2)
    _, _, latent, _ = conditioning(case["edit_base"], case["target_context"], 8)
    other_size = {"samples": torch.zeros(1, 4, 8, 8)}
    (_, _, small_latent) = call_node("CinemoConditioning", positive=[[case["target_context"], {}]],
                                     negative=[[case["target_context"], {}]], first_frame=other_size, intensity=9,
                                     frames=8)
    (noise,) = call_node("CinemoInitNoise", first_frame=other_size, seed=0, low_pass=0.23, noise_timestep=975,
                         mode="dct", inverted_motion=inverted)
    with pytest.raises(ValueError, match=r"inverted_motion holds 7 frames of 128x64 pixels.*latent_image"):
        noise.generate_noise(small_latent)
    (_, _, long_latent) = call_node("CinemoConditioning", positive=[[case["target_context"], {}]],
                                    negative=[[case["target_context"], {}]], first_frame={"samples": case["edit_base"][:, :, 0]},
                                    intensity=9, frames=16)
    (noise,) = call_node("CinemoInitNoise", first_frame={"samples": case["edit_base"][:, :, 0]}, seed=0,
                         low_pass=0.23, noise_timestep=975, mode="dct", inverted_motion=inverted)
    with pytest.raises(ValueError, match="frames to the source clip's frame count"):
        noise.generate_noise(long_latent)


def test_encode_video_takes_every_nth_frame_fitted_like_an_image(comfy_models):
    from cinemo_core.preprocess import fit_image

    (vae,) = call_node("VAELoader", vae_name=comfy_models.vae)
    clip = torch.rand(10, 40, 70, 3, generator=torch.Generator().manual_seed(2))
    first, residual = call_node("CinemoVideoEncode", images=clip, vae=vae, width=96, height=64, frames=4, frame_step=3)
    assert first["samples"].shape == (1, 4, 8, 12) and residual["samples"].shape == (1, 4, 3, 8, 12)
    with pytest.warns(UserWarning):
        fitted = fit_image(clip[[0, 3, 6, 9]], 96, 64)
    expected = vae.encode(((fitted + 1) / 2).movedim(1, -1))  # [4, 4, 8, 12]
    assert relative_error(first["samples"], expected[:1]) <= 1e-5
    assert relative_error(residual["samples"][0].transpose(0, 1), expected[1:] - expected[:1]) <= 1e-5
    # the residual carries the clip's first frame: Residual To Frames gives the clip's own frames back
    (frames,) = call_node("CinemoResidualToFrames", residual=residual)
    assert relative_error(frames["samples"], expected) <= 1e-5
    with pytest.raises(ValueError, match=r"images: the source clip has 10 frames, but 5 frames were asked for"):
        call_node("CinemoVideoEncode", images=clip, vae=vae, width=96, height=64, frames=5, frame_step=3)
