"""NodePool / node class validation names the bad field, and renders valid karpenter.sh/v1 objects."""
import copy

import pytest
import yaml

from ansible_collections.eks_autoscaling.core.plugins.filter import karpenter

from tests.paths import REPO

ROLE_DEFAULTS = REPO / "roles" / "nodepools" / "defaults" / "main.yml"


def _defaults():
    """The role's defaults with their Jinja resolved the way Ansible would for the tutorial."""
    text = ROLE_DEFAULTS.read_text()
    # The node role and the discovery tag are the eks_cluster role's, for the host eksworkshop.
    text = text.replace('"{{ eks_cluster_node_role_name }}"', "KarpenterNodeRole-eksworkshop")
    text = text.replace('"{{ {eks_cluster_discovery_tag_key: eks_cluster_name} }}"', "{karpenter.sh/discovery: eksworkshop}")
    data = yaml.safe_load(text)
    return data["nodepools_node_classes"], data["nodepools_list"]


def test_the_role_defaults_are_valid_and_render_the_tutorial_pool():
    classes, pools = _defaults()
    assert karpenter.nodeclass_errors(classes) == []
    assert karpenter.nodepool_errors(pools, classes) == []
    manifest = karpenter.nodepool_manifest(pools[0], classes)
    assert manifest["apiVersion"] == "karpenter.sh/v1"
    spec = manifest["spec"]
    assert spec["template"]["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}
    assert spec["template"]["metadata"]["labels"] == {"intent": "apps"}
    assert spec["limits"] == {"cpu": "1000", "memory": "1000Gi"}
    assert spec["disruption"] == {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "1m"}
    assert {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]} in spec["template"]["spec"]["requirements"]
    nodeclass = karpenter.nodeclass_manifest(classes[0], "eksworkshop")
    assert nodeclass["spec"]["amiSelectorTerms"] == [{"alias": "al2023@v20251120"}]
    assert nodeclass["spec"]["role"] == "KarpenterNodeRole-eksworkshop"
    assert nodeclass["spec"]["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "eksworkshop"}}]


def test_the_tutorial_pool_warns_that_three_spot_types_are_too_few():
    _, pools = _defaults()
    (warning,) = karpenter.nodepool_warnings(pools)
    assert warning.startswith("nodepools_list[0] (default): a spot NodePool limited to 3 instance types")


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda p: p["requirements"].append({"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}),
         "requirements on karpenter.sh/capacity-type contradict each other"),
        (lambda p: p["requirements"].append({"key": "kubernetes.io/arch", "operator": "NotIn", "values": ["arm64"]}),
         "requirements on kubernetes.io/arch contradict each other"),
        (lambda p: p["requirements"].extend([{"key": "karpenter.k8s.aws/instance-cpu", "operator": "Gt", "values": ["16"]},
                                             {"key": "karpenter.k8s.aws/instance-cpu", "operator": "Lt", "values": ["8"]}]),
         "Gt 16 and Lt 8 leave no value"),
        (lambda p: p["requirements"][0].update(values=["spot", "preemptible"]), "requirements[0].values: preemptible for karpenter.sh/capacity-type"),
        (lambda p: p.update(node_class="gpu"), "nodepools_list[0].node_class: 'gpu' is not one of the node classes (default)"),
    ],
)
def test_bad_nodepools_are_refused_naming_the_field(mutate, expected):
    classes, pools = _defaults()
    pool = copy.deepcopy(pools[0])
    mutate(pool)
    errors = karpenter.nodepool_errors([pool], classes)
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda c: c.update(ami_alias="al2023@latest"), "nodepools_node_classes[0].ami_alias: 'al2023@latest' is not pinned"),
        (lambda c: c.update(kind="AWSNodeTemplate"), "kind: 'AWSNodeTemplate' is not one of EC2NodeClass"),
    ],
)
def test_bad_node_classes_are_refused_naming_the_field(mutate, expected):
    classes, _ = _defaults()
    node_class = copy.deepcopy(classes[0])
    mutate(node_class)
    assert any(expected in e for e in karpenter.nodeclass_errors([node_class])), karpenter.nodeclass_errors([node_class])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p["requirements"][0].update(operator="Inn"),
        lambda p: p["disruption"].pop("consolidate_after"),
        lambda p: p["disruption"].update(consolidation_policy="Balanced"),
        lambda p: p.update(expire_after="1.5h"),
        lambda p: p.update(weight=0),
        lambda p: p.update(name="Bad_Name"),
    ],
)
def test_what_the_crd_checks_is_left_to_it(mutate):
    """Types, patterns, enums and CEL rules are the CRD's (crd_errors, tests/plugins/test_crd_validation.py):
    our hand-written checks disagreed with it, so they no longer judge these."""
    classes, pools = _defaults()
    pool = copy.deepcopy(pools[0])
    mutate(pool)
    assert karpenter.nodepool_errors([pool], classes) == []
    karpenter.nodepool_manifest(pool, classes)  # renders, so the CRD check can name the field


def test_fallback_and_gpu_pools_render():
    classes, _ = _defaults()
    fallback = {
        "name": "on-demand-fallback", "node_class": "default", "weight": 10,
        "requirements": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
        "disruption": {"consolidation_policy": "WhenEmpty", "consolidate_after": "5m",
                       "budgets": [{"nodes": "10%"}, {"nodes": 0, "schedule": "0 9 * * mon-fri", "duration": "8h", "reasons": ["Drifted"]}]},
    }
    gpu = {
        "name": "gpu", "node_class": "default",
        "requirements": [{"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": [0]}],
        "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
        "disruption": {"consolidate_after": "Never"}, "expire_after": "Never",
    }
    assert karpenter.nodepool_errors([fallback, gpu], classes) == []
    rendered = karpenter.nodepool_manifest(fallback, classes)["spec"]
    assert rendered["weight"] == 10
    assert rendered["disruption"]["budgets"][1] == {"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h", "reasons": ["Drifted"]}
    gpu_spec = karpenter.nodepool_manifest(gpu, classes)["spec"]["template"]["spec"]
    assert gpu_spec["taints"] == gpu["taints"] and gpu_spec["expireAfter"] == "Never"
    assert gpu_spec["requirements"] == [{"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]}]


