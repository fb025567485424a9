"""Every plugin of the in-repo collection carries DOCUMENTATION, EXAMPLES and RETURN that parse as YAML."""
import ast
from pathlib import Path

import pytest
import yaml

PLUGINS = Path(__file__).resolve().parents[2] / "collections" / "ansible_collections" / "eks_autoscaling" / "core" / "plugins"
FILES = sorted(p for kind in ("modules", "filter") for p in (PLUGINS / kind).glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_documentation_blocks_parse(path):
    blocks = {
        node.targets[0].id: node.value.value
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("DOCUMENTATION", "EXAMPLES", "RETURN")
    }
    assert set(blocks) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documentation = yaml.safe_load(blocks["DOCUMENTATION"])
    assert documentation.get("short_description") and documentation.get("description")
    assert yaml.safe_load(blocks["EXAMPLES"])
    yaml.safe_load(blocks["RETURN"])
