"""Packaging: pyproject.toml (PyPI metadata and the Comfy registry's [tool.comfy]), requirements.txt for
ComfyUI-Manager, the LICENSE, the README's commands, and that installing the requirements into a ComfyUI
environment changes none of what ComfyUI installed (checked offline against the installed versions; the real
before/after ``pip freeze`` is tools/check_install.sh)."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra installs tomli on Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
TESTED_COMFYUI = "0.3.64"
#: What ComfyUI installs and a custom node must never move.
COMFYUI_CORE = ("torch", "torchvision", "torchaudio", "torchsde", "numpy", "transformers", "safetensors",
                "pillow", "av", "tokenizers", "scipy", "einops")


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def requirement_lines() -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    return [line for line in lines if line]


def requirements() -> list[Requirement]:
    return [Requirement(line) for line in requirement_lines()]


# --- metadata (no ComfyUI needed) ---------------------------------------------------------------------------

def test_project_metadata_is_registry_valid():
    project = pyproject()["project"]
    name = project["name"]
    # Comfy registry: a unique lowercase id, no "comfyui" in it, at most 100 characters
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*[a-z0-9]", name) and len(name) <= 100
    assert "comfyui" not in name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["description"].strip()
    assert project["license"] == {"file": "LICENSE"}
    assert project["urls"]["Repository"].startswith("https://github.com/")
    assert project["scripts"] == {"cinemo-animate": "cinemo_core.app.cli:main"}
    assert SpecifierSet(project["requires-python"]).contains("3.10")


def test_tool_comfy_section():
    comfy = pyproject()["tool"]["comfy"]
    assert comfy["PublisherId"] and re.fullmatch(r"[a-z0-9-]+", comfy["PublisherId"])
    assert comfy["DisplayName"].strip()
    # Empty (registry default) or an https URL; a raw GitHub URL must name a file of this repository
    icon = comfy["Icon"]
    assert icon == "" or icon.startswith("https://")
    if icon.startswith("https://raw.githubusercontent.com/"):
        assert (REPO / icon.split("/", 6)[6]).is_file()
    # the oldest ComfyUI tested against, and no older
    assert comfy["requires-comfyui"] == f">={TESTED_COMFYUI}"


def test_dependencies_without_torch_and_equal_to_requirements_txt():
    dependencies = [Requirement(d) for d in pyproject()["project"]["dependencies"]]
    names = {canonicalize_name(r.name) for r in dependencies}
    assert not names & {"torch", "torchvision", "torchaudio"}
    assert {str(r) for r in dependencies} == {str(r) for r in requirements()}
    assert len(requirement_lines()) == len(dependencies)


def test_requirements_never_pin_or_cap():
    """Only lower bounds: an upper bound or exact pin could force pip to move a package ComfyUI installed."""
    for requirement in requirements():
        assert not requirement.url and not requirement.marker, requirement
        for specifier in requirement.specifier:
            assert specifier.operator in (">=", ">"), f"{requirement}: only lower bounds are allowed"


def test_every_runtime_import_is_a_dependency():
    """Third-party modules imported by cinemo_core are declared (torch aside); none is declared for nothing."""
    module_to_dist = {"PIL": "pillow", "huggingface_hub": "huggingface-hub"}
    declared = {canonicalize_name(r.name) for r in requirements()}
    imported = set()
    for source in (REPO / "cinemo_core").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    third_party = {canonicalize_name(module_to_dist.get(m, m)) for m in imported - stdlib if m != "cinemo_core"}
    assert third_party - {"torch"} == declared


def test_license_is_apache_2():
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "License :: OSI Approved :: Apache Software License" in pyproject()["project"]["classifiers"]


def test_readme_first_commands_are_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert "cinemo-animate --demo --out demo.mp4" in blocks[0]
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert ci and blocks[1].strip() == ci[0].strip()
    # the install section names the exact files the workflows use
    for name in ("models/cinemo/Cinemo", "clip_l.safetensors", "vae-ft-mse-840000-ema-pruned.safetensors",
                 "Cinemo/vae_temporal_decoder"):
        assert name in readme


def test_check_install_script_is_valid_bash():
    script = REPO / "tools" / "check_install.sh"
    assert os.access(script, os.X_OK)
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = script.read_text()
    assert "requirements.txt" in text and "freeze" in text and "exit 1" in text


# --- against the real ComfyUI (COMFYUI_PATH, run with ComfyUI's Python) --------------------------------------

def test_comfyui_config_parser_reads_pyproject(comfyui):
    from comfy_config import config_parser

    config = config_parser.extract_node_configuration(str(REPO))
    project, comfy = config.project, config.tool_comfy
    expected = pyproject()
    assert project.name == expected["project"]["name"]
    assert project.version == expected["project"]["version"]
    assert project.license.file == "LICENSE"
    assert project.urls.repository == expected["project"]["urls"]["Repository"]
    assert project.supported_comfyui_version == f">={TESTED_COMFYUI}"
    # the parser drops every classifier of a kind when one of them is invalid
    assert project.supported_os == ["OS Independent"]
    assert project.supported_accelerators == ["GPU :: NVIDIA CUDA"]
    assert comfy.publisher_id == expected["tool"]["comfy"]["PublisherId"]
    assert comfy.display_name == expected["tool"]["comfy"]["DisplayName"]
    assert not [d for d in project.dependencies if canonicalize_name(Requirement(d).name) == "torch"]


def test_tested_comfyui_satisfies_requires_comfyui(comfyui):
    import comfyui_version

    assert comfyui_version.__version__ == TESTED_COMFYUI
    assert SpecifierSet(pyproject()["tool"]["comfy"]["requires-comfyui"]).contains(comfyui_version.__version__)


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _closure_conflicts(roots: list[Requirement]) -> tuple[list[str], set[str]]:
    """Walk the requirements and their installed dependencies; list every installed version a specifier
    excludes (pip would change it) and every requirement not installed (pip would add it)."""
    conflicts, seen, queue = [], set(), list(roots)
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        version = _installed(requirement.name)
        if version is None:
            conflicts.append(f"{requirement} is not installed")
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            conflicts.append(f"{requirement} excludes the installed {requirement.name} {version}")
        if name in seen:
            continue
        seen.add(name)
        queue.extend(Requirement(r) for r in (importlib.metadata.requires(requirement.name) or []))
    return conflicts, seen


def test_installing_requirements_changes_nothing_comfyui_installed(comfyui):
    """In ComfyUI's environment (this interpreter), every requirement and every dependency of theirs is met
    by the installed versions: ``pip install -r requirements.txt`` has nothing to upgrade or downgrade."""
    import comfy.model_management
    import torch

    comfy_root = Path(os.environ["COMFYUI_PATH"]).resolve()
    assert Path(comfy.model_management.__file__).resolve().is_relative_to(comfy_root)
    assert torch.__version__.startswith(_installed("torch"))
    conflicts, closure = _closure_conflicts(requirements())
    assert not conflicts, conflicts
    assert {"diffusers", "transformers", "huggingface-hub", "numpy"} <= closure
    # and none of ours names a ComfyUI core package with a bound the installed one fails
    comfy_requirements = [
        Requirement(line.split("#", 1)[0].strip())
        for line in (comfy_root / "requirements.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]
    comfy_names = {canonicalize_name(r.name) for r in comfy_requirements}
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        if name in comfy_names or name in COMFYUI_CORE:
            assert requirement.specifier.contains(_installed(requirement.name), prereleases=True)
    assert not {canonicalize_name(r.name) for r in requirements()} & {"torch", "torchvision", "torchaudio"}


def test_closure_check_detects_a_conflict(comfyui):
    """The check above can fail: a requirement the installed torch does not meet is reported."""
    conflicts, _ = _closure_conflicts([Requirement("torch<1.0")])
    assert conflicts and "excludes the installed torch" in conflicts[0]
    conflicts, _ = _closure_conflicts([Requirement("surely-not-an-installed-package-xyz")])
    assert conflicts == ["surely-not-an-installed-package-xyz is not installed"]
