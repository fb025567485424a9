"""The nodepools stage refuses a value the apiserver would refuse before any change, naming the variable.

`ansible-playbook playbooks/karpenter.yml --tags nodepools` on the lab: the role renders the karpenter-crd
chart (the lab inventory points it at the AWS provider's chart directory) and checks the NodePools against
its CRDs; nothing reaches the cluster when one is bad, in check mode or not.
"""
import pytest

from .conftest import run_playbook

NODE_CLASS = {"name": "crdval", "role": "KarpenterNodeRole-eksworkshop", "ami_alias": "al2023@v20251120",
              "subnet_selector_terms": [{"tags": {"karpenter.sh/discovery": "eksworkshop"}}],
              "security_group_selector_terms": [{"tags": {"karpenter.sh/discovery": "eksworkshop"}}]}


def pool(**disruption):
    return {
        "name": "crdval",
        "node_class": "crdval",
        "requirements": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}],
        "disruption": dict({"consolidation_policy": "WhenEmpty", "consolidate_after": "1m"}, **disruption),
    }


@pytest.mark.parametrize("check", [True, False], ids=["check", "apply"])
def test_a_bad_nodepool_fails_before_any_change_naming_the_variable(check, kubectl):
    extra = {"nodepools_node_classes": [NODE_CLASS], "nodepools_list": [pool(consolidate_after="500ms")]}
    result = run_playbook("karpenter.yml", "--tags", "nodepools", *(["--check"] if check else []), extra=extra, check=False)
    assert result.returncode != 0
    assert "nodepools_list[0] (crdval): spec.disruption.consolidateAfter: Invalid value: \"500ms\"" in result.stdout
    # Nothing was applied: neither the pool nor its node class exist.
    assert kubectl("get", "nodepool", "crdval", check=False).returncode != 0
    assert kubectl("get", "ec2nodeclass", "crdval", check=False).returncode != 0


def test_a_value_the_crd_allows_and_our_old_checks_refused_passes(kubectl):
    extra = {"nodepools_node_classes": [NODE_CLASS], "nodepools_list": [pool(consolidation_policy="Balanced")]}
    result = run_playbook("karpenter.yml", "--tags", "nodepools", "--check", extra=extra)
    assert "Refuse node classes and NodePools the apiserver or Karpenter would refuse" in result.stdout
    assert "not validated against a CRD" not in result.stdout
