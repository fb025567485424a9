"""One fact, one variable, per cluster host: what the inventory sets for a cluster is what every role uses, and
each host of a fleet derives its own names, ARNs and partition from its own variables.

The roles are imported into one play over a two-cluster inventory (no AWS, no cluster: only the `report` task
and eks_cluster's local checks run), and the values the roles hand to AWS and Kubernetes are read from that play
as the roles' own tasks would see them: the controller policy's template, the Karpenter release's values, the
node class, the ARNs aws_auth maps and karpenter annotates, the event bus's queue.
"""
import json
import os
import subprocess

import pytest
import yaml

from tests.paths import REPO

ROLES = ["iam", "tagging", "aws_auth", "interruption_queue", "karpenter", "nodepools", "event_bus"]
ACCOUNT = "111111111111"
# Host "c1" names everything itself; host "eksworkshop-cn" sets only its region (a China one) and account.
OVERRIDES = {
    "eks_cluster_name": "prod",
    "eks_cluster_region": "eu-central-1",
    "eks_cluster_node_role_name": "CustomNodeRole",
    "eks_cluster_controller_role_name": "CustomControllerRole",
    "eks_cluster_interruption_queue_name": "custom-queue",
    "eks_cluster_discovery_tag_key": "example.com/discovery",
    "eks_cluster_karpenter_namespace": "kube-karpenter",
    "eks_cluster_karpenter_service_account": "karpenter-sa",
}
INVENTORY = {"eks_clusters": {"hosts": {
    "c1": {**OVERRIDES, "eks_cluster_identity": {"account": ACCOUNT}},
    "eksworkshop-cn": {"eks_cluster_region": "cn-north-1", "eks_cluster_identity": {"account": "222222222222"}},
}, "vars": {"ansible_connection": "local"}}}
REPORT = {
    "policy": "{{ lookup('ansible.builtin.template', role_root ~ '/iam/templates/controller-policy.json.j2') | from_json }}",
    "node_role_arn": "{{ eks_cluster_node_role_arn }}",
    "controller_role_arn": "{{ eks_cluster_controller_role_arn }}",
    "karpenter_values": "{{ karpenter_release_values }}",
    "node_classes": "{{ nodepools_node_classes }}",
    "event_bus_queue": "{{ event_bus_queue_name }}",
    "instance_profile": "{{ iam_instance_profile_name }}",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    (tmp / "hosts.yml").write_text(yaml.safe_dump(INVENTORY))
    play = [{"name": "Every role, as a playbook imports them", "hosts": "eks_clusters", "gather_facts": False,
             "tasks": [{"name": f"Import {role}", "ansible.builtin.import_role": {"name": role}} for role in ROLES]
             + [{"name": "Report", "tags": ["report"], "ansible.builtin.debug": {"msg": REPORT},
                 "vars": {"role_root": str(REPO / "roles")}}]}]
    (tmp / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    result = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(tmp / "hosts.yml"), "--tags", "report",
                             "-e", f"ansible_python_interpreter={REPO / '.venv' / 'bin' / 'python'}", str(tmp / "play.yml")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    (reported,) = [task["hosts"] for task in tasks if task["task"]["name"] == "Report"]
    return {host: outcome["msg"] for host, outcome in reported.items()}


def statement(policy, sid):
    return next(s for s in policy["Statement"] if s["Sid"] == sid)


def test_names_set_in_the_inventory_are_the_ones_every_role_uses(report):
    c1 = report["c1"]
    assert c1["node_role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/CustomNodeRole"  # aws_auth maps it
    assert statement(c1["policy"], "AllowPassingInstanceRole")["Resource"] == c1["node_role_arn"]  # iam lets Karpenter pass it
    (node_class,) = c1["node_classes"]
    assert node_class["role"] == "CustomNodeRole"  # the nodes get it
    # The discovery tag the node class selects by is the one tagging writes, with the cluster's name.
    assert node_class["subnet_selector_terms"] == node_class["security_group_selector_terms"] == [{"tags": {"example.com/discovery": "prod"}}]
    assert statement(c1["policy"], "AllowInterruptionQueueActions")["Resource"] == f"arn:aws:sqs:eu-central-1:{ACCOUNT}:custom-queue"
    values = c1["karpenter_values"]
    assert values["settings"] == {"clusterName": "prod", "interruptionQueue": "custom-queue"}
    assert values["serviceAccount"] == {"name": "karpenter-sa",
                                        "annotations": {"eks.amazonaws.com/role-arn": f"arn:aws:iam::{ACCOUNT}:role/CustomControllerRole"}}
    assert c1["controller_role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/CustomControllerRole"
    assert c1["event_bus_queue"] == "prod-cluster-events"
    assert c1["instance_profile"] == "KarpenterNodeInstanceProfile-prod"


def test_each_host_derives_its_own_names_and_partition(report):
    cn = report["eksworkshop-cn"]
    # No eks_cluster_name: the host's name is the cluster's; the China region puts every ARN in aws-cn.
    assert cn["node_role_arn"] == "arn:aws-cn:iam::222222222222:role/KarpenterNodeRole-eksworkshop-cn"
    assert statement(cn["policy"], "AllowInterruptionQueueActions")["Resource"] == "arn:aws-cn:sqs:cn-north-1:222222222222:eksworkshop-cn"
    assert cn["karpenter_values"]["settings"] == {"clusterName": "eksworkshop-cn", "interruptionQueue": "eksworkshop-cn"}
    assert cn["node_classes"][0]["subnet_selector_terms"] == [{"tags": {"karpenter.sh/discovery": "eksworkshop-cn"}}]
    assert cn["event_bus_queue"] == "eksworkshop-cn-cluster-events"
