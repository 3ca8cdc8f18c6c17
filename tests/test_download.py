"""The optional download of the released weights: offline and failure messages, and that nothing touches the
network (every socket connection attempt is recorded and refused; each test asserts there was none)."""

from __future__ import annotations

import shutil
import sys

import pytest
from golden_case import TINY_A

from cinemo_core.app import cli
from cinemo_core.model.components import HF_URL
from cinemo_core.model.download import (
    CLI_PARTS,
    DownloadError,
    download_cinemo,
    manual_instructions,
    missing_parts,
    offline_requested,
)


def with_unet(folder):
    shutil.copytree(TINY_A / "unet", folder / "unet")
    return folder


def test_offline_fails_with_where_to_put_the_files(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert offline_requested()
    dest = tmp_path / "models" / "cinemo" / "Cinemo"
    with pytest.raises(DownloadError) as caught:
        download_cinemo(dest)
    message = str(caught.value)
    assert "HF_HUB_OFFLINE" in message
    assert f"{HF_URL}/tree/main" in message
    assert f"\n    {dest}\n" in message  # the exact folder, on its own line
    assert "unet/" in message and str(dest / "unet" / "config.json") in message
    assert f'hf download maxin-cn/Cinemo --include "unet/*" --local-dir "{dest}"' in message
    assert not no_network
    assert not (dest / "unet").exists()


def test_local_files_only_fails_without_network(no_network, tmp_path):
    dest = tmp_path / "Cinemo"
    with pytest.raises(DownloadError, match="local files only") as caught:
        download_cinemo(dest, ("unet", "tokenizer"), local_files_only=True)
    assert "unet/, tokenizer/" in str(caught.value) and str(dest) in str(caught.value)
    assert not no_network


def test_incomplete_result_is_an_error(no_network, monkeypatch, tmp_path):
    """A folder that exists but lacks the weights is not taken as downloaded."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dest = tmp_path / "Cinemo"
    (dest / "unet").mkdir(parents=True)
    (dest / "unet" / "config.json").write_text("{}")
    with pytest.raises(DownloadError) as caught:
        download_cinemo(dest)
    message = str(caught.value)
    assert str(dest) in message and HF_URL in message and "unet/" in message
    assert not no_network


def test_complete_parts_are_not_fetched(no_network, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # importing it would now fail
    dest = with_unet(tmp_path / "Cinemo")
    assert missing_parts(dest) == []
    assert download_cinemo(dest) == dest
    assert missing_parts(dest, CLI_PARTS) == ["vae_temporal_decoder", "text_encoder", "tokenizer"]
    assert not no_network


def test_missing_huggingface_hub_is_explained(no_network, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    dest = tmp_path / "Cinemo"
    with pytest.raises(DownloadError, match=r"huggingface_hub package is not installed \(pip install huggingface_hub\)") as caught:
        download_cinemo(dest)
    assert str(dest) in str(caught.value) and HF_URL in str(caught.value)


def test_parts_are_checked():
    with pytest.raises(ValueError, match="parts must be"):
        download_cinemo("/nonexistent", ("unet", "cinemo.pt"))
    with pytest.raises(ValueError, match="parts must be"):
        manual_instructions("/nonexistent", ())


def test_cli_download_offline_exits_with_the_message(no_network, monkeypatch, tmp_path, capsys):
    from PIL import Image

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(image)
    model = tmp_path / "Cinemo"
    status = cli.main([str(image), "--model", str(model), "--download", "--out", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert status == cli.EXIT_FAILURE
    assert "cinemo-animate: error: Cannot download unet/, vae_temporal_decoder/, text_encoder/, tokenizer/" in err
    assert str(model) in err and "HF_HUB_OFFLINE" in err
    assert not (tmp_path / "o.mp4").exists()
    assert not no_network


def test_cli_download_needs_model(capsys, tmp_path):
    status = cli.main(["--demo", "--download", "--out", str(tmp_path / "o.mp4")])
    assert status == cli.EXIT_USAGE
    assert "--download needs --model DIR" in capsys.readouterr().err


def test_cli_without_download_never_fetches(no_network, tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    image = tmp_path / "in.png"
    Image.new("RGB", (64, 64)).save(image)
    status = cli.main([str(image), "--model", str(tmp_path / "absent"), "--out", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert status == cli.EXIT_USAGE and "does not exist" in err and "Downloading" not in err
    assert not no_network


def test_connection_failure_is_explained(no_network, monkeypatch, tmp_path):
    """Online but unreachable: the refused connection becomes the same clear message (and shows that the
    guard above does see connection attempts)."""
    from huggingface_hub import constants

    # huggingface_hub reads HF_HUB_OFFLINE once, at import: undo an import made while a test had set it
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    dest = tmp_path / "Cinemo"
    with pytest.raises(DownloadError) as caught:
        download_cinemo(dest)
    message = str(caught.value)
    assert message.startswith(f"Cannot download unet/ of maxin-cn/Cinemo from {HF_URL}: ")
    assert f"\n    {dest}\n" in message
    assert no_network  # a connection was attempted, and refused
    assert not (dest / "unet").exists()


def with_temporal_vae(folder):
    """A complete ``vae_temporal_decoder/`` (its config and an empty weights file: only presence is checked)."""
    (folder / "vae_temporal_decoder").mkdir(parents=True)
    (folder / "vae_temporal_decoder" / "config.json").write_text("{}")
    (folder / "vae_temporal_decoder" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    return folder


def test_unreachable_hub_with_a_half_filled_folder_names_the_cause(no_network, monkeypatch, tmp_path):
    """huggingface_hub hands back a non-empty folder as it is when the Hub cannot be reached: the message says
    that nothing was downloaded and why, not that the download came out incomplete."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    dest = with_temporal_vae(tmp_path / "Cinemo")
    with pytest.raises(DownloadError) as caught:
        download_cinemo(dest)
    message = str(caught.value)
    assert message.startswith(
        f"Cannot download unet/ of maxin-cn/Cinemo from {HF_URL}: nothing was downloaded: the Hub could not be "
        "reached ("
    )
    assert "network access is not allowed in tests" in message  # the refused connection's own words
    assert "still incomplete" not in message and "download ended" not in message
    assert f"\n    {dest}\n" in message
    assert no_network
    assert not (dest / "unet").exists()


def test_offline_with_a_half_filled_folder_names_the_switch(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dest = with_temporal_vae(tmp_path / "Cinemo")
    with pytest.raises(DownloadError) as caught:
        download_cinemo(dest)
    message = str(caught.value)
    assert "nothing was downloaded: downloads are switched off (HF_HUB_OFFLINE is set)" in message
    assert "still incomplete" not in message
    assert not no_network


def test_the_temporal_vae_part_is_fetched_on_its_own(no_network, monkeypatch, tmp_path):
    from cinemo_core.model.download import COMFYUI_VAE_PARTS

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dest = with_unet(tmp_path / "Cinemo")
    assert missing_parts(dest, COMFYUI_VAE_PARTS) == ["vae_temporal_decoder"]
    with pytest.raises(DownloadError, match=r"^Cannot download vae_temporal_decoder/ of maxin-cn/Cinemo") as caught:
        download_cinemo(dest, COMFYUI_VAE_PARTS)
    assert '--include "vae_temporal_decoder/*"' in str(caught.value)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert download_cinemo(with_temporal_vae(tmp_path / "Other"), COMFYUI_VAE_PARTS) == tmp_path / "Other"
    assert not no_network
