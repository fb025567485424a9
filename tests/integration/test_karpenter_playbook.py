"""playbooks/karpenter.yml on the lab: check mode, convergence, idempotence, validation, the tutorial check."""
import json
import os
import re
import subprocess

import pytest

from .conftest import REPO, wait_until


def playbook(*args, extra=None, check=True):
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(REPO / "inventories" / "lab"), str(REPO / "playbooks" / "karpenter.yml"), *args]
    if extra is not None:
        cmd += ["-e", json.dumps(extra)]
    result = subprocess.run(cmd, cwd=REPO, env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
                            capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"ansible-playbook failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return result


def changed(result):
    return int(re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", result.stdout).group(1))


def releases(lab_env):
    bins = lab_env["PATH"].split(":")[0]
    out = subprocess.run([f"{bins}/helm", "list", "-A", "-o", "json"], env=lab_env, capture_output=True, text=True, check=True).stdout
    return [r["name"] for r in json.loads(out)]


@pytest.fixture(scope="module")
def converged(lab):
    yield
    # Cleanup in the order teardown uses: NodePools (Karpenter drains their nodes) before the controller.
    playbook(extra={"nodepools_state": "absent", "karpenter_state": "absent"}, check=False)


def test_check_mode_on_a_fresh_lab_changes_nothing(lab, lab_env, kube_json, converged):
    assert "karpenter" not in releases(lab_env)
    result = playbook("--check", "--diff")
    assert changed(result) > 0
    assert "karpenter" not in releases(lab_env)
    assert kube_json("nodepools")["items"] == []


def test_apply_then_idempotent_check_and_apply(lab_env, kube_json, converged):
    assert changed(playbook()) > 0
    assert "karpenter" in releases(lab_env)
    pool = kube_json("nodepool", "default")
    assert {c["type"]: c["status"] for c in pool["status"]["conditions"]}["Ready"] == "True"
    assert changed(playbook("--check")) == 0
    assert changed(playbook()) == 0


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"nodepools_list": [{"name": "default", "node_class": "default", "requirements": [{"key": "kubernetes.io/arch", "operator": "Inn", "values": ["arm64"]}],
                              "disruption": {"consolidate_after": "1m"}}]},
         "nodepools_list[0].requirements[0].operator: 'Inn' is not one of"),
        ({"nodepools_list": [{"name": "default", "node_class": "default", "disruption": {"consolidation_policy": "WhenEmpty"}}]},
         "nodepools_list[0].disruption.consolidate_after: is required by karpenter.sh/v1"),
        ({"karpenter_controller_role_arn": "arn:aws:iam::12345:role/x"}, "karpenter_controller_role_arn: \"arn:aws:iam::12345:role/x\" is not an IAM role ARN"),
    ],
)
def test_bad_values_fail_before_any_change(kube_json, lab_env, converged, extra, message):
    before = kube_json("nodepool", "default")["metadata"]["resourceVersion"] if kube_json("nodepools")["items"] else None
    revision_before = releases(lab_env)
    result = playbook(extra=extra, check=False)
    assert result.returncode != 0
    assert message in result.stdout
    after = kube_json("nodepool", "default")["metadata"]["resourceVersion"] if kube_json("nodepools")["items"] else None
    assert after == before and releases(lab_env) == revision_before


def _deployment(namespace, replicas):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx-deployment", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "nginx"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "public.ecr.aws/nginx/nginx:1.24-alpine-slim",
                                         "resources": {"requests": {"cpu": "2", "memory": "4G"}, "limits": {"cpu": "2", "memory": "4G"}}}]},
            },
        },
    }


def test_tutorial_scale_out_adds_spot_nodes_and_scale_in_consolidates(kubectl, kube_json, converged):
    namespace = "tutorial-karpenter-check"
    kubectl("create", "namespace", namespace)
    try:
        kubectl("apply", "-f", "-", stdin=json.dumps(_deployment(namespace, 1)))
        kubectl("scale", "deployment", "nginx-deployment", "-n", namespace, "--replicas=6")
        wait_until("Karpenter nodes from NodePool default", lambda: kube_json("nodes", "-l", "karpenter.sh/nodepool=default")["items"] or None, 90)

        def all_running():
            pods = kube_json("pods", "-n", namespace)["items"]
            return len([p for p in pods if p["status"].get("phase") == "Running"]) == 6 or None

        wait_until("6 Running pods", all_running, 90)
        for node in kube_json("nodes", "-l", "karpenter.sh/nodepool=default")["items"]:
            labels = node["metadata"]["labels"]
            assert labels["karpenter.sh/capacity-type"] == "spot"
            assert labels["kubernetes.io/arch"] == "arm64"
            assert labels["node.kubernetes.io/instance-type"] in {"m6g.xlarge", "r6g.xlarge", "c6g.2xlarge"}
            assert labels["intent"] == "apps"
        kubectl("scale", "deployment", "nginx-deployment", "-n", namespace, "--replicas=1")
        # consolidate_after is 1m in the role's default pool: Karpenter removes the emptied nodes after it.
        wait_until("consolidation to remove the Karpenter nodes",
                   lambda: not kube_json("nodes", "-l", "karpenter.sh/nodepool=default")["items"], 240, interval=5)
    finally:
        kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s", check=False, timeout=150)
