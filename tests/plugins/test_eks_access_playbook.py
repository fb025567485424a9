"""The two modules end to end: ansible-playbook, localhost, against the in-process AWS server.

Each step is its own ansible-playbook run so that `--check` is the real command-line flag. The
server is read with a separate boto3 client after every step, so a check run that changed
anything, or a run that reported the wrong `changed`, fails here.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import COLLECTIONS, REGION, make_client

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


@pytest.fixture
def connection(aws_endpoint):
    return {"endpoint_url": aws_endpoint, "region": REGION, "access_key": "testing", "secret_key": "testing"}


@pytest.fixture
def run_play(tmp_path):
    """Run one play on localhost; return the result of each task, in order."""
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    # Only what the test chooses: no inherited AWS profile, lab endpoint or ansible.cfg of the repo.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "ANSIBLE_"))}
    env.update(
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_NOCOLOR="1",
    )

    def _run(tasks, check=False, diff=False, **play):
        playbook = tmp_path / "playbook.yml"
        play = {"hosts": "localhost", "connection": "local", "gather_facts": False, **play, "tasks": tasks}
        playbook.write_text(yaml.safe_dump([play]))
        command = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)]
        if check:
            command.append("--check")
        if diff:
            command.append("--diff")
        completed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        try:
            output = json.loads(completed.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"ansible-playbook did not print JSON:\n{completed.stdout}\n{completed.stderr}") from e
        results = [task["hosts"]["localhost"] for task in output["plays"][0]["tasks"]]
        if not any(result.get("failed") for result in results):
            assert completed.returncode == 0, completed.stderr
        return results

    return _run


@pytest.fixture
def run_module(run_play, connection):
    """Run one module of the collection, with the connection options given to it directly."""

    def _run(module, args, check=False, diff=False):
        task = {"name": "under test", f"eks_autoscaling.core.{module}": {**args, **connection}}
        (result,) = run_play([task], check=check, diff=diff)
        return result

    return _run


def snapshot_entry(eks, cluster, principal):
    try:
        return eks.describe_access_entry(clusterName=cluster, principalArn=principal)["accessEntry"]
    except eks.exceptions.ResourceNotFoundException:
        return None


def snapshot_associations(eks, cluster):
    summaries = eks.list_pod_identity_associations(clusterName=cluster)["associations"]
    return [
        eks.describe_pod_identity_association(clusterName=cluster, associationId=s["associationId"])["association"]
        for s in summaries
    ]


def test_access_entry_module(run_module, aws_endpoint, cluster, aws_account):
    eks = make_client(aws_endpoint, "eks")
    principal = aws_account["operator_role"]
    present = {
        "cluster_name": cluster,
        "principal_arn": principal,
        "kubernetes_groups": ["platform:operators"],
        "username": "operator",
        "resource_tags": {"karpenter.sh/discovery": cluster, "CostCenter": "42"},
    }
    absent = {"cluster_name": cluster, "principal_arn": principal, "state": "absent"}

    result = run_module("eks_access_entry", present, check=True, diff=True)
    assert result["changed"] is True, result
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["kubernetes_groups"] == ["platform:operators"]
    assert snapshot_entry(eks, cluster, principal) is None

    result = run_module("eks_access_entry", present)
    assert result["changed"] is True, result
    created = snapshot_entry(eks, cluster, principal)
    assert created["kubernetesGroups"] == ["platform:operators"] and created["username"] == "operator"
    assert result["access_entry"]["access_entry_arn"] == created["accessEntryArn"]
    assert result["access_entry"]["tags"] == {"karpenter.sh/discovery": cluster, "CostCenter": "42"}

    result = run_module("eks_access_entry", present, check=True)
    assert result["changed"] is False, result
    assert snapshot_entry(eks, cluster, principal) == created

    result = run_module("eks_access_entry", present)
    assert result["changed"] is False, result
    assert snapshot_entry(eks, cluster, principal) == created

    result = run_module("eks_access_entry", absent, check=True, diff=True)
    assert result["changed"] is True, result
    assert result["diff"]["after"] == {} and result["diff"]["before"]["principal_arn"] == principal
    assert snapshot_entry(eks, cluster, principal) == created

    result = run_module("eks_access_entry", absent)
    assert result["changed"] is True, result
    assert result["access_entry"] == {}
    assert snapshot_entry(eks, cluster, principal) is None

    result = run_module("eks_access_entry", absent)
    assert result["changed"] is False, result


def test_access_entry_module_refuses_bad_input(run_module, aws_endpoint, cluster, aws_account):
    result = run_module("eks_access_entry", {"cluster_name": cluster, "principal_arn": "arn:aws:iam::42:role/x"})
    assert result["failed"] is True
    assert result["msg"].startswith("principal_arn must be an IAM role or user ARN")

    principal = aws_account["node_role"]
    run_module("eks_access_entry", {"cluster_name": cluster, "principal_arn": principal, "type": "EC2_LINUX"})
    result = run_module("eks_access_entry", {"cluster_name": cluster, "principal_arn": principal})
    assert result["failed"] is True
    assert "changing type (EC2_LINUX -> STANDARD)" in result["msg"]
    assert snapshot_entry(make_client(aws_endpoint, "eks"), cluster, principal)["type"] == "EC2_LINUX"


def test_pod_identity_association_module(run_module, aws_endpoint, cluster, aws_account):
    eks = make_client(aws_endpoint, "eks")
    key = {"cluster_name": cluster, "namespace": "karpenter", "service_account": "karpenter"}
    present = {**key, "role_arn": aws_account["pod_role"], "tags": {"app.kubernetes.io/name": "karpenter"}}
    absent = {**key, "state": "absent"}

    result = run_module("eks_pod_identity_association", present, check=True, diff=True)
    assert result["changed"] is True, result
    assert result["diff"]["after"]["role_arn"] == aws_account["pod_role"]
    assert snapshot_associations(eks, cluster) == []

    result = run_module("eks_pod_identity_association", present)
    assert result["changed"] is True, result
    (created,) = snapshot_associations(eks, cluster)
    assert result["association"]["association_id"] == created["associationId"]
    assert result["association"]["tags"] == {"app.kubernetes.io/name": "karpenter"}

    result = run_module("eks_pod_identity_association", present, check=True)
    assert result["changed"] is False, result
    assert snapshot_associations(eks, cluster) == [created]

    result = run_module("eks_pod_identity_association", present)
    assert result["changed"] is False, result
    assert snapshot_associations(eks, cluster) == [created]

    # A new role is an in-place update, previewed by --check first.
    moved = {**present, "role_arn": aws_account["other_pod_role"]}
    result = run_module("eks_pod_identity_association", moved, check=True, diff=True)
    assert result["changed"] is True, result
    assert result["diff"]["before"]["role_arn"] == aws_account["pod_role"]
    assert result["diff"]["after"]["role_arn"] == aws_account["other_pod_role"]
    assert snapshot_associations(eks, cluster) == [created]
    result = run_module("eks_pod_identity_association", moved)
    assert result["changed"] is True, result
    (updated,) = snapshot_associations(eks, cluster)
    assert updated["associationId"] == created["associationId"] and updated["roleArn"] == aws_account["other_pod_role"]

    result = run_module("eks_pod_identity_association", absent, check=True)
    assert result["changed"] is True, result
    assert snapshot_associations(eks, cluster) == [updated]

    result = run_module("eks_pod_identity_association", absent)
    assert result["changed"] is True, result
    assert snapshot_associations(eks, cluster) == []

    result = run_module("eks_pod_identity_association", absent)
    assert result["changed"] is False, result


def test_pod_identity_association_module_errors(run_module, aws_account):
    key = {"cluster_name": "no-such-cluster", "namespace": "karpenter", "service_account": "karpenter"}
    result = run_module("eks_pod_identity_association", key)
    assert result["failed"] is True and "role_arn" in result["msg"]

    result = run_module("eks_pod_identity_association", {**key, "role_arn": aws_account["pod_role"]})
    assert result["failed"] is True
    assert result["msg"].startswith("EKS cluster 'no-such-cluster' does not exist in ap-southeast-1")
    # fail_json_aws attaches the AWS error, as amazon.aws modules do.
    assert result["error"]["code"] == "ResourceNotFoundException"


def test_module_defaults_group_covers_these_modules_and_amazon_aws(run_play, connection, cluster, aws_account):
    tasks = [
        {"amazon.aws.aws_caller_info": {}},
        {
            "eks_autoscaling.core.eks_access_entry": {
                "cluster_name": cluster,
                "principal_arn": aws_account["node_role"],
                "type": "EC2_LINUX",
            }
        },
    ]
    caller, entry = run_play(tasks, check=True, module_defaults={"group/eks_autoscaling.core.aws": connection})
    assert caller["account"] == "123456789012", caller
    assert entry["changed"] is True and entry["access_entry"]["type"] == "EC2_LINUX", entry
