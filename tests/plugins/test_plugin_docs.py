"""Every plugin of the in-repo collection carries DOCUMENTATION, EXAMPLES and RETURN that parse as YAML;
every module is thin (main only, API calls in module_utils) and in the action group of its API."""
import ast

import pytest
import yaml

from tests.paths import COLLECTIONS

PLUGINS = COLLECTIONS / "ansible_collections" / "eks_autoscaling" / "core" / "plugins"
FILES = sorted(p for kind in ("modules", "filter", "lookup", "test") for p in (PLUGINS / kind).glob("*.py") if p.name != "__init__.py")


def doc_blocks(path):
    """The plugin's DOCUMENTATION, EXAMPLES and RETURN strings, read without importing it."""
    return {
        node.targets[0].id: node.value.value
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("DOCUMENTATION", "EXAMPLES", "RETURN")
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_documentation_blocks_parse(path):
    blocks = doc_blocks(path)
    assert set(blocks) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documentation = yaml.safe_load(blocks["DOCUMENTATION"])
    assert documentation.get("short_description") and documentation.get("description")
    assert yaml.safe_load(blocks["EXAMPLES"])
    yaml.safe_load(blocks["RETURN"])


# Event sources document their options (DOCUMENTATION) and rulebooks (EXAMPLES); they return nothing.
EVENT_SOURCES = sorted((PLUGINS.parent / "extensions" / "eda" / "plugins" / "event_source").glob("[!_]*.py"))


@pytest.mark.parametrize("path", EVENT_SOURCES, ids=lambda p: p.name)
def test_event_source_documentation_parses(path):
    blocks = doc_blocks(path)
    documentation = yaml.safe_load(blocks["DOCUMENTATION"])
    assert documentation.get("short_description") and documentation.get("description") and documentation.get("options")
    assert all(option.get("description") for option in documentation["options"].values())
    assert all("sources" in rulebook and "rules" in rulebook for rulebook in yaml.safe_load(blocks["EXAMPLES"]))


MODULES = [p for p in FILES if p.parent.name == "modules"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_thin(path):
    tree = ast.parse(path.read_text())
    assert [node.name for node in tree.body if isinstance(node, ast.FunctionDef)] == ["main"]
    client_uses = [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "client"
    ]
    assert client_uses == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_in_the_action_group_of_its_api(path):
    """AWS modules in `aws`, Kubernetes modules in `k8s`, told apart by the documentation fragment they use,
    so module_defaults give each the endpoint and credentials of its API."""
    runtime = yaml.safe_load((PLUGINS.parent / "meta" / "runtime.yml").read_text())
    documentation = yaml.safe_load(doc_blocks(path)["DOCUMENTATION"])
    fragments = documentation.get("extends_documentation_fragment") or []
    group = "k8s" if "kubernetes.core.k8s_auth_options" in fragments else "aws"
    assert path.stem in runtime["action_groups"][group]
    assert path.stem not in runtime["action_groups"]["k8s" if group == "aws" else "aws"]
