"""The residual LATENT carries its first frame: the nodes after Cinemo Conditioning need no first_frame link.

Every node that re-took ``first_frame`` (Init Noise, Sampler, Residual To Frames, Last Frame) gives bit for bit
what it gives with the link, after core samplers, context windows and the LATENT nodes that keep the dict; where
a node in between re-batches the residual, or nothing carries a first frame, the error says to wire it.
"""

import pytest
import torch
from comfy_models import call_node, golden_conditioning

STEPS = 2


@pytest.fixture(scope="module")
def inputs(golden_model, golden):
    return golden_conditioning(golden)


def sampler_settings(**overrides):
    return {"seed": 3, "steps": STEPS, "cfg": 7.5, "sampler_name": "ddim", "scheduler": "cinemo_ddim",
            "dct_init": True, "low_pass": 0.23, "noise_timestep": 975, **overrides}


def init_noise(first_frame=None, **settings):
    wired = {} if first_frame is None else {"first_frame": first_frame}
    return call_node("CinemoInitNoise", seed=5, low_pass=0.23, noise_timestep=975, mode="dct", **wired, **settings)[0]


def custom_advanced(model, positive, negative, latent, noise):
    (guider,) = call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=7.5)
    (sampler,) = call_node("KSamplerSelect", sampler_name="ddim")
    (sigmas,) = call_node("CinemoScheduler", steps=STEPS)
    output, _ = call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                          latent_image=latent)
    return output


def ksampler(model, positive, negative, latent):
    return call_node("KSampler", model=model, seed=7, steps=STEPS, cfg=7.5, sampler_name="ddim",
                     scheduler="ddim_uniform", positive=positive, negative=negative, latent_image=latent,
                     denoise=1.0)[0]


def assert_after_nodes_need_no_link(residual, first_frame):
    """Residual To Frames and Last Frame without first_frame equal them with it, bit for bit."""
    (wired,) = call_node("CinemoResidualToFrames", residual=residual, first_frame=first_frame)
    (carried,) = call_node("CinemoResidualToFrames", residual=residual)
    assert torch.equal(carried["samples"], wired["samples"])
    assert carried["samples"].shape[0] == residual["samples"].shape[0] * (residual["samples"].shape[2] + 1)
    (wired_last,) = call_node("CinemoLastFrame", residual=residual, first_frame=first_frame)
    (carried_last,) = call_node("CinemoLastFrame", residual=residual)
    assert torch.equal(carried_last["samples"], wired_last["samples"])


def test_conditioning_puts_the_first_frame_on_the_residual(inputs):
    _, _, latent, first_frame = inputs
    (frames,) = call_node("CinemoResidualToFrames", residual=latent)
    # the residual is all zeros: every frame is the first frame
    for frame in frames["samples"]:
        assert torch.equal(frame, first_frame["samples"][0])


def test_init_noise_and_sampler_without_first_frame_equal_them_with_it(golden_model, inputs):
    positive, negative, latent, first_frame = inputs
    assert torch.equal(init_noise().generate_noise(latent), init_noise(first_frame).generate_noise(latent))
    common = dict(model=golden_model, positive=positive, negative=negative, latent_image=latent)
    (wired,) = call_node("CinemoSampler", first_frame=first_frame, **common, **sampler_settings())
    (carried,) = call_node("CinemoSampler", **common, **sampler_settings())
    assert torch.equal(carried["samples"], wired["samples"])
    assert_after_nodes_need_no_link(carried, first_frame)


@pytest.mark.parametrize("route", ["KSampler", "SamplerCustomAdvanced", "context windows"])
def test_the_first_frame_survives_core_samplers(golden_model, inputs, route):
    positive, negative, latent, first_frame = inputs
    if route == "KSampler":
        residual = ksampler(golden_model, positive, negative, latent)
    elif route == "SamplerCustomAdvanced":
        residual = custom_advanced(golden_model, positive, negative, latent, init_noise())
        expected = custom_advanced(golden_model, positive, negative, latent, init_noise(first_frame))
        assert torch.equal(residual["samples"], expected["samples"])
    else:
        (windowed,) = call_node("CinemoContextWindows", model=golden_model, window_frames=4, overlap=1,
                                schedule="standard_static", fuse_method="relative")
        residual = ksampler(windowed, positive, negative, latent)
    assert residual["samples"].abs().max() > 0  # sampled, not the empty residual
    assert_after_nodes_need_no_link(residual, first_frame)


def test_latent_nodes_that_keep_the_batch_keep_the_first_frame(inputs):
    _, _, latent, first_frame = inputs
    (same,) = call_node("LatentFromBatch", samples=latent, batch_index=0, length=1)
    (seeded,) = call_node("LatentBatchSeedBehavior", samples=latent, seed_behavior="fixed")
    for residual in (same, seeded):
        assert_after_nodes_need_no_link(residual, first_frame)


def two_video_residual(golden):
    first = {"samples": golden["base_content"][:, :, 0] / 0.18215}
    both = {"samples": torch.cat([first["samples"], -first["samples"]])}
    _, _, latent = call_node(
        "CinemoConditioning", positive=[[golden["encoder_hidden_states"], {}]],
        negative=[[golden["negative_encoder_hidden_states"], {}]], first_frame=both, intensity=0, frames=4,
    )
    return latent, both


@pytest.mark.parametrize("node", ["RepeatLatentBatch", "LatentBatch", "LatentFromBatch"])
def test_a_rebatched_residual_asks_for_first_frame(comfyui, golden, node):
    latent, both = two_video_residual(golden)
    if node == "RepeatLatentBatch":
        (changed,) = call_node(node, samples=latent, amount=2)
    elif node == "LatentBatch":
        (changed,) = call_node(node, samples1=latent, samples2=latent)
    else:
        (changed,) = call_node(node, samples=latent, batch_index=1, length=1)
    for node_type in ("CinemoResidualToFrames", "CinemoLastFrame"):
        with pytest.raises(ValueError, match=r"^residual carries a first frame \[2, 4, 8, 16\] that does not fit.*"
                                             r"Connect first_frame"):
            call_node(node_type, residual=changed)
    with pytest.raises(ValueError, match=r"latent_image \(the residual LATENT\) carries a first frame.*Connect "
                                         r"first_frame \(of the Cinemo Init Noise node\)"):
        init_noise().generate_noise(changed)
    # wired, the first frame is taken from the link as before
    first = {"samples": both["samples"][1:]} if node == "LatentFromBatch" else {"samples": both["samples"][:1]}
    (frames,) = call_node("CinemoResidualToFrames", residual=changed, first_frame=first)
    assert torch.equal(frames["samples"][0], first["samples"][0])


def test_without_a_first_frame_anywhere_the_error_names_both_inputs(golden_model, inputs):
    positive, negative, latent, _ = inputs
    bare = {"samples": latent["samples"]}  # as Load Latent or a hand-made LATENT gives it
    for node_type in ("CinemoResidualToFrames", "CinemoLastFrame"):
        with pytest.raises(ValueError, match=r"^first_frame is not connected and residual carries no first frame"):
            call_node(node_type, residual=bare)
    with pytest.raises(ValueError, match=r"^first_frame is not connected and latent_image carries no first frame"):
        call_node("CinemoSampler", model=golden_model, positive=positive, negative=negative, latent_image=bare,
                  **sampler_settings())
    with pytest.raises(ValueError, match=r"^first_frame \(of the Cinemo Init Noise node\) is not connected and "
                                         r"latent_image \(the residual LATENT\) carries no first frame"):
        init_noise().generate_noise(bare)
