"""The released-layout model folder, CLIP text encoding, and VAE encode/decode against diffusers references."""

import shutil
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder

from cinemo_core.model.components import (
    ComponentLoadError,
    ImageEncoder,
    ModelFolderError,
    decode_video,
    encode_image,
    encode_prompts,
    load_components,
    locate_model_files,
)
from cinemo_core.app.demo import build_demo_components, build_demo_vae, demo_vocabulary, write_demo_model

SCALE = 0.18215


def touch_layout(root: Path, parts: tuple[str, ...]) -> Path:
    """Empty files with the names each part needs (enough for locating, not for loading)."""
    names = {
        "unet": ("config.json", "diffusion_pytorch_model.safetensors"),
        "vae": ("config.json", "diffusion_pytorch_model.safetensors"),
        "vae_temporal_decoder": ("config.json", "diffusion_pytorch_model.safetensors"),
        "text_encoder": ("config.json", "model.safetensors"),
        "tokenizer": ("vocab.json", "merges.txt"),
    }
    for part in parts:
        (root / part).mkdir(parents=True, exist_ok=True)
        for name in names[part]:
            (root / part / name).touch()
    return root


ALL_PARTS = ("unet", "vae", "vae_temporal_decoder", "text_encoder", "tokenizer")


def tiny_temporal_vae() -> AutoencoderKLTemporalDecoder:
    torch.manual_seed(3)
    return AutoencoderKLTemporalDecoder(
        down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(32, 32, 32, 32), layers_per_block=1
    ).eval()


def tiny_kl_vae() -> AutoencoderKL:
    torch.manual_seed(4)
    return build_demo_vae().eval()


@pytest.fixture(scope="module")
def released_folder(tmp_path_factory) -> Path:
    root = write_demo_model(tmp_path_factory.mktemp("released") / "Cinemo")
    tiny_temporal_vae().save_pretrained(root / "vae_temporal_decoder")
    return root


@pytest.fixture(scope="module")
def demo():
    return build_demo_components()


# --- locating the parts ------------------------------------------------------------------------


def test_complete_folder_prefers_the_temporal_decoder(tmp_path):
    files = locate_model_files(touch_layout(tmp_path, ALL_PARTS))
    assert files.vae_kind == "temporal" and files.vae == tmp_path / "vae_temporal_decoder"
    assert files.unet == tmp_path / "unet" and files.tokenizer == tmp_path / "tokenizer"
    assert locate_model_files(tmp_path, vae="kl").vae == tmp_path / "vae"


def test_plain_vae_is_used_when_the_temporal_decoder_is_absent(tmp_path):
    files = locate_model_files(touch_layout(tmp_path, ("unet", "vae", "text_encoder", "tokenizer")))
    assert files.vae_kind == "kl" and files.vae == tmp_path / "vae"


def test_tokenizer_json_alone_is_enough(tmp_path):
    touch_layout(tmp_path, ("unet", "vae", "text_encoder"))
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "tokenizer.json").touch()
    assert locate_model_files(tmp_path).tokenizer == tmp_path / "tokenizer"


def test_missing_folder_says_where_weights_come_from(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelFolderError) as info:
        locate_model_files(missing)
    message = str(info.value)
    assert str(missing) in message and "does not exist" in message
    assert "maxin-cn/Cinemo" in message and "hf download" in message


def test_a_file_is_not_a_model_folder(tmp_path):
    (tmp_path / "cinemo.pt").touch()
    with pytest.raises(ModelFolderError, match="is a file"):
        locate_model_files(tmp_path / "cinemo.pt")


def test_incomplete_folder_lists_each_missing_part(tmp_path):
    touch_layout(tmp_path, ("unet", "vae"))
    with pytest.raises(ModelFolderError) as info:
        locate_model_files(tmp_path)
    message = str(info.value)
    assert "text_encoder/ is missing" in message and "tokenizer/ is missing" in message
    assert "unet/" not in message and "maxin-cn/Cinemo" in message


def test_part_without_weights_is_reported(tmp_path):
    touch_layout(tmp_path, ALL_PARTS)
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    (tmp_path / "tokenizer" / "merges.txt").unlink()
    with pytest.raises(ModelFolderError) as info:
        locate_model_files(tmp_path)
    message = str(info.value)
    assert "unet/" in message and "weights file" in message
    assert "tokenizer/" in message and "merges.txt" in message


def test_no_vae_at_all_names_both(tmp_path):
    touch_layout(tmp_path, ("unet", "text_encoder", "tokenizer"))
    with pytest.raises(ModelFolderError) as info:
        locate_model_files(tmp_path)
    assert "vae_temporal_decoder/" in str(info.value) and "vae/ is missing" in str(info.value)


def test_explicitly_requested_vae_must_exist(tmp_path):
    touch_layout(tmp_path, ("unet", "vae", "text_encoder", "tokenizer"))
    with pytest.raises(ModelFolderError, match="vae_temporal_decoder/ is missing"):
        locate_model_files(tmp_path, vae="temporal")
    with pytest.raises(ValueError, match="vae must be one of"):
        locate_model_files(tmp_path, vae="sdxl")


# --- loading -----------------------------------------------------------------------------------


def test_load_released_layout(released_folder, demo):
    components = load_components(released_folder)
    assert components.vae_kind == "temporal"
    assert isinstance(components.vae, AutoencoderKLTemporalDecoder)
    assert components.image_encoder.dtype == torch.float64
    assert components.vae_scale_factor == 8 and components.latent_channels == 4
    assert components.scaling_factor == pytest.approx(SCALE)
    assert components.unet.config.cross_attention_dim == components.text_encoder.config.hidden_size == 32
    # the weights are the saved ones
    saved = demo.unet.state_dict()
    loaded = components.unet.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert torch.equal(
        demo.text_encoder.get_input_embeddings().weight, components.text_encoder.get_input_embeddings().weight
    )

    kl = load_components(released_folder, vae="kl", dtype=torch.float16)
    assert kl.vae_kind == "kl" and kl.vae.dtype == torch.float16 and kl.unet.dtype == torch.float16
    assert kl.image_encoder.dtype == torch.float64
    assert torch.equal(kl.image_encoder.encoder.conv_in.weight, demo.vae.encoder.conv_in.weight.double())


def test_text_encoder_of_the_wrong_width_is_refused(released_folder, tmp_path):
    from transformers import CLIPTextConfig, CLIPTextModel

    root = tmp_path / "mixed"
    shutil.copytree(released_folder, root)
    shutil.rmtree(root / "text_encoder")
    CLIPTextModel(CLIPTextConfig(vocab_size=514, hidden_size=48, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=64)).save_pretrained(root / "text_encoder")
    with pytest.raises(ComponentLoadError, match="cross-attention expects 32"):
        load_components(root)


def test_damaged_part_is_named(released_folder, tmp_path):
    root = tmp_path / "damaged"
    shutil.copytree(released_folder, root)
    (root / "vae_temporal_decoder" / "config.json").write_text("{ not json")
    with pytest.raises(ComponentLoadError) as info:
        load_components(root)
    assert "vae_temporal_decoder" in str(info.value) and "huggingface.co/maxin-cn/Cinemo" in str(info.value)


# --- text --------------------------------------------------------------------------------------


def expected_ids(text: str, length: int = 77) -> list[int]:
    """CLIP ids with the merge-free demo vocabulary: one token per character, '</w>' on word ends."""
    vocab = demo_vocabulary()
    ids = [vocab["<|startoftext|>"]]
    for word in text.lower().split():
        ids += [vocab[ch] for ch in word[:-1]] + [vocab[word[-1] + "</w>"]]
    ids = ids[: length - 1] + [vocab["<|endoftext|>"]]
    return ids + [vocab["<|endoftext|>"]] * (length - len(ids))


def test_prompts_are_padded_to_77_and_encoded_to_the_last_hidden_state(demo):
    prompts = ["A cat", ""]
    embeddings = encode_prompts(demo.tokenizer, demo.text_encoder, prompts)
    assert embeddings.shape == (2, 77, 32)
    ids = torch.tensor([expected_ids(p) for p in prompts])
    with torch.no_grad():
        reference = demo.text_encoder(input_ids=ids).last_hidden_state
    torch.testing.assert_close(embeddings, reference, rtol=0, atol=1e-6)
    assert not torch.allclose(embeddings[0], embeddings[1])


def test_long_prompt_is_truncated_with_a_warning(demo):
    long_prompt = "waves " * 30  # 30 words of 5 characters: 150 tokens
    with pytest.warns(UserWarning, match="only the first 77"):
        embeddings = encode_prompts(demo.tokenizer, demo.text_encoder, [long_prompt])
    with torch.no_grad():
        reference = demo.text_encoder(input_ids=torch.tensor([expected_ids(long_prompt)])).last_hidden_state
    torch.testing.assert_close(embeddings, reference, rtol=0, atol=1e-6)


# --- image encoding ----------------------------------------------------------------------------


@pytest.mark.parametrize("make_vae", [tiny_kl_vae, tiny_temporal_vae])
def test_encode_is_a_float64_posterior_sample_times_the_scaling_factor(make_vae):
    vae = make_vae()
    pixels = torch.rand(1, 3, 32, 48) * 2 - 1
    latents = encode_image(ImageEncoder(vae), pixels, generator=torch.Generator().manual_seed(5))
    assert latents.shape == (1, 4, 1, 4, 6) and latents.dtype == torch.float64

    reference_vae = make_vae().double()  # same seed: same weights, promoted to float64 like the official
    with torch.no_grad():
        posterior = reference_vae.encode(pixels.double()).latent_dist
    eps = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expected = ((posterior.mean + posterior.std * eps) * SCALE).unsqueeze(2)
    torch.testing.assert_close(latents, expected, rtol=1e-12, atol=1e-12)
    # a different draw gives a different latent: the sample is not the mean
    other = encode_image(ImageEncoder(vae), pixels, generator=torch.Generator().manual_seed(6))
    assert not torch.allclose(other, latents)


# --- decoding ----------------------------------------------------------------------------------


def latents_for_decoding(frames: int = 15) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    base = torch.randn(1, 4, 1, 4, 4, generator=generator) * SCALE
    residual = torch.randn(1, 4, frames, 4, 4, generator=generator) * 0.3 * SCALE
    return base, residual


def test_temporal_decoder_decodes_in_chunks_of_14():
    vae = tiny_temporal_vae()
    base, residual = latents_for_decoding(15)
    video = decode_video(vae, base, residual, vae_kind="temporal")
    assert video.shape == (1, 16, 32, 32, 3) and video.dtype == torch.uint8

    z = torch.cat([base / SCALE, base / SCALE + residual / SCALE], dim=2)[0].transpose(0, 1)
    with torch.no_grad():
        decoded = torch.cat([vae.decode(z[:14], num_frames=14).sample, vae.decode(z[14:], num_frames=2).sample])
        at_once = vae.decode(z, num_frames=16).sample
    expected = ((decoded / 2 + 0.5).clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(video[0], expected)
    # the chunking is visible: one 16-frame decode differs (the decoder mixes frames in time)
    assert not torch.equal(video[0], ((at_once / 2 + 0.5).clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1))


def test_plain_vae_decodes_each_frame_and_rounds():
    vae = tiny_kl_vae()
    base, residual = latents_for_decoding(9)
    video = decode_video(vae, base, residual, vae_kind="kl")
    assert video.shape == (1, 10, 32, 32, 3)

    with torch.no_grad():
        first = vae.decode(base[:, :, 0] / SCALE).sample
        last = vae.decode(base[:, :, 0] / SCALE + residual[:, :, -1] / SCALE).sample
    for frame, decoded in ((video[0, 0], first), (video[0, -1], last)):
        expected = ((decoded[0] / 2 + 0.5) * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
        assert (frame.int() - expected.int()).abs().max() <= 1
    assert not torch.equal(video[0, 0], video[0, -1])


def test_decode_rejects_mismatched_latents():
    with pytest.raises(ValueError, match="does not match"):
        decode_video(tiny_kl_vae(), torch.zeros(1, 4, 1, 4, 4), torch.zeros(1, 4, 3, 4, 5), vae_kind="kl")


def test_uint8_conversion_runs_in_the_decoder_dtype_like_the_official_code():
    from cinemo_core.model.components import _to_uint8

    video = (torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2.2 - 1.1).half()
    # the official expressions (pipelines/animation.py), evaluated in the fp16 the official decoder returns
    temporal = ((video / 2.0 + 0.5).clamp(0, 1) * 255).to(dtype=torch.uint8)
    plain = ((video / 2.0 + 0.5) * 255 + 0.5).clamp(0, 255).to(dtype=torch.uint8)
    assert torch.equal(_to_uint8(video, "temporal"), temporal)
    assert torch.equal(_to_uint8(video, "kl"), plain)
    # the dtype matters: the same values in float32 land on other levels for some pixels
    assert not torch.equal(_to_uint8(video.float(), "temporal"), temporal)
