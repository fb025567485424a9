"""eks_cluster_info and module_utils/eks_cluster.py against the lab's EKS API emulator.

The module_utils tests use a client wrapped as AnsibleAWSModule.client(retry_decorator=...) wraps
it and record every operation it sends, so "read-only" and "one page at a time" are checked on the
wire. The last test runs the module itself through ansible-playbook, in check mode and normally.
"""

import ast

import pytest
import yaml

from ansible_collections.eks_autoscaling.core.plugins.module_utils import eks_cluster
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_cluster import EksClusterError

from tests.conftest import REGION, make_client
from .test_eks_access import MODULES_DIR

# The ansible-playbook fixtures are shared rather than copied so the two playbook tests cannot
# drift apart in how they isolate ansible-playbook from the environment.
from .test_eks_access_playbook import connection, run_module, run_play  # noqa: F401

# Every key the module documents in RETURN, and so returns.
RETURNED_KEYS = {
    "cluster",
    "oidc_issuer",
    "oidc_provider",
    "cluster_security_group_id",
    "vpc_id",
    "authentication_mode",
    "partition",
    "account_id",
    "nodegroups",
    "nodegroup_subnet_ids",
}


recorder = pytest.fixture(lambda aws_recorder: aws_recorder("eks"))


@pytest.fixture(scope="module")
def subnets(aws_endpoint, aws_account):
    """The account's two subnets plus a third in the same VPC, so nodegroups can overlap partially."""
    ec2 = make_client(aws_endpoint, "ec2")
    first, second = aws_account["subnet_ids"]
    vpc_id = ec2.describe_subnets(SubnetIds=[first])["Subnets"][0]["VpcId"]
    third = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.42.20.0/24", AvailabilityZone="ap-southeast-1c")
    return [first, second, third["Subnet"]["SubnetId"]]


@pytest.fixture
def make_nodegroup(aws_endpoint, aws_account):
    eks = make_client(aws_endpoint, "eks")

    def _make(cluster, name, subnet_ids, **extra):
        return eks.create_nodegroup(
            clusterName=cluster, nodegroupName=name, nodeRole=aws_account["node_role"], subnets=subnet_ids, **extra
        )["nodegroup"]

    return _make


# -- module_utils -----------------------------------------------------------------------------------------
def test_cluster_facts_and_union_of_overlapping_nodegroup_subnets(
    recorder, client, aws_endpoint, aws_account, cluster, subnets, make_nodegroup
):
    first, second, third = subnets
    make_nodegroup(cluster, "system", [second, first], capacityType="ON_DEMAND", labels={"nodeClass": "system"})
    make_nodegroup(
        cluster,
        "spot",
        [third, second],
        capacityType="SPOT",
        labels={"karpenter.sh/capacity-type": "spot"},
        tags={"CostCenter": "42", "karpenter.sh/discovery": cluster},
    )
    raw = make_client(aws_endpoint, "eks").describe_cluster(name=cluster)["cluster"]

    facts = eks_cluster.get_cluster_info(client, cluster)

    assert facts["cluster"]["name"] == cluster and facts["cluster"]["arn"] == raw["arn"]
    assert facts["cluster"]["resources_vpc_config"]["subnet_ids"] == raw["resourcesVpcConfig"]["subnetIds"]
    assert facts["oidc_issuer"] == raw["identity"]["oidc"]["issuer"]
    assert facts["oidc_issuer"].startswith("https://")
    assert facts["oidc_provider"] == facts["oidc_issuer"][len("https://") :]
    assert facts["cluster_security_group_id"] == raw["resourcesVpcConfig"]["clusterSecurityGroupId"]
    assert facts["cluster_security_group_id"].startswith("sg-")
    assert facts["vpc_id"] == raw["resourcesVpcConfig"]["vpcId"]
    assert facts["authentication_mode"] == "API_AND_CONFIG_MAP"
    assert (facts["partition"], facts["account_id"]) == ("aws", "123456789012")

    assert [ng["nodegroup_name"] for ng in facts["nodegroups"]] == ["spot", "system"]
    spot, system = facts["nodegroups"]
    assert spot["capacity_type"] == "SPOT" and system["capacity_type"] == "ON_DEMAND"
    assert spot["subnets"] == [third, second] and system["subnets"] == [second, first]
    assert spot["node_role"] == system["node_role"] == aws_account["node_role"]
    # User-chosen keys come back as given, not snake_cased.
    assert system["labels"] == {"nodeClass": "system"}
    assert spot["labels"] == {"karpenter.sh/capacity-type": "spot"}
    assert spot["tags"] == {"CostCenter": "42", "karpenter.sh/discovery": cluster}
    assert facts["nodegroup_subnet_ids"] == sorted({first, second, third})

    assert recorder.mutating_calls() == []
    assert recorder.calls == ["DescribeCluster", "ListNodegroups", "DescribeNodegroup", "DescribeNodegroup"]


def test_cluster_without_nodegroups(recorder, client, cluster):
    facts = eks_cluster.get_cluster_info(client, cluster)
    assert facts["nodegroups"] == [] and facts["nodegroup_subnet_ids"] == []
    assert facts["cluster"]["name"] == cluster
    assert recorder.calls == ["DescribeCluster", "ListNodegroups"]


def test_nodegroups_false_skips_them(recorder, client, cluster, subnets, make_nodegroup):
    make_nodegroup(cluster, "default", subnets)
    facts = eks_cluster.get_cluster_info(client, cluster, nodegroups=False)
    # Absent, not empty: a run that did not look must not say there are none.
    assert "nodegroups" not in facts and "nodegroup_subnet_ids" not in facts
    assert facts["authentication_mode"] == "API_AND_CONFIG_MAP"
    assert recorder.calls == ["DescribeCluster"]


def test_config_map_cluster_reports_its_mode(client, make_cluster):
    facts = eks_cluster.get_cluster_info(client, make_cluster("CONFIG_MAP"), nodegroups=False)
    assert facts["authentication_mode"] == "CONFIG_MAP"


def test_missing_cluster_is_a_clear_error(recorder, client):
    with pytest.raises(EksClusterError) as caught:
        eks_cluster.get_cluster_info(client, "no-such-cluster")
    assert caught.value.message == f"EKS cluster 'no-such-cluster' does not exist in {REGION}"
    assert caught.value.exception.response["Error"]["Code"] == "ResourceNotFoundException"
    # Failed on the cluster itself, before any nodegroup call.
    assert recorder.calls == ["DescribeCluster"]


@pytest.mark.parametrize("name", ["", "-leading-hyphen", "has space", "a" * 101, "dots.are.not.allowed"])
def test_bad_cluster_names_are_refused_before_any_call(recorder, client, name):
    with pytest.raises(EksClusterError, match="^name must be an EKS cluster name"):
        eks_cluster.get_cluster_info(client, name)
    assert recorder.calls == []


def test_listing_walks_every_page(recorder, client, cluster, subnets, make_nodegroup):
    names = [f"ng-{index:02d}" for index in range(5)]
    for index, name in enumerate(names):
        make_nodegroup(cluster, name, [subnets[index % 3]])

    assert sorted(eks_cluster.list_nodegroups(client, cluster, page_size=2)) == names
    assert recorder.calls == ["ListNodegroups"] * 3

    recorder.calls.clear()
    facts = eks_cluster.get_cluster_info(client, cluster, page_size=2)
    assert [ng["nodegroup_name"] for ng in facts["nodegroups"]] == names
    assert facts["nodegroup_subnet_ids"] == sorted(subnets)
    assert recorder.calls == ["DescribeCluster"] + ["ListNodegroups"] * 3 + ["DescribeNodegroup"] * 5


def test_cluster_facts_defaults_when_eks_omits_fields():
    # A cluster that predates access entries and has no OIDC issuer yet, in another partition.
    cluster = {
        "name": "old",
        "arn": "arn:aws-cn:eks:cn-north-1:210987654321:cluster/old",
        "resourcesVpcConfig": {"subnetIds": ["subnet-1"]},
        "tags": {"CostCenter": "42"},
    }
    facts = eks_cluster.cluster_facts(cluster)
    assert facts == {
        "cluster": {
            "name": "old",
            "arn": cluster["arn"],
            "resources_vpc_config": {"subnet_ids": ["subnet-1"]},
            "tags": {"CostCenter": "42"},
        },
        "oidc_issuer": None,
        "oidc_provider": None,
        "cluster_security_group_id": None,
        "vpc_id": None,
        "authentication_mode": "CONFIG_MAP",
        "partition": "aws-cn",
        "account_id": "210987654321",
    }


def test_cluster_facts_union_is_sorted_and_unique():
    nodegroups = [
        {"nodegroupName": "b", "subnets": ["subnet-c", "subnet-a"], "labels": {"topologyZone": "x"}},
        {"nodegroupName": "a", "subnets": ["subnet-a", "subnet-b"]},
        {"nodegroupName": "c"},
    ]
    facts = eks_cluster.cluster_facts({"arn": "arn:aws:eks:us-east-1:123456789012:cluster/x"}, nodegroups)
    assert facts["nodegroup_subnet_ids"] == ["subnet-a", "subnet-b", "subnet-c"]
    assert facts["nodegroups"][0] == {
        "nodegroup_name": "b",
        "subnets": ["subnet-c", "subnet-a"],
        "labels": {"topologyZone": "x"},
    }


# -- the module stays thin and documented -------------------------------------------------------------------
def _module_tree():
    return ast.parse((MODULES_DIR / "eks_cluster_info.py").read_text())


def test_module_documentation_is_valid_yaml():
    blocks = {
        node.targets[0].id: node.value.value
        for node in _module_tree().body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    documentation = yaml.safe_load(blocks["DOCUMENTATION"])
    assert documentation["module"] == "eks_cluster_info"
    assert documentation["author"] == ["Karpenter HPA EKS contributors (!UNKNOWN)"]
    assert "amazon.aws.boto3" in documentation["extends_documentation_fragment"]
    assert set(documentation["options"]) == {"name", "nodegroups"}
    assert isinstance(yaml.safe_load(blocks["EXAMPLES"]), list)
    returned = yaml.safe_load(blocks["RETURN"])
    assert set(returned) == RETURNED_KEYS


# -- through ansible-playbook -------------------------------------------------------------------------------
EXPECTED_KEYS = RETURNED_KEYS | {"changed"}


@pytest.mark.parametrize("check", [True, False], ids=["check-mode", "normal"])
def test_module_through_ansible_playbook(run_module, aws_endpoint, cluster, subnets, make_nodegroup, check):
    make_nodegroup(cluster, "system", subnets[:2], labels={"nodeClass": "system"})
    make_nodegroup(cluster, "spot", subnets[1:], capacityType="SPOT")
    raw = make_client(aws_endpoint, "eks").describe_cluster(name=cluster)["cluster"]

    result = run_module("eks_cluster_info", {"name": cluster}, check=check)
    assert not result.get("failed"), result
    assert EXPECTED_KEYS <= set(result), sorted(result)
    assert result["changed"] is False
    assert result["cluster"]["name"] == cluster
    assert result["cluster"]["created_at"]
    assert result["oidc_issuer"] == raw["identity"]["oidc"]["issuer"]
    assert result["oidc_provider"] == raw["identity"]["oidc"]["issuer"].replace("https://", "", 1)
    assert result["cluster_security_group_id"] == raw["resourcesVpcConfig"]["clusterSecurityGroupId"]
    assert result["vpc_id"] == raw["resourcesVpcConfig"]["vpcId"]
    assert result["authentication_mode"] == "API_AND_CONFIG_MAP"
    assert (result["partition"], result["account_id"]) == ("aws", "123456789012")
    assert [ng["nodegroup_name"] for ng in result["nodegroups"]] == ["spot", "system"]
    assert result["nodegroups"][1]["labels"] == {"nodeClass": "system"}
    assert result["nodegroups"][0]["capacity_type"] == "SPOT"
    assert result["nodegroup_subnet_ids"] == sorted(subnets)

    result = run_module("eks_cluster_info", {"cluster_name": cluster, "nodegroups": False}, check=check)
    assert result["changed"] is False and result["authentication_mode"] == "API_AND_CONFIG_MAP"
    assert "nodegroups" not in result and "nodegroup_subnet_ids" not in result


def test_module_fails_clearly_on_a_missing_cluster(run_module):
    result = run_module("eks_cluster_info", {"name": "no-such-cluster"}, check=True)
    assert result["failed"] is True
    assert result["msg"].startswith(f"EKS cluster 'no-such-cluster' does not exist in {REGION}")
    assert result["error"]["code"] == "ResourceNotFoundException"


def test_module_defaults_group_covers_the_module(run_play, connection, cluster):
    tasks = [{"eks_autoscaling.core.eks_cluster_info": {"name": cluster, "nodegroups": False}}]
    (result,) = run_play(tasks, module_defaults={"group/eks_autoscaling.core.aws": connection})
    assert result["cluster"]["name"] == cluster, result
