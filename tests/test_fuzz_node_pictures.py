"""Fuzzed IMAGE and MASK inputs of the nodes, in a real ComfyUI (in-process; issue 18).

Cinemo First Frame Encode's ``image`` (with the stand-in SD VAE of ``comfy_models.py``) and Cinemo
Conditioning's ``motion_mask`` get the odd tensors of ``test_fuzz_pictures.py``: 0-size, 1x1, extreme aspect
ratios, NaN/inf, far outside 0..1, wrong channel counts and dimensions, wrong mask counts, batches. Each case
ends in a ``ValueError`` whose message starts with the input's name (what ComfyUI shows on the node), or a
correct output: a finite first-frame latent (one latent cell per 8x8 pixels) per image, or a residual whose
``noise_mask`` is None (all moves) or 0..1 in the residual's layout. Half of ``CINEMO_FUZZ_EXAMPLES`` cases per test.
"""

from __future__ import annotations

import pytest
import torch
from comfy_models import call_node
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_fuzz_pictures import FUZZ, images, masks

#: Half the core test's cases: the same strategies run there at 40 cases, without ComfyUI, in a few seconds.
NODE_FUZZ = settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 2))

WIDTH, HEIGHT, FRAMES = 64, 64, 3
TEXT = [[torch.zeros(1, 77, 768), {}]]  # CLIP-L's width; Conditioning checks only that it is finite without a model


@pytest.fixture(scope="module")
def vae(comfyui, comfy_models):
    return call_node("VAELoader", vae_name=comfy_models.vae)[0]


@NODE_FUZZ
@given(image=images())
@example(image=torch.full((1, 8, 8, 3), float("nan")))  # was "vae: ... not finite": the VAE blamed for the image
@example(image=torch.zeros((1, 1, 100_000, 3)))
def test_first_frame_encode_names_the_image_or_encodes_it(vae, image):
    try:
        with torch.inference_mode():  # as ComfyUI's executor runs nodes
            (latent,) = call_node("CinemoFirstFrameEncode", image=image, vae=vae, width=WIDTH, height=HEIGHT)
    except ValueError as error:
        assert str(error).startswith("image"), str(error)
        return
    samples = latent["samples"]
    assert samples.shape == (image.shape[0], 4, HEIGHT // 8, WIDTH // 8)
    assert bool(torch.isfinite(samples).all())


@pytest.fixture(scope="module")
def first_frames(vae) -> dict[tuple[int, bool], dict]:
    """{(videos, with the picture's size): first-frame LATENT}: Cinemo First Frame Encode's of square pictures
    (which records the picture's size, so Conditioning checks the mask's aspect), or a bare latent."""
    with torch.inference_mode():
        encoded = {
            (videos, True): call_node("CinemoFirstFrameEncode", image=torch.rand(videos, 48, 48, 3), vae=vae,
                                      width=WIDTH, height=HEIGHT)[0]
            for videos in (1, 2, 3)
        }
    bare = {(videos, False): {"samples": torch.zeros(videos, 4, HEIGHT // 8, WIDTH // 8)} for videos in (1, 2, 3)}
    return {**encoded, **bare}


@NODE_FUZZ
@given(mask=masks(), videos=st.integers(1, 3), invert=st.booleans(), with_source_size=st.booleans())
@example(mask=torch.zeros((1, 100_000)), videos=1, invert=False, with_source_size=False)
def test_conditioning_names_the_motion_mask_or_applies_it(first_frames, mask, videos, invert, with_source_size):
    try:
        _, _, latent = call_node(
            "CinemoConditioning", positive=TEXT, negative=TEXT, first_frame=first_frames[videos, with_source_size],
            intensity=9, frames=FRAMES, motion_mask=mask, invert_mask=invert,
        )
    except ValueError as error:
        assert str(error).startswith("motion_mask"), str(error)
        return
    assert latent["samples"].shape == (videos, 4, FRAMES - 1, HEIGHT // 8, WIDTH // 8)
    noise_mask = latent.get("noise_mask")
    if noise_mask is not None:
        assert noise_mask.shape == (videos, 1, FRAMES - 1, HEIGHT // 8, WIDTH // 8)
        assert bool(torch.isfinite(noise_mask).all()) and 0.0 <= float(noise_mask.min()) <= float(noise_mask.max()) <= 1.0
