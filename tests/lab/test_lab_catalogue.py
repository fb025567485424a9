"""The lab's nodegroup nodes mirror the tutorial's EKS account (the catalogue is served by lab/aws_ec2.py,
tested in test_lab_aws_ec2.py)."""
from lab import labctl


def test_nodegroup_nodes_carry_eks_labels_and_provider_ids():
    facts = {
        "region": "ap-southeast-1",
        "cluster_name": "eksworkshop",
        "nodegroup": "ng-ondemand",
        "instances": [
            {"instance_id": f"i-{n}", "zone": f"ap-southeast-1{z}", "private_dns": f"ip-{n}.ap-southeast-1.compute.internal"}
            for n, z in ((1, "a"), (2, "b"), (3, "c"))
        ],
    }
    nodes = labctl.node_manifests(facts)["items"]
    assert [n["spec"]["providerID"] for n in nodes] == [
        "aws:///ap-southeast-1a/i-1", "aws:///ap-southeast-1b/i-2", "aws:///ap-southeast-1c/i-3"
    ]
    for node in nodes:
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert node["metadata"]["labels"]["eks.amazonaws.com/capacityType"] == "ON_DEMAND"
        assert node["status"]["capacity"]["cpu"] == "4" and node["status"]["capacity"]["memory"] == "16Gi"
        # One 2-CPU pod per node, as on a real t4g.xlarge where the kubelet reserves some CPU.
        assert node["status"]["allocatable"]["cpu"] == "3920m"
