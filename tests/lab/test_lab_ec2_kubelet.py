"""lab/ec2_kubelet.py registers an instance's node from what its user data tells nodeadm."""
from lab import ec2_kubelet

NODECONFIG = """apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: eksworkshop
  kubelet:
    config:
      maxPods: 58
      registerWithTaints:
      - key: karpenter.sh/unregistered
        effect: NoExecute
      - key: dedicated
        value: gpu
        effect: NoSchedule
    flags:
    - --node-labels="karpenter.sh/capacity-type=spot,karpenter.sh/nodepool=default,intent=apps"
"""


def mime(*documents):
    parts = ["MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="//"', ""]
    for document in documents:
        parts += ["--//", "Content-Type: application/node.eks.aws", "", document]
    parts += ["--//", "Content-Type: text/x-shellscript; charset=\"us-ascii\"", "", "#!/bin/bash\necho hi", "--//--", ""]
    return "\n".join(parts)


def instance(instance_type="m6g.xlarge"):
    return {"InstanceId": "i-0123456789abcdef0", "InstanceType": instance_type, "PrivateDnsName": "ip-10-0-1-5.ap-southeast-1.compute.internal",
            "Placement": {"AvailabilityZone": "ap-southeast-1b"}, "State": {"Name": "running"}}


def test_labels_and_taints_come_from_the_user_data():
    labels, taints, config = ec2_kubelet.kubelet_settings(mime(NODECONFIG))
    assert labels == {"karpenter.sh/capacity-type": "spot", "karpenter.sh/nodepool": "default", "intent": "apps"}
    assert taints == [{"key": "karpenter.sh/unregistered", "effect": "NoExecute"}, {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    assert config == {"maxPods": 58}


def test_later_node_configs_win_and_a_plain_document_is_read():
    override = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    config:\n      maxPods: 20\n"
    assert ec2_kubelet.kubelet_settings(mime(NODECONFIG, override))[2]["maxPods"] == 20
    assert ec2_kubelet.kubelet_settings(NODECONFIG)[0]["karpenter.sh/capacity-type"] == "spot"
    assert ec2_kubelet.kubelet_settings("") == ({}, [], {})


def test_the_node_is_named_and_identified_like_an_eks_node():
    node = ec2_kubelet.node_manifest(instance(), mime(NODECONFIG), "ap-southeast-1")
    assert node["metadata"]["name"] == "ip-10-0-1-5.ap-southeast-1.compute.internal"
    assert node["spec"]["providerID"] == "aws:///ap-southeast-1b/i-0123456789abcdef0"
    labels = node["metadata"]["labels"]
    assert labels["karpenter.sh/capacity-type"] == "spot"
    assert labels["node.kubernetes.io/instance-type"] == "m6g.xlarge" and labels["kubernetes.io/arch"] == "arm64"
    assert labels["topology.kubernetes.io/zone"] == "ap-southeast-1b"
    assert node["spec"]["taints"][0] == {"key": "karpenter.sh/unregistered", "effect": "NoExecute"}
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"


def test_allocatable_is_capacity_less_the_eks_kube_reserved_and_eviction():
    node = ec2_kubelet.node_manifest(instance(), mime(NODECONFIG), "ap-southeast-1")
    # m6g.xlarge: 4 vCPU, 16 GiB. kube-reserved: 60+10+10 = 80m CPU, 11*58+255 = 893 MiB; eviction 100 MiB.
    assert node["status"]["capacity"]["cpu"] == "4" and node["status"]["capacity"]["pods"] == "58"
    assert node["status"]["allocatable"]["cpu"] == "3920m"
    assert node["status"]["allocatable"]["memory"] == f"{16 * 1024 - 893 - 100}Mi"


def test_an_unknown_instance_type_is_a_clear_error():
    try:
        ec2_kubelet.node_manifest(instance("x9.huge"), "", "ap-southeast-1")
    except ValueError as error:
        assert "x9.huge" in str(error) and "catalogue" in str(error)
    else:
        raise AssertionError("an instance type outside the catalogue must be refused")

