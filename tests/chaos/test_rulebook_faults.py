"""The rulebook killed in the middle of a remediation of 100 spot interruption warnings, and started again:
none of the 100 is lost (at-least-once: each node drained, every message acknowledged, none dead-lettered).

The stack, the rulebook runner and the queue counters are the event remediation tests' own."""
import json

import pytest

from lab import events as lab_events
from tests.functional.conftest import wait_until
from tests.functional.test_event_remediation import DLQ, EVENTS_QUEUE, queues, rulebook, stack  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(1800)
WARNINGS = 100


def fake_nodes(names):
    """kwok-managed nodes standing for EC2 instances, tainted so that nothing lands on them; one apply."""
    return {"apiVersion": "v1", "kind": "List", "items": [{
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"kubernetes.io/hostname": name, "type": "kwok", "eks-autoscaling-chaos": "true"}},
        "spec": {"providerID": f"aws:///ap-southeast-1a/{instance_id}",
                 "taints": [{"key": "eks-autoscaling-chaos", "value": "true", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}, "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}},
    } for name, instance_id in names.items()]}


def drained(kube_json):
    """{node: how many SpotInterruptionDrained Events}."""
    items = kube_json("events", "-n", "default", "--field-selector", "reason=SpotInterruptionDrained,involvedObject.kind=Node")["items"]
    counts = {}
    for event in items:
        counts[event["involvedObject"]["name"]] = counts.get(event["involvedObject"]["name"], 0) + event.get("count", 1)
    return counts


def cordoned(kube_json):
    return [n["metadata"]["name"] for n in kube_json("nodes", "-l", "eks-autoscaling-chaos")["items"] if n["spec"].get("unschedulable")]


def test_killed_in_the_middle_of_100_remediations_none_is_lost_after_restart(lab, kubectl, kube_json, queues, rulebook):  # noqa: F811
    names = {f"ip-10-42-9-{index}.ap-southeast-1.compute.internal": f"i-0d0d0d0d0d0d{index:05d}" for index in range(WARNINGS)}
    kubectl("apply", "-f", "-", stdin=json.dumps(fake_nodes(names)), timeout=120)
    try:
        lab_events.inject_burst(lab.AWS_ENDPOINT, "spot-interruption", list(names.values()))
        # The remediation is under way (a node cordoned) and not finished (not all drained) when it dies.
        wait_until("a remediation under way", lambda: cordoned(kube_json), 300, interval=0.2)
        rulebook.kill()
        done_before = drained(kube_json)
        assert len(done_before) < WARNINGS, "the kill came after every remediation: nothing was in flight"
        waiting = sum(queues["counts"](EVENTS_QUEUE))
        assert waiting >= WARNINGS - len(done_before), f"{waiting} messages left for {WARNINGS - len(done_before)} nodes not drained"
        print(f"killed with {len(done_before)} of {WARNINGS} nodes drained and {waiting} messages in the queue")
        rulebook.start()
        # Messages of the killed run come back once their visibility lapses; the new rulebook handles them.
        wait_until(f"all {WARNINGS} nodes drained", lambda: len(drained(kube_json)) == WARNINGS, 900, interval=3)
        wait_until("every message acknowledged", lambda: queues["counts"](EVENTS_QUEUE) == (0, 0), 300, interval=2)
        assert sorted(drained(kube_json)) == sorted(names)
        assert sorted(cordoned(kube_json)) == sorted(names)
        assert queues["counts"](DLQ) == (0, 0), "nothing dead-lettered"
        assert rulebook.alive()
    finally:
        kubectl("delete", "nodes", "-l", "eks-autoscaling-chaos", "--wait=false", check=False)
