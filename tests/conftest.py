"""Shared fixtures: the golden `tiny_a` case produced by the official Cinemo code on random weights."""

import os
import socket
from pathlib import Path

import pytest
import torch
from golden_case import TINY_A
from safetensors.torch import load_file

pytest_plugins = ["comfy_models"]  # fixtures for the node tests

#: Set by CI once it has built a real ComfyUI: a skipped test is then a failure, unless it needs a GPU.
NO_SKIPS = os.environ.get("CINEMO_NO_SKIPS") == "1"
#: Set by CI's first stage: the ids of the tests it skipped (those that need ComfyUI) go to this file, one a
#: line, so that the second stage runs exactly those and every test runs once.
SKIPPED_LIST = os.environ.get("CINEMO_SKIPPED_LIST")
_skipped_ids: list[str] = []


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; the only test CINEMO_NO_SKIPS=1 lets skip")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("gpu") is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but CINEMO_NO_SKIPS=1 allows only GPU tests to skip: {reason}"
    if report.skipped and not hasattr(report, "wasxfail") and report.nodeid not in _skipped_ids:
        _skipped_ids.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if SKIPPED_LIST:
        Path(SKIPPED_LIST).write_text("".join(f"{nodeid}\n" for nodeid in _skipped_ids))


@pytest.fixture(scope="session")
def tiny_a_dir() -> Path:
    return TINY_A


@pytest.fixture(scope="session")
def golden() -> dict[str, torch.Tensor]:
    return load_file(TINY_A / "case.safetensors")


@pytest.fixture(scope="session")
def golden_state_dict() -> dict[str, torch.Tensor]:
    return load_file(TINY_A / "unet" / "diffusion_pytorch_model.safetensors")


@pytest.fixture(scope="session")
def comfyui(tmp_path_factory):
    """A real ComfyUI, booted in this process with our pack loaded; skips when COMFYUI_PATH is unset."""
    from comfyui_harness import SKIP_REASON, boot_comfyui, comfyui_path

    path = comfyui_path()
    if path is None:
        pytest.skip(SKIP_REASON)
    return boot_comfyui(path, tmp_path_factory.mktemp("comfyui"))


@pytest.fixture(scope="session")
def tiny_unet():
    from cinemo_core import load_unet

    return load_unet(TINY_A)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Refuse (and record) every outgoing connection; an empty Hugging Face cache; offline mode off."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is not allowed in tests")

    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: refuse(*a))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, *a: refuse(*a))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield attempts


@pytest.fixture
def nothing_heavy_loads(monkeypatch):
    """Fail loudly if a bad-argument run of the CLI gets as far as building or loading a model."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr("cinemo_core.app.demo.build_demo_components", forbidden)
    monkeypatch.setattr("cinemo_core.model.components.load_components", forbidden)
