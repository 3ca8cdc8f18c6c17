"""Temporal VAE nodes in a real ComfyUI, against diffusers' AutoencoderKLTemporalDecoder on the same weights.

ComfyUI 0.3.64 builds the temporal VAE with SVD's sizes hard-coded (comfy/sd.py), which is what Cinemo's
released ``vae_temporal_decoder`` has, so the reference model here is a random VAE of the real SVD
architecture, decoded at a tiny spatial size to stay fast on a CPU.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLTemporalDecoder
from PIL import Image
from safetensors.torch import save_file

VAE_FOLDER = "cinemo_test_tvae"
SINGLE_FILE = "cinemo_test_tvae_single.safetensors"
TINY_FOLDER = "cinemo_test_tiny_tvae"
TOLERANCE = 1e-4


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Random norms, biases and temporal mix factors too, so that every weight shows in the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("mix_factor"):
                param.copy_(torch.randn(param.shape, generator=generator) * 1.5)
            elif param.dim() == 1 and "norm" in name and name.endswith("weight"):
                param.copy_(1 + 0.2 * torch.randn(param.shape, generator=generator))
            elif name.endswith("bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
            elif name == "quant_conv.weight":
                identity = torch.eye(param.shape[0])[:, :, None, None]
                param.copy_(identity + 0.3 * torch.randn(param.shape, generator=generator))


@pytest.fixture(scope="module")
def reference(comfyui) -> AutoencoderKLTemporalDecoder:
    """A random SVD-sized temporal VAE, saved as a diffusers folder in models/vae and a single file in models/cinemo."""
    torch.manual_seed(0)
    model = AutoencoderKLTemporalDecoder(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
    ).eval()
    _randomise(model, seed=1)
    model.save_pretrained(comfyui.models / "vae" / VAE_FOLDER, safe_serialization=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(comfyui.models / "cinemo" / SINGLE_FILE))
    return model


def _listed(comfyui) -> list[str]:
    """The loader's vae_name choices, as the frontend gets them."""
    kind, options = comfyui.node_classes["CinemoTemporalVAELoader"].INPUT_TYPES()["required"]["vae_name"]
    assert kind == "COMBO"
    return options["options"]


def _write_latent(comfyui, name: str, samples: torch.Tensor) -> str:
    """A .latent file LoadLatent reads back unscaled (the format-version key stops its x 1/0.18215)."""
    tensors = {"latent_tensor": samples.contiguous(), "latent_format_version_0": torch.tensor([])}
    save_file(tensors, str(comfyui.input / name))
    return name


def _decode_prompt(vae_name: str, latent: str, frames_per_clip: int, chunk_size: int) -> dict:
    return {
        "1": {"class_type": "CinemoTemporalVAELoader", "inputs": {"vae_name": vae_name}},
        "2": {"class_type": "LoadLatent", "inputs": {"latent": latent}},
        "3": {
            "class_type": "CinemoTemporalVAEDecode",
            "inputs": {
                "vae": ["1", 0], "samples": ["2", 0], "frames_per_clip": frames_per_clip, "chunk_size": chunk_size,
            },
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }


@torch.no_grad()
def _diffusers_decode(
    model: AutoencoderKLTemporalDecoder, latents: torch.Tensor, pieces: list[tuple[int, int]]
) -> torch.Tensor:
    """diffusers decode(z, num_frames=n) of each [start, stop) piece -> IMAGE [N, H, W, 3] in 0..1."""
    out = [model.decode(latents[a:b], num_frames=b - a).sample for a, b in pieces]
    return ((torch.cat(out) + 1.0) / 2.0).clamp(0, 1).permute(0, 2, 3, 1)


def test_decode_matches_diffusers_per_clip_and_chunk(comfyui, reference):
    """2 clips of 5 frames in chunks of 3: decode pieces 3 + 2 per clip, never across the clip boundary."""
    latents = torch.randn(10, 4, 3, 3, generator=torch.Generator().manual_seed(2))
    outputs, _ = comfyui.execute(_decode_prompt(VAE_FOLDER, _write_latent(comfyui, "clips.latent", latents), 5, 3))
    images = outputs["3"][0]
    assert images.shape == (10, 24, 24, 3)
    expected = _diffusers_decode(reference, latents, [(0, 3), (3, 5), (5, 8), (8, 10)])
    error = (images - expected).abs().max().item()
    print(f"temporal VAE decode: max |ComfyUI - diffusers| = {error:.3g}")
    assert error < TOLERANCE
    assert ((expected > 0) & (expected < 1)).float().mean() > 0.9  # not a comparison of clamped values
    # the chunking is observable: decoding whole clips instead gives other frames
    assert (images - _diffusers_decode(reference, latents, [(0, 5), (5, 10)])).abs().max() > 100 * TOLERANCE
    # the loaded object is a normal ComfyUI VAE on ComfyUI's own SVD temporal path
    vae = outputs["1"][0]
    assert type(vae).__name__ == "VAE" and vae.vae_dtype == torch.float32
    assert type(vae.first_stage_model.decoder).__name__ == "VideoDecoder"


def test_default_16_frames_decode_as_14_plus_2_and_5d_latents(comfyui, reference):
    latents = torch.randn(16, 4, 2, 3, generator=torch.Generator().manual_seed(3))
    five_d = latents.permute(1, 0, 2, 3).unsqueeze(0)  # [1, 4, 16, h, w]: one clip of 16 frames
    prompt = _decode_prompt(VAE_FOLDER, _write_latent(comfyui, "clip16.latent", five_d), 7, 14)  # 7 is ignored for 5D
    images = comfyui.execute(prompt)[0]["3"][0]
    assert images.shape == (16, 16, 24, 3)
    assert (images - _diffusers_decode(reference, latents, [(0, 14), (14, 16)])).abs().max() < TOLERANCE
    schema = comfyui.node_classes["CinemoTemporalVAEDecode"].INPUT_TYPES()["required"]
    assert schema["frames_per_clip"][1]["default"] == 16 and schema["chunk_size"][1]["default"] == 14


def test_encode_with_core_node_matches_diffusers(comfyui, reference):
    """The loaded VAE is a complete ComfyUI VAE: core VAEEncode gives diffusers' posterior mode (quant_conv folded)."""
    pixels = np.random.default_rng(4).integers(0, 256, size=(32, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(comfyui.input / "encode_me.png")
    prompt = {
        "1": {"class_type": "CinemoTemporalVAELoader", "inputs": {"vae_name": VAE_FOLDER}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "encode_me.png"}},
        "3": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 0]}},
        "4": {"class_type": "SaveLatent", "inputs": {"samples": ["3", 0], "filename_prefix": "encoded"}},
    }
    latent = comfyui.execute(prompt)[0]["3"][0]["samples"]
    image = torch.from_numpy(pixels).float().div(255).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = reference.encode(image * 2 - 1).latent_dist.mode()
    assert latent.shape == (1, 4, 4, 5)
    assert (latent - expected).abs().max() < TOLERANCE


def test_single_file_in_cinemo_folder_loads_the_same_weights(comfyui, reference):
    names = _listed(comfyui)
    assert VAE_FOLDER in names and SINGLE_FILE in names
    latent = _write_latent(comfyui, "one.latent", torch.zeros(1, 4, 1, 1))
    from_folder = comfyui.execute(_decode_prompt(VAE_FOLDER, latent, 1, 14))[0]["1"][0]
    from_file = comfyui.execute(_decode_prompt(SINGLE_FILE, latent, 1, 14))[0]["1"][0]
    folder_sd, file_sd = from_folder.get_sd(), from_file.get_sd()
    assert folder_sd.keys() == file_sd.keys()
    assert all(torch.equal(folder_sd[k], file_sd[k]) for k in folder_sd)


def test_other_vaes_are_not_listed_and_non_svd_sizes_fail_clearly(comfyui, reference):
    save_file({"decoder.conv_in.weight": torch.zeros(1)}, str(comfyui.models / "vae" / "plain_vae.safetensors"))
    tiny = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2, layers_per_block=2
    )
    tiny.save_pretrained(comfyui.models / "vae" / TINY_FOLDER)
    names = _listed(comfyui)
    assert "plain_vae.safetensors" not in names and TINY_FOLDER in names
    latent = _write_latent(comfyui, "tiny.latent", torch.zeros(2, 4, 2, 2))
    with pytest.raises(RuntimeError, match=r"block_out_channels=\[32, 64\].*only with SVD's sizes"):
        comfyui.run(_decode_prompt(TINY_FOLDER, latent, 2, 14))


def test_partial_clip_is_rejected_with_a_clear_message(comfyui, reference):
    latent = _write_latent(comfyui, "twenty.latent", torch.zeros(20, 4, 2, 2))
    with pytest.raises(RuntimeError, match="20 frames, which is not a whole number of clips of 16 frames"):
        comfyui.run(_decode_prompt(VAE_FOLDER, latent, 16, 14))


def test_every_input_has_a_tooltip(comfyui):
    for node_id in ("CinemoTemporalVAELoader", "CinemoTemporalVAEDecode"):
        node = comfyui.node_classes[node_id]
        assert node.CATEGORY == "Cinemo"
        for name, spec in node.INPUT_TYPES()["required"].items():
            assert spec[1].get("tooltip"), (node_id, name)


def test_frames_carry_their_clip_length_to_the_decoder(comfyui, reference):
    """Two videos of 8 frames pass 'divisible by 16': the clip length comes with the frames, not a widget."""
    from comfy_models import call_node

    generator = torch.Generator().manual_seed(8)
    first = {"samples": torch.randn(2, 4, 2, 3, generator=generator)}
    residual = {"samples": torch.randn(2, 4, 7, 2, 3, generator=generator)}  # Conditioning with frames=8
    (frames,) = call_node("CinemoResidualToFrames", residual=residual, first_frame=first)
    assert frames["cinemo_frames_per_clip"] == 8
    (vae,) = call_node("CinemoTemporalVAELoader", vae_name=VAE_FOLDER)
    (images,) = call_node("CinemoTemporalVAEDecode", vae=vae, samples=frames, frames_per_clip=16, chunk_size=14)
    assert images.shape == (16, 16, 24, 3)
    per_clip = _diffusers_decode(reference, frames["samples"], [(0, 8), (8, 16)])
    assert (images - per_clip).abs().max() < TOLERANCE
    as_one_clip = _diffusers_decode(reference, frames["samples"], [(0, 14), (14, 16)])
    assert (images - as_one_clip).abs().max() > 100 * TOLERANCE  # what the widget's 16 would have decoded


@pytest.fixture(scope="module")
def temporal_vae_file(comfyui) -> str:
    """The stand-in temporal VAE (comfy_models.py) as one file in models/vae: both Load VAE and Cinemo Load
    Temporal VAE list it."""
    import shutil

    import folder_paths
    from comfy_models import TEMPORAL_VAE_NAME, write_temporal_vae

    write_temporal_vae(comfyui.models)
    name = "stand_in_vae_temporal_decoder.safetensors"
    shutil.copy(comfyui.models / "vae" / TEMPORAL_VAE_NAME / "diffusion_pytorch_model.safetensors",
                comfyui.models / "vae" / name)
    folder_paths.filename_list_cache.clear()
    return name


def _encode_prompt(loader: str, vae_name: str, image: str) -> dict:
    return {
        "vae": {"class_type": loader, "inputs": {"vae_name": vae_name}},
        "image": {"class_type": "LoadImage", "inputs": {"image": image}},
        "encode": {"class_type": "CinemoFirstFrameEncode",
                   "inputs": {"image": ["image", 0], "vae": ["vae", 0], "width": 64, "height": 64}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["encode", 0], "filename_prefix": "tvae_check"}},
    }


def test_temporal_vae_through_core_load_vae_is_blamed_at_encode(comfyui, comfy_models, temporal_vae_file):
    """Core Load VAE reads the diffusers temporal VAE with hundreds of missing weights; the first frame encoded
    with it is stopped at the encoder, naming the VAE and the right loader (not the sampler's NaN later)."""
    with pytest.raises(RuntimeError) as failure:
        comfyui.run(_encode_prompt("VAELoader", temporal_vae_file, comfy_models.image))
    message = str(failure.value)
    assert "vae: the first frame's latent" in message
    assert "the VAE is at fault" in message and "Cinemo Load Temporal VAE" in message
    assert "Cinemo UNet" not in message

    from comfy_models import call_node

    (vae,) = call_node("VAELoader", vae_name=temporal_vae_file)
    clip = torch.rand(3, 64, 80, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"^vae: the clip's latent .*Cinemo Load Temporal VAE"):
        call_node("CinemoVideoEncode", images=clip, vae=vae, width=64, height=64, frames=3, frame_step=1)


def test_the_same_file_through_the_temporal_loader_encodes(comfyui, comfy_models, temporal_vae_file):
    outputs, _ = comfyui.run(_encode_prompt("CinemoTemporalVAELoader", temporal_vae_file, comfy_models.image))
    from comfy_models import call_node

    (vae,) = call_node("CinemoTemporalVAELoader", vae_name=temporal_vae_file)
    clip = torch.rand(3, 64, 80, 3, generator=torch.Generator().manual_seed(0))
    first, residual = call_node("CinemoVideoEncode", images=clip, vae=vae, width=64, height=64, frames=3, frame_step=1)
    assert first["samples"].shape == (1, 4, 8, 8) and torch.isfinite(residual["samples"]).all()
