"""The remediation playbook refuses an event they cannot act on before they touch anything.

No cluster is needed: the kubeconfig points nowhere, so a run that got past validation would fail on its
first API call with another message than the one asserted here.
"""
import json
import os
import subprocess

import pytest

from tests.paths import REPO


def run(action, event, tmp_path, **extra):
    """playbooks/remediation/remediate.yml, with the remediation as the rulebook's rule passes it."""
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({"remediation_event": event, "remediation_action": action, **extra}))
    # One cluster host, as the playbooks expect; its kubeconfig and AWS endpoint lead nowhere.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"eks_clusters": {"hosts": {"eksworkshop": {
        "ansible_connection": "local", "eks_cluster_kubeconfig": str(tmp_path / "no-such-kubeconfig"),
        "eks_cluster_aws_endpoint_url": "http://127.0.0.1:9"}}}}))
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), "-e", f"@{event_file}",
         str(REPO / "playbooks" / "remediation" / "remediate.yml")],
        cwd=REPO, env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}, capture_output=True, text=True, timeout=180,
    )


@pytest.mark.parametrize(
    ("action", "event", "named"),
    [
        ("drain_node", {"kind": "spot_interruption", "instance_id": "node-1"}, 'got "node-1"'),
        ("drain_node", {"kind": "spot_interruption", "instance_id": "i-0123456789abcdef0",
                            "instance_ids": ["i-0123456789abcdef0", "i-0bad; rm"]}, '"i-0bad; rm"'),
        ("drain_node", {"kind": "capacity_reservation_interruption", "instance_id": "ip-10-0-0-1"}, 'got "ip-10-0-0-1"'),
        ("record_interruption", {"kind": "capacity_reservation_interruption"}, "remediation_event.instance_id"),
        ("cordon_node", {"kind": "rebalance_recommendation"}, "remediation_event.instance_id"),
        ("cleanup_node", {"kind": "instance_state_change", "state": "terminated", "instance_ids": [42]},
         "remediation_event.instance_ids"),
        # EC2 ids have 8 or 17 characters after i-: 16 is neither, though the old check took 8 to 17.
        ("drain_node", {"kind": "spot_interruption", "instance_id": "i-0feed00000000001"}, 'got "i-0feed00000000001"'),
        # A trailing newline passed a match on ^...$; the shared rule matches the whole string.
        ("cordon_node", {"kind": "rebalance_recommendation", "instance_id": "i-0123456789abcdef0\n"}, "i-0123456789abcdef0"),
        ("cleanup_node", {"kind": "instance_state_change", "instance_id": "i-0123456789abcdef0", "instance_ids": "i-0123456789abcdef0"},
         "remediation_event.instance_ids must be a list"),
    ],
)
def test_an_event_without_valid_instances_is_refused_before_any_change(action, event, named, tmp_path):
    result = run(action, event, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Refuse an unknown remediation or an event without what it needs" in output
    assert named in output
    # Validation is the first failure: no task reached the (absent) cluster.
    assert "no-such-kubeconfig" not in output


def test_an_unknown_remediation_is_refused_by_name_before_any_change(tmp_path):
    """One playbook for every remediation: a rule (or a hand) naming none it knows fails on the role's spec."""
    result = run("reboot_node", {"kind": "spot_interruption", "instance_id": "i-0123456789abcdef0"}, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "value of remediation_action must be one of: drain_node" in output and "got: reboot_node" in output
    assert "no-such-kubeconfig" not in output


def test_an_unknown_interruption_kind_to_count_is_refused_by_name(tmp_path):
    result = run("drain_node", {"kind": "capacity_reservation_interruption", "instance_id": "i-0123456789abcdef0"}, tmp_path,
                 remediation_interruption_kinds=["spot_interruption", "capacity_reservation"])
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "value of remediation_interruption_kinds must be one or more of" in output and "Got no match for: capacity_reservation" in output
    assert "no-such-kubeconfig" not in output


@pytest.mark.parametrize("instance_id", ["i-0123abcd", "i-0123456789abcdef0"])
def test_an_event_the_source_would_emit_passes_validation(instance_id, tmp_path):
    """Both lengths of EC2 ids pass the check: the run gets as far as the (absent) cluster."""
    result = run("drain_node", {"kind": "spot_interruption", "instance_id": instance_id, "instance_ids": [instance_id]}, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "must be one of drain_node" not in output
    assert "no-such-kubeconfig" in output
