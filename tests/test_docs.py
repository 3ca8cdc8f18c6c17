"""The README stays a short front door, and it and the pages in docs/ point only at things that exist."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MAX_README_LINES = 210
FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.M | re.S)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`]+)`")
REPO_PATH = re.compile(r"^\.?/?((?:cinemo_core|nodes|tests|benchmarks|tools|workflows|docs|\.ci)/[\w./-]*)$")
CORE_NAME = re.compile(r"^(cinemo_core(?:\.\w+)+)(?:\(.*)?$", re.S)


def pages() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def prose(path: Path) -> str:
    """The page without its fenced code blocks (commands are checked where they run)."""
    return FENCE.sub("", path.read_text())


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in prose(path).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            base = anchor = slug(match.group(1))
            count = 1
            while anchor in found:
                anchor = f"{base}-{count}"
                count += 1
            found.add(anchor)
    return found


def relative_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path)) if not re.match(r"[a-z]+:", target)]


def resolve_link(page: Path, target: str) -> Path:
    file_part = target.split("#", 1)[0]
    return (page.parent / file_part).resolve() if file_part else page


def test_slug_matches_githubs_anchors():
    assert slug("Two commands (fresh machine, Python 3.10+)") == "two-commands-fresh-machine-python-310"
    assert slug("torch.compile") == "torchcompile"
    assert slug("GPU: estimated, not measured") == "gpu-estimated-not-measured"
    assert slug("Fewer UNet calls: EasyCache and LazyCache") == "fewer-unet-calls-easycache-and-lazycache"


def test_readme_is_a_short_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move reference material to docs/")
    headings = [line for line in lines if line.startswith("## ")]
    order = ["## Two commands", "## Install in ComfyUI", "## Weight files", "## Your first workflow", "## Nodes",
             "## Troubleshooting"]
    positions = [next(i for i, h in enumerate(headings) if h.startswith(start)) for start in order]
    assert positions == sorted(positions), headings


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_and_heading(page):
    broken = []
    for target in relative_links(page):
        path = resolve_link(page, target)
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif "#" in target and path.suffix == ".md" and target.split("#", 1)[1] not in anchors(path):
            broken.append(f"{target}: no such heading in {path.relative_to(REPO)}")
    assert broken == []


def test_every_docs_page_is_reachable_from_the_readme():
    seen, todo = set(), [README.resolve()]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        todo.extend(path for target in relative_links(page)
                    if (path := resolve_link(page, target)).suffix == ".md" and path.is_file())
    unreachable = [str(p.relative_to(REPO)) for p in pages() if p.resolve() not in seen]
    assert unreachable == [], "link these pages from README.md or docs/README.md"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_repository_path_named_exists(page):
    named = {m.group(1).rstrip(".") for span in CODE_SPAN.findall(prose(page))
             if (m := REPO_PATH.match(span.strip()))}
    assert sorted(name for name in named if not (REPO / name).exists()) == []


def test_every_cinemo_core_name_in_the_docs_imports():
    """`from cinemo_core import ...` in code blocks and `cinemo_core.x.y` in the text are real names."""
    missing = []
    for page in pages():
        text = page.read_text()
        for block in re.findall(r"```python\n(.*?)```", text, re.S):
            for module, names in re.findall(r"^from (cinemo_core[\w.]*) import ([\w, ]+)$", block, re.M):
                imported = importlib.import_module(module)
                missing += [f"{module}.{n.strip()}" for n in names.split(",") if not hasattr(imported, n.strip())]
        for span in CODE_SPAN.findall(FENCE.sub("", text)):
            match = CORE_NAME.match(span.strip())
            if match and not _resolves(match.group(1)):
                missing.append(f"{page.name}: {match.group(1)}")
    assert missing == []


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False
