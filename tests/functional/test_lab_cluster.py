"""The lab's Kubernetes side: real control plane, kwok nodes, metrics-server and the HPA. Karpenter runs once
the karpenter role installed it: test_zy_aws_karpenter.py."""
import json

import pytest

from .conftest import wait_until

NODEGROUP = "eks.amazonaws.com/nodegroup=ng-ondemand"


def _ready(node):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


def _deployment(name, namespace, replicas, cpu, memory, annotations=None):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "public.ecr.aws/nginx/nginx:1.24-alpine-slim",
                            "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}},
                        }
                    ]
                },
            },
        },
    }


@pytest.fixture
def namespace(kubectl, request):
    name = "labtest-" + request.node.name.replace("_", "-").lower()[:40].strip("-")
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=true", "--timeout=90s", check=False, timeout=120)


def _running_pods(kube_json, namespace, app):
    pods = kube_json("pods", "-n", namespace, "-l", f"app={app}")["items"]
    return [p for p in pods if p["status"].get("phase") == "Running" and p["spec"].get("nodeName")]


def test_server_reports_its_real_version(kubectl):
    version = json.loads(kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert version["gitVersion"] != "v0.0.0"
    assert (int(version["major"]), int(version["minor"].rstrip("+"))) >= (1, 34), version


def test_three_ready_on_demand_nodegroup_nodes(kube_json):
    nodes = kube_json("nodes", "-l", NODEGROUP)["items"]
    assert len(nodes) == 3
    for node in nodes:
        labels = node["metadata"]["labels"]
        assert _ready(node), node["metadata"]["name"]
        assert labels["eks.amazonaws.com/capacityType"] == "ON_DEMAND"
        assert labels["kubernetes.io/arch"] == "arm64"
        assert node["status"]["capacity"]["cpu"] == "4"
        assert node["status"]["capacity"]["memory"] == "16Gi"
        assert node["spec"]["providerID"].startswith("aws:///ap-southeast-1")
    assert len({n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes}) == 3


def test_metrics_api_lists_the_nodes(kubectl, kube_json):
    names = {n["metadata"]["name"] for n in kube_json("nodes", "-l", NODEGROUP)["items"]}
    served = json.loads(kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").stdout)["items"]
    assert names <= {item["metadata"]["name"] for item in served}


def test_deployment_pods_reach_running(kubectl, kube_json, namespace):
    kubectl("apply", "-f", "-", stdin=json.dumps(_deployment("web", namespace, 2, "100m", "64Mi")))
    pods = wait_until("2 Running pods", lambda: len(_running_pods(kube_json, namespace, "web")) == 2 or None, 60)
    assert pods


def test_hpa_scales_on_simulated_cpu_usage(kubectl, kube_json, namespace):
    # kwok reports 90m of CPU for each pod from this annotation; 90m of a 100m request is 90 %.
    deployment = _deployment("busy", namespace, 1, "100m", "64Mi", annotations={"kwok.x-k8s.io/usage-cpu": "90m"})
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "busy", "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "busy"},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}},
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment, hpa]}))
    wait_until(
        "the HPA to scale busy to 4 replicas",
        lambda: kube_json("deployment", "busy", "-n", namespace)["spec"]["replicas"] == 4 or None,
        120,
    )
    status = kube_json("hpa", "busy", "-n", namespace)["status"]
    assert status["currentMetrics"][0]["resource"]["current"]["averageUtilization"] >= 50
