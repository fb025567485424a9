"""The lab's instance catalogue and nodegroup nodes mirror the tutorial's EKS account."""
from lab import instance_types, labctl


def test_catalogue_has_the_tutorial_types_in_three_zones_both_capacity_types():
    catalogue = {it["name"]: it for it in instance_types.build_catalogue()}
    for name in ("m6g.xlarge", "r6g.xlarge", "c6g.2xlarge", "t4g.xlarge"):
        offerings = catalogue[name]["offerings"]
        pairs = {(o["Requirements"][0]["values"][0], o["Requirements"][1]["values"][0]) for o in offerings}
        assert pairs == {(c, z) for c in ("spot", "on-demand") for z in instance_types.ZONES}
        assert catalogue[name]["architecture"] == "arm64"
    spot = [o["Price"] for o in catalogue["m6g.xlarge"]["offerings"] if o["Requirements"][0]["values"] == ["spot"]]
    on_demand = [o["Price"] for o in catalogue["m6g.xlarge"]["offerings"] if o["Requirements"][0]["values"] == ["on-demand"]]
    assert max(spot) < min(on_demand)
    assert catalogue["g5g.xlarge"]["resources"]["nvidia.com/gpu"] == "1"


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
