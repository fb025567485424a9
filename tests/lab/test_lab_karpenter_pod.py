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


IRSA_SA = {"metadata": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/KarpenterControllerRole-x"}}}
AGENT = "http://127.0.0.1:1/v1/credentials"


def webhook_env(service_account, association, work):
    return karpenter_pod.webhook_env(service_account, association, work, "ap-southeast-1", "http://127.0.0.1:1", AGENT)


def test_irsa_gives_the_role_of_the_annotation_and_a_token_file_never_keys(tmp_path):
    env, audience, credentials = webhook_env(IRSA_SA, None, tmp_path)
    role = "arn:aws:iam::123456789012:role/KarpenterControllerRole-x"
    assert env["AWS_ROLE_ARN"] == role and env["AWS_WEB_IDENTITY_TOKEN_FILE"] == str(tmp_path / "token")
    assert audience == "sts.amazonaws.com" and role in credentials
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} & set(env)
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/dev/null" and env["AWS_EC2_METADATA_DISABLED"] == "true"


def test_no_annotation_and_no_association_means_no_credentials_at_all(tmp_path):
    env, audience, credentials = webhook_env({"metadata": {}}, None, tmp_path)
    assert audience is None and credentials is None
    assert not {"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} & set(env)


@pytest.mark.parametrize("service_account", [{"metadata": {}}, IRSA_SA], ids=["no annotation", "with an IRSA annotation"])
def test_an_association_gives_the_agents_container_credentials_and_wins_over_the_annotation(tmp_path, service_account):
    association = {"associationId": "a-0123456789abcdefg", "roleArn": "arn:aws:iam::123456789012:role/KarpenterControllerRole-x"}
    env, audience, credentials = webhook_env(service_account, association, tmp_path)
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == AGENT
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == str(tmp_path / "eks-pod-identity-token")
    assert audience == "pods.eks.amazonaws.com" and "a-0123456789abcdefg" in credentials
    assert "AWS_ROLE_ARN" not in env and "AWS_WEB_IDENTITY_TOKEN_FILE" not in env


def test_the_webhook_finds_the_service_accounts_association_in_the_aws_server(pod_identity):
    eks, cluster = pod_identity["eks"], pod_identity["cluster"]
    assert karpenter_pod.pod_identity_association(eks, cluster, "karpenter", "karpenter") is None
    role_arn, association = pod_identity["bind"]()
    found = karpenter_pod.pod_identity_association(eks, cluster, "karpenter", "karpenter")
    assert found["roleArn"] == role_arn and found["associationId"] == association["associationId"]
    assert karpenter_pod.pod_identity_association(eks, cluster, "karpenter", "other") is None


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
