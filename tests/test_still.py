"""Cinemagraphs in the core: the motion mask's fitting and sample_residual keeping still cells exactly still.

On the golden tiny model: still latent cells hold a residual of exactly 0.0, the moving ones move, and an
all-moving mask samples the golden (official) residual unchanged.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cinemo_core.sampling.sampler import sample_residual
from cinemo_core.sampling.still import (
    as_mask_batch,
    average_per_cell,
    check_aspect,
    composite_still_pixels,
    feather,
    fit_mask,
    is_unpainted,
    latent_mask,
)
from cinemo_core.preprocess import fit_image

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_a"


@pytest.fixture(scope="module")
def golden_run():
    from cinemo_core import load_unet

    g = load_file(str(FIXTURE / "case.safetensors"))
    unet = load_unet(FIXTURE, dtype=torch.float32)

    def run(**extra):
        with torch.no_grad():
            return sample_residual(unet, g["dct_latents"], g["base_content"], g["encoder_hidden_states"],
                                   g["negative_encoder_hidden_states"], g["motion_bucket_id"], steps=6,
                                   guidance_scale=7.5, **extra)

    return run


def test_still_cells_are_exactly_zero_and_the_rest_moves(golden_run):
    mask = torch.zeros(1, 8, 16)
    mask[:, :, :8] = 1.0
    mask[:, :, 8] = 0.5  # a soft border column
    plain = golden_run()
    masked = golden_run(motion_mask=mask)
    assert torch.count_nonzero(masked[..., 9:]) == 0
    assert masked[..., :8].abs().amax(dim=(-1, -2)).min() > 1e-3
    assert 0 < masked[..., 8].abs().max() < plain[..., 8].abs().max()
    looped = golden_run(motion_mask=mask, loop_ramp=3)
    assert torch.count_nonzero(looped[..., 9:]) == 0
    assert not torch.equal(looped, masked)


def test_an_all_moving_mask_is_the_official_sampler(golden_run):
    assert torch.equal(golden_run(motion_mask=torch.ones(1, 8, 16)), golden_run())


def test_bad_latent_masks_are_named(golden_run):
    with pytest.raises(ValueError, match=r"motion_mask must be a latent mask \[videos, 8, 16\]"):
        golden_run(motion_mask=torch.ones(1, 8, 8))
    with pytest.raises(ValueError, match="motion_mask must hold values from 0"):
        golden_run(motion_mask=torch.full((1, 8, 16), 2.0))
    with pytest.raises(ValueError, match="motion_mask has batch 3"):
        golden_run(motion_mask=torch.ones(3, 8, 16))


def test_mask_is_fitted_like_the_image():
    """A mask painted on the picture covers the same pixels after fitting as the picture's content does."""
    picture = torch.rand(1, 90, 200, 3)
    marked = picture.clone()
    marked[:, 30:60, 50:120] = 1.0
    mask = torch.zeros(1, 90, 200)
    mask[:, 30:60, 50:120] = 1.0
    fitted_picture = (fit_image(marked, 128, 64) + 1) / 2
    fitted_mask = fit_mask(mask, 128, 64)
    inside = fitted_mask == 1.0
    assert inside.any()
    assert torch.allclose(fitted_picture[:, :, inside[0]], torch.ones(1, 3, int(inside.sum())), atol=1e-5)


def test_average_per_cell_is_the_mean_of_each_8x8_block():
    mask = torch.zeros(1, 64, 128)
    mask[:, :, :68] = 1.0  # half of column 8's cells
    latent = average_per_cell(mask)
    assert latent.shape == (1, 8, 16)
    assert torch.equal(latent[..., :8], torch.ones(1, 8, 8))
    assert torch.all(latent[..., 8] == 0.5)
    assert torch.equal(latent[..., 9:], torch.zeros(1, 8, 7))


def test_unpainted_mask_and_aspect_and_bad_values():
    assert is_unpainted(torch.zeros(1, 64, 64), (320, 512))
    assert is_unpainted(torch.zeros(3, 64, 64), (300, 300))  # an animated picture: one mask per frame
    assert not is_unpainted(torch.zeros(1, 64, 128), (320, 512)) and not is_unpainted(torch.ones(1, 64, 64), (8, 8))
    assert not is_unpainted(torch.zeros(1, 64, 64), (64, 64))  # a mask of the picture's own size is deliberate
    check_aspect(torch.zeros(1, 150, 200), (300, 400), "motion_mask")
    with pytest.raises(ValueError, match="motion_mask is 200x200 pixels but the image is 400x300"):
        check_aspect(torch.zeros(1, 200, 200), (300, 400), "motion_mask")
    with pytest.raises(ValueError, match="mask_in holds NaN"):
        as_mask_batch(torch.tensor([[float("inf")]]), "mask_in")


def test_composite_keeps_still_pixels_bit_identical_and_feather_keeps_zeros():
    frames = torch.rand(1, 5, 16, 32, 3)
    picture = torch.rand(1, 16, 32, 3)
    mask = torch.zeros(1, 16, 32)
    mask[:, :, :16] = 1.0
    soft = feather(mask, 3)
    assert torch.equal(soft[:, :, 16:], torch.zeros(1, 16, 16)) and 0 < soft[0, 0, 14] < 1
    out = composite_still_pixels(frames, picture, soft)
    assert torch.equal(out[:, :, :, 16:], picture[:, None, :, 16:].expand(1, 5, 16, 16, 3))
    assert torch.equal(out[:, :, 4:12, :10], frames[:, :, 4:12, :10])


def test_latent_mask_fits_a_mask_of_the_videos_own_size_as_the_picture_is_fitted():
    """The picture is always cover-resized (the official fit zooms even at the video's size), so the mask is too."""
    mask = torch.zeros(1, 64, 128)
    mask[:, :, :64] = 1.0
    latent = latent_mask(mask, (8, 16))
    assert torch.equal(latent, average_per_cell(fit_mask(mask, 128, 64)))
    assert not torch.equal(latent, average_per_cell(mask))
