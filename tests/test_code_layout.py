"""The layering rules and the code-layout table (docs/code-layout.md) hold for the tree as it is."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMFY_INTERNALS = {"comfy", "folder_paths", "node_helpers", "latent_preview", "execution", "nodes", "server", "utils"}


def python_files(folder: str) -> list[Path]:
    return sorted(path for path in (REPO / folder).rglob("*.py") if "__pycache__" not in path.parts)


def top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def layout_section() -> str:
    """The rows of the table in docs/code-layout.md (the README links that page)."""
    text = (REPO / "docs" / "code-layout.md").read_text()
    return "\n".join(line for line in text.splitlines() if line.startswith("|"))


def test_core_never_imports_comfyui():
    offenders = {str(p.relative_to(REPO)): top_level_imports(p) & (COMFY_INTERNALS | {"comfy_api"})
                 for p in python_files("cinemo_core")}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_comfyui_internals_come_through_one_door():
    door = REPO / "nodes" / "comfy_compat.py"
    offenders = {str(p.relative_to(REPO)): top_level_imports(p) & COMFY_INTERNALS
                 for p in python_files("nodes") if p != door}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_every_module_is_in_the_layout_table_and_every_named_file_exists():
    section = layout_section()
    named = set(re.findall(r"`((?:cinemo_core|nodes|workflows|tests)/[\w/.]+\.py)`", section))
    modules = {str(p.relative_to(REPO)) for folder in ("cinemo_core", "nodes") for p in python_files(folder)
               if p.name != "__init__.py"}
    assert sorted(modules - named) == []
    assert sorted(name for name in named if not (REPO / name).is_file()) == []


def test_every_module_says_its_job_in_its_first_line():
    for path in python_files("cinemo_core") + python_files("nodes"):
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring and docstring.splitlines()[0].strip(), path
        assert len(docstring.splitlines()) < 20, f"{path}: keep the why, not a restatement of the code"
