"""The tutorial end to end on the lab, through site.yml, the stage playbooks, load.yml and teardown.yml.

The tests run in file order and share one lab: check mode first (fresh lab), then converge and
idempotence, then the tutorial's replay, then teardown.
"""
import json
import subprocess
import threading

import pytest

from .conftest import changed, run_playbook, wait_until

APP_NS = "nlb-app-karpenter"
KARPENTER_NODES = "karpenter.sh/nodepool=default"
# The tutorial's HPA with a short scale-down window: Kubernetes' default waits 5 minutes of low load.
FAST_SCALE_DOWN = {"hpa_autoscalers": [{
    "name": "nginx-deployment", "namespace": APP_NS,
    "target": {"kind": "Deployment", "name": "nginx-deployment"},
    "min_replicas": 3, "max_replicas": 12, "cpu_utilization": 10,
    "behavior": {"scale_down": {"stabilization_window_seconds": 15, "policies": [{"type": "Percent", "value": 100, "period_seconds": 15}]}},
}]}


def helm_releases(lab_env):
    bins = lab_env["PATH"].split(":")[0]
    out = subprocess.run([f"{bins}/helm", "list", "-A", "-o", "json"], env=lab_env, capture_output=True, text=True, check=True).stdout
    return sorted(r["name"] for r in json.loads(out))


def ours_in_aws(aws):
    roles = sorted(r["RoleName"] for r in aws("iam").list_roles()["Roles"] if r["RoleName"].startswith("Karpenter"))
    # The tagging role's subnets and security groups (Karpenter tags the launch templates it makes too).
    tagged = sorted(t["ResourceId"] for t in aws("ec2").describe_tags(Filters=[
        {"Name": "key", "Values": ["karpenter.sh/discovery"]}, {"Name": "resource-type", "Values": ["subnet", "security-group"]}])["Tags"])
    queues = aws("sqs").list_queues().get("QueueUrls", [])
    rules = sorted(r["Name"] for r in aws("events").list_rules()["Rules"])
    entries = aws("eks").list_access_entries(clusterName="eksworkshop")["accessEntries"]
    return {"roles": roles, "tagged": tagged, "queues": queues, "rules": rules, "access_entries": entries}


def ours_in_cluster(kube_json, karpenter_objects):
    namespaces = sorted(n["metadata"]["name"] for n in kube_json("namespaces")["items"] if n["metadata"]["name"] in (APP_NS, "karpenter"))
    return {
        "namespaces": namespaces,
        "nodepools": karpenter_objects("nodepools"),
        "nodeclaims": karpenter_objects("nodeclaims"),
        "karpenter_nodes": [n["metadata"]["name"] for n in kube_json("nodes", "-l", "karpenter.sh/nodepool")["items"]],
        "hpas": [h["metadata"]["name"] for h in kube_json("hpa", "-A")["items"]],
    }


def replicas(kube_json):
    return kube_json("deployment", "nginx-deployment", "-n", APP_NS)["spec"]["replicas"]


def running_pods(kube_json):
    pods = kube_json("pods", "-n", APP_NS, "-l", "app.kubernetes.io/name=nginx")["items"]
    return [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def karpenter_nodes(kube_json):
    return kube_json("nodes", "-l", KARPENTER_NODES)["items"]


@pytest.fixture(scope="module")
def site(lab):
    yield
    # Whatever happened, leave nothing of ours for the next test file.
    run_playbook("teardown.yml", check=False)


def test_site_check_mode_on_a_fresh_lab_changes_nothing(lab_env, kube_json, aws, karpenter_objects, site):
    before = (ours_in_aws(aws), ours_in_cluster(kube_json, karpenter_objects), helm_releases(lab_env))
    result = run_playbook("site.yml", "--check", "--diff")
    assert changed(result) > 0
    assert (ours_in_aws(aws), ours_in_cluster(kube_json, karpenter_objects), helm_releases(lab_env)) == before


def test_site_converges_prints_the_summary_and_reruns_unchanged(lab_env, kube_json, site):
    result = run_playbook("site.yml")
    assert changed(result) > 0
    # Karpenter's CRDs are a release of their own, so an upgrade moves them too.
    assert helm_releases(lab_env) == ["karpenter", "karpenter-crd", "metrics-server"]
    # The YAML callback wraps long lines and doubles quotes inside its quoted scalars.
    summary = " ".join(result.stdout.split()).replace("''", "'")
    assert "HPA targets: ['nlb-app-karpenter/nginx-deployment Deployment/nginx-deployment cpu" in summary
    assert "/10% replicas" in summary and "(min 3, max 12)" in summary
    assert "app endpoint: pending (no load balancer address yet)" in summary
    assert "NodePools: ['default']" in summary
    service = kube_json("service", "service-nginx", "-n", APP_NS)
    assert service["spec"]["type"] == "LoadBalancer" and service["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb"
    assert service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    container = kube_json("deployment", "nginx-deployment", "-n", APP_NS)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "2", "memory": "4G"}
    # The HPA (min 3) owns the replica count; the rerun must leave it alone.
    wait_until("the HPA to hold the app at its minimum of 3", lambda: replicas(kube_json) == 3 or None, 60)
    assert changed(run_playbook("site.yml", "--check")) == 0
    assert changed(run_playbook("site.yml")) == 0
    assert replicas(kube_json) == 3


def test_bad_hpa_and_app_values_fail_before_any_change(lab_env, kube_json, site):
    def hpa_as_written():
        # Not resourceVersion: the HPA controller writes the status whenever new metrics come in.
        hpa = kube_json("hpa", "nginx-deployment", "-n", APP_NS)
        return hpa["metadata"].get("labels"), hpa["metadata"].get("annotations"), hpa["spec"]

    hpa_before = hpa_as_written()
    for extra, message in (
        ({"hpa_autoscalers": [{**FAST_SCALE_DOWN["hpa_autoscalers"][0], "min_replicas": 13}]},
         "hpa_autoscalers[0].min_replicas (13) must not be greater than max_replicas (12)"),
        ({"hpa_autoscalers": [{**FAST_SCALE_DOWN["hpa_autoscalers"][0], "cpu_utilization": 150}]},
         "hpa_autoscalers[0].cpu_utilization must be an integer percentage from 1 to 100, got 150"),
        ({"demo_app_cpu": "two"}, 'demo_app_cpu: "two" is not a Kubernetes quantity'),
    ):
        result = run_playbook("site.yml", extra=extra, check=False)
        assert result.returncode != 0 and message in result.stdout, result.stdout[-3000:]
        # Validation is the first play: nothing ran that could change anything.
        assert changed(result) == 0 and "PLAY [Karpenter on EKS]" not in result.stdout
    assert hpa_as_written() == hpa_before


def test_tutorial_replay_scale_out_consolidation_hpa_and_load(kube_json, site):
    # The tutorial scales by hand before it creates the HPA: take the HPA away for that part.
    run_playbook("autoscaling.yml", "--tags", "hpa", extra={"hpa_state": "absent"})
    run_playbook("autoscaling.yml", "--tags", "demo_app", extra={"demo_app_replicas": 1, "demo_app_wait": False})
    wait_until("1 replica", lambda: len(running_pods(kube_json)) == 1 or None, 120)

    # 1 -> 6 replicas: the nodegroup is full, Karpenter adds spot nodes from the project's NodePool.
    run_playbook("autoscaling.yml", "--tags", "demo_app", extra={"demo_app_replicas": 6})
    assert len(running_pods(kube_json)) == 6
    nodes = karpenter_nodes(kube_json)
    assert nodes
    for node in nodes:
        labels = node["metadata"]["labels"]
        assert labels["karpenter.sh/capacity-type"] == "spot"
        assert labels["kubernetes.io/arch"] == "arm64"
        assert labels["node.kubernetes.io/instance-type"] in {"m6g.xlarge", "r6g.xlarge", "c6g.2xlarge"}
        assert labels["intent"] == "apps"

    # Back to 1: consolidation removes the emptied Karpenter nodes.
    run_playbook("autoscaling.yml", "--tags", "demo_app", extra={"demo_app_replicas": 1})
    wait_until("consolidation to remove the Karpenter nodes", lambda: not karpenter_nodes(kube_json), 300, interval=5)

    # The HPA: at its minimum of 3 while there is no load.
    run_playbook("autoscaling.yml", "--tags", "hpa", extra=FAST_SCALE_DOWN)
    wait_until("the HPA to scale to its minimum of 3", lambda: replicas(kube_json) == 3 or None, 90)
    hpa = wait_until("the HPA to read CPU use", lambda: (lambda h: h if h["status"].get("currentMetrics") else None)(
        kube_json("hpa", "nginx-deployment", "-n", APP_NS)), 90, interval=2)
    assert hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] < 10

    # Load for a bounded time: the HPA goes to 12 and Karpenter adds nodes for the pods that do not fit.
    load = {}
    runner = threading.Thread(target=lambda: load.update(result=run_playbook("load.yml", extra={"load_generator_duration_seconds": 240}, check=False)))
    runner.start()
    try:
        wait_until("the HPA to scale to 12 under load", lambda: replicas(kube_json) == 12 or None, 200, interval=2)
        wait_until("12 Running pods, on new Karpenter nodes too", lambda: len(running_pods(kube_json)) >= 12 and karpenter_nodes(kube_json), 200, interval=2)
    finally:
        runner.join(timeout=400)
    assert load["result"].returncode == 0, load["result"].stdout[-3000:]
    template = kube_json("deployment", "nginx-deployment", "-n", APP_NS)["spec"]["template"]["metadata"]
    assert "kwok.x-k8s.io/usage-cpu" not in (template.get("annotations") or {}), "the load did not stop by itself"

    # Load over: back to 3, and Karpenter consolidates again.
    wait_until("the HPA to scale back to 3", lambda: replicas(kube_json) == 3 or None, 180, interval=2)
    wait_until("consolidation after the load", lambda: not karpenter_nodes(kube_json), 300, interval=5)


def test_teardown_leaves_nothing_of_ours_and_reruns_unchanged(lab_env, kube_json, aws, karpenter_objects, site):
    run_playbook("teardown.yml")
    assert ours_in_cluster(kube_json, karpenter_objects) == {"namespaces": [], "nodepools": [], "nodeclaims": [], "karpenter_nodes": [], "hpas": []}
    assert helm_releases(lab_env) == []
    assert ours_in_aws(aws) == {"roles": [], "tagged": [], "queues": [], "rules": [], "access_entries": []}
    assert changed(run_playbook("teardown.yml")) == 0
