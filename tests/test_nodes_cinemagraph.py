"""Cinemagraphs in a real ComfyUI: Cinemo Conditioning's motion_mask keeps still regions exactly still under
every sampler path (Cinemo Sampler, core KSampler, SamplerCustomAdvanced, context windows, the seamless loop).

The golden tiny case (latent 8x16, so 64x128 pixels) with a mask whose left half moves and right half is still,
aligned to the 8x8 latent cells: the still cells must hold a residual of exactly 0.0 and the moving ones must
move. Without the finishing blend of the model's SAMPLER_SAMPLE wrapper the still cells keep the schedule's
last noise (measured up to 0.22), so these tests fail without it.
"""

import logging

import pytest
import torch
from comfy_models import call_node, golden_conditioning

from cinemo_core.preprocess import fit_image

# The mask is fitted like the picture, whose official cover-resize zooms by a pixel even at the video's own size,
# so the two latent columns at the half border (7, 8) are slightly soft; the rest is all-moving or all-still.
MOVING_COLUMNS = slice(0, 7)  # latent columns under the mask's white (left) half
STILL_COLUMNS = slice(9, 16)


def half_mask(height=64, width=128, batch=1):
    mask = torch.zeros(batch, height, width)
    mask[:, :, : width // 2] = 1.0
    return mask


def masked_conditioning(golden, mask, frames=8, **extra):
    positive, negative, latent, first_frame = golden_conditioning(golden, frames=frames)
    _, _, masked, = call_node(
        "CinemoConditioning", positive=[[golden["encoder_hidden_states"], {}]],
        negative=[[golden["negative_encoder_hidden_states"], {}]], first_frame=first_frame, intensity=0,
        frames=frames, raw_motion_id=float(golden["motion_bucket_id"].item()), motion_mask=mask, **extra,
    )
    return positive, negative, masked, first_frame, latent


def cinemo_sampler(model, positive, negative, latent, first_frame, steps=4, sampler="ddim", scheduler="cinemo_ddim"):
    (out,) = call_node("CinemoSampler", model=model, positive=positive, negative=negative, latent_image=latent,
                       first_frame=first_frame, seed=3, steps=steps, cfg=7.5, sampler_name=sampler,
                       scheduler=scheduler, dct_init=True, low_pass=0.23, noise_timestep=975)
    return out["samples"]


def ksampler(model, positive, negative, latent, steps=4):
    (out,) = call_node("KSampler", model=model, seed=3, steps=steps, cfg=7.5, sampler_name="euler",
                       scheduler="normal", positive=positive, negative=negative, latent_image=latent, denoise=1.0)
    return out["samples"]


def custom_advanced(model, positive, negative, latent, first_frame, steps=4):
    (guider,) = call_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=7.5)
    (sampler,) = call_node("KSamplerSelect", sampler_name="dpmpp_2m")
    (sigmas,) = call_node("CinemoScheduler", steps=steps)
    (noise,) = call_node("CinemoInitNoise", first_frame=first_frame, seed=3, low_pass=0.23, noise_timestep=975,
                         mode="dct")
    out, _ = call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                       latent_image=latent)
    return out["samples"]


def assert_cinemagraph(residual):
    assert residual.abs().amax().item() > 0.05  # the moving half moves
    assert residual[..., MOVING_COLUMNS].abs().amax(dim=(-1, -2)).min().item() > 1e-3  # in every frame
    still = residual[..., STILL_COLUMNS]
    assert torch.count_nonzero(still) == 0, f"still region keeps a residual up to {still.abs().max().item():.3g}"


def test_conditioning_puts_the_latent_mask_on_the_residual(comfyui, golden):
    _, _, latent, _, plain = masked_conditioning(golden, half_mask())
    mask = latent["noise_mask"]
    assert list(mask.shape) == [1, 1, 7, 8, 16]
    assert torch.equal(mask[..., MOVING_COLUMNS], torch.ones_like(mask[..., MOVING_COLUMNS]))
    assert torch.equal(mask[..., STILL_COLUMNS], torch.zeros_like(mask[..., STILL_COLUMNS]))
    assert torch.equal(latent["samples"], plain["samples"])
    # a soft border: a cell half covered by moving pixels gets 0.5 (area), not 0 or 1
    soft = torch.zeros(1, 64, 128)
    soft[:, :, :68] = 1.0
    _, _, soft_latent, _, _ = masked_conditioning(golden, soft)
    assert soft_latent["noise_mask"][0, 0, 0, 0, 8].item() == pytest.approx(0.5, abs=0.05)
    # the mask is fitted like the picture: a mask of the picture's size at twice the resolution is the same
    _, _, large, _, _ = masked_conditioning(golden, half_mask(128, 256))
    assert torch.equal(large["noise_mask"][..., MOVING_COLUMNS], mask[..., MOVING_COLUMNS])
    assert torch.equal(large["noise_mask"][..., STILL_COLUMNS], mask[..., STILL_COLUMNS])
    assert torch.allclose(large["noise_mask"], mask, atol=0.02)


@pytest.mark.parametrize("path", ["cinemo_sampler", "cinemo_sampler_euler", "ksampler", "custom_advanced"])
def test_still_region_is_exactly_still_under_every_sampler(golden_model, golden, path):
    positive, negative, latent, first_frame, _ = masked_conditioning(golden, half_mask())
    if path == "cinemo_sampler":
        residual = cinemo_sampler(golden_model, positive, negative, latent, first_frame)
    elif path == "cinemo_sampler_euler":
        residual = cinemo_sampler(golden_model, positive, negative, latent, first_frame, sampler="euler_ancestral",
                                  scheduler="karras")
    elif path == "ksampler":
        residual = ksampler(golden_model, positive, negative, latent)
    else:
        residual = custom_advanced(golden_model, positive, negative, latent, first_frame)
    assert_cinemagraph(residual)


def test_still_region_is_exactly_still_with_context_windows_and_the_loop(golden_model, golden):
    positive, negative, latent, first_frame, _ = masked_conditioning(golden, half_mask(), frames=12)
    (windowed,) = call_node("CinemoContextWindows", model=golden_model, window_frames=6, overlap=2,
                            schedule="standard_uniform", fuse_method="relative")
    (looped,) = call_node("CinemoSeamlessLoop", model=windowed, ramp_frames=0)
    for model in (windowed, looped):
        assert_cinemagraph(cinemo_sampler(model, positive, negative, latent, first_frame))
        assert_cinemagraph(custom_advanced(model, positive, negative, latent, first_frame))


def test_core_set_latent_noise_mask_is_exact_too(golden_model, golden):
    """The blend is on the model, so a mask from core Set Latent Noise Mask is kept exactly as well."""
    positive, negative, latent, first_frame = golden_conditioning(golden)
    (masked,) = call_node("SetLatentNoiseMask", samples=latent, mask=half_mask(8, 16))
    residual = custom_advanced(golden_model, positive, negative, masked, first_frame)
    assert_cinemagraph(residual)


def test_unpainted_and_all_moving_masks_change_nothing(golden_model, golden, caplog):
    positive, negative, latent, first_frame, _ = masked_conditioning(golden, half_mask())
    plain = golden_conditioning(golden)[2]
    expected = cinemo_sampler(golden_model, positive, negative, plain, first_frame)
    with caplog.at_level(logging.INFO):
        _, _, unpainted, _, _ = masked_conditioning(golden, torch.zeros(1, 64, 64))  # Load Image, no alpha
    assert "nothing painted" in caplog.text
    _, _, all_moving, _, _ = masked_conditioning(golden, torch.ones(1, 64, 128))
    for latent in (unpainted, all_moving):
        assert "noise_mask" not in latent
        assert torch.equal(cinemo_sampler(golden_model, positive, negative, latent, first_frame), expected)


def test_deliberately_still_mask_gives_a_still_video_and_says_so(golden_model, golden, caplog):
    with caplog.at_level(logging.WARNING):
        positive, negative, latent, first_frame, _ = masked_conditioning(golden, torch.zeros(1, 64, 128))
    assert "still everywhere" in caplog.text
    residual = cinemo_sampler(golden_model, positive, negative, latent, first_frame)
    assert torch.count_nonzero(residual) == 0


def test_invert_mask_swaps_what_moves(comfyui, golden):
    _, _, latent, _, _ = masked_conditioning(golden, half_mask(), invert_mask=True)
    assert torch.equal(latent["noise_mask"][..., STILL_COLUMNS], torch.ones(1, 1, 7, 8, 7))
    assert torch.equal(latent["noise_mask"][..., MOVING_COLUMNS], torch.zeros(1, 1, 7, 8, 7))


def test_bad_masks_are_named(comfyui, golden):
    with pytest.raises(ValueError, match="motion_mask holds 3 masks but there are 1 videos"):
        masked_conditioning(golden, half_mask(batch=3))
    with pytest.raises(ValueError, match="motion_mask holds NaN"):
        masked_conditioning(golden, torch.full((1, 64, 128), float("nan")))
    with pytest.raises(ValueError, match="motion_mask must be a MASK"):
        masked_conditioning(golden, torch.zeros(1, 0, 128))
    positive, negative, _, first_frame = golden_conditioning(golden)
    fitted = {**first_frame, "cinemo_source_size": (300, 400)}  # First Frame Encode of a 400x300 picture
    with pytest.raises(ValueError, match="motion_mask is 128x64 pixels but the image is 400x300"):
        call_node("CinemoConditioning", positive=positive, negative=negative, first_frame=fitted, intensity=0,
                  frames=8, motion_mask=half_mask())


# ------------------------------------------------------------------ Load Image's empty mask vs a deliberate one


def load_image_mask(comfyui, width, height, name):
    """Core Load Image of an opaque RGB picture (no alpha): its IMAGE and MASK as ComfyUI gives them."""
    from PIL import Image

    Image.new("RGB", (width, height), (120, 80, 40)).save(comfyui.input / name)
    return call_node("LoadImage", image=name)


def test_load_images_empty_mask_is_unpainted_whatever_the_pictures_size(golden_model, golden, comfyui, caplog):
    """Load Image gives 64x64 zeros for a picture without alpha; on a picture of another size that is 'nothing
    painted' (animate everything), for the real node's output and for a picture of any size."""
    picture, mask = load_image_mask(comfyui, 256, 128, "cinemo_unpainted.png")
    assert list(mask.shape) == [1, 64, 64] and not mask.any()  # what core Load Image returns
    positive, negative, _, first_frame = golden_conditioning(golden)
    fitted = {**first_frame, "cinemo_source_size": (128, 256)}  # First Frame Encode of that picture
    with caplog.at_level(logging.INFO):
        _, _, latent = call_node("CinemoConditioning", positive=positive, negative=negative, first_frame=fitted,
                                 intensity=0, frames=8, motion_mask=mask)
    assert "noise_mask" not in latent and "nothing painted" in caplog.text
    frames = torch.rand(8, 64, 128, 3)
    (kept,) = call_node("CinemoKeepStill", images=frames, picture=picture, motion_mask=mask, invert_mask=False,
                        feather=8)
    assert kept is frames


def test_a_deliberately_still_mask_of_the_pictures_own_size_gives_a_still_video(golden_model, golden, comfyui,
                                                                                 caplog):
    """Solid Mask 0 at the picture's size is a mask made for it, also on a 64x64 picture, whose Load Image mask
    looks the same (documented: there the mask counts as deliberate)."""
    picture, _ = load_image_mask(comfyui, 64, 64, "cinemo_square.png")
    (solid,) = call_node("SolidMask", value=0.0, width=64, height=64)
    positive, negative, _, first_frame = golden_conditioning(golden)
    fitted = {**first_frame, "cinemo_source_size": (64, 64)}
    with caplog.at_level(logging.WARNING):
        _, _, latent = call_node("CinemoConditioning", positive=positive, negative=negative, first_frame=fitted,
                                 intensity=0, frames=8, motion_mask=solid)
    assert "still everywhere" in caplog.text
    residual = cinemo_sampler(golden_model, positive, negative, latent, fitted)
    assert torch.count_nonzero(residual) == 0
    frames = torch.rand(8, 64, 128, 3)
    (kept,) = call_node("CinemoKeepStill", images=frames, picture=picture, motion_mask=solid, invert_mask=False,
                        feather=8)
    expected = ((fit_image(picture, 128, 64) + 1) / 2).clamp(0, 1).movedim(1, -1)
    assert torch.equal(kept, expected.expand(8, -1, -1, -1))


# ------------------------------------------------------------------------------------- pixels: Cinemo Keep Still


@pytest.fixture(scope="module")
def decoders(comfy_models, comfyui):
    """The stand-in SD VAE (core Load VAE, decoded by core VAE Decode) and temporal VAE (Cinemo Temporal VAE
    Decode)."""
    from comfy_models import TEMPORAL_VAE_NAME, write_temporal_vae

    write_temporal_vae(comfyui.models)
    import folder_paths

    folder_paths.filename_list_cache.clear()
    (sd_vae,) = call_node("VAELoader", vae_name=comfy_models.vae)
    (temporal,) = call_node("CinemoTemporalVAELoader", vae_name=TEMPORAL_VAE_NAME)
    return {
        "core VAE Decode": lambda frames: call_node("VAEDecode", vae=sd_vae, samples=frames)[0],
        "Cinemo Temporal VAE Decode": lambda frames: call_node(
            "CinemoTemporalVAEDecode", vae=temporal, samples=frames, frames_per_clip=16, chunk_size=14)[0],
    }


@pytest.mark.parametrize("decoder", ["core VAE Decode", "Cinemo Temporal VAE Decode"])
def test_keep_still_makes_still_pixels_the_pictures_bit_for_bit(golden_model, golden, decoders, decoder):
    positive, negative, latent, first_frame, _ = masked_conditioning(golden, half_mask())
    residual = cinemo_sampler(golden_model, positive, negative, latent, first_frame)
    (frames,) = call_node("CinemoResidualToFrames", residual={"samples": residual}, first_frame=first_frame)
    decoded = decoders[decoder](frames)
    picture = torch.rand(1, 128, 256, 3, generator=torch.Generator().manual_seed(4))  # the picture, 2x larger
    expected = ((fit_image(picture, 128, 64) + 1) / 2).clamp(0, 1).movedim(1, -1)[0]  # as First Frame Encode
    still, moving = slice(72, None), slice(0, 48)  # the still half; the moving half short of the soft edge
    assert (decoded[:, :, still] - expected[:, still]).abs().max() > 1e-3  # decoding alone is not the picture
    (kept,) = call_node("CinemoKeepStill", images=decoded, picture=picture, motion_mask=half_mask(),
                        invert_mask=False, feather=8)
    assert kept.shape == decoded.shape
    assert torch.equal(kept[:, :, still], expected[:, still].expand(8, -1, -1, -1))  # bit-identical, every frame
    assert torch.equal(kept[:, :, moving], decoded[:, :, moving])
    border = kept[:, :, 48:72] - decoded[:, :, 48:72]
    assert border.abs().amax() > 0  # the soft edge blends


def test_keep_still_per_video_and_bad_inputs(comfyui):
    frames = torch.rand(8, 64, 128, 3)  # two videos of 4 frames
    pictures = torch.rand(2, 64, 128, 3)
    masks = torch.cat([half_mask(), 1 - half_mask()])
    (kept,) = call_node("CinemoKeepStill", images=frames, picture=pictures, motion_mask=masks, invert_mask=False,
                        feather=0)
    fitted = ((fit_image(pictures, 128, 64) + 1) / 2).clamp(0, 1).movedim(1, -1)
    assert torch.equal(kept[:4, :, 72:], fitted[:1, :, 72:].expand(4, -1, -1, -1))  # video 0: right half still
    assert torch.equal(kept[4:, :, :56], fitted[1:, :, :56].expand(4, -1, -1, -1))  # video 1: left half still
    assert torch.equal(kept[4:, :, 72:], frames[4:, :, 72:])
    (inverted,) = call_node("CinemoKeepStill", images=frames, picture=pictures[:1], motion_mask=1 - half_mask(),
                            invert_mask=True, feather=0)
    assert torch.equal(inverted[:, :, 72:], fitted[:1, :, 72:].expand(8, -1, -1, -1))
    (unchanged,) = call_node("CinemoKeepStill", images=frames, picture=pictures[:1], motion_mask=torch.ones(1, 8, 16),
                             invert_mask=False, feather=8)
    assert torch.equal(unchanged, frames)
    with pytest.raises(ValueError, match="images holds 9 frames, which are not 2 videos"):
        call_node("CinemoKeepStill", images=torch.rand(9, 64, 128, 3), picture=pictures, motion_mask=masks,
                  invert_mask=False, feather=8)
    with pytest.raises(ValueError, match="picture holds 2 images but motion_mask holds 3 masks"):
        call_node("CinemoKeepStill", images=torch.rand(9, 64, 128, 3), picture=pictures,
                  motion_mask=half_mask(batch=3), invert_mask=False, feather=8)
    with pytest.raises(ValueError, match="motion_mask is 128x128 pixels but the image is 128x64"):
        call_node("CinemoKeepStill", images=frames, picture=pictures, motion_mask=torch.zeros(1, 128, 128),
                  invert_mask=False, feather=8)


# ------------------------------------------------------------------------------------ motion transfer with a mask


@pytest.mark.parametrize("sampler_node", ["SamplerCustomAdvanced", "CinemoSampler"])
def test_motion_transfer_keeps_masked_cells_exactly_still(golden_model, sampler_node):
    """The Motion transfer workflow's path (Invert Motion of a source clip's residual, Init Noise's
    inverted_motion, cfg 1) with motion_mask on the edited frame's Conditioning: still cells are exactly 0."""
    from golden_case import TINY_A
    from safetensors.torch import load_file

    case = load_file(TINY_A / "inversion_case.safetensors")
    scale = 0.18215
    source_first = {"samples": case["source_base"][:, :, 0] / scale}
    source_pos, source_neg, _ = call_node(
        "CinemoConditioning", positive=[[case["source_context"], {}]],
        negative=[[torch.zeros_like(case["source_context"]), {}]], first_frame=source_first, intensity=0, frames=8,
        raw_motion_id=8.0)
    (inverted,) = call_node("CinemoInvertMotion", model=golden_model, positive=source_pos, negative=source_neg,
                            residual={"samples": case["source_residual"] / scale}, steps=10, cfg=1.0)
    edit_first = {"samples": case["edit_base"][:, :, 0] / scale}
    positive, negative, latent = call_node(
        "CinemoConditioning", positive=[[case["target_context"], {}]],
        negative=[[torch.zeros_like(case["target_context"]), {}]], first_frame=edit_first, intensity=0, frames=8,
        raw_motion_id=8.0, motion_mask=half_mask())
    assert "noise_mask" in latent
    (noise,) = call_node("CinemoInitNoise", first_frame=edit_first, seed=0, low_pass=0.23, noise_timestep=975,
                         mode="dct", inverted_motion=inverted)
    if sampler_node == "SamplerCustomAdvanced":
        (guider,) = call_node("CFGGuider", model=golden_model, positive=positive, negative=negative, cfg=1.0)
        (sampler,) = call_node("KSamplerSelect", sampler_name="ddim")
        (sigmas,) = call_node("CinemoScheduler", steps=10)
        out, _ = call_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                           latent_image=latent)
    else:
        (out,) = call_node("CinemoSampler", model=golden_model, positive=positive, negative=negative,
                           latent_image=latent, first_frame=edit_first, seed=0, steps=10, cfg=1.0,
                           sampler_name="ddim", scheduler="cinemo_ddim", dct_init=True, low_pass=0.23,
                           noise_timestep=975, noise=noise)
    assert case["edited_residual"][..., STILL_COLUMNS].abs().max() > 0.05  # unmasked, the transfer moves there
    assert_cinemagraph(out["samples"])
