"""module_utils/eks_access.py against the lab's EKS API emulator (real HTTP, real botocore).

The client is wrapped exactly as AnsibleAWSModule.client(retry_decorator=...) wraps it, so the
`aws_retry=True` calls take the same path as in the modules. Every API call the functions make is
recorded from botocore's event hooks, which is how "no call" and "no mutating call" are checked.
"""
import ast
from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError

from ansible_collections.eks_autoscaling.core.plugins.module_utils import eks_access
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import EksAccessError

from tests.conftest import COLLECTIONS

MODULES_DIR = COLLECTIONS / "ansible_collections" / "eks_autoscaling" / "core" / "plugins" / "modules"


recorder = pytest.fixture(lambda aws_recorder: aws_recorder("eks"))
raw_eks = pytest.fixture(lambda boto_client: boto_client("eks"))


def describe_entry(raw_eks, cluster, principal):
    try:
        return raw_eks.describe_access_entry(clusterName=cluster, principalArn=principal)["accessEntry"]
    except raw_eks.exceptions.ResourceNotFoundException:
        return None


def associations(raw_eks, cluster):
    found = []
    for page in raw_eks.get_paginator("list_pod_identity_associations").paginate(clusterName=cluster):
        for summary in page["associations"]:
            found.append(
                raw_eks.describe_pod_identity_association(clusterName=cluster, associationId=summary["associationId"])[
                    "association"
                ]
            )
    return found


def strip_volatile(state):
    return {key: value for key, value in (state or {}).items() if key not in ("modifiedAt", "ResponseMetadata")}


# -- validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:role/node",
        "arn:aws-cn:iam::123456789012:role/node",
        "arn:aws-us-gov:iam::123456789012:user/ops",
        "arn:aws:iam::123456789012:role/platform/team/operator",
    ],
)
def test_principal_arns_of_the_three_partitions_are_accepted(arn):
    eks_access.validate_principal_arn(arn)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::12345678901:role/short-account",
        "arn:aws-iso:iam::123456789012:role/other-partition",
        "arn:aws:sts::123456789012:assumed-role/node/session",
        "arn:aws:iam::123456789012:policy/not-a-principal",
        "arn:aws:iam::123456789012:role/r\u00f4le",
        "arn:aws:iam::123456789012:role/" + "n" * 65,
        "node-role",
        "",
    ],
)
def test_bad_principal_arns_name_the_option(arn):
    with pytest.raises(EksAccessError, match="^principal_arn must be an IAM role or user ARN"):
        eks_access.validate_principal_arn(arn)


def test_role_arn_must_be_a_role():
    eks_access.validate_role_arn("arn:aws-us-gov:iam::123456789012:role/pods")
    with pytest.raises(EksAccessError, match="^role_arn must be an IAM role ARN"):
        eks_access.validate_role_arn("arn:aws:iam::123456789012:user/pods")


@pytest.mark.parametrize("entry_type", ["EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX"])
def test_node_types_take_no_groups_or_username_and_only_roles(entry_type):
    role = "arn:aws:iam::123456789012:role/node"
    with pytest.raises(EksAccessError, match=f"^kubernetes_groups cannot be set .* {entry_type}"):
        eks_access.validate_access_entry_params(role, entry_type, kubernetes_groups=["ops"])
    with pytest.raises(EksAccessError, match=f"^username cannot be set .* {entry_type}"):
        eks_access.validate_access_entry_params(role, entry_type, username="node")
    for user in ("arn:aws:iam::123456789012:user/ops", "arn:aws:iam::123456789012:user/x:role/ops"):
        with pytest.raises(EksAccessError, match=f"^principal_arn must be an IAM role ARN .* {entry_type}"):
            eks_access.validate_access_entry_params(user, entry_type)
    eks_access.validate_access_entry_params(role, entry_type, kubernetes_groups=[], username=None)


def test_kubernetes_names_are_checked():
    role = "arn:aws:iam::123456789012:role/pods"
    with pytest.raises(EksAccessError, match="^namespace must be"):
        eks_access.validate_pod_identity_params("Kube_System", "sa", role)
    with pytest.raises(EksAccessError, match="^service_account must be"):
        eks_access.validate_pod_identity_params("kube-system", "SA!", role)
    with pytest.raises(EksAccessError, match="^role_arn must be"):
        eks_access.validate_pod_identity_params("kube-system", "sa", None)
    eks_access.validate_pod_identity_params("kube-system", "sa", None, state="absent")


def test_bad_arns_are_refused_before_any_call(recorder, cluster):
    with pytest.raises(EksAccessError, match="principal_arn"):
        eks_access.ensure_access_entry(recorder.client, cluster, "arn:aws:iam::123:role/x")
    with pytest.raises(EksAccessError, match="principal_arn"):
        eks_access.ensure_access_entry_absent(recorder.client, cluster, "arn:aws:sts::123456789012:assumed-role/x/y")
    with pytest.raises(EksAccessError, match="principal_arn"):
        eks_access.get_access_entry(recorder.client, cluster, "not-an-arn")
    with pytest.raises(EksAccessError, match="kubernetes_groups"):
        eks_access.ensure_access_entry(
            recorder.client, cluster, "arn:aws:iam::123456789012:role/node", "EC2_LINUX", kubernetes_groups=["x"]
        )
    with pytest.raises(EksAccessError, match="role_arn"):
        eks_access.ensure_pod_identity_association(recorder.client, cluster, "karpenter", "karpenter", "arn:aws:iam::1:role/r")
    assert recorder.calls == []


# -- access entries ------------------------------------------------------------------------------------
def test_create_then_idempotent(recorder, client, raw_eks, cluster, aws_account):
    principal = aws_account["operator_role"]
    changed, state = eks_access.ensure_access_entry(
        client, cluster, principal, kubernetes_groups=["platform:operators", "viewers"], username="operator",
        tags={"team": "platform", "karpenter.sh/discovery": cluster},
    )
    assert changed is True
    server = describe_entry(raw_eks, cluster, principal)
    assert server["type"] == "STANDARD"
    assert sorted(server["kubernetesGroups"]) == ["platform:operators", "viewers"]
    assert server["username"] == "operator"
    assert server["tags"] == {"team": "platform", "karpenter.sh/discovery": cluster}
    assert state["accessEntryArn"] == server["accessEntryArn"]

    recorder.calls.clear()
    changed, again = eks_access.ensure_access_entry(
        client, cluster, principal, kubernetes_groups=["viewers", "platform:operators", "viewers"], username="operator",
        tags={"team": "platform", "karpenter.sh/discovery": cluster},
    )
    assert changed is False
    assert again["accessEntryArn"] == server["accessEntryArn"]
    assert recorder.mutating_calls() == []


def test_node_entry_gets_the_node_username(client, raw_eks, cluster, aws_account):
    changed, state = eks_access.ensure_access_entry(client, cluster, aws_account["node_role"], "EC2_LINUX")
    assert changed is True
    assert state["type"] == "EC2_LINUX"
    assert state["username"] == "system:node:{{EC2PrivateDNSName}}"
    changed, _ = eks_access.ensure_access_entry(client, cluster, aws_account["node_role"], "EC2_LINUX")
    assert changed is False


def test_check_mode_reports_but_does_not_create(recorder, raw_eks, cluster, aws_account):
    principal = aws_account["operator_role"]
    changed, planned = eks_access.ensure_access_entry(
        recorder.client, cluster, principal, kubernetes_groups=["ops"], tags={"a": "1"}, check_mode=True
    )
    assert changed is True
    assert planned["principalArn"] == principal and planned["kubernetesGroups"] == ["ops"]
    assert planned["tags"] == {"a": "1"}
    assert recorder.mutating_calls() == []
    assert describe_entry(raw_eks, cluster, principal) is None


def test_check_mode_on_update_and_delete_changes_nothing(recorder, raw_eks, cluster, aws_account):
    principal = aws_account["operator_role"]
    eks_access.ensure_access_entry(recorder.client, cluster, principal, kubernetes_groups=["ops"], tags={"a": "1"})
    before = describe_entry(raw_eks, cluster, principal)
    recorder.calls.clear()

    changed, planned = eks_access.ensure_access_entry(
        recorder.client, cluster, principal, kubernetes_groups=["ops", "dev"], tags={"b": "2"}, check_mode=True
    )
    assert changed is True
    assert planned["kubernetesGroups"] == ["ops", "dev"] and planned["tags"] == {"b": "2"}
    changed, gone = eks_access.ensure_access_entry_absent(recorder.client, cluster, principal, check_mode=True)
    assert changed is True and gone is None

    assert recorder.mutating_calls() == []
    assert describe_entry(raw_eks, cluster, principal) == before


def test_update_groups_username_and_tags(recorder, client, raw_eks, cluster, aws_account):
    principal = aws_account["operator_role"]
    eks_access.ensure_access_entry(client, cluster, principal, kubernetes_groups=["ops"], tags={"a": "1", "b": "2"})
    recorder.calls.clear()

    changed, state = eks_access.ensure_access_entry(
        client, cluster, principal, kubernetes_groups=["dev"], username="someone", tags={"a": "10", "c": "3"}
    )
    assert changed is True
    server = describe_entry(raw_eks, cluster, principal)
    assert server["kubernetesGroups"] == ["dev"] and server["username"] == "someone"
    assert server["tags"] == {"a": "10", "c": "3"}
    assert strip_volatile(state) == strip_volatile(server)
    assert {"UpdateAccessEntry", "TagResource", "UntagResource"} <= set(recorder.calls)

    # purge_tags=false only adds; groups=None and username=None leave those alone.
    changed, state = eks_access.ensure_access_entry(client, cluster, principal, tags={"d": 4}, purge_tags=False)
    assert changed is True
    assert state["tags"] == {"a": "10", "c": "3", "d": "4"}
    assert state["kubernetesGroups"] == ["dev"] and state["username"] == "someone"

    # tags=None leaves tags alone even with purge_tags; [] clears the groups.
    changed, state = eks_access.ensure_access_entry(client, cluster, principal, kubernetes_groups=[])
    assert changed is True
    assert state["kubernetesGroups"] == [] and state["tags"] == {"a": "10", "c": "3", "d": "4"}
    changed, _ = eks_access.ensure_access_entry(client, cluster, principal, kubernetes_groups=[], tags={"a": "10", "c": "3", "d": "4"})
    assert changed is False


def test_type_change_is_refused_naming_the_field(recorder, raw_eks, cluster, aws_account):
    principal = aws_account["node_role"]
    eks_access.ensure_access_entry(recorder.client, cluster, principal, "EC2_LINUX")
    before = describe_entry(raw_eks, cluster, principal)
    recorder.calls.clear()

    with pytest.raises(EksAccessError, match=r"changing type \(EC2_LINUX -> STANDARD\).*force=true"):
        eks_access.ensure_access_entry(recorder.client, cluster, principal, "STANDARD", kubernetes_groups=["ops"])
    with pytest.raises(EksAccessError, match=r"changing type \(EC2_LINUX -> STANDARD\) and username"):
        eks_access.ensure_access_entry(recorder.client, cluster, principal, "STANDARD", username="me")
    with pytest.raises(EksAccessError, match=r"type \(EC2_LINUX -> EC2_WINDOWS\)"):
        eks_access.ensure_access_entry(recorder.client, cluster, principal, "EC2_WINDOWS", check_mode=True)
    assert recorder.mutating_calls() == []
    assert describe_entry(raw_eks, cluster, principal) == before


def test_force_recreates_with_the_new_type_and_keeps_tags(client, raw_eks, cluster, aws_account):
    principal = aws_account["node_role"]
    eks_access.ensure_access_entry(client, cluster, principal, kubernetes_groups=["system:nodes"], tags={"keep": "me"})
    old_arn = describe_entry(raw_eks, cluster, principal)["accessEntryArn"]

    changed, planned = eks_access.ensure_access_entry(client, cluster, principal, "EC2_LINUX", force=True, check_mode=True)
    assert changed is True and planned["type"] == "EC2_LINUX"
    assert describe_entry(raw_eks, cluster, principal)["type"] == "STANDARD"

    changed, state = eks_access.ensure_access_entry(client, cluster, principal, "EC2_LINUX", force=True)
    assert changed is True
    server = describe_entry(raw_eks, cluster, principal)
    assert server["type"] == "EC2_LINUX" and server["kubernetesGroups"] == []
    assert server["tags"] == {"keep": "me"}
    assert server["accessEntryArn"] != old_arn
    assert state["accessEntryArn"] == server["accessEntryArn"]


def test_absent_then_absent_again(recorder, client, raw_eks, cluster, aws_account):
    principal = aws_account["operator_role"]
    eks_access.ensure_access_entry(client, cluster, principal)
    changed, state = eks_access.ensure_access_entry_absent(client, cluster, principal)
    assert (changed, state) == (True, None)
    assert describe_entry(raw_eks, cluster, principal) is None

    recorder.calls.clear()
    changed, state = eks_access.ensure_access_entry_absent(client, cluster, principal)
    assert (changed, state) == (False, None)
    assert recorder.mutating_calls() == []


def test_missing_cluster_is_a_clear_error(client, aws_account):
    for call in (
        lambda: eks_access.ensure_access_entry(client, "no-such-cluster", aws_account["operator_role"], check_mode=True),
        lambda: eks_access.ensure_access_entry_absent(client, "no-such-cluster", aws_account["operator_role"]),
        lambda: eks_access.ensure_pod_identity_association(client, "no-such-cluster", "ns", "sa", aws_account["pod_role"]),
        lambda: eks_access.ensure_pod_identity_association_absent(client, "no-such-cluster", "ns", "sa"),
    ):
        with pytest.raises(EksAccessError) as caught:
            call()
        assert caught.value.message == "EKS cluster 'no-such-cluster' does not exist in ap-southeast-1"
        # The botocore error travels along for fail_json_aws to report.
        assert isinstance(caught.value.exception, ClientError)
        assert caught.value.exception.response["Error"]["Code"] == "ResourceNotFoundException"


def test_config_map_cluster_is_a_clear_error(recorder, make_cluster, aws_account):
    cluster = make_cluster(authentication_mode="CONFIG_MAP")
    with pytest.raises(EksAccessError, match="uses authentication mode CONFIG_MAP; access entries need API or API_AND_CONFIG_MAP"):
        eks_access.ensure_access_entry(recorder.client, cluster, aws_account["operator_role"], check_mode=True)
    assert recorder.mutating_calls() == []


def test_api_errors_carry_the_botocore_error(client, raw_eks, cluster, aws_account):
    # The cluster goes away between the read and the write: the create fails, as on EKS.
    current = eks_access.get_access_entry(client, cluster, aws_account["operator_role"])
    raw_eks.delete_cluster(name=cluster)
    with pytest.raises(EksAccessError, match="^Failed to create access entry") as caught:
        eks_access.ensure_access_entry(client, cluster, aws_account["operator_role"], current=current)
    assert isinstance(caught.value.exception, ClientError)


# -- pod identity associations -------------------------------------------------------------------------
def test_association_create_update_idempotent_absent(recorder, client, raw_eks, cluster, aws_account):
    changed, state = eks_access.ensure_pod_identity_association(
        client, cluster, "karpenter", "karpenter", aws_account["pod_role"], tags={"app": "karpenter"}
    )
    assert changed is True
    (server,) = associations(raw_eks, cluster)
    assert server["roleArn"] == aws_account["pod_role"] and server["tags"] == {"app": "karpenter"}
    assert state["associationId"] == server["associationId"]

    recorder.calls.clear()
    changed, again = eks_access.ensure_pod_identity_association(
        client, cluster, "karpenter", "karpenter", aws_account["pod_role"], tags={"app": "karpenter"}
    )
    assert changed is False and again["associationId"] == server["associationId"]
    assert recorder.mutating_calls() == []

    changed, state = eks_access.ensure_pod_identity_association(
        client, cluster, "karpenter", "karpenter", aws_account["other_pod_role"], tags={"owner": "platform"}
    )
    assert changed is True
    (server,) = associations(raw_eks, cluster)
    assert server["roleArn"] == aws_account["other_pod_role"] and server["tags"] == {"owner": "platform"}
    assert strip_volatile(state) == strip_volatile(server)
    assert "UpdatePodIdentityAssociation" in recorder.calls

    changed, state = eks_access.ensure_pod_identity_association_absent(client, cluster, "karpenter", "karpenter")
    assert (changed, state) == (True, None)
    assert associations(raw_eks, cluster) == []
    recorder.calls.clear()
    changed, state = eks_access.ensure_pod_identity_association_absent(client, cluster, "karpenter", "karpenter")
    assert (changed, state) == (False, None)
    assert recorder.mutating_calls() == []


def test_association_is_found_by_namespace_and_service_account(client, cluster, aws_account):
    eks_access.ensure_pod_identity_association(client, cluster, "karpenter", "karpenter", aws_account["pod_role"])
    eks_access.ensure_pod_identity_association(client, cluster, "kube-system", "karpenter", aws_account["other_pod_role"])
    eks_access.ensure_pod_identity_association(client, cluster, "karpenter", "other", aws_account["other_pod_role"])
    found = eks_access.get_pod_identity_association(client, cluster, "karpenter", "karpenter")
    assert found["roleArn"] == aws_account["pod_role"]
    assert eks_access.get_pod_identity_association(client, cluster, "karpenter", "missing") is None


def test_association_check_mode_changes_nothing(recorder, raw_eks, cluster, aws_account):
    changed, planned = eks_access.ensure_pod_identity_association(
        recorder.client, cluster, "karpenter", "karpenter", aws_account["pod_role"], check_mode=True
    )
    assert changed is True and planned["roleArn"] == aws_account["pod_role"]
    assert associations(raw_eks, cluster) == []

    eks_access.ensure_pod_identity_association(recorder.client, cluster, "karpenter", "karpenter", aws_account["pod_role"])
    before = associations(raw_eks, cluster)
    recorder.calls.clear()
    changed, planned = eks_access.ensure_pod_identity_association(
        recorder.client, cluster, "karpenter", "karpenter", aws_account["other_pod_role"], tags={"x": "y"}, check_mode=True
    )
    assert changed is True
    assert planned["roleArn"] == aws_account["other_pod_role"] and planned["tags"] == {"x": "y"}
    changed, _ = eks_access.ensure_pod_identity_association_absent(
        recorder.client, cluster, "karpenter", "karpenter", check_mode=True
    )
    assert changed is True
    assert recorder.mutating_calls() == []
    assert associations(raw_eks, cluster) == before


def test_listing_walks_every_page(recorder, client, raw_eks, cluster, aws_account):
    # 120 associations: more than the API's default page of 100.
    for index in range(120):
        raw_eks.create_pod_identity_association(
            clusterName=cluster, namespace="bulk", serviceAccount=f"sa-{index:03d}", roleArn=aws_account["pod_role"]
        )
    recorder.calls.clear()
    listed = eks_access.list_pod_identity_associations(client, cluster, namespace="bulk")
    assert sorted(a["serviceAccount"] for a in listed) == [f"sa-{index:03d}" for index in range(120)]
    assert recorder.calls.count("ListPodIdentityAssociations") == 2

    recorder.calls.clear()
    listed = eks_access.list_pod_identity_associations(client, cluster, page_size=7)
    assert len(listed) == 120
    assert recorder.calls.count("ListPodIdentityAssociations") == 18

    found = eks_access.get_pod_identity_association(client, cluster, "bulk", "sa-119", page_size=1)
    assert found["serviceAccount"] == "sa-119" and found["roleArn"] == aws_account["pod_role"]
    changed, _ = eks_access.ensure_pod_identity_association(client, cluster, "bulk", "sa-119", aws_account["pod_role"])
    assert changed is False


# -- results ---------------------------------------------------------------------------------------------
def test_results_are_snake_cased_but_tags_are_not():
    state = {"accessEntryArn": "arn", "kubernetesGroups": ["g"], "tags": {"karpenter.sh/discovery": "x", "CostCenter": "42"}}
    result = eks_access.module_result("access_entry", True, None, state, want_diff=True)
    assert result["access_entry"] == {
        "access_entry_arn": "arn",
        "kubernetes_groups": ["g"],
        "tags": {"karpenter.sh/discovery": "x", "CostCenter": "42"},
    }
    assert result["diff"] == {"before": {}, "after": result["access_entry"]}
    assert "diff" not in eks_access.module_result("access_entry", False, state, state, want_diff=False)
    assert eks_access.module_result("association", True, state, None, want_diff=False)["association"] == {}


# -- the modules stay thin and documented -------------------------------------------------------------------
@pytest.mark.parametrize("module", ["eks_access_entry", "eks_pod_identity_association"])
def test_module_documentation_is_valid_yaml(module):
    tree = ast.parse((MODULES_DIR / f"{module}.py").read_text())
    blocks = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)
    }
    documentation = yaml.safe_load(blocks["DOCUMENTATION"])
    assert documentation["module"] == module
    # "(!UNKNOWN)" is how validate-modules accepts an author without a GitHub handle.
    assert documentation["author"] == ["Karpenter HPA EKS contributors (!UNKNOWN)"]
    assert "amazon.aws.boto3" in documentation["extends_documentation_fragment"]
    assert isinstance(yaml.safe_load(blocks["EXAMPLES"]), list)
    assert isinstance(yaml.safe_load(blocks["RETURN"]), dict)


@pytest.mark.parametrize("module", ["eks_access_entry", "eks_pod_identity_association"])
def test_modules_make_no_api_calls_themselves(module):
    tree = ast.parse((MODULES_DIR / f"{module}.py").read_text())
    assert [node.name for node in tree.body if isinstance(node, ast.FunctionDef)] == ["main"]
    # The client is only handed to module_utils: main never calls a method on it.
    client_uses = [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "client"
    ]
    assert client_uses == []
