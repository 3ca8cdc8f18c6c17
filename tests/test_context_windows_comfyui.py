"""The core's context windows and loop against ComfyUI's own ``comfy.context_windows`` (real ComfyUI, tiny model).

Windows and weights are compared with ComfyUI's functions; whole runs compare ``sample_residual`` with
``SamplerCustomAdvanced`` on a Cinemo MODEL given core ``ContextWindowsManual`` (``dim=2``) and, for loops,
the ``sampler_post_cfg_function`` a node would set.
"""

import pytest
import torch
from comfy_models import call_node
from golden_case import relative_error

from cinemo_core.sampling.context_windows import (
    BATCHED,
    FLAT,
    FUSE_METHODS,
    LOOPED_UNIFORM,
    OVERLAP_LINEAR,
    PYRAMID,
    RELATIVE,
    SCHEDULES,
    STANDARD_STATIC,
    STANDARD_UNIFORM,
    ContextWindows,
    fuse_weights,
)
from cinemo_core.sampling.loop import default_ramp, return_weights
from cinemo_core.sampling.sampler import sample_residual

SCALE = 0.18215
MOTION_ID = 90.0


def comfy_handler(options: ContextWindows, fuse: str = PYRAMID):
    import comfy.context_windows as cw

    return cw.IndexListContextHandler(
        context_schedule=cw.get_matching_context_schedule(options.schedule),
        fuse_method=cw.get_matching_fuse_method(fuse),
        context_length=options.length, context_overlap=options.overlap, context_stride=options.stride,
        closed_loop=options.closed_loop, dim=2,
    )


def comfy_windows(options: ContextWindows, frames: int, step: int):
    handler = comfy_handler(options)
    handler._step = step
    return handler.context_schedule.func(frames, handler, {})


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("closed_loop", [False, True])
def test_windows_are_comfyuis(comfyui, schedule, closed_loop):
    compared = 0
    for overlap in (0, 1, 4, 14):
        for stride in (1, 2):
            options = ContextWindows(schedule=schedule, overlap=overlap, stride=stride, closed_loop=closed_loop)
            for frames in [*range(1, 72), 100]:
                for step in range(9):
                    theirs = comfy_windows(options, frames, step)
                    try:
                        ours = options.windows(frames, step)
                    except ValueError:  # ComfyUI's windows run past the end or leave frames out
                        flat = [frame for window in theirs for frame in window]
                        assert stride > 1 and (max(flat) >= frames or set(flat) != set(range(frames)))
                        continue
                    assert ours == [list(map(int, window)) for window in theirs], (overlap, stride, frames, step)
                    compared += 1
    assert compared > 4000


@pytest.mark.parametrize("fuse", [PYRAMID, FLAT, OVERLAP_LINEAR])
def test_fuse_weights_are_comfyuis(comfyui, fuse):
    import comfy.context_windows as cw

    for schedule in (STANDARD_STATIC, STANDARD_UNIFORM, BATCHED):
        if (schedule, fuse) == (BATCHED, OVERLAP_LINEAR):
            continue
        options = ContextWindows(schedule=schedule, fuse=fuse)
        handler = comfy_handler(options, fuse)
        for frames in (10, 15, 16, 40, 63):
            for step in range(3):
                for window in options.windows(frames, step):
                    theirs = torch.as_tensor(cw.get_context_weights(len(window), frames, window, handler),
                                             dtype=torch.float32)
                    assert torch.equal(fuse_weights(window, frames, options), theirs)


def conditioning(golden, frames: int):
    """Cinemo Conditioning outputs for the golden first frame and text, ``frames`` frames in all."""
    first_frame = {"samples": golden["base_content"][:, :, 0] / SCALE}
    positive, negative, latent = call_node(
        "CinemoConditioning",
        positive=[[golden["encoder_hidden_states"], {}]], negative=[[golden["negative_encoder_hidden_states"], {}]],
        first_frame=first_frame, intensity=0, frames=frames, raw_motion_id=MOTION_ID,
    )
    return positive, negative, latent, first_frame


def _start_probe():
    """A SAMPLER that returns its starting point unchanged."""
    import comfy.samplers

    return comfy.samplers.KSAMPLER(lambda model, x, sigmas, **kwargs: x)


def comfy_run(model, golden, frames: int, steps: int, cfg: float = 7.5):
    """(ComfyUI's residual, scaled; the x_T it started from, as the core's init_latents) via SamplerCustomAdvanced.

    The start is read back from ComfyUI (a sampler that returns it) rather than taken from the NOISE, so the
    comparison does not depend on how ComfyUI scales a NOISE for the first sigma.
    """
    positive, negative, latent, first_frame = conditioning(golden, frames)
    (noise,) = call_node("CinemoInitNoise", first_frame=first_frame, seed=5, low_pass=0.23, noise_timestep=975,
                         mode="dct")
    (sigmas,) = call_node("CinemoScheduler", steps=steps)
    (guider,) = call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=cfg)
    (sampler,) = call_node("KSamplerSelect", sampler_name="ddim")
    output, _ = call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                          latent_image=latent)
    start, _ = call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=_start_probe(), sigmas=sigmas,
                         latent_image=latent)
    x_t = start["samples"] * SCALE / (1 + float(sigmas[0]) ** 2) ** 0.5  # sampling space -> DDPM x_t
    return output["samples"] * SCALE, x_t.float()


def core_run(golden, x_t, steps: int, cfg: float = 7.5, **options):
    unet = core_run.unet
    with torch.no_grad():
        return sample_residual(unet, x_t, golden["base_content"], golden["encoder_hidden_states"],
                               golden["negative_encoder_hidden_states"], MOTION_ID, steps=steps, guidance_scale=cfg,
                               **options)


@pytest.fixture(scope="module", autouse=True)
def _core_unet(tiny_unet):
    core_run.unet = tiny_unet


def windowed_model(model, options: ContextWindows):
    (windowed,) = call_node(
        "ContextWindowsManual", model=model, context_length=options.length, context_overlap=options.overlap,
        context_schedule=options.schedule, context_stride=options.stride, closed_loop=options.closed_loop,
        fuse_method=options.fuse, dim=2,
    )
    return windowed


@pytest.mark.parametrize("options", [
    ContextWindows(schedule=STANDARD_STATIC, fuse=PYRAMID),
    ContextWindows(schedule=STANDARD_UNIFORM, fuse=RELATIVE),
    ContextWindows(schedule=STANDARD_STATIC, fuse=OVERLAP_LINEAR),
    ContextWindows(schedule=LOOPED_UNIFORM, fuse=FLAT, closed_loop=True),
], ids=lambda o: f"{o.schedule}-{o.fuse}")
def test_core_windows_sample_what_comfyui_samples(golden_model, golden, options):
    assert options.fuse in FUSE_METHODS
    theirs, x_t = comfy_run(windowed_model(golden_model, options), golden, frames=27, steps=3)
    ours = core_run(golden, x_t, steps=3, windows=options)
    error = relative_error(ours, theirs)
    print(f"{options.schedule}/{options.fuse}, 26 residual frames: core vs ComfyUI relative error {error:.1e}")
    assert error <= 1e-4
    one_pass = core_run(golden, x_t, steps=3)
    assert relative_error(one_pass, theirs) > 1e-2  # the windows changed the result


def test_loop_ramp_is_a_post_cfg_scale_of_the_denoised_residual(golden_model, golden):
    """A ComfyUI node makes the same loop with ``sampler_post_cfg_function``: denoised * return_weights."""
    frames, ramp = 16, default_ramp(15)
    weights = return_weights(frames - 1, ramp).view(1, 1, -1, 1, 1)
    model = golden_model.clone()
    model.set_model_sampler_post_cfg_function(lambda args: args["denoised"] * weights.to(args["denoised"]))
    theirs, x_t = comfy_run(model, golden, frames=frames, steps=4)
    ours = core_run(golden, x_t, steps=4, loop_ramp=ramp)
    error = relative_error(ours, theirs)
    print(f"loop ramp {ramp}: core vs ComfyUI relative error {error:.1e}")
    assert error <= 1e-4
    assert relative_error(core_run(golden, x_t, steps=4), theirs) > 1e-2


def test_memory_estimate_sees_one_window(golden_model, golden, monkeypatch):
    """With windows, every memory estimate ComfyUI asks the Cinemo model for is for one window of frames."""
    model = windowed_model(golden_model, ContextWindows())
    shapes = []
    original = model.model.memory_required

    def recording(input_shape, cond_shapes={}):  # noqa: B006 - ComfyUI's signature
        shapes.append(list(input_shape))
        return original(input_shape, cond_shapes=cond_shapes)

    monkeypatch.setattr(model.model, "memory_required", recording)
    comfy_run(model, golden, frames=64, steps=1)
    assert shapes and {shape[2] for shape in shapes} == {15}
    assert original([2, 4, 15, 8, 16]) == original([2, 4, 15, 8, 16])


# --- the pack's nodes: Cinemo Context Windows and Cinemo Seamless Loop ------------------------------------

def cinemo_windows(model, **settings):
    inputs = {"window_frames": 16, "overlap": 4, "schedule": STANDARD_UNIFORM, "fuse_method": RELATIVE, **settings}
    (windowed,) = call_node("CinemoContextWindows", model=model, **inputs)
    return windowed


def cinemo_loop(model, ramp_frames=0):
    (looped,) = call_node("CinemoSeamlessLoop", model=model, ramp_frames=ramp_frames)
    return looped


def test_node_defaults_are_the_cores(comfyui):
    from cinemo_core.sampling.context_windows import LONG_VIDEO_WINDOWS

    schema = comfyui.node_classes["CinemoContextWindows"].INPUT_TYPES()["required"]
    assert schema["window_frames"][1]["default"] - 1 == LONG_VIDEO_WINDOWS.length
    assert schema["overlap"][1]["default"] == LONG_VIDEO_WINDOWS.overlap
    assert schema["schedule"][1]["default"] == LONG_VIDEO_WINDOWS.schedule
    assert schema["fuse_method"][1]["default"] == LONG_VIDEO_WINDOWS.fuse


@pytest.mark.parametrize("loop", [False, True])
def test_nodes_sample_what_the_core_samples(golden_model, golden, loop):
    """The same tiny graph through the nodes and through cinemo_core (its CLI's defaults) agrees within 1e-4."""
    from cinemo_core.sampling.context_windows import LONG_VIDEO_WINDOWS

    model = cinemo_windows(golden_model)
    if loop:
        model = cinemo_loop(model)
    theirs, x_t = comfy_run(model, golden, frames=27, steps=3)
    ours = core_run(golden, x_t, steps=3, windows=LONG_VIDEO_WINDOWS, loop_ramp=default_ramp(26) if loop else 0)
    error = relative_error(ours, theirs)
    print(f"nodes (windows{' + loop' if loop else ''}) vs core, 26 residual frames: relative error {error:.1e}")
    assert error <= 1e-4
    assert relative_error(core_run(golden, x_t, steps=3), theirs) > 1e-2


@pytest.mark.parametrize("schedule", [STANDARD_UNIFORM, STANDARD_STATIC, BATCHED])
def test_videos_within_one_window_are_sampled_exactly_as_without(golden_model, golden, schedule):
    plain, _ = comfy_run(golden_model, golden, frames=16, steps=2)
    windowed, _ = comfy_run(cinemo_windows(golden_model, schedule=schedule), golden, frames=16, steps=2)
    assert torch.equal(plain, windowed)


def test_every_window_gets_the_first_frame_and_motion_id_and_windows_cover_the_video(golden_model, golden):
    import comfy.patcher_extension

    calls = []

    def record(executor, x, timesteps, context, control, transformer_options, **kwargs):
        window = transformer_options.get("context_window")
        calls.append((tuple(x.shape), kwargs["base_content"].clone(), float(kwargs["motion_ids"]),
                      list(window.index_list) if window is not None else None))
        return executor(x, timesteps, context, control, transformer_options, **kwargs)

    model = cinemo_windows(golden_model)
    comfy.patcher_extension.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "record", record,
                                                 model.model_options, is_model_options=True)
    comfy_run(model, golden, frames=41, steps=2)
    assert len(calls) > 4
    first = golden["base_content"].expand(2, -1, -1, -1, -1)
    for shape, base, motion_id, index_list in calls:
        assert shape == (2, 4, 15, 8, 16)  # cond and uncond of one window of 15 residual frames
        assert torch.allclose(base, first) and motion_id == MOTION_ID
        assert index_list is not None and len(index_list) == 15
    assert set().union(*(set(index_list) for *_, index_list in calls)) == set(range(40))


def test_memory_estimate_with_windows_is_one_windows(golden_model, golden, monkeypatch):
    """A 64-frame run's traced step memory is within 10% of a 16-frame run's."""
    model = cinemo_windows(golden_model)
    seen = []
    original = model.model.memory_required

    def recording(input_shape, cond_shapes={}):  # noqa: B006 - ComfyUI's signature
        seen.append(original(input_shape, cond_shapes=cond_shapes))
        return seen[-1]

    monkeypatch.setattr(model.model, "memory_required", recording)
    comfy_run(model, golden, frames=16, steps=1)
    sixteen = max(seen)
    seen.clear()
    comfy_run(model, golden, frames=64, steps=1)
    assert max(seen) <= 1.10 * sixteen


def test_several_videos_in_a_batch_each_come_out_as_alone(golden_model, golden):
    """ComfyUI 0.3.64's own handler fails on a batch of videos (the timestep is per video); ours does not."""
    import dataclasses

    first = golden["base_content"][:, :, 0] / SCALE
    both = torch.cat([first, first.flip(-1)])
    gaussian = torch.randn(2, 4, 20, 8, 16, generator=torch.Generator().manual_seed(3))
    model = cinemo_windows(golden_model)
    outputs = []
    for first_frame, base_noise in (({"samples": both}, gaussian), ({"samples": both[1:]}, gaussian[1:])):
        positive, negative, latent = call_node(
            "CinemoConditioning", positive=[[golden["encoder_hidden_states"], {}]],
            negative=[[golden["negative_encoder_hidden_states"], {}]], first_frame=first_frame, intensity=0,
            frames=21, raw_motion_id=MOTION_ID)
        (noise,) = call_node("CinemoInitNoise", first_frame=first_frame, seed=0, low_pass=0.23, noise_timestep=975,
                             mode="dct")
        (sigmas,) = call_node("CinemoScheduler", steps=2)
        (guider,) = call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=7.5)
        (sampler,) = call_node("KSamplerSelect", sampler_name="ddim")
        output, _ = call_node("SamplerCustomAdvanced", noise=dataclasses.replace(noise, base_noise=base_noise),
                              guider=guider, sampler=sampler, sigmas=sigmas, latent_image=latent)
        outputs.append(output["samples"])
    assert outputs[0].shape == (2, 4, 20, 8, 16)
    assert relative_error(outputs[0][1:], outputs[1]) <= 1e-5


@pytest.mark.parametrize("sampler_name", ["heun", "dpmpp_2s_ancestral"])
def test_multistage_samplers_run_with_windows(golden_model, golden, sampler_name):
    positive, negative, latent, first_frame = conditioning(golden, 21)
    (noise,) = call_node("CinemoInitNoise", first_frame=first_frame, seed=5, low_pass=0.23, noise_timestep=975,
                         mode="dct")
    (sigmas,) = call_node("CinemoScheduler", steps=2)
    (guider,) = call_node("CFGGuider", model=cinemo_windows(golden_model), positive=positive, negative=negative, cfg=7.5)
    (sampler,) = call_node("KSamplerSelect", sampler_name=sampler_name)
    output, _ = call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                          latent_image=latent)
    assert output["samples"].shape == latent["samples"].shape and torch.isfinite(output["samples"]).all()


def seam_over_median_step(residual: torch.Tensor) -> float:
    """|last frame - first frame| over the median frame-to-frame change, in latent space (the first frame's
    residual is 0)."""
    frames = torch.cat([torch.zeros_like(residual[:, :, :1]), residual], dim=2)
    steps = (frames[:, :, 1:] - frames[:, :, :-1]).transpose(1, 2).flatten(2).norm(dim=-1)  # [N, F]
    return float(residual[:, :, -1].flatten(1).norm(dim=-1).mean() / steps.median())


def test_loop_node_pulls_the_last_frames_back_to_the_first_image(golden_model, golden):
    plain, _ = comfy_run(golden_model, golden, frames=16, steps=4)
    looped, _ = comfy_run(cinemo_loop(golden_model), golden, frames=16, steps=4)
    without, with_loop = seam_over_median_step(plain), seam_over_median_step(looped)
    print(f"seam / median frame-to-frame change: {without:.2f} without, {with_loop:.2f} with Cinemo Seamless Loop")
    assert with_loop <= 1 / 3 < 1 / 2 <= without
    ramp = default_ramp(15)
    assert relative_error(looped[:, :, :15 - ramp], plain[:, :, :15 - ramp]) <= 0.5  # frames before the ramp keep moving


@pytest.mark.parametrize("ramp_frames", [0, 3])
def test_loop_node_is_the_post_cfg_scale_bit_for_bit(golden_model, golden, ramp_frames):
    """Cinemo Seamless Loop samples exactly what a post-CFG ``denoised * return_weights`` samples (what the node
    did before the end frame shared its pull)."""
    frames = 12
    ramp = ramp_frames or default_ramp(frames - 1)
    weights = return_weights(frames - 1, ramp).view(1, 1, -1, 1, 1)
    model = golden_model.clone()
    model.set_model_sampler_post_cfg_function(lambda args: args["denoised"] * weights.to(args["denoised"]))
    reference, _ = comfy_run(model, golden, frames=frames, steps=3)
    looped, _ = comfy_run(cinemo_loop(golden_model, ramp_frames), golden, frames=frames, steps=3)
    assert torch.equal(looped, reference)


def test_interrupt_stops_a_windowed_loop_within_one_step(golden_model, golden):
    import comfy.model_management
    import comfy.utils

    seen = []

    def hook(value, total, preview, node_id=None, prompt_id=None):
        seen.append(value)
        if value == 1:
            comfy.model_management.interrupt_current_processing(True)

    model = cinemo_loop(cinemo_windows(golden_model))
    positive, negative, latent, first_frame = conditioning(golden, 41)
    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            call_node("CinemoSampler", model=model, positive=positive, negative=negative, latent_image=latent,
                      first_frame=first_frame, seed=0, steps=5, cfg=7.5, sampler_name="ddim", scheduler="cinemo_ddim",
                      dct_init=True, low_pass=0.23, noise_timestep=975)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        comfy.model_management.interrupt_current_processing(False)
    assert seen == [1]
