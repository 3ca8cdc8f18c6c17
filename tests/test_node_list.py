"""node_list.json (what ComfyUI-Manager reads, since its scanner cannot see V3 node ids) is complete."""

import json
import re

from golden_case import FIXTURES

REPO = FIXTURES.parent.parent


def _declared_node_ids() -> set[str]:
    ids = set()
    for source in (REPO / "nodes").rglob("*.py"):
        ids.update(re.findall(r'node_id="([^"]+)"', source.read_text()))
    return ids


def _listed() -> dict[str, str]:
    return json.loads((REPO / "node_list.json").read_text())


def test_node_list_names_every_declared_node():
    declared = _declared_node_ids()
    assert len(declared) >= 10
    assert set(_listed()) == declared
    assert all(node_id.startswith("Cinemo") for node_id in declared)
    assert all(description.strip() for description in _listed().values())


def test_node_list_matches_what_comfyui_loads(comfyui):
    loaded = {name for name in comfyui.node_classes if name.startswith("Cinemo")}
    assert loaded == set(_listed())
    for name in loaded:
        schema = comfyui.node_classes[name].GET_SCHEMA()
        assert schema.category == "Cinemo"
        missing = [item.id for item in schema.inputs if not getattr(item, "tooltip", None)]
        assert not missing, f"{name}: inputs without a tooltip: {missing}"


