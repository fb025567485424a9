"""Event-driven remediation on the lab: events injected the way AWS delivers them, the real ansible-rulebook
with our SQS source, the remediation playbooks, and their effect on the cluster and the queues."""
import json
import random
import string
import time

import pytest
import yaml

from lab import events as lab_events
from lab.rulebook import Rulebook

from .conftest import REPO, changed, karpenter_counter, run_playbook, wait_until

EVENTS_QUEUE = "eksworkshop-cluster-events"
COST_QUEUE = "eksworkshop-cost-events"
DLQ = "eksworkshop-cluster-events-dlq"


@pytest.fixture(scope="module")
def stack(lab):
    run_playbook("site.yml")
    run_playbook("event_bus.yml")
    yield
    run_playbook("teardown.yml", check=False)


@pytest.fixture(scope="module")
def rulebook(stack, lab, tmp_path_factory):
    runner = Rulebook(tmp_path_factory.mktemp("rulebook") / "rulebook.log")
    runner.start()
    yield runner
    runner.stop()
    print(runner.log()[-5000:])


@pytest.fixture
def queues(aws):
    sqs = aws("sqs")
    urls = {name: sqs.get_queue_url(QueueName=name)["QueueUrl"] for name in (EVENTS_QUEUE, COST_QUEUE, DLQ)}

    def counts(name):
        attributes = sqs.get_queue_attributes(QueueUrl=urls[name], AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    return {"sqs": sqs, "urls": urls, "counts": counts}


def node_events(kube_json, node, reason):
    items = kube_json("events", "-n", "default", "--field-selector", f"involvedObject.kind=Node,involvedObject.name={node}")["items"]
    return [e for e in items if e["reason"] == reason]


def pods_on(kube_json, node):
    pods = kube_json("pods", "-A", "--field-selector", f"spec.nodeName={node}")["items"]
    return [p for p in pods if not any(o["kind"] == "DaemonSet" for o in p["metadata"].get("ownerReferences") or [])
            and not p["metadata"].get("deletionTimestamp")]


def fake_node(kubectl, name, instance_id, labels=None):
    """A kwok-managed node standing for one more EC2 instance (kwok keeps it Ready)."""
    node = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"kubernetes.io/hostname": name, "type": "kwok", "eks-autoscaling-test": "true", **(labels or {})}},
        "spec": {"providerID": f"aws:///ap-southeast-1a/{instance_id}",
                 # Nothing of the tutorial lands on these.
                 "taints": [{"key": "eks-autoscaling-test", "value": "true", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}, "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(node))


def instance_of(kube_json, node):
    return kube_json("node", node)["spec"]["providerID"].rsplit("/", 1)[-1]


def inject(lab, kind, **kwargs):
    return lab_events.inject(lab.AWS_ENDPOINT, kind, **kwargs)


def test_spot_warning_cordons_and_drains_the_node_and_acknowledges(lab, kubectl, kube_json, queues, rulebook):
    # A node with a workload on it: the demo app's pods spread over the nodegroup.
    node = next(n["metadata"]["name"] for n in kube_json("nodes", "-l", "eks.amazonaws.com/capacityType=ON_DEMAND")["items"]
                if pods_on(kube_json, n["metadata"]["name"]))
    started = time.time()
    inject(lab, "spot-interruption", node=node)
    wait_until("the node cordoned", lambda: kube_json("node", node)["spec"].get("unschedulable"), 120, interval=0.5)
    cordoned_after = time.time() - started
    wait_until("the node drained", lambda: not pods_on(kube_json, node), 120)
    wait_until("a SpotInterruptionDrained Event on the node", lambda: node_events(kube_json, node, "SpotInterruptionDrained"), 60)
    wait_until("the message acknowledged", lambda: queues["counts"](EVENTS_QUEUE) == (0, 0), 60)
    assert rulebook.alive()
    assert cordoned_after < 120  # the warning's notice
    kubectl("uncordon", node)


def test_rebalance_recommendation_only_cordons(lab, kubectl, kube_json, queues, rulebook):
    node = next(n["metadata"]["name"] for n in kube_json("nodes", "-l", "eks.amazonaws.com/capacityType=ON_DEMAND")["items"]
                if pods_on(kube_json, n["metadata"]["name"]))
    pods_before = {p["metadata"]["name"] for p in pods_on(kube_json, node)}
    inject(lab, "rebalance-recommendation", node=node)
    wait_until("the node cordoned", lambda: kube_json("node", node)["spec"].get("unschedulable"), 120, interval=0.5)
    wait_until("a RebalanceCordoned Event", lambda: node_events(kube_json, node, "RebalanceCordoned"), 60)
    wait_until("the message acknowledged", lambda: queues["counts"](EVENTS_QUEUE) == (0, 0), 60)
    assert {p["metadata"]["name"] for p in pods_on(kube_json, node)} == pods_before
    kubectl("uncordon", node)


def test_terminated_instance_leaves_no_node_behind_and_running_needs_nothing(lab, kubectl, kube_json, queues, rulebook):
    fake_node(kubectl, "ip-10-42-0-1.ap-southeast-1.compute.internal", "i-0feedfacecafe0001")
    inject(lab, "instance-state-change", instance_id="i-0feedfacecafe0001", state="running")
    wait_until("the running notice acknowledged", lambda: queues["counts"](EVENTS_QUEUE) == (0, 0), 90)
    assert kube_json("nodes", "-l", "eks-autoscaling-test")["items"]
    inject(lab, "instance-state-change", instance_id="i-0feedfacecafe0001", state="terminated")
    wait_until("the node object gone", lambda: not kube_json("nodes", "-l", "eks-autoscaling-test")["items"], 120)
    wait_until("the message acknowledged", lambda: queues["counts"](EVENTS_QUEUE) == (0, 0), 60)


def test_scheduled_change_naming_two_instances_drains_both_nodes(lab, kubectl, kube_json, aws, queues, rulebook):
    nodes = {"ip-10-42-5-1.ap-southeast-1.compute.internal": "i-00feed00000000001", "ip-10-42-5-2.ap-southeast-1.compute.internal": "i-00feed00000000002"}
    for name, instance_id in nodes.items():
        fake_node(kubectl, name, instance_id)
    try:
        # One AWS Health retirement notice for both instances, as AWS sends it for a degraded host.
        entry = lab_events.ec2_event("scheduled-change", "i-00feed00000000001", "123456789012", "ap-southeast-1a")
        detail = json.loads(entry["Detail"])
        detail["affectedEntities"] = [{"entityValue": i, "status": "PENDING"} for i in nodes.values()]
        entry.update(Detail=json.dumps(detail), Resources=list(nodes.values()), EventBusName="default")
        assert aws("events").put_events(Entries=[entry])["FailedEntryCount"] == 0
        for name in nodes:
            wait_until(f"{name} drained before the window", lambda n=name: node_events(kube_json, n, "ScheduledChangeDrained"), 120, interval=0.5)
            assert kube_json("node", name)["spec"].get("unschedulable") is True
        wait_until("the notice acknowledged", lambda: queues["counts"](EVENTS_QUEUE) == (0, 0), 60)
    finally:
        kubectl("delete", "nodes", "-l", "eks-autoscaling-test", "--wait=false", check=False)


CAPACITY_RESERVATION = "EC2 Capacity Reservation Instance Interruption Warning"


def test_the_rulebook_queue_gets_the_five_event_types_of_karpenters_queue(aws, stack):
    events_client = aws("events")

    def patterns(prefix):
        rules = events_client.list_rules(NamePrefix=prefix)["Rules"]
        return {r["Name"].removeprefix(prefix): json.loads(r["EventPattern"]) for r in rules}

    ours = patterns("EDA-eksworkshop-")
    assert ours == patterns("Karpenter-eksworkshop-")
    assert ours["CapacityReservationInterruption"] == {"source": ["aws.ec2"], "detail-type": [CAPACITY_RESERVATION]}
    assert sorted(ours) == ["CapacityReservationInterruption", "InstanceStateChange", "Rebalance", "ScheduledChange", "SpotInterruption"]
    url = aws("sqs").get_queue_url(QueueName=EVENTS_QUEUE)["QueueUrl"]
    arn = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for suffix in ours:
        assert [t["Arn"] for t in events_client.list_targets_by_rule(Rule=f"EDA-eksworkshop-{suffix}")["Targets"]] == [arn]


def test_capacity_reservation_warning_reaches_both_queues_and_the_rulebook_drains_its_node(lab, kubectl, kube_json, aws, queues, rulebook):
    node = next(n["metadata"]["name"] for n in kube_json("nodes", "-l", "eks.amazonaws.com/capacityType=ON_DEMAND")["items"]
                if pods_on(kube_json, n["metadata"]["name"]))
    instance_id = instance_of(kube_json, node)
    received = karpenter_counter("karpenter_interruption_received_messages_total", message_type="capacity_reservation_interrupted")
    started = time.time()
    inject(lab, "capacity-reservation-interruption", node=node)
    wait_until("the node cordoned", lambda: kube_json("node", node)["spec"].get("unschedulable"), 120, interval=0.5)
    cordoned_after = time.time() - started
    wait_until("the node drained", lambda: not pods_on(kube_json, node), 120)
    (recorded,) = wait_until("a CapacityReservationInterruptionDrained Event on the node",
                             lambda: node_events(kube_json, node, "CapacityReservationInterruptionDrained"), 60)
    assert recorded["type"] == "Warning" and instance_id in recorded["message"]
    assert recorded["message"].startswith("capacity_reservation_interruption for ")
    wait_until("the message acknowledged", lambda: queues["counts"](EVENTS_QUEUE) == (0, 0), 60)
    assert rulebook.alive()
    assert cordoned_after < 120  # the warning's notice
    # Karpenter's queue got its own copy through its own fifth rule, and the real controller parsed it as
    # what it is (the instance is the nodegroup's, so Karpenter leaves the node to the rulebook).
    wait_until("Karpenter to receive the warning", lambda: karpenter_counter(
        "karpenter_interruption_received_messages_total", message_type="capacity_reservation_interrupted") == received + 1, 30)
    kubectl("uncordon", node)


def assert_burst_drained_in_a_few_runs(lab, kubectl, kube_json, queues, event, reason, names, copies, max_runs, timeout, drain_timeout):
    for name, instance_id in names.items():
        fake_node(kubectl, name, instance_id)
    try:
        lab_events.inject_burst(lab.AWS_ENDPOINT, event, list(names.values()), copies=copies)
        wait_until(f"all {len(names)} nodes cordoned", lambda: all(n["spec"].get("unschedulable") for n in kube_json("nodes", "-l", "eks-autoscaling-test")["items"]), timeout, interval=2)
        wait_until("no message left", lambda: queues["counts"](EVENTS_QUEUE) == (0, 0), drain_timeout, interval=2)
        drained = [e for n in names for e in node_events(kube_json, n, reason)]
        assert sorted(e["involvedObject"]["name"] for e in drained) == sorted(names), "each node drained exactly once"
        # Events are named <node>.<hash of the message id>: the source gathered the burst into a few events.
        runs = {e["metadata"]["name"].rsplit(".", 1)[1] for e in drained}
        assert len(runs) <= max_runs, f"{len(runs)} remediation runs for {len(names)} nodes: the burst was not batched"
        assert queues["counts"](DLQ) == (0, 0), "nothing dead-lettered"
    finally:
        kubectl("delete", "nodes", "-l", "eks-autoscaling-test", "--wait=false", check=False)


def test_a_burst_of_capacity_reservation_warnings_is_drained_in_a_few_runs(lab, kubectl, kube_json, queues, rulebook):
    # A reclaimed reservation: warnings for all its instances at once, three copies each.
    names = {f"ip-10-42-6-{index}.ap-southeast-1.compute.internal": f"i-0c7c7c7c7c7c{index:05d}" for index in range(20)}
    assert_burst_drained_in_a_few_runs(lab, kubectl, kube_json, queues, "capacity-reservation-interruption",
                                       "CapacityReservationInterruptionDrained", names, copies=3, max_runs=6, timeout=300, drain_timeout=120)


def test_with_drain_owner_karpenter_a_capacity_reservation_warning_is_recorded_counted_and_notified_only(
        lab, kubectl, kube_json, queues, rulebook, tmp_path):
    node, instance_id = "ip-10-42-7-1.ap-southeast-1.compute.internal", "i-00c7c7c7c7c7c9001"
    fake_node(kubectl, node, instance_id, labels={
        "karpenter.sh/nodepool": "default", "karpenter.sh/capacity-type": "reserved", "node.kubernetes.io/instance-type": "r6g.xlarge"})
    vars_file = tmp_path / "karpenter.yml"
    vars_file.write_text(json.dumps({"events_queue_name": EVENTS_QUEUE, "cost_queue_name": COST_QUEUE, "aws_region": "ap-southeast-1",
                                     "drain_owner": "karpenter", "spot_review_interval_seconds": 3600}))
    lab_vars = rulebook.vars_file
    rulebook.stop()
    rulebook.vars_file = str(vars_file)
    rulebook.start()
    try:
        inject(lab, "capacity-reservation-interruption", instance_id=instance_id)
        (recorded,) = wait_until("a CapacityReservationInterruptionWarning Event on the node",
                                 lambda: node_events(kube_json, node, "CapacityReservationInterruptionWarning"), 180, interval=1)
        assert recorded["message"].endswith("left to Karpenter's interruption handling")
        wait_until("the message acknowledged", lambda: queues["counts"](EVENTS_QUEUE) == (0, 0), 60)
        assert not kube_json("node", node)["spec"].get("unschedulable"), "Karpenter drains, not the rulebook"
        counted = json.loads(kube_json("nodepool", "default")["metadata"]["annotations"]["eks-autoscaling.io/spot-interruptions"])
        assert [(r["type"], r["id"]) for r in counted if r["id"] == instance_id] == [("r6g.xlarge", instance_id)]
    finally:
        rulebook.stop()
        rulebook.vars_file = lab_vars
        rulebook.start()
        kubectl("annotate", "nodepool", "default", "eks-autoscaling.io/spot-interruptions-", check=False)
        kubectl("delete", "node", node, "--wait=false", check=False)


def _limits(kube_json):
    pool = kube_json("nodepool", "default")
    return pool["spec"].get("limits"), pool["metadata"].get("annotations") or {}


def test_billing_alarm_caps_nodepool_limits_and_ok_restores_them_exactly(lab, kube_json, queues, rulebook):
    before, _ = _limits(kube_json)
    assert before == {"cpu": "1000", "memory": "1000Gi"}
    inject(lab, "billing-alarm", state="ALARM")
    capped = wait_until("limits capped", lambda: (lambda l: l if l[0] != before else None)(_limits(kube_json)), 120, interval=0.5)
    provisioned = kube_json("nodepool", "default").get("status", {}).get("resources", {})
    assert capped[0] == {"cpu": provisioned.get("cpu", "0"), "memory": provisioned.get("memory", "0")}
    assert json.loads(capped[1]["eks-autoscaling.io/limits-before-cost-cap"]) == before
    wait_until("the alarm acknowledged", lambda: queues["counts"](COST_QUEUE) == (0, 0), 60)
    inject(lab, "billing-alarm", state="OK")
    wait_until("limits restored", lambda: _limits(kube_json)[0] == before or None, 120, interval=0.5)
    assert not any(k.startswith("eks-autoscaling.io/") for k in _limits(kube_json)[1])
    wait_until("the OK acknowledged", lambda: queues["counts"](COST_QUEUE) == (0, 0), 60)


def test_budget_alert_caps_and_a_restore_by_hand_undoes_it(lab, kube_json, queues, rulebook, tmp_path):
    before, _ = _limits(kube_json)
    inject(lab, "budget-alert")  # plain text, as AWS Budgets sends it
    wait_until("limits capped", lambda: _limits(kube_json)[0] != before or None, 120, interval=0.5)
    wait_until("the budget alert acknowledged", lambda: queues["counts"](COST_QUEUE) == (0, 0), 60)
    # Budgets never send a recovery: the restore playbook, by hand, with an event file.
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({"remediation_event": {"kind": "budget", "budget_name": "eksworkshop-monthly"}}))
    run_playbook("remediation/remediate.yml", "-e", "remediation_action=restore_costs", "-e", f"@{event_file}")
    assert _limits(kube_json)[0] == before
    # Idempotent, by hand too.
    assert changed(run_playbook("remediation/remediate.yml", "-e", "remediation_action=restore_costs", "-e", f"@{event_file}")) == 0


def test_a_site_rerun_during_a_cost_cap_keeps_it_and_the_restore_gives_what_the_inventory_asks_then(lab, kube_json, tmp_path, stack):
    """One writer per field: the nodepools and hpa roles keep what a cap holds; the cap's restore brings back the
    inventory's values as they are when it runs, not as they were when the cap began."""
    before, _ = _limits(kube_json)
    max_replicas = kube_json("hpa", "-n", "nlb-app-karpenter", "nginx-deployment")["spec"]["maxReplicas"]
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({"remediation_event": {"kind": "budget", "budget_name": "eksworkshop-monthly",
                                                            "dedup_key": "budget:eksworkshop-monthly"},
                                      "remediation_cost_cap_hpas": True}))
    pools = yaml.safe_load((REPO / "roles" / "nodepools" / "defaults" / "main.yml").read_text())["nodepools_list"]
    raised = [{**pool, "limits": {**pool["limits"], "cpu": "2000"}} for pool in pools]
    try:
        run_playbook("remediation/remediate.yml", "-e", "remediation_action=cap_costs", "-e", f"@{event_file}")
        capped, _ = _limits(kube_json)
        capped_replicas = kube_json("hpa", "-n", "nlb-app-karpenter", "nginx-deployment")["spec"]["maxReplicas"]
        assert capped != before and capped_replicas < max_replicas
        rerun = run_playbook("site.yml", "--tags", "nodepools,hpa")
        assert "NodePool/default: spec.limits is held by budget:eksworkshop-monthly" in rerun.stdout, rerun.stdout[-3000:]
        assert "nlb-app-karpenter/nginx-deployment: spec.maxReplicas is held by budget:eksworkshop-monthly" in rerun.stdout
        assert _limits(kube_json)[0] == capped
        # The first rerun takes the held fields' annotations over (server-side apply ownership); then nothing changes.
        assert changed(run_playbook("site.yml", "--tags", "nodepools,hpa")) == 0
        assert kube_json("hpa", "-n", "nlb-app-karpenter", "nginx-deployment")["spec"]["maxReplicas"] == capped_replicas
        # The inventory raises the CPU limit while the cap holds: still capped, and the restore gives the new limit.
        raise_run = run_playbook("site.yml", "--tags", "nodepools", extra={"nodepools_list": raised})
        assert changed(raise_run) == 1 and _limits(kube_json)[0] == capped
        run_playbook("remediation/remediate.yml", "-e", "remediation_action=restore_costs", "-e", f"@{event_file}")
        assert _limits(kube_json)[0] == {**before, "cpu": "2000"}
        assert kube_json("hpa", "-n", "nlb-app-karpenter", "nginx-deployment")["spec"]["maxReplicas"] == max_replicas
    finally:
        run_playbook("remediation/remediate.yml", "-e", "remediation_action=restore_costs", "-e", f"@{event_file}")
        run_playbook("site.yml", "--tags", "nodepools")
    limits, annotations = _limits(kube_json)
    assert limits == before and not any(key.startswith("eks-autoscaling.io/") for key in annotations)


def test_repeated_spot_interruptions_widen_the_pool_and_quiet_reverts(lab, kubectl, kube_json, queues, rulebook):
    pool_before = kube_json("nodepool", "default")["spec"]
    # Three spot nodes of one instance type in the project's NodePool, each interrupted once.
    names = [f"ip-10-42-1-{index}.ap-southeast-1.compute.internal" for index in range(3)]
    for index, name in enumerate(names):
        fake_node(kubectl, name, f"i-0deadbeef0000000{index}", labels={
            "karpenter.sh/nodepool": "default", "karpenter.sh/capacity-type": "spot", "node.kubernetes.io/instance-type": "m6g.xlarge"})
    try:
        for index in range(3):
            inject(lab, "spot-interruption", instance_id=f"i-0deadbeef0000000{index}")
        wait_until("all three drained", lambda: all(node_events(kube_json, n, "SpotInterruptionDrained") for n in names), 180)
        pool = kube_json("nodepool", "default")
        types = next(r["values"] for r in pool["spec"]["template"]["spec"]["requirements"] if r["key"] == "node.kubernetes.io/instance-type")
        assert types == ["m6g.xlarge", "r6g.xlarge", "c6g.2xlarge", "m7g.xlarge", "r7g.xlarge", "c7g.2xlarge", "m6g.2xlarge", "r6g.2xlarge"]
        assert "eks-autoscaling.io/spot-widened-at" in pool["metadata"]["annotations"]
        wait_until("the messages acknowledged", lambda: queues["counts"](EVENTS_QUEUE) == (0, 0), 60)
        # The review runs on a timer in the rulebook; by hand here with no quiet period left.
        run_playbook("remediation/remediate.yml", "-e", "remediation_action=review_spot_capacity", "-e", "remediation_spot_quiet_minutes=0")
        reverted = kube_json("nodepool", "default")
        assert reverted["spec"]["template"] == pool_before["template"]
        assert not any(k.startswith("eks-autoscaling.io/") for k in reverted["metadata"].get("annotations") or {})
    finally:
        kubectl("delete", "nodes", "-l", "eks-autoscaling-test", "--wait=false", check=False)


def test_a_burst_of_500_duplicate_warnings_for_50_nodes_drains_each_node_once(lab, kubectl, kube_json, queues, rulebook):
    # Ten copies of each warning, interleaved, as EventBridge retries and overlapping producers deliver them.
    names = {f"ip-10-42-2-{index}.ap-southeast-1.compute.internal": f"i-0b0b0b0b0b0b{index:05d}" for index in range(50)}
    assert_burst_drained_in_a_few_runs(lab, kubectl, kube_json, queues, "spot-interruption", "SpotInterruptionDrained",
                                       names, copies=10, max_runs=10, timeout=900, drain_timeout=300)


def test_killed_mid_remediation_the_event_is_handled_after_restart(lab, kubectl, kube_json, queues, rulebook):
    node = "ip-10-42-3-1.ap-southeast-1.compute.internal"
    fake_node(kubectl, node, "i-00c0ffee000000001")
    # A pod the drain cannot evict while its PodDisruptionBudget allows no disruption: the remediation
    # is certainly running (node cordoned, eviction refused) when the rulebook is killed.
    guarded = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "guarded", "namespace": "default"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "guarded"}},
                  "template": {"metadata": {"labels": {"app": "guarded"}},
                               "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                                        "tolerations": [{"key": "eks-autoscaling-test", "operator": "Exists"}],
                                        "containers": [{"name": "app", "image": "public.ecr.aws/nginx/nginx:1.24-alpine-slim"}]}}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "guarded", "namespace": "default"},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}},
    ]}
    kubectl("apply", "-f", "-", stdin=json.dumps(guarded))
    try:
        wait_until("the guarded pod running", lambda: [p for p in kube_json("pods", "-n", "default", "-l", "app=guarded")["items"]
                                                       if p["status"].get("phase") == "Running"], 60)
        inject(lab, "spot-interruption", instance_id="i-00c0ffee000000001")
        wait_until("the drain under way", lambda: kube_json("node", node)["spec"].get("unschedulable"), 60, interval=0.2)
        rulebook.kill()
        assert sum(queues["counts"](EVENTS_QUEUE)) == 1, "the message must survive the crash"
        assert not node_events(kube_json, node, "SpotInterruptionDrained")
        kubectl("delete", "pdb", "guarded", "-n", "default")
        rulebook.start()
        # The message comes back once its visibility lapses, and the restarted rulebook handles it.
        wait_until("the node drained after the restart", lambda: node_events(kube_json, node, "SpotInterruptionDrained"), 240, interval=2)
        wait_until("the message acknowledged", lambda: queues["counts"](EVENTS_QUEUE) == (0, 0), 60)
        assert len(node_events(kube_json, node, "SpotInterruptionDrained")) == 1
        assert queues["counts"](DLQ) == (0, 0)
    finally:
        kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false", stdin=json.dumps(guarded), check=False)
        kubectl("delete", "node", node, "--wait=false", check=False)


def test_a_remediation_run_by_hand_posts_to_the_webhook_and_reruns_unchanged(kubectl, kube_json, tmp_path):
    import http.server
    import threading

    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    node = "ip-10-42-4-1.ap-southeast-1.compute.internal"
    fake_node(kubectl, node, "i-00abcabcabc000001")
    try:
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"ansible_eda": {"event": {
            "kind": "rebalance_recommendation", "instance_id": "i-00abcabcabc000001", "time": "2026-11-27T12:00:00Z",
            "sqs": {"message_id": "by-hand-1"}}}}))
        hook = f"remediation_webhook_url=http://127.0.0.1:{server.server_port}/hook"
        run_playbook("remediation/remediate.yml", "-e", "remediation_action=cordon_node", "-e", f"@{event}", "-e", hook)
        assert kube_json("node", node)["spec"].get("unschedulable") is True
        assert [e["reason"] for e in node_events(kube_json, node, "RebalanceCordoned")] == ["RebalanceCordoned"]
        assert received and received[0]["reason"] == "RebalanceCordoned" and received[0]["objects"] == [node]
        assert "i-00abcabcabc000001" in received[0]["text"]
        assert changed(run_playbook("remediation/remediate.yml", "-e", "remediation_action=cordon_node", "-e", f"@{event}")) == 0
        assert len(node_events(kube_json, node, "RebalanceCordoned")) == 1
    finally:
        server.shutdown()
        kubectl("delete", "node", node, "--wait=false", check=False)


def test_a_drain_waits_for_the_pod_disruption_budget_and_evicts_once_it_allows(kubectl, kube_json, tmp_path):
    """The PodDisruptionBudget refuses the eviction while the app has one replica; the drain keeps trying, and
    once a second replica is ready on the other node the budget allows it and the drain finishes."""
    import concurrent.futures

    draining, spare = "ip-10-42-5-1.ap-southeast-1.compute.internal", "ip-10-42-5-2.ap-southeast-1.compute.internal"
    fake_node(kubectl, draining, "i-00d0d0d0d0d0d0001")
    app = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "budgeted", "namespace": "default"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "budgeted"}},
                  "template": {"metadata": {"labels": {"app": "budgeted"}},
                               "spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                                   {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [draining, spare]}]}]}}},
                                        "tolerations": [{"key": "eks-autoscaling-test", "operator": "Exists"}],
                                        "containers": [{"name": "app", "image": "public.ecr.aws/nginx/nginx:1.24-alpine-slim"}]}}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "budgeted", "namespace": "default"},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "budgeted"}}}},
    ]}
    kubectl("apply", "-f", "-", stdin=json.dumps(app))
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"remediation_event": {
        "kind": "spot_interruption", "instance_id": "i-00d0d0d0d0d0d0001", "time": "2026-11-28T00:00:00Z",
        "sqs": {"message_id": "budget-wait-1"}}}))
    try:
        # The only node the pod can run on, until the spare comes.
        (first,) = wait_until("the pod running on the node to drain", lambda: [
            p for p in kube_json("pods", "-n", "default", "-l", "app=budgeted")["items"] if p["status"].get("phase") == "Running"], 60)
        assert first["spec"]["nodeName"] == draining
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            drain = pool.submit(run_playbook, "remediation/remediate.yml", "-e", "remediation_action=drain_node", "-e", f"@{event}", check=False)
            wait_until("the node cordoned", lambda: kube_json("node", draining)["spec"].get("unschedulable"), 60, interval=0.5)
            # Refused and tried again: still running, the pod still there.
            time.sleep(5)
            assert not drain.done(), drain.result().stdout[-3000:] if drain.done() else ""
            assert kube_json("pod", first["metadata"]["name"], "-n", "default")["spec"]["nodeName"] == draining
            fake_node(kubectl, spare, "i-00d0d0d0d0d0d0002")
            kubectl("scale", "deployment", "budgeted", "-n", "default", "--replicas=2")
            result = drain.result(timeout=120)
        assert result.returncode == 0, result.stdout[-4000:]
        pods = kube_json("pods", "-n", "default", "-l", "app=budgeted")["items"]
        assert first["metadata"]["uid"] not in {p["metadata"]["uid"] for p in pods}
        assert all(p["spec"].get("nodeName") != draining for p in pods)
        assert len(node_events(kube_json, draining, "SpotInterruptionDrained")) == 1
        assert changed(run_playbook("remediation/remediate.yml", "-e", "remediation_action=drain_node", "-e", f"@{event}")) == 0
    finally:
        kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false", stdin=json.dumps(app), check=False)
        kubectl("delete", "node", draining, spare, "--wait=false", check=False)


def test_unknown_and_malformed_bodies_never_stop_the_rulebook(lab, queues, rulebook):
    sqs, url = queues["sqs"], queues["urls"][EVENTS_QUEUE]
    rng = random.Random(1000)
    bodies = []
    for index in range(1000):
        shape = index % 5
        if shape == 0:
            bodies.append("".join(rng.choice(string.printable) for _ in range(rng.randint(1, 200))))
        elif shape == 1:
            bodies.append(json.dumps({"source": "aws.ec2", "detail-type": "EC2 AMI State Change", "detail": {"n": index}}))
        elif shape == 2:
            bodies.append(json.dumps({"Type": "Notification", "Message": "{not json" + str(index)}))
        elif shape == 3:
            bodies.append(json.dumps([index, None, {"detail": []}]))
        else:
            bodies.append(json.dumps({"source": "aws.ec2", "detail-type": "EC2 Spot Instance Interruption Warning", "detail": {"instance-id": 7}}))
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])])
    wait_until("all 1000 acknowledged or dead-lettered",
               lambda: queues["counts"](EVENTS_QUEUE) == (0, 0) or None, 300, interval=2)
    assert rulebook.alive(), rulebook.log()[-3000:]
