"""Our CRD validation agrees with the real kube-apiserver on every row.

Each row is a NodePool or node class as the nodepools role takes it (snake_case variables), rendered by
nodepool_manifest / nodeclass_manifest. The oracle is the lab's kube-apiserver: `kubectl apply
--dry-run=server` of the manifest, with the CRDs of the karpenter-crd chart (the AWS provider's, the
version the role validates against) applied first with server-side apply. Our verdict (crd_errors on the
same chart rendered by helm template) must equal the apiserver's on every row, valid and invalid alike.
"""
import copy
import subprocess

import pytest
import yaml

from ansible_collections.eks_autoscaling.core.plugins.filter import crd, karpenter

CLUSTER = "eksworkshop"
NODE_CLASS = {
    "name": "default",
    "kind": "EC2NodeClass",
    "role": "KarpenterNodeRole-eksworkshop",
    "ami_alias": "al2023@v20251120",
    "subnet_selector_terms": [{"tags": {"karpenter.sh/discovery": CLUSTER}}],
    "security_group_selector_terms": [{"tags": {"karpenter.sh/discovery": CLUSTER}}],
}
POOL = {
    "name": "default",
    "node_class": "default",
    "labels": {"intent": "apps"},
    "requirements": [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]},
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m6g.xlarge", "r6g.xlarge", "c6g.2xlarge"]},
    ],
    "limits": {"cpu": "1000", "memory": "1000Gi"},
    "expire_after": "720h",
    "disruption": {"consolidation_policy": "WhenEmptyOrUnderutilized", "consolidate_after": "1m"},
}


def pool(**changes):
    value = copy.deepcopy(POOL)
    for key, change in changes.items():
        if key == "disruption":
            value["disruption"].update(change)
        elif change is None:
            value.pop(key, None)
        else:
            value[key] = change
    return ("pool", value)


def req(*extra):
    return pool(requirements=copy.deepcopy(POOL["requirements"]) + list(extra))


def node_class(**changes):
    value = copy.deepcopy(NODE_CLASS)
    for key, change in changes.items():
        if change is None:
            value.pop(key, None)
        else:
            value[key] = change
    return ("class", value)


EBS = {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "100Gi", "volumeType": "gp3", "encrypted": True}}

ROWS = {
    # -- NodePool: valid
    "tutorial pool": pool(),
    "consolidation Balanced (CRD allows it)": pool(disruption={"consolidation_policy": "Balanced"}),
    "consolidate_after Never": pool(disruption={"consolidate_after": "Never"}),
    "consolidate_after 1h30m": pool(disruption={"consolidate_after": "1h30m"}),
    "expire_after Never": pool(expire_after="Never"),
    "termination_grace_period 48h": pool(termination_grace_period="48h"),
    "budgets percentage, count, schedule": pool(disruption={"budgets": [
        {"nodes": "10%"}, {"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h", "reasons": ["Underutilized", "Drifted"]}]}),
    "budget @daily 1h30m": pool(disruption={"budgets": [{"nodes": "100%", "schedule": "@daily", "duration": "1h30m"}]}),
    "Gt 5 and minValues": req({"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["5"]},
                              {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["m6g", "c6g"], "min_values": 2}),
    "Exists and DoesNotExist": req({"key": "example.com/gpu", "operator": "Exists"}, {"key": "example.com/fpga", "operator": "DoesNotExist"}),
    "taints NoExecute and startup taint": pool(taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NoExecute"}],
                                               startup_taints=[{"key": "example.com/init", "effect": "NoSchedule"}]),
    "weight 100, integer limit": pool(weight=100, limits={"cpu": 64, "memory": "256Gi", "nvidia.com/gpu": "4"}),
    "allowed karpenter.k8s.aws label": pool(labels={"karpenter.k8s.aws/instance-category": "m", "team": "a"}),
    "requirement on capacity reservation label": req({"key": "karpenter.k8s.aws/capacity-reservation-type", "operator": "In", "values": ["default"]}),
    # -- NodePool: invalid
    "fractional expire_after": pool(expire_after="1.5h"),
    "expire_after in days": pool(expire_after="30d"),
    "sub-second consolidate_after": pool(disruption={"consolidate_after": "500ms"}),
    "consolidate_after missing": ("pool", dict(POOL, disruption={"consolidation_policy": "WhenEmpty"})),
    "consolidation policy unknown": pool(disruption={"consolidation_policy": "Always"}),
    "budget duration in seconds": pool(disruption={"budgets": [{"nodes": "0", "schedule": "@daily", "duration": "30s"}]}),
    "budget schedule without duration": pool(disruption={"budgets": [{"nodes": "10%", "schedule": "@daily"}]}),
    "budget nodes 150%": pool(disruption={"budgets": [{"nodes": "150%"}]}),
    "budget reason unknown": pool(disruption={"budgets": [{"nodes": "1", "reasons": ["Expired"]}]}),
    "negative Gt": req({"key": "karpenter.k8s.aws/instance-cpu", "operator": "Gt", "values": ["-1"]}),
    "Lt with two values": req({"key": "karpenter.k8s.aws/instance-cpu", "operator": "Lt", "values": ["4", "8"]}),
    "Gt not an integer": req({"key": "karpenter.k8s.aws/instance-cpu", "operator": "Gt", "values": ["four"]}),
    "In without values": req({"key": "topology.kubernetes.io/zone", "operator": "In", "values": []}),
    "operator unknown": req({"key": "topology.kubernetes.io/zone", "operator": "Inn", "values": ["a"]}),
    "minValues above values": req({"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["m6g"], "min_values": 2}),
    "restricted requirement key hostname": req({"key": "kubernetes.io/hostname", "operator": "In", "values": ["x"]}),
    "restricted requirement domain karpenter.sh": req({"key": "karpenter.sh/foo", "operator": "Exists"}),
    "restricted label karpenter.sh/nodepool": pool(labels={"karpenter.sh/nodepool": "x"}),
    "restricted label domain karpenter.k8s.aws": pool(labels={"karpenter.k8s.aws/custom": "x"}),
    "label value too long": pool(labels={"team": "a" * 64}),
    "taint effect typo": pool(taints=[{"key": "nvidia.com/gpu", "effect": "NoScheduel"}]),
    "taint without key": pool(taints=[{"effect": "NoSchedule"}]),
    "termination_grace_period in days": pool(termination_grace_period="2d"),
    "weight 0": pool(weight=0),
    "weight 101": pool(weight=101),
    "limit not a quantity": pool(limits={"cpu": "lots"}),
    "name not DNS": pool(name="Bad_Name"),
    "unknown field in disruption": pool(disruption={"consolidate_aftr": "1m"}),
    # -- EC2NodeClass: valid
    "tutorial node class": node_class(),
    "instance profile instead of role": node_class(role=None, instance_profile="KarpenterNodeInstanceProfile"),
    "bottlerocket alias": node_class(ami_alias="bottlerocket@v1.26.0"),
    "windows alias latest": node_class(ami_alias="windows2022@latest", allow_latest_ami=True),
    "ami by id with family": node_class(ami_alias=None, ami_selector_terms=[{"id": "ami-0123456789abcdef0"}], ami_family="AL2023"),
    "subnets by id, security group by name": node_class(subnet_selector_terms=[{"id": "subnet-0123abcd"}, {"id": "subnet-4567ef01"}],
                                                        security_group_selector_terms=[{"name": "eks-cluster-sg"}]),
    "kubelet settings": node_class(kubelet={"maxPods": 110, "systemReserved": {"cpu": "100m", "memory": "200Mi"},
                                            "evictionHard": {"memory.available": "5%"}, "evictionSoft": {"memory.available": "10%"},
                                            "evictionSoftGracePeriod": {"memory.available": "1m"},
                                            "imageGCHighThresholdPercent": 85, "imageGCLowThresholdPercent": 80}),
    "block device mapping gp3 100Gi": node_class(block_device_mappings=[dict(EBS, rootVolume=True)]),
    "metadata options": node_class(metadata_options={"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 2}),
    "extra tags": node_class(tags={"team": "platform", "cost-center": "42"}),
    # -- EC2NodeClass: invalid
    "role and instance profile": node_class(instance_profile="KarpenterNodeInstanceProfile"),
    "neither role nor instance profile": node_class(role=None),
    "empty role": node_class(role=""),
    "alias without version": node_class(ami_alias="al2023"),
    "alias family unknown": node_class(ami_alias="ubuntu@v1"),
    "windows alias pinned": node_class(ami_alias="windows2022@v20250101"),
    "alias with id": node_class(ami_alias=None, ami_selector_terms=[{"alias": "al2023@latest", "id": "ami-0123"}]),
    "ami id without family": node_class(ami_alias=None, ami_selector_terms=[{"id": "ami-0123456789abcdef0"}]),
    "no AMI at all": node_class(ami_alias=None),
    "no subnet selector terms": node_class(subnet_selector_terms=[]),
    "subnet term with id and tags": node_class(subnet_selector_terms=[{"id": "subnet-0123", "tags": {"a": "b"}}]),
    "subnet term empty tag value": node_class(subnet_selector_terms=[{"tags": {"karpenter.sh/discovery": ""}}]),
    "security group id bad": node_class(security_group_selector_terms=[{"id": "group-1"}]),
    "restricted tag kubernetes.io/cluster": node_class(tags={"kubernetes.io/cluster/eksworkshop": "owned"}),
    "restricted tag karpenter.sh/nodepool": node_class(tags={"karpenter.sh/nodepool": "x"}),
    "kubelet systemReserved unknown resource": node_class(kubelet={"systemReserved": {"gpu": "1"}}),
    "kubelet evictionSoft without grace period": node_class(kubelet={"evictionSoft": {"memory.available": "10%"}}),
    "kubelet GC high below low": node_class(kubelet={"imageGCHighThresholdPercent": 50, "imageGCLowThresholdPercent": 80}),
    "kubelet unknown field": node_class(kubelet={"maxPod": 110}),
    "volume too big": node_class(block_device_mappings=[dict(EBS, ebs={"volumeSize": "70000Gi"})]),
    "volume type unknown": node_class(block_device_mappings=[dict(EBS, ebs={"volumeSize": "20Gi", "volumeType": "gp4"})]),
    "ebs without size or snapshot": node_class(block_device_mappings=[{"deviceName": "/dev/xvda", "ebs": {"volumeType": "gp3"}}]),
    "two root volumes": node_class(block_device_mappings=[dict(EBS, rootVolume=True), dict(EBS, deviceName="/dev/xvdb", rootVolume=True)]),
    "hop limit 65": node_class(metadata_options={"httpPutResponseHopLimit": 65}),
    "httpTokens unknown": node_class(metadata_options={"httpTokens": "sometimes"}),
}


def manifest_of(kind, value):
    if kind == "pool":
        return karpenter.nodepool_manifest(value, [NODE_CLASS])
    return karpenter.nodeclass_manifest(value, CLUSTER)


@pytest.fixture(scope="module")
def crd_chart(lab):
    """The rendered karpenter-crd chart; its CRDs applied to the lab (server-side) so the apiserver knows them."""
    chart = lab.karpenter_crd_chart()
    helm = lab.bin_dir(build=False) / "helm"
    rendered = subprocess.run([str(helm), "template", "karpenter-crd", str(chart)], capture_output=True, text=True, check=True, timeout=120).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    lab.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=crd-validation-oracle", "-f", "-",
                stdin=yaml.safe_dump_all(documents))
    names = [d["metadata"]["name"] for d in documents if d["kind"] == "CustomResourceDefinition"]
    lab.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
    return rendered


def apiserver_accepts(kubectl, manifest):
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(manifest), check=False)
    return result.returncode == 0, (result.stdout + result.stderr).strip()


@pytest.mark.parametrize("row", sorted(ROWS), ids=lambda r: r.replace(" ", "-"))
def test_our_verdict_equals_the_apiservers(row, crd_chart, kubectl):
    kind, value = ROWS[row]
    manifest = manifest_of(kind, value)
    variable = "nodepools_list" if kind == "pool" else "nodepools_node_classes"
    ours = crd.crd_errors([manifest], crd_chart, variable)
    accepted, output = apiserver_accepts(kubectl, manifest)
    assert accepted == (ours == []), f"apiserver {'accepted' if accepted else 'refused'}: {output}\nours: {ours}"
    for error in ours:
        assert error.startswith(f"{variable}[0]"), error


def test_the_table_is_large_and_balanced():
    assert len(ROWS) >= 40
