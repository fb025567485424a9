"""Spot warning -> node cordoned: Karpenter's own interruption handling and the rulebook, side by side.

    python -m bench.interruption_bench [--samples 10] [--scale-runs 3]

On a fresh lab with site.yml and event_bus.yml converged and the rulebook running as `make rulebook` runs
it (drain_owner: rulebook), samples alternate:

- native: a spot warning (PutEvents; EventBridge delivers it to the interruption queue and the rulebook's
  queue) for one of Karpenter's spot nodes; the clock stops when the real controller has tainted the node
  `karpenter.sh/disrupted:NoSchedule`, Karpenter's cordon. The next sample waits until the replacement
  runs the app's 6 pods again;
- rulebook: the same warning for a node that is not Karpenter's (a nodegroup-like kwok node); the clock
  stops when the rulebook's remediation has cordoned it (spec.unschedulable).

Alternating puts both under the same load. The rulebook also hears the native samples' warnings (both
queues get every warning, as on EKS) and cordons those nodes too; only Karpenter's taint is timed there,
and the next rulebook sample waits until the rulebook has finished with it.

It also times `kubectl scale --replicas=6` until 6 pods Running (Karpenter launching spot instances in the
AWS server that join as nodes) and back to 1 until Karpenter's nodes are gone, median of `scale-runs`.

Results go to bench/results/interruption.json with the command that produced them.
"""
import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from bench.events_bench import client, converged_lab, make_nodes, playbook, queue_empty
from lab import events as lab_events
from lab import labctl
from lab.rulebook import Rulebook

RESULTS = Path(__file__).resolve().parent / "results" / "interruption.json"
APP_NS = "nlb-app-karpenter"
QUEUE = "eksworkshop-cluster-events"


def kube(*args):
    return json.loads(labctl.kubectl(*args, "-o", "json").stdout)


def karpenter_nodes():
    return kube("get", "nodes", "-l", "karpenter.sh/nodepool")["items"]


def disrupted(node):
    return node["metadata"].get("deletionTimestamp") or any(t["key"] == "karpenter.sh/disrupted" for t in node["spec"].get("taints") or [])


def wait(description, predicate, timeout, interval=0.1):
    started = time.time()
    while not predicate():
        if time.time() - started > timeout:
            raise SystemExit(f"timed out after {timeout}s waiting for {description}")
        time.sleep(interval)
    return time.time() - started


def app_running(count):
    pods = [p for p in kube("get", "pods", "-n", APP_NS)["items"] if not p["metadata"].get("deletionTimestamp")]
    return len(pods) == count and all(p["status"].get("phase") == "Running" for p in pods)


def settled():
    """6 app pods Running on Karpenter nodes that are all Ready and undisturbed."""
    nodes = karpenter_nodes()
    return app_running(6) and nodes and not any(disrupted(n) for n in nodes)


def warn(bus, instance_id, zone):
    entry = {**lab_events.ec2_event("spot-interruption", instance_id, "123456789012", zone), "EventBusName": "default"}
    started = time.time()
    bus.put_events(Entries=[entry])
    return started


def native_sample(bus, sqs, url):
    node = sorted((n for n in karpenter_nodes() if not disrupted(n)), key=lambda n: n["metadata"]["name"])[0]
    name = node["metadata"]["name"]
    zone, instance_id = node["spec"]["providerID"].removeprefix("aws:///").split("/")

    def tainted():
        current = [n for n in karpenter_nodes() if n["metadata"]["name"] == name]
        return not current or disrupted(current[0])

    started = warn(bus, instance_id, zone)
    wait(f"Karpenter to taint {name}", tainted, 120)
    seconds = time.time() - started
    wait("the replacement to run the 6 pods", settled, 300, interval=1)
    # The rulebook heard the warning too and drains the node: its next sample must not queue behind that.
    wait("the rulebook's queue empty", lambda: queue_empty(sqs, url), 120, interval=0.2)
    return seconds


def rulebook_sample(bus, sqs, url, name, instance_id):
    def cordoned():
        return kube("get", "node", name)["spec"].get("unschedulable")

    started = warn(bus, instance_id, "ap-southeast-1a")
    wait(f"the rulebook to cordon {name}", cordoned, 120)
    seconds = time.time() - started
    wait("the rulebook's queue empty", lambda: queue_empty(sqs, url), 120, interval=0.2)
    return seconds


def scale_run():
    labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=6")
    out = wait("6 pods Running", lambda: app_running(6), 300, interval=0.2)
    labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=1")
    back = wait("Karpenter's nodes gone", lambda: not karpenter_nodes(), 600, interval=1)
    return out, back


def summary(values):
    return {"median_seconds": round(statistics.median(values), 2), "samples_seconds": [round(v, 2) for v in values]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--scale-runs", type=int, default=3)
    args = parser.parse_args()

    converged_lab()
    # The tutorial scales by hand before it creates the HPA, which would scale back to its minimum.
    playbook("autoscaling.yml", "--tags", "hpa", "-e", "hpa_state=absent")
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               "command": f"python -m bench.interruption_bench --samples {args.samples} --scale-runs {args.scale_runs}"}
    scale_out, scale_back = [], []
    for _ in range(args.scale_runs):
        out, back = scale_run()
        scale_out.append(out)
        scale_back.append(back)
    results["scale_to_6_until_running"] = summary(scale_out)
    results["back_to_1_until_karpenter_nodes_gone"] = summary(scale_back)

    sqs, bus = client("sqs"), client("events")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    rulebook = Rulebook(Path(tempfile.mkdtemp()) / "rulebook.log")
    rulebook.start()
    try:
        labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=6")
        wait("6 pods Running on Karpenter's nodes", settled, 300, interval=1)
        others = make_nodes("n", args.samples + 1)
        # Warm-up: the rulebook's first remediation also pays for its start.
        (warm_name, warm_id), *others = others.items()
        rulebook_sample(bus, sqs, url, warm_name, warm_id)
        native, ruled = [], []
        for name, instance_id in others:
            native.append(native_sample(bus, sqs, url))
            ruled.append(rulebook_sample(bus, sqs, url, name, instance_id))
        results["spot_warning_to_cordoned"] = {"karpenter_native": summary(native), "rulebook": summary(ruled), "samples": args.samples}
    finally:
        rulebook.stop()
        labctl.kubectl("delete", "nodes", "-l", "bench=n", "--wait=false", check=False)
        labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=1", check=False)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
