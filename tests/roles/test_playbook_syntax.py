"""Every playbook passes ansible-playbook --syntax-check against the example (real EKS) inventory."""
import os
import subprocess

import pytest

from tests.paths import REPO

# tasks/ and vars/ hold files the playbooks include, not playbooks.
PLAYBOOKS = sorted(p for p in (REPO / "playbooks").rglob("*.yml") if p.parent.name not in ("tasks", "vars"))


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_syntax(playbook):
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-playbook"), "--syntax-check", "-i", str(REPO / "inventories" / "example"), str(playbook)],
        cwd=REPO, env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
