"""Benchmarks need only the package, ComfyUI and their own arguments: none imports pytest or a test module."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted((REPO / "benchmarks").glob("*.py"))
#: Modules only the test suite has: pytest itself and every module in tests/ (by the name they import as).
TEST_ONLY = {"pytest", "_pytest", "tests"} | {path.stem for path in (REPO / "tests").glob("*.py")}


def imported_modules(source: str) -> set[str]:
    """The top-level names of every module a file imports, at any depth (functions too), and import_module's."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(str(node.args[0].value).split(".")[0])
    return found


def test_the_check_sees_nested_and_dynamic_imports():
    source = "def f():\n    from comfy_models import call_node\n    import pytest.mark\nimportlib.import_module('golden_case')\n"
    assert imported_modules(source) >= {"comfy_models", "pytest", "golden_case"}


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.name)
def test_benchmark_imports_nothing_from_the_tests(script):
    own = {path.stem for path in BENCHMARKS}  # a benchmark's sibling module shadows a test module of its name
    leaked = (imported_modules(script.read_text(encoding="utf-8")) & TEST_ONLY) - own
    assert not leaked, f"benchmarks/{script.name} imports {sorted(leaked)} from the test suite; move what it needs"
