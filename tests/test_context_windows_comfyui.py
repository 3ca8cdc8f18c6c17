"""The core's context windows and loop against ComfyUI's own ``comfy.context_windows`` (real ComfyUI, tiny model).

Windows and weights are compared with ComfyUI's functions; whole runs compare ``sample_residual`` with
``SamplerCustomAdvanced`` on a Cinemo MODEL given core ``ContextWindowsManual`` (``dim=2``) and, for loops,
the ``sampler_post_cfg_function`` a node would set.
"""

import pytest
import torch
from comfy_models import call_node
from golden_case import relative_error

from cinemo_core.context_windows import (
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
from cinemo_core.loop import default_ramp, return_weights
from cinemo_core.sampling import sample_residual

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
