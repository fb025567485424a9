"""The hpa role's filters: validation names the bad field; the manifest is what the tutorial's kubectl autoscale makes."""
import pytest
import yaml

from ansible_collections.eks_autoscaling.core.plugins.filter.hpa import hpa_errors, hpa_manifest

from tests.paths import REPO

TUTORIAL = {
    "name": "nginx-deployment",
    "namespace": "nlb-app-karpenter",
    "target": {"kind": "Deployment", "name": "nginx-deployment"},
    "min_replicas": 3,
    "max_replicas": 12,
    "cpu_utilization": 10,
}


def _with(**changes):
    item = dict(TUTORIAL)
    for key, value in changes.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item


def test_the_role_default_is_the_tutorial_autoscaler_and_valid():
    defaults = yaml.safe_load((REPO / "roles" / "hpa" / "defaults" / "main.yml").read_text())
    assert defaults["hpa_autoscalers"] == [TUTORIAL]
    assert hpa_errors(defaults["hpa_autoscalers"]) == []


def test_manifest_matches_kubectl_autoscale_cpu_percent_10_min_3_max_12():
    manifest = hpa_manifest(TUTORIAL)
    assert manifest["apiVersion"] == "autoscaling/v2"
    assert manifest["metadata"]["name"] == "nginx-deployment"
    assert manifest["metadata"]["namespace"] == "nlb-app-karpenter"
    assert manifest["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx-deployment"},
        "minReplicas": 3,
        "maxReplicas": 12,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 10}}}],
    }


def test_manifest_renders_memory_and_behavior_in_camel_case():
    item = _with(memory_utilization=70, behavior={
        "scale_up": {"stabilization_window_seconds": 0, "policies": [{"type": "Pods", "value": 4, "period_seconds": 15}]},
        "scale_down": {"stabilization_window_seconds": 30, "select_policy": "Min",
                       "policies": [{"type": "Percent", "value": 50, "period_seconds": 15}]},
    })
    spec = hpa_manifest(item)["spec"]
    assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu", "memory"]
    assert spec["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 30, "selectPolicy": "Min", "policies": [{"type": "Percent", "value": 50, "periodSeconds": 15}]},
    }


@pytest.mark.parametrize("item, message", [
    (_with(min_replicas=0), "hpa_autoscalers[0].min_replicas must be an integer of at least 1, got 0"),
    (_with(min_replicas=13), "hpa_autoscalers[0].min_replicas (13) must not be greater than max_replicas (12)"),
    (_with(max_replicas="12"), "hpa_autoscalers[0].max_replicas must be an integer of at least 1"),
    (_with(cpu_utilization=0), "hpa_autoscalers[0].cpu_utilization must be an integer percentage from 1 to 100, got 0"),
    (_with(cpu_utilization=101), "hpa_autoscalers[0].cpu_utilization must be an integer percentage from 1 to 100, got 101"),
    (_with(memory_utilization=True), "hpa_autoscalers[0].memory_utilization must be an integer percentage"),
    (_with(cpu_utilization=None), "hpa_autoscalers[0] needs cpu_utilization or memory_utilization"),
    (_with(target={"kind": "CronJob", "name": "x"}), "hpa_autoscalers[0].target.kind must be one of Deployment, StatefulSet, ReplicaSet, got 'CronJob'"),
    (_with(target={"kind": "Deployment"}), "hpa_autoscalers[0].target.name is required"),
    (_with(target=None), "hpa_autoscalers[0].target is required"),
    (_with(namespace="Bad_NS"), "hpa_autoscalers[0].namespace is required and must be a DNS label"),
    (_with(name=None), "hpa_autoscalers[0].name is required"),
    (_with(min_replica=2), "hpa_autoscalers[0].min_replica is not a known field"),
    (_with(behavior={"scale_up": {"policies": [{"type": "Nodes", "value": 1, "period_seconds": 15}]}}),
     "hpa_autoscalers[0].behavior.scale_up.policies[0].type must be one of Pods, Percent, got 'Nodes'"),
    (_with(behavior={"scale_down": {"policies": [{"type": "Pods", "value": 0, "period_seconds": 15}]}}),
     "hpa_autoscalers[0].behavior.scale_down.policies[0].value must be an integer above 0"),
    (_with(behavior={"scale_down": {"policies": [{"type": "Pods", "value": 1, "period_seconds": 3600}]}}),
     "hpa_autoscalers[0].behavior.scale_down.policies[0].period_seconds must be an integer from 1 to 1800"),
    (_with(behavior={"scale_down": {"stabilization_window_seconds": 7200}}),
     "hpa_autoscalers[0].behavior.scale_down.stabilization_window_seconds must be an integer from 0 to 3600"),
    (_with(behavior={"scale_down": {"select_policy": "Avg"}}), "hpa_autoscalers[0].behavior.scale_down.select_policy must be one of Max, Min, Disabled"),
    (_with(behavior={"scaleDown": {}}), "hpa_autoscalers[0].behavior.scaleDown is not a known field"),
])
def test_bad_autoscalers_are_refused_naming_the_field(item, message):
    errors = hpa_errors([item])
    assert any(message in error for error in errors), errors


def test_a_repeated_autoscaler_and_a_non_list_are_refused():
    assert hpa_errors([TUTORIAL, TUTORIAL]) == ["hpa_autoscalers[1] repeats HPA nlb-app-karpenter/nginx-deployment"]
    assert hpa_errors({"name": "x"}, "my_hpas") == ["my_hpas must be a list"]
