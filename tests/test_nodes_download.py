"""Cinemo Model Loader's download entry in a real ComfyUI: offered last, never preselected, fails offline with
where to put the files, and loads an already-present folder without any connection. Nothing downloads."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch
from comfy_models import call_node, pack_module
from golden_case import TINY_A

HF_URL = "https://huggingface.co/maxin-cn/Cinemo"


@pytest.fixture
def loader(comfy_models):
    return pack_module("nodes.model.loader")


@pytest.fixture
def model_files(comfy_models):
    return pack_module("nodes.model.files")


@pytest.fixture
def no_network(no_network, monkeypatch):
    """The shared network guard (conftest.py), with Hugging Face's offline mode on."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return no_network


def test_download_entry_is_offered_last(loader):
    import nodes

    options = nodes.NODE_CLASS_MAPPINGS["CinemoModelLoader"].INPUT_TYPES()["required"]["model_name"][1]["options"]
    assert options[-1] == loader.DOWNLOAD_ENTRY
    assert options[:-1] == loader.list_models(download_entry=False)
    assert loader.DOWNLOAD_ENTRY not in loader.list_models(download_entry=False)
    assert "download" in loader.DOWNLOAD_ENTRY and "maxin-cn/Cinemo" in loader.DOWNLOAD_ENTRY


def test_download_goes_to_models_cinemo_cinemo(loader, comfyui):
    assert loader.download_folder() == comfyui.models / "cinemo" / "Cinemo"


def test_empty_model_folder_does_not_preselect_the_download(loader, model_files, monkeypatch, tmp_path):
    import folder_paths

    empty = tmp_path / "empty_cinemo"
    empty.mkdir()
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "cinemo", ([str(empty)], set(model_files.WEIGHT_SUFFIXES)))
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "diffusers", ([str(empty)], set()))
    assert loader.list_models() == [model_files.NO_MODEL_ENTRY, loader.DOWNLOAD_ENTRY]
    message = loader.CinemoModelLoader.validate_inputs(model_name=model_files.NO_MODEL_ENTRY)
    assert isinstance(message, str)
    assert "is not in models/cinemo" in message and "models/cinemo/Cinemo" in message
    assert loader.DOWNLOAD_ENTRY in message and HF_URL in message


def test_download_entry_validates_and_fails_offline_with_instructions(loader, no_network, monkeypatch, tmp_path):
    target = tmp_path / "models" / "cinemo" / "Cinemo"
    monkeypatch.setattr(loader, "download_folder", lambda: target)
    assert loader.CinemoModelLoader.validate_inputs(model_name=loader.DOWNLOAD_ENTRY) is True
    with pytest.raises(RuntimeError) as caught:
        call_node("CinemoModelLoader", model_name=loader.DOWNLOAD_ENTRY, weight_dtype="fp32")
    message = str(caught.value)
    assert message.startswith("model_name: Cannot download unet/ of maxin-cn/Cinemo")
    assert "HF_HUB_OFFLINE" in message and f"{HF_URL}/tree/main" in message
    assert f"\n    {target}\n" in message
    assert not no_network
    assert not (target / "unet").exists()


def test_download_entry_loads_a_present_folder_without_connecting(loader, no_network, monkeypatch, tmp_path):
    target = tmp_path / "Cinemo"
    shutil.copytree(TINY_A / "unet", target / "unet")
    monkeypatch.setattr(loader, "download_folder", lambda: target)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not even imported when nothing is missing
    (patcher,) = call_node("CinemoModelLoader", model_name=loader.DOWNLOAD_ENTRY, weight_dtype="fp32")
    assert isinstance(patcher.model, pack_module("nodes.model.base_model").CinemoModel)
    assert patcher.model.diffusion_model.conv_in.weight.dtype == torch.float32
    assert not no_network


def test_prompt_with_the_download_entry_passes_validation(loader, comfyui, comfy_models):
    """ComfyUI's own validation accepts the entry (the download happens only when the node runs)."""
    prompt = {
        "load": {"class_type": "CinemoModelLoader",
                 "inputs": {"model_name": loader.DOWNLOAD_ENTRY, "weight_dtype": "default"}},
        "save": {"class_type": "ModelSave", "inputs": {"model": ["load", 0], "filename_prefix": "x"}},
    }
    ok, error, outputs, node_errors = comfyui.validate(prompt)
    assert ok, (error, node_errors)
    assert outputs == ["save"]


@pytest.fixture
def vae_loader(comfy_models):
    return pack_module("nodes.vae.loader")


@pytest.fixture
def vae_files(comfy_models):
    return pack_module("nodes.vae.files")


def test_temporal_vae_download_entry_is_offered_last(vae_loader, vae_files, monkeypatch, tmp_path):
    import folder_paths
    import nodes

    options = nodes.NODE_CLASS_MAPPINGS["CinemoTemporalVAELoader"].INPUT_TYPES()["required"]["vae_name"][1]["options"]
    assert options[-1] == vae_files.VAE_DOWNLOAD_ENTRY
    assert options == vae_files.list_temporal_vaes()
    assert vae_files.VAE_DOWNLOAD_ENTRY not in vae_files.list_temporal_vaes(download_entry=False)
    assert "download" in vae_files.VAE_DOWNLOAD_ENTRY and "vae_temporal_decoder" in vae_files.VAE_DOWNLOAD_ENTRY
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("cinemo", "vae"):
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name, ([str(empty)], {".safetensors"}))
    assert vae_files.list_temporal_vaes() == [vae_files.NO_VAE_ENTRY, vae_files.VAE_DOWNLOAD_ENTRY]
    message = vae_loader.CinemoTemporalVAELoader.validate_inputs(vae_name=vae_files.NO_VAE_ENTRY)
    assert isinstance(message, str) and vae_files.VAE_DOWNLOAD_ENTRY in message


def test_temporal_vae_download_entry_fails_offline_with_instructions(vae_loader, vae_files, no_network,
                                                                      monkeypatch, tmp_path):
    target = tmp_path / "models" / "cinemo" / "Cinemo"
    shutil.copytree(TINY_A / "unet", target / "unet")  # the model loader's download came first
    monkeypatch.setattr(vae_loader, "download_folder", lambda: target)
    assert vae_loader.CinemoTemporalVAELoader.validate_inputs(vae_name=vae_files.VAE_DOWNLOAD_ENTRY) is True
    with pytest.raises(RuntimeError) as caught:
        call_node("CinemoTemporalVAELoader", vae_name=vae_files.VAE_DOWNLOAD_ENTRY)
    message = str(caught.value)
    assert message.startswith("vae_name: Cannot download vae_temporal_decoder/ of maxin-cn/Cinemo")
    assert "nothing was downloaded: downloads are switched off (HF_HUB_OFFLINE is set)" in message
    assert f"\n    {target}\n" in message and "still incomplete" not in message
    assert not no_network


def test_half_filled_folder_offline_names_the_cause(loader, no_network, monkeypatch, tmp_path):
    """The issue's case: only vae_temporal_decoder/ is there and the Hub cannot be reached."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    target = tmp_path / "Cinemo"
    (target / "vae_temporal_decoder").mkdir(parents=True)
    (target / "vae_temporal_decoder" / "config.json").write_text("{}")
    (target / "vae_temporal_decoder" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    monkeypatch.setattr(loader, "download_folder", lambda: target)
    with pytest.raises(RuntimeError) as caught:
        call_node("CinemoModelLoader", model_name=loader.DOWNLOAD_ENTRY, weight_dtype="fp32")
    message = str(caught.value)
    assert message.startswith("model_name: Cannot download unet/ of maxin-cn/Cinemo from "
                              f"{HF_URL}: nothing was downloaded: the Hub could not be reached")
    assert "still incomplete" not in message
    assert no_network  # it did try, and was refused


def test_both_download_entries_give_a_runnable_template(loader, vae_files, comfyui, comfy_models, no_network,
                                                        monkeypatch, tmp_path):
    """A shipped workflow with the two download entries chosen passes ComfyUI's validation and, with the two
    folders already in models/cinemo/Cinemo, loads both without any connection."""
    from comfy_models import TEMPORAL_VAE_NAME, write_temporal_vae

    write_temporal_vae(comfyui.models)
    target = tmp_path / "Cinemo"
    shutil.copytree(TINY_A / "unet", target / "unet")
    shutil.copytree(comfyui.models / "vae" / TEMPORAL_VAE_NAME, target / "vae_temporal_decoder")
    monkeypatch.setattr(loader, "download_folder", lambda: target)
    monkeypatch.setattr(pack_module("nodes.vae.loader"), "download_folder", lambda: target)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    prompt = {
        "load": {"class_type": "CinemoModelLoader",
                 "inputs": {"model_name": loader.DOWNLOAD_ENTRY, "weight_dtype": "fp32"}},
        "tvae": {"class_type": "CinemoTemporalVAELoader", "inputs": {"vae_name": vae_files.VAE_DOWNLOAD_ENTRY}},
        "save": {"class_type": "ModelSave", "inputs": {"model": ["load", 0], "filename_prefix": "x"}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["tvae", 0]}},
    }
    ok, error, outputs, node_errors = comfyui.validate(prompt)
    assert ok, (error, node_errors)
    (patcher,) = call_node("CinemoModelLoader", model_name=loader.DOWNLOAD_ENTRY, weight_dtype="fp32")
    (vae,) = call_node("CinemoTemporalVAELoader", vae_name=vae_files.VAE_DOWNLOAD_ENTRY)
    assert pack_module("nodes.comfy_compat").has_temporal_decoder(vae)
    assert not no_network
