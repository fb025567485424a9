"""lab/karpenter_pod.py builds the controller's environment from the Deployment as the kubelet and
EKS's pod identity webhook would: a wrong value in the release reaches the controller unchanged."""
import pytest

from lab import karpenter_pod


def deployment(env, resources=None, replicas=2):
    return {
        "metadata": {"name": "karpenter", "namespace": "karpenter", "generation": 3},
        "spec": {"replicas": replicas, "template": {"spec": {"serviceAccountName": "karpenter", "containers": [
            {"name": "controller", "env": env, "resources": resources or {}}]}}},
    }


def test_values_field_refs_and_resource_refs_resolve_like_the_kubelet():
    env = [
        {"name": "CLUSTER_NAME", "value": "eksworkshop"},
        {"name": "SYSTEM_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "CPU_REQUESTS", "valueFrom": {"resourceFieldRef": {"containerName": "controller", "resource": "requests.cpu", "divisor": "1m"}}},
        # The chart writes divisor "0", which the kubelet takes as 1.
        {"name": "MEMORY_LIMIT", "valueFrom": {"resourceFieldRef": {"containerName": "controller", "resource": "limits.memory", "divisor": "0"}}},
    ]
    resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    d = deployment(env, resources)
    got = karpenter_pod.resolve_env(d, d["spec"]["template"]["spec"]["containers"][0], lambda *_: None)
    assert got == {"CLUSTER_NAME": "eksworkshop", "SYSTEM_NAMESPACE": "karpenter", "CPU_REQUESTS": "1000", "MEMORY_LIMIT": str(2**30)}


def test_config_map_keys_resolve_and_a_missing_required_key_is_refused():
    env = [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}},
           {"name": "B", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "b", "optional": True}}}]
    d = deployment(env)
    container = d["spec"]["template"]["spec"]["containers"][0]
    lookups = {("configmap", "karpenter", "settings"): {"a": "1"}}
    assert karpenter_pod.resolve_env(d, container, lambda *key: lookups.get(key)) == {"A": "1"}
    with pytest.raises(karpenter_pod.PodSpecError, match="env A: configmap karpenter/settings has no key a"):
        karpenter_pod.resolve_env(d, container, lambda *_: {})


def test_irsa_gives_the_role_of_the_annotation_and_a_token_file_never_keys(tmp_path):
    sa = {"metadata": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/KarpenterControllerRole-x"}}}
    env, role = karpenter_pod.irsa_env(sa, tmp_path / "token", "ap-southeast-1", "http://127.0.0.1:1")
    assert role == "arn:aws:iam::123456789012:role/KarpenterControllerRole-x"
    assert env["AWS_ROLE_ARN"] == role and env["AWS_WEB_IDENTITY_TOKEN_FILE"] == str(tmp_path / "token")
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(env)
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/dev/null" and env["AWS_EC2_METADATA_DISABLED"] == "true"


def test_no_annotation_means_no_credentials_at_all(tmp_path):
    env, role = karpenter_pod.irsa_env({"metadata": {}}, tmp_path / "token", "ap-southeast-1", "http://127.0.0.1:1")
    assert role is None and "AWS_ROLE_ARN" not in env and "AWS_WEB_IDENTITY_TOKEN_FILE" not in env


def test_a_rollout_changes_the_fingerprint_and_a_status_change_does_not():
    sa = {"metadata": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/a"}}}
    d = deployment([{"name": "CLUSTER_NAME", "value": "eksworkshop"}])
    first = karpenter_pod.spec_fingerprint(d, sa)
    d["status"] = {"readyReplicas": 2}
    assert karpenter_pod.spec_fingerprint(d, sa) == first
    d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "other"
    assert karpenter_pod.spec_fingerprint(d, sa) != first
    sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = "arn:aws:iam::123456789012:role/b"
    assert karpenter_pod.spec_fingerprint(deployment([{"name": "CLUSTER_NAME", "value": "eksworkshop"}]), sa) != first
