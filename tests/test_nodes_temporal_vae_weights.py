"""diffusers -> SGM conversion of the temporal VAE, chunk planning and discovery (the pack's modules).

The numeric check against diffusers inside a real ComfyUI is in test_nodes_temporal_vae.py; here the converted
key set is checked against the key list ComfyUI 0.3.64 builds for SVD's VAE (a fixture recorded from it).
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLTemporalDecoder
from safetensors.torch import save_file

from comfy_models import pack_module

#: The pack's temporal VAE modules, once ComfyUI has loaded the pack.
tv = SimpleNamespace()


@pytest.fixture(autouse=True, scope="module")
def pack_modules(comfyui):
    for name in ("nodes.vae.weights", "nodes.vae.files", "nodes.vae.decode"):
        vars(tv).update(vars(pack_module(name)))


COMFY_KEYS = Path(__file__).parent / "fixtures" / "comfyui_svd_temporal_vae_keys.json"
TINY = dict(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2, layers_per_block=2)


def _svd_on_meta() -> AutoencoderKLTemporalDecoder:
    with torch.device("meta"):
        return AutoencoderKLTemporalDecoder(
            block_out_channels=tv.SVD_ARCHITECTURE.block_out_channels,
            down_block_types=("DownEncoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
        )


@pytest.fixture(scope="module")
def tiny_sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return AutoencoderKLTemporalDecoder(**TINY).state_dict()


def test_svd_conversion_gives_exactly_comfyui_keys_and_shapes():
    sd = _svd_on_meta().state_dict()
    assert tv.infer_architecture(sd) == tv.SVD_ARCHITECTURE
    converted = tv.convert_temporal_vae_state_dict(sd)
    expected = json.loads(COMFY_KEYS.read_text())["keys"]
    assert set(converted) == set(expected)
    wrong = {k: (list(v.shape), expected[k]) for k, v in converted.items() if list(v.shape) != expected[k]}
    assert wrong == {}
    assert len(sd) == len(converted) + 2  # only quant_conv.{weight,bias} disappear (folded)


def test_tiny_conversion_maps_each_tensor_to_its_sgm_place(tiny_sd):
    converted = tv.convert_temporal_vae_state_dict(tiny_sd)
    assert len(converted) == len(tiny_sd) - 2
    same = {
        "decoder.up_blocks.0.resnets.1.temporal_res_block.conv1.weight":
            "decoder.up.1.block.1.time_stack.in_layers.2.weight",
        "decoder.up_blocks.1.resnets.0.temporal_res_block.norm2.bias":
            "decoder.up.0.block.0.time_stack.out_layers.0.bias",
        "decoder.up_blocks.1.resnets.0.spatial_res_block.conv_shortcut.weight":
            "decoder.up.0.block.0.nin_shortcut.weight",
        "decoder.up_blocks.0.resnets.0.time_mixer.mix_factor": "decoder.up.1.block.0.mix_factor",
        "decoder.up_blocks.0.upsamplers.0.conv.weight": "decoder.up.1.upsample.conv.weight",
        "decoder.mid_block.resnets.1.temporal_res_block.conv2.weight":
            "decoder.mid.block_2.time_stack.out_layers.3.weight",
        "decoder.mid_block.attentions.0.group_norm.weight": "decoder.mid.attn_1.norm.weight",
        "decoder.time_conv_out.weight": "decoder.conv_out.time_mix_conv.weight",
        "decoder.conv_norm_out.bias": "decoder.norm_out.bias",
        "encoder.down_blocks.1.resnets.0.conv_shortcut.bias": "encoder.down.1.block.0.nin_shortcut.bias",
        "encoder.down_blocks.0.downsamplers.0.conv.weight": "encoder.down.0.downsample.conv.weight",
        "encoder.mid_block.resnets.0.norm1.weight": "encoder.mid.block_1.norm1.weight",
        "encoder.conv_norm_out.weight": "encoder.norm_out.weight",
    }
    for source, target in same.items():
        assert torch.equal(converted[target], tiny_sd[source]), (source, target)
    for side in ("encoder", "decoder"):
        for src, dst in (("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
            weight = converted[f"{side}.mid.attn_1.{dst}.weight"]
            assert weight.shape == (64, 64, 1, 1)
            assert torch.equal(weight[:, :, 0, 0], tiny_sd[f"{side}.mid_block.attentions.0.{src}.weight"])


def test_quant_conv_is_folded_into_encoder_conv_out(tiny_sd):
    converted = tv.convert_temporal_vae_state_dict(tiny_sd)
    torch.manual_seed(1)
    x = torch.randn(2, 64, 5, 6)
    reference = F.conv2d(
        F.conv2d(x, tiny_sd["encoder.conv_out.weight"], tiny_sd["encoder.conv_out.bias"], padding=1),
        tiny_sd["quant_conv.weight"], tiny_sd["quant_conv.bias"],
    )
    folded = F.conv2d(x, converted["encoder.conv_out.weight"], converted["encoder.conv_out.bias"], padding=1)
    unfolded = F.conv2d(x, tiny_sd["encoder.conv_out.weight"], tiny_sd["encoder.conv_out.bias"], padding=1)
    assert (folded - reference).abs().max() < 1e-5
    assert (folded - unfolded).abs().max() > 1e-2  # quant_conv is not the identity here


def test_fold_rejects_mismatched_quant_conv():
    with pytest.raises(tv.TemporalVAEFormatError, match="quant_conv"):
        tv.fold_quant_conv(torch.zeros(8, 4, 3, 3), torch.zeros(8), torch.zeros(6, 6, 1, 1), torch.zeros(6))


def test_unknown_and_foreign_weights_are_rejected(tiny_sd):
    with pytest.raises(tv.TemporalVAEFormatError, match="not part of"):
        tv.convert_temporal_vae_state_dict({**tiny_sd, "decoder.extra.weight": torch.zeros(1)})
    foreign = {k: v for k, v in tiny_sd.items() if not k.startswith("decoder.time_conv_out")}
    assert not tv.is_diffusers_temporal_vae(foreign)
    with pytest.raises(tv.TemporalVAEFormatError, match="time_conv_out"):
        tv.convert_temporal_vae_state_dict(foreign)


def test_architecture_check(tiny_sd):
    tiny = tv.infer_architecture(tiny_sd)
    assert tiny == tv.TemporalVAEArchitecture((32, 64), 2, 4, 3, 3)
    with pytest.raises(tv.TemporalVAEFormatError, match=r"block_out_channels=\[32, 64\].*SVD's sizes"):
        tv.check_svd_architecture(tiny)
    tv.check_svd_architecture(tv.infer_architecture(_svd_on_meta().state_dict()))


@pytest.mark.parametrize(
    "total, per_clip, chunk, expected",
    [
        (16, 16, 14, [(0, 14), (14, 16)]),
        (32, 16, 14, [(0, 14), (14, 16), (16, 30), (30, 32)]),
        (10, 5, 3, [(0, 3), (3, 5), (5, 8), (8, 10)]),
        (6, 6, 14, [(0, 6)]),
        (4, 1, 14, [(0, 1), (1, 2), (2, 3), (3, 4)]),
    ],
)
def test_clip_chunks(total, per_clip, chunk, expected):
    assert tv.clip_chunks(total, per_clip, chunk) == expected


def test_clip_chunks_rejects_partial_clips_and_bad_sizes():
    with pytest.raises(ValueError, match="not a whole number of clips of 16"):
        tv.clip_chunks(20, 16, 14)
    for bad in ((16, 0, 14), (16, 16, 0), (0, 16, 14), (16, True, 14)):
        with pytest.raises(ValueError):
            tv.clip_chunks(*bad)


def test_find_temporal_vaes(tmp_path, tiny_sd):
    vae_root, cinemo_root = tmp_path / "vae", tmp_path / "cinemo"
    folder = cinemo_root / "Cinemo" / "vae_temporal_decoder"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLTemporalDecoder"}))
    save_file({"decoder.time_conv_out.weight": torch.zeros(1)}, str(folder / "diffusion_pytorch_model.safetensors"))
    plain = cinemo_root / "Cinemo" / "vae"  # an ordinary AutoencoderKL folder: not listed
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    save_file({"decoder.conv_in.weight": torch.zeros(1)}, str(plain / "diffusion_pytorch_model.safetensors"))
    vae_root.mkdir()
    save_file({"decoder.mid.block_1.mix_factor": torch.zeros(1)}, str(vae_root / "svd_sgm.safetensors"))
    save_file({"decoder.time_conv_out.weight": torch.zeros(1)}, str(vae_root / "cinemo_tvae.safetensors"))
    save_file({"decoder.conv_in.weight": torch.zeros(1)}, str(vae_root / "sd15_vae.safetensors"))
    (vae_root / "broken.safetensors").write_bytes(b"not a safetensors file")
    hidden = vae_root / ".cache"
    hidden.mkdir()
    save_file({"decoder.time_conv_out.weight": torch.zeros(1)}, str(hidden / "hidden.safetensors"))

    found = tv.find_temporal_vaes([cinemo_root, vae_root, tmp_path / "missing"])
    assert found == {
        "Cinemo/vae_temporal_decoder": folder,
        "cinemo_tvae.safetensors": vae_root / "cinemo_tvae.safetensors",
        "svd_sgm.safetensors": vae_root / "svd_sgm.safetensors",
    }
    assert "Cinemo/vae_temporal_decoder" not in tv.find_temporal_vaes([cinemo_root], max_depth=1)
    assert tv.weight_file(folder) == folder / "diffusion_pytorch_model.safetensors"
    assert tv.weight_file(vae_root / "svd_sgm.safetensors") == vae_root / "svd_sgm.safetensors"
    with pytest.raises(FileNotFoundError, match="not a diffusers AutoencoderKLTemporalDecoder folder"):
        tv.weight_file(plain)
    with pytest.raises(FileNotFoundError):
        tv.weight_file(vae_root / "nothing.safetensors")
