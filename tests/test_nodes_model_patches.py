"""Core model-patch nodes on the Cinemo MODEL, in a real ComfyUI.

Each node either runs and changes the sampled output where it should (and, where it has a neutral setting,
reproduces the unpatched output with it), or fails before the first step with a message naming it. The
patch points are checked against ComfyUI's own SD-1.x UNet built with the tiny model's layout: the same
patches must be called in the same order, in the same blocks, on tensors of the same shapes.
"""

from __future__ import annotations

import pytest
import torch
from comfy_models import call_node, golden_conditioning
from golden_case import relative_error

STEPS = 3
SCALE = 0.18215


@pytest.fixture(scope="module")
def inputs(golden_model, golden):
    return golden_conditioning(golden)


def sample(model, inputs, steps: int = STEPS, latent=None, guider=None):
    positive, negative, default_latent, _ = inputs
    (sigmas,) = call_node("CinemoScheduler", steps=steps)
    (noise,) = call_node("RandomNoise", noise_seed=0)
    if guider is None:
        (guider,) = call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=7.5)
    (sampler,) = call_node("KSamplerSelect", sampler_name="ddim")
    output, _ = call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                          latent_image=default_latent if latent is None else latent)
    return output["samples"]


@pytest.fixture(scope="module")
def unpatched(golden_model, inputs):
    outputs: dict[int, torch.Tensor] = {}

    def get(steps: int = STEPS) -> torch.Tensor:
        if steps not in outputs:
            outputs[steps] = sample(golden_model, inputs, steps)
        return outputs[steps]

    return get


def patched(node: str, model, **settings):
    (result,) = call_node(node, model=model, **settings)
    return result


CACHE = dict(start_percent=0.0, end_percent=1.0, verbose=False)
WINDOWS = dict(context_overlap=1, context_schedule="standard_static", context_stride=1, closed_loop=False,
               fuse_method="pyramid", dim=2)

#: node -> (settings that change the output, settings that must not, tolerance for the latter; steps)
NODES = {
    "FreeU": (dict(b1=1.1, b2=1.2, s1=0.9, s2=0.2), dict(b1=1.0, b2=1.0, s1=1.0, s2=1.0), 1e-5, STEPS),
    "FreeU_V2": (dict(b1=1.3, b2=1.4, s1=0.9, s2=0.2), dict(b1=1.0, b2=1.0, s1=1.0, s2=1.0), 1e-5, STEPS),
    "PerturbedAttentionGuidance": (dict(scale=3.0), dict(scale=0.0), 0.0, STEPS),
    # core SAG's functions are swapped for Cinemo's (nodes/model/sag.py): per-frame blur, middle-block attention
    "SelfAttentionGuidance": (dict(scale=0.5, blur_sigma=2.0), dict(scale=0.0, blur_sigma=2.0), 1e-5, STEPS),
    "TomePatchModel": (dict(ratio=0.3), dict(ratio=0.0), 0.0, STEPS),
    # 32-pixel tiles split the 8x16 latent; 256-pixel ones do not
    "HyperTile": (dict(tile_size=32, swap_size=2, max_depth=0, scale_depth=False),
                  dict(tile_size=256, swap_size=2, max_depth=0, scale_depth=False), 0.0, STEPS),
    "RescaleCFG": (dict(multiplier=0.7), dict(multiplier=0.0), 1e-5, STEPS),
    "ModelSamplingDiscrete": (dict(sampling="v_prediction", zsnr=False), dict(sampling="eps", zsnr=False), 0.0, STEPS),
    "LazyCache": (dict(reuse_threshold=0.5, **CACHE), dict(reuse_threshold=0.0, **CACHE), 0.0, 10),
    # over the residual's 7 frames: windows of 4 change it, one window of 7 is the whole clip
    "ContextWindowsManual": (dict(context_length=4, **WINDOWS), dict(context_length=7, **WINDOWS), 0.0, STEPS),
    "CFGZeroStar": ({}, None, None, STEPS),
    "CFGNorm": (dict(strength=1.0), None, None, STEPS),
    "APG": (dict(eta=1.0, norm_threshold=5.0, momentum=-0.5), None, None, STEPS),
    "TCFG": ({}, None, None, STEPS),
    "Mahiro": ({}, None, None, STEPS),
    "Epsilon Scaling": (dict(scaling_factor=1.005), dict(scaling_factor=1.0), 0.0, STEPS),
    "FreSca": (dict(scale_low=1.0, scale_high=1.25, freq_cutoff=20),
               dict(scale_low=1.0, scale_high=1.0, freq_cutoff=20), 1e-5, STEPS),
    "PatchModelAddDownscale": (
        dict(block_number=3, downscale_factor=2.0, start_percent=0.0, end_percent=0.35, downscale_after_skip=True,
             downscale_method="bicubic", upscale_method="bicubic"),
        dict(block_number=3, downscale_factor=1.0, start_percent=0.0, end_percent=1.0, downscale_after_skip=True,
             downscale_method="bicubic", upscale_method="bicubic"), 0.0, STEPS),
    "UNetSelfAttentionMultiply": (dict(q=1.0, k=1.0, v=1.0, out=0.8), dict(q=1.0, k=1.0, v=1.0, out=1.0), 0.0, STEPS),
    "UNetCrossAttentionMultiply": (dict(q=1.0, k=1.0, v=1.0, out=0.8), dict(q=1.0, k=1.0, v=1.0, out=1.0), 0.0, STEPS),
    # its temporal sliders address SVD's time_stack layers, which Cinemo does not have: they change nothing
    "UNetTemporalAttentionMultiply": (
        dict(self_structural=0.8, self_temporal=1.0, cross_structural=1.0, cross_temporal=1.0),
        dict(self_structural=1.0, self_temporal=0.5, cross_structural=1.0, cross_temporal=0.5), 0.0, STEPS),
    "ModelComputeDtype": (dict(dtype="bf16"), dict(dtype="fp32"), 0.0, STEPS),
    "ModelSamplingStableCascade": (dict(shift=2.0), None, None, STEPS),
    "ModelSamplingContinuousEDM": (dict(sampling="eps", sigma_max=120.0, sigma_min=0.002), None, None, STEPS),
}


@pytest.mark.parametrize("node", sorted(NODES))
def test_patch_node_changes_the_output(golden_model, inputs, unpatched, node):
    changing, _, _, steps = NODES[node]
    out = sample(patched(node, golden_model, **changing), inputs, steps)
    assert torch.isfinite(out).all()
    assert relative_error(out, unpatched(steps)) > 1e-3


@pytest.mark.parametrize("node", sorted(name for name, entry in NODES.items() if entry[1] is not None))
def test_neutral_setting_reproduces_the_unpatched_output(golden_model, inputs, unpatched, node):
    _, neutral, tolerance, steps = NODES[node]
    out = sample(patched(node, golden_model, **neutral), inputs, steps)
    assert relative_error(out, unpatched(steps)) <= tolerance


def test_perp_neg_needs_its_empty_conditioning_through_cinemo_conditioning(golden_model, inputs, unpatched, golden):
    positive, negative, _, first_frame = inputs
    (_, empty, _) = call_node(
        "CinemoConditioning", positive=[[golden["encoder_hidden_states"], {}]],
        negative=[[torch.zeros_like(golden["negative_encoder_hidden_states"]), {}]], first_frame=first_frame,
        intensity=0, frames=8, raw_motion_id=float(golden["motion_bucket_id"].item()))
    assert relative_error(sample(patched("PerpNeg", golden_model, empty_conditioning=empty, neg_scale=1.0), inputs),
                          unpatched()) > 1e-3
    # with the negative prompt as the "empty" one, perpendicular negative guidance is plain CFG
    same = sample(patched("PerpNeg", golden_model, empty_conditioning=negative, neg_scale=1.0), inputs)
    assert relative_error(same, unpatched()) <= 1e-5
    (guider,) = call_node("PerpNegGuider", model=golden_model, positive=positive, negative=negative,
                          empty_conditioning=empty, cfg=7.5, neg_scale=1.0)
    assert relative_error(sample(golden_model, inputs, guider=guider), unpatched()) > 1e-3
    bare = [[golden["negative_encoder_hidden_states"], {}]]
    with pytest.raises(ValueError, match="negative conditioning .* no Cinemo first frame.*Cinemo Conditioning"):
        sample(patched("PerpNeg", golden_model, empty_conditioning=bare, neg_scale=1.0), inputs)


def test_differential_diffusion_follows_a_noise_mask(golden_model, inputs):
    _, _, latent, _ = inputs
    height, width = latent["samples"].shape[-2:]
    gradient = torch.linspace(0, 1, width * 8).expand(1, height * 8, width * 8).contiguous()
    (masked,) = call_node("SetLatentNoiseMask", samples=latent, mask=gradient)
    plain = sample(golden_model, inputs, latent=masked)
    differential = sample(patched("DifferentialDiffusion", golden_model, strength=1.0), inputs, latent=masked)
    assert torch.isfinite(differential).all()
    assert relative_error(differential, plain) > 1e-3


FAILS = {
    "SkipLayerGuidanceDiT": (dict(double_layers="7, 8, 9", single_layers="7, 8, 9", scale=3.0, start_percent=0.01,
                                  end_percent=0.15, rescaling_scale=0.0), "Skip Layer Guidance .*DiT"),
    "SkipLayerGuidanceDiTSimple": (dict(double_layers="7, 8, 9", single_layers="7, 8, 9", start_percent=0.0,
                                        end_percent=1.0), "Skip Layer Guidance .*DiT"),
    "SkipLayerGuidanceSD3": (dict(layers="7, 8, 9", scale=3.0, start_percent=0.01, end_percent=0.15),
                             "Skip Layer Guidance .*DiT"),
    "VideoLinearCFGGuidance": (dict(min_cfg=1.0), "VideoLinearCFGGuidance .*over the batch"),
    "VideoTriangleCFGGuidance": (dict(min_cfg=1.0), "VideoTriangleCFGGuidance .*over the batch"),
    "RenormCFG": (dict(cfg_trunc=100, renorm_cfg=1.0), "RenormCFG .*Lumina 2"),
    "ModelSamplingSD3": (dict(shift=3.0), "flow matching .*predicts noise"),
    "ModelSamplingAuraFlow": (dict(shift=1.73), "flow matching .*predicts noise"),
    "ModelSamplingFlux": (dict(max_shift=1.15, base_shift=0.5, width=128, height=64), "flow matching .*predicts noise"),
    "ModelSamplingLTXV": (dict(max_shift=2.05, base_shift=0.95), "flow matching .*predicts noise"),
    # the tests run on the CPU
    "TorchCompileModel": (dict(backend="inductor"),
                          "TorchCompileModel on the CPU: it does not pay off.*Remove the TorchCompileModel node"),
}


@pytest.mark.parametrize("node", sorted(FAILS))
def test_node_that_cannot_fit_fails_before_sampling_and_says_why(golden_model, inputs, node, monkeypatch):
    settings, message = FAILS[node]
    model = patched(node, golden_model, **settings)
    calls = []
    monkeypatch.setattr(type(golden_model.model), "apply_model", lambda *args, **kwargs: calls.append(1))
    with pytest.raises(ValueError, match=message):
        sample(model, inputs)
    assert calls == []  # found before any model call, not after a step's work


def tiny_controlnet():
    """A real SD-1.x ControlNet (one level, random weights), loaded by ComfyUI's ControlNet loader."""
    import comfy.cldm.cldm
    import comfy.controlnet

    torch.manual_seed(4)
    net = comfy.cldm.cldm.ControlNet(
        image_size=32, in_channels=4, model_channels=320, hint_channels=3, num_res_blocks=[1], channel_mult=[1],
        transformer_depth=[1], transformer_depth_middle=1, num_heads=8, context_dim=768,
        use_linear_in_transformer=False, use_spatial_transformer=True,
    )
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0.0, 0.02)
    return comfy.controlnet.load_controlnet_state_dict(net.state_dict())


def test_controlnet_fails_clearly(golden_model, inputs, golden):
    positive, negative, latent, _ = inputs
    control = tiny_controlnet()
    hint = torch.rand(1, 64, 128, 3)
    controlled_positive, controlled_negative = call_node(
        "ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=control, image=hint,
        strength=1.0, start_percent=0.0, end_percent=1.0)
    with pytest.raises(ValueError, match="positive conditioning carries a ControlNet.*motion residual"):
        sample(golden_model, (controlled_positive, controlled_negative, latent, None))
    # and the UNet itself refuses control residuals should anything hand it some
    with pytest.raises(ValueError, match="ControlNet reached the Cinemo UNet"):
        golden_model.model.diffusion_model(golden["sample"], torch.tensor([741.0]), golden["encoder_hidden_states"],
                                           control={"input": [], "middle": [], "output": []},
                                           base_content=golden["base_content"], motion_ids=8.0)


def test_patch_kinds_with_no_place_in_the_unet_are_named(golden_model, inputs):
    for kind in ("forward_timestep_embed_patch", "double_block"):
        model = golden_model.clone()

        def unknown_patch(*args):
            return args[0]

        model.set_model_patch(unknown_patch, kind)
        with pytest.raises(ValueError, match=f"'{kind}' patches entry .*unknown_patch.*SD-1.x-style UNet"):
            sample(model, inputs)


def test_unet_config_has_the_sd1_keys_patch_nodes_read(golden_model, comfyui):
    import comfy.supported_models
    from comfy_models import pack_module

    from cinemo_core.model.config import CinemoUNetConfig

    config = golden_model.model.model_config.unet_config
    assert config["model_channels"] == 32 and config["channel_mult"] == [1, 2, 2, 2]
    # the released architecture is described exactly as ComfyUI describes SD 1.5
    official = pack_module("nodes.model.config").CinemoModelConfig(CinemoUNetConfig.official()).unet_config
    sd15 = comfy.supported_models.SD15.unet_config
    shared = set(official) & set(sd15)
    assert {"model_channels", "context_dim", "use_linear_in_transformer"} <= shared
    assert {key: official[key] for key in shared} == {key: sd15[key] for key in shared}
    assert official["channel_mult"] == [1, 2, 4, 4] and official["num_res_blocks"] == [2, 2, 2, 2]


# --- the patch points against ComfyUI's own SD-1.x UNet ----------------------------------------------------

PATCH_KINDS = ("input_block_patch", "input_block_patch_after_skip", "output_block_patch", "attn1_patch",
               "attn1_output_patch", "middle_patch", "attn2_patch", "attn2_output_patch")


def shape(value) -> tuple:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def recording_options(events: list) -> dict:
    """transformer_options whose patches record (kind, block, block index, transformer index, shapes)."""

    def where(options):
        return (options.get("block"), options.get("block_index"), options.get("transformer_index"))

    def record(kind, options, *tensors):
        extra = (options.get("n_heads"), options.get("dim_head"), tuple(options.get("original_shape", ())))
        events.append((kind, *where(options), tuple(shape(t) for t in tensors), extra))

    def block_patch(kind):
        def patch(h, options):
            record(kind, options, h)
            return h
        return patch

    def output_block_patch(h, skip, options):
        record("output_block_patch", options, h, skip)
        return h, skip

    def attention_patch(kind):
        def patch(n, context, value, extra):
            record(kind, extra, n, context, value)
            return n, context, value
        return patch

    def output_patch(kind):
        def patch(n, extra):
            record(kind, extra, n)
            return n
        return patch

    patches = {
        "input_block_patch": [block_patch("input_block_patch")],
        "input_block_patch_after_skip": [block_patch("input_block_patch_after_skip")],
        "output_block_patch": [output_block_patch],
        "attn1_patch": [attention_patch("attn1_patch")],
        "attn2_patch": [attention_patch("attn2_patch")],
        "attn1_output_patch": [output_patch("attn1_output_patch")],
        "attn2_output_patch": [output_patch("attn2_output_patch")],
        "middle_patch": [output_patch("middle_patch")],
    }
    return {"patches": patches}


def comfy_sd1_unet():
    """ComfyUI's SD-1.x UNet with the tiny Cinemo layout: 32/64/64/64 channels, one layer per level, attention
    in the first three down levels, the middle and the last three up levels, one head."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    torch.manual_seed(5)
    unet = UNetModel(
        image_size=32, in_channels=4, out_channels=4, model_channels=32, num_res_blocks=[1, 1, 1, 1],
        channel_mult=[1, 2, 2, 2], transformer_depth=[1, 1, 1, 0], transformer_depth_output=[1, 1, 1, 1, 1, 1, 0, 0],
        transformer_depth_middle=1, num_heads=1, context_dim=32, use_linear_in_transformer=False,
        use_spatial_transformer=True, dtype=torch.float32,
    )
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.normal_(0.0, 0.02)
    return unet


def run_ours(golden_model, golden, options):
    with torch.inference_mode():
        return golden_model.model.diffusion_model(
            golden["sample"], torch.tensor([741.0]), golden["encoder_hidden_states"], transformer_options=options,
            base_content=golden["base_content"], motion_ids=golden["motion_bucket_id"])


def run_comfy_sd1(golden, options):
    """The reference on the same frame batch: the first frame then the residual frames, a context per frame."""
    frames = torch.cat([golden["base_content"], golden["base_content"] + golden["sample"]], dim=2)
    frames = frames.movedim(2, 1).flatten(0, 1)  # [(B F), C, h, w]
    context = golden["encoder_hidden_states"].repeat_interleave(frames.shape[0], dim=0)
    with torch.inference_mode():
        return comfy_sd1_unet()(frames, torch.tensor([741.0]).expand(frames.shape[0]), context,
                                transformer_options=options)


def test_patch_points_are_called_where_comfyuis_sd1_unet_calls_them(golden_model, golden, comfyui):
    ours, reference = [], []
    run_ours(golden_model, golden, recording_options(ours))
    run_comfy_sd1(golden, recording_options(reference))
    assert len(reference) == 8 + 8 + 8 + 10 * 5  # input blocks, after skip, output blocks, 10 transformers
    assert ours == reference
    blocks = [event[1] for event in ours if event[0] == "attn1_patch"]
    assert blocks == [("input", 1), ("input", 3), ("input", 5), ("middle", 0)] + [("output", i) for i in range(2, 8)]


def test_middle_block_and_embedding_patches(golden_model, golden):
    """Not in ComfyUI 0.3.64's SD-1.x UNet: ``middle_block_patch`` (h = p(h, options)) after the middle block,
    ``emb_patch`` on the timestep embedding."""
    events = []

    def middle_block_patch(h, options):
        events.append(("middle_block_patch", options["block"], tuple(h.shape)))
        return h * 0.5

    def emb_patch(emb, model_channels, options):
        events.append(("emb_patch", model_channels, tuple(emb.shape)))
        return emb

    plain = run_ours(golden_model, golden, {})
    options = {"patches": {"middle_block_patch": [middle_block_patch], "emb_patch": [emb_patch]}}
    halved = run_ours(golden_model, golden, options)
    assert events == [("emb_patch", 32, (1, 128)), ("middle_block_patch", ("middle", 0), (8, 64, 1, 2))]
    assert relative_error(halved, plain) > 1e-3


def attention_replacements(events: list, attend) -> dict:
    def replacement(kind):
        def attn(q, k, v, extra):
            events.append((kind, extra["block"], extra["block_index"], shape(q), shape(k), shape(v),
                           extra["n_heads"], extra["dim_head"]))
            return attend(q, k, v, extra["n_heads"])
        return attn

    blocks = [("input", i) for i in range(12)] + [("middle", 0)] + [("output", i) for i in range(12)]
    return {"patches_replace": {kind: {(*block, 0): replacement(kind) for block in blocks}
                                for kind in ("attn1", "attn2")}}


def test_attention_replacements_get_comfyuis_qkv_layout_and_can_reproduce_attention(golden_model, golden):
    from comfy.ldm.modules.attention import optimized_attention

    ours, reference = [], []
    plain = run_ours(golden_model, golden, {})
    replaced = run_ours(golden_model, golden, attention_replacements(ours, optimized_attention))
    run_comfy_sd1(golden, attention_replacements(reference, optimized_attention))
    assert len(ours) == 20 and ours == reference  # q, k, v projected, heads merged: [(B F), N, heads * dim]
    assert relative_error(replaced, plain) <= 1e-5
    # a replacement keyed without the transformer index applies too (PAG's form), and really replaces
    model = golden_model.clone()
    model.set_model_attn1_replace(lambda q, k, v, extra: v, "middle", 0)
    assert relative_error(run_ours(model, golden, model.model_options["transformer_options"]), plain) > 1e-4


def without_guidance(model, inputs):
    positive, negative, _, _ = inputs
    return call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=1.0)[0]


def test_easycache_runs_without_guidance(golden_model, inputs):
    plain = sample(golden_model, inputs, 10, guider=without_guidance(golden_model, inputs))
    never_skips = patched("EasyCache", golden_model, reuse_threshold=0.0, **CACHE)
    assert relative_error(sample(never_skips, inputs, 10, guider=without_guidance(never_skips, inputs)), plain) == 0.0
    skips = patched("EasyCache", golden_model, reuse_threshold=0.5, **CACHE)
    cached = sample(skips, inputs, 10, guider=without_guidance(skips, inputs))
    assert torch.isfinite(cached).all() and relative_error(cached, plain) > 1e-3


def test_easycache_with_guidance_never_skipping_equals_uncached(golden_model, inputs):
    """Positive and negative run as separate passes under EasyCache; with nothing skipped that is sampling
    without a cache."""
    calls = []
    model = patched("EasyCache", golden_model, reuse_threshold=0.0, **CACHE)
    hook = golden_model.model.diffusion_model.conv_in.register_forward_pre_hook(lambda module, a: calls.append(a[0].shape[0]))
    try:
        cached = sample(model, inputs, 10)
    finally:
        hook.remove()
    assert relative_error(cached, sample(golden_model, inputs, 10)) <= 1e-5
    frames = inputs[2]["samples"].shape[2] + 1
    assert calls == [frames] * 20  # one video's frames per call: positive, then negative, each step


def test_easycache_with_guidance_keeps_each_pass_to_its_own_cache(golden_model, inputs):
    """With the negative prompt the same as the positive, guidance at any cfg is the positive pass alone: so
    EasyCache at cfg 7.5 must give what it gives at cfg 1 (only the positive pass). ComfyUI 0.3.64's EasyCache
    on a batched call adds both passes' cached changes to each, which doubles the change on skipped steps."""
    positive, _, latent, first = inputs
    same = (positive, positive, latent, first)
    model = patched("EasyCache", golden_model, reuse_threshold=0.5, **CACHE)
    guided = sample(model, same, 10)
    alone = sample(model, same, 10, guider=without_guidance(model, same))
    assert relative_error(guided, alone) <= 1e-5
    assert relative_error(alone, sample(golden_model, same, 10, guider=without_guidance(golden_model, same))) > 1e-3


def test_a_patch_that_makes_nan_is_named(golden_model, golden):
    """FreeU_V2 divides 0 by 0 in ComfyUI's own code where the UNet's lowest level is 1x1 (an 8x8 latent here):
    the error names that patch, not "its inputs were finite, so its weights are at fault"."""
    square = {key: value for key, value in golden.items()}
    square["base_content"] = golden["base_content"][..., :8, :8]
    inputs = golden_conditioning(square)
    assert torch.isfinite(sample(golden_model, inputs)).all()  # unpatched, the 8x8 latent samples fine
    model = patched("FreeU_V2", golden_model, b1=1.3, b2=1.4, s1=0.9, s2=0.2)
    with pytest.raises(ValueError, match="^The Cinemo UNet returned NaN") as caught:
        sample(model, inputs)
    message = str(caught.value)
    assert "FreeU_V2.patch.<locals>.output_block_patch (from nodes_freelunch)" in message
    assert "output_block_patch in output block" in message and "1, 1]" in message
    assert "weights" not in message


def test_self_attention_guidance_blurs_each_frame_as_core_sag_blurs_an_image(comfyui):
    """Per frame, Cinemo's SAG pieces equal core SAG's own functions (comfy_extras/nodes_sag.py) on that frame
    as an image: the recorded attention output, the attended cells and the blurred prediction."""
    import importlib

    from comfy_models import pack_module

    sag = pack_module("nodes.model.sag")
    core = importlib.import_module("comfy_extras.nodes_sag")
    generator = torch.Generator().manual_seed(0)
    frames, heads, dim, size, cells = 3, 2, 8, (16, 32), (2, 4)  # core SAG finds 2x4 cells for 16x32 again
    q, k, v = (torch.randn(frames, cells[0] * cells[1], heads * dim, generator=generator) * 2 for _ in range(3))
    recorder = sag.AttentionRecorder()
    out = recorder(q, k, v, {"n_heads": heads, "cond_or_uncond": [1], "activations_shape": [frames, 16, *cells]})
    core_out, core_sim = core.attention_basic_with_sim(q, k, v, heads=heads)
    assert (out - core_out).abs().max() < 1e-5
    assert recorder.mask.shape == (frames, *cells) and 0 < recorder.mask.float().mean() < 1
    x0 = torch.randn(frames, 4, *size, generator=generator)
    ours = sag.degrade_frames(x0, recorder.mask, sigma=2.0)
    for f in range(frames):
        theirs = core.create_blur_map(x0[f:f + 1], core_sim[f * heads:(f + 1) * heads], 2.0, 1.0)
        assert (ours[f:f + 1] - theirs).abs().max() < 1e-5, f
    assert not torch.allclose(ours, x0)
    assert torch.equal(sag.gaussian_blur(x0, 0.0), x0)  # core SAG divides by zero at blur_sigma 0


def test_self_attention_guidance_runs_its_cinemo_version(golden_model, inputs, unpatched, monkeypatch):
    """Sampling calls the swapped-in guidance every step, with the middle block's attended cells per frame."""
    from comfy_models import pack_module

    sag = pack_module("nodes.model.sag")
    seen = []
    original = sag.degrade_frames

    def spy(frames, attended, sigma):
        seen.append((tuple(frames.shape), tuple(attended.shape), sigma))
        return original(frames, attended, sigma)

    monkeypatch.setattr(sag, "degrade_frames", spy)
    out = sample(patched("SelfAttentionGuidance", golden_model, scale=0.5, blur_sigma=1.5), inputs)
    assert torch.isfinite(out).all()
    _, _, latent, _ = inputs
    videos, channels, residual_frames, height, width = latent["samples"].shape
    assert seen == [((videos * residual_frames, channels, height, width), (videos * residual_frames, 1, 2), 1.5)] * STEPS
