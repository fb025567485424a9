"""aws-auth mapRoles merging keeps every other entry, never duplicates, and refuses broken text."""
import pytest
import yaml

from ansible_collections.eks_autoscaling.core.plugins.filter.aws_auth import aws_auth_map_roles

NODEGROUP = "arn:aws:iam::133129065110:role/eksctl-eksworkshop-nodegroup-newn-NodeInstanceRole-17EL7P7Q9BRQV"
KARPENTER = "arn:aws:iam::133129065110:role/KarpenterNodeRole-eksworkshop"
# The tutorial's aws-auth before its step 6, as eksctl writes it.
EKSCTL = (
    "- groups:\n  - system:bootstrappers\n  - system:nodes\n"
    f"  rolearn: {NODEGROUP}\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n"
)


def test_adds_the_node_role_after_the_existing_entries_with_a_literal_username():
    merged = yaml.safe_load(aws_auth_map_roles(EKSCTL, KARPENTER))
    assert [e["rolearn"] for e in merged] == [NODEGROUP, KARPENTER]
    assert merged[1] == {"groups": ["system:bootstrappers", "system:nodes"], "rolearn": KARPENTER,
                         "username": "system:node:{{EC2PrivateDNSName}}"}


def test_second_run_returns_the_text_unchanged():
    once = aws_auth_map_roles(EKSCTL, KARPENTER)
    assert aws_auth_map_roles(once, KARPENTER) is once


def test_duplicates_of_the_role_collapse_into_one_in_place():
    doubled = EKSCTL + f"- rolearn: {KARPENTER}\n  username: wrong\n  groups: [system:masters]\n" + f"- rolearn: {KARPENTER}\n  groups: []\n"
    merged = yaml.safe_load(aws_auth_map_roles(doubled, KARPENTER))
    assert [e["rolearn"] for e in merged] == [NODEGROUP, KARPENTER]
    assert merged[1]["groups"] == ["system:bootstrappers", "system:nodes"]


def test_absent_removes_only_the_role_and_is_idempotent():
    merged = aws_auth_map_roles(EKSCTL, KARPENTER)
    removed = aws_auth_map_roles(merged, KARPENTER, state="absent")
    assert [e["rolearn"] for e in yaml.safe_load(removed)] == [NODEGROUP]
    assert aws_auth_map_roles(removed, KARPENTER, state="absent") is removed


def test_missing_configmap_gets_just_the_role():
    assert [e["rolearn"] for e in yaml.safe_load(aws_auth_map_roles("", KARPENTER))] == [KARPENTER]


@pytest.mark.parametrize("broken", ["- groups: [system:nodes\n  rolearn: x", "rolearn: x\n", "- just a string\n", "- groups: [a]\n"])
def test_unparsable_or_foreign_text_is_refused(broken):
    with pytest.raises(Exception, match="kube-system/aws-auth data.mapRoles"):
        aws_auth_map_roles(broken, KARPENTER)

