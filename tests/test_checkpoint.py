"""load_unet reads every published layout identically and explains every file it cannot use."""

import json
import shutil

import pytest
import torch
from golden_case import relative_error, run_unet
from safetensors.torch import save_file

from cinemo_core import (
    CheckpointError,
    CinemoUNet3D,
    CinemoUNetConfig,
    CinemoWeightsWarning,
    DamagedCheckpointError,
    NotACinemoUNetError,
    UnsafeCheckpointError,
    load_unet,
)
from cinemo_core.model.checkpoint import infer_config


def _same_model_as_golden(unet, golden) -> None:
    out = run_unet(unet, golden)
    assert relative_error(out, golden["out"]) <= 1e-5


@pytest.fixture(scope="module")
def golden_output(tiny_unet, golden):
    return run_unet(tiny_unet, golden)


def _write_layout(layout: str, state_dict, config_path, tmp_path):
    """Write the golden weights in one published layout; return what to pass to load_unet."""
    if layout == "parent folder":
        shutil.copytree(config_path.parent, tmp_path / "Cinemo" / "unet")
        return tmp_path / "Cinemo"
    if layout == "diffusers .bin":
        folder = tmp_path / "unet"
        folder.mkdir()
        shutil.copy(config_path, folder / "config.json")
        torch.save(state_dict, folder / "diffusion_pytorch_model.bin")
        return folder
    if layout == "sharded":
        folder = tmp_path / "unet"
        folder.mkdir()
        shutil.copy(config_path, folder / "config.json")
        keys = sorted(state_dict)
        shards = {"part-1.safetensors": keys[: len(keys) // 2], "part-2.safetensors": keys[len(keys) // 2 :]}
        for name, names in shards.items():
            save_file({key: state_dict[key] for key in names}, folder / name)
        index = {"weight_map": {key: name for name, names in shards.items() for key in names}}
        (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
        return folder
    files = {
        "single .safetensors": ("cinemo.safetensors", lambda sd: sd),
        "plain .pt": ("cinemo.pt", lambda sd: sd),
        "state_dict-wrapped .pth": ("cinemo.pth", lambda sd: {"state_dict": sd, "epoch": 3}),
        "model-wrapped, module.-prefixed .bin": ("cinemo.bin", lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}}),
        "ema-wrapped, unet.-prefixed .pt": ("ema.pt", lambda sd: {"ema": {f"unet.{k}": v for k, v in sd.items()}, "model": {}}),
    }
    name, wrap = files[layout]
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_file(wrap(state_dict), path)
    else:
        torch.save(wrap(state_dict), path)
    return path


LAYOUTS = [
    "parent folder",
    "diffusers .bin",
    "sharded",
    "single .safetensors",
    "plain .pt",
    "state_dict-wrapped .pth",
    "model-wrapped, module.-prefixed .bin",
    "ema-wrapped, unet.-prefixed .pt",
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_loads_the_same_model(layout, golden_state_dict, tiny_a_dir, golden, golden_output, tmp_path):
    target = _write_layout(layout, golden_state_dict, tiny_a_dir / "unet" / "config.json", tmp_path)
    unet = load_unet(target)
    assert unet.config == CinemoUNetConfig.tiny()
    assert torch.equal(run_unet(unet, golden), golden_output)


def test_loads_in_the_requested_dtype(tiny_a_dir):
    unet = load_unet(tiny_a_dir, dtype=torch.float16)
    assert {p.dtype for p in unet.parameters()} == {torch.float16}
    assert not any(p.requires_grad for p in unet.parameters())
    assert not unet.training


def test_config_inferred_from_weights_matches_the_official_config():
    state = CinemoUNet3D(CinemoUNetConfig.official(), device="meta").state_dict()
    assert infer_config(state) == CinemoUNetConfig.official()


def test_stored_rotary_frequencies_that_differ_are_reported_and_not_used(golden_state_dict, golden, golden_output, tmp_path):
    tampered = {k: (v * 1.5 if k.endswith("rotary_emb.freqs") else v) for k, v in golden_state_dict.items()}
    path = tmp_path / "tampered.safetensors"
    save_file(tampered, path)
    with pytest.warns(CinemoWeightsWarning, match="rotary frequencies.*differ"):
        unet = load_unet(path)
    assert torch.equal(run_unet(unet, golden), golden_output)


def test_faithful_rotary_frequencies_raise_no_warning(tiny_a_dir, recwarn):
    load_unet(tiny_a_dir)
    assert not [w for w in recwarn if issubclass(w.category, CinemoWeightsWarning)]


def _tiny_diffusers_state_dicts():
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    sd_unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        sample_size=8,
    )
    svd_unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, num_attention_heads=(2, 4),
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=24, sample_size=8,
    )
    motion = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, motion_norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    return {
        "Stable Diffusion (image) UNet": sd_unet.state_dict(),
        "Stable Video Diffusion (SVD) UNet": svd_unet.state_dict(),
        "AnimateDiff motion module": motion.state_dict(),
        "a VAE": vae.state_dict(),
    }


@pytest.fixture(scope="module")
def foreign_state_dicts():
    return _tiny_diffusers_state_dicts()


@pytest.mark.parametrize("kind", ["Stable Diffusion (image) UNet", "Stable Video Diffusion (SVD) UNet", "AnimateDiff motion module", "a VAE"])
def test_other_models_are_named(kind, foreign_state_dicts, tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in foreign_state_dicts[kind].items()}, path)
    with pytest.raises(NotACinemoUNetError, match=kind.replace("(", r"\(").replace(")", r"\)")) as error:
        load_unet(path)
    assert str(path) in str(error.value)


def test_original_format_checkpoints_are_named(tmp_path):
    ldm = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4), "first_stage_model.decoder.conv_in.weight": torch.zeros(4)}
    svd = {**ldm, "model.diffusion_model.input_blocks.1.0.time_stack.in_layers.0.weight": torch.zeros(4)}
    for name, state, kind in (("sd15.safetensors", ldm, "Stable Diffusion checkpoint"), ("svd.safetensors", svd, "Stable Video Diffusion")):
        save_file(state, tmp_path / name)
        with pytest.raises(NotACinemoUNetError, match=kind):
            load_unet(tmp_path / name)


def test_missing_and_unexpected_keys_are_listed(golden_state_dict, tiny_a_dir, tmp_path):
    broken = dict(golden_state_dict)
    removed = sorted(k for k in broken if k.startswith("up_blocks.3."))
    for key in removed:
        del broken[key]
    broken["extra.layer.weight"] = torch.zeros(1)
    shutil.copy(tiny_a_dir / "unet" / "config.json", tmp_path / "config.json")
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file(broken, path)
    with pytest.raises(CheckpointError) as error:
        load_unet(tmp_path)
    message = str(error.value)
    assert str(path) in message
    # the rotary frequencies are computed, so a file without them is not missing anything
    required = [key for key in removed if not key.endswith("rotary_emb.freqs")]
    assert len(required) < len(removed)
    assert f"{len(required)} keys missing: {required[0]}" in message and f"({len(required)} in all)" in message
    assert "1 keys unexpected: extra.layer.weight" in message


def test_wrong_shapes_are_listed(golden_state_dict, tmp_path):
    broken = dict(golden_state_dict)
    broken["conv_out.bias"] = torch.zeros(5)
    path = tmp_path / "shape.safetensors"
    save_file(broken, path)
    with pytest.raises(CheckpointError, match=r"conv_out.bias \(5,\) \(expected \(4,\)\)"):
        load_unet(path)


@pytest.mark.parametrize("name", ["cinemo.safetensors", "cinemo.pt"])
def test_truncated_files_are_called_damaged(name, golden_state_dict, tmp_path):
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_file(golden_state_dict, path)
    else:
        torch.save(golden_state_dict, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedCheckpointError, match="damaged or truncated") as error:
        load_unet(path)
    assert str(path) in str(error.value)


class NotATensor:
    pass


def test_pickles_with_arbitrary_objects_are_not_unpickled(golden_state_dict, tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": golden_state_dict, "payload": NotATensor()}, path)
    with pytest.raises(UnsafeCheckpointError, match="weights_only=True"):
        load_unet(path)


def test_missing_path_says_where_weights_come_from(tmp_path):
    with pytest.raises(FileNotFoundError, match="huggingface.co/maxin-cn/Cinemo"):
        load_unet(tmp_path / "nowhere")


def test_folder_without_weights_is_explained(tiny_a_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither a diffusers UNet"):
        load_unet(tmp_path / "empty")
    folder = tmp_path / "config_only"
    folder.mkdir()
    shutil.copy(tiny_a_dir / "unet" / "config.json", folder / "config.json")
    with pytest.raises(CheckpointError, match="has config.json but no weights"):
        load_unet(folder)


def test_unsupported_file_type_is_rejected(tmp_path):
    path = tmp_path / "weights.gguf"
    path.write_bytes(b"GGUF")
    with pytest.raises(CheckpointError, match="expected one of .safetensors"):
        load_unet(path)
